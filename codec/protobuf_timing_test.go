package codec

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// protobufReferenceEvent is the reference event (see referenceEvent)
// serialized with ProtobufReferenceSchema.
func protobufReferenceEvent(t testing.TB) []byte {
	t.Helper()
	fd, err := compileProtobufFile(&Schema{Text: ProtobufReferenceSchema})
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().ByName("Event")
	m := dynamicpb.NewMessage(md)
	set := func(m *dynamicpb.Message, name string, v protoreflect.Value) {
		m.Set(m.Descriptor().Fields().ByName(protoreflect.Name(name)), v)
	}
	set(m, "event_id", protoreflect.ValueOfString("3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"))
	set(m, "tenant_id", protoreflect.ValueOfInt64(123))
	set(m, "user_id", protoreflect.ValueOfInt64(4567))
	set(m, "type", protoreflect.ValueOfString("purchase"))
	ts := dynamicpb.NewMessage(md.Fields().ByName("ts").Message())
	set(ts, "seconds", protoreflect.ValueOfInt64(1793491201))
	set(ts, "nanos", protoreflect.ValueOfInt32(234000000))
	set(m, "ts", protoreflect.ValueOfMessage(ts))
	set(m, "amount", protoreflect.ValueOfFloat64(12.34))
	set(m, "url", protoreflect.ValueOfString("https://shop.example.com/checkout/cart?item=sku-48213&qty=2&ref=newsletter-2026-11"))
	set(m, "user_agent", protoreflect.ValueOfString("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"))
	attrs := dynamicpb.NewMessage(md.Fields().ByName("attrs").Message())
	set(attrs, "country", protoreflect.ValueOfString("DE"))
	set(attrs, "device", protoreflect.ValueOfString("desktop"))
	set(attrs, "session", protoreflect.ValueOfString("9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b"))
	set(attrs, "experiment", protoreflect.ValueOfString("checkout-v2"))
	set(m, "attrs", protoreflect.ValueOfMessage(attrs))
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkDecodeProtobufReferenceEvent decodes the reference event's
// path columns (all of referenceColumns but kafka.offset) from Protobuf.
func BenchmarkDecodeProtobufReferenceEvent(b *testing.B) {
	payload := protobufReferenceEvent(b)
	p := pbPlan(b, ProtobufReferenceSchema, nil, referenceColumns)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var rerr *RowError
		if dst, rerr = pbAppendRow(p, dst[:0], payload); rerr != nil {
			b.Fatal(rerr)
		}
	}
}

// BenchmarkDecodeProtobufReferenceEventFramed decodes the same event as
// the appliance gets it: registry framing (magic byte, schema id, message
// index list [0]) resolved per record by Decoder.AppendFields, then every
// reference column, kafka.offset included, as
// BenchmarkDecodeAvroReferenceEvent does for Avro.
func BenchmarkDecodeProtobufReferenceEventFramed(b *testing.B) {
	d := mustDecoder(b, FormatProtobuf, referenceColumns, Options{})
	if err := d.AddSchema(SchemaRef{ID: 1}, &Schema{Type: SchemaProtobuf, Text: ProtobufReferenceSchema}); err != nil {
		b.Fatal(err)
	}
	value := append(AppendRegistryFraming(nil, 1), 0)
	value = append(value, protobufReferenceEvent(b)...)
	rec := &Record{Topic: "events", Partition: 1, Offset: 42, Value: value}
	// The message's plan compiles on its first record: not timed.
	if _, err := d.AppendFields(nil, rec); err != nil {
		b.Fatal(err)
	}
	benchmarkRecord(b, d, rec)
}

// BenchmarkDecodeProtobufDynamicpb only unmarshals the reference event into
// a dynamicpb message (no PostgreSQL fields), for comparison.
func BenchmarkDecodeProtobufDynamicpb(b *testing.B) {
	payload := protobufReferenceEvent(b)
	fd, err := compileProtobufFile(&Schema{Text: ProtobufReferenceSchema})
	if err != nil {
		b.Fatal(err)
	}
	md := fd.Messages().ByName("Event")
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		m := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(payload, m); err != nil {
			b.Fatal(err)
		}
	}
}
