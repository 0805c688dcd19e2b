package pgcopy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func eventsTable() *Table {
	return &Table{
		Name:         "public.events",
		Columns:      []Column{{Name: "id", SQLType: "int8"}, {Name: "val", SQLType: "text"}, {Name: "off", SQLType: "int8"}},
		Key:          []string{"id"},
		OnConflict:   PolicyIgnore,
		OffsetColumn: "off",
		Create:       true,
	}
}

func TestMigrateIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	// Each instance has its own Tables: Migrate records limits in them.
	newTables := func() []*Table {
		return []*Table{eventsTable(), {Name: "other.logs", Columns: []Column{{Name: "line", SQLType: "text"}}, Create: true}}
	}
	tables := newTables()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			c := connect(t, url)
			errs <- Migrate(testCtx(t), c, "sluice", newTables())
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
	logs := &Table{Name: "logs", Columns: []Column{{Name: "n", SQLType: "int8"}}}
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

// TestMigrateUnmappedColumn: a target column every insert must give a
// value (NOT NULL, by itself or its domain, without a default) that the
// configuration does not map would turn every record into a dead letter:
// Migrate and CheckMigration refuse it, naming the column and the fixes. A
// default, an identity, a generated column, a domain's default or a BEFORE
// INSERT trigger (which may fill it) let the target through.
func TestMigrateUnmappedColumn(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	mustExec(t, c, `CREATE DOMAIN req AS text NOT NULL;
CREATE DOMAIN reqdef AS text NOT NULL DEFAULT 'd';
CREATE TABLE plain (id int8 PRIMARY KEY, val text, off int8, tenant text NOT NULL);
CREATE TABLE two (id int8 PRIMARY KEY, val text, off int8, b text NOT NULL, a int4 NOT NULL);
CREATE TABLE bydomain (id int8 PRIMARY KEY, val text, off int8, tenant req);
CREATE TABLE parted (id int8, val text, off int8, tenant text NOT NULL, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE parted_all PARTITION OF parted DEFAULT;
CREATE TABLE withdefault (id int8 PRIMARY KEY, val text, off int8, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE identity (n int8 GENERATED ALWAYS AS IDENTITY, id int8 PRIMARY KEY, val text, off int8);
CREATE TABLE serial (n bigserial NOT NULL, id int8 PRIMARY KEY, val text, off int8);
CREATE TABLE generated (id int8 PRIMARY KEY, val text, off int8, g int8 NOT NULL GENERATED ALWAYS AS (id * 2) STORED);
CREATE TABLE domaindefault (id int8 PRIMARY KEY, val text, off int8, tenant reqdef);
CREATE TABLE mapped (id int8 NOT NULL PRIMARY KEY, val text NOT NULL, off int8 NOT NULL);
CREATE TABLE filled (id int8 PRIMARY KEY, val text, off int8, tenant text NOT NULL);
CREATE FUNCTION fill() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.tenant := 'x'; RETURN NEW; END$$;
CREATE TRIGGER fill BEFORE INSERT ON filled FOR EACH ROW EXECUTE FUNCTION fill();
CREATE TABLE logs (line text, at date NOT NULL)`)
	table := func(name string) *Table {
		tbl := eventsTable()
		tbl.Name, tbl.Create = name, false
		return tbl
	}
	refused := func(tbl *Table, col string) {
		t.Helper()
		err := Migrate(testCtx(t), c, "sluice", []*Table{tbl})
		if err == nil {
			t.Fatalf("%s: Migrate accepted an unmapped NOT NULL column", tbl.Name)
		}
		for _, w := range []string{tbl.Name, `"` + col + `"`, "NOT NULL", "map it in columns", "SET DEFAULT", "DROP NOT NULL"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tbl.Name, err, w)
			}
		}
	}
	refused(table("plain"), "tenant")
	refused(table("two"), "a")
	refused(table("bydomain"), "tenant")
	refused(table("parted"), "tenant")
	refused(&Table{Name: "logs", Columns: []Column{{Name: "line", SQLType: "text"}}}, "at")
	for _, name := range []string{"withdefault", "identity", "serial", "generated", "domaindefault", "mapped", "filled"} {
		if err := Migrate(testCtx(t), c, "sluice", []*Table{table(name)}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Mapping the column is the first fix.
	fixed := table("plain")
	fixed.Columns = append(fixed.Columns, Column{Name: "tenant", SQLType: "text"})
	if err := Migrate(testCtx(t), c, "sluice", []*Table{fixed}); err != nil {
		t.Errorf("plain with tenant mapped: %v", err)
	}
	// A table Migrate creates maps all its columns.
	created := table("public.created")
	created.Create = true
	if err := Migrate(testCtx(t), c, "sluice", []*Table{created}); err != nil {
		t.Errorf("created: %v", err)
	}
	// migrate --check reports it among the problems.
	plan, err := CheckMigration(testCtx(t), c, "sluice", []*Table{table("withdefault"), table("plain")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Problems) != 1 || !strings.Contains(plan.Problems[0], `"tenant"`) || !strings.Contains(plan.Problems[0], "plain") {
		t.Errorf("problems %q, want the unmapped tenant of plain", plan.Problems)
	}
}

// TestColumnCompatibility: a target column must hold every value of the
// configured type unchanged. Lossy pairs are refused naming both types and
// the ALTER TABLE fix; widenings are accepted and typmods become Limits.
func TestColumnCompatibility(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	mustExec(t, c, `CREATE DOMAIN positive_amount AS numeric(12,2) CHECK (VALUE >= 0);
CREATE DOMAIN short_name AS varchar(8)`)
	n := 0
	try := func(keyed bool, cfg, target string) (Limit, error) {
		t.Helper()
		n++
		name := fmt.Sprintf("compat%d", n)
		ddl := fmt.Sprintf("CREATE TABLE %s (id int8 NOT NULL, v %s)", name, target)
		cols := []Column{{Name: "id", SQLType: "int8"}, {Name: "v", SQLType: cfg}}
		tbl := &Table{Name: name, Columns: cols}
		if keyed {
			ddl = fmt.Sprintf("CREATE TABLE %s (id int8 PRIMARY KEY, v %s)", name, target)
			tbl.Key = []string{"id"}
		}
		mustExec(t, c, ddl)
		err := Migrate(testCtx(t), c, "sluice", []*Table{tbl})
		return tbl.Columns[1].Limit, err
	}
	refused := []struct{ cfg, target, why string }{
		{"float8", "int4", "cannot hold every value"},
		{"numeric", "int4", "cannot hold every value"},
		{"float8", "float4", "cannot hold every value"},
		{"float8", "numeric", "cannot hold every value"},
		{"int8", "int4", "cannot hold every value"},
		{"int8", "float8", "cannot hold every value"},
		{"numeric", "text", "changes its type"},
		{"int8", "varchar(40)", "changes its type"},
		{"timestamptz", "timestamp", "time zone"},
		{"timestamp", "timestamptz", "time zone"},
		{"jsonb", "json", "normalises"},
		{"json", "jsonb", "normalises"},
		{"text", "char(10)", "pads"},
		{"timestamptz", "timestamptz(0)", "precision 0"},
		{"int8", "numeric(12,2)", "integer digits"},
		{"int4", "numeric(9,0)", "integer digits"},
		{"numeric", "numeric(5,-2)", "negative scale"},
		{"int2", "numeric(9,-2)", "negative scale"},
		{"uuid", "text", "changes its type"},
		{"text", "uuid", "cannot hold"},
		{"bool", "int2", "cannot hold"},
	}
	for _, keyed := range []bool{true, false} {
		for _, r := range refused {
			_, err := try(keyed, r.cfg, r.target)
			if err == nil {
				t.Errorf("keyed=%v: %s configured into a %s column was accepted", keyed, r.cfg, r.target)
				continue
			}
			for _, want := range []string{".v", r.why, "ALTER TABLE", "TYPE " + r.cfg} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("keyed=%v %s into %s: error %q does not mention %q", keyed, r.cfg, r.target, err, want)
				}
			}
		}
	}
	allowed := []struct {
		cfg, target string
		lim         Limit
	}{
		{"int2", "int4", Limit{}},
		{"int2", "float4", Limit{}},
		{"int4", "int8", Limit{}},
		{"int4", "float8", Limit{}},
		{"int4", "numeric(10,0)", Limit{}},
		{"int8", "numeric", Limit{}},
		{"int8", "numeric(21,2)", Limit{}},
		{"float4", "float8", Limit{}},
		{"text", "varchar(12)", Limit{Chars: 12}},
		{"text", "varchar", Limit{}},
		{"text", "short_name", Limit{Chars: 8}},
		{"numeric", "numeric(12,2)", Limit{Precision: 12, Scale: 2}},
		{"numeric", "positive_amount", Limit{Precision: 12, Scale: 2}},
		{"numeric", "numeric", Limit{}},
		{"timestamptz", "timestamptz(6)", Limit{}},
	}
	for _, a := range allowed {
		lim, err := try(true, a.cfg, a.target)
		if err != nil {
			t.Errorf("%s configured into a %s column was refused: %v", a.cfg, a.target, err)
		} else if lim != a.lim {
			t.Errorf("%s into %s: limit %+v, want %+v", a.cfg, a.target, lim, a.lim)
		}
	}
	// Keyless tables are copied without conversion: a widening needs the
	// column's own type, and the message names it.
	_, err := try(false, "int4", "int8")
	if err == nil || !strings.Contains(err.Error(), "configure type int8") {
		t.Errorf("keyless int4 into int8: %v", err)
	}
	// Same wire format with a limit works keyless too.
	if lim, err := try(false, "text", "varchar(5)"); err != nil || lim.Chars != 5 {
		t.Errorf("keyless text into varchar(5): %+v, %v", lim, err)
	}
}

// TestMigrateDeadLettersUpgrade: a dead-letter table of the first layout
// (one row per topic, partition and offset) is upgraded in place to one
// row per group and target, keeping every row; a second group can then
// dead-letter the same record.
func TestMigrateDeadLettersUpgrade(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	c := connect(t, url)
	mustExec(t, c, `CREATE SCHEMA sluice;
CREATE TABLE sluice.offsets (group_id text NOT NULL, topic text NOT NULL, partition int NOT NULL,
	next_offset bigint NOT NULL, owner_epoch bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (group_id, topic, partition));
CREATE TABLE sluice.dead_letters (topic text NOT NULL, partition int NOT NULL, "offset" bigint NOT NULL,
	key bytea, value bytea, headers jsonb, target text, error text, received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (topic, partition, "offset"));
INSERT INTO sluice.offsets VALUES ('g1', 'solo', 0, 10, 1), ('g1', 'shared', 0, 10, 1), ('g2', 'shared', 0, 10, 1);
INSERT INTO sluice.dead_letters (topic, partition, "offset", value, target, error) VALUES
	('solo', 0, 3, 'x', 'public.events', 'malformed_json: a'),
	('shared', 0, 4, 'y', 'public.events', 'malformed_json: b'),
	('gone', 1, 5, 'z', NULL, 'malformed_json: c')`)
	for range 2 { // the second run finds the new layout and changes nothing
		if err := Migrate(testCtx(t), c, "sluice", []*Table{eventsTable()}); err != nil {
			t.Fatal(err)
		}
	}
	got := queryRows(t, c, `SELECT group_id, target, topic, partition, "offset", value, error FROM sluice.dead_letters ORDER BY "offset"`)
	want := [][]string{
		{"g1", "public.events", "solo", "0", "3", `\x78`, "malformed_json: a"},
		{"", "public.events", "shared", "0", "4", `\x79`, "malformed_json: b"},
		{"", "", "gone", "1", "5", `\x7a`, "malformed_json: c"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the upgrade:\n got %v\nwant %v", got, want)
	}
	pk := queryRows(t, c, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = 'sluice.dead_letters'::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`)
	if fmt.Sprint(pk) != "[[group_id] [target] [topic] [partition] [offset]]" {
		t.Errorf("primary key after the upgrade: %v", pk)
	}
	mustExec(t, c, `INSERT INTO sluice.dead_letters (group_id, target, topic, partition, "offset", error)
VALUES ('g2', 'public.events', 'solo', 0, 3, 'another group')`)
	// The offsets table of that time gains reset_from, its rows kept.
	if got := queryRows(t, c, `SELECT count(*) FROM sluice.offsets WHERE reset_from IS NULL`); fmt.Sprint(got) != "[[3]]" {
		t.Errorf("offsets rows without a reset after the upgrade: %v, want 3", got)
	}
}
