package ingest

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/loadgen"
	"github.com/sluice-dev/sluice/registry"
)

// TestRegistryOutageWaits: while the Schema Registry answers 503, Avro
// records are not dead-lettered: the partition waits, /readyz says why
// and the errors are counted; once the registry answers, every record
// lands exactly once.
func TestRegistryOutageWaits(t *testing.T) {
	e := newEnv(t, 1)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	up, _ := url.Parse(reg.URL())
	var down atomic.Bool
	down.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(up)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	lo := loadgen.Options{Seed: 3, Schema: loadgen.SchemaReference, Records: 300, Partitions: 1, Topic: "avro_events", Format: loadgen.FormatAvro}
	if err := loadgen.RegisterSchema(e.ctx, &lo, registry.Options{URLs: []string{reg.URL()}}); err != nil {
		t.Fatal(err)
	}
	stats, err := loadgen.Produce(e.ctx, e.broker.Addrs(), lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	tables := loadgen.TableConfigYAMLFormat(loadgen.SchemaReference, loadgen.FormatAvro, "public.avro_events", "avro_events")
	y := configYAML(e.broker.Addrs(), e.url, "", "", "  "+strings.ReplaceAll(tables, "\n", "\n  "))
	y = append([]byte("schema_registry:\n  urls: ["+front.URL+"]\n"), y...)
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	r := e.start(cfg)
	e.waitFor("registry errors while it is down", func() bool { return r.app.m.registryErrors.Get() >= 2 })
	if why := r.app.notReady(); !strings.Contains(why, "schema registry") || !strings.Contains(why, "503") {
		t.Errorf("/readyz while the registry is down: %q", why)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letters while the registry was down", n)
	}
	down.Store(false)
	e.waitFor("the backlog to land", func() bool {
		return e.count(`SELECT coalesce(sum(next_offset), 0) FROM sluice.offsets`) == stats.Records
	})
	if !r.app.Ready() {
		t.Errorf("not ready after the registry came back: %s", r.app.notReady())
	}
	rep, err := loadgen.Verify(e.ctx, e.url, loadgen.VerifyOptions{Gen: lo, Stats: &stats, Table: "public.avro_events"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		var b strings.Builder
		rep.WriteSummary(&b)
		t.Errorf("not exactly once:\n%s", b.String())
	}
}

// TestRegistryEvolveAddColumns: with evolve: add_columns, a writer schema
// that adds a field reaches the table as a new column before the first
// record written with it is decoded, so that record's value is stored.
func TestRegistryEvolveAddColumns(t *testing.T) {
	e := newEnv(t, 1)
	reg, id1, id2 := itemSchemas(t, e)
	zz, str, frame := avroLong, avroString, regFrame
	var recs []*kgo.Record
	for i := range 4 {
		v := str(zz(frame(id1), int64(i)), fmt.Sprint("n", i))
		recs = append(recs, &kgo.Record{Value: v})
	}
	for i := 4; i < 8; i++ {
		v := str(zz(str(zz(frame(id2), int64(i)), fmt.Sprint("n", i)), 1), fmt.Sprint("c", i))
		recs = append(recs, &kgo.Record{Value: v})
	}
	cfg := e.configRegistry(reg.URL(), evolvingTable)
	e.start(cfg)
	e.produce(recs...)
	e.waitDrained(8)
	if n := e.count(`SELECT count(*) FROM public.evolving WHERE id >= 4 AND country = 'c' || id`); n != 4 {
		t.Errorf("%d rows written with the new schema hold the new field, want 4", n)
	}
	if n := e.count(`SELECT count(*) FROM public.evolving WHERE id < 4 AND country IS NULL`); n != 4 {
		t.Errorf("%d rows written with the old schema have NULL, want 4", n)
	}
}

// TestRegistryPathNamesNoField: a column whose path names no field of the
// writer schema is NULL in every row, which is right for a field only a
// newer schema has but silent for a misspelt path: the compiled schema is
// logged with a warning naming the column (and only it).
func TestRegistryPathNamesNoField(t *testing.T) {
	e := newEnv(t, 1)
	v1 := `{"type":"record","name":"Item","fields":[{"name":"id","type":"long"},{"name":"user_agent","type":"string"}]}`
	url := registryWith(t, "events-value", registry.TypeAvro, v1)
	zz, str := avroLong, avroString
	frame := binary.BigEndian.AppendUint32([]byte{0}, 1)
	cfg := e.configRegistry(url, `
  - name: public.agents
    topics: [events]
    format: avro
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: user_agent, type: text, path: useragent}
      - {name: src_offset, type: int8, source: kafka.offset}
`)
	var logs syncBuffer
	e.start(cfg, func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	e.produce(&kgo.Record{Value: str(zz(slices.Clone(frame), 1), "curl")}, &kgo.Record{Value: str(zz(slices.Clone(frame), 2), "wget")})
	e.waitDrained(2)
	if n := e.count(`SELECT count(*) FROM public.agents WHERE user_agent IS NULL`); n != 2 {
		t.Errorf("%d rows with user_agent NULL, want 2", n)
	}
	var warn string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "path names no field of the writer schema") {
			warn = line
		}
	}
	if warn == "" || !strings.Contains(warn, "columns=[user_agent]") || !strings.Contains(warn, "table=public.agents") {
		t.Errorf("no warning naming column user_agent of public.agents; log:\n%s", logs.String())
	}
}

// TestCreateFromRegistry: a registry-format table with create: true and no
// columns gets one column per top-level field of the subject's latest
// schema, typed as the codec maps it, and its records land.
func TestCreateFromRegistry(t *testing.T) {
	e := newEnv(t, 1)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	lo := loadgen.Options{Seed: 5, Schema: loadgen.SchemaReference, Records: 200, Partitions: 1, Topic: "derived", Format: loadgen.FormatAvro}
	if err := loadgen.RegisterSchema(e.ctx, &lo, registry.Options{URLs: []string{reg.URL()}}); err != nil {
		t.Fatal(err)
	}
	stats, err := loadgen.Produce(e.ctx, e.broker.Addrs(), lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.configRegistry(reg.URL(), `
  - name: public.derived
    topics: [derived]
    format: avro
    key: [event_id]
`)
	e.start(cfg)
	e.waitFor("the records to land", func() bool {
		return e.count(`SELECT coalesce(sum(next_offset), 0) FROM sluice.offsets`) == stats.Records
	})
	got := map[string]string{}
	rows, err := e.db.Query(e.ctx, `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'derived'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, typ string
		rows.Scan(&n, &typ)
		got[n] = typ
	}
	rows.Close()
	for col, typ := range map[string]string{"event_id": "uuid", "tenant_id": "bigint", "amount": "numeric", "attrs": "jsonb", "ts": "timestamp with time zone"} {
		if got[col] != typ {
			t.Errorf("derived column %s is %q, want %q (all: %v)", col, got[col], typ, got)
		}
	}
	if n := e.count(`SELECT count(*) FROM public.derived`); n != stats.Committed[loadgen.KindGood] {
		t.Errorf("%d rows, want %d", n, stats.Committed[loadgen.KindGood])
	}
}

// TestCreateFromRegistryGuard: a guard among columns derived from the
// registry is checked like a listed one: a text field is refused at start,
// an int8 one guards.
func TestCreateFromRegistryGuard(t *testing.T) {
	e := newEnv(t, 1)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	lo := loadgen.Options{Seed: 5, Schema: loadgen.SchemaReference, Topic: "derived", Format: loadgen.FormatAvro}
	if err := loadgen.RegisterSchema(t.Context(), &lo, registry.Options{URLs: []string{reg.URL()}}); err != nil {
		t.Fatal(err)
	}
	for guard, want := range map[string]string{"type": "tables[0].guard: column type is text, which does not order as a version", "version": ""} {
		cfg := e.configRegistry(reg.URL(), `
  - name: public.derived
    topics: [derived]
    format: avro
    key: [event_id]
    on_conflict: update
    guard: `+guard+"\n")
		_, err = New(cfg, nil)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("guard %s: %v, want %q", guard, err, want)
		}
	}
}

// registryWith starts an embedded registry, registers texts of typ under
// subject in order (ids 1, 2, …) and returns the registry's URL.
func registryWith(t *testing.T, subject string, typ registry.SchemaType, texts ...string) string {
	t.Helper()
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	cl, err := registry.New(registry.Options{URLs: []string{reg.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range texts {
		if _, err := cl.Register(t.Context(), subject, typ, text); err != nil {
			t.Fatal(err)
		}
	}
	return reg.URL()
}

const avroWithTS = `{"type":"record","name":"E","fields":[{"name":"id","type":"long"},
{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}`

// TestCreateFromRegistryPartition: a derived table partitioned by a
// derived column takes the default interval (day) and is migrated with
// its first partitions.
func TestCreateFromRegistryPartition(t *testing.T) {
	e := newEnv(t, 1)
	url := registryWith(t, "events-value", registry.TypeAvro, avroWithTS)
	cfg := e.configRegistry(url, `
  - name: public.derived
    topics: [events]
    format: avro
    key: [id, ts]
    partition: {column: ts}
`)
	if err := Migrate(e.ctx, cfg); err != nil {
		t.Fatalf("migrate of a derived table with partition: {column: ts}: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.derived'::regclass`); n < 2 {
		t.Errorf("%d partitions after migrate, want the default and premade ones", n)
	}
}

// TestCreateFromRegistryFieldNames: a field whose name cannot name a
// column (longer than 63 bytes, which PostgreSQL truncates; a staging
// column's name) gets no column, with a warning, as evolve skips it: the
// table is created from the other fields.
func TestCreateFromRegistryFieldNames(t *testing.T) {
	long := strings.Repeat("a", 70)
	for name, field := range map[string]string{"long": long, "reserved": "sluice_op"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 1)
			url := registryWith(t, "events-value", registry.TypeAvro,
				`{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"`+field+`","type":"string"}]}`)
			cfg := e.configRegistry(url, `
  - name: public.derived
    topics: [events]
    format: avro
    key: [id]
`)
			if err := Migrate(e.ctx, cfg); err != nil {
				t.Fatalf("derived table with a %s field name: %v", name, err)
			}
			if got := fmt.Sprint(cfg.Tables[0].Columns); got != "[{id int8 id  false}]" {
				t.Errorf("derived columns: %s", got)
			}
		})
	}
}

// TestRegistryEvolveProtobufMessage: evolve adds the fields of the message
// the records are (their message indexes), not the file's first message's.
// Records of Order ([1]) gain a field country: it became no column, and a
// column was added for Meta's field note instead.
func TestRegistryEvolveProtobufMessage(t *testing.T) {
	e := newEnv(t, 1)
	v1 := "syntax = \"proto3\";\npackage p;\nmessage Meta { string note = 1; }\nmessage Order { int64 id = 1; }\n"
	v2 := "syntax = \"proto3\";\npackage p;\nmessage Meta { string note = 1; }\nmessage Order { int64 id = 1; string country = 2; }\n"
	url := registryWith(t, "events-value", registry.TypeProtobuf, v1, v2)
	cfg := e.configRegistry(url, `
  - name: public.pb
    topics: [events]
    format: protobuf
    evolve: add_columns
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
`)
	e.start(cfg)
	// Schema id 2, message indexes [1] (zigzag count 1, index 1), then
	// Order{id: 7, country: "NZ"}.
	v := binary.BigEndian.AppendUint32([]byte{0}, 2)
	v = append(v, 0x02, 0x02, 0x08, 7, 0x12, 2, 'N', 'Z')
	e.produce(&kgo.Record{Value: v})
	e.waitDrained(1)
	if n := e.count(`SELECT count(*) FROM public.pb WHERE id = 7 AND country = 'NZ'`); n != 1 {
		t.Errorf("%d rows with id 7 and country NZ, want 1", n)
	}
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'pb' AND column_name = 'note'`); n != 0 {
		t.Error("evolve added a column for note, a field of another message")
	}
}

// TestCreateFromRegistryJSONSchema: a json_schema table with create: true
// and no columns gets one column per property of the subject's latest
// schema; start failed with "gives no columns (<nil>)".
func TestCreateFromRegistryJSONSchema(t *testing.T) {
	e := newEnv(t, 1)
	url := registryWith(t, "events-value", registry.TypeJSON,
		`{"type":"object","properties":{"id":{"type":"integer"},"name":{"type":"string"},"amount":{"type":"number"}},"required":["id"]}`)
	cfg := e.configRegistry(url, `
  - name: public.derived
    topics: [events]
    format: json_schema
    key: [id]
`)
	e.start(cfg)
	v := append(binary.BigEndian.AppendUint32([]byte{0}, 1), `{"id":1,"name":"a","amount":12.50}`...)
	e.produce(&kgo.Record{Value: v})
	e.waitDrained(1)
	if n := e.count(`SELECT count(*) FROM public.derived WHERE id = 1 AND name = 'a' AND amount::text = '12.50'`); n != 1 {
		t.Errorf("%d rows hold the record, want 1", n)
	}
}

// TestRegistryEvolveJSONSchema: evolve: add_columns on json_schema adds a
// column for a property no column maps; it added none, and the member's
// values were dropped without a word.
func TestRegistryEvolveJSONSchema(t *testing.T) {
	e := newEnv(t, 1)
	url := registryWith(t, "events-value", registry.TypeJSON,
		`{"type":"object","properties":{"id":{"type":"integer"},"country":{"type":"string"}},"required":["id"]}`)
	cfg := e.configRegistry(url, `
  - name: public.js
    topics: [events]
    format: json_schema
    evolve: add_columns
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
`)
	e.start(cfg)
	v := append(binary.BigEndian.AppendUint32([]byte{0}, 1), `{"id":1,"country":"NZ"}`...)
	e.produce(&kgo.Record{Value: v})
	e.waitDrained(1)
	if n := e.count(`SELECT count(*) FROM public.js WHERE id = 1 AND country = 'NZ'`); n != 1 {
		t.Errorf("%d rows hold the new property country, want 1", n)
	}
}

// TestCreateFromRegistrySubjectGainsField: the subject of a derived table
// gains a nullable field while Sluice is stopped. The next start derived
// the field as a column, CREATE TABLE IF NOT EXISTS left the table as it
// was, and the target check refused it: Sluice no longer started. With
// evolve: add_columns the column is added at start; without, the table is
// used as it is and the field is not stored (a warning names it).
func TestCreateFromRegistrySubjectGainsField(t *testing.T) {
	v1 := `{"type":"record","name":"Item","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`
	v2 := `{"type":"record","name":"Item","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},` +
		`{"name":"country","type":["null","string"],"default":null}]}`
	for _, evolve := range []string{"add_columns", "none"} {
		t.Run(evolve, func(t *testing.T) {
			e := newEnv(t, 1)
			url := registryWith(t, "events-value", registry.TypeAvro, v1)
			tables := `
  - name: public.derived
    topics: [events]
    format: avro
    evolve: ` + evolve + `
    key: [id]
`
			if err := Migrate(e.ctx, e.configRegistry(url, tables)); err != nil {
				t.Fatal(err)
			}
			cl, _ := registry.New(registry.Options{URLs: []string{url}})
			if _, err := cl.Register(e.ctx, "events-value", registry.TypeAvro, v2); err != nil {
				t.Fatal(err)
			}
			cfg := e.configRegistry(url, tables)
			if evolve == "none" {
				// migrate as well as run
				if err := Migrate(e.ctx, cfg); err != nil {
					t.Fatalf("migrate after the subject gained a field: %v", err)
				}
			}
			e.start(cfg)
			// id 1, name "a", country (union branch 1) "NZ"
			v := append(binary.BigEndian.AppendUint32([]byte{0}, 2), 2, 2, 'a', 2, 4, 'N', 'Z')
			e.produce(&kgo.Record{Value: v})
			e.waitDrained(1)
			want := map[string]string{"add_columns": "NZ", "none": "no column"}[evolve]
			got := "no column"
			if e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'derived' AND column_name = 'country'`) == 1 {
				if err := e.db.QueryRow(e.ctx, `SELECT coalesce(country, 'NULL') FROM public.derived WHERE id = 1`).Scan(&got); err != nil {
					t.Fatal(err)
				}
			}
			if got != want {
				t.Errorf("country of the record: %s, want %s", got, want)
			}
		})
	}
}

// TestCreateFromRegistryMigrateCheck: migrate --check derives the columns
// as migrate does; it reported a table without columns. A field the
// existing table lacks is listed as a column migrate adds.
func TestCreateFromRegistryMigrateCheck(t *testing.T) {
	e := newEnv(t, 1)
	url := registryWith(t, "events-value", registry.TypeAvro, avroWithTS)
	tables := `
  - name: public.derived
    topics: [events]
    format: avro
    evolve: add_columns
    key: [id]
`
	var out strings.Builder
	if err := CheckMigration(e.ctx, e.configRegistry(url, tables), &out); err != nil || !strings.Contains(out.String(), `create table "public"."derived" ("id" int8, "ts" timestamptz`) {
		t.Fatalf("migrate --check of a derived table: %v\n%s", err, out.String())
	}
	if err := Migrate(e.ctx, e.configRegistry(url, tables)); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	cl, _ := registry.New(registry.Options{URLs: []string{url}})
	if _, err := cl.Register(e.ctx, "events-value", registry.TypeAvro,
		`{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},`+
			`{"name":"country","type":["null","string"],"default":null}]}`); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := CheckMigration(e.ctx, e.configRegistry(url, tables), &out); err != nil ||
		!strings.Contains(out.String(), "add column country text to table public.derived (a field of subject events-value, version 2; evolve: add_columns)") {
		t.Errorf("migrate --check after the subject gained a field: %v\n%s", err, out.String())
	}
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'derived' AND column_name = 'country'`); n != 0 {
		t.Error("migrate --check added the column")
	}
}

// TestEvolveBlockedIsNotARegistryError: when adding a new field's column
// fails in PostgreSQL (here: another transaction holds a lock on the
// target), the partition waits as for the registry, but /readyz names the
// table and PostgreSQL's error, not the registry, and
// sluice_schema_registry_errors_total counts nothing: the registry
// answered. Once the lock is gone the records land.
func TestEvolveBlockedIsNotARegistryError(t *testing.T) {
	e := newEnv(t, 1)
	reg, id1, id2 := itemSchemas(t, e)
	zz, str, frame := avroLong, avroString, regFrame
	cfg := e.configRegistry(reg.URL(), evolvingTable)
	r := e.start(cfg)
	e.produce(&kgo.Record{Value: str(zz(frame(id1), 0), "n0")})
	e.waitDrained(1)

	tx, err := e.db.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(e.ctx, `LOCK TABLE public.evolving IN ACCESS SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	e.produce(&kgo.Record{Value: str(zz(str(zz(frame(id2), 1), "n1"), 1), "c1")})
	var why string
	e.waitFor("/readyz to say why the partition waits", func() bool {
		why = r.app.notReady()
		return why != ""
	})
	if err := tx.Rollback(e.ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(why, "schema registry") || !strings.Contains(why, "public.evolving") || !strings.Contains(why, "lock") {
		t.Errorf("/readyz while the target is locked: %q, want the table and PostgreSQL's error, not the registry", why)
	}
	if n := r.app.m.registryErrors.Get(); n != 0 {
		t.Errorf("sluice_schema_registry_errors_total = %d while the registry answered every request", n)
	}
	e.waitDrained(2)
	if n := e.count(`SELECT count(*) FROM public.evolving WHERE country = 'c1'`); n != 1 {
		t.Errorf("%d rows hold the new field after the lock went, want 1", n)
	}
	if !r.app.Ready() {
		t.Errorf("not ready after the lock went: %s", r.app.notReady())
	}
}

// avroLong appends v as Avro encodes a long (a zigzag varint).
func avroLong(b []byte, v int64) []byte { return binary.AppendUvarint(b, uint64((v<<1)^(v>>63))) }

// avroString appends s as Avro encodes a string.
func avroString(b []byte, s string) []byte { return append(avroLong(b, int64(len(s))), s...) }

// regFrame is the Confluent framing of schema id: magic byte 0 and the id.
func regFrame(id int) []byte { return binary.BigEndian.AppendUint32([]byte{0}, uint32(id)) }

// evolvingTable reads itemSchemas' records and adds the columns of their
// new fields.
const evolvingTable = `
  - name: public.evolving
    topics: [events]
    format: avro
    evolve: add_columns
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: name, type: text, path: name}
`

// itemSchemas starts a registry and registers two versions of the Item
// record under events-value, the second adding an optional country.
func itemSchemas(t *testing.T, e *env) (reg *devenv.Registry, id1, id2 int) {
	t.Helper()
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	cl, err := registry.New(registry.Options{URLs: []string{reg.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	v1 := `{"type":"record","name":"Item","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`
	v2 := `{"type":"record","name":"Item","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},` +
		`{"name":"country","type":["null","string"],"default":null}]}`
	if id1, err = cl.Register(e.ctx, "events-value", registry.TypeAvro, v1); err != nil {
		t.Fatal(err)
	}
	if id2, err = cl.Register(e.ctx, "events-value", registry.TypeAvro, v2); err != nil {
		t.Fatal(err)
	}
	return reg, id1, id2
}

// TestRegistryNullField: a top-level field of type null (an Avro null, a
// JSON Schema property of type "null") holds no value to type a column
// by. It got a jsonb column, derived or evolved, which stayed when a
// later version gave the field a real type (a column is never retyped).
// Now a table derived from the registry gets no column for it, a version
// that still has it adds none, each with a warning naming the field and
// saying that a later writer schema typing it adds its column, and the
// version that types it adds the column, filled from that version on; as
// for format debezium (TestDebeziumAvroEvolveNullField).
func TestRegistryNullField(t *testing.T) {
	type version struct {
		schema string
		value  func(id int64, name, note, legacy string) []byte // "" is null
	}
	zz, str := avroLong, avroString
	avroOpt := func(b []byte, s string) []byte {
		if s == "" {
			return zz(b, 0)
		}
		return str(zz(b, 1), s)
	}
	jsonOpt := func(s string) string {
		if s == "" {
			return "null"
		}
		return fmt.Sprintf("%q", s)
	}
	pbStr := func(b []byte, num byte, s string) []byte { return append(append(b, num<<3|2, byte(len(s))), s...) }
	pbHead := func(id int64, name string) []byte { return pbStr(append([]byte{0, 0x08}, byte(id)), 2, name) } // indexes [0], id, name
	const pbFile = "syntax = \"proto3\";\npackage p;\nimport \"google/protobuf/struct.proto\";\nmessage Order { int64 id = 1; string name = 2; "
	const avroHead = `{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},`
	const jsonHead = `{"type":"object","required":["id"],"properties":{"id":{"type":"integer"},"name":{"type":"string"},`
	for _, c := range []struct {
		format string
		typ    registry.SchemaType
		v      [3]version // the field null; a new field note; the field typed
	}{
		{"avro", registry.TypeAvro, [3]version{
			{avroHead + `{"name":"legacy","type":"null"}]}`, nil},
			{avroHead + `{"name":"legacy","type":"null"},{"name":"note","type":["null","string"],"default":null}]}`,
				func(id int64, name, note, _ string) []byte { return avroOpt(str(zz(nil, id), name), note) }},
			{avroHead + `{"name":"legacy","type":["null","string"],"default":null},{"name":"note","type":["null","string"],"default":null}]}`,
				func(id int64, name, note, legacy string) []byte {
					return avroOpt(avroOpt(str(zz(nil, id), name), legacy), note)
				}},
		}},
		{"json_schema", registry.TypeJSON, [3]version{
			{jsonHead + `"legacy":{"type":"null"}}}`, nil},
			{jsonHead + `"legacy":{"type":["null"]},"note":{"type":["string","null"]}}}`,
				func(id int64, name, note, _ string) []byte {
					return fmt.Appendf(nil, `{"id":%d,"name":%q,"legacy":null,"note":%s}`, id, name, jsonOpt(note))
				}},
			{jsonHead + `"legacy":{"type":["string","null"]},"note":{"type":["string","null"]}}}`,
				func(id int64, name, note, legacy string) []byte {
					return fmt.Appendf(nil, `{"id":%d,"name":%q,"legacy":%s,"note":%s}`, id, name, jsonOpt(legacy), jsonOpt(note))
				}},
		}},
		{"json_schema", registry.TypeJSON, [3]version{ // const and enum of null alone
			{jsonHead + `"legacy":{"enum":[null]}}}`, nil},
			{jsonHead + `"legacy":{"const":null},"note":{"type":["string","null"]}}}`,
				func(id int64, name, note, _ string) []byte {
					return fmt.Appendf(nil, `{"id":%d,"name":%q,"legacy":null,"note":%s}`, id, name, jsonOpt(note))
				}},
			{jsonHead + `"legacy":{"type":["string","null"]},"note":{"type":["string","null"]}}}`,
				func(id int64, name, note, legacy string) []byte {
					return fmt.Appendf(nil, `{"id":%d,"name":%q,"legacy":%s,"note":%s}`, id, name, jsonOpt(legacy), jsonOpt(note))
				}},
		}},
		{"protobuf", registry.TypeProtobuf, [3]version{ // google.protobuf.NullValue
			{pbFile + "google.protobuf.NullValue legacy = 3; }\n", nil},
			{pbFile + "google.protobuf.NullValue legacy = 3; optional string note = 4; }\n",
				func(id int64, name, note, _ string) []byte {
					b := append(pbHead(id, name), 3<<3, 0) // legacy: NULL_VALUE, written
					if note != "" {
						b = pbStr(b, 4, note)
					}
					return b
				}},
			{pbFile + "optional string legacy = 3; optional string note = 4; }\n",
				func(id int64, name, note, legacy string) []byte {
					b := pbHead(id, name)
					if legacy != "" {
						b = pbStr(b, 3, legacy)
					}
					if note != "" {
						b = pbStr(b, 4, note)
					}
					return b
				}},
		}},
	} {
		t.Run(c.format, func(t *testing.T) {
			e := newEnv(t, 1)
			url := registryWith(t, "events-value", c.typ, c.v[0].schema)
			cl, err := registry.New(registry.Options{URLs: []string{url}})
			if err != nil {
				t.Fatal(err)
			}
			table := `
  - name: public.orders
    topics: [events]
    format: ` + c.format + `
    evolve: add_columns
    key: [id]
`
			const later = "a later writer schema that gives it a type adds its column"
			warned := func(logs, msg string) bool {
				for line := range strings.Lines(logs) {
					if strings.Contains(line, msg) && strings.Contains(line, later) && strings.Contains(line, "field=legacy") {
						return true
					}
				}
				return false
			}
			var derive syncBuffer
			cfg := e.configRegistry(url, table)
			if err := deriveColumns(cfg, cl, slog.New(slog.NewTextHandler(io.MultiWriter(&derive, testWriter{t}), nil))); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(cfg.Tables[0].Columns); got != "[{id int8 id  false} {name text name  false}]" {
				t.Errorf("derived columns: %s, want id and name", got)
			}
			if !warned(derive.String(), "a field of the subject gets no column: its type is null") {
				t.Errorf("no warning at derivation names the field of type null and what adds its column:\n%s", derive.String())
			}

			var logs syncBuffer
			e.start(e.configRegistry(url, table), func(a *App) {
				a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
			})
			want := "id bigint NO, name text YES"
			if got := columnsOf(e); got != want {
				t.Errorf("columns of the derived table:\n got %s\nwant %s", got, want)
			}
			id2, err := cl.Register(e.ctx, "events-value", c.typ, c.v[1].schema)
			if err != nil {
				t.Fatal(err)
			}
			e.produce(&kgo.Record{Value: append(regFrame(id2), c.v[1].value(1, "a", "n1", "")...)})
			e.waitDrained(1)
			want += ", note text YES"
			if got := columnsOf(e); got != want {
				t.Errorf("columns after a version with a new field and the field of type null:\n got %s\nwant %s", got, want)
			}
			if !warned(logs.String(), "cannot add a column for a new field: its type is null") {
				t.Errorf("no warning at evolution names the field of type null and what adds its column:\n%s", logs.String())
			}
			id3, err := cl.Register(e.ctx, "events-value", c.typ, c.v[2].schema)
			if err != nil {
				t.Fatal(err)
			}
			e.produce(&kgo.Record{Value: append(regFrame(id3), c.v[2].value(2, "b", "", "old")...)})
			e.waitDrained(2)
			want += ", legacy text YES"
			if got := columnsOf(e); got != want {
				t.Errorf("columns after the field got a type:\n got %s\nwant %s", got, want)
			}
			var got string
			if err := e.db.QueryRow(e.ctx, `SELECT string_agg(concat_ws(':', id, coalesce(note, 'NULL'), coalesce(legacy, 'NULL')), ' ' ORDER BY id) FROM public.orders`).Scan(&got); err != nil ||
				got != "1:n1:NULL 2:NULL:old" {
				t.Errorf("target holds %q, %v; want 1:n1:NULL 2:NULL:old", got, err)
			}
			if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
				t.Errorf("%d dead letters, want none", n)
			}
		})
	}
}

// TestEvolveSchemaWithoutFields: under evolve: add_columns, a writer
// schema that lists no top-level fields (a JSON Schema root without
// properties) adds no column, and says so once for the table and schema,
// not once per worker; its records land through the configured columns.
func TestEvolveSchemaWithoutFields(t *testing.T) {
	e := newEnv(t, 4)
	url := registryWith(t, "events-value", registry.TypeJSON, `{"type":"object"}`)
	var logs syncBuffer
	cfg := e.configRegistry(url, `
  - name: public.orders
    topics: [events]
    format: json_schema
    evolve: add_columns
    key: [id]
    create: true
    columns:
      - {name: id, type: int8, path: id, required: true}
`)
	cfg.Postgres.MaxConns = 2
	e.start(cfg, func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	var recs []*kgo.Record
	for i := range 8 {
		recs = append(recs, &kgo.Record{Key: fmt.Append(nil, i), Value: append(regFrame(1), fmt.Appendf(nil, `{"id":%d,"extra":"x"}`, i)...)})
	}
	e.produce(recs...)
	e.waitDrained(8)
	if n := e.count(`SELECT count(*) FROM public.orders`); n != 8 {
		t.Errorf("%d rows, want 8", n)
	}
	if got := columnsOf(e); got != "id bigint NO" {
		t.Errorf("columns %s, want id alone", got)
	}
	n := strings.Count(logs.String(), "a writer schema gives no top-level fields to follow")
	if n != 1 {
		t.Errorf("the warning appears %d times, want once:\n%s", n, logs.String())
	}
}

// TestRegistryWarningsOncePerTable: what every worker's decoder finds
// alike about a writer schema (here an id the registry does not know, and
// a column whose path names no field) is logged once for the table, not
// once per worker.
func TestRegistryWarningsOncePerTable(t *testing.T) {
	e := newEnv(t, 4)
	url := registryWith(t, "events-value", registry.TypeAvro, `{"type":"record","name":"O","fields":[{"name":"id","type":"long"}]}`)
	var logs syncBuffer
	cfg := e.configRegistry(url, `
  - name: public.orders
    topics: [events]
    format: avro
    key: [id]
    create: true
    columns:
      - {name: id, type: int8, path: id, required: true}
      - {name: note, type: text, path: nte}
`)
	cfg.Postgres.MaxConns = 2
	e.start(cfg, func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	var recs []*kgo.Record
	for i := range 16 {
		id := 1 // the registered schema
		if i%2 == 1 {
			id = 99 // unknown to the registry
		}
		recs = append(recs, &kgo.Record{Key: fmt.Append(nil, i), Value: avroLong(regFrame(id), int64(i))})
	}
	e.produce(recs...)
	e.waitDrained(16)
	parts := map[int32]bool{}
	for _, r := range recs {
		parts[r.Partition] = true
	}
	if len(parts) < 3 {
		t.Fatalf("the records went to partitions %v: too few for both workers", parts)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 8 {
		t.Errorf("%d dead letters, want the 8 records of the unknown schema", n)
	}
	for _, msg := range []string{"cannot be had from the schema registry", "columns whose path names no field of the writer schema"} {
		if n := strings.Count(logs.String(), msg); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", msg, n, logs.String())
		}
	}
}
