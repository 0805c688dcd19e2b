package pgcopy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema evolution: a table whose records gain a top-level field gets a new
// nullable column for it. AddColumns adds them in one short transaction
// under an advisory lock per table (instances adding the same column wait
// for each other instead of racing) and a lock_timeout (ALTER TABLE needs
// an ACCESS EXCLUSIVE lock for a moment: ingestion queues behind it for at
// most that long). Each added column carries the comment EvolvedComment,
// by which EvolvedColumns finds it again after a restart.

// EvolvedComment starts the comment of every column AddColumns adds.
const EvolvedComment = "sluice: added for a new field of the writer schema"

// evolveLockClass is the first key of the two-key advisory lock that
// serialises schema evolution of one table (the second is hashtext of its
// name).
const evolveLockClass = 0x736c7565 // "slue"

// AddColumns adds each of cols that t's target lacks, nullable, in one
// transaction, and returns cols as the target has them now: a column that
// existed already keeps its type (SQLType is then the target's type, or ""
// when it is not a type Sluice writes). It never changes a column's type.
func AddColumns(ctx context.Context, conn *pgconn.PgConn, t *Table, cols []Column, lockTimeout time.Duration) ([]Column, error) {
	for _, c := range cols {
		if c.Name == "" || ReservedColumn(c.Name) {
			return nil, fmt.Errorf("cannot add column %q to table %s: the name is empty or reserved", c.Name, t.Name)
		}
		if err := checkSQLType(c.SQLType); err != nil {
			return nil, fmt.Errorf("cannot add column %s.%s: %w", t.Name, c.Name, err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "BEGIN; SET LOCAL lock_timeout = %d; SELECT pg_advisory_xact_lock(%d, hashtext(%s));\n",
		max(lockTimeout.Milliseconds(), 1), evolveLockClass, quoteLiteral(t.ident()))
	for _, c := range cols {
		n := pgx.Identifier{c.Name}.Sanitize()
		fmt.Fprintf(&b, `DO $evolve$ BEGIN
IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = %[1]s::regclass AND attname = %[2]s AND attnum > 0 AND NOT attisdropped) THEN
	ALTER TABLE %[3]s ADD COLUMN %[4]s %[5]s;
	COMMENT ON COLUMN %[3]s.%[4]s IS %[6]s;
END IF;
END $evolve$;
`, quoteLiteral(t.ident()), quoteLiteral(c.Name), t.ident(), n, c.SQLType, quoteLiteral(EvolvedComment))
	}
	b.WriteString("COMMIT")
	fault("evolve") // test-only (fault.go)
	if err := execSimple(ctx, conn, b.String()); err != nil {
		rollback(ctx, conn)
		return nil, fmt.Errorf("cannot add columns %s to table %s: %w", strings.Join(columnNames(cols), ", "), t.Name, err)
	}
	have, err := describeTarget(ctx, conn, t)
	if err != nil {
		return nil, err
	}
	out := make([]Column, len(cols))
	for i, c := range cols {
		tc := have[c.Name]
		out[i] = Column{Name: c.Name, SQLType: typeNames[tc.baseOID]}
		if tc.baseOID == oidVarchar || tc.baseOID == oidBpchar || tc.typmod >= 0 {
			out[i].SQLType = "" // a length or precision Sluice did not ask for
		}
	}
	return out, nil
}

// EvolvedColumns returns the columns AddColumns added to t's target that
// t does not have, in the target's order, with the type Sluice writes
// them as ("" when the column's type was changed to one it does not
// write). A column of a reserved name (ReservedColumn), which AddColumns
// added before it refused them, is left out: writing it would fail every
// batch.
func EvolvedColumns(ctx context.Context, conn *pgconn.PgConn, t *Table) ([]Column, error) {
	var p params
	p.text(t.ident())
	p.text(EvolvedComment)
	r, err := query(ctx, conn, `SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND col_description(a.attrelid, a.attnum) = $2
ORDER BY a.attnum`, &p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the evolved columns of table %s: %w", t.Name, err)
	}
	var out []Column
	for _, row := range r.Rows {
		name := string(row[0])
		if ReservedColumn(name) || slices.ContainsFunc(t.Columns, func(c Column) bool { return c.Name == name }) {
			continue
		}
		oid, _ := atoi64(row[1])
		mod, _ := atoi64(row[2])
		typ := typeNames[uint32(oid)]
		if mod >= 0 || oid == oidVarchar {
			typ = ""
		}
		out = append(out, Column{Name: name, SQLType: typ})
	}
	return out, nil
}

func columnNames(cols []Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
