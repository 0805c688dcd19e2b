package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
)

// CheckMigration is `sluice migrate --check`: it prints what Migrate and
// the first partition maintenance round would create, change or refuse,
// changing nothing (pgcopy.CheckMigration rehearses them in a transaction
// it rolls back). It returns an error when Migrate would fail.
func CheckMigration(ctx context.Context, cfg *Config, w io.Writer) (err error) {
	defer func() { err = newRedactor(cfg).error(err) }()
	conn, err := connectPG(ctx, cfg.Postgres.URL, 30*time.Second, slog.Default())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if reg, err := newRegistry(cfg); err != nil {
		return err
	} else if err := deriveTables(ctx, cfg, reg, conn, slog.Default()); err != nil {
		return err
	}
	var tables []*pgcopy.Table
	var adds, templates []string
	for i := range cfg.Tables {
		if hasTemplate(cfg.Tables[i].Name) {
			// Migrate leaves it: each topic's table is made (and
			// checked) when an instance first routes the topic.
			templates = append(templates, fmt.Sprintf("  %s: made for each topic the template names, when an instance first routes it", cfg.Tables[i].Name))
			continue
		}
		t, err := cfg.Tables[i].pgTable()
		if err != nil {
			return err
		}
		if d := cfg.Tables[i].derived; d != nil && len(d.add) > 0 {
			// Migrate adds these before it checks the target (addDerived).
			t.Columns = slices.DeleteFunc(t.Columns, func(c pgcopy.Column) bool {
				return slices.ContainsFunc(d.add, func(a pgcopy.Column) bool { return a.Name == c.Name })
			})
			for _, c := range d.add {
				adds = append(adds, fmt.Sprintf("add column %s %s to table %s (a field of subject %s, version %d; evolve: add_columns)", c.Name, c.SQLType, t.Name, d.subject, d.version))
			}
		}
		tables = append(tables, t)
	}
	plan, err := pgcopy.CheckMigration(ctx, conn, cfg.Postgres.Schema, tables, time.Now())
	if err != nil {
		return fmt.Errorf("cannot check the migration: %w", err)
	}
	plan.Changes = append(adds, plan.Changes...)
	switch {
	case len(plan.Changes) == 0 && len(plan.Problems) > 0:
		fmt.Fprintln(w, "sluice migrate --check: nothing to create or change, but:")
	case len(plan.Changes) == 0:
		fmt.Fprintln(w, "sluice migrate --check: nothing to create or change")
	default:
		fmt.Fprintln(w, "sluice migrate --check: migrate would (nothing was changed):")
		for _, c := range plan.Changes {
			fmt.Fprintln(w, "  "+c)
		}
	}
	for _, l := range templates {
		fmt.Fprintln(w, l)
	}
	for _, t := range cfg.Tables {
		if t.Evolve == "add_columns" {
			what := "top-level field of its writer schemas"
			if f, _ := codec.ParseFormat(t.Format); f == codec.FormatDebezium {
				what = "field of the rows of its Envelope versions"
			}
			fmt.Fprintf(w, "  %s: evolve add_columns adds a nullable column for each new %s, while running\n", t.Name, what)
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
