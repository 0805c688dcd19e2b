package ingest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/registry"
)

// The Envelope of a Debezium PostgreSQL connector's orders table as
// AvroConverter registers it (subject events-value), and its key (events-key).
const (
	dbzAvroValue = `{"type":"record","name":"Envelope","namespace":"shop.public.orders","fields":[
 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
  {"name":"id","type":"long"},
  {"name":"name","type":["null","string"],"default":null},
  {"name":"qty","type":"int"},
  {"name":"price","type":["null",{"type":"bytes","scale":2,"precision":10,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null},
  {"name":"updated_at","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}],"default":null}
 ],"connect.name":"shop.public.orders.Value"}],"default":null},
 {"name":"after","type":["null","Value"],"default":null},
 {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[
  {"name":"connector","type":"string"},{"name":"db","type":"string"},{"name":"schema","type":"string"},{"name":"table","type":"string"},
  {"name":"ts_ms","type":"long"},{"name":"lsn","type":["null","long"],"default":null}],"connect.name":"io.debezium.connector.postgresql.Source"}},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"],"default":null},
 {"name":"transaction","type":["null",{"type":"record","name":"block","namespace":"event","fields":[{"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}],"connect.name":"event.block"}],"default":null}
],"connect.name":"shop.public.orders.Envelope"}`
	dbzAvroKey = `{"type":"record","name":"Key","namespace":"shop.public.orders","fields":[{"name":"id","type":"long"}],"connect.name":"shop.public.orders.Key"}`
)

type avroOrder struct {
	ID        int64   `avro:"id"`
	Name      *string `avro:"name"`
	Qty       int32   `avro:"qty"`
	Price     []byte  `avro:"price"`
	UpdatedAt *int64  `avro:"updated_at"`
	// Fields of later Envelope versions (dbzAvroTopic.addFields); a
	// version without them does not write them.
	Note    *string `avro:"note"`
	Shipped *int32  `avro:"shipped"`
	Legacy  any     `avro:"legacy"`
	Region  *string `avro:"region"`
}

type avroSource struct {
	Connector string `avro:"connector"`
	DB        string `avro:"db"`
	Schema    string `avro:"schema"`
	Table     string `avro:"table"`
	TsMs      int64  `avro:"ts_ms"`
	LSN       *int64 `avro:"lsn"`
}

type avroTx struct {
	ID                  string `avro:"id"`
	TotalOrder          int64  `avro:"total_order"`
	DataCollectionOrder int64  `avro:"data_collection_order"`
}

type avroEnvelope struct {
	Before      *avroOrder `avro:"before"`
	After       *avroOrder `avro:"after"`
	Source      avroSource `avro:"source"`
	Op          string     `avro:"op"`
	TsMs        *int64     `avro:"ts_ms"`
	Transaction *avroTx    `avro:"transaction"`
}

type avroKey struct {
	ID int64 `avro:"id"`
}

// dbzAvroTopic is topic events as a Debezium connector writes it through
// the AvroConverter: its Envelope registered under events-value and its
// Key under events-key, in a registry of its own, and the records of its
// changes.
type dbzAvroTopic struct {
	t              *testing.T
	url            string
	reg            *registry.Client
	valueID, keyID int
	vs, ks         avro.Schema
	valueText      string // the Envelope of vs
	lsn            int64
}

// setKey registers key, a Key record, as the next version of events-key,
// as Debezium does when the source table's primary key changes; the
// records that follow are keyed with it (keyOf).
func (d *dbzAvroTopic) setKey(key string) {
	d.t.Helper()
	id, err := d.reg.Register(d.t.Context(), "events-key", registry.TypeAvro, key)
	if err != nil {
		d.t.Fatal(err)
	}
	// A cache of its own: every version names its record Key.
	ks, err := avro.ParseWithCache(key, "", &avro.SchemaCache{})
	if err != nil {
		d.t.Fatal(err)
	}
	d.keyID, d.ks = id, ks
}

// keyOf is a record key of the current Key record holding fields (the
// Key record's field values by name).
func (d *dbzAvroTopic) keyOf(fields map[string]any) []byte { return d.frame(d.keyID, d.ks, fields) }

// dbzOrdersColumns lists the columns of a table of dbzAvroTopic's rows,
// its lsn (for guard: lsn) and op included.
const dbzOrdersColumns = `    columns:
      - {name: id, type: int8, path: id}
      - {name: name, type: text, path: name}
      - {name: qty, type: int4, path: qty}
      - {name: price, type: numeric, path: price}
      - {name: updated_at, type: timestamp, path: updated_at}
      - {name: lsn, type: int8, source: debezium.source.lsn}
      - {name: op, type: text, source: debezium.op}
`

func newDbzAvroTopic(t *testing.T) *dbzAvroTopic {
	t.Helper()
	url := registryWith(t, "events-value", registry.TypeAvro, dbzAvroValue)
	cl, err := registry.New(registry.Options{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	valueID, err := cl.Register(t.Context(), "events-value", registry.TypeAvro, dbzAvroValue)
	if err != nil {
		t.Fatal(err)
	}
	keyID, err := cl.Register(t.Context(), "events-key", registry.TypeAvro, dbzAvroKey)
	if err != nil {
		t.Fatal(err)
	}
	return &dbzAvroTopic{t: t, url: url, reg: cl, valueID: valueID, keyID: keyID, vs: avro.MustParse(dbzAvroValue), ks: avro.MustParse(dbzAvroKey),
		valueText: dbzAvroValue}
}

// addFields registers the next Envelope version under events-value, as
// Debezium does after ALTER TABLE … ADD COLUMN: the row record of the
// current version with fields (JSON field declarations) appended, or with
// the fields of those names replaced where it has them. The events that
// follow are written with it.
func (d *dbzAvroTopic) addFields(fields ...string) {
	d.t.Helper()
	const end = "\n ],\"connect.name\":\"shop.public.orders.Value\""
	var row []map[string]any
	head, tail, ok := strings.Cut(d.valueText, end)
	if !ok {
		d.t.Fatal("no row record in the Envelope")
	}
	list := head[strings.Index(head, `"name":"Value","fields":`)+len(`"name":"Value","fields":`):]
	if err := json.Unmarshal([]byte(list+"]"), &row); err != nil {
		d.t.Fatal(err)
	}
	for _, f := range fields {
		var fd map[string]any
		if err := json.Unmarshal([]byte(f), &fd); err != nil {
			d.t.Fatal(err)
		}
		if i := slices.IndexFunc(row, func(r map[string]any) bool { return r["name"] == fd["name"] }); i >= 0 {
			row[i] = fd
		} else {
			row = append(row, fd)
		}
	}
	b, err := json.Marshal(row)
	if err != nil {
		d.t.Fatal(err)
	}
	text := head[:len(head)-len(list)] + string(b[:len(b)-1]) + end + tail
	id, err := d.reg.Register(d.t.Context(), "events-value", registry.TypeAvro, text)
	if err != nil {
		d.t.Fatal(err)
	}
	d.valueID, d.vs, d.valueText = id, avro.MustParse(text), text
}

// frame is v in schema s, framed with schema id.
func (d *dbzAvroTopic) frame(id int, s avro.Schema, v any) []byte {
	d.t.Helper()
	b, err := avro.Marshal(s, v)
	if err != nil {
		d.t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), b...)
}

// key is the record key of row id.
func (d *dbzAvroTopic) key(id int64) []byte { return d.frame(d.keyID, d.ks, &avroKey{ID: id}) }

// row is a row of the source table; its price is qty × 1.50.
func (d *dbzAvroTopic) row(id int64, name string, qty int32) *avroOrder {
	return &avroOrder{ID: id, Name: &name, Qty: qty, Price: append([]byte{0}, big.NewInt(int64(qty)*150).Bytes()...), UpdatedAt: new(int64(1_700_000_000_123_456))}
}

// event is the change op from before to after, at the next LSN, keyed by
// the row's id.
func (d *dbzAvroTopic) event(op string, before, after *avroOrder) *kgo.Record {
	d.lsn += 10
	l := d.lsn
	env := &avroEnvelope{Before: before, After: after, Op: op, TsMs: new(int64(1_700_000_000_001)),
		Source: avroSource{Connector: "postgresql", DB: "shop", Schema: "public", Table: "orders", TsMs: 1_700_000_000_000, LSN: &l}}
	id := int64(0)
	switch {
	case after != nil:
		id = after.ID
	case before != nil:
		id = before.ID
	}
	return &kgo.Record{Key: d.key(id), Value: d.frame(d.valueID, d.vs, env)}
}

// tomb is the tombstone that follows the delete of row id.
func (d *dbzAvroTopic) tomb(id int64) *kgo.Record { return &kgo.Record{Key: d.key(id)} }

// TestDebeziumAvroStream: Debezium events written by AvroConverter (the
// value and key framed with registry ids) land as the JSON events do:
// creates, updates, a TOAST placeholder, deletes by before and by the
// record key with their tombstones, and a truncate; a record with an
// unknown schema id and one whose payload does not match its schema are
// dead letters.
func TestDebeziumAvroStream(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzAvroTopic(t)
	event, row, tomb := d.event, d.row, d.tomb
	unknown := event("c", nil, row(8, "ghost", 8))
	binary.BigEndian.PutUint32(unknown.Value[1:], 999)
	mismatch := event("c", nil, row(9, "broken", 9))
	mismatch.Value = mismatch.Value[:len(mismatch.Value)-4]

	cfg := e.configRegistry(d.url, `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    key: [id]
    guard: lsn
`+dbzOrdersColumns)
	cfg.Batch.MaxRows = 3
	e.start(cfg)
	e.produce(
		event("r", nil, row(1, "apple", 1)),
		event("c", nil, row(2, "pear", 2)),
		event("c", nil, row(3, "plum", 3)),
		event("c", nil, row(4, "fig", 4)),
		event("u", row(1, "apple", 1), row(1, "apple", 10)),
		event("d", row(2, "pear", 2), nil), tomb(2),
	)
	byKey := event("d", nil, nil) // before null: the key comes from the record key
	byKey.Key = d.key(3)
	e.produce(
		byKey, tomb(3),
		event("u", row(4, "fig", 4), row(4, "__debezium_unavailable_value", 40)),
		unknown, mismatch,
	)
	e.waitDrained(12)
	var got []string
	rs, err := e.db.Query(e.ctx, `SELECT id, name, qty, price::text, updated_at::text, op FROM public.orders ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id, qty int64
		var name, price, ts, op string
		if err := rs.Scan(&id, &name, &qty, &price, &ts, &op); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s:%d:%s:%s:%s", id, name, qty, price, ts, op))
	}
	rs.Close()
	want := "1:apple:10:15.00:2023-11-14 22:13:20.123456:u 4:fig:40:60.00:2023-11-14 22:13:20.123456:u"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("target holds\n%q, want\n%q", g, want)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 2 {
		t.Errorf("%d dead letters, want 2", n)
	}
	for _, reason := range []string{"unknown_schema", "schema_mismatch"} {
		if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE error LIKE '%' || $1 || '%'`, reason); n != 1 {
			t.Errorf("%d dead letters with %s, want 1", n, reason)
		}
	}
}

// TestDebeziumAvroCreate: a format debezium table with converter avro,
// create: true and neither columns nor key is created from the registry:
// a column per field of the Envelope's row, typed by its Connect type,
// and the primary key of the Key record (subject events-key). The log
// says what was created; snapshot reads, an update and a delete with its
// tombstone land.
func TestDebeziumAvroCreate(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzAvroTopic(t)
	cfg := e.configRegistry(d.url, `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
`)
	var logs syncBuffer
	startApp(t, cfg, io.MultiWriter(&logs, testWriter{t}))
	e.produce(
		d.event("r", nil, d.row(1, "apple", 1)),
		d.event("r", nil, d.row(2, "pear", 2)),
		d.event("u", d.row(1, "apple", 1), d.row(1, "apple", 10)),
		d.event("d", d.row(2, "pear", 2), nil), d.tomb(2),
	)
	e.waitDrained(5)

	want := "id bigint NO, name text YES, qty integer YES, price numeric YES, updated_at timestamp without time zone YES"
	if got := columnsOf(e); got != want {
		t.Errorf("columns of the created table:\n got %s\nwant %s", got, want)
	}
	var pk string
	if err := e.db.QueryRow(e.ctx, `SELECT string_agg(a.attname, ',') FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = 'public.orders'::regclass AND i.indisprimary`).Scan(&pk); err != nil || pk != "id" {
		t.Errorf("primary key (%s), %v; want (id)", pk, err)
	}
	var row string
	if err := e.db.QueryRow(e.ctx, `SELECT string_agg(concat_ws(':', id, name, qty, price, updated_at), ' ' ORDER BY id) FROM public.orders`).Scan(&row); err != nil ||
		row != "1:apple:10:15.00:2023-11-14 22:13:20.123456" {
		t.Errorf("target holds %q, %v; want row 1 updated and row 2 deleted", row, err)
	}
	var created string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "the table is created with them") {
			created = line
		}
	}
	for _, want := range []string{"table=public.orders", "subject=events-value", `columns="[id int8 name text qty int4 price numeric updated_at timestamp]"`,
		"key=[id]", "key_subject=events-key"} {
		if !strings.Contains(created, want) {
			t.Errorf("the log line of the created table lacks %s:\n%s", want, created)
		}
	}
}

// TestDebeziumAvroCreateNoKeySubject: a derived format debezium table
// without key whose topic has no key subject (a connector whose key
// converter is not the AvroConverter) is refused at start, saying to set
// key; with key set it starts.
func TestDebeziumAvroCreateNoKeySubject(t *testing.T) {
	e := newEnv(t, 1)
	url := registryWith(t, "events-value", registry.TypeAvro, dbzAvroValue)
	table := `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
`
	_, err := New(e.configRegistry(url, table), nil)
	if err == nil || !strings.Contains(err.Error(), "tables[0].key: empty, and the schema registry has no subject events-key") ||
		!strings.Contains(err.Error(), "set key to the source table's primary key columns") {
		t.Fatalf("start without a key subject: %v", err)
	}
	if err := Migrate(e.ctx, e.configRegistry(url, table+"    key: [id]\n")); err != nil {
		t.Fatalf("migrate with key set: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'`); n != 5 {
		t.Errorf("the table created with key set has %d columns, want 5", n)
	}
}

// TestDebeziumAvroCreateSubjectGainsField: after the source table gained
// a column (a new Envelope version), a derived table is used as it is,
// with a warning that names the field and the fixes (evolve: add_columns
// among them); with evolve: add_columns migrate --check lists the column
// and the next migrate adds it, typed as the derivation types it.
func TestDebeziumAvroCreateSubjectGainsField(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzAvroTopic(t)
	table := `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
`
	if err := Migrate(e.ctx, e.configRegistry(d.url, table)); err != nil {
		t.Fatal(err)
	}
	v2 := strings.Replace(dbzAvroValue, `{"name":"qty","type":"int"},`, `{"name":"qty","type":"int"},{"name":"note","type":["null","string"],"default":null},`, 1)
	cl, _ := registry.New(registry.Options{URLs: []string{d.url}})
	if _, err := cl.Register(e.ctx, "events-value", registry.TypeAvro, v2); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cfg := e.configRegistry(d.url, table)
	if err := deriveTables(e.ctx, cfg, cl, nil, slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.Tables[0].Columns); strings.Contains(got, "note") {
		t.Errorf("columns %s hold the field the table lacks", got)
	}
	warn := ""
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "the table has no column for fields of the subject") {
			warn = line
		}
	}
	if !strings.Contains(warn, "fields=[note]") || !strings.Contains(warn, "ADD COLUMN") || !strings.Contains(warn, "set evolve: add_columns") {
		t.Errorf("warning about the new field:\n%s", warn)
	}
	var out strings.Builder
	if err := CheckMigration(e.ctx, e.configRegistry(d.url, table+"    evolve: add_columns\n"), &out); err != nil ||
		!strings.Contains(out.String(), "add column note text to table public.orders (a field of subject events-value, version 2; evolve: add_columns)") ||
		!strings.Contains(out.String(), "public.orders: evolve add_columns adds a nullable column for each new field of the rows of its Envelope versions, while running") {
		t.Errorf("migrate --check with evolve: %v\n%s", err, out.String())
	}
	if err := Migrate(e.ctx, e.configRegistry(d.url, table+"    evolve: add_columns\n")); err != nil {
		t.Fatal(err)
	}
	if got, want := columnsOf(e), "id bigint NO, name text YES, qty integer YES, price numeric YES, updated_at timestamp without time zone YES, note text YES"; got != want {
		t.Errorf("columns after migrate with evolve:\n got %s\nwant %s", got, want)
	}
}

// TestDebeziumAvroCreateNullField: a field of type null in the row of
// the latest Envelope holds no value to type a column by: a derived table
// gets no column for it (a jsonb guess would stay when the field gets a
// real type, since columns are never retyped), with a warning naming it
// and, the table having no evolve, saying that evolve: add_columns would
// add its column once a later writer schema types it; the other fields
// get theirs.
func TestDebeziumAvroCreateNullField(t *testing.T) {
	v := strings.Replace(dbzAvroValue, `{"name":"qty","type":"int"},`,
		`{"name":"qty","type":"int"},{"name":"legacy","type":"null","default":null},{"name":"never","type":["null"],"default":null},`, 1)
	url := registryWith(t, "events-value", registry.TypeAvro, v)
	reg, err := registry.New(registry.Options{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	y := configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    key: [id]
`)
	cfg, err := Parse(append([]byte("schema_registry:\n  urls: ["+url+"]\n"), y...), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	if err := deriveColumns(cfg, reg, slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))); err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, c := range cfg.Tables[0].Columns {
		cols = append(cols, c.Name+" "+c.Type)
	}
	if got, want := strings.Join(cols, ", "), "id int8, name text, qty int4, price numeric, updated_at timestamp"; got != want {
		t.Errorf("derived columns:\n got %s\nwant %s", got, want)
	}
	for _, field := range []string{"legacy", "never"} {
		found := false
		for line := range strings.Lines(logs.String()) {
			found = found || strings.Contains(line, "a field of the subject gets no column: its type is null") &&
				strings.Contains(line, "with evolve: add_columns a later writer schema that gives it a type adds its column") &&
				strings.HasSuffix(strings.TrimSpace(line), "field="+field)
		}
		if !found {
			t.Errorf("no warning names field %s of type null:\n%s", field, logs.String())
		}
	}
}

func TestDebeziumConverterConfig(t *testing.T) {
	for _, tc := range []struct{ table, want string }{
		{"format: json\n    converter: avro", "converter"},
		{"format: debezium\n    converter: protobuf", "unknown converter"},
	} {
		y := configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", `
  - name: public.orders
    topics: [events]
    `+tc.table+`
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
`)
		if _, err := Parse(y, noEnv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.table, err, tc.want)
		}
	}
	// converter avro needs the registry.
	y := configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
`)
	if _, err := Parse(y, noEnv); err == nil || !strings.Contains(err.Error(), "schema_registry") {
		t.Errorf("converter avro without a registry: %v", err)
	}
}

// TestDebeziumEvolveConfig: evolve: add_columns follows the Envelope
// versions of converter avro; with the JSON converter (the default) there
// are none, and the error says which converter has them.
func TestDebeziumEvolveConfig(t *testing.T) {
	table := func(converter string) []byte {
		return configYAML([]string{"127.0.0.1:9092"}, "postgres://x@127.0.0.1/db", "", "", `
  - name: public.orders
    topics: [events]
    format: debezium`+converter+`
    evolve: add_columns
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
`)
	}
	for _, conv := range []string{"", "\n    converter: json"} {
		_, err := Parse(table(conv), noEnv)
		if err == nil || !strings.Contains(err.Error(), "tables[0].evolve") || !strings.Contains(err.Error(), "converter json has none") ||
			!strings.Contains(err.Error(), "converter: avro (Confluent's AvroConverter with a Schema Registry) supports it") {
			t.Errorf("evolve with converter %q: %v, want the error naming converter: avro", conv, err)
		}
	}
	y := append([]byte("schema_registry:\n  urls: [http://127.0.0.1:8081]\n"), table("\n    converter: avro")...)
	if _, err := Parse(y, noEnv); err != nil {
		t.Errorf("evolve with converter avro: %v", err)
	}
}

// orderRows returns the rows of public.orders, by id, as
// id:name:qty:note:shipped with NULL for a null.
func orderRows(e *env) string {
	e.t.Helper()
	var got string
	if err := e.db.QueryRow(e.ctx, `SELECT string_agg(concat_ws(':', id, coalesce(name, 'NULL'), qty, coalesce(note, 'NULL'), coalesce(shipped::text, 'NULL')), ' ' ORDER BY id)
		FROM public.orders`).Scan(&got); err != nil {
		e.t.Fatal(err)
	}
	return got
}

// columnsOf returns the columns of public.orders as "name type nullable",
// in order.
func columnsOf(e *env) string {
	e.t.Helper()
	var cols []string
	rs, err := e.db.Query(e.ctx, `SELECT column_name, data_type, is_nullable FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'orders' ORDER BY ordinal_position`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var name, typ, nullable string
		if err := rs.Scan(&name, &typ, &nullable); err != nil {
			e.t.Fatal(err)
		}
		cols = append(cols, name+" "+typ+" "+nullable)
	}
	return strings.Join(cols, ", ")
}

// TestDebeziumAvroEvolve: with evolve: add_columns, a column added to the
// source table (the next Envelope version's row gains note, an optional
// string, and shipped, an optional io.debezium.time.Date) becomes a
// nullable column of the target, typed as a table derived from the
// registry would have it (text, date; not the int4 of a plain Avro int),
// before the batch holding the first event of the new version is written:
// the events before it are in the batch open when it arrives, which
// commits first without the columns. That event and the later ones fill
// them; the earlier rows hold NULL. After the evolution a TOAST
// placeholder in the new column keeps its stored value, and deletes by
// before (written with the new version) and by the record key remove
// their rows.
func TestDebeziumAvroEvolve(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzAvroTopic(t)
	event, row, tomb := d.event, d.row, d.tomb
	cfg := e.configRegistry(d.url, `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    evolve: add_columns
    key: [id]
    guard: lsn
`+dbzOrdersColumns)
	// Produced before the start, so that one fetch brings every event and
	// the first batch is open when the new version arrives.
	e.produce(
		event("r", nil, row(1, "apple", 1)),
		event("c", nil, row(2, "pear", 2)),
		event("c", nil, row(3, "plum", 3)),
		event("c", nil, row(4, "fig", 4)),
	)
	d.addFields(`{"name":"note","type":["null","string"],"default":null}`,
		`{"name":"shipped","type":["null",{"type":"int","connect.version":1,"connect.name":"io.debezium.time.Date"}],"default":null}`)
	withNote := func(r *avroOrder, note string, shipped int32) *avroOrder {
		r.Note = &note
		if shipped != 0 {
			r.Shipped = &shipped
		}
		return r
	}
	e.produce(
		event("c", nil, withNote(row(5, "kiwi", 5), "n5", 19000)),
		event("u", nil, withNote(row(1, "apple", 10), "n1", 0)),
	)
	var logs syncBuffer
	e.start(cfg, func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	e.waitDrained(6)
	want := "id bigint NO, name text YES, qty integer YES, price numeric YES, updated_at timestamp without time zone YES, lsn bigint YES, op text YES, " +
		"note text YES, shipped date YES"
	if got := columnsOf(e); got != want {
		t.Errorf("columns after the new version:\n got %s\nwant %s", got, want)
	}
	if got, want := orderRows(e), "1:apple:10:n1:NULL 2:pear:2:NULL:NULL 3:plum:3:NULL:NULL 4:fig:4:NULL:NULL 5:kiwi:5:n5:2022-01-08"; got != want {
		t.Errorf("target holds\n%q, want\n%q", got, want)
	}
	var evolved, flushed bool
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "table evolved: columns added for new writer-schema fields") &&
			strings.Contains(line, "table=public.orders") && strings.Contains(line, `columns="[note text shipped date]"`) {
			evolved = true
		}
		// The batch open when the new version came, committed first with
		// the four rows of the old one.
		if strings.Contains(line, "batch committed") && strings.Contains(line, "rows=4") && strings.Contains(line, "flushed=evolved") {
			flushed = true
		}
	}
	if !evolved || !flushed {
		t.Errorf("the log lacks the evolution (%v) or the batch it cut (%v):\n%s", evolved, flushed, logs.String())
	}

	// After the evolution: a placeholder in the new column, a delete by
	// before in the new version, and one by the record key.
	byKey := event("d", nil, nil)
	byKey.Key = d.key(3)
	e.produce(
		event("u", nil, withNote(row(5, "kiwi", 50), "__debezium_unavailable_value", 19000)),
		event("d", withNote(row(2, "pear", 2), "gone", 0), nil), tomb(2),
		byKey, tomb(3),
	)
	e.waitDrained(11)
	if got, want := orderRows(e), "1:apple:10:n1:NULL 4:fig:4:NULL:NULL 5:kiwi:50:n5:2022-01-08"; got != want {
		t.Errorf("target holds\n%q, want\n%q", got, want)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestDebeziumAvroEvolveNullField: a field of type null, which a new
// Envelope version's row may declare, holds no value to type a column
// by: it gets no column (a jsonb guess would stay when the field gets a
// real type, since columns are never retyped), with a warning naming it,
// while the other new field of the version gets its column and the
// events land. A later version that gives the field a type adds its
// column, filled from that version on. The table is derived from the
// registry.
func TestDebeziumAvroEvolveNullField(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzAvroTopic(t)
	cfg := e.configRegistry(d.url, `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    evolve: add_columns
`)
	var logs syncBuffer
	e.start(cfg, func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	d.addFields(`{"name":"legacy","type":"null","default":null}`, `{"name":"note","type":["null","string"],"default":null}`)
	r1 := d.row(1, "apple", 1)
	r1.Note = new("n1")
	e.produce(d.event("c", nil, r1))
	e.waitDrained(1)
	want := "id bigint NO, name text YES, qty integer YES, price numeric YES, updated_at timestamp without time zone YES, note text YES"
	if got := columnsOf(e); got != want {
		t.Errorf("columns after a version with a field of type null:\n got %s\nwant %s", got, want)
	}
	warned := false
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "cannot add a column for a new field: its type is null") && strings.Contains(line, "field=legacy") &&
			strings.Contains(line, "table=public.orders") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning names the field of type null:\n%s", logs.String())
	}
	d.addFields(`{"name":"legacy","type":["null","string"],"default":null}`)
	r2 := d.row(2, "pear", 2)
	r2.Legacy = "old"
	e.produce(d.event("c", nil, r2))
	e.waitDrained(2)
	if got := columnsOf(e); got != want+", legacy text YES" {
		t.Errorf("columns after the field got a type:\n got %s\nwant %s", got, want+", legacy text YES")
	}
	var got string
	if err := e.db.QueryRow(e.ctx, `SELECT string_agg(concat_ws(':', id, coalesce(note, 'NULL'), coalesce(legacy, 'NULL')), ' ' ORDER BY id) FROM public.orders`).Scan(&got); err != nil ||
		got != "1:n1:NULL 2:NULL:old" {
		t.Errorf("target holds %q, %v; want 1:n1:NULL 2:NULL:old", got, err)
	}
}

// TestDebeziumAvroEvolveNotEnvelope: a writer schema that is no Envelope
// (a flattened row, as ExtractNewRecordState writes) has no row to follow:
// evolution adds no column for its fields, the log says why, and its
// records are dead letters. The warning is logged once for the table and
// schema, not by each decoder meeting it: its records are on four
// partitions, spread over two workers (postgres.max_conns: 2), each with
// a decoder of its own.
func TestDebeziumAvroEvolveNotEnvelope(t *testing.T) {
	e := newEnv(t, 4)
	d := newDbzAvroTopic(t)
	flat := `{"type":"record","name":"Value","fields":[{"name":"id","type":"long"},{"name":"extra","type":"string"}]}`
	id, err := d.reg.Register(e.ctx, "flat-value", registry.TypeAvro, flat)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.configRegistry(d.url, `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    evolve: add_columns
`)
	var logs syncBuffer
	r := e.start(cfg, func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	for p := range int32(4) {
		e.produceTo(p, &kgo.Record{Key: d.key(int64(p)), Value: d.frame(id, avro.MustParse(flat), map[string]any{"id": int64(p), "extra": "x"})})
	}
	e.waitDrained(4)
	if n := workersOf(r.app, "events"); n != 2 {
		t.Fatalf("the partitions are on %d workers, want 2", n)
	}
	if got, want := columnsOf(e), "id bigint NO, name text YES, qty integer YES, price numeric YES, updated_at timestamp without time zone YES"; got != want {
		t.Errorf("columns after a schema that is no Envelope:\n got %s\nwant %s", got, want)
	}
	warned := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "a writer schema gives no row fields to follow; the table gets no column for it") &&
			strings.Contains(line, "no Debezium Envelope") && strings.Contains(line, "schema=\"id "+strconv.Itoa(id)+"\"") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("the log says %d times why no column was added, want once:\n%s", warned, logs.String())
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 4 {
		t.Errorf("%d dead letters, want 4", n)
	}
}

// produceTo produces recs to partition p of the env's topic.
func (e *env) produceTo(p int32, recs ...*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.broker.Addrs()...), kgo.DefaultProduceTopic(e.topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		r.Partition = p
	}
	if err := cl.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// workersOf returns how many of a's workers own partitions of topic.
func workersOf(a *App, topic string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	ws := map[*worker]bool{}
	for k, st := range a.parts {
		if k.topic == topic && !st.dropped.Load() {
			ws[st.worker] = true
		}
	}
	return len(ws)
}
