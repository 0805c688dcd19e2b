// Package batching holds rows on their way to PostgreSQL: pooled batch
// buffers, the flush triggers (rows, bytes, age) and the in-flight byte
// budget that bounds memory by configuration instead of by backlog.
//
// Contract:
//
//   - A Batch is obtained with Get and returned with Put; neither it nor its
//     buffer may be used after Put. Buffers come from a
//     valyala/bytebufferpool pool, which calibrates its default size and
//     drops outsized buffers, so a rare huge batch does not pin memory.
//   - Rows are appended by the caller straight into Batch.Buf.B and closed
//     with EndRow, which records the row's end offset; Truncate drops a
//     half-written row.
//   - Limits says when a batch is full (rows or bytes) or due (age).
//   - Budget counts bytes held anywhere between fetch and commit. Acquire
//     never blocks: it reports whether the budget is exceeded so the caller
//     can pause fetching (the poll loop must keep running to serve
//     rebalances) and resume once Release brings it under the low-water mark.
//
// The package is a leaf: it imports no other part of Sluice.
package batching

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/bytebufferpool"
)

// Batch is a buffer of encoded rows plus their boundaries.
type Batch struct {
	// Buf holds the encoded rows back to back.
	Buf *bytebufferpool.ByteBuffer
	// Ends[i] is the end offset of row i in Buf.B.
	Ends []int
	// Started is when the first row was added.
	Started time.Time
}

var (
	bufPool   bytebufferpool.Pool
	batchPool = sync.Pool{New: func() any { return new(Batch) }}
)

// Get returns an empty batch with a pooled buffer.
func Get() *Batch {
	b := batchPool.Get().(*Batch)
	b.Buf = bufPool.Get()
	return b
}

// Put returns b and its buffer to the pools. Neither b nor its buffer may be
// used afterwards.
func Put(b *Batch) {
	if b.Buf != nil {
		bufPool.Put(b.Buf)
	}
	b.reset()
	batchPool.Put(b)
}

func (b *Batch) reset() {
	b.Buf = nil
	if cap(b.Ends) > 1<<20 {
		b.Ends = nil // drop outsized row indexes
	}
	b.Ends = b.Ends[:0]
	b.Started = time.Time{}
}

// Rows returns the number of complete rows.
func (b *Batch) Rows() int { return len(b.Ends) }

// Len returns the number of bytes held by complete and partial rows.
func (b *Batch) Len() int { return len(b.Buf.B) }

// Mark returns the current end of the buffer, for Truncate.
func (b *Batch) Mark() int { return len(b.Buf.B) }

// Truncate drops everything appended after mark (a row that failed to encode).
func (b *Batch) Truncate(mark int) { b.Buf.B = b.Buf.B[:mark] }

// EndRow closes the row that ends at the current end of the buffer.
func (b *Batch) EndRow(now time.Time) {
	if len(b.Ends) == 0 {
		b.Started = now
	}
	b.Ends = append(b.Ends, len(b.Buf.B))
}

// Row returns the bytes of row i.
func (b *Batch) Row(i int) []byte {
	start := 0
	if i > 0 {
		start = b.Ends[i-1]
	}
	return b.Buf.B[start:b.Ends[i]]
}

// Limits are the flush triggers of a batch.
type Limits struct {
	MaxRows  int
	MaxBytes int
	MaxAge   time.Duration
}

// Full reports whether b has reached its row or byte limit.
func (l Limits) Full(b *Batch) bool {
	return len(b.Ends) >= l.MaxRows || len(b.Buf.B) >= l.MaxBytes
}

// Due reports whether b holds rows older than MaxAge at now.
func (l Limits) Due(b *Batch, now time.Time) bool {
	return len(b.Ends) > 0 && now.Sub(b.Started) >= l.MaxAge
}

// Budget bounds the bytes in flight between fetch and commit.
type Budget struct {
	max   int64
	low   int64
	inUse atomic.Int64
}

// NewBudget returns a budget of max bytes that, once exceeded, reports
// Resumable only after usage falls to half of max (hysteresis, so fetching
// is not paused and resumed on every record).
func NewBudget(max int64) *Budget {
	return &Budget{max: max, low: max / 2}
}

// Acquire adds n bytes and reports whether the budget is now exceeded.
func (b *Budget) Acquire(n int64) (over bool) {
	return b.inUse.Add(n) > b.max
}

// Release subtracts n bytes.
func (b *Budget) Release(n int64) {
	if b.inUse.Add(-n) < 0 {
		panic("BUG: batching.Budget released more bytes than acquired")
	}
}

// InUse returns the bytes currently held.
func (b *Budget) InUse() int64 { return b.inUse.Load() }

// Over reports whether the budget is exceeded.
func (b *Budget) Over() bool { return b.inUse.Load() > b.max }

// Resumable reports whether usage fell below the low-water mark.
func (b *Budget) Resumable() bool { return b.inUse.Load() <= b.low }

// Max returns the budget's size.
func (b *Budget) Max() int64 { return b.max }
