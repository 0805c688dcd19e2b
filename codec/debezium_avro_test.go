package codec

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// dbzAvroValueSchema is a Debezium PostgreSQL connector's Envelope as
// AvroConverter registers it (trimmed to the fields the tests need).
const dbzAvroValueSchema = `{"type":"record","name":"Envelope","namespace":"shop.public.orders","fields":[
 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
  {"name":"id","type":"long"},
  {"name":"customer","type":["null","string"],"default":null},
  {"name":"total","type":["null",{"type":"bytes","scale":2,"precision":10,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null},
  {"name":"notes","type":["null","string"],"default":null},
  {"name":"updated_at","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTimestamp"}],"default":null},
  {"name":"ship_date","type":["null",{"type":"int","connect.version":1,"connect.name":"io.debezium.time.Date"}],"default":null},
  {"name":"created_tz","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.time.ZonedTimestamp"}],"default":null},
  {"name":"weight","type":["null",{"type":"record","name":"VariableScaleDecimal","namespace":"io.debezium.data","fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}],"connect.doc":"Variable scaled decimal","connect.version":1,"connect.name":"io.debezium.data.VariableScaleDecimal"}],"default":null},
  {"name":"qty","type":{"type":"int","connect.type":"int16"}},
  {"name":"ratio","type":["null","double"],"default":null},
  {"name":"active","type":["null","boolean"],"default":null},
  {"name":"doc","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.data.Json"}],"default":null},
  {"name":"status","type":["null",{"type":"string","connect.version":1,"connect.parameters":{"allowed":"new,paid"},"connect.name":"io.debezium.data.Enum"}],"default":null},
  {"name":"blob","type":["null","bytes"],"default":null}
 ],"connect.name":"shop.public.orders.Value"}],"default":null},
 {"name":"after","type":["null","Value"],"default":null},
 {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.postgresql","fields":[
  {"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},
  {"name":"ts_ms","type":"long"},
  {"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,last,false,incremental"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"},
  {"name":"db","type":"string"},{"name":"schema","type":"string"},{"name":"table","type":"string"},
  {"name":"txId","type":["null","long"],"default":null},{"name":"lsn","type":["null","long"],"default":null}
 ],"connect.name":"io.debezium.connector.postgresql.Source"}},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"],"default":null},
 {"name":"transaction","type":["null",{"type":"record","name":"block","namespace":"event","fields":[{"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}],"connect.version":1,"connect.name":"event.block"}],"default":null}
],"connect.version":1,"connect.name":"shop.public.orders.Envelope"}`

// dbzAvroKeySchema is the connector's key schema: the primary key.
const dbzAvroKeySchema = `{"type":"record","name":"Key","namespace":"shop.public.orders","fields":[{"name":"id","type":"long"}],"connect.name":"shop.public.orders.Key"}`

// dbzConnectRow is the Connect schema of the row as JsonConverter writes
// it, written out independently of the derivation under test.
const dbzConnectRow = `{"type":"struct","fields":[
 {"type":"int64","optional":false,"field":"id"},
 {"type":"string","optional":true,"field":"customer"},
 {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"total"},
 {"type":"string","optional":true,"field":"notes"},
 {"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1,"field":"updated_at"},
 {"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1,"field":"ship_date"},
 {"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"created_tz"},
 {"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal","field":"weight"},
 {"type":"int16","optional":false,"field":"qty"},
 {"type":"double","optional":true,"field":"ratio"},
 {"type":"boolean","optional":true,"field":"active"},
 {"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"doc"},
 {"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"new,paid"},"field":"status"},
 {"type":"bytes","optional":true,"field":"blob"}
],"optional":true,"name":"shop.public.orders.Value"`

var dbzConnectSchema = `{"type":"struct","fields":[` +
	dbzConnectRow + `,"field":"before"},` + dbzConnectRow + `,"field":"after"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},` +
	`{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},` +
	`{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},` +
	`{"type":"string","optional":false,"field":"db"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},` +
	`{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},` +
	`{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}` +
	`],"optional":false,"name":"shop.public.orders.Envelope","version":1}`

const dbzConnectKeySchema = `{"type":"struct","fields":[{"type":"int64","optional":false,"field":"id"}],"optional":false,"name":"shop.public.orders.Key"}`

// The datum types, tagged for hamba/avro and for encoding/json, which
// writes them as JsonConverter writes the payload (nil pointers null,
// bytes in base64).
type dbzVSD struct {
	Scale int32  `avro:"scale" json:"scale"`
	Value []byte `avro:"value" json:"value"`
}

type dbzRow struct {
	ID        int64    `avro:"id" json:"id"`
	Customer  *string  `avro:"customer" json:"customer"`
	Total     []byte   `avro:"total" json:"total"`
	Notes     *string  `avro:"notes" json:"notes"`
	UpdatedAt *int64   `avro:"updated_at" json:"updated_at"`
	ShipDate  *int32   `avro:"ship_date" json:"ship_date"`
	CreatedTZ *string  `avro:"created_tz" json:"created_tz"`
	Weight    *dbzVSD  `avro:"weight" json:"weight"`
	Qty       int32    `avro:"qty" json:"qty"`
	Ratio     *float64 `avro:"ratio" json:"ratio"`
	Active    *bool    `avro:"active" json:"active"`
	Doc       *string  `avro:"doc" json:"doc"`
	Status    *string  `avro:"status" json:"status"`
	Blob      []byte   `avro:"blob" json:"blob"`
}

type dbzSource struct {
	Version   string  `avro:"version" json:"version"`
	Connector string  `avro:"connector" json:"connector"`
	Name      string  `avro:"name" json:"name"`
	TsMs      int64   `avro:"ts_ms" json:"ts_ms"`
	Snapshot  *string `avro:"snapshot" json:"snapshot"`
	DB        string  `avro:"db" json:"db"`
	Schema    string  `avro:"schema" json:"schema"`
	Table     string  `avro:"table" json:"table"`
	TxID      *int64  `avro:"txId" json:"txId"`
	LSN       *int64  `avro:"lsn" json:"lsn"`
}

type dbzTx struct {
	ID                  string `avro:"id" json:"id"`
	TotalOrder          int64  `avro:"total_order" json:"total_order"`
	DataCollectionOrder int64  `avro:"data_collection_order" json:"data_collection_order"`
}

type dbzEnvelope struct {
	Before      *dbzRow   `avro:"before" json:"before"`
	After       *dbzRow   `avro:"after" json:"after"`
	Source      dbzSource `avro:"source" json:"source"`
	Op          string    `avro:"op" json:"op"`
	TsMs        *int64    `avro:"ts_ms" json:"ts_ms"`
	Transaction *dbzTx    `avro:"transaction" json:"transaction"`
}

type dbzKey struct {
	ID int64 `avro:"id" json:"id"`
}

// dbzAvroColumns map every row field and the envelope sources.
var dbzAvroColumns = []Column{
	{Name: "id", Type: TypeInt8, Path: "id", Key: true},
	{Name: "customer", Type: TypeText, Path: "customer"},
	{Name: "total", Type: TypeNumeric, Path: "total"},
	{Name: "total_f", Type: TypeFloat8, Path: "total"},
	{Name: "notes", Type: TypeText, Path: "notes"},
	{Name: "updated_at", Type: TypeTimestamp, Path: "updated_at"},
	{Name: "updated_txt", Type: TypeText, Path: "updated_at"},
	{Name: "ship_date", Type: TypeDate, Path: "ship_date"},
	{Name: "created_tz", Type: TypeTimestamptz, Path: "created_tz"},
	{Name: "weight", Type: TypeNumeric, Path: "weight"},
	{Name: "qty", Type: TypeInt2, Path: "qty"},
	{Name: "ratio", Type: TypeFloat8, Path: "ratio"},
	{Name: "active", Type: TypeBool, Path: "active"},
	{Name: "doc", Type: TypeJSONB, Path: "doc"},
	{Name: "status", Type: TypeText, Path: "status"},
	{Name: "blob", Type: TypeBytea, Path: "blob"},
	{Name: "op", Type: TypeText, Source: SourceDebeziumOp},
	{Name: "ts", Type: TypeTimestamptz, Source: SourceDebeziumTsMs},
	{Name: "src_ts", Type: TypeInt8, Source: SourceDebeziumSourceTsMs},
	{Name: "lsn", Type: TypeInt8, Source: SourceDebeziumSourceLSN},
	{Name: "tbl", Type: TypeText, Source: SourceDebeziumSourceTable},
	{Name: "txid", Type: TypeText, Source: SourceDebeziumTransactionID},
	{Name: "off", Type: TypeInt8, Source: SourceOffset},
}

func dbzSampleRow(id int64) *dbzRow {
	return &dbzRow{
		ID:        id,
		Customer:  ptr("Zoë \"the\" customer\n"),
		Total:     twosComplement(mustBig("-123456")), // -1234.56
		Notes:     ptr("first note"),
		UpdatedAt: ptr[int64](1_764_370_800_123_456),
		ShipDate:  ptr[int32](20_420),
		CreatedTZ: ptr("2026-11-28T22:00:00.5Z"),
		Weight:    &dbzVSD{Scale: 3, Value: twosComplement(mustBig("98765432109876543210"))},
		Qty:       -7,
		Ratio:     ptr(0.125),
		Active:    ptr(true),
		Doc:       ptr(`{"a": [1, 2, {"b": null}]}`),
		Status:    ptr("paid"),
		Blob:      []byte{0, 1, 0xfe, 0xff},
	}
}

func dbzSampleEnvelope(op string, before, after *dbzRow) *dbzEnvelope {
	return &dbzEnvelope{
		Before: before, After: after, Op: op,
		Source: dbzSource{Version: "2.7.0.Final", Connector: "postgresql", Name: "shop", TsMs: 1_764_370_800_000,
			Snapshot: ptr("false"), DB: "shop", Schema: "public", Table: "orders", TxID: ptr[int64](771), LSN: ptr[int64](24_023_128)},
		TsMs:        ptr[int64](1_764_370_800_456),
		Transaction: &dbzTx{ID: "771:24023128", TotalOrder: 1, DataCollectionOrder: 1},
	}
}

// dbzPair returns an event as AvroConverter writes it (framed with id)
// and as JsonConverter writes it.
func dbzPair(t testing.TB, schema avro.Schema, connect string, id int32, v any) (avroValue, jsonValue []byte) {
	t.Helper()
	b, err := avro.Marshal(schema, v)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return append(AppendRegistryFraming(nil, id), b...), []byte(`{"schema":` + connect + `,"payload":` + string(payload) + `}`)
}

// dbzAvroDecoder returns a ConverterAvro decoder with the value schema as
// id 1 and the key schema as key id 2.
func dbzAvroDecoder(t testing.TB, cols []Column) *Decoder {
	t.Helper()
	d := mustDecoder(t, FormatDebezium, cols, Options{Converter: ConverterAvro})
	if err := d.AddSchema(SchemaRef{ID: 1}, &Schema{Text: dbzAvroValueSchema}); err != nil {
		t.Fatal(err)
	}
	if err := d.AddKeySchema(SchemaRef{ID: 2}, &Schema{Text: dbzAvroKeySchema}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDebeziumAvroMatchesJSON is the differential test: each event,
// encoded by hamba/avro as AvroConverter frames it, must give the fields,
// Op and Unchanged columns the same event gives as JsonConverter JSON.
func TestDebeziumAvroMatchesJSON(t *testing.T) {
	vs := avro.MustParse(dbzAvroValueSchema)
	ks := avro.MustParse(dbzAvroKeySchema)
	toasted := dbzSampleRow(2)
	toasted.Notes = ptr(unavailableValue)
	toasted.Blob = []byte(unavailableValue)
	nulls := &dbzRow{ID: 3, Qty: 1}
	nan := dbzSampleRow(4)
	nan.Ratio = ptr(math.Copysign(0, -1))
	snapshot := dbzSampleEnvelope("r", nil, dbzSampleRow(5))
	snapshot.Transaction, snapshot.TsMs, snapshot.Source.LSN = nil, nil, nil
	cases := []struct {
		name string
		env  *dbzEnvelope
		key  *dbzKey // nil: no key
		want Op
	}{
		{"create", dbzSampleEnvelope("c", nil, dbzSampleRow(1)), &dbzKey{1}, OpUpsert},
		{"update toasted", dbzSampleEnvelope("u", dbzSampleRow(2), toasted), &dbzKey{2}, OpUpsert},
		{"nulls", dbzSampleEnvelope("c", nil, nulls), nil, OpUpsert},
		{"negative zero", dbzSampleEnvelope("u", nil, nan), nil, OpUpsert},
		{"snapshot", snapshot, &dbzKey{5}, OpUpsert},
		{"delete by before", dbzSampleEnvelope("d", dbzSampleRow(6), nil), &dbzKey{6}, OpDelete},
		{"delete by key", dbzSampleEnvelope("d", nil, nil), &dbzKey{7}, OpDelete},
		{"truncate", dbzSampleEnvelope("t", nil, nil), nil, OpTruncate},
		{"message", dbzSampleEnvelope("m", nil, nil), nil, OpSkip},
		{"unknown op", dbzSampleEnvelope("x", nil, nil), nil, OpUpsert},
		{"create without after", dbzSampleEnvelope("c", nil, nil), nil, OpUpsert},
		{"delete without key", dbzSampleEnvelope("d", nil, nil), nil, OpDelete},
	}
	ad := dbzAvroDecoder(t, dbzAvroColumns)
	jd := mustDecoder(t, FormatDebezium, dbzAvroColumns, Options{})
	for _, tc := range cases {
		av, jv := dbzPair(t, vs, dbzConnectSchema, 1, tc.env)
		arec, jrec := &Record{Value: av, Offset: 9}, &Record{Value: jv, Offset: 9}
		if tc.key != nil {
			ak, jk := dbzPair(t, ks, dbzConnectKeySchema, 2, tc.key)
			arec.Key, jrec.Key = ak, jk
		}
		got, gop, gerr := decodeChange(t, ad, arec)
		gunch := slices.Clone(ad.Unchanged())
		want, wop, werr := decodeChange(t, jd, jrec)
		wunch := slices.Clone(jd.Unchanged())
		switch {
		case (gerr == nil) != (werr == nil):
			t.Errorf("%s: avro error %v, json error %v", tc.name, gerr, werr)
			continue
		case gerr != nil:
			if gerr.Reason != werr.Reason {
				t.Errorf("%s: avro %v, json %v", tc.name, gerr, werr)
			}
			continue
		}
		if gop != wop || gop != tc.want {
			t.Errorf("%s: op avro %s, json %s, want %s", tc.name, gop, wop, tc.want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s:\navro %q\njson %q", tc.name, got, want)
		}
		if !slices.Equal(gunch, wunch) {
			t.Errorf("%s: unchanged avro %v, json %v", tc.name, gunch, wunch)
		}
		if tc.name == "update toasted" && len(gunch) == 0 {
			t.Errorf("%s: no unchanged columns", tc.name)
		}
		if tc.name == "create" && (got[2] != "-1234.56" || got[9] != "98765432109876543.210" || got[5] != "2025-11-28 23:00:00.123456") {
			t.Errorf("%s: conversions: %q", tc.name, got)
		}
	}
	// A tombstone is skipped.
	if _, op, err := decodeChange(t, ad, &Record{Key: []byte{0, 0, 0, 0, 2, 2}}); err != nil || op != OpSkip {
		t.Errorf("tombstone: op %s, error %v", op, err)
	}
}

// TestDebeziumAvroConnectSchema holds the derived Connect schema to what
// compilePlan reads: the names and parameters of the fields.
func TestDebeziumAvroConnectSchema(t *testing.T) {
	plan, err := compileConnectPlan(&Schema{Text: dbzAvroValueSchema})
	if err != nil {
		t.Fatal(err)
	}
	head := string(plan.head)
	schema := strings.TrimSuffix(strings.TrimPrefix(head, `{"schema":`), `,"payload":`)
	if !json.Valid([]byte(schema)) {
		t.Fatalf("not JSON: %s", schema)
	}
	cols := make([]column, len(dbzAvroColumns))
	for i := range cols {
		cols[i].Column = dbzAvroColumns[i]
	}
	got := compilePlan([]byte(schema), cols)
	want := compilePlan([]byte(dbzConnectSchema), cols)
	if !slices.Equal(got.row, want.row) || !slices.Equal(got.old, want.old) {
		t.Errorf("encodings: derived %v, JsonConverter %v", got.row, want.row)
	}
}

func TestDebeziumAvroErrors(t *testing.T) {
	vs := avro.MustParse(dbzAvroValueSchema)
	av, _ := dbzPair(t, vs, dbzConnectSchema, 1, dbzSampleEnvelope("c", nil, dbzSampleRow(1)))
	d := mustDecoder(t, FormatDebezium, dbzAvroColumns, Options{Converter: ConverterAvro})

	// The decoder asks for the value schema, then for the key schema.
	_, err := d.AppendFields(nil, &Record{Value: av})
	var need *SchemaNeededError
	if !errors.As(err, &need) || need.Ref.ID != 1 || need.Key {
		t.Fatalf("got %v, want the value schema with id 1", err)
	}
	if err := d.AddSchema(need.Ref, &Schema{Text: dbzAvroValueSchema}); err != nil {
		t.Fatal(err)
	}
	del, _ := dbzPair(t, vs, dbzConnectSchema, 1, dbzSampleEnvelope("d", nil, nil))
	key := append(AppendRegistryFraming(nil, 2), 14)
	if _, err = d.AppendFields(nil, &Record{Value: del, Key: key}); !errors.As(err, &need) || need.Ref.ID != 2 || !need.Key {
		t.Fatalf("got %v, want the key schema with id 2", err)
	}
	if err := d.AddKeySchema(need.Ref, &Schema{Text: dbzAvroKeySchema}); err != nil {
		t.Fatal(err)
	}
	if fields, op, rerr := decodeChange(t, d, &Record{Value: del, Key: key}); rerr != nil || op != OpDelete || fields[0] != "7" {
		t.Fatalf("delete by key: %v %s %v", fields, op, rerr)
	}
	if err := d.AddSchema(SchemaRef{ID: 9}, nil); err == nil {
		t.Fatal("an unknown schema must be reported")
	}
	bad := []struct {
		name   string
		rec    *Record
		reason Reason
	}{
		{"unknown schema", &Record{Value: append(AppendRegistryFraming(nil, 9), av[5:]...)}, ReasonUnknownSchema},
		{"truncated payload", &Record{Value: av[:len(av)-3]}, ReasonSchemaMismatch},
		{"trailing bytes", &Record{Value: append(slices.Clone(av), 0)}, ReasonSchemaMismatch},
		{"JSON value", &Record{Value: []byte(`{"op":"c"}`)}, ReasonBadFraming},
		{"bad key", &Record{Value: del, Key: append(AppendRegistryFraming(nil, 2), 0x80)}, ReasonSchemaMismatch},
	}
	for _, tc := range bad {
		_, _, rerr := decodeChange(t, d, tc.rec)
		if rerr == nil || rerr.Reason != tc.reason {
			t.Errorf("%s: got %v, want %s", tc.name, rerr, tc.reason)
		}
	}
	if _, err := NewDecoder(FormatJSON, dbzAvroColumns[:2], Options{Converter: ConverterAvro}); err == nil {
		t.Error("converter avro with format json must be refused")
	}
}

func TestDebeziumAvroZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	vs := avro.MustParse(dbzAvroValueSchema)
	ks := avro.MustParse(dbzAvroKeySchema)
	d := dbzAvroDecoder(t, dbzAvroColumns)
	av, _ := dbzPair(t, vs, dbzConnectSchema, 1, dbzSampleEnvelope("u", dbzSampleRow(1), dbzSampleRow(1)))
	dv, _ := dbzPair(t, vs, dbzConnectSchema, 1, dbzSampleEnvelope("d", nil, nil))
	ak, _ := dbzPair(t, ks, dbzConnectKeySchema, 2, &dbzKey{1})
	recs := []*Record{{Value: av, Key: ak}, {Value: dv, Key: ak}}
	buf := make([]byte, 0, 4096)
	for _, rec := range recs {
		if _, err := d.AppendFields(buf[:0], rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, rec := range recs {
		if n := testing.AllocsPerRun(100, func() {
			if _, err := d.AppendFields(buf[:0], rec); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%d allocations per record, want 0", int(n))
		}
	}
}

// BenchmarkDebeziumAvro decodes an update event written by AvroConverter
// and, for comparison, the same event as JsonConverter JSON.
func BenchmarkDebeziumAvro(b *testing.B) {
	vs := avro.MustParse(dbzAvroValueSchema)
	av, jv := dbzPair(b, vs, dbzConnectSchema, 1, dbzSampleEnvelope("u", dbzSampleRow(1), dbzSampleRow(1)))
	for _, bc := range []struct {
		name string
		d    *Decoder
		v    []byte
	}{
		{"avro", dbzAvroDecoder(b, dbzAvroColumns), av},
		{"json", mustDecoder(b, FormatDebezium, dbzAvroColumns, Options{}), jv},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rec := &Record{Value: bc.v}
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(len(bc.v)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.d.AppendFields(buf[:0], rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDebeziumAvro feeds arbitrary payloads under the Envelope schema:
// the decoder must return fields or a *RowError, never panic, and a
// payload it accepts must decode to the same fields as the JSON event it
// converted to.
func FuzzDebeziumAvro(f *testing.F) {
	vs := avro.MustParse(dbzAvroValueSchema)
	for _, env := range []*dbzEnvelope{
		dbzSampleEnvelope("c", nil, dbzSampleRow(1)),
		dbzSampleEnvelope("d", dbzSampleRow(2), nil),
		dbzSampleEnvelope("t", nil, nil),
	} {
		av, _ := dbzPair(f, vs, dbzConnectSchema, 1, env)
		f.Add(av[5:])
	}
	ad := dbzAvroDecoder(f, dbzAvroColumns)
	jd := mustDecoder(f, FormatDebezium, dbzAvroColumns, Options{})
	plan, err := compileConnectPlan(&Schema{Text: dbzAvroValueSchema})
	if err != nil {
		f.Fatal(err)
	}
	head := plan.head
	f.Fuzz(func(t *testing.T, payload []byte) {
		rec := &Record{Value: append(AppendRegistryFraming(nil, 1), payload...), Key: []byte(`{"id":1}`)}
		got, gerr := ad.AppendFields(nil, rec)
		var re *RowError
		if gerr != nil && !errors.As(gerr, &re) {
			t.Fatalf("error %T: %v", gerr, gerr)
		}
		if gerr != nil {
			return
		}
		// The decoder converted the payload alone: the JSON event wraps it
		// with the derived schema.
		converted := append(slices.Clone(head), ad.dbzAvro.value.out...)
		converted = append(converted, '}')
		want, werr := jd.AppendFields(nil, &Record{Value: converted, Key: rec.Key})
		if werr != nil || string(got) != string(want) {
			t.Fatalf("avro %q, json %q (%v) for %s", got, want, werr, converted)
		}
	})
}

// TestDebeziumAvroWholeEvent checks the two conversions: without a
// kafka.value column the decoder converts the payload alone, with one the
// whole event, and the columns read the same; the bound on the converted
// event is the same for both.
func TestDebeziumAvroWholeEvent(t *testing.T) {
	vs := avro.MustParse(dbzAvroValueSchema)
	av, jv := dbzPair(t, vs, dbzConnectSchema, 1, dbzSampleEnvelope("u", dbzSampleRow(1), dbzSampleRow(1)))
	withRaw := append(slices.Clone(dbzAvroColumns), Column{Name: "raw", Type: TypeJSON, Source: SourceValue})
	decoder := func(cols []Column, opts Options) *Decoder {
		opts.Converter = ConverterAvro
		d := mustDecoder(t, FormatDebezium, cols, opts)
		if err := d.AddSchema(SchemaRef{ID: 1}, &Schema{Text: dbzAvroValueSchema}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	payloadOnly, whole := decoder(dbzAvroColumns, Options{}), decoder(withRaw, Options{})
	if payloadOnly.dbzAvro.event || !whole.dbzAvro.event {
		t.Fatalf("event: %v without kafka.value, %v with", payloadOnly.dbzAvro.event, whole.dbzAvro.event)
	}
	got, _, err := decodeChange(t, payloadOnly, &Record{Value: av})
	if err != nil {
		t.Fatal(err)
	}
	gotRaw, _, err := decodeChange(t, whole, &Record{Value: av})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, gotRaw[:len(got)]) {
		t.Errorf("payload alone %q, whole event %q", got, gotRaw[:len(got)])
	}
	var event, want struct {
		Schema  json.RawMessage `json:"schema"`
		Payload any             `json:"payload"`
	}
	if err := json.Unmarshal([]byte(gotRaw[len(got)]), &event); err != nil {
		t.Fatalf("kafka.value %q: %v", gotRaw[len(got)], err)
	}
	if err := json.Unmarshal(jv, &want); err != nil {
		t.Fatal(err)
	}
	plan, _ := compileConnectPlan(&Schema{Text: dbzAvroValueSchema})
	if string(event.Schema) != string(plan.connectSchemaText()) {
		t.Errorf("kafka.value schema %s", event.Schema)
	}
	if g, w := mustJSON(t, event.Payload), mustJSON(t, want.Payload); g != w {
		t.Errorf("kafka.value payload %s, want %s", g, w)
	}

	// A bound between the payload's size and the event's: both exceed it.
	limit := len(plan.head) + 100
	for _, cols := range [][]Column{dbzAvroColumns, withRaw} {
		d := decoder(cols, Options{MaxDecompressedBytes: limit})
		if _, _, rerr := decodeChange(t, d, &Record{Value: av}); rerr == nil || rerr.Reason != ReasonOversized {
			t.Errorf("%d columns, bound %d: got %v, want %s", len(cols), limit, rerr, ReasonOversized)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDebeziumAvroPruned checks the payload written with only the fields
// the columns' paths reach: the before row holds the key columns, unread
// fields are left out (their strings unchecked), and each column subset
// reads what the full JSON event gives.
func TestDebeziumAvroPruned(t *testing.T) {
	vs := avro.MustParse(dbzAvroValueSchema)
	upd := dbzSampleEnvelope("u", dbzSampleRow(1), dbzSampleRow(1))
	av, _ := dbzPair(t, vs, dbzConnectSchema, 1, upd)
	d := dbzAvroDecoder(t, dbzAvroColumns)
	if _, _, err := decodeChange(t, d, &Record{Value: av}); err != nil {
		t.Fatal(err)
	}
	out := string(d.dbzAvro.value.out)
	if !strings.HasPrefix(out, `{"before":{"id":1},"after":{"id":1,"customer":`) || strings.Contains(out, `"version"`) || !json.Valid(d.dbzAvro.value.out) {
		t.Errorf("pruned payload %s", out)
	}

	// Invalid UTF-8 in a string no column reads passes, as in format avro.
	bad := dbzSampleEnvelope("c", nil, dbzSampleRow(2))
	bad.Source.Version = "2.7\xff"
	badV, _ := dbzPair(t, vs, dbzConnectSchema, 1, bad)
	if _, _, err := decodeChange(t, d, &Record{Value: badV}); err != nil {
		t.Errorf("unread invalid UTF-8: %v", err)
	}
	bad.After.Notes = ptr("x\xff")
	badV, _ = dbzPair(t, vs, dbzConnectSchema, 1, bad)
	if _, _, err := decodeChange(t, d, &Record{Value: badV}); err == nil {
		t.Error("invalid UTF-8 in a read string must be refused")
	}

	subsets := [][]Column{
		{dbzAvroColumns[0], dbzAvroColumns[16]},
		{dbzAvroColumns[0], dbzAvroColumns[4], dbzAvroColumns[9], dbzAvroColumns[19], dbzAvroColumns[21]},
		{{Name: "w_scale", Type: TypeInt4, Path: "weight.scale"}, {Name: "id", Type: TypeInt8, Path: "id", Key: true}, dbzAvroColumns[18]},
		{dbzAvroColumns[16], dbzAvroColumns[17]},
	}
	for i, cols := range subsets {
		ad := dbzAvroDecoder(t, cols)
		jd := mustDecoder(t, FormatDebezium, cols, Options{})
		for _, env := range []*dbzEnvelope{upd, dbzSampleEnvelope("d", dbzSampleRow(3), nil), dbzSampleEnvelope("c", nil, &dbzRow{ID: 4})} {
			av, jv := dbzPair(t, vs, dbzConnectSchema, 1, env)
			got, gop, gerr := decodeChange(t, ad, &Record{Value: av, Key: []byte(`{"id":9}`)})
			want, wop, werr := decodeChange(t, jd, &Record{Value: jv, Key: []byte(`{"id":9}`)})
			if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Reason != werr.Reason {
				t.Errorf("subset %d, op %s: avro %v, json %v", i, env.Op, gerr, werr)
				continue
			}
			if gop != wop || !slices.Equal(got, want) {
				t.Errorf("subset %d, op %s: avro %s %q, json %s %q", i, env.Op, gop, got, wop, want)
			}
		}
	}
}
