package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/jackc/pgx/v5/pgconn"

	pgcopy "github.com/sluice-dev/sluice/copy"
)

// Partition maintenance (docs/partitions.md). For every table with
// `partition:` the App runs a maintenance round at start, before
// consuming, and then every partitionEvery: partitions are premade ahead
// of now and of the newest row, rows that fell into the default partition
// are moved into partitions made for them, and partitions wholly older
// than the retention are dropped or detached (pgcopy.MaintainPartitions).
// Instances sharing a table take turns through an advisory lock; an
// instance that finds it taken skips the round.
//
// Records whose partition time is older than the retention are dead
// letters with reason expired: stored, they would re-create data the
// retention dropped (a replay, a late producer). The decoder checks the
// partition column against tablePartitions.notBefore, which every round
// moves; the partition column is required (a row without a time has no
// partition to live in or expire with). A batch decoded before the floor
// moved can still commit after a round dropped its rows' partition; the
// next round deletes such rows from the default partition
// (sluice_partition_expired_rows_total).

// Maintenance timings.
const (
	partitionEvery       = time.Minute
	partitionLockTimeout = time.Second // how long a step may wait for a lock (ingestion queues behind it meanwhile)
)

// partitionMaint is the App's maintenance state.
type partitionMaint struct {
	every time.Duration    // partitionEvery unless a test changes it before Run
	now   func() time.Time // time.Now unless a test changes it
}

// tablePartitions is a partitioned table's run-time state.
type tablePartitions struct {
	notBefore   atomic.Int64 // Unix µs: older partition times are expired (math.MinInt64: none)
	defaultRows atomic.Int64 // rows in the default partition at the last round
	namesTaken  atomic.Int64 // partitions the last round could not make: their names are taken
	expired     *metrics.Counter
}

// initPartitions prepares t's partition column (required, checked against
// the retention) and its metric. New calls it before building decoders.
func (a *App) initPartitions(t *tableRT) {
	if a.pm.every == 0 {
		a.pm = partitionMaint{every: partitionEvery, now: time.Now}
	}
	if t.pg.Partition == nil {
		return
	}
	tp := &tablePartitions{}
	t.part = tp
	tp.setNotBefore(t.pg.Partition, a.pm.now())
	for i := range t.cols {
		if t.cols[i].Name == t.pg.Partition.Column {
			t.cols[i].Required = true
			t.cols[i].NotBefore = &tp.notBefore
		}
	}
	a.m.set.NewGauge(fmt.Sprintf("sluice_partition_default_rows{table=%q}", t.cfg.Name), func() float64 {
		return float64(tp.defaultRows.Load())
	})
	a.m.set.NewGauge(fmt.Sprintf("sluice_partition_names_taken{table=%q}", t.cfg.Name), func() float64 {
		return float64(tp.namesTaken.Load())
	})
	tp.expired = a.m.set.NewCounter(fmt.Sprintf("sluice_partition_expired_rows_total{table=%q}", t.cfg.Name))
}

func (tp *tablePartitions) setNotBefore(p *pgcopy.Partitioning, now time.Time) {
	nb := int64(math.MinInt64)
	if t := p.NotBefore(now); !t.IsZero() {
		nb = t.UnixMicro()
	}
	tp.notBefore.Store(nb)
}

// startPartitions runs the first maintenance round and starts the
// periodic one; stop ends it. Run calls it after migrating, before
// consuming: the partitions of the coming batches exist by then.
func (a *App) startPartitions(ctx context.Context) (stop func(), err error) {
	var parted bool
	for _, t := range a.tableList() {
		parted = parted || t.part != nil
	}
	if !parted {
		return func() {}, nil
	}
	if err := a.maintainPartitions(ctx); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(a.pm.every)
		defer tick.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			if err := a.maintainPartitions(lctx); err != nil && lctx.Err() == nil {
				a.log.Warn("cannot maintain partitions; retrying next round", "err", err, "next", a.pm.every)
			}
		}
	}()
	return func() { cancel(); <-done }, nil
}

// maintainPartitions runs one maintenance round over every partitioned
// table on the control connection. A table that cannot be maintained does
// not hold the others' rounds up: its error is returned with the rest.
func (a *App) maintainPartitions(ctx context.Context) error {
	now := a.pm.now()
	var errs []error
	for _, t := range a.tableList() {
		if err := a.maintainTable(ctx, t, now); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// maintainTable runs one maintenance round of t, if it is partitioned.
func (a *App) maintainTable(ctx context.Context, t *tableRT, now time.Time) error {
	if t.part == nil {
		return nil
	}
	t.part.setNotBefore(t.pg.Partition, now)
	var m pgcopy.Maintenance
	err := a.withCtl(ctx, func(conn *pgconn.PgConn) error {
		var err error
		m, err = pgcopy.MaintainPartitions(ctx, conn, t.pg, now, partitionLockTimeout)
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot maintain the partitions of %s: %w", t.cfg.Name, err)
	}
	a.reportMaintenance(t, m)
	return nil
}

func (a *App) reportMaintenance(t *tableRT, m pgcopy.Maintenance) {
	name := t.cfg.Name
	if m.Skipped {
		a.log.Debug("partition maintenance skipped: another instance holds the table's maintenance lock", "table", name)
		return
	}
	if len(m.Created) > 0 {
		a.log.Info("partitions created", "table", name, "partitions", m.Created, "rows_moved_from_default", m.Moved)
	}
	if len(m.Dropped) > 0 {
		a.log.Info("expired partitions dropped", "table", name, "partitions", m.Dropped, "retention", t.pg.Partition.Retention)
	}
	if len(m.Detached) > 0 {
		a.log.Info("expired partitions detached (kept as plain tables)", "table", name, "partitions", m.Detached, "retention", t.pg.Partition.Retention)
	}
	if m.Expired > 0 {
		t.part.expired.Add(int(m.Expired))
		a.log.Warn("rows older than the retention deleted from the default partition: a batch in flight committed them after their partition was dropped",
			"table", name, "rows", m.Expired, "partition", defaultPartitionName(t))
	}
	for _, r := range m.Renamed {
		if t.ev.once("partition renamed\x00" + r.Taken) {
			a.log.Warn("a partition's name is taken by a relation that is no partition of the table; the partition was made under another name",
				"table", name, "taken", r.Taken, "partition", r.Name)
		}
	}
	var taken int64
	for _, err := range m.Failed {
		var nt *pgcopy.PartitionNameTakenError
		if errors.As(err, &nt) {
			// Every round until the name is freed: said once per name.
			taken++
			if t.ev.once("partition name taken\x00" + nt.Name) {
				a.log.Error("PARTITION NOT MADE: its name is taken; the rows of its interval go to the default partition until it is freed",
					"table", name, "partition", nt.Name, "from", nt.From, "to", nt.To, "err", err)
			}
			continue
		}
		a.log.Warn("partition maintenance step failed; retrying next round", "table", name, "err", err)
	}
	t.part.namesTaken.Store(taken)
	t.part.defaultRows.Store(m.DefaultRows)
	if m.DefaultRows > 0 {
		a.log.Warn("rows in the default partition: no partition held their time and none could be made for them (older than the retention, or the step failed)",
			"table", name, "rows", m.DefaultRows, "partition", defaultPartitionName(t))
	}
}

func defaultPartitionName(t *tableRT) string {
	s, n := splitName(t.cfg.Name)
	return s + "." + n + "_default"
}

func splitName(name string) (string, string) {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return name[:i], name[i+1:]
		}
	}
	return "public", name
}
