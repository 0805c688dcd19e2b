package ingest

import (
	"math/bits"
	"sync"

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
type fetchPools struct {
	bytes [poolClasses]sync.Pool // *[]byte of capacity 1<<class
	recs  [poolClasses]sync.Pool // *[]kgo.Record of capacity 1<<class
}

var (
	_ kgo.PoolDecompressBytes = (*fetchPools)(nil)
	_ kgo.PoolRecords         = (*fetchPools)(nil)
)

const (
	poolClasses = 31
	// decompressGuess is the expected expansion of a compressed batch; a
	// slice too small is grown by the client and comes back grown.
	decompressGuess = 4
)

// classOf returns the smallest class whose capacity holds n.
func classOf(n int) int { return bits.Len(uint(max(n, 1) - 1)) }

// classHeld returns the largest class that a slice of capacity c fills.
func classHeld(c int) int { return bits.Len(uint(c)) - 1 }

func (p *fetchPools) GetDecompressBytes(compressed []byte, _ kgo.CompressionCodecType) []byte {
	c := classOf(decompressGuess * len(compressed))
	if c >= poolClasses {
		return make([]byte, 0, decompressGuess*len(compressed))
	}
	if b, ok := p.bytes[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<c)
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
