package ingest

import (
	"bytes"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/batching"
	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
)

// Fan-out: the records of a topic that several tables read, or that a
// table reads under a when: condition, are routed per record (routing.go
// picks the tables; a record goes to every table whose condition holds, a
// table without one taking every record). The partition's offsets ride in
// the batch of its first table (partState.table); the tuples for the
// others are parts of that batch (pending.parts) and are written in the
// same transaction (pgcopy.Batch.Also), so a record lands in every table
// it is routed to, exactly once, or in none. A record that no table takes
// is a dead letter with reason no_route.

// WhenConfig is a table's `when:`: the records of its topics it takes.
type WhenConfig struct {
	Header string `yaml:"header"` // the record header (the last of that key) ...
	Field  string `yaml:"field"`  // ... or the value's field (a path, as columns have) ...
	Equals string `yaml:"equals"` // ... must equal this text
}

func (c *WhenConfig) validate(key string) error {
	if (c.Header == "") == (c.Field == "") {
		return cfgErr(key, "set header or field (one of them) and equals, e.g. when: {header: type, equals: order}")
	}
	return nil
}

// reasonNoRoute is the dead-letter reason of a record no table takes.
const reasonNoRoute = "no_route"

// evolved reports whether a table of p or of its parts changed columns.
func (p *pending) evolved() bool {
	if p.table.cur() != p.shape {
		return true
	}
	for _, q := range p.parts {
		if q.table.cur() != q.shape {
			return true
		}
	}
	return false
}

// full reports whether p or one of its parts reached its limits, or
// whether their tuples and dead letters together reached p's byte limit:
// batch.max_bytes bounds the batch written in one transaction, whatever
// the number of tables it feeds (each part held up to the limit once, a
// batch of K tables K times it) and however many of its records are bad
// (a dead letter keeps a copy of its record, and the writer copies it
// once more into the INSERT's parameters).
func (p *pending) full() bool {
	if p.limits.Full(p.b) {
		return true
	}
	n := p.b.Len() + p.dlBytes
	for _, q := range p.parts {
		if q.limits.Full(q.b) {
			return true
		}
		n += q.b.Len() + q.dlBytes
	}
	return n >= p.limits.MaxBytes
}

// part returns the pending tuples of table t in p's batch: p itself for
// p's table, a part otherwise.
func (p *pending) part(t *tableRT) *pending {
	if t == p.table {
		return p
	}
	for _, q := range p.parts {
		if q.table == t {
			return q
		}
	}
	q := &pending{table: t, b: batching.Get(), limits: p.limits, opened: p.opened, shape: t.cur()}
	q.rows = getRows(0)
	p.parts = append(p.parts, q)
	return q
}

// pendMark is where a pending batch ended before a record was encoded.
type pendMark struct {
	q                              *pending
	buf, ends, keys, keyEnds, rows int
	ops, unchanged, dls            int
	seq                            int64
	started                        time.Time
	wasOps, wasUnchanged           bool
}

func (q *pending) mark() pendMark {
	return pendMark{q: q, buf: len(q.b.Buf.B), ends: len(q.b.Ends), keys: len(q.b.Keys), keyEnds: len(q.b.KeyEnds),
		rows: len(q.rows), ops: len(q.ops), unchanged: len(q.unchanged), dls: len(q.dls), seq: q.seq,
		started: q.b.Started, wasOps: q.ops != nil, wasUnchanged: q.unchanged != nil}
}

// rollback drops what was encoded into m.q after m (the budget bytes of
// dropped dead letters stay counted until the batch is done).
func (m pendMark) rollback() {
	q := m.q
	q.b.Buf.B = q.b.Buf.B[:m.buf]
	q.b.Ends = q.b.Ends[:m.ends]
	q.b.Keys = q.b.Keys[:m.keys]
	q.b.KeyEnds = q.b.KeyEnds[:m.keyEnds]
	q.b.Started = m.started
	q.rows = q.rows[:m.rows]
	q.dls = q.dls[:m.dls]
	q.dlParts = q.dlParts[:m.dls]
	q.seq = m.seq
	if m.wasOps {
		q.ops = q.ops[:m.ops]
	} else {
		q.ops = nil
	}
	if m.wasUnchanged {
		q.unchanged = q.unchanged[:m.unchanged]
	} else {
		q.unchanged = nil
	}
}

// encodeFan encodes the record in w.rec for every table of fan that takes
// it. Should one table need the record again (encRetry) or the partition
// be given up (encAbort), what the others got of it is rolled back, so a
// record is in a batch whole or not at all.
func (w *worker) encodeFan(p *pending, fan []*tableRT, st *partState, r *kgo.Record, now time.Time) encoded {
	marks := w.marks[:0]
	defer func() { w.marks = marks[:0] }()
	undo := func() {
		for i := len(marks) - 1; i >= 0; i-- {
			marks[i].rollback()
		}
	}
	taken := false
	for _, t := range fan {
		ok, res := w.takes(t, st)
		if res != encRow {
			undo()
			return res
		}
		if !ok {
			continue
		}
		taken = true
		q := p.part(t)
		marks = append(marks, q.mark())
		switch res := w.encode(q, t, st, r, now); res {
		case encAbort, encRetry:
			undo()
			return res
		case encTruncate:
			// Refused by the configuration for fanned tables; should one
			// come, it is counted like a skipped event.
			w.a.m.table(t.cfg.Name).skipped(codec.OpTruncate).Inc()
		}
	}
	if !taken {
		dl := deadLetter(r, p.table.cfg.Name, nil)
		dl.Error = fmt.Sprintf("%s: no table takes the record: the when: conditions of %s do not hold for it", reasonNoRoute, tableNames(fan))
		dl.Reason = reasonNoRoute
		p.addDeadLetter(w, st, dl)
	}
	return encRow
}

func tableNames(ts []*tableRT) string {
	var b bytes.Buffer
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.cfg.Name)
	}
	return b.String()
}

// takes reports whether table t takes the record in w.rec (its when:
// condition holds, or it has none). A condition on a field reads the value
// with a decoder of t's format; a record it cannot read is not taken.
func (w *worker) takes(t *tableRT, st *partState) (bool, encoded) {
	c := t.cfg.When
	if c == nil {
		return true, encRow
	}
	if c.Header != "" {
		var v []byte
		found := false
		for _, h := range w.rec.Headers {
			if h.Key == c.Header {
				v, found = h.Value, true
			}
		}
		return found && string(v) == c.Equals, encRow
	}
	dec := w.conds[t]
	if dec == nil {
		var err error
		dec, err = codec.NewDecoder(t.format, []codec.Column{{Name: "when", Type: codec.TypeText, Path: c.Field}}, t.opts)
		if err != nil {
			panic("BUG: when: decoder validated in New failed later: " + err.Error())
		}
		w.conds[t] = dec
	}
	for {
		var err error
		w.condBuf, err = dec.AppendFields(w.condBuf[:0], &w.rec)
		if need, ok := err.(*codec.SchemaNeededError); ok {
			if !w.fetchSchema(st, nil, dec, need) {
				return false, encAbort
			}
			continue
		}
		if err != nil || len(w.condBuf) < 4 || w.condBuf[0]&0x80 != 0 {
			return false, encRow // unreadable, or NULL
		}
		return string(w.condBuf[4:]) == c.Equals, encRow
	}
}

// partBatches returns the pgcopy batches of p's parts that hold tuples or
// dead letters, for Batch.Also, and the parts in the same order.
func (p *pending) partBatches(a *App) ([]*pgcopy.Batch, []*pending) {
	var bs []*pgcopy.Batch
	var qs []*pending
	for _, q := range p.parts {
		if len(q.b.Ends) == 0 && len(q.dls) == 0 {
			continue
		}
		b := q.pgBatch(a)
		b.Ranges, b.Seen = nil, nil
		bs = append(bs, b)
		qs = append(qs, q)
	}
	return bs, qs
}

// releaseParts returns the parts' buffers to their pools and their budget
// bytes, which worker w acquired.
func (p *pending) releaseParts(w *worker) {
	for _, q := range p.parts {
		w.release(q.bytes)
		batching.Put(q.b)
		putRows(q.rows)
	}
	p.parts = nil
}
