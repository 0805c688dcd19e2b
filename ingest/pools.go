package ingest

import (
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
type fetchPools struct {
	bytes sync.Pool // *[]byte
	recs  sync.Pool // *[]kgo.Record
}

var (
	_ kgo.PoolDecompressBytes = (*fetchPools)(nil)
	_ kgo.PoolRecords         = (*fetchPools)(nil)
)

// decompressGuess is the expected expansion of a compressed batch; a slice
// too small is grown by the client and comes back grown.
const decompressGuess = 4

func (p *fetchPools) GetDecompressBytes(compressed []byte, _ kgo.CompressionCodecType) []byte {
	if b, ok := p.bytes.Get().(*[]byte); ok && cap(*b) >= len(compressed) {
		return (*b)[:0]
	}
	return make([]byte, 0, decompressGuess*len(compressed))
}

func (p *fetchPools) PutDecompressBytes(b []byte) {
	b = b[:0]
	p.bytes.Put(&b)
}

func (p *fetchPools) GetRecords(n int) []kgo.Record {
	if r, ok := p.recs.Get().(*[]kgo.Record); ok && cap(*r) >= n {
		return (*r)[:n]
	}
	return make([]kgo.Record, n)
}

func (p *fetchPools) PutRecords(r []kgo.Record) {
	r = r[:0]
	p.recs.Put(&r)
}
