package codec

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFraming(t *testing.T) {
	guid := [16]byte{0x3f, 0x1c, 0x9a, 0x2e, 0x8b, 0x4d, 0x4c, 0x6e, 0x9f, 0x2a, 0x1b, 0x3c, 0x5d, 0x7e, 0x9f, 0x01}
	hdr := func(v string) []Header {
		return []Header{{Key: "other", Value: []byte("x")}, {Key: valueSchemaIDHeader, Value: []byte(v)}}
	}
	cases := []struct {
		name     string
		value    string
		headers  []Header
		protobuf bool
		ref      SchemaRef
		indexes  []int
		payload  string
		reason   Reason
	}{
		{name: "id prefix", value: "\x00\x00\x00\x01\x02datum", ref: SchemaRef{ID: 258}, payload: "datum"},
		{name: "id prefix, empty datum", value: "\x00\x7f\xff\xff\xff", ref: SchemaRef{ID: 1<<31 - 1}, payload: ""},
		{name: "guid prefix", value: "\x01" + string(guid[:]) + "datum", ref: SchemaRef{GUID: guid, IsGUID: true}, payload: "datum"},
		{name: "wrong magic", value: "\x02\x00\x00\x00\x01datum", reason: ReasonBadFraming},
		{name: "json without framing", value: `{"a":1}`, reason: ReasonBadFraming},
		{name: "truncated id", value: "\x00\x00\x00\x01", reason: ReasonBadFraming},
		{name: "truncated guid", value: "\x01" + string(guid[:15]), reason: ReasonBadFraming},
		{name: "empty", value: "", reason: ReasonBadFraming},
		{name: "header id", value: "datum", headers: hdr("\x00\x00\x00\x00\x07"), ref: SchemaRef{ID: 7}, payload: "datum"},
		{name: "header guid", value: "\x00datum", headers: hdr("\x01" + string(guid[:])), ref: SchemaRef{GUID: guid, IsGUID: true}, payload: "\x00datum"},
		{name: "last header wins", value: "d", headers: append(hdr("\x00\x00\x00\x00\x07"), hdr("\x00\x00\x00\x00\x08")...), ref: SchemaRef{ID: 8}, payload: "d"},
		{name: "header short", value: "datum", headers: hdr("\x00\x00\x07"), reason: ReasonBadFraming},
		{name: "header trailing bytes", value: "datum", headers: hdr("\x00\x00\x00\x00\x07\x00"), reason: ReasonBadFraming},
		{name: "header wrong magic", value: "datum", headers: hdr("7"), reason: ReasonBadFraming},
		{name: "null header", value: "\x00\x00\x00\x00\x07datum", headers: []Header{{Key: valueSchemaIDHeader}}, ref: SchemaRef{ID: 7}, payload: "datum"},
		{name: "last header null", value: "\x00\x00\x00\x00\x07d", headers: append(hdr("\x00\x00\x00\x00\x08"), Header{Key: valueSchemaIDHeader}), ref: SchemaRef{ID: 7}, payload: "d"},
		{name: "header empty", value: "\x00\x00\x00\x00\x07datum", headers: hdr(""), reason: ReasonBadFraming},
		{name: "header key case matters", value: "\x00\x00\x00\x00\x05d", headers: []Header{{Key: "__VALUE_SCHEMA_ID", Value: []byte("junk")}}, ref: SchemaRef{ID: 5}, payload: "d"},
		{name: "protobuf [0]", value: "\x00\x00\x00\x00\x05\x00msg", protobuf: true, ref: SchemaRef{ID: 5}, indexes: []int{0}, payload: "msg"},
		{name: "protobuf [1 0 2]", value: "\x00\x00\x00\x00\x05\x06\x02\x00\x04msg", protobuf: true, ref: SchemaRef{ID: 5}, indexes: []int{1, 0, 2}, payload: "msg"},
		{name: "protobuf truncated indexes", value: "\x00\x00\x00\x00\x05\x06\x02", protobuf: true, reason: ReasonBadFraming},
		{name: "protobuf negative count", value: "\x00\x00\x00\x00\x05\x01", protobuf: true, reason: ReasonBadFraming},
		{name: "protobuf negative index", value: "\x00\x00\x00\x00\x05\x02\x03", protobuf: true, reason: ReasonBadFraming},
		{name: "protobuf header indexes", value: "msg", headers: hdr("\x01" + string(guid[:]) + "\x02\x02"), protobuf: true,
			ref: SchemaRef{GUID: guid, IsGUID: true}, indexes: []int{1}, payload: "msg"},
		{name: "protobuf header without indexes", value: "msg", headers: hdr("\x00\x00\x00\x00\x05"), protobuf: true, reason: ReasonBadFraming},
	}
	for _, tc := range cases {
		rec := &Record{Value: []byte(tc.value), Headers: tc.headers}
		f, rerr := parseFraming(rec, rec.Value, tc.protobuf, make([]int, 0, 4))
		if tc.reason != "" {
			if rerr == nil || rerr.Reason != tc.reason || rerr.Detail == "" {
				t.Errorf("%s: got %v, want %s", tc.name, rerr, tc.reason)
			}
			continue
		}
		if rerr != nil {
			t.Errorf("%s: %v", tc.name, rerr)
			continue
		}
		if f.ref != tc.ref || string(f.payload) != tc.payload || !slices.Equal(f.indexes, tc.indexes) {
			t.Errorf("%s: got %v %q %v, want %v %q %v", tc.name, f.ref, f.payload, f.indexes, tc.ref, tc.payload, tc.indexes)
		}
	}
	if got := (SchemaRef{GUID: guid, IsGUID: true}).String(); got != "guid 3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01" {
		t.Errorf("GUID ref prints as %q", got)
	}
}

// needSchema decodes rec, expects a SchemaNeededError for ref and hands
// the decoder s.
func needSchema(t *testing.T, d *Decoder, rec *Record, ref SchemaRef, s *Schema) {
	t.Helper()
	out, err := d.AppendFields([]byte("p"), rec)
	var need *SchemaNeededError
	if !errors.As(err, &need) || need.Ref != ref {
		t.Fatalf("got %v, want a SchemaNeededError for %v", err, ref)
	}
	var re *RowError
	if errors.As(err, &re) {
		t.Fatal("a SchemaNeededError must not be a *RowError")
	}
	if string(out) != "p" {
		t.Fatalf("buffer not restored: %q", out)
	}
	d.AddSchema(ref, s)
}

func TestRegistrySchemaLifecycle(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: TypeInt8, Path: "id", Required: true},
		{Name: "name", Type: TypeText, Path: "name"},
		{Name: "city", Type: TypeText, Path: "address.city"},
		{Name: "extra", Type: TypeText, Path: "extra"},
		{Name: "off", Type: TypeInt8, Source: SourceOffset},
		{Name: "raw", Type: TypeBytea, Source: SourceValue},
	}
	v1 := `{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},` +
		`{"name":"address","type":["null",{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}]}]}`
	// v2 drops name, adds extra, and makes id optional.
	v2 := `{"type":"record","name":"User","fields":[{"name":"id","type":["null","long"]},{"name":"extra","type":"string"},` +
		`{"name":"address","type":["null",{"type":"record","name":"Address","fields":[{"name":"zip","type":"int"},{"name":"city","type":"string"}]}]}]}`
	d := mustDecoder(t, FormatAvro, cols, Options{})
	rec1 := &Record{Offset: 5, Value: cat(AppendRegistryFraming(nil, 1), aL(42), aS("ann"), aL(1), aS("Oslo"))}
	rec2 := &Record{Offset: 6, Value: cat(AppendRegistryFraming(nil, 2), aL(1), aL(43), aS("more"), aL(1), aL(1234), aS("Bergen"))}
	rec2null := &Record{Offset: 7, Value: cat(AppendRegistryFraming(nil, 2), aL(0), aS("more"), aL(0))}
	needSchema(t, d, rec1, SchemaRef{ID: 1}, &Schema{Text: v1})
	needSchema(t, d, rec2, SchemaRef{ID: 2}, &Schema{Text: v2})
	check := func(rec *Record, want ...string) {
		t.Helper()
		fields, rerr := decode(t, d, rec)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for i, w := range want {
			got := null
			if fields[i] != nil {
				got = string(fields[i])
			}
			if cols[i].Type == TypeInt8 && fields[i] != nil {
				got = string(appendInt(nil, int64(beUint64(fields[i]))))
			}
			if got != w {
				t.Errorf("offset %d column %s: got %q, want %q", rec.Offset, cols[i].Name, got, w)
			}
		}
	}
	for range 2 { // the second round hits the cache
		check(rec1, "42", "ann", "Oslo", null, "5", string(rec1.Value))
		check(rec2, "43", null, "Bergen", "more", "6", string(rec2.Value))
	}
	if _, rerr := decode(t, d, rec2null); rerr == nil || rerr.Reason != ReasonMissingRequired || rerr.Column != "id" {
		t.Errorf("null required id: got %v, want missing_required for column id", rerr)
	}
	// A tombstone has no framing: every path column is NULL.
	if _, rerr := decode(t, d, &Record{}); rerr == nil || rerr.Reason != ReasonMissingRequired {
		t.Errorf("tombstone: got %v, want missing_required", rerr)
	}

	// Unknown to the registry, of the wrong type, unparseable, and not
	// filling a column: every record with the id is a dead letter.
	bad := []struct {
		id     int32
		schema *Schema
		reason Reason
		column string
	}{
		{3, nil, ReasonUnknownSchema, ""},
		{4, &Schema{Type: SchemaProtobuf, Text: "syntax = \"proto3\";"}, ReasonSchemaMismatch, ""},
		{5, &Schema{Text: `{"type":"record","name":"User","fields":[{"name":"id","type":"lung"}]}`}, ReasonSchemaMismatch, ""},
		{6, &Schema{Text: `{"type":"record","name":"User","fields":[{"name":"id","type":"boolean"}]}`}, ReasonWrongType, "id"},
	}
	for _, b := range bad {
		rec := &Record{Value: cat(AppendRegistryFraming(nil, b.id), aL(1))}
		needSchema(t, d, rec, SchemaRef{ID: b.id}, b.schema)
		for range 2 {
			_, rerr := decode(t, d, rec)
			if rerr == nil || rerr.Reason != b.reason || rerr.Column != b.column || !strings.Contains(rerr.Detail, "id "+string(appendInt(nil, int64(b.id)))) {
				t.Errorf("schema %d: got %v, want %s naming the schema id and column %q", b.id, rerr, b.reason, b.column)
			}
		}
	}
	if err := d.AddSchema(SchemaRef{ID: 6}, &Schema{Text: `{"type":"record","name":"User","fields":[{"name":"id","type":"boolean"}]}`}); err == nil ||
		!strings.Contains(err.Error(), "cannot fill a int8 column") {
		t.Errorf("AddSchema of a schema that cannot fill column id: %v", err)
	}

	// A framing error is a dead letter before any schema lookup.
	if _, rerr := decode(t, d, &Record{Value: []byte(`{"id":1}`)}); rerr == nil || rerr.Reason != ReasonBadFraming {
		t.Errorf("unframed JSON: got %v, want bad_framing", rerr)
	}
	// Trailing bytes after the datum.
	if _, rerr := decode(t, d, &Record{Value: append(rec1.Value, 0)}); rerr == nil || rerr.Reason != ReasonSchemaMismatch {
		t.Errorf("trailing byte: got %v, want schema_mismatch", rerr)
	}
	// A truncated nested value names its path.
	if _, rerr := decode(t, d, &Record{Value: rec1.Value[:len(rec1.Value)-2]}); rerr == nil || rerr.Reason != ReasonSchemaMismatch || rerr.Path != "address.city" {
		t.Errorf("truncated city: got %v, want schema_mismatch at address.city", rerr)
	}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// TestRegistryUnknownSchemaExpires: a schema the registry did not know
// (a replica lagging behind a new registration) makes its records dead
// letters for unknownSchemaRetry only; the next record after that asks for
// it again, and is decoded once the registry knows it.
func TestRegistryUnknownSchemaExpires(t *testing.T) {
	d := mustDecoder(t, FormatAvro, []Column{{Name: "v", Type: TypeText, Path: "v"}}, Options{})
	rec := &Record{Value: cat(AppendRegistryFraming(nil, 3), aS("late"))}
	needSchema(t, d, rec, SchemaRef{ID: 3}, nil)
	for range 2 { // within the interval: a dead letter, no new request
		if _, rerr := decode(t, d, rec); rerr == nil || rerr.Reason != ReasonUnknownSchema {
			t.Fatalf("got %v, want unknown_schema", rerr)
		}
	}
	defer func(r time.Duration) { unknownSchemaRetry = r }(unknownSchemaRetry)
	// The interval passes and the registry still lacks it: the record asks
	// again and is a dead letter again.
	unknownSchemaRetry = 0
	needSchema(t, d, rec, SchemaRef{ID: 3}, nil)
	unknownSchemaRetry = time.Hour
	if _, rerr := decode(t, d, rec); rerr == nil || rerr.Reason != ReasonUnknownSchema {
		t.Fatalf("got %v, want unknown_schema", rerr)
	}
	// The interval passes and the registry knows it now.
	unknownSchemaRetry = 0
	needSchema(t, d, rec, SchemaRef{ID: 3}, &Schema{Text: oneField(`"string"`)})
	fields, rerr := decode(t, d, rec)
	if rerr != nil || string(fields[0]) != "late" {
		t.Fatalf("once the registry knows it: got %q %v", fields, rerr)
	}
}

// TestRegistryHeaderFraming: the schema reference in a __value_schema_id
// header, or in the prefix when the header is null.
func TestRegistryHeaderFraming(t *testing.T) {
	d := mustDecoder(t, FormatAvro, []Column{{Name: "v", Type: TypeText, Path: "v"}}, Options{})
	guid := [16]byte{15: 1}
	rec := &Record{Value: aS("hi"), Headers: []Header{{Key: valueSchemaIDHeader, Value: append([]byte{1}, guid[:]...)}}}
	needSchema(t, d, rec, SchemaRef{GUID: guid, IsGUID: true}, &Schema{Text: oneField(`"string"`)})
	fields, rerr := decode(t, d, rec)
	if rerr != nil || string(fields[0]) != "hi" {
		t.Fatalf("got %q %v", fields, rerr)
	}
	// A null header is no header, as Confluent's DualSchemaIdDeserializer
	// reads it: the schema id is in the prefix.
	rec = &Record{Value: cat(AppendRegistryFraming(nil, 7), aS("ho")), Headers: []Header{{Key: valueSchemaIDHeader}}}
	needSchema(t, d, rec, SchemaRef{ID: 7}, &Schema{Text: oneField(`"string"`)})
	fields, rerr = decode(t, d, rec)
	if rerr != nil || string(fields[0]) != "ho" {
		t.Fatalf("null header: got %q %v", fields, rerr)
	}
}

func TestRegistryEviction(t *testing.T) {
	d := mustDecoder(t, FormatAvro, []Column{{Name: "v", Type: TypeText, Path: "v"}}, Options{MaxSchemas: 2})
	rec := func(id int32) *Record { return &Record{Value: cat(AppendRegistryFraming(nil, id), aS("x"))} }
	s := &Schema{Text: oneField(`"string"`)}
	for id := int32(1); id <= 3; id++ {
		needSchema(t, d, rec(id), SchemaRef{ID: id}, s)
	}
	for _, id := range []int32{2, 3} {
		if _, rerr := decode(t, d, rec(id)); rerr != nil {
			t.Fatalf("id %d: %v", id, rerr)
		}
	}
	needSchema(t, d, rec(1), SchemaRef{ID: 1}, s) // evicted as the oldest
	needSchema(t, d, rec(2), SchemaRef{ID: 2}, s) // now the oldest of 2, 3 was evicted for 1
	if len(d.schemas.entries) != 2 {
		t.Fatalf("%d schemas cached, want 2", len(d.schemas.entries))
	}
}

func TestJSONSchemaFormat(t *testing.T) {
	cols := []Column{
		{Name: "country", Type: TypeText, Path: "attrs.country"},
		{Name: "amount", Type: TypeNumeric, Path: "amount"},
		{Name: "doc", Type: TypeJSONB, Source: SourceValue},
		{Name: "raw", Type: TypeBytea, Source: SourceValue},
	}
	d := mustDecoder(t, FormatJSONSchema, cols, Options{})
	value := append(AppendRegistryFraming(nil, 10), referenceEvent...)
	rec := &Record{Value: value}
	needSchema(t, d, rec, SchemaRef{ID: 10}, &Schema{Type: SchemaJSON, Text: `{"type":"object"}`})
	fields, rerr := decode(t, d, rec)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if string(fields[0]) != "DE" || string(fields[2][1:]) != string(referenceEvent) || string(fields[3]) != string(value) {
		t.Errorf("got %q", fields)
	}
	// The payload must be a JSON document like any json record.
	bad := &Record{Value: append(AppendRegistryFraming(nil, 10), "{nope"...)}
	if _, rerr := decode(t, d, bad); rerr == nil || rerr.Reason != ReasonMalformedJSON {
		t.Errorf("malformed payload: got %v", rerr)
	}
	// An Avro schema under a json_schema id is a mismatch; an unknown id a dead letter.
	needSchema(t, d, &Record{Value: append(AppendRegistryFraming(nil, 11), "{}"...)}, SchemaRef{ID: 11}, &Schema{Text: `"string"`})
	if _, rerr := decode(t, d, &Record{Value: append(AppendRegistryFraming(nil, 11), "{}"...)}); rerr == nil || rerr.Reason != ReasonSchemaMismatch {
		t.Errorf("avro schema for json_schema: got %v", rerr)
	}
	needSchema(t, d, &Record{Value: append(AppendRegistryFraming(nil, 12), "{}"...)}, SchemaRef{ID: 12}, nil)
	if _, rerr := decode(t, d, &Record{Value: append(AppendRegistryFraming(nil, 12), "{}"...)}); rerr == nil || rerr.Reason != ReasonUnknownSchema {
		t.Errorf("unknown schema: got %v", rerr)
	}
}

func TestProtobufFramingReachesPlan(t *testing.T) {
	d := mustDecoder(t, FormatProtobuf, []Column{{Name: "v", Type: TypeText, Path: "v"}}, Options{})
	rec := &Record{Value: []byte("\x00\x00\x00\x00\x05\x00\x0a\x01x")}
	needSchema(t, d, rec, SchemaRef{ID: 5}, &Schema{Type: SchemaProtobuf, Text: `syntax = "proto3"; message M { string v = 1; }`})
	fields, rerr := decode(t, d, rec)
	if rerr != nil || len(fields) != 1 || string(fields[0]) != "x" {
		t.Fatalf("got %q, %v", fields, rerr)
	}
	if len(d.schemas.entries[SchemaRef{ID: 5}].protos) != 1 {
		t.Errorf("the plan for message [0] was not cached")
	}
	// The index list [0] written out (count 1, index 0) and the schema
	// id in a header take the general path to the same plan as the
	// single byte 0 above, which decode reads without parseFraming.
	for _, r := range []*Record{
		{Value: []byte("\x00\x00\x00\x00\x05\x02\x00\x0a\x01y")},
		{Value: []byte("\x0a\x01y"), Headers: []Header{{Key: valueSchemaIDHeader, Value: []byte("\x00\x00\x00\x00\x05\x00")}}},
	} {
		fields, rerr := decode(t, d, r)
		if rerr != nil || len(fields) != 1 || string(fields[0]) != "y" {
			t.Fatalf("%q: got %q, %v", r.Value, fields, rerr)
		}
	}
	if n := len(d.schemas.entries[SchemaRef{ID: 5}].protos); n != 1 {
		t.Errorf("%d plans cached for message [0] reached three ways, want 1", n)
	}
}

func TestRegistryDecoderConfig(t *testing.T) {
	for _, f := range []Format{FormatAvro, FormatProtobuf, FormatJSONSchema} {
		name := f.String()
		if g, err := ParseFormat(name); err != nil || g != f {
			t.Errorf("ParseFormat(%q) = %v, %v", name, g, err)
		}
		if _, err := NewDecoder(f, nil, Options{}); err == nil {
			t.Errorf("%s: a decoder without columns was built", name)
		}
	}
	_, err := NewDecoder(FormatAvro, []Column{{Name: "v", Type: TypeJSONB, Source: SourceValue}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "bytea") {
		t.Errorf("avro kafka.value jsonb: %v", err)
	}
	if _, err := NewDecoder(FormatAvro, referenceColumns, Options{MaxSchemas: -1}); err == nil {
		t.Error("MaxSchemas -1 was accepted")
	}
	if err := mustDecoder(t, FormatJSON, referenceColumns, Options{}).AddSchema(SchemaRef{}, nil); err == nil {
		t.Error("AddSchema on a json decoder must fail")
	}
	for _, n := range []string{"AVRO", "PROTOBUF", "JSON", ""} {
		st, err := ParseSchemaType(n)
		if err != nil || (n != "" && st.String() != n) {
			t.Errorf("ParseSchemaType(%q) = %v, %v", n, st, err)
		}
	}
}

// FuzzRegistryFraming feeds arbitrary values and __value_schema_id
// headers to an Avro decoder that has schema id 1: every outcome is a
// row, a *RowError with a known reason, or a request for a schema.
func FuzzRegistryFraming(f *testing.F) {
	f.Add(referenceAvroValue, []byte(nil), false)
	f.Add(referenceAvroValue[5:], referenceAvroValue[:5], true)
	f.Add([]byte("\x01\x00\x00"), []byte("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"), true)
	d := avroDecoder(f, referenceColumns, AvroReferenceSchema)
	f.Fuzz(func(t *testing.T, value, header []byte, withHeader bool) {
		rec := &Record{Value: value}
		if withHeader {
			rec.Headers = []Header{{Key: valueSchemaIDHeader, Value: header}}
		}
		out, err := d.AppendFields([]byte("xyz"), rec)
		var re *RowError
		var need *SchemaNeededError
		switch {
		case err == nil:
			if _, ferr := splitFields(out[3:], d.NumFields()); ferr != nil || string(out[:3]) != "xyz" {
				t.Fatalf("accepted with malformed fields: %v", ferr)
			}
		case errors.As(err, &need):
			if need.Ref == (SchemaRef{ID: 1}) {
				t.Fatal("asks for a schema it has")
			}
		case errors.As(err, &re):
			if !avroKnownReasons[re.Reason] || re.Detail == "" {
				t.Fatalf("bad error %#v", re)
			}
		default:
			t.Fatalf("unexpected error %T %v", err, err)
		}
		if err != nil && string(out) != "xyz" {
			t.Fatalf("buffer not restored after %v", err)
		}
	})
}
