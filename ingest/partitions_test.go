package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

const partitionedYAML = `
  - name: public.pitems
    topics: [events]
    key: [id, ts]
    partition: {column: ts, interval: day, premake: 2, retention: 3d}
    columns:
      - {name: id, type: uuid, path: id, required: true}
      - {name: ts, type: timestamptz, path: ts}
      - {name: v, type: text, path: v}
`

func timedItem(i int, ts time.Time) *kgo.Record {
	id := uuidFor(i)
	return &kgo.Record{Key: []byte(id), Value: fmt.Appendf(nil, `{"id":%q,"ts":%q,"v":"x"}`, id, ts.Format(time.RFC3339))}
}

func (e *env) partitions(table string) []string {
	e.t.Helper()
	rows, err := e.db.Query(e.ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass ORDER BY 1`, table)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// clock is a settable time for the maintenance rounds.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (clk *clock) prep() func(*App) {
	return func(a *App) {
		a.pm.now = clk.now
		a.pm.every = time.Hour // rounds run when the test says
		for _, t := range a.tables {
			if t.part != nil {
				t.part.setNotBefore(t.pg.Partition, clk.now())
			}
		}
	}
}

func TestPartitionedIngestion(t *testing.T) {
	e := newEnv(t, 2)
	cfg := e.config(partitionedYAML)
	var clk clock
	day0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk.set(day0)
	r1 := e.start(cfg, clk.prep())
	// A second instance maintaining the same table.
	r2 := e.start(cfg, clk.prep())
	want := []string{"pitems_default", "pitems_p20261127", "pitems_p20261128", "pitems_p20261129"}
	if got := e.partitions("public.pitems"); !slices.Equal(got, want) {
		t.Fatalf("partitions at start: %v, want %v", got, want)
	}

	// Rows in the premade partitions, before the oldest one, after the
	// newest one, and older than the retention.
	var recs []*kgo.Record
	for i := range 200 {
		recs = append(recs, timedItem(i, day0.Add(time.Duration(i)*10*time.Minute))) // through 2026-11-28 19:10
	}
	recs = append(recs,
		timedItem(1000, day0.Add(-40*time.Hour)),                // 2026-11-25 18:00: before the oldest partition
		timedItem(1001, day0.AddDate(0, 0, 20)),                 // 2026-12-17: after the newest
		timedItem(1002, day0.AddDate(0, 0, -10)),                // 2026-11-17: expired
		timedItem(1003, day0.Add(-3*24*time.Hour)),              // 2026-11-24 10:00: the oldest day kept
		timedItem(1004, day0.Add(-3*24*time.Hour-11*time.Hour)), // 2026-11-23 23:00: expired
	)
	e.produce(recs...)
	e.waitDrained(int64(len(recs)))
	if n := e.count(`SELECT count(*) FROM public.pitems`); n != 203 {
		t.Fatalf("target holds %d rows, want 203", n)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE error LIKE '%expired%' AND error LIKE '%column ts%'`); n != 2 {
		t.Fatalf("%d expired dead letters, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM public.pitems_default`); n != 3 {
		t.Fatalf("default partition holds %d rows, want 3", n)
	}
	// Both instances run a round at once: one makes the partitions and
	// moves the rows, the other skips or finds them made.
	var wg sync.WaitGroup
	for _, r := range []*running{r1, r2} {
		wg.Go(func() {
			if err := r.app.maintainPartitions(e.ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.count(`SELECT count(*) FROM public.pitems_default`); n != 0 {
		t.Fatalf("default partition still holds %d rows after maintenance", n)
	}
	want = []string{"pitems_default", "pitems_p20261124", "pitems_p20261125", "pitems_p20261127", "pitems_p20261128", "pitems_p20261129",
		"pitems_p20261130", "pitems_p20261217", "pitems_p20261218", "pitems_p20261219"}
	if got := e.partitions("public.pitems"); !slices.Equal(got, want) {
		t.Fatalf("partitions after a round: %v, want %v", got, want)
	}
	body := httpGet(t, "http://"+r1.app.MetricsAddr()+"/metrics")
	if !strings.Contains(body, `sluice_partition_default_rows{table="public.pitems"} 0`) ||
		!strings.Contains(body, "# HELP sluice_partition_default_rows Rows") {
		t.Errorf("/metrics lacks the partition gauge or its help:\n%s", grepLines(body, "partition_default"))
	}
	// The expired records are counted by the instance that decoded them:
	// the rebalance between the two decides which.
	both := body + httpGet(t, "http://"+r2.app.MetricsAddr()+"/metrics")
	if !strings.Contains(both, `sluice_dead_letters_total{table="public.pitems",reason="expired"}`) {
		t.Errorf("neither instance's /metrics counts the expired dead letters:\n%s", grepLines(both, "expired"))
	}

	// Four days on, under ingestion: partitions ahead are made, the ones
	// behind the retention dropped, and rows for them are expired.
	clk.set(day0.AddDate(0, 0, 4))
	for _, r := range []*running{r1, r2} {
		if err := r.app.maintainPartitions(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	want = []string{"pitems_default", "pitems_p20261128", "pitems_p20261129", "pitems_p20261130", "pitems_p20261201", "pitems_p20261202", "pitems_p20261203",
		"pitems_p20261217", "pitems_p20261218", "pitems_p20261219"}
	if got := e.partitions("public.pitems"); !slices.Equal(got, want) {
		t.Fatalf("partitions four days on: %v, want %v", got, want)
	}
	e.produce(timedItem(2000, day0.AddDate(0, 0, 4)), timedItem(2001, day0.AddDate(0, 0, 1)), timedItem(2002, day0))
	e.waitDrained(int64(len(recs) + 3))
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE error LIKE '%expired%'`); n != 3 {
		t.Fatalf("%d expired dead letters, want 3 (a row for a dropped partition is expired)", n)
	}
	if n := e.count(`SELECT count(*) FROM public.pitems_p20261201 WHERE id = $1`, uuidFor(2000)); n != 1 {
		t.Errorf("a row of the new day is not in its partition")
	}
}

func grepLines(s, pattern string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, p := range strings.Split(pattern, "|") {
			if strings.Contains(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func TestPartitionConfig(t *testing.T) {
	f := func(table, want string) {
		t.Helper()
		_, err := Parse(configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", table), noEnv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	base := `
  - name: public.t
    topics: [events]
    key: %s
    partition: %s
    columns:
      - {name: id, type: int8, path: id}
      - {name: ts, type: timestamptz, path: ts}
`
	f(fmt.Sprintf(base, "[id]", "{column: ts}"), "requires the partition column in every unique key")
	f(fmt.Sprintf(base, "[id]", "{column: ts}"), "key: [id, ts]")
	f(fmt.Sprintf(base, "[id, ts]", "{column: nope}"), "tables[0].partition.column")
	f(fmt.Sprintf(base, "[id, ts]", "{column: ts, interval: year}"), "use hour, day, week or month")
	f(fmt.Sprintf(base, "[id, ts]", "{column: ts, retention: 3x}"), "write it like 30d")
	f(fmt.Sprintf(base, "[id, ts]", "{column: ts, interval: week, retention: 3d}"), "shorter than one week")
	f(fmt.Sprintf(base, "[id, ts]", "{column: ts, retention_action: archive}"), "use drop")
	f(fmt.Sprintf(base, "[id, ts]", "{column: ts, premaek: 3}"), "unknown key")
	// By the hour the names of partitions past year 9999 are longer.
	long := func(n int, partition string) string {
		return strings.Replace(fmt.Sprintf(base, "[id, ts]", partition), "public.t", "public."+strings.Repeat("t", n), 1)
	}
	f(long(50, "{column: ts, interval: hour}"), "use a table name of at most 49 bytes")
	f(long(52, "{column: ts}"), "use a table name of at most 51 bytes")
	if _, err := Parse(configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", long(51, "{column: ts}")), noEnv); err != nil {
		t.Errorf("a 51-byte name partitioned by day: %v", err)
	}
	c, err := Parse(configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", fmt.Sprintf(base, "[id, ts]", "{column: ts, retention: 30d}")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	p := c.Tables[0].Partition.pg()
	if p.Interval.String() != "day" || p.Premake != 3 || p.Retention != 30*24*time.Hour || p.Detach {
		t.Errorf("defaults: %+v", p)
	}
}

func TestMigrateCheck(t *testing.T) {
	e := newEnv(t, 1)
	path := t.TempDir() + "/sluice.yaml"
	if err := os.WriteFile(path, configYAML(e.broker.Addrs(), e.url, "", "", partitionedYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if err := MigrateMain(e.ctx, []string{"--config", path, "--check"}, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"migrate would (nothing was changed):", "create schema sluice", "create table sluice.offsets",
		`create table "public"."pitems" ("id" uuid, "ts" timestamptz, "v" text, PRIMARY KEY ("id", "ts")) PARTITION BY RANGE ("ts")`,
		"create partition public.pitems_default DEFAULT", "create partition public.pitems_p" + time.Now().UTC().Format("20060102")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--check output lacks %q:\n%s", want, out.String())
		}
	}
	if n := e.count(`SELECT count(*) FROM pg_namespace WHERE nspname = 'sluice'`) + e.count(`SELECT count(*) FROM pg_class WHERE relname LIKE 'pitems%'`); n != 0 {
		t.Fatal("migrate --check changed the database")
	}
	out.Reset()
	if err := MigrateMain(e.ctx, []string{"--config", path}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := e.partitions("public.pitems"); len(got) != 4 {
		t.Errorf("migrate made partitions %v, want the default and three", got)
	}
	out.Reset()
	if err := MigrateMain(e.ctx, []string{"--config", path, "--check"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "nothing to create or change") {
		t.Errorf("--check after migrate: %v\n%s", err, out.String())
	}
	// A row older than the retention in the default partition: --check
	// says the round deletes it, and migrate says it did.
	if _, err := e.db.Exec(e.ctx, `INSERT INTO public.pitems VALUES ($1, now() - interval '10 days', 'old')`, uuidFor(1)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := MigrateMain(e.ctx, []string{"--config", path, "--check"}, &out, &errOut); err != nil ||
		!strings.Contains(out.String(), "  delete 1 row of public.pitems_default older than the retention (before ") {
		t.Errorf("--check with an expired row in the default partition: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := MigrateMain(e.ctx, []string{"--config", path}, &out, &errOut); err != nil ||
		!strings.Contains(out.String(), "  deleted 1 row(s) of public.pitems_default older than the retention") {
		t.Errorf("migrate with an expired row in the default partition: %v\n%s", err, out.String())
	}
	// A table migrate would refuse: the error names it, and the fix.
	e.db.Exec(e.ctx, `CREATE TABLE public.items (id uuid, n int8, v text, src_offset int8)`)
	bad := strings.Replace(fmt.Sprintf(tableYAML, "ignore"), "topics: [events]", "topics: [events2]\n    create: false", 1)
	if err := os.WriteFile(path, configYAML(e.broker.Addrs(), e.url, "", "", partitionedYAML+bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := MigrateMain(e.ctx, []string{"--config", path, "--check"}, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "migrate would fail:") || !strings.Contains(out.String(), "ADD PRIMARY KEY") {
		t.Errorf("--check of a table without a unique key: %v\n%s", err, out.String())
	}
}

// TestRetentionRacesBatch: a record decoded while its day was still kept,
// and committed after the maintenance round that moved the retention
// floor past it and dropped its partition, lands in the default partition
// (no round makes a partition before the floor); the next round deletes
// it, as retention deleted the rest of its day, and counts it. With
// retention_action detach the row stays in the default partition, counted
// there, and the detached day keeps the rest. The batch is held at its
// offsets compare-and-set (before it touches the target) by a lock on
// sluice.offsets while the round runs, as a slow commit would be.
func TestRetentionRacesBatch(t *testing.T) {
	for _, action := range []string{"drop", "detach"} {
		t.Run(action, func(t *testing.T) { retentionRacesBatch(t, action) })
	}
}

func retentionRacesBatch(t *testing.T, action string) {
	e := newEnv(t, 1)
	cfg := e.config(`
  - name: public.ev
    topics: [events]
    partition: {column: ts, interval: day, premake: 2, retention: 1d, retention_action: ` + action + `}
    columns:
      - {name: id, type: int8, path: id}
      - {name: ts, type: timestamptz, path: ts}
`)
	var clk clock
	day0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clk.set(day0)
	r := e.start(cfg, clk.prep())
	if got := e.partitions("public.ev"); !slices.Contains(got, "ev_p20261126") {
		t.Fatalf("partitions at start: %v", got)
	}
	e.produce(&kgo.Record{Value: []byte(`{"id":0,"ts":"2026-11-26T11:00:00Z"}`)})
	e.waitDrained(1)

	lock, err := pgx.Connect(e.ctx, e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(e.ctx)
	tx, err := lock.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, `LOCK TABLE sluice.offsets IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// 2026-11-26 12:00 is within the retention on 2026-11-26.
	e.produce(&kgo.Record{Value: []byte(`{"id":1,"ts":"2026-11-26T12:00:00Z"}`)})
	e.waitFor("the batch to wait at its compare-and-set", func() bool {
		return e.count(`SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'sluice.offsets'::regclass`) > 0
	})
	// Two days on: the floor is 2026-11-27, and the round drops (or
	// detaches) 11-26.
	clk.set(day0.AddDate(0, 0, 2))
	if err := r.app.maintainPartitions(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.partitions("public.ev"); slices.Contains(got, "ev_p20261126") {
		t.Fatalf("the round did not expire ev_p20261126: %v", got)
	}
	if err := tx.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitDrained(2)
	if err := r.app.maintainPartitions(e.ctx); err != nil {
		t.Fatal(err)
	}
	body := httpGet(t, "http://"+r.app.MetricsAddr()+"/metrics")
	if action == "detach" {
		if n := e.count(`SELECT count(*) FROM public.ev_default WHERE id = 1`); n != 1 {
			t.Errorf("the late row is not in the default partition under detach (%d rows)", n)
		}
		if n := e.count(`SELECT count(*) FROM public.ev_p20261126 WHERE id = 0`); n != 1 {
			t.Errorf("the detached day lost its row (%d rows)", n)
		}
		if !strings.Contains(body, `sluice_partition_default_rows{table="public.ev"} 1`) {
			t.Errorf("sluice_partition_default_rows does not count the late row:\n%s", grepLines(body, "partition_"))
		}
		return
	}
	if back := e.count(`SELECT count(*) FROM public.ev WHERE ts < '2026-11-27T00:00:00Z'`); back != 0 {
		t.Errorf("a row of the dropped day 2026-11-26 is back in public.ev (%d rows, in %v) after the round that followed its commit", back, e.partitions("public.ev"))
	}
	if !strings.Contains(body, `sluice_partition_expired_rows_total{table="public.ev"} 1`) {
		t.Errorf("sluice_partition_expired_rows_total does not count the row:\n%s", grepLines(body, "partition_"))
	}
}

// TestRoutedPartitionedTable: a table a {topic} template makes while
// running gets its partitions before its first batch, as a configured
// table gets them before the instance consumes: its rows do not wait in
// the default partition for the next round.
func TestRoutedPartitionedTable(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(`
  - name: public.p_{topic}
    topics: [events]
    key: [id, ts]
    partition: {column: ts, interval: day, premake: 1, retention: 3d}
    columns:
      - {name: id, type: uuid, path: id, required: true}
      - {name: ts, type: timestamptz, path: ts}
      - {name: v, type: text, path: v}
`)
	var clk clock
	day0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk.set(day0)
	r := e.start(cfg, clk.prep())
	e.produce(timedItem(1, day0), timedItem(2, day0.AddDate(0, 0, -1)))
	e.waitDrained(2)
	var got []string
	rows, err := e.db.Query(e.ctx, `SELECT tableoid::regclass::text FROM public.p_events ORDER BY ts DESC`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		got = append(got, s)
	}
	rows.Close()
	// The row of the day before is a backlog, before the oldest
	// partition: it waits in the default partition for the next round.
	if want := []string{"p_events_p20261127", "p_events_default"}; !slices.Equal(got, want) {
		t.Errorf("rows in %v, want %v (partitions %v)", got, want, e.partitions("public.p_events"))
	}
	if err := r.app.maintainPartitions(e.ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM public.p_events_p20261126`); n != 1 {
		t.Errorf("the next round moved %d rows into p_events_p20261126, want 1", n)
	}
}

// TestMaintenanceOneTableFails: a table that cannot be maintained (here
// no longer partitioned) does not stop the rounds of the others: their
// partitions are still made ahead and expired.
func TestMaintenanceOneTableFails(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(strings.ReplaceAll(partitionedYAML, "pitems", "pa") + strings.ReplaceAll(strings.ReplaceAll(partitionedYAML, "pitems", "pb"), "[events]", "[events2]"))
	var clk clock
	day0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk.set(day0)
	r := e.start(cfg, clk.prep())
	if _, err := e.db.Exec(e.ctx, `ALTER TABLE public.pa RENAME TO pa_old; CREATE TABLE public.pa (LIKE public.pa_old)`); err != nil {
		t.Fatal(err)
	}
	clk.set(day0.AddDate(0, 0, 5))
	err := r.app.maintainPartitions(e.ctx)
	if err == nil || !strings.Contains(err.Error(), "public.pa") {
		t.Errorf("the round's error %v does not name public.pa", err)
	}
	want := []string{"pb_default", "pb_p20261129", "pb_p20261202", "pb_p20261203", "pb_p20261204"} // 11-27 and 11-28 expired
	if got := e.partitions("public.pb"); !slices.Equal(got, want) {
		t.Errorf("partitions of public.pb after the round: %v, want %v", got, want)
	}
}

// TestMigrateTemplateTable: a {topic} template is no table: migrate and
// migrate --check leave it to the instance that routes its first topic,
// instead of creating a table (and partitions) literally named
// p_{topic}.
func TestMigrateTemplateTable(t *testing.T) {
	e := newEnv(t, 1)
	path := t.TempDir() + "/sluice.yaml"
	y := strings.ReplaceAll(partitionedYAML, "public.pitems", "public.p_{topic}")
	if err := os.WriteFile(path, configYAML(e.broker.Addrs(), e.url, "", "", y), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if err := MigrateMain(e.ctx, []string{"--config", path, "--check"}, &out, &errOut); err != nil || strings.Contains(out.String(), "{topic}_") ||
		!strings.Contains(out.String(), "public.p_{topic}: made for each topic the template names, when an instance first routes it") {
		t.Errorf("--check: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := MigrateMain(e.ctx, []string{"--config", path}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM pg_class WHERE relname LIKE '%{topic}%'`); n != 0 {
		t.Errorf("migrate made %d relations named like the template:\n%s", n, out.String())
	}
}

// TestPartitionNameTakenReported: a partition whose name, and every
// alternative name, other relations hold is not made; the appliance says
// so once per name (an ERROR with the fix), however many rounds meet it,
// and sluice_partition_names_taken counts it until the name is freed.
func TestPartitionNameTakenReported(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(partitionedYAML)
	var clk clock
	day0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clk.set(day0)
	var logs syncBuffer
	r := e.start(cfg, clk.prep(), func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	sql := "CREATE TABLE public.pitems_p20261201 (x int)"
	for i := 1; i <= 9; i++ {
		sql += fmt.Sprintf("; CREATE TABLE public.pitems_p20261201_%d (x int)", i)
	}
	if _, err := e.db.Exec(e.ctx, sql); err != nil {
		t.Fatal(err)
	}
	gauge := func() string {
		return grepLines(httpGet(t, "http://"+r.app.MetricsAddr()+"/metrics"), `sluice_partition_names_taken{table="public.pitems"}`)
	}
	clk.set(day0.AddDate(0, 0, 3)) // 11-30: premake 2 wants 12-01 and 12-02
	for range 2 {
		r.app.maintainPartitions(e.ctx) // its error, if any, is the round's; the report is checked below
	}
	if got := e.partitions("public.pitems"); slices.Contains(got, "pitems_p20261201") || !slices.Contains(got, "pitems_p20261202") {
		t.Errorf("partitions after the rounds: %v, want 12-02's and not 12-01's", got)
	}
	if g := gauge(); !strings.Contains(g, "} 1") {
		t.Errorf("sluice_partition_names_taken after two rounds: %q, want 1", g)
	}
	if n := len(logLines(logs.String(), "level=ERROR", "PARTITION NOT MADE", "partition=pitems_p20261201")); n != 1 {
		t.Errorf("%d ERROR lines name the partition after two rounds, want 1:\n%s", n, logs.String())
	}
	// The name freed: the next round makes it and the gauge goes back to 0.
	if _, err := e.db.Exec(e.ctx, "DROP TABLE public.pitems_p20261201"); err != nil {
		t.Fatal(err)
	}
	r.app.maintainPartitions(e.ctx)
	if got := e.partitions("public.pitems"); !slices.Contains(got, "pitems_p20261201") {
		t.Errorf("partitions once the name is free: %v, want 12-01's", got)
	}
	if g := gauge(); !strings.Contains(g, "} 0") {
		t.Errorf("sluice_partition_names_taken once the name is free: %q, want 0", g)
	}
}
