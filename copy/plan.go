package pgcopy

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MigrationPlan is what Migrate and the first partition maintenance round
// would change, and what they would refuse.
type MigrationPlan struct {
	Changes  []string // one line per object created, e.g. "create table public.events (...)"
	Problems []string // what Migrate would fail on, each naming the fix
}

// CheckMigration works out, without changing anything, what Migrate (and a
// maintenance round of each partitioned table at now) would do. It reads
// the catalog for what is missing, then runs Migrate's statements and
// checks inside a transaction that it rolls back, so a plan without
// Problems is one Migrate carries out. conn must not be inside a
// transaction.
func CheckMigration(ctx context.Context, conn *pgconn.PgConn, schema string, tables []*Table, now time.Time) (*MigrationPlan, error) {
	plan := &MigrationPlan{}
	var valid []*Table
	for _, t := range tables {
		if err := t.validate(); err != nil {
			plan.Problems = append(plan.Problems, err.Error())
			continue
		}
		valid = append(valid, t)
	}
	exists := func(fn, name string) (bool, error) {
		var p params
		p.text(name)
		r, err := query(ctx, conn, "SELECT "+fn+"($1) IS NOT NULL", &p)
		if err != nil {
			return false, fmt.Errorf("cannot look up %s: %w", name, err)
		}
		return string(r.Rows[0][0]) == "t", nil
	}
	// seenSchema holds the schemas looked up: Migrate creates the missing
	// ones, its own and those of create: true targets, each said once.
	seenSchema := map[string]bool{}
	createSchema := func(name string) error {
		if seenSchema[name] {
			return nil
		}
		seenSchema[name] = true
		ok, err := exists("to_regnamespace", pgx.Identifier{name}.Sanitize())
		if err == nil && !ok {
			plan.Changes = append(plan.Changes, "create schema "+name)
		}
		return err
	}
	s := pgx.Identifier{schema}.Sanitize()
	if err := createSchema(schema); err != nil {
		return nil, err
	}
	for _, n := range []string{"offsets", "dead_letters"} {
		if ok, err := exists("to_regclass", s+"."+n); err != nil {
			return nil, err
		} else if !ok {
			plan.Changes = append(plan.Changes, "create table "+schema+"."+n)
		}
	}
	for _, t := range valid {
		ok, err := exists("to_regclass", t.ident())
		if err != nil {
			return nil, err
		}
		switch {
		case !ok && t.Create:
			if err := createSchema(schemaOf(t)); err != nil {
				return nil, err
			}
			plan.Changes = append(plan.Changes, "create table "+t.createSQL())
			if t.Partition != nil {
				plan.Changes = append(plan.Changes, fmt.Sprintf("create partition %s.%s DEFAULT", schemaOf(t), t.defaultPartition()))
			}
		case ok && t.Partition != nil:
			r, err := query(ctx, conn, "SELECT "+t.lacksDefaultSQL(), nil)
			if err != nil {
				return nil, fmt.Errorf("cannot read how table %s is partitioned: %w", t.Name, err)
			}
			if string(r.Rows[0][0]) == "t" {
				plan.Changes = append(plan.Changes, fmt.Sprintf("create partition %s.%s DEFAULT", schemaOf(t), t.defaultPartition()))
			}
		}
	}

	// The rehearsal: Migrate's statements and checks, rolled back.
	sql := fmt.Sprintf("BEGIN; SELECT pg_advisory_xact_lock(%d);\n", migrateLockKey) + migrateSQL(schema, valid)
	if err := execSimple(ctx, conn, sql); err != nil {
		rollback(ctx, conn)
		if conn.IsClosed() {
			return nil, err
		}
		plan.Problems = append(plan.Problems, fmt.Sprintf("cannot create the tables of schema %s (and create: true targets): %v", schema, err))
		return plan, nil
	}
	defer rollback(ctx, conn)
	for _, t := range valid {
		// Each check under a savepoint: a failed one must not hide the next.
		if err := execSimple(ctx, conn, "SAVEPOINT sluice_check"); err != nil {
			return nil, err
		}
		err := checkTable(ctx, conn, t)
		if err == nil && t.Partition != nil {
			err = CheckPartitioned(ctx, conn, t)
			if err == nil {
				var m Maintenance
				m, err = maintain(ctx, conn, t, now, 0, true)
				s := schemaOf(t)
				for _, n := range m.Created {
					line := "create partition " + s + "." + n
					for _, r := range m.Renamed {
						if r.Name == n {
							line += " (" + s + "." + r.Taken + " is taken by a relation that is no partition of " + t.Name + ")"
						}
					}
					plan.Changes = append(plan.Changes, line)
				}
				for _, f := range m.Failed {
					plan.Problems = append(plan.Problems, f.Error())
				}
				for _, n := range m.Dropped {
					plan.Changes = append(plan.Changes, "drop partition "+s+"."+n+" (older than the retention)")
				}
				for _, n := range m.Detached {
					plan.Changes = append(plan.Changes, "detach partition "+s+"."+n+" (older than the retention)")
				}
				def := s + "." + t.defaultPartition()
				if m.Moved > 0 {
					plan.Changes = append(plan.Changes, fmt.Sprintf("move %s of %s into the partitions made for them", rowCount(m.Moved), def))
				}
				if m.Expired > 0 {
					plan.Changes = append(plan.Changes, fmt.Sprintf("delete %s of %s older than the retention (before %s)",
						rowCount(m.Expired), def, t.Partition.NotBefore(now).Format(time.RFC3339)))
				}
				if m.DefaultRows == 1 {
					plan.Changes = append(plan.Changes, "leave 1 row in "+def+": no partition can be made for it")
				} else if m.DefaultRows > 1 {
					plan.Changes = append(plan.Changes, fmt.Sprintf("leave %d rows in %s: no partition can be made for them", m.DefaultRows, def))
				}
			}
		}
		if err != nil {
			plan.Problems = append(plan.Problems, err.Error())
		}
		if err := execSimple(ctx, conn, "ROLLBACK TO SAVEPOINT sluice_check"); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// rowCount writes n rows.
func rowCount(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

func schemaOf(t *Table) string {
	s, _ := t.schemaTable()
	return s
}
