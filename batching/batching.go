// Package batching holds rows on their way to PostgreSQL: pooled batch
// buffers, the flush triggers (rows, bytes, age) and the in-flight byte
// budget that bounds memory by configuration instead of by backlog.
//
// Contract:
//
//   - A Batch is obtained with Get and returned with Put; neither it nor its
//     buffer may be used after Put. Buffers come from a
//     valyala/bytebufferpool pool, which calibrates its default size and
//     drops outsized buffers, so a rare huge batch does not pin memory;
//     besides, up to two buffers of 1 MiB or more are kept across garbage
//     collections (which empty the pool) for the next batches, and
//     GetSized hands out the kept buffer that fits. Likewise up to four
//     Batch values are kept with their row and key indexes (a few hundred
//     kilobytes each for batches of tens of thousands of rows), so those
//     are not grown again from nothing after every collection.
//   - Rows are appended by the caller straight into Batch.Buf.B and closed
//     with EndRow, which records the row's end offset; Truncate drops a
//     half-written row. GetSized/Reserve size a batch once for the rows the
//     caller expects, and Ensure doubles it when a row does not fit, so a
//     batch is not copied over and over while it fills.
//   - Keys/KeyEnds may index each row's unique key beside the rows; the
//     package only keeps and resets them.
//   - Limits says when a batch is full (rows or bytes) or due (age);
//     SlowStart scales them for a batch after a smaller one, so batch sizes
//     ramp up to the limits instead of starting there, and Share for the
//     end of a backlog, so batch sizes ramp down with it.
//   - Budget counts bytes held anywhere between fetch and commit. Acquire
//     never blocks: it reports whether the budget is exceeded so the caller
//     can pause fetching (the poll loop must keep running to serve
//     rebalances) and resume once Release brings it under the low-water mark.
//
// The package is a leaf: it imports no other part of Sluice.
package batching

import (
	"slices"
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
	// Keys and KeyEnds optionally index the rows' unique keys, cut out by
	// the encoder while each row is hot in cache: KeyEnds[i] is the end of
	// row i's key in Keys. The writer uses them when there is one per row
	// (pgcopy.CutKey gives their format); they are reset with the batch.
	Keys    []byte
	KeyEnds []int32
}

var (
	bufPool   bytebufferpool.Pool
	batchPool = sync.Pool{New: func() any { return new(Batch) }}
	// free keeps the large buffers across garbage collections: the
	// sync.Pool under bufPool is emptied by every GC, and a buffer of tens
	// of megabytes allocated afresh costs page faults and zeroing over its
	// whole size, more than encoding its rows. Two are kept: enough for
	// a writer's committed batch to hand its buffer to the next one, and
	// little enough not to hold memory the in-flight budget cannot see.
	free struct {
		sync.Mutex
		bufs    []*bytebufferpool.ByteBuffer
		batches []*Batch // kept Batch values, their indexes with them
	}
)

const (
	freeBuffers  = 2
	freeMinBytes = 1 << 20 // smaller buffers are cheap to grow: bufPool only
	// freeBatches Batch values are kept across collections: one filling
	// and one committing per worker of a two-core machine. One whose
	// indexes take more than freeIndexBytes goes to batchPool instead.
	freeBatches    = 4
	freeIndexBytes = 4 << 20
)

// Get returns an empty batch with a pooled buffer.
func Get() *Batch { return GetSized(0, 0) }

// GetSized returns an empty batch that holds rows rows of bytes bytes in
// all without growing (see Reserve), preferring a kept buffer that is
// already large enough.
func GetSized(bytes, rows int) *Batch {
	b := takeBatch()
	b.Buf = takeFree(bytes)
	b.Reserve(bytes, rows)
	return b
}

// takeBatch returns a kept Batch, else one from batchPool.
func takeBatch() *Batch {
	free.Lock()
	n := len(free.batches)
	if n == 0 {
		free.Unlock()
		return batchPool.Get().(*Batch)
	}
	b := free.batches[n-1]
	free.batches[n-1] = nil
	free.batches = free.batches[:n-1]
	free.Unlock()
	return b
}

// putBatch keeps b (reset) when there is room and its indexes are not
// outsized, else hands it to batchPool.
func putBatch(b *Batch) {
	if cap(b.Ends)*8+cap(b.Keys)+cap(b.KeyEnds)*4 <= freeIndexBytes {
		free.Lock()
		if len(free.batches) < freeBatches {
			free.batches = append(free.batches, b)
			free.Unlock()
			return
		}
		free.Unlock()
	}
	batchPool.Put(b)
}

// takeFree returns the smallest kept buffer of at least bytes, else the
// largest kept one (Reserve grows it), else one from bufPool.
func takeFree(bytes int) *bytebufferpool.ByteBuffer {
	free.Lock()
	defer free.Unlock()
	fit, big := -1, -1
	for i, buf := range free.bufs {
		c := cap(buf.B)
		if c >= bytes && (fit < 0 || c < cap(free.bufs[fit].B)) {
			fit = i
		}
		if big < 0 || c > cap(free.bufs[big].B) {
			big = i
		}
	}
	pick := fit
	if pick < 0 {
		pick = big
	}
	if pick < 0 {
		return bufPool.Get()
	}
	buf := free.bufs[pick]
	last := len(free.bufs) - 1
	free.bufs[pick] = free.bufs[last]
	free.bufs[last] = nil
	free.bufs = free.bufs[:last]
	return buf
}

// putFree keeps buf when it is large and there is room, or when it is
// larger than the smallest kept buffer, which then goes to bufPool.
func putFree(buf *bytebufferpool.ByteBuffer) {
	buf.Reset()
	if cap(buf.B) < freeMinBytes {
		bufPool.Put(buf)
		return
	}
	free.Lock()
	defer free.Unlock()
	if len(free.bufs) < freeBuffers {
		free.bufs = append(free.bufs, buf)
		return
	}
	small := 0
	for i, k := range free.bufs {
		if cap(k.B) < cap(free.bufs[small].B) {
			small = i
		}
	}
	if cap(free.bufs[small].B) < cap(buf.B) {
		free.bufs[small], buf = buf, free.bufs[small]
	}
	bufPool.Put(buf)
}

// Put returns b and its buffer to the pools. Neither b nor its buffer may be
// used afterwards.
func Put(b *Batch) {
	if b.Buf != nil {
		putFree(b.Buf)
	}
	b.reset()
	putBatch(b)
}

func (b *Batch) reset() {
	b.Buf = nil
	if cap(b.Ends) > 1<<20 {
		b.Ends = nil // drop outsized row indexes
	}
	b.Ends = b.Ends[:0]
	if cap(b.Keys) > 16<<20 {
		b.Keys, b.KeyEnds = nil, nil
	}
	b.Keys, b.KeyEnds = b.Keys[:0], b.KeyEnds[:0]
	b.Started = time.Time{}
}

// Reserve makes sure a batch of rows rows and bytes bytes in all fits
// without growing, allocating an eighth more when it must allocate (rows
// differ in size): a batch that fills by append alone copies itself at
// every growth, which for a batch of tens of megabytes costs more than
// encoding its rows. The caller passes the size of the table's previous
// batch; a buffer from the pool that is large enough is kept as it is.
func (b *Batch) Reserve(bytes, rows int) {
	if bytes > cap(b.Buf.B) {
		if len(b.Buf.B) == 0 {
			// slices.Grow would copy the old buffer's whole capacity.
			b.Buf.B = make([]byte, 0, bytes+bytes/8)
		} else {
			b.Buf.B = slices.Grow(b.Buf.B, bytes+bytes/8-len(b.Buf.B))
		}
	}
	if rows > cap(b.Ends) {
		b.Ends = slices.Grow(b.Ends, rows+rows/8-len(b.Ends))
	}
}

// Ensure makes room for n more bytes, doubling the buffer when it must
// grow: append's own growth for large slices is a quarter, which copies a
// batch that fills from empty about four times over.
func (b *Batch) Ensure(n int) {
	if cap(b.Buf.B)-len(b.Buf.B) < n {
		b.Buf.B = slices.Grow(b.Buf.B, max(n, cap(b.Buf.B)))
	}
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

// SlowStart returns the limits for a batch that follows one of prevRows
// rows: at most twice that many rows, from a sixteenth of MaxRows up to
// MaxRows, and MaxBytes scaled alike. A backlog (at start-up, after a
// rebalance or an outage) then reaches PostgreSQL after a small batch
// instead of after MaxRows of encoding with PostgreSQL idle, and batches
// are back to full size within four flushes.
func (l Limits) SlowStart(prevRows int) Limits {
	return l.scaled(2 * prevRows)
}

// Share returns the limits for a batch that should take at most half of
// the rows left to read, remaining (all the rows when under a sixteenth of
// MaxRows): the last batches of a backlog shrink by halves, so the workers
// sharing it finish together instead of one committing a whole batch
// alone at the end. A negative remaining (unknown) leaves l as it is.
func (l Limits) Share(remaining int) Limits {
	if remaining < 0 {
		return l
	}
	return l.scaled(remaining / 2)
}

// scaled returns l with at most rows rows (at least a sixteenth of
// MaxRows), and MaxBytes scaled alike.
func (l Limits) scaled(rows int) Limits {
	rows = min(l.MaxRows, max(l.MaxRows/16, rows, 1))
	return Limits{
		MaxRows:  rows,
		MaxBytes: max(int(int64(l.MaxBytes)*int64(rows)/int64(max(l.MaxRows, 1))), 1),
		MaxAge:   l.MaxAge,
	}
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

// OverBeside reports whether usage, less n bytes held where nothing will
// release them soon, exceeds the budget (see ResumableBeside).
func (b *Budget) OverBeside(n int64) bool { return b.inUse.Load()-n > b.max }

// ResumableBeside reports whether usage, less n bytes that are held where
// nothing will release them soon (a commit that does not end), fell below
// the low-water mark: such bytes would otherwise keep fetching paused for
// as long as they are held.
func (b *Budget) ResumableBeside(n int64) bool { return b.inUse.Load()-n <= b.low }

// Max returns the budget's size.
func (b *Budget) Max() int64 { return b.max }
