package pgcopy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The direct path (every column received in the target's own wire format,
// every key column of a type whose equal values have equal bytes: byteKey)
// skips the staging table and the DISTINCT ON merge, whose single-row
// speculative insertions cost more than the COPY itself (see writer.go).
// Per batch:
//
//  1. In Go: the key of every tuple, cut out of it by the encoder while it
//     was hot in cache (CutKey, Batch.Keys) or here, the tuples are sorted
//     by key (see prepare), then seq, and only the first occurrence of each
//     key is kept.
//  2. In the round trip that opens the transaction and compare-and-sets the
//     offsets, one statement probes the target's unique index for the kept
//     keys (a LATERAL nested loop, so it stays index lookups however large
//     the table); keys already present are dropped: the first write wins.
//     With a KeyFilter (keyfilter.go) only the keys it may hold are probed:
//     those this process committed lately, and its false positives.
//  3. The remaining tuples are streamed, without their seq field, straight
//     into the target with COPY in ascending key order.
//
// Under on_conflict update (without deletes or change events) step 1
// keeps each key's winner (the highest int8 guard, then the last
// occurrence), and before step 3 the stored keys' winners update their
// rows (updateStored): they are copied into the staging table in key
// order and one UPDATE … FROM the staging table (updateSQL) replaces each
// stored row the guard lets through. With a KeyFilter the UPDATE itself
// finds the stored keys: the keys the filter may hold are staged without
// a probe, and only those the UPDATE left are probed afterwards, to tell a
// stored row with a higher guard (kept) from a key not stored after all
// (copied in with the rest). In BenchmarkWriteUpdates this costs
// PostgreSQL 5-10% less CPU per batch than probing the keys with the
// compare-and-set and merging their winners with INSERT … ON CONFLICT DO
// UPDATE (its probe+merge variant).
//
// A key committed by a concurrent transaction between the probe and the
// COPY, or one the KeyFilter did not know of and so left unprobed, makes
// COPY fail with a unique violation (23505): the batch reruns probing every
// key, then, should that fail again, through the staging merge. Under
// on_conflict ignore the table's next batches (chunkedBatches) then copy
// in chunks under savepoints (copyNew): such a key costs its chunk, rolled
// back and copied again without the keys a second probe finds, not the
// batch. Instances of a group that share keys (a null-keyed topic) meet
// this; one process's writers do not, since they claim their keys. Two direct
// writers cannot deadlock on each other's keys because both insert in the
// same key order (prepare); a direct writer and a merging writer order keys
// differently and may deadlock (40P01). Any such failure, and any other
// row-level error, rolls the attempt back and Write reruns the batch
// through the staging merge, which handles every case.

// directKeys is the per-Writer scratch of the direct path; reused across
// batches so steady state allocates nothing.
type directKeys struct {
	keys   []byte  // the batch's keys: its own Keys, or ownBuf
	ends   []int32 // ends[i] = end of tuple i's key in keys
	ownBuf []byte  // keys cut here when the batch brings none
	ownEnd []int32
	ents   []keyEnt // sort entries, and the radix sort's second buffer
	tmp    []keyEnt
	sel    []int32 // tuple indices kept, in key order
	exist  []bool  // indexed by position in sel: the key is in the target
	rd     tupleReader

	// With a KeyFilter (Batch.Seen): hashes[j] is the filter's hash of
	// key sel[j] (before dropExisting), added to the filter once the
	// batch commits; probe lists the positions in sel whose keys the
	// probe asks about (all of them without a filter or when not
	// optimistic), may is scratch.
	hashes []uint64
	may    []bool
	probe  []int32

	// on_conflict update (updateStored): cand are the positions in sel
	// of the keys that may be stored, upd their tuple indices (staged in
	// this order).
	cand, upd []int32

	// Keys other batches of the process had claimed when this one claimed
	// (inflight.go): the positions in sel claim reported, those batches,
	// and the set-aside tuples with their hashes.
	contested   []int32
	owners      []*flight
	later       []int32
	laterHashes []uint64
	ids         []int32   // of those batches still in flight, scratch
	cb          claimBufs // the claim's (inflight.go)

	// Every tuple of the batch in key order, each key's in arrival order
	// (prepare), and what resolveOps makes of them (resolve.go).
	sorted  []keyEnt
	opsRows []opsRow
	surv    []int32
	res     resolver
}

// keyEnt is a tuple in the key sort: its key's first eight payload bytes
// as a big-endian number, and its index.
type keyEnt struct {
	pre uint64
	i   int32
}

func (d *directKeys) key(i int32) []byte {
	start := int32(0)
	if i > 0 {
		start = d.ends[i-1]
	}
	return d.keys[start:d.ends[i]]
}

// KeyFields returns the tuple field positions of t's key columns in key
// order (0 is the seq field every keyed tuple starts with), for CutKey.
func (t *Table) KeyFields() []int {
	fields := make([]int, 0, len(t.Key))
	for _, k := range t.Key {
		fields = append(fields, 1+slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == k }))
	}
	return fields
}

// CutKey appends the key of a keyed tuple to keys: the fields at positions
// fields (Table.KeyFields), each as its int32 length and bytes, as the
// tuple holds them. It reports false, appending nothing, for a tuple too
// short for its own field lengths or without the seq field. A NULL key
// field is copied as it is (length -1); the writer leaves such a batch to
// the merge path.
func CutKey(keys []byte, t []byte, fields []int) ([]byte, bool) {
	last := 0
	for _, f := range fields {
		last = max(last, f)
	}
	if len(fields) == 0 || len(t) < 2+seqFieldBytes || int(binary.BigEndian.Uint16(t)) <= last || binary.BigEndian.Uint32(t[2:]) != 8 {
		return keys, false
	}
	var buf [8]int32 // field start offsets, on the stack for up to 8 fields
	pos := buf[:]
	if last >= len(buf) {
		pos = make([]int32, last+1)
	}
	off := 2
	for f := 0; f <= last; f++ {
		if off+4 > len(t) {
			return keys, false
		}
		pos[f] = int32(off)
		off += 4 + int(max(int32(binary.BigEndian.Uint32(t[off:])), 0))
		if off > len(t) {
			return keys, false
		}
	}
	for _, f := range fields {
		p := pos[f]
		n := max(int32(binary.BigEndian.Uint32(t[p:])), 0)
		keys = append(keys, t[p:p+4+n]...)
	}
	return keys, true
}

// prepare takes the keys of b's tuples (b.KeyEnds when the encoder cut
// them, else cut here) and selects the first occurrence of each key in key
// order. It reports false when a tuple is malformed or has a NULL key
// field: the merge path deals with those. keyFields are the field
// positions (Table.KeyFields) of the key columns.
//
// Key order is by the first eight bytes of the first key field's value,
// then by the whole key, then by tuple index, so the first occurrence of a
// key sorts first: for uuid and int8 keys, the order of their bytes. The
// eight-byte prefixes are radix-sorted; only tuples sharing one are
// compared whole (duplicates, or keys with a common prefix).
func (d *directKeys) prepare(b *Batch, keyFields []int) bool {
	return d.prepareWinners(b, keyFields, false, -1)
}

// prepareWinners is prepare choosing, per key, the first occurrence
// (last false: on_conflict ignore) or the last (last true: update); with
// guardField >= 0 (an int8 field of the tuple) the occurrence with the
// highest guard wins, then the last, as the merge orders them.
func (d *directKeys) prepareWinners(b *Batch, keyFields []int, last bool, guardField int) bool {
	n := len(b.Ends)
	if len(b.KeyEnds) == n {
		d.keys, d.ends = b.Keys, b.KeyEnds
	} else {
		d.ownBuf, d.ownEnd = d.ownBuf[:0], d.ownEnd[:0]
		for i := range n {
			var ok bool
			if d.ownBuf, ok = CutKey(d.ownBuf, b.Data[b.start(i):b.Ends[i]], keyFields); !ok {
				return false
			}
			d.ownEnd = append(d.ownEnd, int32(len(d.ownBuf)))
		}
		d.keys, d.ends = d.ownBuf, d.ownEnd
	}
	d.ents = slices.Grow(d.ents[:0], n)
	for i := range int32(n) {
		k := d.key(i)
		// Every key field must be present and not NULL.
		for f, rest := 0, k; f < len(keyFields); f++ {
			if len(rest) < 4 {
				return false
			}
			l := int32(binary.BigEndian.Uint32(rest))
			if l < 0 || int(l) > len(rest)-4 {
				return false
			}
			rest = rest[4+l:]
		}
		var pre [8]byte
		copy(pre[:], k[4:4+min(8, int(binary.BigEndian.Uint32(k)))])
		d.ents = append(d.ents, keyEnt{pre: binary.BigEndian.Uint64(pre[:]), i: i})
	}
	d.tmp = slices.Grow(d.tmp[:0], n)[:n]
	ents := radixSort(d.ents, d.tmp)
	d.sel = d.sel[:0]
	for j := 0; j < len(ents); {
		r := j + 1
		for r < len(ents) && ents[r].pre == ents[j].pre {
			r++
		}
		run := ents[j:r]
		if len(run) > 1 {
			slices.SortFunc(run, func(a, b keyEnt) int {
				if c := bytes.Compare(d.key(a.i), d.key(b.i)); c != 0 {
					return c
				}
				return int(a.i - b.i)
			})
		}
		for x := 0; x < len(run); {
			y := x + 1
			for y < len(run) && bytes.Equal(d.key(run[y].i), d.key(run[x].i)) {
				y++
			}
			// run[x:y] are one key's occurrences, in arrival order.
			win := run[x].i
			if last {
				win = run[y-1].i
				// A key's only occurrence wins without reading its guard:
				// the guard is often the tuple's last field.
				if guardField >= 0 && y-x > 1 {
					// The merge's order: the highest guard, NULLs last,
					// then the last of those.
					win = run[x].i
					best, ok := TupleInt8(b.Data[b.start(int(win)):b.Ends[win]], guardField)
					for _, e := range run[x+1 : y] {
						g, gok := TupleInt8(b.Data[b.start(int(e.i)):b.Ends[e.i]], guardField)
						if gok && (!ok || g >= best) || !gok && !ok {
							win, best, ok = e.i, g, gok
						}
					}
				}
			}
			d.sel = append(d.sel, win)
			x = y
		}
		j = r
	}
	d.sorted = ents
	return true
}

// radixSort sorts ents by pre, stably, using tmp (as long as ents) as the
// second buffer, and returns whichever of the two holds the result. A byte
// position where every entry has the same digit is skipped.
func radixSort(ents, tmp []keyEnt) []keyEnt {
	var count [256]int
	for shift := uint(0); shift < 64; shift += 8 {
		count = [256]int{}
		for _, e := range ents {
			count[byte(e.pre>>shift)]++
		}
		if len(ents) == 0 || count[byte(ents[0].pre>>shift)] == len(ents) {
			continue
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for _, e := range ents {
			b := byte(e.pre >> shift)
			tmp[count[b]] = e
			count[b]++
		}
		ents, tmp = tmp, ents
	}
	return ents
}

// hashKeys hashes every selected key with f's hash, for claiming them
// and for f.add once the batch commits; without a filter it hashes none.
func (d *directKeys) hashKeys(f *KeyFilter) {
	d.hashes = d.hashes[:0]
	d.later, d.laterHashes = d.later[:0], d.laterHashes[:0]
	if f != nil {
		for _, i := range d.sel {
			d.hashes = append(d.hashes, f.hash(d.key(i)))
		}
	}
}

// claimKeys claims the hashes hashKeys computed on f (inflight.go),
// recording the positions another batch holds in contested and those
// batches in owners. The caller releases the flight.
func (d *directKeys) claimKeys(f *KeyFilter) *flight {
	clear(d.owners)
	var fl *flight
	fl, d.contested, d.owners = f.claim(d.hashes, &d.cb, d.contested[:0], d.owners[:0])
	return fl
}

// setAside moves the selected tuples at the ascending positions in sel
// of contested out of sel and hashes, into later and laterHashes (still
// in key order).
func (d *directKeys) setAside(contested []int32) {
	if len(contested) == 0 {
		return
	}
	sel, hs := d.sel[:0], d.hashes[:0]
	c := 0
	for j, i := range d.sel {
		if c < len(contested) && contested[c] == int32(j) {
			d.later = append(d.later, i)
			d.laterHashes = append(d.laterHashes, d.hashes[j])
			c++
			continue
		}
		sel, hs = append(sel, i), append(hs, d.hashes[j])
	}
	d.sel, d.hashes = sel, hs
}

// choose sets the keys to probe (hashKeys first): every selected key, or,
// when optimistic, only those filter f may hold (a key it does not know of
// cannot be in the target unless another process or an earlier run wrote
// it, and then COPY fails and the batch is rerun probing every key).
func (d *directKeys) choose(f *KeyFilter, optimistic bool) {
	d.probe = d.probe[:0]
	if f == nil || !optimistic {
		for j := range d.sel {
			d.probe = append(d.probe, int32(j))
		}
		return
	}
	d.may = slices.Grow(d.may[:0], len(d.hashes))[:len(d.hashes)]
	f.mayContain(d.hashes, d.may)
	for j, m := range d.may {
		if m {
			d.probe = append(d.probe, int32(j))
		}
	}
}

// probeArrays appends one binary array parameter per key column holding
// the keys to probe (choose), in key order.
func (d *directKeys) probeArrays(p *params, elemOIDs []uint32) {
	for k, oid := range elemOIDs {
		a := p.array(oid)
		for _, j := range d.probe {
			key := d.key(d.sel[j])
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

// dropExisting removes the selected tuples whose keys the probe found: it
// answers with 1-based positions in d.probe (text int8 values).
func (d *directKeys) dropExisting(rows [][][]byte) error {
	if len(rows) == 0 {
		return nil
	}
	if err := d.markFound(rows); err != nil {
		return err
	}
	d.keepUnmarked()
	return nil
}

// markFound clears d.exist and marks the positions in d.sel of the keys
// the probe found (its answer: 1-based positions in d.probe).
func (d *directKeys) markFound(rows [][][]byte) error {
	d.resetExist()
	return d.mark(rows, d.probe)
}

// resetExist sizes d.exist to d.sel, every position unmarked.
func (d *directKeys) resetExist() {
	d.exist = slices.Grow(d.exist[:0], len(d.sel))[:len(d.sel)]
	clear(d.exist)
}

// mark sets d.exist for the positions in d.sel that rows name: each row's
// first column is a 1-based index into at (text int8 values).
func (d *directKeys) mark(rows [][][]byte, at []int32) error {
	for _, r := range rows {
		if _, err := d.markOne(r[0], at); err != nil {
			return err
		}
	}
	return nil
}

// markOne is mark for one value; it returns the position in d.sel it
// marked.
func (d *directKeys) markOne(v []byte, at []int32) (int32, error) {
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 || n > len(at) {
		return 0, fmt.Errorf("cannot read the key probe's or update's answer %q: expected a position in 1..%d", v, len(at))
	}
	d.exist[at[n-1]] = true
	return at[n-1], nil
}

// keepUnmarked removes from d.sel the positions d.exist marks.
func (d *directKeys) keepUnmarked() {
	kept := d.sel[:0]
	for j, i := range d.sel {
		if !d.exist[j] {
			kept = append(kept, i)
		}
	}
	d.sel = kept
}

// TupleInt8 returns field f (0 is the first field after the count) of a
// binary COPY tuple when it is a non-NULL int8.
func TupleInt8(t []byte, f int) (int64, bool) {
	if len(t) < 2 {
		return 0, false
	}
	t = t[2:]
	for range f {
		l := FieldLen(t)
		if l < 0 {
			return 0, false
		}
		t = t[l:]
	}
	if len(t) < 12 || binary.BigEndian.Uint32(t) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(t[4:])), true
}

// FieldLen returns the byte length of the binary COPY field at the start
// of b, its length word included, or -1 when b does not hold one.
func FieldLen(b []byte) int {
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

// probeSQL returns the statement that answers which of the keys passed as
// arrays ($1, $2, …, one per key column) exist in t's target, as their
// 1-based positions. keyTypes are the configured SQL types of the key
// columns.
func probeSQL(t *Table, keyTypes []string) string {
	return probeColumnSQL(t, keyTypes, "")
}

// probeGuardSQL is probeSQL answering each stored key's guard (t's
// OffsetColumn, NULL when the stored row has none) beside its position;
// for a table without a guard, probeSQL.
func probeGuardSQL(t *Table, keyTypes []string) string {
	if t.OffsetColumn == "" {
		return probeSQL(t, keyTypes)
	}
	return probeColumnSQL(t, keyTypes, pgx.Identifier{t.OffsetColumn}.Sanitize())
}

// probeColumnSQL is probeSQL, answering column col (quoted; none when
// empty) of each stored key's row as a second column.
func probeColumnSQL(t *Table, keyTypes []string, col string) string {
	var b strings.Builder
	b.WriteString("SELECT k.sluice_ord")
	if col != "" {
		b.WriteString(", x.sluice_col")
	}
	b.WriteString(" FROM unnest(")
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
	b.WriteString("sluice_ord), LATERAL (SELECT ")
	if col != "" {
		b.WriteString("t." + col + " AS sluice_col")
	} else {
		b.WriteString("1")
	}
	b.WriteString(" FROM " + t.ident() + " AS t WHERE ")
	for j, k := range t.Key {
		if j > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString("t." + pgx.Identifier{k}.Sanitize() + " = k.k" + strconv.Itoa(j))
	}
	b.WriteString(" LIMIT 1) AS x")
	return b.String()
}

// updateSQL returns the statements with which the direct path updates
// the stored rows of the keys in t's staging table stage (one row per key,
// copied in key order, its sluice_seq holding its position: updateStored)
// and learns which it updated: a stored row is replaced only when the
// guard says the staged row is newer, as the merge's ON CONFLICT DO
// UPDATE … WHERE decides, and the UPDATE returns the position of each
// staged row it applied. Empty when t has no column besides the key
// (there is nothing to update; the stored row stays).
//
// Hash and merge joins are off for the UPDATE: without statistics on the
// staging table the planner may hash it and scan the whole target; the
// nested loop reads the staging table in its physical, key order and
// looks each key up in the unique index, so the rows are updated, and
// locked, in key order (the direct path's deadlock argument, writer.go).
// Unlike INSERT … ON CONFLICT DO UPDATE it takes no separate row lock (a
// WAL record per row) and sorts nothing: the winners are chosen in Go.
func updateSQL(t *Table, stage string) string {
	var set []string
	for _, c := range t.Columns {
		if !isKeyColumn(t, c.Name) {
			n := pgx.Identifier{c.Name}.Sanitize()
			set = append(set, n+" = s."+n)
		}
	}
	if len(set) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; ")
	b.WriteString("UPDATE " + t.ident() + " AS t SET " + strings.Join(set, ", ") + " FROM " + stage + " AS s WHERE ")
	for j, k := range t.Key {
		if j > 0 {
			b.WriteString(" AND ")
		}
		n := pgx.Identifier{k}.Sanitize()
		b.WriteString("t." + n + " = s." + n)
	}
	if t.OffsetColumn != "" {
		// A stored row without a guard is older than anything we bring.
		o := pgx.Identifier{t.OffsetColumn}.Sanitize()
		b.WriteString(" AND (t." + o + " < s." + o + " OR t." + o + " IS NULL)")
	}
	b.WriteString(" RETURNING s." + pgx.Identifier{seqColumn}.Sanitize())
	b.WriteString("; SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT")
	return b.String()
}

// updateStored updates the stored rows of an on_conflict update batch's
// keys (tableSQL.update) and leaves in d.sel the tuples to copy straight
// in. The candidates are the keys the probe found (found, its answer,
// when probed), or, when the batch probed nothing before (an optimistic
// batch), the keys in d.probe: those the KeyFilter may hold, which for an
// update stream are nearly all stored, so the UPDATE's own index lookup
// replaces the probe's. The candidates' tuples are copied into the staging
// table in key order, and the UPDATE returns the positions of those it
// applied. A candidate it did not apply is stored with a guard at least
// as high (dropped) or not stored (a false positive of the filter, or a
// row deleted since the probe: copied in); a probe of those alone tells
// which. A row another process committed between the UPDATE and that
// probe, which the UPDATE would have replaced, is errLeftRace. It returns
// the number of rows updated.
func (w *Writer) updateStored(ctx context.Context, conn *pgconn.PgConn, b *Batch, ts *tableState, found [][][]byte, probed bool, res *Result) (int64, error) {
	d := &w.dk
	d.cand = d.cand[:0]
	if probed {
		if err := d.markFound(found); err != nil {
			return 0, err
		}
		for j, e := range d.exist {
			if e {
				d.cand = append(d.cand, int32(j))
			}
		}
	} else {
		d.cand = append(d.cand, d.probe...)
	}
	if len(d.cand) == 0 {
		return 0, nil
	}
	d.upd = d.upd[:0]
	for _, j := range d.cand {
		d.upd = append(d.upd, d.sel[j])
	}
	d.rd.reset(b, d.upd)
	d.rd.ord = true
	w.roundTrip()
	_, err := copyFrom(ctx, conn, &d.rd, ts.sql.copyStage)
	d.rd.reset(nil, nil)
	if err != nil {
		return 0, err
	}
	w.roundTrip()
	if w.hooks != nil && w.hooks.mergeUpdates {
		// Every candidate is settled: updated, kept or inserted.
		tag, err := conn.ExecParams(ctx, ts.sql.merge, nil, nil, nil, nil).Close()
		d.resetExist()
		for _, j := range d.cand {
			d.exist[j] = true
		}
		d.keepUnmarked()
		return tag.RowsAffected(), err
	}
	// The UPDATE's rows are read as they stream in: tens of thousands of
	// them would cost as many allocations copied.
	d.resetExist()
	updated := int64(-1)
	mr := conn.Exec(ctx, ts.sql.update)
	var merr error
	for mr.NextResult() {
		rr := mr.ResultReader()
		for rr.NextRow() {
			if v := rr.Values(); merr == nil && len(v) > 0 {
				_, merr = d.markOne(v[0], d.cand)
			}
		}
		if tag, err := rr.Close(); err == nil && tag.Update() {
			updated = tag.RowsAffected()
		}
	}
	if err := mr.Close(); err != nil {
		return 0, err
	}
	if merr != nil {
		return 0, merr
	}
	if updated < 0 {
		return 0, fmt.Errorf("cannot update the stored rows of %s: the statement returned no UPDATE result", b.Table.Name)
	}
	// The candidates left: stored with a guard at least as high, or not
	// stored when the UPDATE looked.
	d.probe = d.probe[:0]
	for _, j := range d.cand {
		if !d.exist[j] {
			d.probe = append(d.probe, j)
		}
	}
	if len(d.probe) > 0 {
		if w.hooks != nil && w.hooks.beforeLeftProbe != nil {
			w.hooks.beforeLeftProbe()
		}
		rows, err := w.probeKeysWith(ctx, conn, ts, ts.probeGuard)
		if err != nil {
			return 0, err
		}
		res.ProbedKeys += len(d.probe)
		if err := d.markLeft(b, rows, ts.guardField); err != nil {
			return 0, err
		}
	}
	d.keepUnmarked()
	return updated, nil
}

// errLeftRace: a key the direct path's UPDATE left (not stored when it
// looked) was stored by the time the probe that followed looked, with a
// guard the UPDATE would have replaced (or, without a guard, at all):
// another process committed it in between. Dropped as stored, the batch's
// newer row would be lost; copied in, it would fail as a duplicate. Write
// reruns the batch probing every key, as for a unique violation.
var errLeftRace = errors.New("a key the update left was stored meanwhile by another transaction")

// markLeft marks in d.exist the keys of the probe of the candidates the
// UPDATE left (probeGuardSQL's answer: a position in d.probe and, with a
// guard, the stored guard) whose stored row rightly stays: one whose
// guard is at least as high as the batch's row's, as the UPDATE's WHERE
// (updateSQL) decides. A stored row the UPDATE would replace, or any
// stored row without a guard column, is errLeftRace.
func (d *directKeys) markLeft(b *Batch, rows [][][]byte, guardField int) error {
	for _, r := range rows {
		if guardField < 0 || len(r) < 2 {
			return errLeftRace
		}
		j, err := d.markOne(r[0], d.probe)
		if err != nil {
			return err
		}
		if r[1] == nil {
			return errLeftRace // a stored row without a guard is older
		}
		stored, err := strconv.ParseInt(string(r[1]), 10, 64)
		if err != nil {
			return fmt.Errorf("cannot read the stored guard %q of a probed key: %w", r[1], err)
		}
		i := d.sel[j]
		if g, ok := TupleInt8(b.Data[b.start(int(i)):b.Ends[i]], guardField); ok && stored < g {
			return errLeftRace
		}
	}
	return nil
}

// tupleReader streams the tuples d.sel of a keyed batch, each without its
// leading seq field (with ord: with its 1-based position in sel in place
// of the seq), framed by the binary COPY header and trailer. It
// holds no copy of the tuples: the caller must keep them unchanged until
// copyFrom (not pgconn's CopyFrom, see copyFrom) returns.
type tupleReader struct {
	b     *Batch
	sel   []int32
	ord   bool // replace the seq field with the tuple's 1-based position in sel
	i     int
	phase int // 0 header, 1 tuples, 2 trailer, 3 done
	inRow bool
	hdr   [2 + seqFieldBytes]byte
	cur   []byte
}

func (r *tupleReader) reset(b *Batch, sel []int32) {
	*r = tupleReader{b: b, sel: sel}
}

// seqFieldBytes is the size of the seq field after the field count: int32
// length 8 and the int64.
const seqFieldBytes = 4 + 8

// readAhead is how many tuples ahead of the one it streams a tupleReader
// asks the CPU to fetch (prefetch): in key order the tuples sit at random
// places in a batch far larger than the caches, and without it each one
// stalls the copy on memory. BenchmarkTupleReader: 3.8-4.5 ms per
// 50,000-row batch without, 2.2-2.7 ms with; over 24 batches in turn
// (600 MB, cold) 8.4 ms against 4.6-4.7 ms (distances 8 to 32 measured
// alike).
const readAhead = 16

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
			if j := r.i + readAhead; j < len(r.sel) {
				k := int(r.sel[j])
				if a := r.b.start(k); r.b.Ends[k] > a {
					prefetch(&r.b.Data[a], r.b.Ends[k]-a)
				}
			}
			n := binary.BigEndian.Uint16(r.b.Data[s:])
			if r.ord {
				binary.BigEndian.PutUint16(r.hdr[:], n)
				binary.BigEndian.PutUint32(r.hdr[2:], 8)
				binary.BigEndian.PutUint64(r.hdr[6:], uint64(r.i+1))
				r.cur = r.hdr[:]
			} else {
				binary.BigEndian.PutUint16(r.hdr[:], n-1)
				r.cur = r.hdr[:2]
			}
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
	return readPieces(p, &r.cur, r.advance)
}

// A chunked direct COPY copies its tuples in chunks, a quarter of them
// each and at least minChunkRows: each chunk costs a savepoint and a COPY
// statement more, 6-14% of the copy time of a 10,000-row batch in
// chunks of 2,500 (BenchmarkWrite/direct/chunked, three runs), 15-35%
// in chunks of 1,000. chunkedBatches is how many batches copy in chunks
// after a direct batch met a key another transaction committed since its
// probe.
const (
	chunks         = 4
	minChunkRows   = 1000
	chunkedBatches = 64
	// maxChunkRetries bounds the retries of one chunk; then the batch
	// fails with the unique violation and Write reruns it.
	maxChunkRetries = 3
)

// copyNew copies the selected tuples (d.sel, in key order) into the
// target and returns the rows copied. With chunked it copies them in
// chunks, each under a savepoint: a chunk that meets a key
// another transaction committed since the probe (23505; a writer of
// another process, or a key the KeyFilter did not know of) is rolled
// back alone, its keys are probed again, those found are dropped (the
// first write wins) and the rest copied again. So such a key costs a
// chunk and a probe, not a rerun of the batch. Without chunked, one COPY.
// Only under PolicyIgnore: an update batch must update such a key, which
// its rerun does.
func (w *Writer) copyNew(ctx context.Context, conn *pgconn.PgConn, b *Batch, ts *tableState, chunked bool, res *Result) (int64, error) {
	d := &w.dk
	if !chunked {
		return w.copySel(ctx, conn, b, ts, d.sel)
	}
	rows := max((len(d.sel)+chunks-1)/chunks, minChunkRows)
	if w.hooks != nil && w.hooks.chunkRows > 0 {
		rows = w.hooks.chunkRows
	}
	// One round trip per chunk: each chunk's savepoint releases its
	// predecessor's, and a savepoint rolled back to stays for the retry.
	var n int64
	open := false
	for lo := 0; lo < len(d.sel); {
		hi := min(lo+rows, len(d.sel))
		for try := 0; ; try++ {
			if try == 0 {
				sql := "SAVEPOINT sluice_chunk"
				if open {
					sql = "RELEASE SAVEPOINT sluice_chunk; " + sql
				}
				w.roundTrip()
				if err := execSimple(ctx, conn, sql); err != nil {
					return n, err
				}
				open = true
			}
			c, err := w.copySel(ctx, conn, b, ts, d.sel[lo:hi])
			if err == nil {
				n += c
				break
			}
			if pgCode(err) != "23505" || try == maxChunkRetries {
				return n, err
			}
			w.roundTrip()
			if err := execSimple(ctx, conn, "ROLLBACK TO SAVEPOINT sluice_chunk"); err != nil {
				return n, err
			}
			if !w.keyRace(ctx, conn, b.Table, ts, err) {
				// Another unique index refused a row: no probe drops
				// it, the careful rerun does.
				return n, err
			}
			res.ChunkRetries++
			if hi, err = w.dropStored(ctx, conn, ts, lo, hi); err != nil {
				return n, err
			}
			if hi == lo {
				break
			}
		}
		lo = hi
	}
	if open {
		w.roundTrip()
		if err := execSimple(ctx, conn, "RELEASE SAVEPOINT sluice_chunk"); err != nil {
			return n, err
		}
	}
	return n, nil
}

// copySel copies the tuples sel of b into the target.
func (w *Writer) copySel(ctx context.Context, conn *pgconn.PgConn, b *Batch, ts *tableState, sel []int32) (int64, error) {
	d := &w.dk
	d.rd.reset(b, sel)
	defer d.rd.reset(nil, nil)
	w.roundTrip()
	tag, err := copyFrom(ctx, conn, &d.rd, ts.sql.copyTarget)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// dropStored probes the keys of d.sel[lo:hi] and removes from d.sel those
// the target holds, and returns the chunk's new end.
func (w *Writer) dropStored(ctx context.Context, conn *pgconn.PgConn, ts *tableState, lo, hi int) (int, error) {
	d := &w.dk
	d.probe = d.probe[:0]
	for j := lo; j < hi; j++ {
		d.probe = append(d.probe, int32(j))
	}
	rows, err := w.probeKeys(ctx, conn, ts)
	if err != nil {
		return hi, err
	}
	if err := d.markFound(rows); err != nil {
		return hi, err
	}
	n := len(d.sel)
	d.keepUnmarked()
	return hi - (n - len(d.sel)), nil
}

// probeKeys looks up the keys at the positions d.probe in the target, in
// a round trip of its own, and returns the probe's answer (probeSQL).
func (w *Writer) probeKeys(ctx context.Context, conn *pgconn.PgConn, ts *tableState) ([][][]byte, error) {
	return w.probeKeysWith(ctx, conn, ts, ts.probe)
}

// probeKeysWith is probeKeys with the probe statement sql (probeSQL or
// probeGuardSQL).
func (w *Writer) probeKeysWith(ctx context.Context, conn *pgconn.PgConn, ts *tableState, sql string) ([][][]byte, error) {
	p := &w.probeArgs
	p.reset()
	w.dk.probeArrays(p, ts.keyOIDs)
	w.roundTrip()
	r := conn.ExecParams(ctx, sql, p.args(), p.oids, p.formats, nil).Read()
	return r.Rows, r.Err
}
