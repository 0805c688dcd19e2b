package ingest

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/registry"
)

// The tests of this file follow a derived format debezium table (converter
// avro) across the source table's changes and Sluice's restarts.

// dbzRowEnvelope is a Debezium PostgreSQL connector's Envelope (namespace
// db.s.t) whose row record has fields, JSON field declarations.
func dbzRowEnvelope(fields ...string) string {
	return `{"type":"record","name":"Envelope","namespace":"db.s.t","fields":[
 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[` + strings.Join(fields, ",") + `],"connect.name":"db.s.t.Value"}],"default":null},
 {"name":"after","type":["null","Value"],"default":null},
 {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[
  {"name":"connector","type":"string"},{"name":"ts_ms","type":"long"},{"name":"lsn","type":["null","long"],"default":null}],"connect.name":"io.debezium.connector.postgresql.Source"}},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"],"default":null}
],"connect.name":"db.s.t.Envelope"}`
}

// dbzRows is topic events written through the AvroConverter with
// Envelopes of dbzRowEnvelope, registered under events-value, and the key
// record {id: long} under events-key. Rows are maps of field values.
type dbzRows struct {
	t        *testing.T
	url      string
	reg      *registry.Client
	vid, kid int
	vs, ks   avro.Schema
	lsn      int64
}

func newDbzRows(t *testing.T, fields ...string) *dbzRows {
	t.Helper()
	key := `{"type":"record","name":"Key","namespace":"db.s.t","fields":[{"name":"id","type":"long"}],"connect.name":"db.s.t.Key"}`
	url := registryWith(t, "events-key", registry.TypeAvro, key)
	cl, err := registry.New(registry.Options{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	d := &dbzRows{t: t, url: url, reg: cl, kid: 1, ks: avro.MustParse(key)}
	d.version(fields...)
	return d
}

// version registers the Envelope whose row has fields as the next version
// of events-value; the events that follow are written with it.
func (d *dbzRows) version(fields ...string) {
	d.t.Helper()
	text := dbzRowEnvelope(fields...)
	id, err := d.reg.Register(d.t.Context(), "events-value", registry.TypeAvro, text)
	if err != nil {
		d.t.Fatal(err)
	}
	// A cache of its own: every version names its row db.s.t.Value.
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		d.t.Fatal(err)
	}
	d.vid, d.vs = id, s
}

func (d *dbzRows) frame(id int, s avro.Schema, v any) []byte {
	d.t.Helper()
	// An encoder cache of its own too: hamba keys encoders by the
	// schema's fingerprint, which names the row record only.
	b, err := avro.Config{}.Freeze().Marshal(s, v)
	if err != nil {
		d.t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), b...)
}

// event is the change op of row id to after (nil for a delete, which
// then has no before: the record key names the row).
func (d *dbzRows) event(op string, id int64, after map[string]any) *kgo.Record {
	d.t.Helper()
	d.lsn += 10
	env := map[string]any{"before": nil, "after": nil, "op": op, "ts_ms": int64(1_700_000_000_001),
		"source": map[string]any{"connector": "postgresql", "ts_ms": int64(1_700_000_000_000), "lsn": d.lsn}}
	if after != nil {
		env["after"] = map[string]any{"db.s.t.Value": after}
	}
	return &kgo.Record{Key: d.frame(d.kid, d.ks, map[string]any{"id": id}), Value: d.frame(d.vid, d.vs, env)}
}

// query returns the rows of q, one string per row, its columns joined by
// ":" with NULL for a null.
func (e *env) query(q string) string {
	e.t.Helper()
	rs, err := e.db.Query(e.ctx, q)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rs.Close()
	var rows []string
	for rs.Next() {
		vals, err := rs.Values()
		if err != nil {
			e.t.Fatal(err)
		}
		var cols []string
		for _, v := range vals {
			if v == nil {
				cols = append(cols, "NULL")
			} else {
				cols = append(cols, fmt.Sprint(v))
			}
		}
		rows = append(rows, strings.Join(cols, ":"))
	}
	if err := rs.Err(); err != nil {
		e.t.Fatal(err)
	}
	return strings.Join(rows, " ")
}

// logLines returns the lines of logs that hold every one of parts.
func logLines(logs string, parts ...string) []string {
	var out []string
	for line := range strings.Lines(logs) {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// TestDebeziumAvroFieldTypeChanged: the source changes the type of two
// columns (qty int to bigint, shipped text to date), and the connector
// registers an Envelope whose row types them long and
// io.debezium.time.Date. Columns are never retyped: while running, the
// new values go into the existing columns (a date as its text), and one
// that int4 cannot hold is a dead letter naming the column. A restart
// derives int8 and date from the new latest version, and used to refuse to
// start ("cannot write column public.orders.qty: the table stores integer
// but it is configured as int8"), though every value but that one fits:
// the columns keep their types, as while running, with a warning naming
// each and both types, and migrate --check has nothing to do.
func TestDebeziumAvroFieldTypeChanged(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzRows(t, `{"name":"id","type":"long"}`, `{"name":"qty","type":"int"}`, `{"name":"shipped","type":["null","string"],"default":null}`)
	table := `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    evolve: add_columns
`
	r := e.start(e.configRegistry(d.url, table))
	e.produce(d.event("c", 1, map[string]any{"id": int64(1), "qty": int32(1), "shipped": "2021-05-01"}))
	e.waitDrained(1)
	d.version(`{"name":"id","type":"long"}`, `{"name":"qty","type":"long"}`,
		`{"name":"shipped","type":["null",{"type":"int","connect.version":1,"connect.name":"io.debezium.time.Date"}],"default":null}`)
	e.produce(d.event("c", 2, map[string]any{"id": int64(2), "qty": int64(2), "shipped": int32(19000)}),
		d.event("c", 3, map[string]any{"id": int64(3), "qty": int64(3_000_000_000), "shipped": nil}))
	e.waitDrained(3)
	r.stop()

	var out strings.Builder
	if err := CheckMigration(e.ctx, e.configRegistry(d.url, table), &out); err != nil || !strings.Contains(out.String(), "nothing to create or change") {
		t.Errorf("migrate --check after the type change: %v\n%s", err, out.String())
	}
	var logs syncBuffer
	startApp(t, e.configRegistry(d.url, table), io.MultiWriter(&logs, testWriter{t}))
	e.produce(d.event("u", 2, map[string]any{"id": int64(2), "qty": int64(20), "shipped": int32(19001)}),
		d.event("c", 4, map[string]any{"id": int64(4), "qty": int64(4), "shipped": int32(19002)}))
	e.waitDrained(5)
	if got, want := columnsOf(e), "id bigint NO, qty integer YES, shipped text YES"; got != want {
		t.Errorf("columns after the restart:\n got %s\nwant %s", got, want)
	}
	if got, want := e.query(`SELECT id, qty, shipped FROM public.orders ORDER BY id`), "1:1:2021-05-01 2:20:2022-01-09 4:4:2022-01-10"; got != want {
		t.Errorf("target holds\n%q, want\n%q", got, want)
	}
	if got, want := e.query(`SELECT "offset", error FROM sluice.dead_letters`), "2:column qty (path qty): out_of_range: value 3000000000 out of range for int4"; got != want {
		t.Errorf("dead letters (offset:error)\n%q, want\n%q", got, want)
	}
	if w := logLines(logs.String(), "level=WARN", "columns keep their type though the subject's fields have another", "table=public.orders",
		`columns="[qty int4 (the field's type gives int8) shipped text (the field's type gives date)]"`); len(w) != 1 {
		t.Errorf("%d warnings name the columns kept, want 1:\n%s", len(w), logs.String())
	}
}

// TestDebeziumAvroDerivedColumnLimit: a derived table follows a source
// table that grows to 66 columns with evolve: add_columns, and stops at
// 64, the most for which TOAST placeholders keep stored values, leaving
// f61 and f62 out with a warning. A restart derived all 66 fields from the
// latest version and refused to start ("66 columns, but format debezium
// keeps the stored value of a TOASTed column … for at most 64"); it now
// takes the first 64, names the two left out, and the events land. A new
// table of that subject is still refused: the columns to keep are the
// user's choice. The guard, a derived column, counts among the 64.
func TestDebeziumAvroDerivedColumnLimit(t *testing.T) {
	e := newEnv(t, 1)
	fields := []string{`{"name":"id","type":"long"}`, `{"name":"name","type":["null","string"],"default":null}`, `{"name":"qty","type":"int"}`}
	d := newDbzRows(t, fields...)
	table := `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    evolve: add_columns
    guard: qty
`
	r := e.start(e.configRegistry(d.url, table))
	for i := range 63 {
		fields = append(fields, fmt.Sprintf(`{"name":"f%02d","type":["null","string"],"default":null}`, i))
	}
	d.version(fields...)
	row := func(id int64, qty int32) map[string]any {
		m := map[string]any{"id": id, "name": "n", "qty": qty}
		for i := range 63 {
			m[fmt.Sprintf("f%02d", i)] = fmt.Sprintf("v%d", qty)
		}
		return m
	}
	e.produce(d.event("c", 1, row(1, 1)))
	e.waitDrained(1)
	r.stop()
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'`); n != 64 {
		t.Fatalf("the target has %d columns after evolving, want 64", n)
	}

	var logs syncBuffer
	startApp(t, e.configRegistry(d.url, table), io.MultiWriter(&logs, testWriter{t}))
	e.produce(d.event("u", 1, row(1, 10)), d.event("c", 2, row(2, 2)))
	e.waitDrained(3)
	if got, want := e.query(`SELECT id, qty, f00, f60 FROM public.orders ORDER BY id`), "1:10:v10:v10 2:2:v2:v2"; got != want {
		t.Errorf("target holds %q, want %q", got, want)
	}
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'`); n != 64 {
		t.Errorf("the target has %d columns after the restart, want 64", n)
	}
	if w := logLines(logs.String(), "level=WARN", "fields of the subject get no column: the table would have more than 64 columns", `fields="[f61 f62]"`); len(w) != 1 {
		t.Errorf("%d warnings name the fields left out, want 1:\n%s", len(w), logs.String())
	}

	_, err := New(e.configRegistry(d.url, strings.Replace(table, "public.orders", "public.wide", 1)), nil)
	if err == nil || !strings.Contains(err.Error(), "66 fields") || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("a new table of 66 fields: %v, want it refused", err)
	}
}

// TestDebeziumAvroFieldDropped: the source drops column name, and the
// connector's next Envelope has no name in its row. Its column stays:
// while running, every later row has NULL there, an update too. A restart
// derived the columns from the latest version only, without name, and
// so wrote no more into it: an update kept the row's old name, and only
// inserts had NULL, so the target depended on when Sluice restarted. The
// column of a field an earlier version of the subject has is now written
// after a restart too, NULL; a column added by hand, which no version
// has, is left alone.
func TestDebeziumAvroFieldDropped(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzRows(t, `{"name":"id","type":"long"}`, `{"name":"name","type":["null","string"],"default":null}`, `{"name":"qty","type":"int"}`)
	table := `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    evolve: add_columns
`
	r := e.start(e.configRegistry(d.url, table))
	e.produce(d.event("c", 1, map[string]any{"id": int64(1), "name": "apple", "qty": int32(1)}),
		d.event("c", 2, map[string]any{"id": int64(2), "name": "pear", "qty": int32(2)}))
	e.waitDrained(2)
	if _, err := e.db.Exec(e.ctx, `ALTER TABLE public.orders ADD COLUMN reviewed text; UPDATE public.orders SET reviewed = 'yes'`); err != nil {
		t.Fatal(err)
	}
	d.version(`{"name":"id","type":"long"}`, `{"name":"qty","type":"int"}`)
	e.produce(d.event("u", 1, map[string]any{"id": int64(1), "qty": int32(10)}))
	e.waitDrained(3)
	r.stop()

	var out strings.Builder
	if err := CheckMigration(e.ctx, e.configRegistry(d.url, table), &out); err != nil || !strings.Contains(out.String(), "nothing to create or change") {
		t.Errorf("migrate --check after the field was dropped: %v\n%s", err, out.String())
	}
	var logs syncBuffer
	startApp(t, e.configRegistry(d.url, table), io.MultiWriter(&logs, testWriter{t}))
	e.produce(d.event("u", 2, map[string]any{"id": int64(2), "qty": int32(20)}),
		d.event("c", 3, map[string]any{"id": int64(3), "qty": int32(3)}))
	e.waitDrained(5)
	if got, want := e.query(`SELECT id, name, qty, reviewed FROM public.orders ORDER BY id`), "1:NULL:10:yes 2:NULL:20:yes 3:NULL:3:NULL"; got != want {
		t.Errorf("target holds\n%q, want\n%q", got, want)
	}
	if got, want := columnsOf(e), "id bigint NO, name text YES, qty integer YES, reviewed text YES"; got != want {
		t.Errorf("columns after the restart:\n got %s\nwant %s", got, want)
	}
	if w := logLines(logs.String(), "level=INFO", "columns of fields earlier versions of the subject have", "version=2", `columns="[name text]"`); len(w) != 1 {
		t.Errorf("%d log lines name the column of the dropped field, want 1:\n%s", len(w), logs.String())
	}
}

// TestDerivedSubjectNameStrategy: a connector whose converters register
// by RecordNameStrategy (or TopicRecordNameStrategy) has no <topic>-value
// or <topic>-key subject. Sluice reads records by schema id whatever the
// strategy, but derives a table from those two subjects only, and there
// is no setting naming another. The errors said to register the schema
// first (and that records naming the subject cannot be decoded); they
// now name the strategy Sluice reads and say to list the columns, or
// set key.
func TestDerivedSubjectNameStrategy(t *testing.T) {
	value := dbzRowEnvelope(`{"name":"id","type":"long"}`)
	key := `{"type":"record","name":"Key","namespace":"db.s.t","fields":[{"name":"id","type":"long"}],"connect.name":"db.s.t.Key"}`
	for _, tc := range []struct {
		name, table, want string
		subjects          map[string]string
	}{
		{"debezium, value by record name", "format: debezium\n    converter: avro", "tables[0].columns: empty, and the schema registry has no subject events-value",
			map[string]string{"db.s.t.Envelope": value, "db.s.t.Key": key}},
		{"avro, value by topic and record name", "format: avro\n    key: [id]", "tables[0].columns: empty, and the schema registry has no subject events-value",
			map[string]string{"events-db.s.t.Envelope": value}},
		{"debezium, key by record name", "format: debezium\n    converter: avro", "tables[0].key: empty, and the schema registry has no subject events-key",
			map[string]string{"events-value": value, "db.s.t.Key": key}},
	} {
		reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close() })
		cl, err := registry.New(registry.Options{URLs: []string{reg.URL()}})
		if err != nil {
			t.Fatal(err)
		}
		for subject, text := range tc.subjects {
			if _, err := cl.Register(t.Context(), subject, registry.TypeAvro, text); err != nil {
				t.Fatal(err)
			}
		}
		y := configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", `
  - name: public.orders
    topics: [events]
    `+tc.table+"\n")
		cfg, err := Parse(append([]byte("schema_registry:\n  urls: ["+reg.URL()+"]\n"), y...), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		err = deriveColumns(cfg, cl, slog.New(slog.DiscardHandler))
		for _, want := range []string{tc.want, "TopicNameStrategy", "RecordNameStrategy"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v\nwant it to say %q", tc.name, err, want)
			}
		}
		if err != nil && strings.Contains(err.Error(), "cannot be decoded") {
			t.Errorf("%s: %v\nsays records cannot be decoded", tc.name, err)
		}
	}
}

// TestDerivedKeyFieldGetsNoColumn: a primary key column whose name
// cannot name a target column (MySQL allows 64 characters, PostgreSQL 63
// bytes) gets no column. The error said the key subject's field "is no
// column of the rows" and to set key to the primary key columns, which
// then failed with "is not a field of subject", though it is one. Both
// now say why the field gets no column and to list the columns.
func TestDerivedKeyFieldGetsNoColumn(t *testing.T) {
	long := strings.Repeat("k", 64)
	d := newDbzRows(t, `{"name":"`+long+`","type":"long"}`, `{"name":"id","type":"long"}`)
	for _, key := range []string{"", "    key: [" + long + "]\n"} {
		y := configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
`+key)
		cfg, err := Parse(append([]byte("schema_registry:\n  urls: ["+d.url+"]\n"), y...), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		// The key subject names the long field.
		if key == "" {
			if _, err := d.reg.Register(t.Context(), "events-key", registry.TypeAvro,
				`{"type":"record","name":"Key","namespace":"db.s.t","fields":[{"name":"`+long+`","type":"long"}]}`); err != nil {
				t.Fatal(err)
			}
		}
		err = deriveColumns(cfg, d.reg, slog.New(slog.DiscardHandler))
		want := `tables[0].key: key column "` + long + `", a field of subject events-value (version 1), gets no column: its name is longer than PostgreSQL's 63 bytes; list the columns`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("key %q: %v\nwant %s", key, err, want)
		}
	}
}

// TestDerivedTableUnstoredFields: a derived table without evolve:
// add_columns stores the fields of its first topic's latest subject
// version only. A field that only a second topic's rows have, or that a
// version registered while Sluice runs adds, was stored nowhere without a
// word (the start warns about the subject's latest version alone). Each
// such field is now named once in a warning when a writer schema with it
// is compiled.
func TestDerivedTableUnstoredFields(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzRows(t, `{"name":"id","type":"long"}`, `{"name":"a","type":["null","string"],"default":null}`)
	other := dbzRowEnvelope(`{"name":"id","type":"long"}`, `{"name":"b","type":["null","string"],"default":null}`)
	otherID, err := d.reg.Register(e.ctx, "events2-value", registry.TypeAvro, other)
	if err != nil {
		t.Fatal(err)
	}
	otherSchema, err := avro.ParseWithCache(other, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	startApp(t, e.configRegistry(d.url, `
  - name: public.orders
    topics: [events, events2]
    format: debezium
    converter: avro
`), io.MultiWriter(&logs, testWriter{t}))
	fromOther := func(id int64) *kgo.Record {
		r := d.event("c", id, nil)
		r.Topic = "events2"
		r.Value = d.frame(otherID, otherSchema, map[string]any{"before": nil, "op": "c", "ts_ms": int64(1),
			"source": map[string]any{"connector": "postgresql", "ts_ms": int64(1), "lsn": int64(id)},
			"after":  map[string]any{"db.s.t.Value": map[string]any{"id": id, "b": "B"}}})
		return r
	}
	e.produce(d.event("c", 1, map[string]any{"id": int64(1), "a": "A"}), fromOther(2), fromOther(3))
	e.waitDrained(3)
	d.version(`{"name":"id","type":"long"}`, `{"name":"a","type":["null","string"],"default":null}`, `{"name":"c","type":["null","string"],"default":null}`)
	e.produce(d.event("c", 4, map[string]any{"id": int64(4), "a": "A", "c": "C"}))
	e.waitDrained(4)
	if got, want := e.query(`SELECT * FROM public.orders ORDER BY id`), "1:A 2:NULL 3:NULL 4:A"; got != want {
		t.Errorf("target holds %q, want %q", got, want)
	}
	for _, f := range []string{"b", "c"} {
		if w := logLines(logs.String(), "level=WARN", "fields of a writer schema have no column in a table derived from the schema registry", "fields=["+f+"]"); len(w) != 1 {
			t.Errorf("%d warnings name field %s, want 1:\n%s", len(w), f, logs.String())
		}
	}
}

// TestDerivedTableLacksFieldWarnedOnce: a derived table without evolve
// whose target lacks a field of the subject's latest version (c), and
// whose latest version has a field of type null (n), is warned about each
// field at start; the first record of that version stores neither and
// names them no more.
func TestDerivedTableLacksFieldWarnedOnce(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzRows(t, `{"name":"id","type":"long"}`, `{"name":"a","type":["null","string"],"default":null}`)
	table := `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
`
	if err := Migrate(e.ctx, e.configRegistry(d.url, table)); err != nil {
		t.Fatal(err)
	}
	d.version(`{"name":"id","type":"long"}`, `{"name":"a","type":["null","string"],"default":null}`,
		`{"name":"c","type":["null","string"],"default":null}`, `{"name":"n","type":"null","default":null}`)
	var logs syncBuffer
	startApp(t, e.configRegistry(d.url, table), io.MultiWriter(&logs, testWriter{t}))
	e.produce(d.event("c", 1, map[string]any{"id": int64(1), "a": "A", "c": "C", "n": nil}))
	e.waitDrained(1)
	if got, want := e.query(`SELECT * FROM public.orders ORDER BY id`), "1:A"; got != want {
		t.Errorf("target holds %q, want %q", got, want)
	}
	names := func(f string) []string {
		var out []string
		for _, l := range logLines(logs.String(), "level=WARN") {
			if regexp.MustCompile(` field=` + f + `( |$)| fields="?\[([^\]]* )?` + f + `[ \]]`).MatchString(l) {
				out = append(out, l)
			}
		}
		return out
	}
	if w := names("c"); len(w) != 1 || !strings.Contains(w[0], "the table has no column for fields of the subject") {
		t.Errorf("warnings naming field c: %q, want the start's only:\n%s", w, logs.String())
	}
	if w := names("n"); len(w) != 1 || !strings.Contains(w[0], "its type is null") {
		t.Errorf("warnings naming field n: %q, want the start's only:\n%s", w, logs.String())
	}
}
