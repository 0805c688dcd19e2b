package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// execSimple runs one or more statements with the simple protocol.
func execSimple(ctx context.Context, conn *pgconn.PgConn, sql string) error {
	_, err := conn.Exec(ctx, sql).ReadAll()
	return err
}

// query runs one statement with p's parameters and returns its rows in
// text format. Cold paths only: every row is copied.
func query(ctx context.Context, conn *pgconn.PgConn, sql string, p *params) (*pgconn.Result, error) {
	var r *pgconn.Result
	if p == nil {
		r = conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	} else {
		r = conn.ExecParams(ctx, sql, p.args(), p.oids, p.formats, nil).Read()
	}
	return r, r.Err
}

// rollback ends a failed transaction; if even that fails the connection is
// unusable and is closed so the owner reconnects.
func rollback(ctx context.Context, conn *pgconn.PgConn) {
	if conn.IsClosed() {
		return
	}
	if err := execSimple(ctx, conn, "ROLLBACK"); err != nil {
		conn.Close(ctx)
	}
}

func atoi64(b []byte) (int64, error) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q returned by PostgreSQL as an integer: %w", b, err)
	}
	return v, nil
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isRowLevel reports whether err rejects a row's content: a data exception
// (class 22) or an integrity constraint violation (class 23, which includes
// check, not-null, unique and foreign key violations). Bisection can find
// the rows responsible.
func isRowLevel(err error) bool {
	c := pgCode(err)
	return strings.HasPrefix(c, "22") || strings.HasPrefix(c, "23")
}

// isConflict reports a deadlock or serialization failure: the transaction
// did nothing wrong and succeeds when run again.
func isConflict(err error) bool {
	c := pgCode(err)
	return c == "40P01" || c == "40001"
}

var copyLineRE = regexp.MustCompile(`(?m)^COPY [^\n]*, line ([0-9]+)(?:, column ([^:\n]+))?`)

// copyLine extracts the 1-based tuple number (and the column, if named) of a
// COPY error from its context.
func copyLine(err error) (line int, column string, ok bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return 0, "", false
	}
	m := copyLineRE.FindStringSubmatch(pe.Where)
	if m == nil {
		return 0, "", false
	}
	n, perr := strconv.Atoi(m[1])
	if perr != nil || n < 1 {
		return 0, "", false
	}
	return n, m[2], true
}

// maxDetail bounds the part of a rejection message that echoes row values.
const maxDetail = 512

// rejectMessage describes why PostgreSQL refused a row: the message, the
// SQLSTATE, and the column, constraint and detail when the server names
// them. The tuple position in the COPY context is left out: it is relative
// to the statement that failed, not to the batch.
func rejectMessage(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(pe.Message)
	b.WriteString(" (SQLSTATE ")
	b.WriteString(pe.Code)
	b.WriteString(")")
	col := pe.ColumnName
	if col == "" {
		_, col, _ = copyLine(err)
	}
	if col != "" {
		b.WriteString("; column ")
		b.WriteString(col)
	}
	if pe.ConstraintName != "" {
		b.WriteString("; constraint ")
		b.WriteString(pe.ConstraintName)
	}
	if pe.Detail != "" {
		d := pe.Detail
		if len(d) > maxDetail {
			d = strings.ToValidUTF8(d[:maxDetail], "") + "…"
		}
		b.WriteString("; ")
		b.WriteString(d)
	}
	return b.String()
}
