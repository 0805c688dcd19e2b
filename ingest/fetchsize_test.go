package ingest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCompressedBacklogReadOnce drains a zstd-compressed backlog and checks
// that the client sizes its fetches by the batches' expansion
// (fetchSizer), so that one fetch decodes to about kafka.fetch_max_bytes.
// Asked for the setting's bytes on the wire, each fetch overfilled a
// worker's queue, its partitions were paused, and the client dropped what
// it held for them: `sluice bench --compression zstd` read 1.8 records for
// every one consumed.
func TestCompressedBacklogReadOnce(t *testing.T) {
	e := newEnv(t, 4)
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.broker.Addrs()...), kgo.DefaultProduceTopic("events"),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerBatchMaxBytes(64<<10),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 40000
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}
	rng := rand.New(rand.NewPCG(1, 2))
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		v := make([]byte, 0, 256)
		for len(v) < 200 {
			v = fmt.Appendf(v, "%s-%d ", words[rng.IntN(len(words))], rng.IntN(100))
		}
		recs = append(recs, item(i, string(v)))
	}
	if err := prod.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	cfg.Batch.MaxRows = 2000
	cfg.Batch.MaxBytes = 1 << 20
	cfg.Kafka.FetchMaxBytes = 512 << 10
	r := e.start(cfg)
	e.waitDrained(n)
	if got := e.count(`SELECT count(*) FROM public.items`); got != n {
		t.Fatalf("target holds %d rows, want %d", got, n)
	}
	st := r.app.Stats()
	wire, decoded := r.app.m.fetched.wire.Get(), r.app.m.fetched.decoded.Get()
	t.Logf("read %d records for %d consumed; %d bytes fetched, %d decoded; %d pauses",
		st.RecordsFetched, st.RecordsConsumed, wire, decoded, r.app.m.fetchPauses.Get())
	if decoded < 2*wire {
		t.Fatalf("the batches decoded to %d bytes from %d: not compressed enough to test anything", decoded, wire)
	}
	if st.RecordsConsumed != n {
		t.Fatalf("consumed %d records, want %d", st.RecordsConsumed, n)
	}
	// The fetch size follows the expansion: a fetch decodes to about
	// kafka.fetch_max_bytes.
	want, _ := nextFetchSize(int64(cfg.Kafka.FetchMaxBytes), int64(cfg.Kafka.FetchMaxBytes), wire, decoded)
	if ask := r.app.fetchSize.cur.Load(); ask > want+want/4 || ask < want-want/4 {
		t.Errorf("the client asks fetches for %d bytes; the batches expanded %.1f times, so want about %d", ask, float64(decoded)/float64(wire), want)
	}
	if st.RecordsFetched > 2*n {
		t.Errorf("the client read %d records to consume %d", st.RecordsFetched, n)
	}
}

func TestNextFetchSize(t *testing.T) {
	const limit = 4 << 20
	for _, c := range []struct {
		cur           int64
		wire, decoded uint64
		want          int64
		change        bool
	}{
		{limit, 1 << 20, 1 << 20, limit, false},           // uncompressed: the setting
		{limit, 1 << 20, 6 << 20, limit / 6, true},        // zstd-like: a sixth
		{limit / 6, 1 << 20, 5 << 20, limit / 5, false},   // within a quarter: kept
		{limit / 6, 1 << 20, 3 << 20, limit / 3, true},    // moved further: asked
		{limit, 1 << 20, 1000 << 20, minFetchBytes, true}, // zeros: the floor
		{limit, 2 << 20, 1 << 20, limit, false},           // never above the setting
	} {
		got, change := nextFetchSize(limit, c.cur, c.wire, c.decoded)
		if got != c.want || change != c.change {
			t.Errorf("nextFetchSize(%d, %d, %d, %d) = %d, %v; want %d, %v", limit, c.cur, c.wire, c.decoded, got, change, c.want, c.change)
		}
	}
}

// The decompression slices are sized by the expansion the codec showed:
// a larger one at once, a smaller one slowly, never past maxExpand.
func TestFetchPoolsLearnExpansion(t *testing.T) {
	var p fetchPools
	room := func(compressed int) int {
		return cap(p.GetDecompressBytes(make([]byte, compressed), kgo.CodecZstd))
	}
	if got := room(1000); got < 4000+decompressSlack {
		t.Fatalf("before any batch: room %d for 1000 compressed bytes, want at least %d", got, 4000+decompressSlack)
	}
	p.OnFetchBatchRead(kgo.BrokerMetadata{}, "t", 0, kgo.FetchBatchMetrics{CompressionType: uint8(kgo.CodecZstd), CompressedBytes: 1000, UncompressedBytes: 7003})
	if got := room(2000); got < 14006+decompressSlack {
		t.Fatalf("after a batch expanding 7.003 times: room %d for 2000 compressed bytes, want at least %d", got, 14006+decompressSlack)
	}
	// Another codec keeps its own.
	if e := p.expand[kgo.CodecLz4].Load(); e != 0 {
		t.Fatalf("lz4 after a zstd batch: expansion %d/16, want none learnt", e)
	}
	// A batch expanding less moves the estimate a little.
	p.learnExpansion(uint8(kgo.CodecZstd), 1000, 2000)
	if e := p.expand[kgo.CodecZstd].Load(); e >= 113 || e < 100 {
		t.Fatalf("after one batch expanding twice: expansion %d/16, want just below 113/16", e)
	}
	for range 200 {
		p.learnExpansion(uint8(kgo.CodecZstd), 1000, 2000)
	}
	if e := p.expand[kgo.CodecZstd].Load(); e != 2*expandOne {
		t.Fatalf("after 200 batches expanding twice: expansion %d/16, want 32/16", e)
	}
	p.learnExpansion(uint8(kgo.CodecZstd), 10, 1<<20)
	if e := p.expand[kgo.CodecZstd].Load(); e != maxExpand {
		t.Fatalf("after a batch of zeros: expansion %d/16, want the bound %d/16", e, maxExpand)
	}
	// Uncompressed batches teach nothing and count no expansion.
	p.OnFetchBatchRead(kgo.BrokerMetadata{}, "t", 0, kgo.FetchBatchMetrics{CompressedBytes: 100, UncompressedBytes: 100})
	if e := p.expand[kgo.CodecNone].Load(); e != 0 {
		t.Fatalf("an uncompressed batch set expansion %d", e)
	}
}

// TestCompressibleBacklogFirstFetch: the fetch size follows the batches'
// expansion only once some were read. The first fetch asked for
// kafka.fetch_max_bytes on the wire, and a backlog of values that
// compress a hundredfold decoded to a hundred times the setting in one
// poll, all of it held at once (a 1 GB zstd backlog of such values peaked
// at 660 MiB RSS under the defaults). The first fetch now asks for the
// least a fetch asks for, and grows with what it measures.
func TestCompressibleBacklogFirstFetch(t *testing.T) {
	e := newEnv(t, 4)
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.broker.Addrs()...), kgo.DefaultProduceTopic("events"),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()), kgo.ProducerBatchMaxBytes(256<<10),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 20000
	filler := strings.Repeat("compressible ", 300)
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, item(i, filler))
	}
	if err := prod.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The most a fetch of the group's asks for of a partition. The
	// embedded broker bounds read_committed fetches by their partitions'
	// limits alone (devenv's listedAborts, which has already lifted
	// MaxBytes when this runs): four partitions at a quarter of the fetch
	// size each make a fetch.
	var asked atomic.Int32
	e.broker.Cluster.ControlKey(int16(kmsg.Fetch), func(req kmsg.Request) (kmsg.Response, error, bool) {
		e.broker.Cluster.KeepControl()
		if f := req.(*kmsg.FetchRequest); f.ReplicaID < 0 {
			for _, rt := range f.Topics {
				for _, rp := range rt.Partitions {
					for m := asked.Load(); rp.PartitionMaxBytes > m && !asked.CompareAndSwap(m, rp.PartitionMaxBytes); m = asked.Load() {
					}
				}
			}
		}
		return nil, nil, false
	})
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	cfg.Batch.MaxRows = 2000
	cfg.Batch.MaxBytes = 1 << 20
	cfg.Batch.MaxInflightBytes = 4 << 20
	cfg.Kafka.FetchMaxBytes = 512 << 10
	r := e.start(cfg)
	e.waitDrained(n)
	st := r.app.Stats()
	wire, decoded := r.app.m.fetched.wire.Get(), r.app.m.fetched.decoded.Get()
	ratio := float64(decoded) / float64(wire)
	t.Logf("%d bytes fetched, %d decoded (%.0f times); %d records read for %d consumed; fetches asked for %d bytes of a partition at most",
		wire, decoded, ratio, st.RecordsFetched, st.RecordsConsumed, asked.Load())
	if ratio < 30 {
		t.Fatalf("the batches expanded %.1f times: not compressible enough to test anything", ratio)
	}
	// kafka.fetch_max_bytes decoded is under the smallest fetch on the
	// wire here: no fetch asks for more of a partition than its share.
	if a := asked.Load(); a > minFetchBytes/4 {
		t.Fatalf("a fetch asked for %d bytes of a partition on the wire, %.0f MB decoded; want at most %d", a, float64(a)*ratio/1e6, minFetchBytes/4)
	}
}
