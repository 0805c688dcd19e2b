package codec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// referenceAvro is the JSON reference event as an AvroReferenceEvent.
var referenceAvro = AvroReferenceEvent{
	EventID:    "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01",
	TenantID:   123,
	UserID:     ptr[int64](4567),
	Type:       "purchase",
	TSMillis:   time.Date(2026, 11, 1, 0, 0, 1, 234e6, time.UTC).UnixMilli(),
	AmountCent: 1234,
	URL:        ptr("https://shop.example.com/checkout/cart?item=sku-48213&qty=2&ref=newsletter-2026-11"),
	UserAgent:  ptr("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"),
	Country:    "DE",
	Device:     "desktop",
	Session:    "9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b",
	Experiment: ptr("checkout-v2"),
}

// referenceAvroValue is the reference event framed with schema id 1.
var referenceAvroValue = AppendAvroReferenceEvent(AppendRegistryFraming(nil, 1), &referenceAvro)

// avroDecoder returns a FormatAvro decoder that has schema text as id 1.
func avroDecoder(t testing.TB, cols []Column, text string) *Decoder {
	t.Helper()
	d := mustDecoder(t, FormatAvro, cols, Options{})
	if err := d.AddSchema(SchemaRef{ID: 1}, &Schema{Type: SchemaAvro, Text: text}); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestAvroReferenceEventMatchesJSON decodes the reference event from Avro
// and from JSON: the fields must be the same bytes.
func TestAvroReferenceEventMatchesJSON(t *testing.T) {
	jd := mustDecoder(t, FormatJSON, referenceColumns, Options{})
	want, err := jd.AppendFields(nil, &Record{Value: referenceEvent, Offset: 42})
	if err != nil {
		t.Fatal(err)
	}
	ad := avroDecoder(t, referenceColumns, AvroReferenceSchema)
	got, err := ad.AppendFields(nil, &Record{Value: referenceAvroValue, Offset: 42})
	if err != nil {
		t.Fatal(err)
	}
	gf, _ := splitFields(got, len(referenceColumns))
	wf, _ := splitFields(want, len(referenceColumns))
	for i := range wf {
		if string(gf[i]) != string(wf[i]) {
			t.Errorf("column %s: avro %q, json %q", referenceColumns[i].Name, gf[i], wf[i])
		}
	}
	t.Logf("avro payload %d bytes, json %d bytes", len(referenceAvroValue), len(referenceEvent))
}

func TestAvroSchemaNeeded(t *testing.T) {
	d := mustDecoder(t, FormatAvro, referenceColumns, Options{})
	_, err := d.AppendFields([]byte("x"), &Record{Value: referenceAvroValue})
	var need *SchemaNeededError
	if !errors.As(err, &need) || need.Ref != (SchemaRef{ID: 1}) {
		t.Fatalf("got %v, want a SchemaNeededError for id 1", err)
	}
}

// TestAvroZeroAllocs asserts the steady state allocates nothing per
// record: the reference event, a nested and a map path, header framing,
// decimals beyond 64 bits and records rendered as JSON.
func TestAvroZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	d := avroDecoder(t, referenceColumns, AvroReferenceSchema)
	run := func(name string, d *Decoder, rec *Record) {
		t.Helper()
		dst := make([]byte, 0, 4096)
		if _, err := d.AppendFields(dst, rec); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if allocs := testing.AllocsPerRun(200, func() {
			var err error
			if dst, err = d.AppendFields(dst[:0], rec); err != nil {
				t.Fatal(err)
			}
		}); allocs != 0 {
			t.Errorf("%s: %.1f allocations per record, want 0", name, allocs)
		}
	}
	run("reference", d, &Record{Topic: "events", Offset: 42, Value: referenceAvroValue})
	run("header framing", d, &Record{Value: referenceAvroValue[5:],
		Headers: []Header{{Key: valueSchemaIDHeader, Value: referenceAvroValue[:5]}}})

	cols := []Column{
		{Name: "big", Type: TypeNumeric, Path: "big"},
		{Name: "big_text", Type: TypeText, Path: "big"},
		{Name: "m", Type: TypeText, Path: "m.k"},
		{Name: "whole", Type: TypeJSONB, Path: "whole"},
		{Name: "ts", Type: TypeText, Path: "ts"},
		{Name: "f", Type: TypeNumeric, Path: "f"},
	}
	schema := `{"type":"record","name":"R","fields":[
		{"name":"big","type":` + ftDecimal0 + `},
		{"name":"m","type":{"type":"map","values":"string"}},
		{"name":"whole","type":` + ftInner + `},
		{"name":"ts","type":` + ftTsNanos + `},
		{"name":"f","type":"double"}]}`
	d2 := avroDecoder(t, cols, schema)
	value := cat(AppendRegistryFraming(nil, 1), aS("\x80\x00\x00\x00\x00\x00\x00\x00\x00\x01"),
		aL(2), aS("j"), aS("x"), aS("k"), aS("found"), aL(0), inner, aL(tsMillis*1e6+1), aF64(-1.25e-7))
	run("nested", d2, &Record{Value: value})
}

// TestAvroJumpOnlyUnread: array blocks with a byte size are jumped over
// only where no column reads them, around them or inside them.
func TestAvroJumpOnlyUnread(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[
		{"name":"a","type":{"type":"record","name":"A","fields":[{"name":"x","type":"long"},{"name":"arr","type":{"type":"array","items":"string"}}]}},
		{"name":"other","type":{"type":"array","items":"string"}}]}`
	cols := []Column{{Name: "a", Type: TypeJSONB, Path: "a"}, {Name: "x", Type: TypeInt8, Path: "a.x"}}
	d := avroDecoder(t, cols, schema)
	garbage := cat(aL(-1), aL(1), aL(-2), aL(0)) // one item of 1 byte: a negative string length
	good := cat(aL(-1), aL(2), aS("s"), aL(0))
	rec := func(arr, other []byte) *Record {
		return &Record{Value: cat(AppendRegistryFraming(nil, 1), aL(5), arr, other)}
	}
	if fields, rerr := decode(t, d, rec(good, garbage)); rerr != nil || string(fields[0][1:]) != `{"x":5,"arr":["s"]}` {
		t.Errorf("garbage in an unread block: %q %v, want it jumped over", fields, rerr)
	}
	if _, rerr := decode(t, d, rec(garbage, good)); rerr == nil || rerr.Reason != ReasonSchemaMismatch || rerr.Path != "a.arr" {
		t.Errorf("garbage in a block a column reads: %v, want schema_mismatch at a.arr", rerr)
	}
}

// TestAvroReferenceEventLandsInPostgres COPYs the Avro reference event,
// written with and without the optional fields, and reads it back.
func TestAvroReferenceEventLandsInPostgres(t *testing.T) {
	d := avroDecoder(t, referenceColumns, AvroReferenceSchema)
	sparse := referenceAvro
	sparse.EventID, sparse.UserID, sparse.URL, sparse.UserAgent, sparse.Experiment = "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f02", nil, nil, nil, nil
	sparse.AmountCent = -5
	var tuples []byte
	for i, e := range []*AvroReferenceEvent{&referenceAvro, &sparse} {
		out, err := d.AppendFields(nil, &Record{Value: AppendAvroReferenceEvent(AppendRegistryFraming(nil, 1), e), Offset: int64(42 + i)})
		if err != nil {
			t.Fatal(err)
		}
		tuples = appendTuple(tuples, d.NumFields(), out)
	}
	conn := pgConn(t)
	ctx := context.Background()
	mustExec(t, conn, "DROP TABLE IF EXISTS avro_ref; CREATE TABLE avro_ref "+referenceTable)
	if err := copyTuples(ctx, conn, "avro_ref", tuples); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT event_id::text, tenant_id::text, coalesce(user_id::text, 'NULL'), type, ts::text, amount::text,
		coalesce(url, 'NULL'), coalesce(user_agent, 'NULL'), attrs::text, country, src_offset::text FROM avro_ref ORDER BY src_offset`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	wants := [][11]string{
		{"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01", "123", "4567", "purchase", "2026-11-01 00:00:01.234+00", "12.34",
			"https://shop.example.com/checkout/cart?item=sku-48213&qty=2&ref=newsletter-2026-11",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
			`{"device": "desktop", "country": "DE", "session": "9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b", "experiment": "checkout-v2"}`, "DE", "42"},
		{"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f02", "123", "NULL", "purchase", "2026-11-01 00:00:01.234+00", "-0.05", "NULL", "NULL",
			`{"device": "desktop", "country": "DE", "session": "9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b", "experiment": null}`, "DE", "43"},
	}
	n := 0
	for rows.Next() {
		var got [11]string
		if err := rows.Scan(&got[0], &got[1], &got[2], &got[3], &got[4], &got[5], &got[6], &got[7], &got[8], &got[9], &got[10]); err != nil {
			t.Fatal(err)
		}
		if n < len(wants) && got != wants[n] {
			t.Errorf("row %d:\ngot  %q\nwant %q", n, got, wants[n])
		}
		n++
	}
	if rows.Err() != nil || n != 2 {
		t.Fatalf("%d rows, %v", n, rows.Err())
	}
}

// TestAvroNumericScaled: the direct base-10000 encoding of small decimals
// equals the encoding of their decimal text.
func TestAvroNumericScaled(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := &avroPlan{}
	for range 50000 {
		b := make([]byte, r.IntN(9))
		for j := range b {
			if j == 0 || r.IntN(3) > 0 {
				b[j] = byte(r.IntN(256))
			}
		}
		scale := r.IntN(16)
		neg, mag := smallDecimal(b)
		got := appendNumericScaled(nil, neg, mag, scale)
		text := p.appendDecimalText(nil, b, scale)
		n, _ := splitNumber(text)
		if want := appendNumericField(nil, &n); !bytes.Equal(got, want) {
			t.Fatalf("%x at scale %d (%s): got %x, want %x", b, scale, text, got, want)
		}
	}
}

// TestAvroZeroSizeItemsBounded checks that items which take no bytes
// (nulls here) are bounded over the whole datum, not per block: a 3 KB
// datum of many blocks of 4,000 nulls each is a dead letter, not millions
// of items to walk and render; a datum within the bound lands whole.
func TestAvroZeroSizeItemsBounded(t *testing.T) {
	schema := `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}}]}`
	d := avroDecoder(t, []Column{{Name: "a", Type: TypeJSONB, Path: "a"}}, schema)

	var forged []byte
	for len(forged) < 3000 {
		forged = append(forged, aL(4000)...) // each block alone within len+1024
	}
	forged = append(forged, 0)
	out, err := d.AppendFields(nil, &Record{Value: append(AppendRegistryFraming(nil, 1), forged...)})
	var re *RowError
	if !errors.As(err, &re) || re.Reason != ReasonSchemaMismatch {
		t.Fatalf("forged block counts: got %v (%d bytes of fields), want a schema_mismatch dead letter", err, len(out))
	}

	// 100 nulls, then a block of 100 with its byte size (0), then the end.
	ok := append(append(append(aL(100), aL(-100)...), aL(0)...), 0)
	out, err = d.AppendFields(nil, &Record{Value: append(AppendRegistryFraming(nil, 1), ok...)})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, []byte("null")); n != 200 {
		t.Errorf("%d nulls rendered, want 200", n)
	}
}

// TestAvroSchemaCompileLinear compiles a schema whose records may encode
// in no bytes, each referring twice to the one inside it: sizing them
// once each is linear, sizing them at every reference 2^30 visits.
func TestAvroSchemaCompileLinear(t *testing.T) {
	const levels = 30
	def := `{"type":"record","name":"R0","fields":[]}`
	for i := 1; i <= levels; i++ {
		def = fmt.Sprintf(`{"type":"record","name":"R%d","fields":[{"name":"a","type":%s},{"name":"b","type":"R%d"}]}`, i, def, i-1)
	}
	schema := `{"type":"record","name":"Top","fields":[{"name":"x","type":["null",` + def + `]},{"name":"id","type":"long"}]}`
	done := make(chan error, 1)
	go func() {
		d, err := NewDecoder(FormatAvro, []Column{{Name: "id", Type: TypeInt8, Path: "id"}}, Options{})
		if err == nil {
			err = d.AddSchema(SchemaRef{ID: 1}, &Schema{Type: SchemaAvro, Text: schema})
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("AddSchema of a %d-byte schema (%d records) still running after 10 s", len(schema), levels+2)
	}
}
