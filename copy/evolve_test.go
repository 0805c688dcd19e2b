package pgcopy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAddColumns(t *testing.T) {
	t.Parallel()
	tb := eventsTable()
	url, c, _ := setup(t, 1, tb)
	mustExec(t, c, "ALTER TABLE public.events ADD COLUMN by_hand varchar(5)")
	add := []Column{{Name: "country", SQLType: "text"}, {Name: "score", SQLType: "float8"}, {Name: "by_hand", SQLType: "text"}, {Name: "val", SQLType: "int8"}}
	var wg sync.WaitGroup
	results := make([][]Column, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Go(func() {
			results[i], errs[i] = AddColumns(testCtx(t), connect(t, url), tb, add, time.Second)
		})
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		// Existing columns keep their type: val stays text, by_hand a
		// varchar(5) Sluice does not write.
		if got := fmt.Sprint(results[i]); got != "[{country text {0 0 0}} {score float8 {0 0 0}} {by_hand  {0 0 0}} {val text {0 0 0}}]" {
			t.Errorf("instance %d: %s", i, got)
		}
	}
	got, err := EvolvedColumns(testCtx(t), c, tb)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[{country text {0 0 0}} {score float8 {0 0 0}}]" {
		t.Errorf("evolved columns %v, want country and score only", got)
	}
	// A restart that knows country already finds score alone.
	tb2 := eventsTable()
	tb2.Columns = append(tb2.Columns, Column{Name: "country", SQLType: "text"})
	if got, err := EvolvedColumns(testCtx(t), c, tb2); err != nil || fmt.Sprint(got) != "[{score float8 {0 0 0}}]" {
		t.Errorf("evolved columns besides country: %v, %v", got, err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.events'::regclass AND attname = 'country' AND NOT attnotnull"); n != 1 {
		t.Error("country is not a nullable column")
	}
}

// TestAddColumnsReserved: a staging column's name is refused, and a column
// of such a name that an earlier version added (its comment says so) is
// not an evolved column: a target column named like a staging column
// fails every batch.
func TestAddColumnsReserved(t *testing.T) {
	t.Parallel()
	tb := eventsTable()
	url, c, _ := setup(t, 1, tb)
	for _, name := range []string{"sluice_seq", "sluice_op", "sluice_key_rank"} {
		if _, err := AddColumns(testCtx(t), connect(t, url), tb, []Column{{Name: name, SQLType: "text"}}, time.Second); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("adding column %s: %v, want it refused as reserved", name, err)
		}
	}
	if n := queryInt(t, c, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.events'::regclass AND attname LIKE 'sluice%'"); n != 0 {
		t.Fatalf("%d reserved columns added", n)
	}
	mustExec(t, c, "ALTER TABLE public.events ADD COLUMN sluice_op text, ADD COLUMN country text")
	mustExec(t, c, "COMMENT ON COLUMN public.events.sluice_op IS "+quoteLiteral(EvolvedComment))
	mustExec(t, c, "COMMENT ON COLUMN public.events.country IS "+quoteLiteral(EvolvedComment))
	if got, err := EvolvedColumns(testCtx(t), c, tb); err != nil || fmt.Sprint(got) != "[{country text {0 0 0}}]" {
		t.Errorf("evolved columns %v, %v; want country only", got, err)
	}
}

// TargetColumns tells a missing target from one without columns, leaves
// dropped columns out, and gives each column the type Sluice writes into
// it (a domain's base type; none for a type it does not write).
func TestTargetColumns(t *testing.T) {
	t.Parallel()
	tb := eventsTable()
	_, c, _ := setup(t, 1, tb)
	mustExec(t, c, "ALTER TABLE public.events ADD COLUMN gone text; ALTER TABLE public.events DROP COLUMN gone; CREATE TABLE public.bare ()")
	mustExec(t, c, "CREATE DOMAIN public.qty AS int4; ALTER TABLE public.events ADD COLUMN q public.qty, ADD COLUMN w varchar(5), ADD COLUMN iv interval")
	for _, tc := range []struct {
		name string
		want string
	}{{"events", fmt.Sprint(true, len(tb.Columns)+3, " [int4 text ]")}, {"public.bare", "true 0 [  ]"}, {"public.none", "false 0 [  ]"}} {
		cols, exists, err := TargetColumns(testCtx(t), c, &Table{Name: tc.name})
		_, gone := cols["gone"]
		if got := fmt.Sprint(exists, len(cols)+map[bool]int{true: 100}[gone], []string{cols["q"], cols["w"], cols["iv"]}); err != nil || got != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}

func TestCheckMigration(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	tb := partitionedTable(IntervalDay, 48*time.Hour)
	now := day("2026-11-27T10:00:00Z")
	plan, err := CheckMigration(testCtx(t), c, "sluice", []*Table{tb}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create schema sluice", "create table sluice.offsets", "create table sluice.dead_letters",
		`create table "public"."pevents" ("id" int8, "ts" timestamptz, "v" text, PRIMARY KEY ("id", "ts")) PARTITION BY RANGE ("ts")`,
		"create partition public.pevents_default DEFAULT",
		"create partition public.pevents_p20261127", "create partition public.pevents_p20261128", "create partition public.pevents_p20261129"}
	if strings.Join(plan.Changes, "\n") != strings.Join(want, "\n") || len(plan.Problems) > 0 {
		t.Fatalf("plan on an empty database:\n%s\nproblems %v\nwant:\n%s", strings.Join(plan.Changes, "\n"), plan.Problems, strings.Join(want, "\n"))
	}
	if n := queryInt(t, c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'sluice'") + queryInt(t, c, "SELECT count(*) FROM pg_class WHERE relname LIKE 'pevents%'"); n != 0 {
		t.Fatal("CheckMigration changed the database")
	}

	// After Migrate and a week: nothing to create but the partitions ahead,
	// the old ones to drop. A second table Migrate would refuse.
	if err := Migrate(testCtx(t), c, "sluice", []*Table{tb}); err != nil {
		t.Fatal(err)
	}
	if _, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second); err != nil {
		t.Fatal(err)
	}
	mustExec(t, c, "CREATE TABLE public.nokey (id int8, val text, off int8)")
	bad := eventsTable()
	bad.Name, bad.Create = "public.nokey", false
	plan, err = CheckMigration(testCtx(t), c, "sluice", []*Table{tb, bad}, now.AddDate(0, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"create partition public.pevents_p20261130", "create partition public.pevents_p20261201", "create partition public.pevents_p20261202",
		"drop partition public.pevents_p20261127 (older than the retention)"}
	if strings.Join(plan.Changes, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan a few days on:\n%s\nwant:\n%s", strings.Join(plan.Changes, "\n"), strings.Join(want, "\n"))
	}
	if len(plan.Problems) != 1 || !strings.Contains(plan.Problems[0], "no usable unique index") {
		t.Errorf("problems %v, want the missing unique index of nokey", plan.Problems)
	}
	if got := partitionNames(t, url); len(got) != 4 {
		t.Errorf("CheckMigration changed the partitions: %v", got)
	}
}

// A create: true target in a schema that does not exist yet: Migrate
// creates the schema, so the plan says so, once, before the table; a
// second table of that schema, and the offsets' own schema, are not
// repeated.
func TestCheckMigrationTargetSchema(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	a, b := eventsTable(), eventsTable()
	a.Name, b.Name = "replica.events", "replica.more"
	own := eventsTable()
	own.Name = "sluice.events"
	plan, err := CheckMigration(testCtx(t), c, "sluice", []*Table{a, b, own}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"create schema sluice", "create table sluice.offsets", "create table sluice.dead_letters",
		"create schema replica",
		`create table "replica"."events" ("id" int8, "val" text, "off" int8, PRIMARY KEY ("id"))`,
		`create table "replica"."more" ("id" int8, "val" text, "off" int8, PRIMARY KEY ("id"))`,
		`create table "sluice"."events" ("id" int8, "val" text, "off" int8, PRIMARY KEY ("id"))`}
	if strings.Join(plan.Changes, "\n") != strings.Join(want, "\n") || len(plan.Problems) > 0 {
		t.Fatalf("plan:\n%s\nproblems %v\nwant:\n%s", strings.Join(plan.Changes, "\n"), plan.Problems, strings.Join(want, "\n"))
	}
	if err := Migrate(testCtx(t), c, "sluice", []*Table{a, b, own}); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM pg_namespace WHERE nspname = 'replica'"); n != 1 {
		t.Fatalf("Migrate did not create schema replica")
	}
	// A schema that exists is not planned, even with a table to create.
	c2 := eventsTable()
	c2.Name = "replica.third"
	plan, err = CheckMigration(testCtx(t), c, "sluice", []*Table{a, c2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want = []string{`create table "replica"."third" ("id" int8, "val" text, "off" int8, PRIMARY KEY ("id"))`}
	if strings.Join(plan.Changes, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan after Migrate:\n%s\nwant:\n%s", strings.Join(plan.Changes, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheckMigrationDefaultRows: what CheckMigration says of the rows in
// the default partition is what the round then does with them: rows of a
// kept interval are moved, rows older than the retention deleted (kept
// with retention_action detach), rows no partition can hold left.
func TestCheckMigrationDefaultRows(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	now := day("2026-11-27T10:00:00Z")
	for _, detach := range []bool{false, true} {
		tb := partitionedTable(IntervalDay, 72*time.Hour)
		tb.Partition.Detach = detach
		tb.Name = fmt.Sprintf("public.dr%v", detach)
		if err := Migrate(testCtx(t), c, "sluice", []*Table{tb}); err != nil {
			t.Fatal(err)
		}
		// Two rows of a kept day without a partition, three older than
		// the retention (2026-11-24), one at infinity.
		mustExec(t, c, "INSERT INTO "+tb.ident()+` VALUES (1, '2026-11-25T08:00:00Z', 'kept'), (2, '2026-11-25T09:00:00Z', 'kept'),
(3, '2026-11-01T08:00:00Z', 'old'), (4, '2026-11-02T08:00:00Z', 'old'), (5, '2026-11-23T23:59:59Z', 'old'), (6, 'infinity', 'no time')`)
		plan, err := CheckMigration(testCtx(t), c, "sluice", []*Table{tb}, now)
		if err != nil || len(plan.Problems) > 0 {
			t.Fatal(err, plan.Problems)
		}
		d := fmt.Sprintf("public.dr%v_default", detach)
		want := []string{
			fmt.Sprintf("create partition public.dr%v_p20261125", detach), fmt.Sprintf("create partition public.dr%v_p20261126", detach),
			fmt.Sprintf("create partition public.dr%v_p20261127", detach),
			fmt.Sprintf("create partition public.dr%v_p20261128", detach), fmt.Sprintf("create partition public.dr%v_p20261129", detach),
			"move 2 rows of " + d + " into the partitions made for them",
			"delete 3 rows of " + d + " older than the retention (before 2026-11-24T00:00:00Z)",
			"leave 1 row in " + d + ": no partition can be made for it",
		}
		if detach {
			want[6] = "leave 4 rows in " + d + ": no partition can be made for them"
			want = want[:7]
		}
		got := strings.Join(plan.Changes, "\n")
		if got != strings.Join(want, "\n") {
			t.Errorf("detach %v: plan:\n%s\nwant:\n%s", detach, got, strings.Join(want, "\n"))
		}
		m, err := MaintainPartitions(testCtx(t), c, tb, now, time.Second)
		if err != nil || len(m.Failed) > 0 {
			t.Fatal(err, m.Failed)
		}
		wantExpired, wantLeft := int64(3), int64(1)
		if detach {
			wantExpired, wantLeft = 0, 4
		}
		if m.Moved != 2 || m.Expired != wantExpired || m.DefaultRows != wantLeft {
			t.Errorf("detach %v: the round moved %d rows, deleted %d and left %d; want 2, %d and %d", detach, m.Moved, m.Expired, m.DefaultRows, wantExpired, wantLeft)
		}
	}
}
