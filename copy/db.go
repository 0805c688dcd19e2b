package pgcopy

import (
	"context"
	"fmt"
	"strconv"

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
