package codec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// schemaKey names a schema a test hands over: value or key side.
type schemaKey struct {
	ref SchemaRef
	key bool
}

// feed decodes rec until the decoder has every schema it asks for, taken
// from schemas (a missing entry is handed over as nil: unknown to the
// registry), and returns the schemas it asked for in order.
func feed(t *testing.T, d *Decoder, rec *Record, schemas map[schemaKey]*Schema) []schemaKey {
	t.Helper()
	var asked []schemaKey
	for range 4 {
		_, err := d.AppendFields(nil, rec)
		var need *SchemaNeededError
		if !errors.As(err, &need) {
			return asked
		}
		sk := schemaKey{need.Ref, need.Key}
		asked = append(asked, sk)
		if need.Key {
			d.AddKeySchema(need.Ref, schemas[sk])
		} else {
			d.AddSchema(need.Ref, schemas[sk])
		}
	}
	t.Fatalf("the decoder keeps asking for schemas: %v", asked)
	return nil
}

const (
	avroKeySchema   = `{"type":"record","name":"Key","fields":[{"name":"id","type":"long"},{"name":"tenant","type":"string"}]}`
	avroValueSchema = `{"type":"record","name":"Value","fields":[{"name":"name","type":"string"}]}`
)

func TestRegistryKeyAvro(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id", Key: true},
		{Name: "tenant", Type: TypeText, Source: SourceKey, Path: "tenant"},
		{Name: "name", Type: TypeText, Path: "name"},
		{Name: "k", Type: TypeBytea, Source: SourceKey},
	}
	d := mustDecoder(t, FormatAvro, cols, Options{})
	// The key and the value schema share id 7 in their own caches.
	schemas := map[schemaKey]*Schema{
		{SchemaRef{ID: 7}, false}: {Text: avroValueSchema},
		{SchemaRef{ID: 7}, true}:  {Text: avroKeySchema},
		{SchemaRef{ID: 8}, true}:  {Text: `{"type":"record","name":"Key","fields":[{"name":"id","type":"boolean"}]}`},
		{SchemaRef{ID: 10}, true}: {Type: SchemaProtobuf, Text: `syntax = "proto3"; message K { int64 id = 1; }`},
	}
	value := cat(AppendRegistryFraming(nil, 7), aS("ann"))
	key := cat(AppendRegistryFraming(nil, 7), aL(42), aS("acme"))
	rec := &Record{Key: key, Value: value}
	asked := feed(t, d, rec, schemas)
	if len(asked) != 2 || asked[0] != (schemaKey{SchemaRef{ID: 7}, false}) || asked[1] != (schemaKey{SchemaRef{ID: 7}, true}) {
		t.Fatalf("asked for %v, want value id 7 then key id 7", asked)
	}
	guid := [16]byte{0: 0xab, 15: 1}
	schemas[schemaKey{SchemaRef{GUID: guid, IsGUID: true}, true}] = &Schema{Text: avroKeySchema}

	check := func(name string, rec *Record, want ...string) {
		t.Helper()
		feed(t, d, rec, schemas)
		got, _, rerr := decodeChange(t, d, rec)
		if rerr != nil {
			t.Errorf("%s: %v", name, rerr)
			return
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s:\ngot  %q\nwant %q", name, got, want)
		}
	}
	bytea := func(b []byte) string { return renderField(TypeBytea, appendBytesField(nil, b)[4:]) }
	check("framed key", rec, "42", "acme", "ann", bytea(key))
	hkey := cat(aL(43), aS("beta"))
	check("key id in a header", &Record{Key: hkey, Value: value, Headers: []Header{{Key: keySchemaIDHeader, Value: AppendRegistryFraming(nil, 7)}}},
		"43", "beta", "ann", bytea(hkey))
	check("key guid in a header, value id in a header", &Record{Key: hkey, Value: value[5:], Headers: []Header{
		{Key: valueSchemaIDHeader, Value: value[:5]},
		{Key: keySchemaIDHeader, Value: append([]byte{magicGUID}, guid[:]...)},
	}}, "43", "beta", "ann", bytea(hkey))
	check("null key header, framed key", &Record{Key: key, Value: value, Headers: []Header{{Key: keySchemaIDHeader}}},
		"42", "acme", "ann", bytea(key))
	check("null key", &Record{Value: value}, null, null, "ann", null)

	bad := func(name string, rec *Record, reason Reason, path, detail string) {
		t.Helper()
		feed(t, d, rec, schemas)
		_, _, rerr := decodeChange(t, d, rec)
		if rerr == nil || rerr.Reason != reason || rerr.Path != path || !strings.Contains(rerr.Detail, detail) {
			t.Errorf("%s: got %v, want %s at %s with %q", name, rerr, reason, path, detail)
		}
	}
	bad("unframed key", &Record{Key: []byte(`{"id":1}`), Value: value}, ReasonBadFraming, "kafka.key", "key starts with byte 0x7b")
	bad("truncated framing", &Record{Key: []byte{0, 0, 7}, Value: value}, ReasonBadFraming, "kafka.key", "key of 3 bytes")
	bad("bad key header", &Record{Key: hkey, Value: value, Headers: []Header{{Key: keySchemaIDHeader, Value: []byte("7")}}},
		ReasonBadFraming, "kafka.key", "__key_schema_id header starts with byte 0x37")
	bad("unknown key schema", &Record{Key: cat(AppendRegistryFraming(nil, 9), aL(1)), Value: value}, ReasonUnknownSchema, "kafka.key", "key schema with id 9")
	bad("key schema cannot fill the column", &Record{Key: cat(AppendRegistryFraming(nil, 8), []byte{1}), Value: value},
		ReasonWrongType, "kafka.key.id", "key schema id 8")
	bad("key schema of another type", &Record{Key: cat(AppendRegistryFraming(nil, 10), aL(1)), Value: value},
		ReasonSchemaMismatch, "kafka.key", "key schema id 10 is a PROTOBUF schema")
	bad("truncated key datum", &Record{Key: key[:len(key)-2], Value: value}, ReasonSchemaMismatch, "kafka.key.tenant", "of the Avro payload")
	// The value schema with id 7 was not replaced by the key schema with id 7.
	check("value after key errors", rec, "42", "acme", "ann", bytea(key))
	if len(d.schemas.entries) != 1 || len(d.rk.schemas.entries) != 5 {
		t.Errorf("%d value and %d key schemas cached, want 1 and 5", len(d.schemas.entries), len(d.rk.schemas.entries))
	}

	// A decoder whose columns read no field of the key never asks for a
	// key schema and takes none.
	plain := mustDecoder(t, FormatAvro, []Column{{Name: "name", Type: TypeText, Path: "name"}, {Name: "k", Type: TypeBytea, Source: SourceKey}}, Options{})
	if asked := feed(t, plain, &Record{Key: []byte("not framed"), Value: value}, schemas); len(asked) != 1 || asked[0].key {
		t.Errorf("plain decoder asked for %v", asked)
	}
	if err := plain.AddKeySchema(SchemaRef{ID: 7}, &Schema{Text: avroKeySchema}); err == nil {
		t.Error("AddKeySchema on a decoder without key fields must fail")
	}
	if err := mustDecoder(t, FormatJSON, []Column{{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id"}}, Options{}).AddKeySchema(SchemaRef{}, nil); err == nil {
		t.Error("AddKeySchema on a json decoder must fail")
	}
	var need *SchemaNeededError
	if _, err := mustDecoder(t, FormatAvro, cols, Options{}).AppendFields(nil, &Record{Key: key, Value: value}); !errors.As(err, &need) ||
		need.Key || !strings.Contains(err.Error(), "writer schema with id 7") {
		t.Errorf("value schema needed: %v", err)
	}
	if err := (&SchemaNeededError{Ref: SchemaRef{ID: 7}, Key: true}).Error(); !strings.Contains(err, "record key with id 7") {
		t.Errorf("key schema needed says %q", err)
	}
}

func TestRegistryKeyProtobuf(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id"},
		{Name: "region", Type: TypeText, Source: SourceKey, Path: "where.region"},
		{Name: "v", Type: TypeText, Path: "v"},
	}
	d := mustDecoder(t, FormatProtobuf, cols, Options{})
	schemas := map[schemaKey]*Schema{
		{SchemaRef{ID: 5}, false}: {Type: SchemaProtobuf, Text: `syntax = "proto3"; message V { string v = 1; }`},
		// The key is the second message of its file: message indexes [1].
		{SchemaRef{ID: 5}, true}: {Type: SchemaProtobuf, Text: `syntax = "proto3";
message Where { string region = 1; }
message K { int64 id = 1; Where where = 2; }`},
	}
	value := []byte("\x00\x00\x00\x00\x05\x00" + string(pbString(1, "x")))
	payload := pbCat(pbVarint(1, 42), pbBytes(2, pbString(1, "eu")))
	key := append([]byte("\x00\x00\x00\x00\x05\x02\x02"), payload...)
	for name, rec := range map[string]*Record{
		"framed key":   {Key: key, Value: value},
		"header key":   {Key: payload, Value: value, Headers: []Header{{Key: keySchemaIDHeader, Value: []byte("\x00\x00\x00\x00\x05\x02\x02")}}},
		"value header": {Key: key, Value: value[6:], Headers: []Header{{Key: valueSchemaIDHeader, Value: value[:6]}}},
	} {
		feed(t, d, rec, schemas)
		got, _, rerr := decodeChange(t, d, rec)
		if rerr != nil || strings.Join(got, "|") != "42|eu|x" {
			t.Errorf("%s: %q, %v", name, got, rerr)
		}
	}
	if len(d.rk.schemas.entries[SchemaRef{ID: 5}].protos) != 1 {
		t.Error("the key plan for message [1] was not cached")
	}
	// The key's message indexes are part of its framing.
	for name, k := range map[string][]byte{
		"no indexes":      []byte("\x00\x00\x00\x00\x05"),
		"index past file": append([]byte("\x00\x00\x00\x00\x05\x02\x06"), payload...),
	} {
		reason := ReasonBadFraming
		if name == "index past file" {
			reason = ReasonSchemaMismatch
		}
		_, _, rerr := decodeChange(t, d, &Record{Key: k, Value: value})
		if rerr == nil || rerr.Reason != reason || rerr.Path != "kafka.key" {
			t.Errorf("%s: got %v, want %s at kafka.key", name, rerr, reason)
		}
	}
}

func TestRegistryKeyJSON(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id"},
		{Name: "city", Type: TypeText, Source: SourceKey, Path: "addr.city"},
		{Name: "v", Type: TypeText, Path: "v"},
	}
	// FormatJSON: the key is a JSON object.
	dj := mustDecoder(t, FormatJSON, cols, Options{})
	for key, want := range map[string]string{
		`{"id":1,"addr":{"city":"Oslo"}}`: "1|Oslo|x",
		`{"id":"2"}`:                      "2|" + null + "|x",
		"<nil>":                           null + "|" + null + "|x",
	} {
		rec := &Record{Value: []byte(`{"v":"x"}`)}
		if key != "<nil>" {
			rec.Key = []byte(key)
		}
		if got, _, rerr := decodeChange(t, dj, rec); rerr != nil || strings.Join(got, "|") != want {
			t.Errorf("json key %s: %q, %v", key, got, rerr)
		}
	}
	for key, reason := range map[string]Reason{`"abc"`: ReasonMalformedJSON, `{"id":`: ReasonMalformedJSON, `{"id":true}`: ReasonWrongType} {
		_, _, rerr := decodeChange(t, dj, &Record{Key: []byte(key), Value: []byte(`{"v":"x"}`)})
		if rerr == nil || rerr.Reason != reason || !strings.HasPrefix(rerr.Path, "kafka.key") {
			t.Errorf("json key %s: got %v, want %s at kafka.key", key, rerr, reason)
		}
	}

	// FormatJSONSchema: the key is framed, its payload a JSON object.
	ds := mustDecoder(t, FormatJSONSchema, cols, Options{})
	schemas := map[schemaKey]*Schema{{SchemaRef{ID: 3}, false}: {Type: SchemaJSON, Text: `{"type":"object"}`}, {SchemaRef{ID: 3}, true}: {Type: SchemaJSON, Text: `{"type":"object"}`}}
	rec := &Record{Key: append(AppendRegistryFraming(nil, 3), `{"id":9,"addr":{"city":"Rome"}}`...), Value: append(AppendRegistryFraming(nil, 3), `{"v":"y"}`...)}
	if asked := feed(t, ds, rec, schemas); len(asked) != 2 || !asked[1].key {
		t.Errorf("json_schema asked for %v", asked)
	}
	if got, _, rerr := decodeChange(t, ds, rec); rerr != nil || strings.Join(got, "|") != "9|Rome|y" {
		t.Errorf("json_schema key: %q, %v", got, rerr)
	}
	if _, _, rerr := decodeChange(t, ds, &Record{Key: []byte(`{"id":9}`), Value: rec.Value}); rerr == nil || rerr.Reason != ReasonBadFraming || rerr.Path != "kafka.key" {
		t.Errorf("unframed json_schema key: %v", rerr)
	}
}

func TestKeyPathColumnConfig(t *testing.T) {
	ok := []struct {
		format Format
		col    Column
	}{
		{FormatJSON, Column{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id"}},
		{FormatAvro, Column{Name: "id", Type: TypeUUID, Source: SourceKey, Path: "a.b"}},
		{FormatProtobuf, Column{Name: "id", Type: TypeDate, Source: SourceKey, Path: "d"}},
		{FormatJSONSchema, Column{Name: "id", Type: TypeNumeric, Source: SourceKey, Path: "n"}},
	}
	for _, c := range ok {
		if _, err := NewDecoder(c.format, []Column{c.col}, Options{}); err != nil {
			t.Errorf("%s %+v: %v", c.format, c.col, err)
		}
	}
	bad := []struct {
		format Format
		col    Column
		want   string
	}{
		{FormatRaw, Column{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id"}, "format raw does not decode"},
		{FormatDebezium, Column{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id"}, "format debezium does not decode"},
		{FormatAvro, Column{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "a..b"}, "empty segment"},
		{FormatAvro, Column{Name: "o", Type: TypeInt8, Source: SourceOffset, Path: "o"}, "only kafka.key takes a path"},
	}
	for _, c := range bad {
		if _, err := NewDecoder(c.format, []Column{c.col}, Options{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: got %v, want %q", c.format, c.col, err, c.want)
		}
	}
	// Required: a missing key field.
	d := mustDecoder(t, FormatJSON, []Column{{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id", Required: true}}, Options{})
	if _, _, rerr := decodeChange(t, d, &Record{Key: []byte(`{}`), Value: []byte(`{}`)}); rerr == nil || rerr.Reason != ReasonMissingRequired || rerr.Path != "kafka.key.id" {
		t.Errorf("required key field: %v", rerr)
	}
}

func TestRegistryKeyDeletes(t *testing.T) {
	schemas := map[schemaKey]*Schema{
		{SchemaRef{ID: 1}, false}: {Text: `{"type":"record","name":"V","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`},
		{SchemaRef{ID: 2}, true}:  {Text: `{"type":"record","name":"K","fields":[{"name":"id","type":"long"}]}`},
		{SchemaRef{ID: 3}, true}:  {Text: `{"type":"record","name":"K","fields":[{"name":"other","type":"long"}]}`},
	}
	key := cat(AppendRegistryFraming(nil, 2), aL(5))
	upsert := &Record{Key: key, Value: cat(AppendRegistryFraming(nil, 1), aL(5), aS("ann")), Offset: 1}
	tomb := &Record{Key: key, Offset: 2}
	run := func(name string, cols []Column, rec *Record, wantOp Op, want string) {
		t.Helper()
		d := mustDecoder(t, FormatAvro, cols, Options{Deletes: true})
		feed(t, d, rec, schemas)
		got, op, rerr := decodeChange(t, d, rec)
		if rerr != nil || op != wantOp || strings.Join(got, "|") != want {
			t.Errorf("%s: %q, %s, %v; want %q, %s", name, got, op, rerr, want, wantOp)
		}
	}
	valuePathKey := []Column{
		{Name: "id", Type: TypeInt8, Path: "id", Key: true},
		{Name: "name", Type: TypeText, Path: "name"},
		{Name: "off", Type: TypeInt8, Source: SourceOffset},
	}
	keyPathKey := []Column{
		{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id", Key: true},
		{Name: "name", Type: TypeText, Path: "name"},
		{Name: "off", Type: TypeInt8, Source: SourceOffset},
	}
	run("value path key column, tombstone", valuePathKey, tomb, OpDelete, "5|"+null+"|2")
	run("kafka.key path key column, tombstone", keyPathKey, tomb, OpDelete, "5|"+null+"|2")
	run("kafka.key path key column, upsert", keyPathKey, upsert, OpUpsert, "5|ann|1")
	run("header-framed key", valuePathKey, &Record{Key: key[5:], Headers: []Header{{Key: keySchemaIDHeader, Value: key[:5]}}}, OpDelete, "5|"+null+"|0")
	// An unframed key is read as before: a JSON object or a string.
	run("unframed JSON key", valuePathKey, &Record{Key: []byte(`{"id":6}`)}, OpDelete, "6|"+null+"|0")
	run("unframed text key", valuePathKey, &Record{Key: []byte(`7`)}, OpDelete, "7|"+null+"|0")
	// A null __key_schema_id header is no header.
	run("null key header, unframed key", valuePathKey, &Record{Key: []byte(`{"id":6}`), Headers: []Header{{Key: keySchemaIDHeader}}}, OpDelete, "6|"+null+"|0")

	// Upserts do not read the key when no column takes a field of it.
	d := mustDecoder(t, FormatAvro, valuePathKey, Options{Deletes: true})
	if asked := feed(t, d, upsert, schemas); len(asked) != 1 || asked[0].key {
		t.Errorf("upsert asked for %v, want only the value schema", asked)
	}

	bad := func(name string, cols []Column, rec *Record, reason Reason, detail string) {
		t.Helper()
		d := mustDecoder(t, FormatAvro, cols, Options{Deletes: true})
		feed(t, d, rec, schemas)
		_, op, rerr := decodeChange(t, d, rec)
		if rerr == nil || rerr.Reason != reason || !strings.HasPrefix(rerr.Path, "kafka.key") || !strings.Contains(rerr.Detail, detail) {
			t.Errorf("%s: got %v (op %s), want %s with %q", name, rerr, op, reason, detail)
		}
	}
	bad("key schema without the key field", valuePathKey, &Record{Key: cat(AppendRegistryFraming(nil, 3), aL(5))}, ReasonBadKey, "no value at id")
	bad("unknown key schema", valuePathKey, &Record{Key: cat(AppendRegistryFraming(nil, 4), aL(5))}, ReasonUnknownSchema, "key schema with id 4")
	bad("unframed key for a kafka.key path column", keyPathKey, &Record{Key: []byte(`{"id":6}`)}, ReasonBadFraming, "key starts with byte 0x7b")
	bad("truncated framing", valuePathKey, &Record{Key: []byte{0, 0}}, ReasonBadFraming, "key of 2 bytes")

	// FormatJSON: a kafka.key path key column reads the JSON key by path.
	dj := mustDecoder(t, FormatJSON, []Column{
		{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "k.id", Key: true},
		{Name: "t", Type: TypeText, Source: SourceKey, Path: "t"},
		{Name: "v", Type: TypeText, Path: "v"},
	}, Options{Deletes: true})
	if got, op, rerr := decodeChange(t, dj, &Record{Key: []byte(`{"k":{"id":8},"t":"x"}`)}); rerr != nil || op != OpDelete || strings.Join(got, "|") != "8|x|"+null {
		t.Errorf("json delete by a kafka.key path: %q, %s, %v", got, op, rerr)
	}
	if got, op, rerr := decodeChange(t, dj, &Record{Key: []byte(`{"k":{"id":8},"t":"x"}`), Value: []byte(`{"v":"y"}`)}); rerr != nil || op != OpUpsert || strings.Join(got, "|") != "8|x|y" {
		t.Errorf("json upsert with kafka.key paths: %q, %s, %v", got, op, rerr)
	}
}

// TestRegistryKeyZeroAllocs: a framed Avro key and value, and a tombstone
// deleting by a framed Avro key, allocate nothing in steady state.
func TestRegistryKeyZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	cols := []Column{
		{Name: "id", Type: TypeInt8, Source: SourceKey, Path: "id", Key: true},
		{Name: "tenant", Type: TypeText, Source: SourceKey, Path: "tenant"},
		{Name: "name", Type: TypeText, Path: "name"},
		{Name: "off", Type: TypeInt8, Source: SourceOffset},
		{Name: "ts", Type: TypeTimestamptz, Source: SourceTimestamp},
	}
	schemas := map[schemaKey]*Schema{{SchemaRef{ID: 7}, false}: {Text: avroValueSchema}, {SchemaRef{ID: 7}, true}: {Text: avroKeySchema}}
	key := cat(AppendRegistryFraming(nil, 7), aL(42), aS("acme"))
	value := cat(AppendRegistryFraming(nil, 7), aS("ann"))
	for name, opts := range map[string]Options{"plain": {}, "deletes": {Deletes: true}} {
		d := mustDecoder(t, FormatAvro, cols, opts)
		recs := map[string]*Record{
			"framed": {Offset: 1, Timestamp: time.Now(), Key: key, Value: value},
			"header": {Offset: 1, Key: key[5:], Value: value[5:], Headers: []Header{
				{Key: keySchemaIDHeader, Value: key[:5]}, {Key: valueSchemaIDHeader, Value: value[:5]}}},
		}
		if opts.Deletes {
			recs["tombstone"] = &Record{Offset: 2, Key: key}
		}
		dst := make([]byte, 0, 1024)
		for rn, rec := range recs {
			feed(t, d, rec, schemas)
			if _, err := d.AppendFields(dst[:0], rec); err != nil {
				t.Fatalf("%s %s: %v", name, rn, err)
			}
			if allocs := testing.AllocsPerRun(200, func() {
				var err error
				if dst, err = d.AppendFields(dst[:0], rec); err != nil {
					t.Fatal(err)
				}
			}); allocs != 0 {
				t.Errorf("%s %s: %.1f allocations per record, want 0", name, rn, allocs)
			}
		}
	}
}

// FuzzRegistryKey feeds arbitrary keys and __key_schema_id headers, with a
// valid value or as tombstones, to Avro decoders that have key and value
// schema id 7: every outcome is a row, a *RowError with a known reason
// naming the key or a column, or a request for a schema it lacks.
func FuzzRegistryKey(f *testing.F) {
	key := cat(AppendRegistryFraming(nil, 7), aL(42), aS("acme"))
	f.Add(key, []byte(nil), false, false)
	f.Add(key, []byte(nil), false, true)
	f.Add(key[5:], key[:5], true, true)
	f.Add([]byte(`{"id":1}`), []byte(nil), false, true)
	f.Add([]byte("\x00\x00\x00\x07\x54"), []byte("\x01\x00"), true, false)
	cols := []Column{
		{Name: "id", Type: TypeInt8, Path: "id", Key: true},
		{Name: "tenant", Type: TypeText, Source: SourceKey, Path: "tenant"},
		{Name: "name", Type: TypeText, Path: "name"},
		{Name: "k", Type: TypeBytea, Source: SourceKey},
	}
	valueSchema := `{"type":"record","name":"Value","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`
	var decs []*Decoder
	for _, opts := range []Options{{}, {Deletes: true}} {
		d := mustDecoder(f, FormatAvro, cols, opts)
		d.AddSchema(SchemaRef{ID: 7}, &Schema{Text: valueSchema})
		d.AddKeySchema(SchemaRef{ID: 7}, &Schema{Text: avroKeySchema})
		decs = append(decs, d)
	}
	value := cat(AppendRegistryFraming(nil, 7), aL(1), aS("ann"))
	known := map[Reason]bool{ReasonBadKey: true, ReasonUnknownSchema: true}
	for r := range avroKnownReasons {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, key, header []byte, withHeader, tombstone bool) {
		rec := &Record{Key: key}
		if !tombstone {
			rec.Value = value
		}
		if withHeader {
			rec.Headers = []Header{{Key: keySchemaIDHeader, Value: header}}
		}
		for _, d := range decs {
			out, err := d.AppendFields([]byte("xyz"), rec)
			var re *RowError
			var need *SchemaNeededError
			switch {
			case err == nil:
				if _, ferr := splitFields(out[3:], d.NumFields()); ferr != nil || string(out[:3]) != "xyz" {
					t.Fatalf("accepted with malformed fields: %v", ferr)
				}
			case errors.As(err, &need):
				if need.Ref == (SchemaRef{ID: 7}) || !need.Key {
					t.Fatalf("asks for a schema it has: %v", need)
				}
			case errors.As(err, &re):
				if !known[re.Reason] || re.Detail == "" || (re.Column == "" && !strings.HasPrefix(re.Path, "kafka.key")) {
					t.Fatalf("bad error %#v", re)
				}
			default:
				t.Fatalf("unexpected error %T %v", err, err)
			}
			if err != nil && string(out) != "xyz" {
				t.Fatalf("buffer not restored after %v", err)
			}
		}
	})
}

// TestKeySchemaRef: the key schema of a record as the decoder reads it: a
// __key_schema_id header with a value wins over the key's prefix, id or
// GUID; a null header counts as none; a key without framing has none.
func TestKeySchemaRef(t *testing.T) {
	guid := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	byID := []byte{0, 0, 0, 0, 7, 2}
	byGUID := append([]byte{1}, guid[:]...)
	for _, c := range []struct {
		rec  Record
		want SchemaRef
		ok   bool
	}{
		{Record{Key: byID}, SchemaRef{ID: 7}, true},
		{Record{Key: append(byGUID, 2)}, SchemaRef{GUID: guid, IsGUID: true}, true},
		{Record{Key: []byte{2}, Headers: []Header{{Key: "__key_schema_id", Value: byID[:5]}}}, SchemaRef{ID: 7}, true},
		{Record{Key: []byte{2}, Headers: []Header{{Key: "__key_schema_id", Value: byID[:5]}, {Key: "__key_schema_id", Value: byGUID}}}, SchemaRef{GUID: guid, IsGUID: true}, true},
		{Record{Key: byID, Headers: []Header{{Key: "__key_schema_id"}}}, SchemaRef{ID: 7}, true},
		{Record{Key: []byte(`{"id":7}`)}, SchemaRef{}, false},
		{Record{Key: byGUID[:9]}, SchemaRef{}, false},
		{Record{}, SchemaRef{}, false},
	} {
		if got, ok := KeySchemaRef(&c.rec); got != c.want || ok != c.ok {
			t.Errorf("KeySchemaRef(key %x, headers %v) = %v, %v; want %v, %v", c.rec.Key, c.rec.Headers, got, ok, c.want, c.ok)
		}
	}
}
