package ingest

import (
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fetchPools lends franz-go the memory fetched records live in: the slices
// compressed batches are decompressed into and the Record slices they are
// decoded into. Without them the client allocates both for every batch
// and copies every decompressed batch once more; with them a record's
// memory goes back for the next fetch as soon as its worker has encoded it
// (kgo.Record.Recycle, called by worker.decode for every record it is
// given). A record that is never recycled (its partition was revoked
// meanwhile) is simply left to the garbage collector.
//
// Slices are pooled by power-of-two capacity class, so a Get finds a slice
// large enough whenever one of its class was put back.
//
// A slice for decompression must hold the whole decoded batch: one too
// small is grown by the codec (lz4 and gzip through bytes.Buffer, which
// doubles it and copies, and doubles it once more when fewer than 512
// bytes are left at the end; zstd and snappy allocate their own output),
// and that costs a fresh allocation per batch, the pool notwithstanding.
// So the pools learn each codec's expansion from the batches the client
// reads (OnFetchBatchRead) and size every slice by it.
type fetchPools struct {
	bytes [poolClasses]sync.Pool // *[]byte of capacity 1<<class
	recs  [poolClasses]sync.Pool // *[]kgo.Record of capacity 1<<class
	// expand holds, per codec, the decoded over the compressed size of
	// the batches read, in sixteenths: the largest seen lately
	// (learnExpansion). Zero until a batch of that codec was read.
	expand [8]atomic.Uint32
	// read counts what the client read from the brokers; nil in tests.
	read *fetchCounters
}

// fetchCounters count the record batches the client read: their records
// (transaction markers included) and their bytes as fetched and as
// decompressed. Records read exceed the records consumed by what was read
// more than once: a batch the client dropped when its partition was paused
// or revoked, and the records of a batch before the offset fetched from.
type fetchCounters struct {
	records, wire, decoded *metrics.Counter
}

var (
	_ kgo.PoolDecompressBytes = (*fetchPools)(nil)
	_ kgo.PoolRecords         = (*fetchPools)(nil)
	_ kgo.HookFetchBatchRead  = (*fetchPools)(nil)
)

const (
	poolClasses = 31
	// expandOne is 1 in fetchPools.expand's fixed point.
	expandOne = 16
	// decompressGuess is the expansion assumed before a codec's first
	// batch was read.
	decompressGuess = 4 * expandOne
	// maxExpand bounds the expansion learned, so that one batch of
	// zeros does not size every later slice by its ratio; a batch that
	// expands further is grown by the codec.
	maxExpand = 64 * expandOne
	// decompressSlack is room past the decoded size: bytes.Buffer grows
	// a slice that has fewer than 512 bytes free before it sees the end.
	decompressSlack = 1 << 10
)

// classOf returns the smallest class whose capacity holds n.
func classOf(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

// classHeld returns the largest class that a slice of capacity c fills.
func classHeld(c int) int { return bits.Len(uint(c)) - 1 }

func (p *fetchPools) GetDecompressBytes(compressed []byte, codec kgo.CompressionCodecType) []byte {
	e := uint64(decompressGuess)
	if int(codec) < len(p.expand) {
		if v := p.expand[codec].Load(); v != 0 {
			e = uint64(v)
		}
	}
	n := int(uint64(len(compressed))*e/expandOne) + decompressSlack
	c := classOf(n)
	if c >= poolClasses {
		return make([]byte, 0, n)
	}
	if b, ok := p.bytes[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<c)
}

// OnFetchBatchRead counts the batch and learns its codec's expansion: a
// larger one is taken at once, a smaller one closes 1/32 of the gap, so
// the sizes follow the data without shrinking below the batches just
// read.
func (p *fetchPools) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	if c := p.read; c != nil {
		c.records.Add(m.NumRecords)
		c.wire.Add(m.CompressedBytes)
		c.decoded.Add(m.UncompressedBytes)
	}
	if m.CompressionType == 0 || m.CompressedBytes <= 0 || int(m.CompressionType) >= len(p.expand) {
		return
	}
	p.learnExpansion(m.CompressionType, m.CompressedBytes, m.UncompressedBytes)
}

func (p *fetchPools) learnExpansion(codec uint8, compressed, decoded int) {
	r := uint32(min((int64(decoded)*expandOne+int64(compressed)-1)/int64(compressed), maxExpand))
	e := &p.expand[codec]
	for {
		cur := e.Load()
		next := r
		if cur != 0 && r < cur {
			next = cur - (cur-r+31)/32
		}
		if next == cur || e.CompareAndSwap(cur, next) {
			return
		}
	}
}

func (p *fetchPools) PutDecompressBytes(b []byte) {
	if c := classHeld(cap(b)); c >= 0 && c < poolClasses {
		b = b[:0]
		p.bytes[c].Put(&b)
	}
}

func (p *fetchPools) GetRecords(n int) []kgo.Record {
	c := classOf(n)
	if c >= poolClasses {
		return make([]kgo.Record, n)
	}
	if r, ok := p.recs[c].Get().(*[]kgo.Record); ok {
		return (*r)[:n]
	}
	return make([]kgo.Record, n, 1<<c)
}

func (p *fetchPools) PutRecords(r []kgo.Record) {
	if c := classHeld(cap(r)); c >= 0 && c < poolClasses {
		r = r[:0]
		p.recs[c].Put(&r)
	}
}
