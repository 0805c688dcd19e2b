package loadgen

import "testing"

func benchmarkGenerator(b *testing.B, o Options) {
	g := NewGenerator(o)
	var r Rec
	// Size SetBytes by the mean of the first records so MB/s means value bytes.
	total := 0
	for range 1000 {
		g.Next(&r)
		total += len(r.Value)
	}
	b.SetBytes(int64(total / 1000))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		g.Next(&r)
	}
}

func BenchmarkGeneratorReference(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1})
}

func BenchmarkGeneratorReferenceDupsAndBad(b *testing.B) {
	o := Options{Seed: 1, DupRatio: 0.05}
	o.SpreadBad(0.01)
	benchmarkGenerator(b, o)
}

func BenchmarkGeneratorReferenceKeyCardinality(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, KeyCardinality: 100_000})
}

func BenchmarkGeneratorNarrow(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, Schema: SchemaNarrow})
}

func BenchmarkGeneratorWide(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, Schema: SchemaWide})
}

func BenchmarkGeneratorReferenceZstdValues(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, ValueCompression: "zstd"})
}

func BenchmarkGeneratorReferenceGzipValues(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, ValueCompression: "gzip"})
}

func BenchmarkGeneratorAvro(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, Format: FormatAvro, SchemaID: 1})
}

func BenchmarkGeneratorProtobuf(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, Format: FormatProtobuf, SchemaID: 1})
}

func BenchmarkGeneratorJSONSchema(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, Format: FormatJSONSchema, SchemaID: 1})
}

func BenchmarkGeneratorReferenceUpdatesNullKeys(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, DupRatio: 0.01, UpdateRatio: 0.3, Keys: KeysNull})
}

func BenchmarkGeneratorReferenceOtherFieldKeys(b *testing.B) {
	benchmarkGenerator(b, Options{Seed: 1, DupRatio: 0.01, UpdateRatio: 0.01, Keys: KeysOtherField})
}
