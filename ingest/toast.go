package ingest

import (
	"bytes"
	"encoding/binary"

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
		gn, okn := tupleField8(q.b.Row(n), guard)
		gj, okj := tupleField8(q.b.Row(int(j)), guard)
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
		cl, pl := fieldLen(cf), fieldLen(pf)
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

// tupleField8 returns field f of a binary COPY tuple when it is a non-NULL
// 8-byte value (int8), as an int64.
func tupleField8(t []byte, f int) (int64, bool) {
	b := t[2:]
	for range f {
		l := fieldLen(b)
		if l < 0 {
			return 0, false
		}
		b = b[l:]
	}
	if len(b) < 12 || binary.BigEndian.Uint32(b) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[4:])), true
}

// fieldLen returns the byte length of the binary COPY field at the start
// of b (its length word included), or -1 when b does not hold one.
func fieldLen(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	l := int32(binary.BigEndian.Uint32(b))
	if l < 0 {
		return 4
	}
	if int(l) > len(b)-4 {
		return -1
	}
	return 4 + int(l)
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
