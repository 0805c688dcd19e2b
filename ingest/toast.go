package ingest

import (
	"bytes"

	pgcopy "github.com/sluice-dev/sluice/copy"
)

// Unchanged columns within a batch: a Debezium update whose TOASTed column
// did not change sends a placeholder for it, and the writer keeps the
// stored value (pgcopy Batch.Unchanged). When an earlier change of the same
// key in the same batch sent that column in full, the stored value is
// older than the source's: carryUnchanged copies the column from that
// change into the tuple instead, so the batch applies what the source
// holds.

// carryUnchanged fills the unchanged columns of q's last tuple from the
// latest earlier upsert of its key in q that holds them, and records the
// tuple as its key's latest change. Only for tables with change events
// (they are keyed).
func (w *worker) carryUnchanged(q *pending, guard int) {
	n := len(q.rows) - 1
	key := q.tupleKey(n)
	if len(key) == 0 {
		return
	}
	if q.lastByKey == nil {
		q.lastByKey = map[string]int32{}
	}
	j, seen := q.lastByKey[string(key)]
	seen = seen && int(j) < n && bytes.Equal(q.tupleKey(int(j)), key)
	if seen && guard >= 0 {
		// A replayed older change (a lower guard) loses to j when the
		// batch is applied: it neither takes j's values nor gives its own.
		gn, okn := pgcopy.TupleInt8(q.b.Row(n), guard)
		gj, okj := pgcopy.TupleInt8(q.b.Row(int(j)), guard)
		if okn && okj && gn < gj {
			return
		}
	}
	q.lastByKey[string(key)] = int32(n)
	if !seen || q.unchanged == nil || q.unchanged[n] == 0 {
		return
	}
	if q.ops != nil && (q.ops[j] != pgcopy.RowUpsert || q.ops[n] != pgcopy.RowUpsert) {
		return // a delete in between: the stored value is gone either way
	}
	take := q.unchanged[n] &^ q.unchanged[j]
	if take == 0 {
		return
	}
	cur := q.b.Row(n)
	prev := q.b.Row(int(j))
	w.toastBuf = append(w.toastBuf[:0], cur[:2]...)
	cf, pf := cur[2:], prev[2:]
	for f := 0; len(cf) > 0; f++ {
		cl, pl := pgcopy.FieldLen(cf), pgcopy.FieldLen(pf)
		if cl < 0 || pl < 0 {
			return // not a tuple this worker framed: leave it
		}
		if f > 0 && take&(1<<(f-1)) != 0 {
			w.toastBuf = append(w.toastBuf, pf[:pl]...)
		} else {
			w.toastBuf = append(w.toastBuf, cf[:cl]...)
		}
		cf, pf = cf[cl:], pf[pl:]
	}
	start := len(q.b.Buf.B) - len(cur)
	q.b.Buf.B = append(q.b.Buf.B[:start], w.toastBuf...)
	q.b.Ends[n] = len(q.b.Buf.B)
	q.unchanged[n] &^= take
}

// tupleKey returns tuple i's key as cut by pgcopy.CutKey (empty when it
// could not be cut).
func (q *pending) tupleKey(i int) []byte {
	if i >= len(q.b.KeyEnds) {
		return nil
	}
	start := int32(0)
	if i > 0 {
		start = q.b.KeyEnds[i-1]
	}
	return q.b.Keys[start:q.b.KeyEnds[i]]
}
