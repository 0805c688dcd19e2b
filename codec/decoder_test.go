package codec

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// referenceEvent is the reference event of docs/design.md, "Reference
// workload": 480 bytes.
var referenceEvent = []byte(`{"event_id":"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01","tenant_id":123,"user_id":4567,` +
	`"type":"purchase","ts":"2026-11-01T00:00:01.234Z","amount":12.34,` +
	`"url":"https://shop.example.com/checkout/cart?item=sku-48213&qty=2&ref=newsletter-2026-11",` +
	`"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",` +
	`"attrs":{"country":"DE","device":"desktop","session":"9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b","experiment":"checkout-v2"}}`)

var referenceColumns = []Column{
	{Name: "event_id", Type: TypeUUID, Path: "event_id", Required: true},
	{Name: "tenant_id", Type: TypeInt8, Path: "tenant_id"},
	{Name: "user_id", Type: TypeInt8, Path: "user_id"},
	{Name: "type", Type: TypeText, Path: "type"},
	{Name: "ts", Type: TypeTimestamptz, Path: "ts"},
	{Name: "amount", Type: TypeNumeric, Path: "amount"},
	{Name: "url", Type: TypeText, Path: "url"},
	{Name: "user_agent", Type: TypeText, Path: "user_agent"},
	{Name: "attrs", Type: TypeJSONB, Path: "attrs"},
	{Name: "country", Type: TypeText, Path: "attrs.country"},
	{Name: "src_offset", Type: TypeInt8, Source: SourceOffset},
}

const referenceTable = `(event_id uuid primary key, tenant_id int8, user_id int8, type text,
	ts timestamptz, amount numeric, url text, user_agent text, attrs jsonb, country text, src_offset int8)`

func mustDecoder(t testing.TB, format Format, cols []Column, opts Options) *Decoder {
	t.Helper()
	d, err := NewDecoder(format, cols, opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// decode runs AppendFields on a non-empty buffer and checks the framing
// contract either way.
func decode(t testing.TB, d *Decoder, rec *Record) ([][]byte, *RowError) {
	t.Helper()
	prefix := []byte{1, 2, 3}
	out, err := d.AppendFields(prefix, rec)
	if err != nil {
		var re *RowError
		if !errors.As(err, &re) {
			t.Fatalf("error %T is not a *RowError: %v", err, err)
		}
		if !bytes.Equal(out, prefix) {
			t.Fatalf("on error the buffer must be restored, got %x", out)
		}
		return nil, re
	}
	if !bytes.Equal(out[:3], prefix) {
		t.Fatalf("prefix overwritten: %x", out[:3])
	}
	fields, ferr := splitFields(out[3:], d.NumFields())
	if ferr != nil {
		t.Fatalf("malformed fields: %v", ferr)
	}
	return fields, nil
}

func TestReferenceEventLandsInPostgres(t *testing.T) {
	d := mustDecoder(t, FormatJSON, referenceColumns, Options{})
	fields, rerr := decode(t, d, &Record{Value: referenceEvent, Offset: 42})
	if rerr != nil {
		t.Fatal(rerr)
	}
	if d.NumFields() != 11 || len(fields) != 11 {
		t.Fatalf("NumFields %d, fields %d, want 11", d.NumFields(), len(fields))
	}
	conn := pgConn(t)
	ctx := context.Background()
	mustExec(t, conn, "DROP TABLE IF EXISTS ref; CREATE TABLE ref "+referenceTable)
	out, _ := d.AppendFields(nil, &Record{Value: referenceEvent, Offset: 42})
	if err := copyTuples(ctx, conn, "ref", appendTuple(nil, d.NumFields(), out)); err != nil {
		t.Fatal(err)
	}
	var got [11]string
	err := conn.QueryRow(ctx, `SELECT event_id::text, tenant_id::text, user_id::text, type, ts::text, amount::text,
		url, user_agent, (attrs = $1::jsonb)::text, country, src_offset::text FROM ref`,
		`{"country":"DE","device":"desktop","session":"9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b","experiment":"checkout-v2"}`).
		Scan(&got[0], &got[1], &got[2], &got[3], &got[4], &got[5], &got[6], &got[7], &got[8], &got[9], &got[10])
	if err != nil {
		t.Fatal(err)
	}
	want := [11]string{"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01", "123", "4567", "purchase", "2026-11-01 00:00:01.234+00", "12.34",
		"https://shop.example.com/checkout/cart?item=sku-48213&qty=2&ref=newsletter-2026-11",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"true", "DE", "42"}
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// checkDoc decodes doc with d and compares column i, shown as text by
// show (null for a NULL field), with want[i].
func checkDoc(t *testing.T, d *Decoder, cols []Column, doc string, show func(i int, f []byte) string, want ...string) {
	t.Helper()
	fields, rerr := decode(t, d, &Record{Value: []byte(doc)})
	if rerr != nil {
		t.Fatalf("%s: %v", doc, rerr)
	}
	for i, w := range want {
		got := null
		if fields[i] != nil {
			got = show(i, fields[i])
		}
		if got != w {
			t.Errorf("%s: column %s = %q, want %q", doc, cols[i].Name, got, w)
		}
	}
}

func TestPaths(t *testing.T) {
	cols := []Column{
		{Name: "a", Type: TypeText, Path: "a"},
		{Name: "b_c", Type: TypeText, Path: "b.c"},
		{Name: "b", Type: TypeJSON, Path: "b"},
		{Name: "b_c_int", Type: TypeInt4, Path: "b.c"},
		{Name: "deep", Type: TypeText, Path: "x.y.z"},
	}
	d := mustDecoder(t, FormatJSON, cols, Options{})
	f := func(doc string, want ...string) {
		t.Helper()
		checkDoc(t, d, cols, doc, func(i int, f []byte) string {
			if i == 3 {
				return string(rune('0' + binary.BigEndian.Uint32(f)))
			}
			return string(f)
		}, want...)
	}
	f(`{"a":"1","b":{"c":"2"},"x":{"y":{"z":"3"}}}`, "1", "2", `{"c":"2"}`, "2", "3")
	f(`{"x":{"y":{"z":"3"}},"b":{"c":"2"},"a":"1"}`, "1", "2", `{"c":"2"}`, "2", "3")
	// Duplicate keys: the last one wins, also for what lies below it.
	f(`{"a":"1","a":"2"}`, "2", null, null, null, null)
	f(`{"b":{"c":"2"},"b":{"d":1}}`, null, null, `{"d":1}`, null, null)
	f(`{"b":{"c":"2"},"b":5}`, null, null, "5", null, null)
	f(`{"b":{"c":"2","c":"7"}}`, null, "7", `{"c":"2","c":"7"}`, "7", null)
	// Escaped keys match their decoded form.
	f(`{"\u0061":"esc","b":{"\u0063":"4"}}`, "esc", "4", `{"\u0063":"4"}`, "4", null)
	// A path through a non-object finds nothing.
	f(`{"b":[{"c":1}],"x":{"y":"z"}}`, null, null, `[{"c":1}]`, null, null)
	// Unknown keys, nesting and all kinds are skipped.
	f(`{"z":[1,{"a":"no"},[true,false,null,-1.5e3,"s\"\\"]],"a":"yes"}`, "yes", null, null, null, null)
	f(`{}`, null, null, null, null, null)
	f(" \t\r\n{ \"a\" : \"w\" } \n", "w", null, null, null, null)
}

// TestExpectedKeys covers the key expected next, which parseObject matches
// byte for byte: a key that only starts like it, a longer or shorter one,
// an escaped spelling, and names that cannot be matched raw.
func TestExpectedKeys(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: TypeText, Path: "event_id"},
		{Name: "ty", Type: TypeText, Path: "type"},
		{Name: "pr", Type: TypeText, Path: "prénom"},
		{Name: "q", Type: TypeText, Path: `a"b`},
	}
	d := mustDecoder(t, FormatJSON, cols, Options{})
	f := func(doc string, want ...string) {
		t.Helper()
		checkDoc(t, d, cols, doc, func(_ int, f []byte) string { return string(f) }, want...)
	}
	f(`{"event_id":"1","type":"t","prénom":"p","a\"b":"q"}`, "1", "t", "p", "q")
	f(`{"event_idx":"1","event_i":"2","type":"t"}`, null, "t", null, null)
	f(`{"event_id" :"1", "type"  :  "t"}`, "1", "t", null, null)
	f(`{"ev\u0065nt_id":"1","typ\u0065":"t","pr\u00e9nom":"p"}`, "1", "t", "p", null)
	f(`{"type":"t","event_id":"1"}`, "1", "t", null, null)
	f(`{"event_id":"1","event_id":"2"}`, "2", null, null, null)
	for _, doc := range []string{`{"a"b":"q"}`, `{"event_id"`, `{"event_id`, `{"event_id":}`} {
		if _, rerr := decode(t, d, &Record{Value: []byte(doc)}); rerr == nil {
			t.Errorf("%s: decoded, want a malformed-JSON error", doc)
		}
	}
}

func TestRecordErrors(t *testing.T) {
	d := mustDecoder(t, FormatJSON, []Column{
		{Name: "id", Type: TypeInt8, Path: "id", Required: true},
		{Name: "s", Type: TypeText, Path: "s"},
	}, Options{MaxRecordBytes: 64, MaxDepth: 5})
	f := func(value string, reason Reason, column string) {
		t.Helper()
		var v []byte
		if value != "<nil>" {
			v = []byte(value)
		}
		_, rerr := decode(t, d, &Record{Value: v})
		if rerr == nil {
			t.Errorf("%q: accepted, want %s", value, reason)
			return
		}
		if rerr.Reason != reason || rerr.Column != column {
			t.Errorf("%q: got %v, want %s on column %q", value, rerr, reason, column)
		}
		if rerr.Detail == "" || rerr.Error() == "" {
			t.Errorf("%q: error without detail", value)
		}
	}
	f(`<nil>`, ReasonMissingRequired, "id")
	f(`{"s":"x"}`, ReasonMissingRequired, "id")
	f(`{"id":null}`, ReasonMissingRequired, "id")
	f(``, ReasonMalformedJSON, "")
	f(`   `, ReasonMalformedJSON, "")
	f(`[1]`, ReasonMalformedJSON, "")
	f(`"str"`, ReasonMalformedJSON, "")
	f(`{"id":1}x`, ReasonMalformedJSON, "")
	f(`{"id":1,}`, ReasonMalformedJSON, "")
	f(`{"id":01}`, ReasonMalformedJSON, "")
	f(`{"id":1`, ReasonMalformedJSON, "")
	f(`{"id":1,"s":"a`, ReasonMalformedJSON, "")
	f(`{"id":1,"s":"\x"}`, ReasonMalformedJSON, "")
	f(`{"id":1,"s":"`+"\t"+`"}`, ReasonMalformedJSON, "")
	f("{\"id\":1,\"s\":\"\xff\"}", ReasonInvalidUTF8, "")
	f("{\"id\":1,\"s\":\"\xc0\xaf\"}", ReasonInvalidUTF8, "")
	f("{\"id\":1,\"s\":\"\xed\xa0\x80\"}", ReasonInvalidUTF8, "")
	f("\xef\xbb\xbf{\"id\":1}", ReasonMalformedJSON, "")
	f(`{"id":1,"x":[[[[[1]]]]]}`, ReasonMalformedJSON, "")
	f(`{"id":1,"s":"`+strings.Repeat("x", 60)+`"}`, ReasonOversized, "")
	f(`{"id":1,"s":"\u0000"}`, ReasonNULInText, "s")
	f(`{"id":true}`, ReasonWrongType, "id")
	// Depth 5 is allowed.
	if _, rerr := decode(t, d, &Record{Value: []byte(`{"id":1,"x":[[[[1]]]]}`)}); rerr != nil {
		t.Errorf("depth 5 rejected: %v", rerr)
	}
	// Errors in values no column reads still make the record malformed.
	f(`{"id":1,"other":tru}`, ReasonMalformedJSON, "")
	// An unread \u0000 is fine: only columns that store it fail.
	if _, rerr := decode(t, d, &Record{Value: []byte(`{"id":1,"other":"\u0000\ud800"}`)}); rerr != nil {
		t.Errorf("unread \\u0000 rejected: %v", rerr)
	}
}

func TestTombstone(t *testing.T) {
	d := mustDecoder(t, FormatJSON, []Column{
		{Name: "v", Type: TypeText, Path: "v"},
		{Name: "value", Type: TypeJSONB, Source: SourceValue},
		{Name: "off", Type: TypeInt8, Source: SourceOffset},
	}, Options{})
	fields, rerr := decode(t, d, &Record{Offset: 7})
	if rerr != nil {
		t.Fatal(rerr)
	}
	if fields[0] != nil || fields[1] != nil || binary.BigEndian.Uint64(fields[2]) != 7 {
		t.Errorf("tombstone fields %q", fields)
	}
}

func TestNewDecoderValidation(t *testing.T) {
	f := func(format Format, cols []Column, opts Options, want string) {
		t.Helper()
		_, err := NewDecoder(format, cols, opts)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	f(FormatJSON, nil, Options{}, "without columns")
	f(FormatJSON, []Column{{Type: TypeText, Path: "a"}}, Options{}, "no name")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Path: "a"}, {Name: "a", Type: TypeInt8, Path: "b"}}, Options{}, "used twice")
	f(FormatJSON, []Column{{Name: "a", Path: "a"}}, Options{}, "invalid type")
	f(FormatJSON, []Column{{Name: "a", Type: 99, Path: "a"}}, Options{}, "invalid type")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText}}, Options{}, "neither a path nor a source")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Path: "a..b"}}, Options{}, "empty segment")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Path: ".a"}}, Options{}, "empty segment")
	f(FormatJSON, []Column{{Name: "a", Type: TypeUUID, Source: SourceOffset}}, Options{}, "source kafka.offset cannot fill a uuid column; use type int8 or numeric")
	f(FormatJSON, []Column{{Name: "a", Type: TypeInt8, Source: SourceTopic}}, Options{}, "kafka.topic cannot fill")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Source: SourceHeaders}}, Options{}, "kafka.headers cannot fill")
	f(FormatJSON, []Column{{Name: "a", Type: TypeUUID, Source: SourceValue}}, Options{}, "kafka.value cannot fill")
	f(FormatJSON, []Column{{Name: "a", Type: TypeInt8, Source: SourceOffset, Path: "x"}}, Options{}, "both source")
	f(FormatJSON, []Column{{Name: "a", Type: TypeInt8, Source: 42}}, Options{}, "invalid source")
	f(FormatRaw, []Column{{Name: "a", Type: TypeText, Path: "a"}}, Options{}, "format raw")
	f(Format(9), []Column{{Name: "a", Type: TypeText, Path: "a"}}, Options{}, "format")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Path: "a"}}, Options{MaxRecordBytes: -1}, "MaxRecordBytes")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Path: "a"}}, Options{MaxDepth: -1}, "MaxDepth")
	for src, types := range sourceTypes {
		for _, typ := range types {
			if _, err := NewDecoder(FormatJSON, []Column{{Name: "c", Type: typ, Source: src}}, Options{}); err != nil {
				t.Errorf("%s into %s: %v", src, typ, err)
			}
		}
	}
}

func TestParseNames(t *testing.T) {
	for _, name := range TypeNames() {
		typ, err := ParseType(name)
		if err != nil || typ.String() != name {
			t.Errorf("ParseType(%q) = %v, %v", name, typ, err)
		}
	}
	if _, err := ParseType("varchar"); err == nil {
		t.Error("ParseType accepted varchar")
	}
	for s := SourcePath; s <= SourceValue; s++ {
		got, err := ParseSource(s.String())
		if err != nil || got != s {
			t.Errorf("ParseSource(%q) = %v, %v", s, got, err)
		}
	}
	if f, err := ParseFormat("raw"); err != nil || f != FormatRaw || f.String() != "raw" {
		t.Errorf("ParseFormat(raw) = %v, %v", f, err)
	}
}

// TestSources lands every kafka.* source in PostgreSQL.
func TestSources(t *testing.T) {
	cols := []Column{
		{Name: "topic", Type: TypeText, Source: SourceTopic},
		{Name: "p2", Type: TypeInt2, Source: SourcePartition},
		{Name: "p4", Type: TypeInt4, Source: SourcePartition},
		{Name: "p8", Type: TypeInt8, Source: SourcePartition},
		{Name: "o8", Type: TypeInt8, Source: SourceOffset},
		{Name: "onum", Type: TypeNumeric, Source: SourceOffset},
		{Name: "ts", Type: TypeTimestamptz, Source: SourceTimestamp},
		{Name: "tsl", Type: TypeTimestamp, Source: SourceTimestamp},
		{Name: "tsms", Type: TypeInt8, Source: SourceTimestamp},
		{Name: "ktext", Type: TypeText, Source: SourceKey},
		{Name: "kbytes", Type: TypeBytea, Source: SourceKey},
		{Name: "kjson", Type: TypeJSON, Source: SourceKey},
		{Name: "kjsonb", Type: TypeJSONB, Source: SourceKey},
		{Name: "hjsonb", Type: TypeJSONB, Source: SourceHeaders},
		{Name: "hjson", Type: TypeJSON, Source: SourceHeaders},
		{Name: "vtext", Type: TypeText, Source: SourceValue},
		{Name: "vbytes", Type: TypeBytea, Source: SourceValue},
		{Name: "vjson", Type: TypeJSON, Source: SourceValue},
		{Name: "vjsonb", Type: TypeJSONB, Source: SourceValue},
		{Name: "a", Type: TypeText, Path: "a"},
	}
	d := mustDecoder(t, FormatJSON, cols, Options{})
	rec := &Record{
		Topic: "events", Partition: 3, Offset: 1 << 40,
		Timestamp: time.Date(2026, 11, 1, 0, 0, 1, 234567891, time.UTC),
		Key:       []byte(` {"k": 1} `),
		Value:     []byte(` {"a":"x","n":1.50} `),
		Headers: []Header{
			{Key: "trace", Value: []byte("abc\"\n")},
			{Key: "bin", Value: []byte{0xff, 0x00}},
			{Key: "nul", Value: []byte("a\x00b")},
			{Key: "nil", Value: nil},
			{Key: "bad\xffkey\x00", Value: []byte{}},
		},
	}
	out, err := d.AppendFields(nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	conn := pgConn(t)
	ctx := context.Background()
	mustExec(t, conn, `DROP TABLE IF EXISTS sources; CREATE TABLE sources (topic text, p2 int2, p4 int4, p8 int8, o8 int8,
		onum numeric, ts timestamptz, tsl timestamp, tsms int8, ktext text, kbytes bytea, kjson json, kjsonb jsonb,
		hjsonb jsonb, hjson json, vtext text, vbytes bytea, vjson json, vjsonb jsonb, a text)`)
	if err := copyTuples(ctx, conn, "sources", appendTuple(nil, d.NumFields(), out)); err != nil {
		t.Fatal(err)
	}
	var got []string
	rows, err := conn.Query(ctx, `SELECT topic, p2::text, p4::text, p8::text, o8::text, onum::text, ts::text, tsl::text,
		tsms::text, ktext, kbytes::text, kjson::text, kjsonb::text, hjsonb::text, (hjson::jsonb = hjsonb)::text,
		vtext, vbytes::text, vjson::text, vjsonb::text, a FROM sources`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			got = append(got, v.(string))
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	want := []string{"events", "3", "3", "3", "1099511627776", "1099511627776",
		"2026-11-01 00:00:01.234567+00", "2026-11-01 00:00:01.234567", "1793491201234",
		` {"k": 1} `, `\x207b226b223a20317d20`, `{"k": 1}`, `{"k": 1}`,
		`[{"key": "trace", "value": "abc\"\n"}, {"key": "bin", "value_base64": "/wA="}, {"key": "nul", "value_base64": "YQBi"}, {"key": "nil", "value": null}, {"key": "bad�key�", "value": ""}]`,
		"true",
		` {"a":"x","n":1.50} `, `\x207b2261223a2278222c226e223a312e35307d20`, `{"a":"x","n":1.50}`, `{"a": "x", "n": 1.50}`, "x"}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			g := "<none>"
			if i < len(got) {
				g = got[i]
			}
			t.Errorf("%s = %q, want %q", cols[i].Name, g, want[i])
		}
	}

	// Edge cases of the sources themselves.
	f := func(cols []Column, rec *Record, reason Reason) {
		t.Helper()
		d := mustDecoder(t, FormatJSON, cols, Options{})
		fields, rerr := decode(t, d, rec)
		switch {
		case reason == "" && rerr != nil:
			t.Errorf("%s: %v", cols[0].Name, rerr)
		case reason != "" && (rerr == nil || rerr.Reason != reason || rerr.Column != cols[0].Name || rerr.Path != cols[0].Source.String()):
			t.Errorf("%s: got %v, want %s", cols[0].Name, rerr, reason)
		case reason == "" && fields[0] != nil:
			t.Errorf("%s: got %q, want NULL", cols[0].Name, fields[0])
		}
	}
	f([]Column{{Name: "p2", Type: TypeInt2, Source: SourcePartition}}, &Record{Partition: 40000}, ReasonOutOfRange)
	f([]Column{{Name: "topic", Type: TypeText, Source: SourceTopic}}, &Record{Topic: "a\x00"}, ReasonNULInText)
	f([]Column{{Name: "ktext", Type: TypeText, Source: SourceKey}}, &Record{Key: []byte{0xff}}, ReasonInvalidUTF8)
	f([]Column{{Name: "kjson", Type: TypeJSON, Source: SourceKey}}, &Record{Key: []byte(`{`)}, ReasonMalformedJSON)
	f([]Column{{Name: "kjsonb", Type: TypeJSONB, Source: SourceKey}}, &Record{Key: []byte(`"\u0000"`)}, ReasonInvalidValue)
	f([]Column{{Name: "kjsonb", Type: TypeJSONB, Source: SourceKey}}, &Record{}, "")
	f([]Column{{Name: "kreq", Type: TypeBytea, Source: SourceKey, Required: true}}, &Record{}, ReasonMissingRequired)
	f([]Column{{Name: "ts", Type: TypeTimestamptz, Source: SourceTimestamp}}, &Record{}, "")
	f([]Column{{Name: "tsreq", Type: TypeTimestamptz, Source: SourceTimestamp, Required: true}}, &Record{}, ReasonMissingRequired)
	f([]Column{{Name: "vtext", Type: TypeText, Source: SourceValue}}, &Record{Value: []byte("a\x00")}, ReasonNULInText)
	f([]Column{{Name: "vjsonb", Type: TypeJSONB, Source: SourceValue}}, &Record{Value: []byte(`["\ud800"]`)}, ReasonInvalidValue)
	f([]Column{{Name: "vreq", Type: TypeBytea, Source: SourceValue, Required: true}}, &Record{}, ReasonMissingRequired)

	// Without path columns a json/jsonb kafka.value may be any JSON value,
	// and JSON null is a jsonb null, not SQL NULL.
	dv := mustDecoder(t, FormatJSON, []Column{{Name: "v", Type: TypeJSONB, Source: SourceValue}}, Options{})
	fields, rerr := decode(t, dv, &Record{Value: []byte(" null ")})
	if rerr != nil || string(fields[0]) != "\x01null" {
		t.Errorf("value null: %q %v", fields, rerr)
	}
}

func TestRaw(t *testing.T) {
	d := mustDecoder(t, FormatRaw, nil, Options{})
	if d.NumFields() != 7 || len(d.Columns()) != 7 {
		t.Fatalf("raw decoder has %d fields", d.NumFields())
	}
	recs := []*Record{
		{Topic: "t", Partition: 1, Offset: 2, Timestamp: time.UnixMilli(1730419201234).UTC(), Key: []byte{0, 1}, Value: []byte("not json \x00\xff"),
			Headers: []Header{{Key: "content-encoding", Value: []byte("zstd")}}},
		{Topic: "t", Partition: 1, Offset: 3},
	}
	var tuples []byte
	for _, r := range recs {
		fields, rerr := decode(t, d, r)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if len(fields) != 7 {
			t.Fatal(len(fields))
		}
		out, _ := d.AppendFields(nil, r)
		tuples = appendTuple(tuples, 7, out)
	}
	conn := pgConn(t)
	ctx := context.Background()
	mustExec(t, conn, `DROP TABLE IF EXISTS raw; CREATE TABLE raw (topic text, partition int4, "offset" int8, "timestamp" timestamptz, key bytea, value bytea, headers jsonb)`)
	if err := copyTuples(ctx, conn, "raw", tuples); err != nil {
		t.Fatal(err)
	}
	var got []string
	rows, _ := conn.Query(ctx, `SELECT concat_ws('|', topic, partition, "offset", "timestamp", coalesce(key::text, 'NULL'), coalesce(value::text, 'NULL'), headers) FROM raw ORDER BY "offset"`)
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	want := []string{
		`t|1|2|2024-11-01 00:00:01.234+00|\x0001|\x6e6f74206a736f6e2000ff|[{"key": "content-encoding", "value": "zstd"}]`,
		`t|1|3|NULL|NULL|[]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
