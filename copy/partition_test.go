package pgcopy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// fTs encodes t as a binary timestamptz field.
func fTs(t time.Time) []byte {
	return fInt8(t.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds())
}

func partitionedTable(iv Interval, retention time.Duration) *Table {
	return &Table{
		Name:       "public.pevents",
		Columns:    []Column{{Name: "id", SQLType: "int8"}, {Name: "ts", SQLType: "timestamptz"}, {Name: "v", SQLType: "text"}},
		Key:        []string{"id", "ts"},
		OnConflict: PolicyIgnore,
		Create:     true,
		Partition:  &Partitioning{Column: "ts", Interval: iv, Premake: 2, Retention: retention},
	}
}

// partitionNames lists the partitions of public.pevents.
func partitionNames(t *testing.T, url string) []string {
	t.Helper()
	c := connect(t, url)
	var out []string
	for _, r := range queryRows(t, c, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'public.pevents'::regclass ORDER BY 1`) {
		out = append(out, r[0])
	}
	return out
}

func TestIntervalFloor(t *testing.T) {
	at := day("2026-11-27T13:45:10Z") // a Friday
	for _, c := range []struct {
		iv         Interval
		floor, nxt string
	}{
		{IntervalHour, "2026-11-27T13:00:00Z", "2026-11-27T14:00:00Z"},
		{IntervalDay, "2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z"},
		{IntervalWeek, "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"},
		{IntervalMonth, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
	} {
		f := c.iv.Floor(at.In(time.FixedZone("x", -5*3600)))
		if !f.Equal(day(c.floor)) || !c.iv.Next(f).Equal(day(c.nxt)) {
			t.Errorf("%v: floor %v next %v, want %s and %s", c.iv, f, c.iv.Next(f), c.floor, c.nxt)
		}
	}
	tb := partitionedTable(IntervalHour, 0)
	if n := tb.PartitionName(day("2026-11-27T13:00:00Z")); n != "pevents_p2026112713" {
		t.Errorf("hourly partition name %s", n)
	}
	tb.Partition.Interval = IntervalWeek
	if n := tb.PartitionName(day("2026-11-23T00:00:00Z")); n != "pevents_p20261123" {
		t.Errorf("weekly partition name %s", n)
	}
}

func TestPartitionValidation(t *testing.T) {
	f := func(mod func(*Table), want string) {
		t.Helper()
		tb := partitionedTable(IntervalDay, 0)
		mod(tb)
		err := tb.validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	f(func(tb *Table) { tb.Key = []string{"id"} }, "add ts to key")
	f(func(tb *Table) { tb.Partition.Column = "nope" }, "not among the configured columns")
	f(func(tb *Table) { tb.Partition.Column = "v" }, "use a timestamptz, timestamp or date column")
	f(func(tb *Table) { tb.Name = "public." + strings.Repeat("x", 52) }, "at most 51 bytes")
	// Years past 9999 have more digits: by the hour the names reach
	// _pyyyyyymmddhh (year 294276), on a date column _pyyyyyyymmdd.
	f(func(tb *Table) { tb.Name = "public." + strings.Repeat("x", 50); tb.Partition.Interval = IntervalHour }, "at most 49 bytes")
	f(func(tb *Table) { tb.Name = "public." + strings.Repeat("x", 51); tb.Columns[1].SQLType = "date" }, "at most 50 bytes")
	for _, c := range []struct {
		iv   Interval
		typ  string
		last time.Time
	}{
		{IntervalHour, "timestamptz", time.Date(294276, 12, 31, 23, 0, 0, 0, time.UTC)},
		{IntervalDay, "timestamp", time.Date(294276, 12, 31, 0, 0, 0, 0, time.UTC)},
		{IntervalMonth, "date", time.Date(5874897, 12, 1, 0, 0, 0, 0, time.UTC)},
		{IntervalHour, "timestamptz", time.Date(-4712, 11, 24, 0, 0, 0, 0, time.UTC)},
	} {
		tb := partitionedTable(c.iv, 0)
		tb.Columns[1].SQLType = c.typ
		tb.Name = "public." + strings.Repeat("x", 63-PartitionSuffixLen(c.iv, c.typ))
		if err := tb.validate(); err != nil {
			t.Errorf("%v on %s: %v", c.iv, c.typ, err)
		}
		if n := tb.PartitionName(c.last); len(n) > 63 {
			t.Errorf("%v on %s: partition name %s is %d bytes", c.iv, c.typ, n, len(n))
		}
	}
	f(func(tb *Table) { tb.Columns[1].SQLType = "date"; tb.Partition.Interval = IntervalHour }, "use interval day")
}

func TestPartitionMaintenance(t *testing.T) {
	t.Parallel()
	tb := partitionedTable(IntervalDay, 72*time.Hour)
	url, c, claims := setup(t, 1, tb)
	if k := queryRows(t, c, "SELECT relkind FROM pg_class WHERE oid = 'public.pevents'::regclass"); k[0][0] != "p" {
		t.Fatalf("relkind %v, want a partitioned table", k)
	}
	if got := partitionNames(t, url); !slices.Equal(got, []string{"pevents_default"}) {
		t.Fatalf("after Migrate: partitions %v, want only the default", got)
	}
	now := day("2026-11-27T10:00:00Z")
	m, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second)
	if err != nil || len(m.Failed) > 0 {
		t.Fatalf("maintain: %v %v", err, m.Failed)
	}
	want := []string{"pevents_default", "pevents_p20261127", "pevents_p20261128", "pevents_p20261129"}
	if got := partitionNames(t, url); !slices.Equal(got, want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}

	// Rows through the Writer: one in a partition, one before the oldest
	// partition (but within the retention), one after the newest, one
	// older than the retention. The last three land in the default.
	w := newWriter(t, url)
	b := newBuilder(tb, "t", 0)
	b.add(0, fInt8(1), fTs(day("2026-11-27T11:00:00Z")), fText("now"))
	b.add(1, fInt8(2), fTs(day("2026-11-25T08:00:00Z")), fText("before"))
	b.add(2, fInt8(3), fTs(day("2026-12-24T08:00:00Z")), fText("after"))
	b.add(3, fInt8(4), fTs(day("2026-11-01T08:00:00Z")), fText("expired"))
	if _, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 4)); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM public.pevents_default"); n != 3 {
		t.Fatalf("default partition holds %d rows, want 3", n)
	}
	m, err = MaintainPartitions(testCtx(t), c, tb, now, time.Second)
	if err != nil || len(m.Failed) > 0 {
		t.Fatalf("maintain: %v %v", err, m.Failed)
	}
	// The rows' partitions are made and the rows moved; premake runs
	// ahead of the newest row too. The expired row is deleted, as its
	// interval's partition would have been.
	if m.Moved != 2 || m.Expired != 1 || m.DefaultRows != 0 {
		t.Errorf("moved %d rows, expired %d, %d left in the default; want 2, 1 and 0", m.Moved, m.Expired, m.DefaultRows)
	}
	want = []string{"pevents_default", "pevents_p20261125", "pevents_p20261127", "pevents_p20261128", "pevents_p20261129",
		"pevents_p20261224", "pevents_p20261225", "pevents_p20261226"}
	if got := partitionNames(t, url); !slices.Equal(got, want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}
	if r := queryRows(t, c, "SELECT tableoid::regclass::text, v FROM public.pevents ORDER BY id"); len(r) != 3 ||
		r[1][0] != "pevents_p20261125" || r[2][0] != "pevents_p20261224" {
		t.Errorf("rows by partition: %v", r)
	}
	// A batch of the same keys again: ON CONFLICT works across partitions.
	b2 := newBuilder(tb, "t", 0)
	b2.add(4, fInt8(2), fTs(day("2026-11-25T08:00:00Z")), fText("again"))
	b2.add(5, fInt8(5), fTs(day("2026-11-28T08:00:00Z")), fText("new"))
	res, err := w.Write(testCtx(t), b2.batch(claims[0].Epoch, 4, 6))
	if err != nil {
		t.Fatal(err)
	}
	if res.Affected != 1 {
		t.Errorf("second batch affected %d rows, want 1 (one key exists)", res.Affected)
	}

	// A week later: every partition ending before 2026-12-01 (the
	// retention floor of 2026-12-04T10:00) goes.
	m, err = MaintainPartitions(testCtx(t), c, tb, now.AddDate(0, 0, 7), time.Second)
	if err != nil || len(m.Failed) > 0 {
		t.Fatalf("maintain: %v %v", err, m.Failed)
	}
	if want := []string{"pevents_p20261125", "pevents_p20261127", "pevents_p20261128", "pevents_p20261129"}; !slices.Equal(m.Dropped, want) {
		t.Errorf("dropped %v, want %v", m.Dropped, want)
	}
	want = []string{"pevents_default", "pevents_p20261204", "pevents_p20261205", "pevents_p20261206",
		"pevents_p20261224", "pevents_p20261225", "pevents_p20261226"}
	if got := partitionNames(t, url); !slices.Equal(got, want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM pg_class WHERE relname = 'pevents_p20261125'"); n != 0 {
		t.Error("a dropped partition's table still exists")
	}

	// Detach keeps the table.
	tb.Partition.Detach = true
	m, err = MaintainPartitions(testCtx(t), c, tb, day("2026-12-30T00:00:00Z"), time.Second)
	if err != nil || len(m.Failed) > 0 {
		t.Fatalf("maintain: %v %v", err, m.Failed)
	}
	if len(m.Detached) != 6 || len(m.Dropped) != 0 {
		t.Errorf("detached %v, dropped %v", m.Detached, m.Dropped)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM public.pevents_p20261224"); n != 1 {
		t.Errorf("detached partition holds %d rows, want 1", n)
	}
}

func TestPartitionMaintenanceLocks(t *testing.T) {
	t.Parallel()
	tb := partitionedTable(IntervalHour, 0)
	url, c, _ := setup(t, 1, tb)
	now := day("2026-11-27T10:30:00Z")

	// Another session maintains the table: this one skips the round.
	other := connect(t, url)
	mustExec(t, other, fmt.Sprintf(`BEGIN; SELECT pg_advisory_xact_lock(%d, hashtext('"public"."pevents"'))`, partitionLockClass))
	m, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second)
	if err != nil || !m.Skipped || len(m.Created) > 0 {
		t.Fatalf("with the lock held elsewhere: %+v, %v; want a skipped round", m, err)
	}
	mustExec(t, other, "ROLLBACK")

	// A session holding the default partition: the step gives up after
	// the lock_timeout instead of queueing in front of ingestion.
	mustExec(t, other, "BEGIN; LOCK TABLE public.pevents_default IN ROW EXCLUSIVE MODE")
	start := time.Now()
	m, err = MaintainPartitions(testCtx(t), c, tb, now, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Failed) != 3 || !IsLockTimeout(m.Failed[0]) || time.Since(start) > 10*time.Second {
		t.Fatalf("with the default partition locked: %+v after %v; want three lock timeouts", m, time.Since(start))
	}
	mustExec(t, other, "ROLLBACK")

	// Two instances at once, rounds in step as their minute ticks would
	// be: no error, and every round's partitions are made by one of them.
	conns := [2]*pgconn.PgConn{connect(t, url), connect(t, url)}
	skipped := 0
	for i := range 10 {
		var wg sync.WaitGroup
		var ms [2]Maintenance
		var errs [2]error
		for j := range 2 {
			wg.Go(func() {
				ms[j], errs[j] = MaintainPartitions(testCtx(t), conns[j], tb, now.Add(time.Duration(i)*time.Hour), time.Second)
				if errs[j] == nil && len(ms[j].Failed) > 0 {
					errs[j] = ms[j].Failed[0]
				}
			})
		}
		wg.Wait()
		for j := range 2 {
			if errs[j] != nil {
				t.Fatalf("round %d, instance %d: %v", i, j, errs[j])
			}
			if ms[j].Skipped {
				skipped++
			}
		}
		if ms[0].Skipped && ms[1].Skipped {
			t.Fatalf("round %d: both instances skipped", i)
		}
	}
	t.Logf("%d of 20 rounds skipped: the other instance held the lock", skipped)
	// Hours 10 to 10+9+2, and the default.
	got := partitionNames(t, url)
	if len(got) != 13 || got[1] != "pevents_p2026112710" || got[12] != "pevents_p2026112721" {
		t.Fatalf("partitions after two instances: %v", got)
	}
}

// A partitioned table made by someone else (pg_partman, by hand) is written
// into as it is, with no maintenance when partition: is not configured.
func TestForeignPartitionedTable(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	mustExec(t, c, `CREATE TABLE public.pevents (id int8, ts timestamptz, v text, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts);
CREATE TABLE public.pevents_2026 PARTITION OF public.pevents FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`)
	tb := partitionedTable(IntervalDay, 0)
	tb.Partition = nil
	tb.Create = false
	_, c, claims := setupIn(t, url, 1, tb)
	w := newWriter(t, url)
	b := newBuilder(tb, "t", 0)
	b.add(0, fInt8(1), fTs(day("2026-11-27T11:00:00Z")), fText("a"))
	b.add(1, fInt8(1), fTs(day("2026-11-27T11:00:00Z")), fText("dup"))
	if _, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 2)); err != nil {
		t.Fatal(err)
	}
	if r := queryRows(t, c, "SELECT tableoid::regclass::text, v FROM public.pevents"); len(r) != 1 || r[0][0] != "pevents_2026" || r[0][1] != "a" {
		t.Errorf("rows: %v", r)
	}
	if got := partitionNames(t, url); !slices.Equal(got, []string{"pevents_2026"}) {
		t.Errorf("partitions %v: Sluice changed a table it does not maintain", got)
	}
	// partition: on a table that is not partitioned names the fix.
	mustExec(t, c, "CREATE TABLE public.plain (id int8, ts timestamptz, v text, PRIMARY KEY (id, ts))")
	pt := partitionedTable(IntervalDay, 0)
	pt.Name, pt.Create = "public.plain", false
	err := Migrate(testCtx(t), c, "sluice", []*Table{pt})
	if err == nil || !strings.Contains(err.Error(), "not a partitioned table") {
		t.Errorf("Migrate of partition: on a plain table: %v", err)
	}
}

// setupIn is setup in the existing database url.
func setupIn(t testing.TB, url string, n int32, tables ...*Table) (string, *pgconn.PgConn, []Claim) {
	t.Helper()
	c := connect(t, url)
	if err := Migrate(testCtx(t), c, "sluice", tables); err != nil {
		t.Fatal(err)
	}
	var parts []int32
	for i := range n {
		parts = append(parts, i)
	}
	claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": parts})
	if err != nil {
		t.Fatal(err)
	}
	return url, c, claims
}

// TestPartitionedOtherwise: partition: on an existing table partitioned
// otherwise (by list, by hash, by range on another column or on two
// columns) is refused by Migrate and CheckMigration with the fix, and
// neither adds a default partition to it: a default partition on a list
// or range table would take rows PostgreSQL refused before, and a hash
// table cannot have one.
func TestPartitionedOtherwise(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	for _, c2 := range []struct{ name, ddl string }{
		{"bylist", `CREATE TABLE public.bylist (id int8, ts timestamptz, v text, PRIMARY KEY (id, ts, v)) PARTITION BY LIST (v);
CREATE TABLE public.bylist_a PARTITION OF public.bylist FOR VALUES IN ('a')`},
		{"byhash", `CREATE TABLE public.byhash (id int8, ts timestamptz, v text, PRIMARY KEY (id, ts)) PARTITION BY HASH (id);
CREATE TABLE public.byhash_0 PARTITION OF public.byhash FOR VALUES WITH (MODULUS 1, REMAINDER 0)`},
		{"byid", `CREATE TABLE public.byid (id int8, ts timestamptz, v text, PRIMARY KEY (id, ts)) PARTITION BY RANGE (id);
CREATE TABLE public.byid_0 PARTITION OF public.byid FOR VALUES FROM (0) TO (100)`},
		{"bytwo", `CREATE TABLE public.bytwo (id int8, ts timestamptz, v text, PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts, id);
CREATE TABLE public.bytwo_0 PARTITION OF public.bytwo FOR VALUES FROM ('2026-01-01', 0) TO ('2027-01-01', 0)`},
	} {
		mustExec(t, c, c2.ddl)
		tb := partitionedTable(IntervalDay, 0)
		tb.Name, tb.Create = "public."+c2.name, false
		if c2.name == "bylist" {
			tb.Key = []string{"id", "ts", "v"}
		}
		plan, err := CheckMigration(testCtx(t), c, "sluice", []*Table{tb}, day("2026-11-27T10:00:00Z"))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(plan.Problems, "\n"); !strings.Contains(got, "not partitioned BY RANGE (ts) alone") {
			t.Errorf("%s: CheckMigration problems %q, want one naming how it is partitioned", c2.name, got)
		}
		if got := strings.Join(plan.Changes, "\n"); strings.Contains(got, "DEFAULT") {
			t.Errorf("%s: CheckMigration would change %q", c2.name, got)
		}
		err = Migrate(testCtx(t), c, "sluice", []*Table{tb})
		if err == nil || !strings.Contains(err.Error(), "not partitioned BY RANGE (ts) alone") {
			t.Errorf("%s: Migrate: %v, want an error naming how it is partitioned", c2.name, err)
		}
		if n := queryInt(t, c, "SELECT count(*) FROM pg_class WHERE relname = '"+c2.name+"_default'"); n != 0 {
			t.Errorf("%s: Migrate gave the table a default partition", c2.name)
		}
	}
}

// TestPartitionFarTimes: rows far in the past (before year 1, as
// 0001-01-01T00:30+01:00 is) and far in the future (past year 9999) get
// partitions like any other. A round that cannot make one fails that
// step in every round for good, the rows stay in the default partition,
// and `sluice migrate`, which runs a round, fails with it.
func TestPartitionFarTimes(t *testing.T) {
	t.Parallel()
	times := []time.Time{
		time.Date(0, 12, 31, 23, 30, 0, 0, time.UTC), // 1 BC
		time.Date(-100, 3, 1, 5, 0, 0, 0, time.UTC),  // 101 BC
		time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(54000, 2, 29, 10, 0, 0, 0, time.UTC), // a time in nanoseconds read as microseconds
	}
	url := newDB(t)
	for _, typ := range []string{"timestamptz", "timestamp", "date"} {
		tb := partitionedTable(IntervalDay, 0)
		tb.Name = "public.far" + typ
		tb.Columns[1].SQLType = typ
		c := connect(t, url)
		if err := Migrate(testCtx(t), c, "sluice", []*Table{tb}); err != nil {
			t.Fatal(err)
		}
		claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{typ: {0}})
		if err != nil {
			t.Fatal(err)
		}
		w := newWriter(t, url)
		b := newBuilder(tb, typ, 0)
		for i, tm := range times {
			const pgEpoch = 946684800 // 2000-01-01 in Unix seconds
			f := fInt8((tm.Unix() - pgEpoch) * 1_000_000)
			if typ == "date" {
				days := (tm.Unix() - pgEpoch) / 86400
				if tm.Unix() < pgEpoch && tm.Hour() > 0 {
					days-- // the day holding tm: rounded down, not towards 2000
				}
				f = binary.BigEndian.AppendUint32(nil, uint32(int32(days)))
			}
			b.add(int64(i), fInt8(int64(i)), f, fText(tm.String()))
		}
		if _, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, int64(len(times)))); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		now := day("2026-11-27T10:00:00Z")
		m, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second)
		if err != nil || len(m.Failed) > 0 || m.DefaultRows != 0 {
			t.Errorf("%s: maintenance: %v, failed %v, %d rows left in the default partition", typ, err, m.Failed, m.DefaultRows)
			continue
		}
		// The next round finds them made.
		if m, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second); err != nil || len(m.Failed) > 0 || len(m.Created) > 0 {
			t.Errorf("%s: second round: %v, failed %v, created %v", typ, err, m.Failed, m.Created)
		}
	}
}

// TestPartitionDefaultManyExpiredHours: rows older than the retention that
// stay in the default partition (retention_action detach) do not keep the
// rounds from making partitions for the newer rows there, however many
// hours they span.
func TestPartitionDefaultManyExpiredHours(t *testing.T) {
	t.Parallel()
	tb := partitionedTable(IntervalDay, 72*time.Hour)
	tb.Partition.Detach = true
	_, c, _ := setup(t, 1, tb)
	// 10,001 hours of 2025, all expired, and a row of a kept day.
	mustExec(t, c, `INSERT INTO public.pevents SELECT i, '2025-01-01T00:00:00Z'::timestamptz + i * interval '1 hour', 'old' FROM generate_series(0, 10000) i;
INSERT INTO public.pevents VALUES (-1, '2026-11-25T08:00:00Z', 'kept')`)
	m, err := MaintainPartitions(testCtx(t), c, tb, day("2026-11-27T10:00:00Z"), time.Second)
	if err != nil || len(m.Failed) > 0 {
		t.Fatal(err, m.Failed)
	}
	if m.Moved != 1 || m.DefaultRows != 10001 {
		t.Errorf("moved %d rows, left %d in the default partition; want 1 and 10001", m.Moved, m.DefaultRows)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM public.pevents_p20261125"); n != 1 {
		t.Errorf("the kept day's partition holds %d rows, want 1 (partitions %v)", n, m.Created)
	}
}

// TestPartitionNameTaken: a partition whose name a relation that is no
// partition of the table has (a partition detached by hand, a table of its
// own) is made under the first free name_N, and its rows go there, not to
// the default partition; with every alternative taken too the round
// reports a *PartitionNameTakenError naming the fix, and CheckMigration
// lists it as a problem.
func TestPartitionNameTaken(t *testing.T) {
	t.Parallel()
	tb := partitionedTable(IntervalDay, 0)
	url, c, _ := setup(t, 1, tb)
	mustExec(t, c, `CREATE TABLE public.pevents_p20261128 (x int)`)
	now := day("2026-11-27T10:00:00Z")
	m, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second)
	if err != nil || len(m.Failed) > 0 {
		t.Fatalf("maintain: %v %v", err, m.Failed)
	}
	want := []string{"pevents_default", "pevents_p20261127", "pevents_p20261128_1", "pevents_p20261129"}
	if got := partitionNames(t, url); !slices.Equal(got, want) {
		t.Fatalf("partitions %v, want %v", got, want)
	}
	if len(m.Renamed) != 1 || m.Renamed[0] != (PartitionRename{Taken: "pevents_p20261128", Name: "pevents_p20261128_1"}) {
		t.Errorf("renamed %v", m.Renamed)
	}
	mustExec(t, c, `INSERT INTO public.pevents VALUES (1, '2026-11-28T08:00:00Z', 'x')`)
	if r := queryRows(t, c, "SELECT tableoid::regclass::text FROM public.pevents"); r[0][0] != "pevents_p20261128_1" {
		t.Errorf("the row went to %s", r[0][0])
	}
	// Ahead of the newest row (premake): the 30th, under its own name.
	if m, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second); err != nil || len(m.Failed) > 0 || len(m.Renamed) > 0 ||
		!slices.Equal(m.Created, []string{"pevents_p20261130"}) {
		t.Errorf("second round: %v, failed %v, created %v, renamed %v", err, m.Failed, m.Created, m.Renamed)
	}

	// The next day's name and all its alternatives taken.
	mustExec(t, c, `CREATE TABLE public.pevents_p20261205 (x int)`)
	for i := 1; i <= 9; i++ {
		mustExec(t, c, fmt.Sprintf(`CREATE TABLE public.pevents_p20261205_%d (x int)`, i))
	}
	next := day("2026-12-04T10:00:00Z")
	plan, err := CheckMigration(testCtx(t), c, "sluice", []*Table{tb}, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Problems) != 1 || !strings.Contains(plan.Problems[0], "public.pevents_p20261205 is taken by a table") {
		t.Errorf("migrate --check problems: %q", plan.Problems)
	}
	m, err = MaintainPartitions(testCtx(t), c, tb, next, time.Second)
	var nt *PartitionNameTakenError
	if err != nil || len(m.Failed) != 1 || !errors.As(m.Failed[0], &nt) || nt.Name != "pevents_p20261205" {
		t.Fatalf("maintain: %v, failed %v; want a PartitionNameTakenError for pevents_p20261205", err, m.Failed)
	}
	for _, want := range []string{"rename or drop public.pevents_p20261205", "ATTACH PARTITION", "FROM ('2026-12-05T00:00:00Z') TO ('2026-12-06T00:00:00Z')"} {
		if !strings.Contains(nt.Error(), want) {
			t.Errorf("error %q lacks %q", nt.Error(), want)
		}
	}
	if !slices.Equal(m.Created, []string{"pevents_p20261204", "pevents_p20261206"}) {
		t.Errorf("created %v, want the other intervals all the same", m.Created)
	}
	// Fixed by dropping the table that had the name: the next round makes it.
	mustExec(t, c, `DROP TABLE public.pevents_p20261205`)
	if m, err := MaintainPartitions(testCtx(t), c, tb, next, time.Second); err != nil || len(m.Failed) > 0 || !slices.Equal(m.Created, []string{"pevents_p20261205"}) {
		t.Errorf("after the fix: %v, failed %v, created %v", err, m.Failed, m.Created)
	}
}

// TestPartitionPremakeZero: with premake 0 the next interval's partition
// is made PremakeLead before it starts, so no row of an interval's first
// minutes waits in the default partition for a round; earlier in the
// interval only the current partition is made.
func TestPartitionPremakeZero(t *testing.T) {
	t.Parallel()
	tb := partitionedTable(IntervalDay, 0)
	tb.Partition.Premake = 0
	url, c, _ := setup(t, 1, tb)
	if _, err := MaintainPartitions(testCtx(t), c, tb, day("2026-11-27T10:00:00Z"), time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := partitionNames(t, url), []string{"pevents_default", "pevents_p20261127"}; !slices.Equal(got, want) {
		t.Fatalf("at 10:00: partitions %v, want %v", got, want)
	}
	if _, err := MaintainPartitions(testCtx(t), c, tb, day("2026-11-27T23:56:00Z"), time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := partitionNames(t, url), []string{"pevents_default", "pevents_p20261127", "pevents_p20261128"}; !slices.Equal(got, want) {
		t.Fatalf("at 23:56: partitions %v, want %v", got, want)
	}
}
