package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/batching"
	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
)

// wmsg is what the poll loop and the group callbacks send a worker. One
// channel carries both so a control message is handled after every record
// fetched before it.
type wmsg struct {
	st    *partState
	recs  []*kgo.Record
	bytes int64
	ctl   *ctlMsg
}

// ctlMsg asks a worker to flush and commit everything it holds for parts,
// then close done.
type ctlMsg struct {
	parts []*partState
	done  chan struct{}
}

// worker decodes the records of its partitions into per-table batches; its
// committer writes them in order over one PostgreSQL connection.
type worker struct {
	a  *App
	id int
	in chan wmsg
	// queued is the budget bytes of the records dispatched to in and not
	// yet decoded: the poll loop pauses this worker's partitions while it,
	// or the number of chunks in in, is high (flowControl).
	queued atomic.Int64
	commit chan *pending
	idle   chan struct{} // the committer finished a batch (capacity 1)
	writer *pgcopy.Writer
	decs   map[*tableRT]shapeDecoder
	open   map[*tableRT]*pending
	rec    codec.Record

	// handed counts the batches the worker handed the committer, written
	// those it wrote: the committer is writing one while they differ
	// (holdBack).
	handed  int64
	written atomic.Int64

	// held is the budget bytes of this worker's batches, open and handed
	// to the committer (their parts and dead letters included); writing
	// is when the committer took the batch it is writing (Unix
	// nanoseconds), 0 while it waits for one. The poll loop reads both to
	// tell the bytes of a stalled commit (App.stalledBytes).
	held    atomic.Int64
	writing atomic.Int64

	// Fan-out (fanout.go): decoders of field conditions, their output,
	// and the marks of one record's tuples.
	conds   map[*tableRT]*codec.Decoder
	condBuf []byte
	marks   []pendMark
	// last is the size of this worker's last flushed batch per table: its
	// rows set the next batch's slow start, its bytes per row the next
	// buffer's size.
	last map[*tableRT]batchSize
}

type batchSize struct{ rows, bytes int }

// pending is a batch on its way to PostgreSQL.
type pending struct {
	table *tableRT
	b     *batching.Batch
	rows  []rowMeta // rows[i] is the record behind tuple i
	// rowParts are the partitions rows name by index (rowMeta.part), in
	// the order the batch met them.
	rowParts []*partState
	// Change streams: ops and unchanged hold one entry per tuple once a
	// tuple is not a plain upsert (nil until then); truncate empties the
	// target before the batch's rows.
	ops       []pgcopy.RowOp
	unchanged []uint64
	truncate  bool
	parts     []*pending // other tables' tuples in this batch (fanout.go); no ranges of their own
	dls       []pgcopy.DeadLetter
	dlBytes   int // the dead letters' bytes, counted against batch.max_bytes (pending.full)
	ranges    []rangeState
	bytes     int64 // budget bytes to release when done
	encoded   int64 // bytes of b already counted against the budget
	seq       int64
	shape     *tableShape     // the columns its tuples hold (evolve.go)
	limits    batching.Limits // the batch's flush limits (batching.Limits.SlowStart)
	opened    time.Time       // when the batch was opened; ages batches without rows
	why       string          // why it was flushed: full, age, caught_up or barrier (debug log)
	barrier   chan struct{}   // set on a barrier message: close it and do nothing else

	// dlParts[i] is the partition state behind dls[i], an index into
	// rowParts: a batch can hold two states of one partition (the one a
	// reset-offset fenced and the one claimed after it), and only the
	// dropped one's dead letters go with it (dropRows).
	dlParts []int32
}

// rowMeta is what a batch keeps of the record behind each tuple. The
// records themselves, and the fetch buffers they pin, are let go as soon as
// they are decoded, so a batch in flight costs its encoded bytes only; the
// rare row PostgreSQL rejects is re-read from Kafka for its dead letter.
// It holds no pointer (its partition is an index into pending.rowParts):
// the garbage collector neither scans a batch's rows nor needs them
// cleared before they are reused.
type rowMeta struct {
	offset int64
	ts     int64 // record timestamp, Unix nanoseconds
	part   int32 // index into pending.rowParts
}

// rowsPool recycles the rows slices of committed batches: one of 50,000
// rows is 1.2 MB that each batch would otherwise allocate and zero afresh.
var rowsPool sync.Pool // *[]rowMeta

func getRows(n int) []rowMeta {
	if r, ok := rowsPool.Get().(*[]rowMeta); ok && cap(*r) >= n {
		return (*r)[:0]
	}
	return make([]rowMeta, 0, n)
}

func putRows(r []rowMeta) {
	if cap(r) == 0 {
		return
	}
	r = r[:0]
	rowsPool.Put(&r)
}

type rangeState struct {
	st       *partState
	from, to int64
}

func newWorker(a *App, id int) *worker {
	return &worker{
		a:  a,
		id: id,
		in: make(chan wmsg, 64),
		// Unbuffered: the worker encodes the next batch while the
		// committer writes one, which encoding outpaces; a queued batch
		// would add a buffer in flight and nothing to throughput.
		commit: make(chan *pending),
		idle:   make(chan struct{}, 1),
		writer: pgcopy.NewWriter(a.cfg.Postgres.URL, a.cfg.Postgres.Schema, a.cfg.Kafka.Group),
		decs:   map[*tableRT]shapeDecoder{}, conds: map[*tableRT]*codec.Decoder{},

		open: map[*tableRT]*pending{},

		last: map[*tableRT]batchSize{},
	}
}

// offer sends m to w's channel if it has room, reporting whether it did.
func (w *worker) offer(m wmsg) bool {
	// Counted first: the worker subtracts it once m is decoded.
	w.queued.Add(m.bytes)
	select {
	case w.in <- m:
		return true
	default:
		w.queued.Add(-m.bytes)
		return false
	}
}

func (w *worker) run() {
	defer close(w.commit)
	tick := time.NewTicker(max(w.a.limits.MaxAge/lingerDiv, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case m, ok := <-w.in:
			if !ok {
				w.flushAll()
				return
			}
			if m.ctl != nil {
				w.flushAll()
				done := m.ctl.done
				w.commit <- &pending{barrier: done}
				continue
			}
			w.decode(m)
			w.queued.Add(-m.bytes)
			if len(w.in) == 0 {
				w.flushCaughtUp(false)
			}
		case <-tick.C:
			w.flushReady(false)
		case <-w.idle:
			// The committer is free: what was offered while it was busy
			// goes now.
			w.flushReady(true)
		}
	}
}

// flushReady offers (or, with wait, flushes) every open batch older than
// max_age, and, when no records wait to be decoded, every caught-up one.
func (w *worker) flushReady(wait bool) {
	now := time.Now()
	for _, p := range w.open {
		// A batch of only dead letters or transaction markers has no rows
		// to age by, yet it advances offsets: without the second test it
		// would wait for the next good record, so a partition ending in bad
		// records or a commit marker would never reach its log end.
		if w.a.limits.Due(p.b, now) || (len(p.b.Ends) == 0 && now.Sub(p.opened) >= w.a.limits.MaxAge) {
			w.handOff(p, "age", wait)
		}
	}
	if len(w.in) == 0 {
		w.flushCaughtUp(wait)
	}
}

// flushCaughtUp flushes every open batch whose partitions have all been
// read up to the high watermark of their last fetch: nothing more is there
// to add to it, and waiting for max_age would only add latency (at the end
// of a backlog, or at a rate the appliance keeps up with). Under load the
// committer is busy, the batch is only offered and keeps growing: the
// commit rate follows what PostgreSQL can take.
//
// A caught-up batch younger than max_age/lingerDiv waits for the next tick:
// at a steady moderate rate, flushing whatever a poll brought made batches
// of a few hundred rows, one transaction (and WAL flush) every few
// milliseconds per writer, and the per-transaction cost then ate the
// headroom (measured at half the maximum rate: ~1000 batches of ~600 rows
// in 5 s, then the appliance fell behind and p99 reached 2.3 s).
func (w *worker) flushCaughtUp(wait bool) {
	linger := w.a.limits.MaxAge / lingerDiv
	now := time.Now()
	for _, p := range w.open {
		if len(p.b.Ends) > 0 && now.Sub(p.b.Started) < linger {
			continue
		}
		caughtUp := len(p.ranges) > 0
		for _, r := range p.ranges {
			if r.to < r.st.highWatermark.Load() {
				caughtUp = false
				break
			}
		}
		if caughtUp {
			w.handOff(p, "caught_up", wait)
		}
	}
}

// lingerDiv sets the shortest life of a caught-up batch, max_age/lingerDiv
// (25ms by default), and the worker's tick.
const lingerDiv = 10

func (w *worker) flushAll() {
	for _, p := range w.open {
		w.flush(p, "barrier")
	}
}

// shapeDecoder is a worker's decoder of a table's shape.
type shapeDecoder struct {
	shape *tableShape
	dec   *codec.Decoder
}

// decoder returns the worker's decoder for t's shape sh.
func (w *worker) decoder(t *tableRT, sh *tableShape) *codec.Decoder {
	d := w.decs[t]
	if d.shape != sh {
		dec, err := codec.NewDecoder(t.format, sh.cols, t.opts)
		if err != nil {
			panic("BUG: decoder validated in New failed later: " + err.Error())
		}
		d = shapeDecoder{shape: sh, dec: dec}
		w.decs[t] = d
	}
	return d.dec
}

func (w *worker) pendingFor(t *tableRT) *pending {
	p := w.open[t]
	if p == nil {
		last := w.last[t]
		l := w.a.limits.SlowStart(last.rows)
		if s := w.a.limits.Share(w.remaining(t)); s.MaxRows < l.MaxRows {
			l = s
		}
		// Room for its rows at the last batch's bytes per row, so that
		// filling it never copies it.
		var bytes, rows int
		if last.rows > 0 {
			rows = l.MaxRows
			bytes = min(last.bytes/last.rows*rows, l.MaxBytes)
		}
		p = &pending{table: t, shape: t.cur(), b: batching.GetSized(bytes, rows), limits: l, opened: time.Now()}
		p.rows = getRows(l.MaxRows)
		w.open[t] = p
	}
	return p
}

// remaining returns the records of t's partitions on this worker that are
// not in a batch yet, by their last fetch's high watermark; -1 until every
// one has been fetched from once.
func (w *worker) remaining(t *tableRT) int {
	a := w.a
	a.mu.Lock()
	defer a.mu.Unlock()
	n := int64(0)
	for _, st := range a.parts {
		if st.worker != w || st.table != t || st.dropped.Load() {
			continue
		}
		hwm := st.highWatermark.Load()
		if hwm < 0 {
			return -1
		}
		n += max(hwm-st.next, 0)
	}
	return int(min(n, 1<<40))
}

func (w *worker) decode(m wmsg) {
	// Every record's memory goes back to the fetch pools once this chunk
	// is handled: nothing below keeps a record (dead letters copy theirs).
	defer recycle(m.recs)
	st := m.st
	if st.dropped.Load() || st.stopWhy.Load() != nil {
		// A partition stopped for its key schema (keychange.go) drops
		// the chunks fetched before it paused.
		w.a.budget.Release(m.bytes)
		return
	}
	w.holdBack()
	// t's open batch carries the partition's offsets; with a fan (tables
	// chosen per record, routing.go) the other tables' tuples ride in it
	// as parts written in the same transaction.
	t, fan := st.table, st.fan
	p := w.pendingFor(t)
	ri := p.rangeFor(st)
	// The fetched records are only needed while they are decoded: their
	// bytes leave the budget when this chunk is done (dead letters keep a
	// copy, counted in the batch).
	defer w.a.budget.Release(m.bytes)
	now := time.Now() // a chunk decodes in well under max_age: one clock read ages it
recs:
	for i := 0; i < len(m.recs); i++ {
		r := m.recs[i]
		if expect := p.ranges[ri].to; expect >= 0 && r.Offset < expect {
			// Already committed (a fetch from before a seek): never twice.
			continue
		}
		if p.evolved() {
			// A table evolved (evolve.go): the open batch commits with
			// the columns it was encoded with, the next ones get the new.
			w.flush(p, "evolved")
			p = w.pendingFor(t)
			ri = p.rangeFor(st)
		}
		if r.Attrs.IsControl() {
			// A transaction's commit or abort marker (kept by
			// kgo.KeepControlRecords) holds no data, but the stored offset
			// must move past it: every transactional producer's last write
			// is a marker, and a partition whose offset stops short of its
			// log end never shows lag 0 (aborted records themselves are
			// never fetched under read_committed).
			p.ranges[ri].to = r.Offset + 1
			continue
		}
		w.fill(r)
		var res encoded
		if fan == nil {
			res = w.encode(p, t, st, r, now)
		} else {
			res = w.encodeFan(p, fan, st, r, now)
		}
		switch res {
		case encAbort:
			// Dropped or stopping: the rest of the chunk is not decoded;
			// whoever owns the partition next reads it again.
			break recs
		case encRetry:
			// A schema added columns (evolve.go): decode the record again
			// after the open batch commits with the old columns.
			i--
			continue
		case encTruncate:
			// A barrier: what came before commits first, and the next
			// batch empties the table.
			w.flush(p, "truncate")
			p = w.pendingFor(t)
			p.truncate = true
			ri = p.rangeFor(st)
		}
		p.ranges[ri].to = r.Offset + 1
		if p.full() {
			w.flush(p, "full")
			w.holdBack()
			p = w.pendingFor(t)
			ri = p.rangeFor(st)
		}
	}
	w.account(p)
}

// holdBack waits, while the in-flight budget is exceeded, until the batch
// the committer is writing has committed. Exceeding the budget pauses
// fetching, but the records already fetched were all encoded: rows much
// larger than their records (compressed values) reached several times
// batch.max_inflight_bytes, every worker holding a batch committing and a
// full one waiting for the committer. A worker with no batch being written
// goes on whatever the budget says: it waits on no other worker's commits,
// nor on bytes only its own decoding would release.
func (w *worker) holdBack() {
	for w.written.Load() < w.handed && w.a.budget.Over() {
		select {
		case <-w.idle: // written is counted before the committer signals
		case <-w.a.hardCtx.Done():
			return
		}
	}
}

// encoded is what encode did with a record.
type encoded uint8

const (
	encRow      encoded = iota // a tuple or a dead letter was added, or nothing was due
	encTruncate                // a truncate event the table applies: the caller starts a batch
	encRetry                   // the table's columns changed: decode the record again
	encAbort                   // the partition was dropped or stopped (keychange.go), or the App is stopping
)

// encode decodes the record in w.rec (r, of partition st) for table t into
// q: a tuple, or a dead letter, or nothing (a skipped change event).
func (w *worker) encode(q *pending, t *tableRT, st *partState, r *kgo.Record, now time.Time) encoded {
	if t.keys != nil {
		// A key framed with a key schema not checked for t yet
		// (keychange.go): a key that is not t's stops the partition.
		if res := w.checkKey(st, t, &w.rec); res != encRow {
			return res
		}
	}
	sh := q.shape
	dec := w.decoder(t, sh)
	keyed := sh.pg.Keyed()
	// A tuple is about as long as the record (binary fields are no longer
	// than their JSON, plus a length word each): room for that up front
	// keeps the codec's appends from growing the batch a quarter at a time.
	q.b.Ensure(len(r.Value) + len(r.Key) + 8*sh.nFields + 64)
	mark := q.b.Mark()
	buf := pgcopy.AppendTupleHeader(q.b.Buf.B, sh.nFields)
	if keyed {
		buf = pgcopy.AppendInt8Field(buf, q.seq)
		q.seq++
	}
	buf, err := dec.AppendFields(buf, &w.rec)
	if need, ok := err.(*codec.SchemaNeededError); ok {
		// A writer schema this decoder has not seen: fetch it (the
		// partition waits while the registry is unreachable), then decode
		// the same record again.
		q.b.Buf.B = buf[:mark]
		if !w.fetchSchema(st, t, dec, need) {
			return encAbort
		}
		if t.cur() != sh {
			return encRetry
		}
		return w.encode(q, t, st, r, now)
	}
	if err == nil {
		c, ok := rowChange(dec)
		if !ok {
			q.b.Buf.B = buf[:mark]
			op := dec.Op()
			if op == codec.OpTruncate && t.cfg.Truncate {
				return encTruncate
			}
			w.a.m.table(t.cfg.Name).skipped(op).Inc()
			return encRow
		}
		if c.Op != pgcopy.RowUpsert {
			q.setOp(c.Op)
		}
		if c.Unchanged != 0 {
			q.setUnchanged(c.Unchanged)
		}
	}
	if err != nil {
		q.b.Buf.B = buf[:mark]
		q.addDeadLetter(w, st, deadLetter(r, t.cfg.Name, err))
		return encRow
	}
	q.b.Buf.B = buf
	if keyed {
		// The writer sorts by key: cutting it now, while the tuple is in
		// cache, spares it a walk over the whole batch. A tuple it cannot
		// cut (never one encoded here) gets an empty key, which sends the
		// batch to the merge path.
		q.b.Keys, _ = pgcopy.CutKey(q.b.Keys, buf[mark:], sh.keyFields)
		q.b.KeyEnds = append(q.b.KeyEnds, int32(len(q.b.Keys)))
	}
	q.b.EndRow(now)
	q.rows = append(q.rows, rowMeta{offset: r.Offset, ts: r.Timestamp.UnixNano(), part: q.rowPart(st)})
	if q.ops != nil && len(q.ops) < len(q.rows) {
		q.ops = append(q.ops, pgcopy.RowUpsert)
	}
	if q.unchanged != nil && len(q.unchanged) < len(q.rows) {
		q.unchanged = append(q.unchanged, 0)
	}
	return encRow
}

// rowChange returns what the record dec last accepted does to its row: its
// tuple's op and the columns it keeps as stored. ok is false when it makes
// no tuple: a Debezium message or the tombstone after a delete (OpSkip), or
// a truncate (OpTruncate). The appliance and replay (deadletters.go) read a
// record's change here alike, so a replayed record does what it would have.
func rowChange(dec *codec.Decoder) (c pgcopy.RowChange, ok bool) {
	switch dec.Op() {
	case codec.OpSkip, codec.OpTruncate:
		return c, false
	case codec.OpDelete:
		c.Op = pgcopy.RowDelete
	}
	if u := dec.Unchanged(); u != nil {
		c.Unchanged = u[0]
	}
	return c, true
}

// addDeadLetter adds a dead letter of a record of st, counting its bytes
// in the budget as w's.
func (q *pending) addDeadLetter(w *worker, st *partState, dl pgcopy.DeadLetter) {
	n := int64(len(dl.Key) + len(dl.Value) + len(dl.Headers) + len(dl.Error))
	w.acquire(n)
	q.bytes += n
	q.dlBytes += int(n)
	q.dls = append(q.dls, dl)
	q.dlParts = append(q.dlParts, q.rowPart(st))
}

// acquire counts n bytes of w's batches against the in-flight budget.
func (w *worker) acquire(n int64) {
	w.a.budget.Acquire(n)
	w.held.Add(n)
}

// release gives back n bytes acquire counted.
func (w *worker) release(n int64) {
	w.a.budget.Release(n)
	w.held.Add(-n)
}

// account counts p's encoded bytes not yet counted against the in-flight
// budget: the poll loop must see them to pause fetching while batches fill,
// not only once they are flushed.
func (w *worker) account(p *pending) {
	if n := int64(p.b.Len()) - p.encoded; n > 0 {
		w.acquire(n)
		p.bytes += n
		p.encoded += n
	}
	for _, q := range p.parts {
		w.account(q)
	}
}

// rowPart returns st's index in p.rowParts, adding it when new. A batch's
// rows come from few partitions, in runs: the last one is checked first.
func (p *pending) rowPart(st *partState) int32 {
	if n := len(p.rowParts); n > 0 && p.rowParts[n-1] == st {
		return int32(n - 1)
	}
	for i, s := range p.rowParts {
		if s == st {
			return int32(i)
		}
	}
	p.rowParts = append(p.rowParts, st)
	return int32(len(p.rowParts) - 1)
}

func (p *pending) rangeFor(st *partState) int {
	for i := range p.ranges {
		if p.ranges[i].st == st {
			return i
		}
	}
	p.ranges = append(p.ranges, rangeState{st: st, from: st.next, to: st.next})
	return len(p.ranges) - 1
}

// recycle hands records back to the client's fetch pools (fetchPools).
func recycle(recs []*kgo.Record) {
	for _, r := range recs {
		r.Recycle()
	}
}

// fill points the reused codec.Record at r without copying bytes.
func (w *worker) fill(r *kgo.Record) {
	w.rec.Topic = r.Topic
	w.rec.Partition = r.Partition
	w.rec.Offset = r.Offset
	w.rec.Timestamp = r.Timestamp
	w.rec.Key = r.Key
	w.rec.Value = r.Value
	w.rec.Headers = w.rec.Headers[:0]
	for _, h := range r.Headers {
		w.rec.Headers = append(w.rec.Headers, codec.Header{Key: h.Key, Value: h.Value})
	}
}

// flush hands p to the committer, waiting until it takes p. Each
// partition's expected offset for the next batch becomes this batch's end:
// batches of one worker commit in order, so the chain holds.
func (w *worker) flush(p *pending, why string) { w.handOff(p, why, true) }

// handOff hands p to the committer: waiting until it takes p, or, without
// wait, only if the committer is waiting for a batch, leaving p open to
// keep filling otherwise. A batch due by age or caught up gains nothing from
// waiting for a busy committer: flushed, it would only stop growing
// (measured: a third of the batches of a drain cut short on age, each
// shrinking its successor's slow start). The committer signals on w.idle
// when it is free again.
func (w *worker) handOff(p *pending, why string, wait bool) {
	live := p.ranges[:0]
	for _, r := range p.ranges {
		if r.to != r.from { // else no record of this partition made it in
			live = append(live, r)
		}
	}
	p.ranges = live
	last := batchSize{rows: p.b.Rows(), bytes: p.b.Len()}
	if len(p.ranges) == 0 {
		delete(w.open, p.table)
		w.last[p.table] = last
		w.release(p.bytes)
		batching.Put(p.b)
		putRows(p.rows)
		p.releaseParts(w)
		return
	}
	w.account(p)
	p.why = why
	if wait {
		w.commit <- p
	} else {
		select {
		case w.commit <- p:
		default:
			return
		}
	}
	// The committer owns p now.
	w.handed++
	select {
	case <-w.idle: // it was idle until now
	default:
	}
	delete(w.open, p.table)
	for _, r := range live {
		r.st.next = r.to
	}
	w.last[p.table] = last
}

func (w *worker) commitLoop() {
	// Connect while the consumer joins its group, not in the first batch.
	tables := make([]*pgcopy.Table, 0, len(w.a.tableList()))
	for _, t := range w.a.tableList() {
		tables = append(tables, t.cur().pg)
	}
	if err := w.writer.Prepare(w.a.hardCtx, tables...); err != nil {
		w.a.log.Warn("cannot open a PostgreSQL session ahead of the first batch; the first batch will retry", "worker", w.id, "err", err)
	}
	for p := range w.commit {
		if p.barrier != nil {
			close(p.barrier)
			continue
		}
		w.writing.Store(time.Now().UnixNano())
		w.write(p)
		w.writing.Store(0)
		w.release(p.bytes)
		batching.Put(p.b)
		putRows(p.rows)
		p.releaseParts(w)
		w.written.Add(1)
		select {
		case w.idle <- struct{}{}: // the worker may hand over a batch it offered
		default:
		}
	}
}

// write commits p, retrying infrastructure failures with backoff until it
// lands, every partition in it is dropped, or the App is hard-stopped.
// Nothing is ever dead-lettered for an infrastructure failure.
func (w *worker) write(p *pending) {
	a := w.a
	backoff := 100 * time.Millisecond
	for {
		p.dropDead()
		if len(p.ranges) == 0 {
			a.writeAbandoned(p.table)
			return
		}
		b := p.pgBatch(a)
		var parts []*pending
		b.Also, parts = p.partBatches(a)
		start := time.Now()
		res, err := w.writer.Write(a.hardCtx, b)
		if err == nil {
			for i, q := range parts {
				if i < len(res.Also) {
					a.m.table(q.table.cfg.Name).committed(res.Also[i])
					for _, dl := range res.Also[i].Rejected {
						a.m.deadLetters(q.table.cfg.Name, dl.Reason).Inc()
					}
				}
				for _, dl := range q.dls {
					a.m.deadLetters(q.table.cfg.Name, dl.Reason).Inc()
				}
			}
			a.m.batchesCommitted.Inc()
			a.m.batchRows.Update(float64(res.Rows))
			a.writeSucceeded(p.table)
			tm := a.m.table(p.table.cfg.Name)
			tm.committed(res)
			tm.batchLat.update(time.Since(start).Seconds())
			a.m.copyDur.Update(res.CopyTime.Seconds())
			a.m.mergeDur.Update(res.MergeTime.Seconds())
			a.m.commitDur.Update(res.CommitTime.Seconds())
			a.m.probedKeys.Add(res.ProbedKeys)
			a.m.chunkRetries.Add(res.ChunkRetries)
			for _, dl := range p.dls {
				a.m.deadLetters(p.table.cfg.Name, dl.Reason).Inc()
			}
			for _, dl := range res.Rejected {
				a.m.deadLetters(p.table.cfg.Name, dl.Reason).Inc()
			}
			a.m.observeLatency(time.Now().UnixNano(), p.rows)
			for _, r := range p.ranges {
				r.st.committed.Store(r.to)
			}
			a.log.Debug("batch committed", "worker", w.id, "table", p.table.cfg.Name, "rows", res.Rows,
				"dead_letters", len(p.dls)+len(res.Rejected), "took", time.Since(start),
				"copy", res.CopyTime, "merge", res.MergeTime, "commit", res.CommitTime,
				"attempts", res.Attempts, "direct", res.Direct, "probed_keys", res.ProbedKeys, "deferred_keys", res.Deferred, "chunk_retries", res.ChunkRetries, "flushed", p.why)
			return
		}
		var fe *pgcopy.FencedError
		if errors.As(err, &fe) {
			for i, fr := range fe.Ranges {
				if i < len(fe.Stored) && fe.Stored[i].Epoch == fr.Epoch && fe.Stored[i].NextOffset != fr.From {
					// Our own epoch, yet not the offset our last commit set:
					// PostgreSQL lost acknowledged commits (synchronous_commit
					// off, a failover to a lagging replica) or someone edited
					// the row. The fetch position is ahead of what is stored,
					// so the only safe move is to start over from the stored
					// offsets: stop, and let the restart re-claim.
					a.fail(fmt.Errorf("cannot continue: %s/%d's stored next_offset is %d under this instance's own epoch %d, but its last commit set %d: PostgreSQL lost acknowledged commits (check synchronous_commit and replica failover); restart sluice to resume from the stored offsets",
						fr.Topic, fr.Partition, fe.Stored[i].NextOffset, fr.Epoch, fr.From))
				}
				for _, r := range p.ranges {
					// Counted even when the partition was already dropped:
					// a zombie usually learns of its lost session (onLost)
					// just before its stale compare-and-set fails, and the
					// fencing must still show (found by internal/chaos).
					if r.st.topic != fr.Topic || r.st.partition != fr.Partition {
						continue
					}
					wasDropped := r.st.dropped.Swap(true)
					a.m.fenced.Inc()
					if i < len(fe.Stored) && fe.Stored[i].ResetFrom == fr.Epoch && !wasDropped {
						// sluice reset-offset moved the partition, and no
						// owner claimed it since: it is still ours, at the
						// reset offset. Dropped, it would stay assigned and
						// read nothing until the next rebalance.
						a.log.Warn("partition reset by sluice reset-offset; dropping local work and resuming at the reset offset",
							"topic", fr.Topic, "partition", fr.Partition, "epoch", r.st.epoch, "next_offset", fe.Stored[i].NextOffset)
						a.pickUpReset(r.st)
						continue
					}
					a.log.Warn("partition fenced: a newer owner claimed it; dropping local work",
						"topic", fr.Topic, "partition", fr.Partition, "epoch", r.st.epoch)
				}
			}
			continue
		}
		if a.hardCtx.Err() != nil {
			return
		}
		a.m.retries.Inc()
		a.noteError("write "+p.table.cfg.Name, err)
		if a.writeFailed(p.table, err) {
			a.declareStuck(p.table)
		}
		if pgcopy.IsRetryable(err) {
			a.log.Warn("batch write failed; retrying", "table", p.table.cfg.Name, "rows", len(p.rows), "err", err, "backoff", backoff)
		} else {
			a.log.Error("batch write failed (not a row-level error); retrying — check PostgreSQL", "table", p.table.cfg.Name, "err", err, "backoff", backoff)
		}
		select {
		case <-a.hardCtx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// setOp records the op of the tuple being added (the len(p.rows)-th),
// making p.ops one entry per tuple from the first op that is not an
// upsert on.
func (p *pending) setOp(op pgcopy.RowOp) {
	if p.ops == nil {
		p.ops = make([]pgcopy.RowOp, len(p.rows), cap(p.rows))
	}
	p.ops = append(p.ops, op)
}

// setUnchanged records the columns the tuple being added leaves as stored.
func (p *pending) setUnchanged(mask uint64) {
	if p.unchanged == nil {
		p.unchanged = make([]uint64, len(p.rows), cap(p.rows))
	}
	p.unchanged = append(p.unchanged, mask)
}

func (p *pending) pgBatch(a *App) *pgcopy.Batch {
	b := &pgcopy.Batch{
		Ops:         p.ops,
		Unchanged:   p.unchanged,
		Truncate:    p.truncate,
		Table:       p.shape.pg,
		Data:        p.b.Buf.B,
		Ends:        p.b.Ends,
		Keys:        p.b.Keys,
		KeyEnds:     p.b.KeyEnds,
		Seen:        p.table.seen,
		DeadLetters: p.dls,
		DeadLetterFor: func(i int, msg string) pgcopy.DeadLetter {
			row := p.rows[i]
			st := p.rowParts[row.part]
			dl := pgcopy.DeadLetter{Topic: st.topic, Partition: st.partition, Offset: row.offset}
			if r, err := a.refetch(st.topic, st.partition, row.offset); err != nil {
				msg += " (the record could not be re-read from Kafka for this dead letter: " + err.Error() + ")"
			} else {
				dl = deadLetter(r, p.table.cfg.Name, nil)
			}
			dl.Target = p.table.cfg.Name
			dl.Error = "rejected by PostgreSQL: " + msg
			dl.Reason = "rejected_by_postgres"
			return dl
		},
	}
	for _, r := range p.ranges {
		b.Ranges = append(b.Ranges, pgcopy.Range{
			Topic: r.st.topic, Partition: r.st.partition, Epoch: r.st.epoch, From: r.from, To: r.to,
		})
	}
	return b
}

// dropDead removes the rows, dead letters and ranges of dropped partitions.
// Rare (fencing, loss), so it copies.
func (p *pending) dropDead() {
	dead := false
	for _, r := range p.ranges {
		if r.st.dropped.Load() {
			dead = true
		}
	}
	if !dead {
		return
	}
	p.dropRows()
	var ranges []rangeState
	for _, r := range p.ranges {
		if !r.st.dropped.Load() {
			ranges = append(ranges, r)
		}
	}
	p.ranges = ranges
	for _, q := range p.parts {
		q.dropRows()
	}
}

// dropRows removes the rows and dead letters of dropped partitions.
func (p *pending) dropRows() {
	nb := batching.Get()
	var rows []rowMeta
	var ops []pgcopy.RowOp
	var unchanged []uint64
	for i, r := range p.rows {
		if p.rowParts[r.part].dropped.Load() {
			continue
		}
		nb.Buf.B = append(nb.Buf.B, p.b.Row(i)...)
		nb.EndRow(p.b.Started)
		rows = append(rows, r)
		if p.ops != nil {
			ops = append(ops, p.ops[i])
		}
		if p.unchanged != nil {
			unchanged = append(unchanged, p.unchanged[i])
		}
	}
	var dls []pgcopy.DeadLetter
	var dlParts []int32
	for i, dl := range p.dls {
		if !p.rowParts[p.dlParts[i]].dropped.Load() {
			dls = append(dls, dl)
			dlParts = append(dlParts, p.dlParts[i])
		}
	}
	batching.Put(p.b)
	p.b, p.rows, p.dls, p.dlParts, p.ops, p.unchanged = nb, rows, dls, dlParts, ops, unchanged
}

func reasonOf(err error) string {
	var re *codec.RowError
	if errors.As(err, &re) {
		return string(re.Reason)
	}
	return "invalid"
}

// deadLetter builds r's dead letter. It copies r's bytes: a dead letter
// outlives the fetch buffer r points into.
func deadLetter(r *kgo.Record, table string, err error) pgcopy.DeadLetter {
	dl := pgcopy.DeadLetter{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       bytes.Clone(r.Key),
		Value:     bytes.Clone(r.Value),
		Headers:   headersJSON(r.Headers),
		Target:    table,
	}
	if err != nil {
		dl.Error = err.Error()
		dl.Reason = reasonOf(err)
	}
	return dl
}

// headersJSON renders headers as codec.AppendHeadersJSON does for a
// kafka.headers column, so a dead letter's headers read like a row's.
func headersJSON(hs []kgo.RecordHeader) []byte {
	h := make([]codec.Header, len(hs))
	for i, rh := range hs {
		h[i] = codec.Header{Key: rh.Key, Value: rh.Value}
	}
	return codec.AppendHeadersJSON(nil, h)
}

// refetch re-reads one record from Kafka, for the dead letter of a row
// PostgreSQL rejected (batches keep no record bytes). Rare, so it uses a
// short-lived client of its own with the appliance's security settings.
func (a *App) refetch(topic string, partition int32, offset int64) (*kgo.Record, error) {
	opts, err := KafkaSecurityOpts(a.cfg)
	if err != nil {
		return nil, err
	}
	iso := kgo.ReadCommitted()
	if a.cfg.Kafka.Isolation == "read_uncommitted" {
		iso = kgo.ReadUncommitted()
	}
	opts = append(opts,
		kgo.SeedBrokers(a.cfg.Kafka.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		kgo.FetchIsolationLevel(iso),
		kgo.FetchMaxPartitionBytes(1<<20),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(a.hardCtx, 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cannot re-read %s/%d at offset %d: %w", topic, partition, offset, ctx.Err())
		}
		var found *kgo.Record
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("cannot re-read %s/%d at offset %d: %w", topic, partition, offset, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if found == nil && r.Offset >= offset {
				found = r
			}
		})
		if found != nil {
			if found.Offset != offset {
				return nil, fmt.Errorf("cannot re-read %s/%d at offset %d: no longer in the log (next is %d)", topic, partition, offset, found.Offset)
			}
			return found, nil
		}
	}
}
