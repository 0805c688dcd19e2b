package pgcopy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The direct path (on_conflict ignore, every column received in the
// target's own wire format) skips the staging table and the DISTINCT ON
// merge, whose single-row speculative insertions cost more than the COPY
// itself (see writer.go). Per batch:
//
//  1. In Go: the key of every tuple is cut out of the tuple (no parsing
//     beyond the field lengths), the tuples are sorted by key bytes, then
//     seq, and only the first occurrence of each key is kept.
//  2. In the round trip that opens the transaction and compare-and-sets the
//     offsets, one statement probes the target's unique index for the kept
//     keys (a LATERAL nested loop, so it stays index lookups however large
//     the table); keys already present are dropped: the first write wins.
//  3. The remaining tuples are streamed, without their seq field, straight
//     into the target with COPY in ascending key order.
//
// A key committed by a concurrent transaction between the probe and the
// COPY makes COPY fail with a unique violation (23505), and two direct
// writers cannot deadlock on each other's keys because both insert in the
// same (Go byte) order; a direct writer and a merging writer order keys
// differently and may deadlock (40P01). Any such failure, and any other
// row-level error, rolls the attempt back and Write reruns the batch
// through the staging merge, which handles every case as before.

// directKeys is the per-Writer scratch of the direct path; reused across
// batches so steady state allocates nothing.
type directKeys struct {
	keyBuf []byte  // per tuple: each key field as int32 length + bytes
	keyEnd []int32 // keyEnd[i] = end of tuple i's key in keyBuf
	sel    []int32 // tuple indices kept, ascending key order
	exist  []bool  // indexed by position in sel: the key is in the target
	rd     tupleReader
}

func (d *directKeys) key(i int32) []byte {
	start := int32(0)
	if i > 0 {
		start = d.keyEnd[i-1]
	}
	return d.keyBuf[start:d.keyEnd[i]]
}

// prepare cuts the keys out of b's tuples and selects the first occurrence
// of each key in ascending key order. It reports false when a tuple is
// malformed or has a NULL key field: the merge path deals with those.
// keyFields are the field positions (0 is seq) of the key columns, in
// key order.
func (d *directKeys) prepare(b *Batch, keyFields []int) bool {
	d.keyBuf = d.keyBuf[:0]
	d.keyEnd = d.keyEnd[:0]
	d.sel = d.sel[:0]
	last := keyFields[0]
	for _, f := range keyFields {
		last = max(last, f)
	}
	var pos [8]int32 // field start offsets for up to 8 fields in a stack array
	var posBuf []int32
	if last < len(pos) {
		posBuf = pos[:last+1]
	} else {
		posBuf = make([]int32, last+1)
	}
	for i := range b.Ends {
		s, e := b.start(i), b.Ends[i]
		t := b.Data[s:e]
		if len(t) < 2+seqFieldBytes || int(binary.BigEndian.Uint16(t)) <= last || binary.BigEndian.Uint32(t[2:]) != 8 {
			return false
		}
		off := 2
		for f := 0; f <= last; f++ {
			if off+4 > len(t) {
				return false
			}
			posBuf[f] = int32(off)
			n := int32(binary.BigEndian.Uint32(t[off:]))
			if n < 0 {
				if slices.Contains(keyFields, f) {
					return false // NULL key: let the merge path reject it
				}
				n = 0
			}
			off += 4 + int(n)
			if off > len(t) {
				return false
			}
		}
		for _, f := range keyFields {
			p := posBuf[f]
			n := int32(binary.BigEndian.Uint32(t[p:]))
			d.keyBuf = append(d.keyBuf, t[p:p+4+n]...)
		}
		d.keyEnd = append(d.keyEnd, int32(len(d.keyBuf)))
		d.sel = append(d.sel, int32(i))
	}
	// Ascending key, then ascending index (= seq): the first occurrence of
	// a key comes first and is the one kept.
	slices.SortFunc(d.sel, func(a, b int32) int {
		if c := bytes.Compare(d.key(a), d.key(b)); c != 0 {
			return c
		}
		return int(a - b)
	})
	kept := d.sel[:0]
	for j, i := range d.sel {
		if j > 0 && bytes.Equal(d.key(i), d.key(kept[len(kept)-1])) {
			continue
		}
		kept = append(kept, i)
	}
	d.sel = kept
	return true
}

// probeArrays appends one binary array parameter per key column holding
// the kept keys in order.
func (d *directKeys) probeArrays(p *params, elemOIDs []uint32) {
	for k, oid := range elemOIDs {
		a := p.array(oid)
		for _, i := range d.sel {
			key := d.key(i)
			// Skip to key field k: each is int32 length + bytes.
			for range k {
				key = key[4+binary.BigEndian.Uint32(key):]
			}
			n := binary.BigEndian.Uint32(key)
			a.bytes(key[4 : 4+n])
		}
		p.endArray(0) // the statement casts it to the key column's array type
	}
}

// dropExisting removes the kept tuples whose 1-based positions in sel the
// probe returned (text int8 values).
func (d *directKeys) dropExisting(rows [][][]byte) error {
	if len(rows) == 0 {
		return nil
	}
	d.exist = slices.Grow(d.exist[:0], len(d.sel))[:len(d.sel)]
	clear(d.exist)
	for _, r := range rows {
		n, err := strconv.Atoi(string(r[0]))
		if err != nil || n < 1 || n > len(d.sel) {
			return fmt.Errorf("cannot read the key probe's answer %q: expected a position in 1..%d", r[0], len(d.sel))
		}
		d.exist[n-1] = true
	}
	kept := d.sel[:0]
	for j, i := range d.sel {
		if !d.exist[j] {
			kept = append(kept, i)
		}
	}
	d.sel = kept
	return nil
}

// probeSQL returns the statement that answers which of the keys passed as
// arrays ($1, $2, …, one per key column) exist in t's target, as their
// 1-based positions. keyTypes are the configured SQL types of the key
// columns.
func probeSQL(t *Table, keyTypes []string) string {
	var b strings.Builder
	b.WriteString("SELECT k.sluice_ord FROM unnest(")
	for j, typ := range keyTypes {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(j+1) + "::" + typ + "[]")
	}
	b.WriteString(") WITH ORDINALITY AS k(")
	for j := range keyTypes {
		b.WriteString("k" + strconv.Itoa(j) + ", ")
	}
	// LIMIT 1 keeps the lateral subquery from being flattened into a hash
	// or merge join over the whole target: it stays one index probe per key.
	b.WriteString("sluice_ord), LATERAL (SELECT 1 FROM " + t.ident() + " AS t WHERE ")
	for j, k := range t.Key {
		if j > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString("t." + pgx.Identifier{k}.Sanitize() + " = k.k" + strconv.Itoa(j))
	}
	b.WriteString(" LIMIT 1) AS x")
	return b.String()
}

// tupleReader streams the tuples d.sel of a keyed batch, each without its
// leading seq field, framed by the binary COPY header and trailer. It
// holds no copy of the tuples: the caller must keep them unchanged until
// copyFrom (not pgconn's CopyFrom, see copyFrom) returns.
type tupleReader struct {
	b     *Batch
	sel   []int32
	i     int
	phase int // 0 header, 1 tuples, 2 trailer, 3 done
	inRow bool
	hdr   [2]byte
	cur   []byte
}

func (r *tupleReader) reset(b *Batch, sel []int32) {
	*r = tupleReader{b: b, sel: sel, hdr: r.hdr}
}

// seqFieldBytes is the size of the seq field after the field count: int32
// length 8 and the int64.
const seqFieldBytes = 4 + 8

func (r *tupleReader) advance() bool {
	switch r.phase {
	case 0:
		r.cur = headerBytes
		r.phase = 1
	case 1:
		if r.i == len(r.sel) {
			r.cur = trailerBytes
			r.phase = 2
			return true
		}
		i := int(r.sel[r.i])
		s := r.b.start(i)
		if !r.inRow {
			binary.BigEndian.PutUint16(r.hdr[:], binary.BigEndian.Uint16(r.b.Data[s:])-1)
			r.cur = r.hdr[:]
			r.inRow = true
			return true
		}
		r.cur = r.b.Data[s+2+seqFieldBytes : r.b.Ends[i]]
		r.inRow = false
		r.i++
	case 2:
		r.phase = 3
		return false
	default:
		return false
	}
	return true
}

func (r *tupleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.cur) == 0 {
			if !r.advance() {
				break
			}
			continue
		}
		c := copy(p[n:], r.cur)
		n += c
		r.cur = r.cur[c:]
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}
