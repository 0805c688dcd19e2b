package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/batching"
	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/loadgen"
	"github.com/sluice-dev/sluice/registry"
)

// BenchmarkBatchPath measures the appliance's side of the hot path without
// Kafka or PostgreSQL: records → decode into pooled batches → flush → binary
// COPY framing of the batch (header, tuples, trailer streamed as pgcopy
// streams them). It reports allocations per record: the path allocates per
// batch (the batch's bookkeeping), not per record. One sub-benchmark per
// record format, each with the records `sluice bench --format` preloads
// (the same events, so the same tuples): what a format costs the
// appliance, registry framing and schema lookup included.
func BenchmarkBatchPath(b *testing.B) {
	for _, f := range []string{loadgen.FormatJSON, loadgen.FormatAvro, loadgen.FormatProtobuf} {
		b.Run(f, func(b *testing.B) { benchmarkBatchPath(b, f) })
	}
}

func benchmarkBatchPath(b *testing.B, format string) {
	reg := ""
	if format != loadgen.FormatJSON {
		// Never asked: the writer schema is given to the decoder below.
		reg = `schema_registry: {urls: ["http://127.0.0.1:1"]}`
	}
	y := fmt.Sprintf(`%s
kafka: {brokers: ["127.0.0.1:1"]}
postgres: {url: "postgres://u@127.0.0.1:1/db"}
batch: {max_rows: 50000, max_bytes: 32MiB, max_age: 1h}
metrics: {listen: ""}
tables:
%s`, reg, loadgen.TableConfigYAMLFormat(loadgen.SchemaReference, format, "public.events", "events"))
	cfg, err := Parse([]byte(y), noEnv)
	if err != nil {
		b.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	w := newWorker(a, 0)
	t := a.tables[0]
	st := &partState{topic: "events", table: t, worker: w, next: -1}
	const schemaID = 1
	if format != loadgen.FormatJSON {
		typ, text, err := loadgen.ReferenceSchema(format)
		if err != nil {
			b.Fatal(err)
		}
		s := codecSchema(&registry.Schema{Type: typ, Text: text})
		if err := w.decoder(t, t.cur()).AddSchema(codec.SchemaRef{ID: schemaID}, s); err != nil {
			b.Fatal(err)
		}
	}

	const perOp = 1000
	gen := loadgen.NewGenerator(loadgen.Options{Seed: 1, Schema: loadgen.SchemaReference, Records: perOp, Topic: "events",
		Format: format, SchemaID: schemaID})
	recs := make([]*kgo.Record, perOp)
	var rec loadgen.Rec
	var size int64
	for i := range recs {
		gen.Next(&rec)
		recs[i] = &kgo.Record{Topic: "events", Key: append([]byte(nil), rec.Key...),
			Value: append([]byte(nil), rec.Value...), Timestamp: time.Now()}
		size += int64(len(rec.Value))
	}
	// A Protobuf message's plan compiles on its first record: not timed.
	if _, err := w.decoder(t, t.cur()).AppendFields(nil, &codec.Record{Value: recs[0].Value}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var frame []byte
		for p := range w.commit {
			// The framing pgcopy puts around the batch's tuples.
			frame = pgcopy.AppendHeader(frame[:0])
			frame = pgcopy.AppendTrailer(frame)
			framed += int64(len(frame) + len(p.b.Buf.B))
			a.budget.Release(p.bytes)
			batching.Put(p.b)
		}
	}()
	b.ReportAllocs()
	b.SetBytes(size)
	offset := int64(0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		var cost int64
		for _, r := range recs {
			r.Offset = offset
			offset++
			cost += recordCost(r)
		}
		a.budget.Acquire(cost)
		w.decode(wmsg{st: st, recs: recs, bytes: cost})
	}
	runtime.ReadMemStats(&after)
	b.StopTimer()
	w.flushAll()
	close(w.commit)
	<-done
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N*perOp), "allocs/record")
	if framed == 0 {
		b.Fatal("no batch reached the committer")
	}
}

// framed counts bytes framed by BenchmarkBatchPath's committer, so the
// framing is not optimised away.
var framed int64
