package pgcopy

import (
	"strings"
	"sync"
	"testing"
)

func eventsTable() *Table {
	return &Table{
		Name:         "public.events",
		Columns:      []Column{{"id", "int8"}, {"val", "text"}, {"off", "int8"}},
		Key:          []string{"id"},
		OnConflict:   PolicyIgnore,
		OffsetColumn: "off",
		Create:       true,
	}
}

func TestMigrateIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	tables := []*Table{eventsTable(), {Name: "other.logs", Columns: []Column{{"line", "text"}}, Create: true}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			c := connect(t, url)
			errs <- Migrate(testCtx(t), c, "sluice", tables)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := connect(t, url)
	if err := Migrate(testCtx(t), c, "sluice", tables); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	for _, tbl := range []string{"sluice.offsets", "sluice.dead_letters", "public.events", "other.logs"} {
		if n := queryInt(t, c, "SELECT count(*) FROM "+tbl); n != 0 {
			t.Errorf("%s has %d rows", tbl, n)
		}
	}
	got := queryRows(t, c, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = 'public.events'::regclass AND i.indisprimary`)
	if len(got) != 1 || got[0][0] != "id" {
		t.Errorf("primary key of events: %v", got)
	}
}

func TestMigrateErrors(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	mustExec(t, c, `CREATE TABLE nokey (id int8, val text, off int8);
CREATE TABLE partial (id int8, val text, off int8); CREATE UNIQUE INDEX ON partial (id) WHERE id > 0;
CREATE TABLE deferred (id int8 UNIQUE DEFERRABLE INITIALLY DEFERRED, val text, off int8);
CREATE TABLE nocol (id int8 PRIMARY KEY, val text);
CREATE TABLE wide (id int8, val text, off int8, PRIMARY KEY (id, val));
CREATE TABLE logs (n int4);
CREATE TABLE badcast (id int8 PRIMARY KEY, val point, off int8)`)
	f := func(name string, want ...string) {
		t.Helper()
		tbl := eventsTable()
		tbl.Name = name
		tbl.Create = false
		err := Migrate(testCtx(t), c, "sluice", []*Table{tbl})
		if err == nil {
			t.Fatalf("%s: Migrate succeeded", name)
		}
		for _, w := range append(want, name) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", name, err, w)
			}
		}
	}
	f("nokey", "unique index", "ADD PRIMARY KEY")
	f("partial", "unique index")
	f("deferred", "unique index")
	f("wide", "unique index")
	f("nocol", `"off"`, "ADD COLUMN")
	f("missing", "create: true")
	f("badcast", "point")
	logs := &Table{Name: "logs", Columns: []Column{{"n", "int8"}}}
	err := Migrate(testCtx(t), c, "sluice", []*Table{logs})
	if err == nil || !strings.Contains(err.Error(), "logs.n") || !strings.Contains(err.Error(), "integer") {
		t.Errorf("keyless type mismatch: %v", err)
	}
	logs.Columns[0].SQLType = "int4"
	if err := Migrate(testCtx(t), c, "sluice", []*Table{logs}); err != nil {
		t.Errorf("keyless with matching type: %v", err)
	}
	ok := eventsTable()
	ok.Name = "ok_existing"
	mustExec(t, c, `CREATE TABLE ok_existing (val varchar(10), extra text DEFAULT 'x', off int8, id int8 NOT NULL);
CREATE UNIQUE INDEX ON ok_existing (id)`)
	if err := Migrate(testCtx(t), c, "sluice", []*Table{ok}); err != nil {
		t.Errorf("pre-existing table with a unique index: %v", err)
	}
}
