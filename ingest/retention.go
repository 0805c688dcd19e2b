package ingest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	pgcopy "github.com/sluice-dev/sluice/copy"
)

// DeadLettersConfig is the `dead_letters:` section.
type DeadLettersConfig struct {
	// Retention deletes dead letters received longer ago than this (of
	// every group in the schema), at start and then every hour, in small
	// batches. 0 (the default) keeps them until an operator deletes or
	// replays them.
	Retention Age `yaml:"retention"`
}

// Age is a duration that may also be written in days: 30d, 12h, 90m.
type Age time.Duration

// UnmarshalYAML parses a duration or a number of days.
func (a *Age) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	if s == "0" || s == "" {
		*a = 0
		return nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(d)
		if err != nil || days < 0 {
			return fmt.Errorf("cannot parse %q as a number of days; write it like 30d", n.Value)
		}
		*a = Age(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("cannot parse %q as an age; write it like 30d, 12h or 0 (off)", n.Value)
	}
	*a = Age(v)
	return nil
}

// MarshalYAML writes whole days as 30d.
func (a Age) MarshalYAML() (any, error) {
	d := time.Duration(a)
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d", nil
	}
	return d.String(), nil
}

// D returns a as a time.Duration.
func (a Age) D() time.Duration { return time.Duration(a) }

const (
	retentionEvery = time.Hour
	retentionBatch = 1000 // rows per DELETE: short transactions, few locks
)

// retain deletes expired dead letters now and then every periods.retention
// until ctx is done. Failures are logged and retried at the next period:
// retention is housekeeping, never a reason to stop ingesting.
func (a *App) retain(ctx context.Context) {
	keep := a.cfg.DeadLetters.Retention.D()
	if keep <= 0 {
		return
	}
	tick := time.NewTicker(a.periods.retention)
	defer tick.Stop()
	for {
		n, err := a.expireDeadLetters(ctx, time.Now().Add(-keep))
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("cannot delete expired dead letters (dead_letters.retention); retrying later", "err", err, "deleted", n)
		case n > 0:
			a.log.Info("deleted expired dead letters", "count", n, "retention", keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// expireDeadLetters deletes the dead letters received before cutoff, a
// batch per transaction, over a connection of its own.
func (a *App) expireDeadLetters(ctx context.Context, cutoff time.Time) (int64, error) {
	conn, err := connectPG(ctx, a.cfg.Postgres.URL, 0, nil)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var total int64
	for {
		n, err := pgcopy.DeleteDeadLettersBefore(ctx, conn, a.cfg.Postgres.Schema, cutoff, retentionBatch)
		total += n
		if err != nil || n < retentionBatch {
			return total, err
		}
	}
}
