package ingest

import (
	"context"
	"fmt"
	"io"
	"time"

	pgcopy "github.com/sluice-dev/sluice/copy"
)

// CheckMigration is `sluice migrate --check`: it prints what Migrate and
// the first partition maintenance round would create, change or refuse,
// changing nothing (pgcopy.CheckMigration rehearses them in a transaction
// it rolls back). It returns an error when Migrate would fail.
func CheckMigration(ctx context.Context, cfg *Config, w io.Writer) (err error) {
	defer func() { err = newRedactor(cfg).error(err) }()
	conn, err := connectPG(ctx, cfg.Postgres.URL, 30*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var tables []*pgcopy.Table
	for i := range cfg.Tables {
		t, err := cfg.Tables[i].pgTable()
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	plan, err := pgcopy.CheckMigration(ctx, conn, cfg.Postgres.Schema, tables, time.Now())
	if err != nil {
		return fmt.Errorf("cannot check the migration: %w", err)
	}
	if len(plan.Changes) == 0 {
		fmt.Fprintln(w, "sluice migrate --check: nothing to create or change")
	} else {
		fmt.Fprintln(w, "sluice migrate --check: migrate would (nothing was changed):")
		for _, c := range plan.Changes {
			fmt.Fprintln(w, "  "+c)
		}
	}
	for _, t := range cfg.Tables {
		if t.Evolve == "add_columns" {
			fmt.Fprintf(w, "  %s: evolve add_columns adds a nullable column for each new top-level field of its writer schemas, while running\n", t.Name)
		}
	}
	if len(plan.Problems) > 0 {
		fmt.Fprintln(w, "migrate would fail:")
		for _, p := range plan.Problems {
			fmt.Fprintln(w, "  "+p)
		}
		return fmt.Errorf("cannot migrate: %d problem(s), listed above", len(plan.Problems))
	}
	return nil
}
