package codec

import "testing"

// BenchmarkDecodeAvroReferenceEvent decodes the reference event in Avro
// (registry-framed) into the reference columns, as
// BenchmarkDecodeReferenceEvent does from JSON.
func BenchmarkDecodeAvroReferenceEvent(b *testing.B) {
	d := avroDecoder(b, referenceColumns, AvroReferenceSchema)
	rec := &Record{Topic: "events", Partition: 1, Offset: 42, Value: referenceAvroValue}
	b.ReportAllocs()
	b.SetBytes(int64(len(referenceAvroValue)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var err error
		if dst, err = d.AppendFields(dst[:0], rec); err != nil {
			b.Fatal(err)
		}
	}
}
