package codec

import "testing"

// The reference change event is an update of the reference event: both
// images, the PostgreSQL source block and the transaction block. SetBytes
// counts the whole value, so the wrapped event, whose schema is most of
// its bytes, shows a higher throughput per byte than per record.

func benchmarkChange(b *testing.B, key, value []byte) {
	d := mustDecoder(b, FormatDebezium, referenceChangeColumns, Options{})
	rec := &Record{Topic: "shop.public.events", Partition: 1, Offset: 42, Key: key, Value: value}
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var err error
		if dst, err = d.AppendFields(dst[:0], rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDebeziumReferenceChange(b *testing.B) {
	benchmarkChange(b, nil, referenceChangeBare)
}

func BenchmarkDebeziumReferenceChangeWrapped(b *testing.B) {
	benchmarkChange(b, referenceChangeKey, referenceChangeWrapped)
}

func BenchmarkDebeziumDeleteFromKey(b *testing.B) {
	benchmarkChange(b, referenceChangeKey, []byte(wrap(envelopeSchema(referenceRowFields), envelopeJSON("d", "null", "null"))))
}

func BenchmarkDecimal(b *testing.B) {
	for _, tc := range []struct{ name, unscaled string }{{"int64", "-123456789012"}, {"40_digits", "-" + big40}} {
		b.Run(tc.name, func(b *testing.B) {
			var z debezium
			raw := twosComplement(mustBig(tc.unscaled))
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			dst := make([]byte, 0, 64)
			c := &column{Column: Column{Name: "n", Type: TypeNumeric}}
			for b.Loop() {
				text, _, _ := z.decimalText(raw, 4)
				dst, _ = appendDecimalText(dst[:0], c, text)
			}
		})
	}
}
