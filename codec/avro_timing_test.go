package codec

import (
	"testing"

	"github.com/hamba/avro/v2"
)

// BenchmarkDecodeAvroReferenceEvent decodes the reference event in Avro
// (registry-framed, 325 bytes) into the reference columns, as
// BenchmarkDecodeReferenceEvent does from JSON.
func BenchmarkDecodeAvroReferenceEvent(b *testing.B) {
	benchmarkRecord(b, avroDecoder(b, referenceColumns, AvroReferenceSchema),
		&Record{Topic: "events", Partition: 1, Offset: 42, Value: referenceAvroValue})
}

// BenchmarkDecodeAvroReferenceEventHeader is the same event with its
// schema id in a __value_schema_id header.
func BenchmarkDecodeAvroReferenceEventHeader(b *testing.B) {
	benchmarkRecord(b, avroDecoder(b, referenceColumns, AvroReferenceSchema),
		&Record{Topic: "events", Partition: 1, Offset: 42, Value: referenceAvroValue[5:],
			Headers: []Header{{Key: "trace", Value: []byte("abc")}, {Key: valueSchemaIDHeader, Value: referenceAvroValue[:5]}}})
}

// BenchmarkDecodeAvroSkip reads one column of a wide record: the walk
// skips the rest by lengths and block sizes.
func BenchmarkDecodeAvroSkip(b *testing.B) {
	const n = 40
	schema := `{"type":"record","name":"W","fields":[`
	var value []byte
	value = AppendRegistryFraming(value, 1)
	for i := range n {
		schema += `{"name":"s` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `","type":"string"},` +
			`{"name":"a` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `","type":{"type":"array","items":"long"}},`
		value = appendAvroString(value, "some text that no column reads")
		value = append(value, appendAvroLong(nil, -4)...)
		value = append(value, appendAvroLong(nil, 4)...)
		value = append(value, 2, 4, 6, 8, 0)
	}
	schema += `{"name":"last","type":"long"}]}`
	value = appendAvroLong(value, 42)
	benchmarkRecord(b, avroDecoder(b, []Column{{Name: "last", Type: TypeInt8, Path: "last"}}, schema), &Record{Value: value})
}

// benchmarkRecord decodes rec with d through AppendFields, as the
// appliance does: framing, schema lookup and every column.
func benchmarkRecord(b *testing.B, d *Decoder, rec *Record) {
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Value)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var err error
		if dst, err = d.AppendFields(dst[:0], rec); err != nil {
			b.Fatal(err)
		}
	}
}

// hambaEvent is the reference event as hamba/avro decodes it.
type hambaEvent struct {
	EventID   string  `avro:"event_id"`
	TenantID  int64   `avro:"tenant_id"`
	UserID    *int64  `avro:"user_id"`
	Type      string  `avro:"type"`
	TS        int64   `avro:"ts"`
	Amount    []byte  `avro:"amount"`
	URL       *string `avro:"url"`
	UserAgent *string `avro:"user_agent"`
	Attrs     struct {
		Country    string  `avro:"country"`
		Device     string  `avro:"device"`
		Session    string  `avro:"session"`
		Experiment *string `avro:"experiment"`
	} `avro:"attrs"`
}

// BenchmarkDecodeAvroReferenceEventHamba decodes the same payload into a
// struct with hamba/avro, for comparison: no COPY fields, no validation
// of text, no JSON for attrs.
func BenchmarkDecodeAvroReferenceEventHamba(b *testing.B) {
	plain := `{"type":"record","name":"Event","fields":[{"name":"event_id","type":"string"},{"name":"tenant_id","type":"long"},` +
		`{"name":"user_id","type":["null","long"]},{"name":"type","type":"string"},{"name":"ts","type":"long"},{"name":"amount","type":"bytes"},` +
		`{"name":"url","type":["null","string"]},{"name":"user_agent","type":["null","string"]},{"name":"attrs","type":{"type":"record","name":"Attrs",` +
		`"fields":[{"name":"country","type":"string"},{"name":"device","type":"string"},{"name":"session","type":"string"},{"name":"experiment","type":["null","string"]}]}}]}`
	s := avro.MustParse(plain)
	payload := referenceAvroValue[5:]
	b.ReportAllocs()
	b.SetBytes(int64(len(referenceAvroValue)))
	for b.Loop() {
		var ev hambaEvent
		if err := avro.Unmarshal(s, payload, &ev); err != nil {
			b.Fatal(err)
		}
	}
}
