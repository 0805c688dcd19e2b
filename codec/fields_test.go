package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// Every listed field fills a column of its listed type: a table evolved
// from SchemaFields decodes records of that schema.
func TestSchemaFields(t *testing.T) {
	avro := &Schema{Type: SchemaAvro, Text: `{"type": "record", "name": "E", "fields": [
  {"name": "b", "type": "boolean"}, {"name": "i", "type": "int"}, {"name": "l", "type": ["null", "long"]},
  {"name": "f", "type": "float"}, {"name": "d", "type": "double"}, {"name": "s", "type": "string"},
  {"name": "u", "type": {"type": "string", "logicalType": "uuid"}}, {"name": "by", "type": "bytes"},
  {"name": "fx", "type": {"type": "fixed", "name": "F", "size": 3}},
  {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
  {"name": "day", "type": {"type": "int", "logicalType": "date"}},
  {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
  {"name": "lts", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
  {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
  {"name": "en", "type": {"type": "enum", "name": "En", "symbols": ["A", "B"]}},
  {"name": "rec", "type": {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}},
  {"name": "arr", "type": {"type": "array", "items": "int"}}, {"name": "mp", "type": {"type": "map", "values": "string"}},
  {"name": "mix", "type": ["null", "int", "string"]}, {"name": "nul", "type": "null"}, {"name": "nuls", "type": ["null"]}]}`}
	pb := &Schema{Type: SchemaProtobuf, Text: fmt.Sprintf(pbCaseSchema, `bool b = 1; int32 i = 2; int64 l = 3; uint32 u32 = 4; uint64 u64 = 5;
float f = 6; double d = 7; string s = 8; bytes by = 9; E en = 10; google.protobuf.Timestamp ts = 11;
google.protobuf.Int64Value w = 12; confluent.type.Decimal dec = 13; google.type.Date day = 14;
repeated int32 rep = 15; map<string, int32> mp = 16; Sub sub = 17; google.protobuf.Duration dur = 18;
google.protobuf.NullValue nv = 19; repeated google.protobuf.NullValue nvs = 20; google.protobuf.Value val = 21;`)}
	for _, c := range []struct {
		s    *Schema
		want string
	}{
		{avro, "[{b bool} {i int4} {l int8} {f float4} {d float8} {s text} {u uuid} {by bytea} {fx bytea} {dec numeric} {day date} {ts timestamptz} {lts timestamp} {tm text} {en text} {rec jsonb} {arr jsonb} {mp jsonb} {mix jsonb} {nul invalid} {nuls invalid}]"},
		{pb, "[{b bool} {i int4} {l int8} {u32 int8} {u64 numeric} {f float4} {d float8} {s text} {by bytea} {en text} {ts timestamptz} {w int8} {dec numeric} {day date} {rep jsonb} {mp jsonb} {sub jsonb} {dur jsonb} {nv invalid} {nvs jsonb} {val jsonb}]"},
	} {
		fields, err := SchemaFields(c.s, []int{1}) // Protobuf: M, after Sub
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(fields); got != c.want {
			t.Errorf("%s fields:\n got %s\nwant %s", c.s.Type, got, c.want)
		}
		var cols []Column
		for _, f := range fields {
			if f.Type != TypeInvalid { // a field of type null gets no column
				cols = append(cols, Column{Name: f.Name, Type: f.Type, Path: f.Name})
			}
		}
		var err2 error
		if c.s.Type == SchemaAvro {
			_, rerr := compileAvroPlan(c.s, cols, Options{})
			if rerr != nil {
				err2 = rerr
			}
		} else {
			_, err2 = compileProtobufPlan(c.s, []int{1}, cols, Options{})
		}
		if err2 != nil {
			t.Errorf("%s: the listed types do not compile: %v", c.s.Type, err2)
		}
	}
	for _, text := range []string{`{}`, `{"type":"string"}`, `{"properties":[]}`, `not json`} {
		if f, err := SchemaFields(&Schema{Type: SchemaJSON, Text: text}, nil); err == nil {
			t.Errorf("JSON Schema %s: %v, want an error", text, f)
		}
	}
	if _, err := SchemaFields(&Schema{Type: SchemaAvro, Text: `"string"`}, nil); err == nil {
		t.Error("a non-record Avro schema listed fields")
	}
}

// A Protobuf record asking for its writer schema names its message: a
// table following the writer schema lists that message's fields, not the
// file's first message's.
func TestSchemaNeededIndexes(t *testing.T) {
	d, err := NewDecoder(FormatProtobuf, []Column{{Name: "id", Type: TypeInt8, Path: "id"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Schema{Type: SchemaProtobuf, Text: "syntax = \"proto3\";\nmessage Meta { string note = 1; }\nmessage Order { int64 id = 1; string country = 2; }\n"}
	for _, c := range []struct {
		framing []byte
		want    string
	}{
		{[]byte{0x02, 0x02}, "[{id int8} {country text}]"}, // [1]: Order
		{[]byte{0}, "[{note text}]"},                       // [0]: Meta
	} {
		v := append(binary.BigEndian.AppendUint32([]byte{0}, 2), c.framing...)
		_, err := d.AppendFields(nil, &Record{Value: append(v, 0x08, 7)})
		var need *SchemaNeededError
		if !errors.As(err, &need) {
			t.Fatalf("framing %x: %v, want a SchemaNeededError", c.framing, err)
		}
		fields, err := SchemaFields(s, need.Indexes)
		if got := fmt.Sprint(fields); err != nil || got != c.want {
			t.Errorf("framing %x: indexes %v list %s, %v; want %s", c.framing, need.Indexes, got, err, c.want)
		}
	}
}

// JSON Schema: the root's properties in declaration order, $refs into
// $defs and definitions followed; every listed type fills its column from
// a JSON document.
func TestSchemaFieldsJSONSchema(t *testing.T) {
	s := &Schema{Type: SchemaJSON, Text: `{"$ref": "#/$defs/Order", "$defs": {
  "Order": {"type": "object", "properties": {
    "z": {"type": "integer"}, "n": {"type": "number"}, "b": {"type": "boolean"}, "s": {"type": "string"},
    "ts": {"type": "string", "format": "date-time"}, "day": {"type": "string", "format": "date"},
    "u": {"type": ["string", "null"], "format": "uuid"}, "o": {"type": "object"}, "a": {"type": "array"},
    "mix": {"type": ["string", "integer"]}, "none": {}, "any": true, "en": {"enum": ["A", "B"]},
    "ref": {"$ref": "#/definitions/Money"}, "a~1b": {"$ref": "#/definitions/a~1b"},
    "ext": {"$ref": "other.json"}, "loop": {"$ref": "#/$defs/Loop"}, "nul": {"type": "null"}, "nuls": {"type": ["null"]},
    "nulref": {"$ref": "#/$defs/Nothing"}, "cnul": {"const": null}, "enul": {"enum": [null]},
    "cstr": {"const": "x"}, "enulstr": {"enum": [null, "x"]}, "tcnul": {"type": ["string", "null"], "const": null}}},
  "Nothing": {"type": "null"},
  "Loop": {"$ref": "#/$defs/Loop"}},
 "definitions": {"Money": {"type": ["null", "number"]}, "a/b": {"type": "boolean"}}}`}
	fields, err := SchemaFields(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "[{z int8} {n numeric} {b bool} {s text} {ts timestamptz} {day date} {u uuid} {o jsonb} {a jsonb} {mix jsonb} " +
		"{none jsonb} {any jsonb} {en jsonb} {ref numeric} {a~1b bool} {ext jsonb} {loop jsonb} {nul invalid} {nuls invalid} {nulref invalid} " +
		"{cnul invalid} {enul invalid} {cstr jsonb} {enulstr jsonb} {tcnul invalid}]"
	if got := fmt.Sprint(fields); got != want {
		t.Fatalf("fields:\n got %s\nwant %s", got, want)
	}
	var cols []Column
	for _, f := range fields[:10] {
		cols = append(cols, Column{Name: f.Name, Type: f.Type, Path: f.Name})
	}
	d, err := NewDecoder(FormatJSONSchema, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.AddSchema(SchemaRef{ID: 1}, s); err != nil {
		t.Fatal(err)
	}
	v := append(binary.BigEndian.AppendUint32([]byte{0}, 1), `{"z":9007199254740993,"n":12.50,"b":true,"s":"x",
"ts":"2026-11-27T10:00:00.123456789Z","day":"2026-11-27","u":"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01","o":{"k":1},"a":[1],"mix":"m"}`...)
	if _, err := d.AppendFields(nil, &Record{Value: v}); err != nil {
		t.Errorf("a record of the schema does not fill the listed columns: %v", err)
	}
}

// TestUnmatchedPaths: the path columns whose first segment names no
// top-level field, by name (Avro) or name or JSON name (Protobuf, of the
// message the indexes name); other sources and JSON Schema are not
// checked.
func TestUnmatchedPaths(t *testing.T) {
	cols := []Column{
		{Name: "id", Source: SourcePath, Path: "id"},
		{Name: "country", Source: SourcePath, Path: "attrs.country"},
		{Name: "agent", Source: SourcePath, Path: "useragent"},
		{Name: "agent2", Source: SourcePath, Path: "userAgent"},
		{Name: "k", Source: SourceKey, Path: "nope"},
		{Name: "off", Source: SourceOffset},
	}
	avro := &Schema{Type: SchemaAvro, Text: `{"type": "record", "name": "E", "fields": [
		{"name": "id", "type": "long"}, {"name": "user_agent", "type": "string"},
		{"name": "attrs", "type": {"type": "record", "name": "A", "fields": [{"name": "city", "type": "string"}]}}]}`}
	if got := UnmatchedPaths(avro, nil, cols); !slices.Equal(got, []string{"agent", "agent2"}) {
		t.Errorf("avro: %v, want [agent agent2]", got)
	}
	pb := &Schema{Type: SchemaProtobuf, Text: "syntax = \"proto3\";\nmessage Meta { string note = 1; }\n" +
		"message E { int64 id = 1; string user_agent = 2; Meta attrs = 3; }\n"}
	if got := UnmatchedPaths(pb, []int{1}, cols); !slices.Equal(got, []string{"agent"}) {
		t.Errorf("protobuf message E: %v, want [agent] (userAgent is user_agent's JSON name)", got)
	}
	if got := UnmatchedPaths(pb, nil, cols); !slices.Equal(got, []string{"id", "country", "agent", "agent2"}) {
		t.Errorf("protobuf message Meta: %v, want [id country agent agent2]", got)
	}
	js := &Schema{Type: SchemaJSON, Text: `{"type": "object", "properties": {"id": {"type": "integer"}}}`}
	if got := UnmatchedPaths(js, nil, cols); got != nil {
		t.Errorf("json schema: %v, want nil", got)
	}
}

// TestUnmatchedRowPaths: a Debezium envelope's paths name fields of the
// row record after (or before) holds, not of the envelope.
func TestUnmatchedRowPaths(t *testing.T) {
	cols := []Column{
		{Name: "id", Source: SourcePath, Path: "id"},
		{Name: "total", Source: SourcePath, Path: "totl"},
		{Name: "op", Source: SourceDebeziumOp},
	}
	env := &Schema{Type: SchemaAvro, Text: `{"type": "record", "name": "Envelope", "namespace": "shop.public.orders", "fields": [
		{"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
			{"name": "id", "type": "long"}, {"name": "total", "type": ["null", "double"], "default": null}]}], "default": null},
		{"name": "after", "type": ["null", "Value"], "default": null},
		{"name": "op", "type": "string"}]}`}
	if got := UnmatchedRowPaths(env, cols); !slices.Equal(got, []string{"total"}) {
		t.Errorf("envelope: %v, want [total]", got)
	}
	if got := UnmatchedPaths(env, nil, cols); !slices.Equal(got, []string{"id", "total"}) {
		t.Errorf("the envelope's own fields: %v, want [id total]", got)
	}
	plain := &Schema{Type: SchemaAvro, Text: `{"type": "record", "name": "E", "fields": [{"name": "id", "type": "long"}]}`}
	if got := UnmatchedRowPaths(plain, cols); got != nil {
		t.Errorf("not an envelope: %v, want nil", got)
	}
}
