package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// dbzAvroTypesSchema is an Envelope with the Connect types Debezium's
// PostgreSQL and MySQL connectors write beyond those of
// dbzAvroValueSchema, as AvroConverter registers them: int8, float32,
// Connect's own Time, Timestamp and Date (with their Avro logical types),
// Debezium's NanoTimestamp, Timestamp, MicroTime, ZonedTime,
// MicroDuration, Uuid, Bits, Geometry and Point records, hstore as a map,
// arrays of optional ints and of VariableScaleDecimals, and two Connect
// maps AvroConverter writes as arrays of key/value records: int keys
// (io.confluent.connect.avro.MapEntry) and optional string keys
// (connect.internal.type MapEntry). The source block is MySQL's.
const dbzAvroTypesSchema = `{"type":"record","name":"Envelope","namespace":"inv.items","fields":[
 {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
  {"name":"id","type":"long"},
  {"name":"tiny","type":{"type":"int","connect.type":"int8"}},
  {"name":"f32","type":["null","float"],"default":null},
  {"name":"t_micro","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroTime"}],"default":null},
  {"name":"t_connect","type":["null",{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Time","logicalType":"time-millis"}],"default":null},
  {"name":"ts_connect","type":["null",{"type":"long","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Timestamp","logicalType":"timestamp-millis"}],"default":null},
  {"name":"d_connect","type":["null",{"type":"int","connect.version":1,"connect.name":"org.apache.kafka.connect.data.Date","logicalType":"date"}],"default":null},
  {"name":"ts_nano","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.NanoTimestamp"}],"default":null},
  {"name":"ts_milli","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.Timestamp"}],"default":null},
  {"name":"zt","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.time.ZonedTime"}],"default":null},
  {"name":"dur","type":["null",{"type":"long","connect.version":1,"connect.name":"io.debezium.time.MicroDuration"}],"default":null},
  {"name":"uid","type":["null",{"type":"string","connect.version":1,"connect.name":"io.debezium.data.Uuid"}],"default":null},
  {"name":"bits","type":["null",{"type":"bytes","connect.version":1,"connect.parameters":{"length":"12"},"connect.name":"io.debezium.data.Bits"}],"default":null},
  {"name":"geom","type":["null",{"type":"record","name":"Geometry","namespace":"io.debezium.data.geometry","fields":[{"name":"wkb","type":"bytes"},{"name":"srid","type":["null","int"],"default":null}],"connect.doc":"Geometry","connect.version":1,"connect.name":"io.debezium.data.geometry.Geometry"}],"default":null},
  {"name":"pt","type":["null",{"type":"record","name":"Point","namespace":"io.debezium.data.geometry","fields":[{"name":"x","type":"double"},{"name":"y","type":"double"},{"name":"wkb","type":["null","bytes"],"default":null},{"name":"srid","type":["null","int"],"default":null}],"connect.doc":"Geometry (POINT)","connect.version":1,"connect.name":"io.debezium.data.geometry.Point"}],"default":null},
  {"name":"tags","type":["null",{"type":"map","values":["null","string"]}],"default":null},
  {"name":"ints","type":["null",{"type":"array","items":["null","int"]}],"default":null},
  {"name":"nums","type":["null",{"type":"array","items":["null",{"type":"record","name":"VariableScaleDecimal","namespace":"io.debezium.data","fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}],"connect.doc":"Variable scaled decimal","connect.version":1,"connect.name":"io.debezium.data.VariableScaleDecimal"}]}],"default":null},
  {"name":"money","type":["null",{"type":"bytes","scale":2,"precision":10,"connect.version":1,"connect.parameters":{"scale":"2","connect.decimal.precision":"10"},"connect.name":"org.apache.kafka.connect.data.Decimal","logicalType":"decimal"}],"default":null},
  {"name":"byid","type":["null",{"type":"array","items":{"type":"record","name":"MapEntry","namespace":"io.confluent.connect.avro","fields":[{"name":"key","type":"int"},{"name":"value","type":["null","string"],"default":null}]}}],"default":null},
  {"name":"byname","type":["null",{"type":"array","items":{"type":"record","name":"MapEntry2","namespace":"io.confluent.connect.avro","fields":[{"name":"key","type":["null","string"],"default":null},{"name":"value","type":"long"}],"connect.internal.type":"MapEntry"}}],"default":null}
 ],"connect.name":"inv.items.Value"}],"default":null},
 {"name":"after","type":["null","Value"],"default":null},
 {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.mysql","fields":[
  {"name":"version","type":"string"},{"name":"connector","type":"string"},{"name":"name","type":"string"},{"name":"ts_ms","type":"long"},
  {"name":"snapshot","type":[{"type":"string","connect.version":1,"connect.parameters":{"allowed":"true,last,false,incremental"},"connect.default":"false","connect.name":"io.debezium.data.Enum"},"null"],"default":"false"},
  {"name":"db","type":"string"},{"name":"table","type":["null","string"],"default":null},{"name":"server_id","type":"long"},
  {"name":"gtid","type":["null","string"],"default":null},{"name":"file","type":"string"},{"name":"pos","type":"long"},{"name":"row","type":"int"},
  {"name":"thread","type":["null","long"],"default":null},{"name":"query","type":["null","string"],"default":null}
 ],"connect.name":"io.debezium.connector.mysql.Source"}},
 {"name":"op","type":"string"},
 {"name":"ts_ms","type":["null","long"],"default":null},
 {"name":"transaction","type":["null",{"type":"record","name":"block","namespace":"event","fields":[{"name":"id","type":"string"},{"name":"total_order","type":"long"},{"name":"data_collection_order","type":"long"}],"connect.version":1,"connect.name":"event.block"}],"default":null}
],"connect.version":1,"connect.name":"inv.items.Envelope"}`

// dbzConnectTypesRow is the row's Connect schema as JsonConverter writes
// it, written out independently of the derivation under test.
const dbzConnectTypesRow = `{"type":"struct","fields":[
 {"type":"int64","optional":false,"field":"id"},
 {"type":"int8","optional":false,"field":"tiny"},
 {"type":"float","optional":true,"field":"f32"},
 {"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1,"field":"t_micro"},
 {"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Time","version":1,"field":"t_connect"},
 {"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1,"field":"ts_connect"},
 {"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1,"field":"d_connect"},
 {"type":"int64","optional":true,"name":"io.debezium.time.NanoTimestamp","version":1,"field":"ts_nano"},
 {"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1,"field":"ts_milli"},
 {"type":"string","optional":true,"name":"io.debezium.time.ZonedTime","version":1,"field":"zt"},
 {"type":"int64","optional":true,"name":"io.debezium.time.MicroDuration","version":1,"field":"dur"},
 {"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1,"field":"uid"},
 {"type":"bytes","optional":true,"name":"io.debezium.data.Bits","version":1,"parameters":{"length":"12"},"field":"bits"},
 {"type":"struct","fields":[{"type":"bytes","optional":false,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Geometry","version":1,"doc":"Geometry","field":"geom"},
 {"type":"struct","fields":[{"type":"double","optional":false,"field":"x"},{"type":"double","optional":false,"field":"y"},{"type":"bytes","optional":true,"field":"wkb"},{"type":"int32","optional":true,"field":"srid"}],"optional":true,"name":"io.debezium.data.geometry.Point","version":1,"doc":"Geometry (POINT)","field":"pt"},
 {"type":"map","keys":{"type":"string","optional":false},"values":{"type":"string","optional":true},"optional":true,"field":"tags"},
 {"type":"array","items":{"type":"int32","optional":true},"optional":true,"field":"ints"},
 {"type":"array","items":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal"},"optional":true,"field":"nums"},
 {"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"money"},
 {"type":"map","keys":{"type":"int32","optional":false},"values":{"type":"string","optional":true},"optional":true,"field":"byid"},
 {"type":"map","keys":{"type":"string","optional":true},"values":{"type":"int64","optional":false},"optional":true,"field":"byname"}
],"optional":true,"name":"inv.items.Value"`

var dbzConnectTypesSchema = `{"type":"struct","fields":[` +
	dbzConnectTypesRow + `,"field":"before"},` + dbzConnectTypesRow + `,"field":"after"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},` +
	`{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},` +
	`{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},` +
	`{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"table"},{"type":"int64","optional":false,"field":"server_id"},` +
	`{"type":"string","optional":true,"field":"gtid"},{"type":"string","optional":false,"field":"file"},{"type":"int64","optional":false,"field":"pos"},` +
	`{"type":"int32","optional":false,"field":"row"},{"type":"int64","optional":true,"field":"thread"},{"type":"string","optional":true,"field":"query"}],` +
	`"optional":false,"name":"io.debezium.connector.mysql.Source","field":"source"},` +
	`{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},` +
	`{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}` +
	`],"optional":false,"name":"inv.items.Envelope","version":1}`

type dbzGeometry struct {
	WKB  []byte `avro:"wkb" json:"wkb"`
	SRID *int32 `avro:"srid" json:"srid"`
}

type dbzPoint struct {
	X    float64 `avro:"x" json:"x"`
	Y    float64 `avro:"y" json:"y"`
	WKB  []byte  `avro:"wkb" json:"wkb"`
	SRID *int32  `avro:"srid" json:"srid"`
}

// dbzIntEntry is an entry of a Connect map with int keys, which
// JsonConverter writes as the array [key, value].
type dbzIntEntry struct {
	Key   int32   `avro:"key"`
	Value *string `avro:"value"`
}

func (e dbzIntEntry) MarshalJSON() ([]byte, error) {
	v, err := json.Marshal(e.Value)
	return []byte("[" + strconv.Itoa(int(e.Key)) + "," + string(v) + "]"), err
}

// dbzNameEntry is an entry of a Connect map with optional string keys,
// which JsonConverter writes as a JSON object (a null key as "null").
type dbzNameEntry struct {
	Key   *string `avro:"key"`
	Value int64   `avro:"value"`
}

type dbzNameMap []dbzNameEntry

func (m dbzNameMap) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k := "null"
		if e.Key != nil {
			k = *e.Key
		}
		kj, _ := json.Marshal(k)
		b.Write(kj)
		b.WriteString(":" + strconv.FormatInt(e.Value, 10))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type dbzTypesRow struct {
	ID        int64           `avro:"id" json:"id"`
	Tiny      int32           `avro:"tiny" json:"tiny"`
	F32       *float32        `avro:"f32" json:"f32"`
	TMicro    *int64          `avro:"t_micro" json:"t_micro"`
	TConnect  *int32          `avro:"t_connect" json:"t_connect"`
	TsConnect *int64          `avro:"ts_connect" json:"ts_connect"`
	DConnect  *int32          `avro:"d_connect" json:"d_connect"`
	TsNano    *int64          `avro:"ts_nano" json:"ts_nano"`
	TsMilli   *int64          `avro:"ts_milli" json:"ts_milli"`
	ZT        *string         `avro:"zt" json:"zt"`
	Dur       *int64          `avro:"dur" json:"dur"`
	UID       *string         `avro:"uid" json:"uid"`
	Bits      []byte          `avro:"bits" json:"bits"`
	Geom      *dbzGeometry    `avro:"geom" json:"geom"`
	Pt        *dbzPoint       `avro:"pt" json:"pt"`
	Tags      *map[string]any `avro:"tags" json:"tags"`
	Ints      []*int32        `avro:"ints" json:"ints"`
	Nums      []*dbzVSD       `avro:"nums" json:"nums"`
	Money     []byte          `avro:"money" json:"money"`
	ByID      []dbzIntEntry   `avro:"byid" json:"byid"`
	ByName    dbzNameMap      `avro:"byname" json:"byname"`
}

type dbzMySQLSource struct {
	Version   string  `avro:"version" json:"version"`
	Connector string  `avro:"connector" json:"connector"`
	Name      string  `avro:"name" json:"name"`
	TsMs      int64   `avro:"ts_ms" json:"ts_ms"`
	Snapshot  *string `avro:"snapshot" json:"snapshot"`
	DB        string  `avro:"db" json:"db"`
	Table     *string `avro:"table" json:"table"`
	ServerID  int64   `avro:"server_id" json:"server_id"`
	GTID      *string `avro:"gtid" json:"gtid"`
	File      string  `avro:"file" json:"file"`
	Pos       int64   `avro:"pos" json:"pos"`
	Row       int32   `avro:"row" json:"row"`
	Thread    *int64  `avro:"thread" json:"thread"`
	Query     *string `avro:"query" json:"query"`
}

type dbzTypesEnvelope struct {
	Before      *dbzTypesRow   `avro:"before" json:"before"`
	After       *dbzTypesRow   `avro:"after" json:"after"`
	Source      dbzMySQLSource `avro:"source" json:"source"`
	Op          string         `avro:"op" json:"op"`
	TsMs        *int64         `avro:"ts_ms" json:"ts_ms"`
	Transaction *dbzTx         `avro:"transaction" json:"transaction"`
}

var dbzAvroTypesColumns = []Column{
	{Name: "id", Type: TypeInt8, Path: "id", Key: true},
	{Name: "tiny", Type: TypeInt2, Path: "tiny"},
	{Name: "f32", Type: TypeFloat4, Path: "f32"},
	{Name: "t_micro", Type: TypeText, Path: "t_micro"},
	{Name: "t_connect", Type: TypeText, Path: "t_connect"},
	{Name: "ts_connect", Type: TypeTimestamptz, Path: "ts_connect"},
	{Name: "d_connect", Type: TypeDate, Path: "d_connect"},
	{Name: "ts_nano", Type: TypeTimestamp, Path: "ts_nano"},
	{Name: "ts_milli", Type: TypeTimestamp, Path: "ts_milli"},
	{Name: "zt", Type: TypeText, Path: "zt"},
	{Name: "dur", Type: TypeInt8, Path: "dur"},
	{Name: "uid", Type: TypeUUID, Path: "uid"},
	{Name: "bits", Type: TypeBytea, Path: "bits"},
	{Name: "geom", Type: TypeJSONB, Path: "geom"},
	{Name: "geom_wkb", Type: TypeBytea, Path: "geom.wkb"},
	{Name: "pt", Type: TypeJSONB, Path: "pt"},
	{Name: "pt_x", Type: TypeFloat8, Path: "pt.x"},
	{Name: "tags", Type: TypeJSONB, Path: "tags"},
	{Name: "ints", Type: TypeJSONB, Path: "ints"},
	{Name: "nums", Type: TypeJSONB, Path: "nums"},
	{Name: "money", Type: TypeNumeric, Path: "money"},
	{Name: "byid", Type: TypeJSONB, Path: "byid"},
	{Name: "byname", Type: TypeJSONB, Path: "byname"},
	{Name: "byname_txt", Type: TypeText, Path: "byname"},
	{Name: "op", Type: TypeText, Source: SourceDebeziumOp},
	{Name: "src_ts", Type: TypeInt8, Source: SourceDebeziumSourceTsMs},
	{Name: "tbl", Type: TypeText, Source: SourceDebeziumSourceTable},
	{Name: "txid", Type: TypeText, Source: SourceDebeziumTransactionID},
}

func dbzTypesSampleRow(id int64) *dbzTypesRow {
	return &dbzTypesRow{
		ID: id, Tiny: -128, F32: ptr[float32](0.1),
		TMicro: ptr[int64](45_296_789_012), TConnect: ptr[int32](45_296_789),
		TsConnect: ptr[int64](1_764_370_800_123), DConnect: ptr[int32](-1),
		TsNano: ptr[int64](1_764_370_800_123_456_789), TsMilli: ptr[int64](-1),
		ZT: ptr("12:34:56.789Z"), Dur: ptr[int64](-3_600_000_000), UID: ptr("9b2f8a50-3c1e-4a7e-9d3b-0f4b6c1d2e3f"),
		Bits:   []byte{0x0f, 0xa0},
		Geom:   &dbzGeometry{WKB: []byte{1, 1, 0, 0, 0}, SRID: ptr[int32](4326)},
		Pt:     &dbzPoint{X: 1.5, Y: -2.25},
		Tags:   &map[string]any{"k\"1": "v"},
		Ints:   []*int32{ptr[int32](1), nil, ptr[int32](math.MinInt32)},
		Nums:   []*dbzVSD{{Scale: 2, Value: twosComplement(mustBig("-5"))}, nil},
		Money:  twosComplement(mustBig("123456")),
		ByID:   []dbzIntEntry{{Key: 7, Value: ptr("seven")}, {Key: -1, Value: nil}},
		ByName: dbzNameMap{{Key: ptr("a\tb"), Value: 1}, {Key: nil, Value: -2}},
	}
}

// dbzTypesSampleEnvelope is a MySQL connector's event of dbzAvroTypesSchema.
func dbzTypesSampleEnvelope(op string, before, after *dbzTypesRow) *dbzTypesEnvelope {
	return &dbzTypesEnvelope{Before: before, After: after, Op: op, TsMs: ptr[int64](1_764_370_800_456),
		Source: dbzMySQLSource{Version: "2.7.0.Final", Connector: "mysql", Name: "inv", TsMs: 1_764_370_800_000,
			Snapshot: ptr("false"), DB: "inv", Table: ptr("items"), ServerID: 223344, GTID: ptr("3E11FA47-71CA-11E1-9E33-C80AA9429562:23"),
			File: "mysql-bin.000003", Pos: 154, Row: 0, Thread: ptr[int64](7), Query: nil},
		Transaction: &dbzTx{ID: "file=mysql-bin.000003,pos=154", TotalOrder: 2, DataCollectionOrder: 1}}
}

// TestDebeziumAvroTypesMatchJSON is the differential test of
// TestDebeziumAvroMatchesJSON over dbzAvroTypesSchema's types.
func TestDebeziumAvroTypesMatchJSON(t *testing.T) {
	vs := avro.MustParse(dbzAvroTypesSchema)
	empty := &dbzTypesRow{ID: 2, Tags: &map[string]any{"nil": nil}, Ints: []*int32{}, ByID: []dbzIntEntry{}, ByName: dbzNameMap{}}
	nulls := &dbzTypesRow{ID: 3}
	env := dbzTypesSampleEnvelope
	cases := []struct {
		name string
		env  *dbzTypesEnvelope
	}{
		{"create", env("c", nil, dbzTypesSampleRow(1))},
		{"update", env("u", dbzTypesSampleRow(1), dbzTypesSampleRow(1))},
		{"empty collections", env("c", nil, empty)},
		{"nulls", env("c", nil, nulls)},
		{"delete", env("d", dbzTypesSampleRow(4), nil)},
	}
	ad := mustDecoder(t, FormatDebezium, dbzAvroTypesColumns, Options{Converter: ConverterAvro})
	if err := ad.AddSchema(SchemaRef{ID: 1}, &Schema{Text: dbzAvroTypesSchema}); err != nil {
		t.Fatal(err)
	}
	jd := mustDecoder(t, FormatDebezium, dbzAvroTypesColumns, Options{})
	for _, tc := range cases {
		av, jv := dbzPair(t, vs, dbzConnectTypesSchema, 1, tc.env)
		got, gop, gerr := decodeChange(t, ad, &Record{Value: av})
		want, wop, werr := decodeChange(t, jd, &Record{Value: jv})
		if gerr != nil || werr != nil {
			t.Errorf("%s: avro error %v, json error %v", tc.name, gerr, werr)
			continue
		}
		if gop != wop {
			t.Errorf("%s: op avro %s, json %s", tc.name, gop, wop)
		}
		if !slices.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s: column %s: avro %q, json %q", tc.name, dbzAvroTypesColumns[i].Name, got[i], want[i])
				}
			}
		}
	}
}

// TestDebeziumAvroTypesConnectSchema holds the derived Connect schema of
// dbzAvroTypesSchema to JsonConverter's: the same encodings, and maps of
// non-string keys as maps.
func TestDebeziumAvroTypesConnectSchema(t *testing.T) {
	plan, err := compileConnectPlan(&Schema{Text: dbzAvroTypesSchema})
	if err != nil {
		t.Fatal(err)
	}
	schema := strings.TrimSuffix(strings.TrimPrefix(string(plan.head), `{"schema":`), `,"payload":`)
	var got, want any
	if err := json.Unmarshal([]byte(schema), &got); err != nil {
		t.Fatalf("%v: %s", err, schema)
	}
	if err := json.Unmarshal([]byte(dbzConnectTypesSchema), &want); err != nil {
		t.Fatal(err)
	}
	// Compare the after row's field types (type, keys, values, items).
	field := func(s any, name string) map[string]any {
		for _, f := range s.(map[string]any)["fields"].([]any) {
			if f.(map[string]any)["field"] == name {
				return f.(map[string]any)
			}
		}
		return nil
	}
	var shape func(s any) string
	shape = func(s any) string {
		m, ok := s.(map[string]any)
		if !ok {
			return ""
		}
		out := m["type"].(string)
		if n, ok := m["name"].(string); ok {
			out += "(" + n + ")"
		}
		for _, k := range []string{"keys", "values", "items"} {
			if v, ok := m[k]; ok {
				out += " " + k + ":" + shape(v)
			}
		}
		return out
	}
	ga, wa := field(got, "after"), field(want, "after")
	for _, f := range wa["fields"].([]any) {
		name := f.(map[string]any)["field"].(string)
		if g, w := shape(field(ga, name)), shape(f); g != w {
			t.Errorf("%s: derived %s, JsonConverter %s", name, g, w)
		}
	}
}

// TestDebeziumAvroFields: a table derived from an Envelope has a column
// per row field, typed by the field's Connect type; its decoder reads a
// sample event of each Envelope with every column filled and none
// refused. The key schema lists the primary key's fields.
func TestDebeziumAvroFields(t *testing.T) {
	for _, c := range []struct {
		schema string
		event  any
		want   string
	}{
		{dbzAvroValueSchema, dbzSampleEnvelope("c", nil, dbzSampleRow(1)),
			"[{id int8} {customer text} {total numeric} {notes text} {updated_at timestamp} {ship_date date} {created_tz timestamptz} " +
				"{weight numeric} {qty int2} {ratio float8} {active bool} {doc jsonb} {status text} {blob bytea}]"},
		{dbzAvroTypesSchema, dbzTypesSampleEnvelope("r", nil, dbzTypesSampleRow(1)),
			"[{id int8} {tiny int2} {f32 float4} {t_micro text} {t_connect text} {ts_connect timestamp} {d_connect date} {ts_nano timestamp} " +
				"{ts_milli timestamp} {zt text} {dur int8} {uid uuid} {bits bytea} {geom jsonb} {pt jsonb} {tags jsonb} {ints jsonb} {nums jsonb} " +
				"{money numeric} {byid jsonb} {byname jsonb}]"},
	} {
		fields, err := DebeziumAvroFields(&Schema{Text: c.schema})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(fields); got != c.want {
			t.Errorf("fields:\n got %s\nwant %s", got, c.want)
		}
		cols := make([]Column, len(fields))
		for i, f := range fields {
			cols[i] = Column{Name: f.Name, Type: f.Type, Path: f.Name, Key: f.Name == "id"}
		}
		d := mustDecoder(t, FormatDebezium, cols, Options{Converter: ConverterAvro})
		if err := d.AddSchema(SchemaRef{ID: 1}, &Schema{Text: c.schema}); err != nil {
			t.Fatal(err)
		}
		value, _ := dbzPair(t, avro.MustParse(c.schema), "{}", 1, c.event)
		got, _, rerr := decodeChange(t, d, &Record{Value: value})
		if rerr != nil {
			t.Fatalf("a derived column refuses its field: %v", rerr)
		}
		for i, v := range got {
			if v == null {
				t.Errorf("column %s (%s) is NULL for a value", cols[i].Name, cols[i].Type)
			}
		}
	}
	// A field of type null types no column: TypeInvalid, not a jsonb guess.
	nullRow := `{"type":"record","name":"Envelope","fields":[{"name":"after","type":["null",{"type":"record","name":"Value","fields":[
{"name":"id","type":"long"},{"name":"gone","type":"null"},{"name":"never","type":["null"]},{"name":"any","type":["null","long","string"]}]}]}]}`
	if f, err := DebeziumAvroFields(&Schema{Text: nullRow}); err != nil || fmt.Sprint(f) != "[{id int8} {gone invalid} {never invalid} {any jsonb}]" {
		t.Errorf("fields of type null: %v, %v; want [{id int8} {gone invalid} {never invalid} {any jsonb}]", f, err)
	}
	if key, err := DebeziumAvroKey(&Schema{Text: dbzAvroKeySchema}); err != nil || fmt.Sprint(key) != "[id]" {
		t.Errorf("key fields %v, %v; want [id]", key, err)
	}
	for _, text := range []string{`"string"`, `{"type":"record","name":"E","fields":[{"name":"after","type":["null","string"]}]}`} {
		if f, err := DebeziumAvroFields(&Schema{Text: text}); err == nil {
			t.Errorf("value schema %s: %v, want an error", text, f)
		}
	}
	if f, err := DebeziumAvroFields(&Schema{Type: SchemaJSON, Text: `{"type":"object"}`}); err == nil {
		t.Errorf("a JSON Schema listed the fields %v", f)
	}
	for _, text := range []string{`"long"`, `{"type":"record","name":"Key","fields":[]}`} {
		if k, err := DebeziumAvroKey(&Schema{Text: text}); err == nil {
			t.Errorf("key schema %s: %v, want an error", text, k)
		}
	}
}
