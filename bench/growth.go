package bench

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/loadgen"
)

// The growth curve: throughput against the size of the target. A table
// that grows forever slows every writer down (a larger unique index to
// probe and insert into, more pages to keep in cache); partitioning by
// time keeps the partition being written small. Options.Prefill fills
// the target with rows before the benchmark, fast, inside PostgreSQL;
// Options.Partitioned makes the target day-partitioned. With either, the
// raw COPY limit is measured into the target itself, at its size, each
// COPY in a transaction that is rolled back (then the table is vacuumed,
// untimed), so the ratio compares writers on the same table.

// prefillDays is how far back the prefilled rows' timestamps reach from
// the benchmark's own (loadgen's 2026-11-01): a day-partitioned target
// holds that many filled partitions and writes into the next one.
const prefillDays = 30

// loadgenBase is the time of loadgen's first record (loadgen baseMs).
var loadgenBase = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// partitionedYAML turns a loadgen table entry into a day-partitioned one,
// keyed by (event_id, ts) as PostgreSQL requires.
func partitionedYAML(entry string) string {
	entry = strings.Replace(entry, "key: [event_id]", "key: [event_id, ts]", 1)
	return strings.Replace(entry, "  columns:\n", "  partition: {column: ts, interval: day, premake: 1}\n  columns:\n", 1)
}

// makeDayPartitions creates the day partitions of table from prefillDays
// before loadgen's first record to two days after it: the appliance's own
// maintenance makes partitions around the present, and the benchmark's
// rows are older.
func (e *env) makeDayPartitions(ctx context.Context, table string) error {
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	schema, name, _ := strings.Cut(table, ".")
	for d := loadgenBase.AddDate(0, 0, -prefillDays); d.Before(loadgenBase.AddDate(0, 0, 2)); d = d.AddDate(0, 0, 1) {
		part := pgx.Identifier{schema, name + "_p" + d.Format("20060102")}.Sanitize()
		sql := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')",
			part, qualified(table), d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339))
		if _, err := c.Exec(ctx, sql); err != nil {
			return fmt.Errorf("cannot create the day partitions of %s: %w", table, err)
		}
	}
	return nil
}

// prefill inserts n rows shaped like the reference event into table
// (created by the appliance's migration, empty), with event ids that
// cannot be loadgen's (UUID version 0; loadgen's are version 4) spread
// over the whole key space, timestamps over the prefillDays days before
// loadgen's, and no src_offset (which tells them apart when verifying).
// The primary key is dropped while inserting and rebuilt after, then the
// table is vacuumed and analysed and a checkpoint taken: the benchmark
// starts on a table as a long-running one would be.
func (e *env) prefill(ctx context.Context, table string, n int64, partitioned bool, log func(string, ...any)) (time.Duration, int64, error) {
	start := time.Now()
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	_, name, _ := strings.Cut(table, ".")
	q := qualified(table)
	if _, err := c.Exec(ctx, "ALTER TABLE "+q+" DROP CONSTRAINT "+pgx.Identifier{name + "_pkey"}.Sanitize()); err != nil {
		return 0, 0, fmt.Errorf("cannot drop the primary key of %s before the prefill: %w", table, err)
	}
	const chunk = 1_000_000
	sql := `INSERT INTO ` + q + ` (event_id, tenant_id, user_id, type, ts, amount, url, user_agent, attrs, country)
SELECT overlay(md5('sluice-prefill-' || i) placing '0' from 13 for 1)::uuid,
	1 + (i * 7919) % 5000,
	1 + (i * 104729) % 10000000,
	(ARRAY['purchase','view','click','add_to_cart','checkout','refund','login','search'])[1 + i % 8],
	$3::timestamptz - interval '1 millisecond' * (1 + (i * 2654435761) % ($4::int8 * 86400000)),
	((i * 31337) % 1000000) / 100.0,
	'https://shop.example.com/' || (ARRAY['electronics','books','garden','fashion','toys','grocery','sports','home'])[1 + i % 8] || '/p/' || (i % 1000000) || '?ref=organic',
	'Mozilla/5.0 (' || substr(repeat(md5(i::text), 10), 1, 100 + (i % 250)::int) || ')',
	jsonb_build_object('country', c.country, 'device', (ARRAY['desktop','mobile','tablet','tv'])[1 + i % 4],
		'session', md5('s' || i)::uuid, 'experiment', (ARRAY['checkout-v2','control','search-rank-b','price-test-7','onboarding-c'])[1 + i % 5]),
	c.country
FROM generate_series($1::int8, $2::int8) AS i,
	LATERAL (SELECT (ARRAY['DE','US','FR','GB','NL','SE','PL','ES','IT','JP','BR','IN','CA','AU','CH','AT'])[1 + i % 16] AS country) c`
	// The chunks are shared by one connection per core: generating the
	// rows (md5, jsonb) costs more CPU than writing them.
	var next, done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range max(runtime.NumCPU(), 1) {
		g.Go(func() error {
			ic, err := pgx.Connect(gctx, e.pgURL)
			if err != nil {
				return fmt.Errorf("cannot connect to PostgreSQL: %w", err)
			}
			defer ic.Close(context.Background())
			for {
				lo := next.Add(chunk) - chunk
				if lo >= n {
					return nil
				}
				hi := min(lo+chunk, n) - 1
				if _, err := ic.Exec(gctx, sql, lo, hi, loadgenBase, prefillDays); err != nil {
					return fmt.Errorf("cannot prefill %s: %w", table, err)
				}
				log("  prefilled %d of %d rows (%.0fs)", done.Add(hi-lo+1), n, time.Since(start).Seconds())
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	key := "event_id"
	if partitioned {
		key = "event_id, ts"
	}
	for _, s := range []string{"ALTER TABLE " + q + " ADD PRIMARY KEY (" + key + ")", "VACUUM (ANALYZE) " + q, "CHECKPOINT"} {
		if _, err := c.Exec(ctx, s); err != nil {
			return 0, 0, fmt.Errorf("cannot prepare the prefilled %s (%s): %w", table, s, err)
		}
	}
	took := time.Since(start)
	// A partitioned table holds no rows itself: its partitions do.
	var size int64
	if err := c.QueryRow(ctx, "SELECT (pg_total_relation_size($1::regclass) + coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree($1::regclass) WHERE relid <> $1::regclass), 0))::int8", q).Scan(&size); err != nil {
		return 0, 0, fmt.Errorf("cannot read the size of the prefilled %s: %w", table, err)
	}
	log("  prefilled %s: %.2f GB with its indexes", table, float64(size)/1e9)
	return took, size, nil
}

// rawCopiesInto measures the raw COPY into s's table itself, at its
// current size: the same distinct rows, connections and rows per COPY as
// the baselines, each COPY in a transaction that is rolled back; with
// sorted also the key-sorted raw COPY (a') into the same table: each
// COPY's rows in key order, as Sluice's direct path sends them, which on
// a large table is the faster of the two (fewer index pages touched per
// COPY). The table is then vacuumed (not timed), so the drain finds it as
// it was.
func (e *env) rawCopiesInto(ctx context.Context, s *stream, o Options, sorted bool) (raw, rawSorted *Throughput, err error) {
	// s's own shape: the stream's records are what the rows come from.
	w, err := e.decode(ctx, s, o)
	if err != nil {
		return nil, nil, err
	}
	warm := s.table + "_warmup"
	if err := e.cloneTable(ctx, s.table, warm); err != nil {
		return nil, nil, err
	}
	if _, err := e.phase(ctx, s, w.rows, warm, w.distinct, func(ctx context.Context, c *pgconn.PgConn, sh *shard) error {
		return copyShard(ctx, c, sh, warm, w.cols, o.BatchRows)
	}); err != nil {
		return nil, nil, fmt.Errorf("cannot warm PostgreSQL up: %w", err)
	}
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close(context.Background())
	measure := func(what string, shards []shard) (*Throughput, error) {
		logf(o.Log, "%s into %s itself (each COPY rolled back): %d distinct rows over %d connections …", what, s.table, w.rows, o.MaxConns)
		if err := e.checkpoint(ctx); err != nil {
			return nil, err
		}
		cpu0 := e.cpuNow()
		d, err := e.parallel(ctx, shards, func(ctx context.Context, c *pgconn.PgConn, sh *shard) error {
			return copyShardRolledBack(ctx, c, sh, s.table, w.cols, o.BatchRows)
		})
		if err != nil {
			return nil, fmt.Errorf("cannot run the %s baseline into %s: %w", what, s.table, err)
		}
		cpu := e.cpuNow().sub(cpu0, d)
		if _, err := c.Exec(ctx, "VACUUM "+qualified(s.table)); err != nil {
			return nil, fmt.Errorf("cannot vacuum %s after the %s baseline: %w", s.table, what, err)
		}
		t := newThroughput(d, s.stats.Records, w.rows, s.stats.CommittedBytes)
		t.CPU = &cpu
		t.logPhase(o.Log)
		return &t, nil
	}
	if raw, err = measure("raw COPY", w.distinct); err != nil {
		return nil, nil, err
	}
	if sorted && w.keyField >= 0 {
		if rawSorted, err = measure("raw COPY, key-sorted batches", sortedByKey(w.distinct, w.keyField, o.BatchRows)); err != nil {
			return nil, nil, err
		}
	}
	return raw, rawSorted, nil
}

// copyShardRolledBack is copyShard with each COPY in a transaction that
// is rolled back.
func copyShardRolledBack(ctx context.Context, c *pgconn.PgConn, sh *shard, table string, cols []string, rows int) error {
	for lo := 0; lo < len(sh.ends); lo += rows {
		hi := min(lo+rows, len(sh.ends))
		start := 0
		if lo > 0 {
			start = sh.ends[lo-1]
		}
		part := shard{data: sh.data[start:sh.ends[hi-1]]}
		for k := lo; k < hi; k++ {
			part.ends = append(part.ends, sh.ends[k]-start)
		}
		if _, err := c.Exec(ctx, "BEGIN").ReadAll(); err != nil {
			return err
		}
		if err := copyShard(ctx, c, &part, table, cols, len(part.ends)); err != nil {
			c.Exec(ctx, "ROLLBACK").ReadAll()
			return err
		}
		if _, err := c.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			return err
		}
	}
	return nil
}

// GrowthPoint is one measurement of the growth curve.
type GrowthPoint struct {
	Layout         string      `json:"layout"` // "plain" or "day-partitioned"
	Rows           int64       `json:"rows"`   // rows in the target before the benchmark
	PrefillSeconds float64     `json:"prefill_seconds"`
	TableBytes     int64       `json:"table_bytes,omitempty"` // the prefilled target's size, indexes included
	Sluice         Throughput  `json:"sluice"`
	RawCopy        *Throughput `json:"raw_copy,omitempty"`
	RawCopySorted  *Throughput `json:"raw_copy_sorted,omitempty"` // (a'): each COPY's rows in key order
	Ratio          float64     `json:"ratio_raw_copy,omitempty"`  // Sluice over the raw COPY limit at this size
	RatioSorted    float64     `json:"ratio_raw_copy_sorted,omitempty"`
}

// growth measures, for a plain and a day-partitioned target, Sluice and
// the raw COPY limit into a target prefilled with each of sizes rows.
func (e *env) growth(ctx context.Context, o Options, sizes []int64) ([]GrowthPoint, error) {
	if o.Schema != loadgen.SchemaReference {
		return nil, fmt.Errorf("cannot measure the growth curve with the %s schema; use --schema reference", o.Schema)
	}
	var out []GrowthPoint
	for _, partitioned := range []bool{false, true} {
		layout := "plain"
		if partitioned {
			layout = "day-partitioned"
		}
		for _, n := range sizes {
			po := o
			po.Prefill, po.Partitioned = n, partitioned
			gp := GrowthPoint{Layout: layout, Rows: n}
			sp := growthSpec(o)
			sp.before = func(ctx context.Context, s *stream) error {
				var err error
				gp.RawCopy, gp.RawCopySorted, err = e.rawCopiesInto(ctx, s, po, true)
				return err
			}
			logf(o.Log, "growth point: %s table of %d rows", layout, n)
			pr, err := e.point(ctx, po, sp)
			if err != nil {
				return out, fmt.Errorf("cannot measure the %s table of %d rows: %w", layout, n, err)
			}
			gp.Sluice, gp.PrefillSeconds, gp.TableBytes = pr.Drain, pr.PrefillSeconds, pr.PrefillBytes
			if gp.RawCopy != nil && pr.Drain.Seconds > 0 {
				gp.Ratio = gp.RawCopy.Seconds / pr.Drain.Seconds
			}
			if gp.RawCopySorted != nil && pr.Drain.Seconds > 0 {
				gp.RatioSorted = gp.RawCopySorted.Seconds / pr.Drain.Seconds
			}
			logf(o.Log, "  %s, %d rows: Sluice %.1f MB/s; Sluice / raw COPY %.2f, / key-sorted raw COPY %.2f",
				layout, n, gp.Sluice.MBPerSec, gp.Ratio, gp.RatioSorted)
			out = append(out, gp)
		}
	}
	return out, nil
}

// growthSpec is the pointSpec of every growth point: the run's workload
// shape (dups, keys, updates, format), as the raw COPY limit measured
// into the same table decodes it, and the run's appliance settings.
func growthSpec(o Options) pointSpec {
	return pointSpec{shape: o.shape(), Partitions: o.Partitions, MaxConns: o.MaxConns, BatchRows: o.BatchRows, BatchBytes: o.BatchBytes,
		MaxAge: o.MaxAge, Records: o.Records, Seed: o.Seed, cleanup: true}
}

// renderGrowth writes the growth section and its chart.
func renderGrowth(md *strings.Builder, pts []GrowthPoint, writeChart func(string, svgChart) error) error {
	md.WriteString("## Throughput against table size\n\n![throughput against table size](growth.svg)\n\n")
	md.WriteString("Each point prefills a fresh target (rows shaped like the reference event, spread over the 30 days before the benchmark's, " +
		"inserted inside PostgreSQL, primary key rebuilt, vacuumed), then measures the raw COPY limit into that same table at that size " +
		"(each COPY rolled back, then vacuumed), in arrival order (a) and with each COPY's rows in key order (a'), as Sluice's direct path sends them, " +
		"and Sluice draining the workload into it. The ratios are Sluice's throughput over each. On a large table the key-sorted COPY is the real limit: " +
		"rows in key order touch fewer index pages per COPY.\n\n")
	md.WriteString("\"Kept\" is Sluice's throughput at that size over its throughput into the empty table of the same layout, in the same run.\n\n")
	md.WriteString("| layout | rows in table | table size | Sluice MB/s | Sluice rows/s | kept | raw COPY (a) MB/s | key-sorted (a') MB/s | Sluice / (a) | Sluice / (a') | prefill |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	series := map[string]*Series{}
	var order []string
	empty := map[string]float64{}
	for _, p := range pts {
		if p.Rows == 0 && p.Sluice.MBPerSec > 0 {
			empty[p.Layout] = p.Sluice.MBPerSec
		}
	}
	for _, p := range pts {
		mbs := func(t *Throughput) string {
			if t == nil {
				return "–"
			}
			return fmt.Sprintf("%.1f", t.MBPerSec)
		}
		kept := "–"
		if e := empty[p.Layout]; e > 0 {
			kept = fmt.Sprintf("%.2f", p.Sluice.MBPerSec/e)
		}
		size := "–"
		switch {
		case p.TableBytes >= 1e9:
			size = fmt.Sprintf("%.1f GB", float64(p.TableBytes)/1e9)
		case p.TableBytes > 0:
			size = fmt.Sprintf("%.0f MB", float64(p.TableBytes)/1e6)
		}
		fmt.Fprintf(md, "| %s | %s | %s | %.1f | %.0f | %s | %s | %s | %.2f | %.2f | %.0f s |\n", p.Layout, fmtRows(p.Rows), size, p.Sluice.MBPerSec, p.Sluice.RowsPerSec,
			kept, mbs(p.RawCopy), mbs(p.RawCopySorted), p.Ratio, p.RatioSorted, p.PrefillSeconds)
		for _, v := range []struct {
			name  string
			ratio float64
		}{{p.Layout + " / (a)", p.Ratio}, {p.Layout + " / (a')", p.RatioSorted}} {
			if v.ratio == 0 {
				continue
			}
			s := series[v.name]
			if s == nil {
				s = &Series{Name: v.name}
				series[v.name] = s
				order = append(order, v.name)
			}
			s.Points = append(s.Points, [2]float64{float64(p.Rows) / 1e6, v.ratio})
		}
	}
	md.WriteString("\n")
	c := &Chart{Title: "Sluice / raw COPY limit against table size", XLabel: "rows in the target (millions)", YLabel: "ratio to raw COPY"}
	for _, l := range order {
		c.Series = append(c.Series, *series[l])
	}
	return writeChart("growth.svg", c)
}

func fmtRows(n int64) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return strconv.FormatInt(n/1e6, 10) + " M"
	case n >= 1e3 && n%1e3 == 0:
		return strconv.FormatInt(n/1e3, 10) + " k"
	}
	return strconv.FormatInt(n, 10)
}

// parseRows parses a row count: 1000, 10k, 30M.
func parseRows(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1_000_000, s[:len(s)-1]
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1_000, s[:len(s)-1]
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("cannot parse %q as a row count; write it like 0, 500k or 10M", s)
	}
	return int64(v * float64(mult)), nil
}

// checkGrowthOptions rejects prefill and partitioning where the
// benchmark cannot do them.
func (o *Options) checkGrowthOptions() error {
	if (o.Prefill > 0 || o.Partitioned) && o.Schema != loadgen.SchemaReference {
		return fmt.Errorf("cannot prefill or partition the %s schema's table; use --schema reference", o.Schema)
	}
	if o.Prefill < 0 {
		return fmt.Errorf("cannot prefill %d rows; use 0 or more", o.Prefill)
	}
	return nil
}
