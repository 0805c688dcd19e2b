package codec

import "testing"

// BenchmarkDecodeAvroKeyedEvent decodes the Avro reference event with a
// framed Avro key whose two fields fill two more columns: the cost of the
// key over BenchmarkDecodeAvroReferenceEvent.
func BenchmarkDecodeAvroKeyedEvent(b *testing.B) {
	cols := append([]Column{
		{Name: "key_id", Type: TypeInt8, Source: SourceKey, Path: "id"},
		{Name: "key_tenant", Type: TypeText, Source: SourceKey, Path: "tenant"},
	}, referenceColumns...)
	d := avroDecoder(b, cols, AvroReferenceSchema)
	if err := d.AddKeySchema(SchemaRef{ID: 1}, &Schema{Text: avroKeySchema}); err != nil {
		b.Fatal(err)
	}
	rec := &Record{Topic: "events", Partition: 1, Offset: 42, Value: referenceAvroValue,
		Key: cat(AppendRegistryFraming(nil, 1), aL(42), aS("acme"))}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Key) + len(rec.Value)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var err error
		if dst, err = d.AppendFields(dst[:0], rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAvroKeyDelete is a tombstone deleting by a framed Avro
// key under Options.Deletes.
func BenchmarkDecodeAvroKeyDelete(b *testing.B) {
	cols := []Column{
		{Name: "id", Type: TypeInt8, Path: "id", Key: true},
		{Name: "name", Type: TypeText, Path: "name"},
		{Name: "off", Type: TypeInt8, Source: SourceOffset},
	}
	d := mustDecoder(b, FormatAvro, cols, Options{Deletes: true})
	if err := d.AddKeySchema(SchemaRef{ID: 1}, &Schema{Text: avroKeySchema}); err != nil {
		b.Fatal(err)
	}
	rec := &Record{Offset: 42, Key: cat(AppendRegistryFraming(nil, 1), aL(42), aS("acme"))}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Key)))
	dst := make([]byte, 0, 256)
	for b.Loop() {
		var err error
		if dst, err = d.AppendFields(dst[:0], rec); err != nil {
			b.Fatal(err)
		}
	}
}
