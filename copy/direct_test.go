package pgcopy

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestDirectCrossBatchDuplicates: keys repeated within a batch keep their
// first occurrence, keys of an earlier batch keep the earlier row, and the
// batch goes through the direct path.
func TestDirectCrossBatchDuplicates(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	b := newBuilder(tbl, "t", 0)
	for i, k := range []int64{3, 1, 2, 1, 3} {
		b.add(int64(i), fInt8(k), fText(fmt.Sprint("first", i)), fInt8(int64(i)))
	}
	res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 5))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Direct || res.Rows != 5 || res.Affected != 3 || res.Attempts != 1 {
		t.Fatalf("first batch: %+v", res)
	}
	b = newBuilder(tbl, "t", 0)
	for i, k := range []int64{4, 2, 5, 4, 1} {
		b.add(int64(5+i), fInt8(k), fText(fmt.Sprint("second", i)), fInt8(int64(5+i)))
	}
	res, err = w.Write(testCtx(t), b.batch(claims[0].Epoch, 5, 10))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Direct || res.Affected != 2 || res.Attempts != 1 {
		t.Fatalf("second batch: %+v", res)
	}
	wantEvents(t, c, 10, [][]string{{"1", "first1"}, {"2", "first2"}, {"3", "first0"}, {"4", "second0"}, {"5", "second2"}})
}

// wantEvents checks the (id, val) rows of the events table, in id order,
// and partition 0's stored next_offset.
func wantEvents(t *testing.T, c *pgconn.PgConn, next int64, want [][]string) {
	t.Helper()
	if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); !reflect.DeepEqual(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	if o := offsetsOf(t, c); o[0].NextOffset != next {
		t.Fatalf("offsets %+v, want next_offset %d", o, next)
	}
}

// TestDirectRerunsOnConcurrentKey: a key inserted by another transaction
// after the probe makes the direct COPY fail with a unique violation once
// that transaction commits; the batch is rerun on the direct path, whose
// new probe finds the key, and lands exactly once, the concurrent row
// winning.
func TestDirectRerunsOnConcurrentKey(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w, pid := connectedWriter(t, url)
	other := connect(t, url)
	// Uncommitted: invisible to the probe, but COPY must wait for it.
	mustExec(t, other, "BEGIN; INSERT INTO events VALUES (7, 'other', -1)")
	b := newBuilder(tbl, "t", 0)
	for i := range 20 {
		b.add(int64(i), fInt8(int64(i)), fText("w"), fInt8(int64(i)))
	}
	errc := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 20))
		errc <- err
	}()
	waitLocked(t, c, pid)
	mustExec(t, other, "COMMIT")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !res.Direct || res.Attempts != 2 || res.Affected != 19 {
		t.Fatalf("result %+v: want a second, direct attempt inserting 19 rows", res)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 20 {
		t.Fatalf("%d rows, want 20", n)
	}
	if v := queryRows(t, c, "SELECT val FROM events WHERE id = 7"); v[0][0] != "other" {
		t.Fatalf("key 7 = %v, want the concurrent row", v)
	}
	if o := offsetsOf(t, c); o[0].NextOffset != 20 {
		t.Fatalf("offsets %+v", o)
	}
}

// TestDirectNotForChangesOrNullKey: on_conflict update batches of a table
// with change events, and batches with a NULL key, take the merge path.
func TestDirectNotForChangesOrNullKey(t *testing.T) {
	t.Parallel()
	upd := eventsTable()
	upd.Name = "upd"
	upd.OnConflict = PolicyUpdate
	upd.Changes = true
	ign := eventsTable()
	url, c, claims := setup(t, 2, upd, ign)
	w := newWriter(t, url)
	b := newBuilder(upd, "t", 0)
	b.add(0, fInt8(1), fText("a"), fInt8(0))
	res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 1))
	if err != nil || res.Direct {
		t.Fatalf("update table with changes: %+v, %v", res, err)
	}
	b = newBuilder(ign, "t", 1)
	b.add(0, fInt8(1), fText("a"), fInt8(0))
	b.add(1, nil, fText("null key"), fInt8(1))
	res, err = w.Write(testCtx(t), b.batch(claims[1].Epoch, -1, 2))
	if err != nil || res.Direct || len(res.Rejected) != 1 || res.Rejected[0].Offset != 1 {
		t.Fatalf("null key: %+v, %v", res, err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}

// TestDirectNotForKeysUnequalAsBytes: numeric (1.0 and 1.00), float8 (0
// and -0), character(n) ('a' and 'a ') and text under a case-insensitive
// collation ('A' and 'a') have values PostgreSQL holds equal whose binary
// forms differ, so the direct path, which groups keys by their bytes,
// would keep both spellings of one key: under on_conflict update its
// UPDATE … FROM of a stored key applied either (the winner by chance),
// and a new key failed its COPY until the writer gave up retrying. Such
// tables take the staging merge, whose DISTINCT ON groups keys as the
// unique index does: in one batch and across batches, under ignore the
// first spelling stays, under update the last one's row wins, in one
// attempt.
func TestDirectNotForKeysUnequalAsBytes(t *testing.T) {
	t.Parallel()
	numeric := func(dscale uint16) []byte { // the value 1
		return binary.BigEndian.AppendUint16([]byte{0, 1, 0, 0, 0, 0}, dscale)
	}
	kinds := []struct {
		name, typ, ddl, stored string // stored: the key as SQL text
		a, b                   []byte
	}{
		{"numeric", "numeric", "numeric", "1", append(numeric(1), 0, 1), append(numeric(2), 0, 1)},
		{"float8", "float8", "float8", "0", fInt8(0), binary.BigEndian.AppendUint64(nil, 1<<63)},
		{"bpchar", "text", "character(3)", "a", fText("a"), fText("a ")},
		{"nondeterministic", "text", "text COLLATE sluice_ci", "i", fText("I"), fText("i")},
	}
	for _, k := range kinds {
		for _, pol := range []Policy{PolicyIgnore, PolicyUpdate} {
			for _, stored := range []bool{false, true} {
				for _, across := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s/%v/stored=%v/across=%v", k.name, pol, stored, across), func(t *testing.T) {
						tbl := &Table{Name: "public.k", Columns: []Column{{Name: "id", SQLType: k.typ}, {Name: "val", SQLType: "text"}},
							Key: []string{"id"}, OnConflict: pol}
						url, c, claims := setup(t, 1)
						if k.name == "nondeterministic" {
							if _, err := c.Exec(testCtx(t), "CREATE COLLATION sluice_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)").ReadAll(); err != nil {
								t.Skipf("no ICU collation here: %v", err)
							}
						}
						mustExec(t, c, "CREATE TABLE k (id "+k.ddl+" PRIMARY KEY, val text)")
						want := "first"
						if stored {
							mustExec(t, c, "INSERT INTO k VALUES ('"+k.stored+"', 'stored')")
							want = "stored"
						}
						if pol == PolicyUpdate {
							want = "second"
						}
						w := newWriter(t, url)
						seen := NewKeyFilter(0)
						write := func(b *builder, from, to int64) {
							t.Helper()
							batch := b.batch(claims[0].Epoch, from, to)
							batch.Seen = seen
							res, err := w.Write(testCtx(t), batch)
							if err != nil || res.Direct || res.Attempts != 1 {
								t.Fatalf("%+v, %v; want one merged attempt", res, err)
							}
						}
						b := newBuilder(tbl, "t", 0)
						b.add(0, k.a, fText("first"))
						if across {
							write(b, -1, 1)
							b = newBuilder(tbl, "t", 0)
						}
						b.add(1, k.b, fText("second"))
						write(b, map[bool]int64{false: -1, true: 1}[across], 2)
						if got := queryRows(t, c, "SELECT val FROM k"); fmt.Sprint(got) != "[["+want+"]]" {
							t.Fatalf("rows %v, want one row %s", got, want)
						}
					})
				}
			}
		}
	}
}

// TestTupleReaderReadsAhead streams more tuples than the reader fetches
// ahead (readAhead), in key order against their order in the batch, so
// the prefetches reach every tuple up to the last one in the buffer.
func TestTupleReaderReadsAhead(t *testing.T) {
	tbl := eventsTable()
	bl := newBuilder(tbl, "t", 0)
	const n = 10*readAhead + 3
	for i := range n {
		bl.add(int64(i), fInt8(int64((i*7919)%n)), fText(strings.Repeat("w", i%97)), nil)
	}
	b := bl.batch(1, -1, n)
	var d directKeys
	if !d.prepare(b, []int{1}) || len(d.sel) != n {
		t.Fatalf("prepare: %d tuples selected, want %d", len(d.sel), n)
	}
	want := AppendHeader(nil)
	for _, i := range d.sel {
		want = AppendTupleHeader(want, 3)
		want = append(want, b.Data[b.start(int(i))+2+seqFieldBytes:b.Ends[i]]...)
	}
	want = AppendTrailer(want)
	d.rd.reset(b, d.sel)
	if got, err := io.ReadAll(&d.rd); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("stream of %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	for j := 1; j < len(d.sel); j++ {
		a, c := d.sel[j-1], d.sel[j]
		if (int(a)*7919)%n >= (int(c)*7919)%n {
			t.Fatalf("tuples %d and %d streamed out of key order", a, c)
		}
	}
}

// TestTupleReader: the stream is the binary COPY framing of the selected
// tuples without their seq field, and prepare keeps the first occurrence
// of each key in key order.
func TestTupleReader(t *testing.T) {
	tbl := eventsTable()
	bl := newBuilder(tbl, "t", 0)
	keys := []int64{5, 3, 5, 9, 3}
	for i, k := range keys {
		bl.add(int64(i), fInt8(k), fText(strings.Repeat("v", i)), nil)
	}
	b := bl.batch(1, -1, 5)
	var d directKeys
	if !d.prepare(b, []int{1}) {
		t.Fatal("prepare refused a well-formed batch")
	}
	if want := []int32{1, 0, 3}; !reflect.DeepEqual(d.sel, want) {
		t.Fatalf("selected %v, want %v", d.sel, want)
	}
	want := AppendHeader(nil)
	for _, i := range d.sel {
		want = AppendTupleHeader(want, 3)
		want = binary.BigEndian.AppendUint32(want, 8)
		want = binary.BigEndian.AppendUint64(want, uint64(keys[i]))
		want = binary.BigEndian.AppendUint32(want, uint32(i))
		want = append(want, strings.Repeat("v", int(i))...)
		want = binary.BigEndian.AppendUint32(want, 0xffffffff)
	}
	want = AppendTrailer(want)
	for _, chunk := range []int{1, 3, 7, 4096} {
		d.rd.reset(b, d.sel)
		var got []byte
		p := make([]byte, chunk)
		for {
			n, err := d.rd.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("chunk %d: stream\n%x\nwant\n%x", chunk, got, want)
		}
	}
	// With ord, each tuple keeps its field count and carries its position
	// in place of the seq: the staging table's rows for the UPDATE.
	want = AppendHeader(nil)
	for j, i := range d.sel {
		want = AppendTupleHeader(want, 4)
		want = AppendInt8Field(want, int64(j+1))
		want = binary.BigEndian.AppendUint32(want, 8)
		want = binary.BigEndian.AppendUint64(want, uint64(keys[i]))
		want = binary.BigEndian.AppendUint32(want, uint32(i))
		want = append(want, strings.Repeat("v", int(i))...)
		want = binary.BigEndian.AppendUint32(want, 0xffffffff)
	}
	want = AppendTrailer(want)
	d.rd.reset(b, d.sel)
	d.rd.ord = true
	if got, err := io.ReadAll(&d.rd); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("with positions: stream\n%x, %v\nwant\n%x", got, err, want)
	}
	d.choose(nil, false) // no filter: every key is probed
	if err := d.dropExisting([][][]byte{{[]byte("2")}}); err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 3}; !reflect.DeepEqual(d.sel, want) {
		t.Fatalf("after dropping position 2: %v, want %v", d.sel, want)
	}
	if err := d.dropExisting([][][]byte{{[]byte("9")}}); err == nil {
		t.Fatal("an out-of-range probe answer was accepted")
	}
	// A NULL key or a tuple without a seq field is left to the merge path.
	bl = newBuilder(tbl, "t", 0)
	bl.add(0, nil, fText("x"), nil)
	if d.prepare(bl.batch(1, -1, 1), []int{1}) {
		t.Fatal("prepare accepted a NULL key")
	}
	if d.prepare(&Batch{Table: tbl, Data: []byte{0, 1, 0, 0, 0, 0}, Ends: []int{6}}, []int{1}) {
		t.Fatal("prepare accepted a tuple without seq")
	}
}

func TestPrepareAllocs(t *testing.T) {
	rb := makeReferenceBatch(2000, 5000)
	b := &Batch{Table: referenceTable("public.events"), Data: rb.keyed, Ends: rb.ends}
	var d directKeys
	var p params
	f := NewKeyFilter(0)
	d.prepare(b, []int{1})
	d.choose(f, false)
	f.add(d.hashes[:len(d.hashes)/2]) // half the keys seen before
	allocs := testing.AllocsPerRun(10, func() {
		for _, optimistic := range []bool{false, true} {
			d.prepare(b, []int{1})
			d.choose(f, optimistic)
			p.reset()
			d.probeArrays(&p, []uint32{2950})
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
	if len(d.sel) != 1990 {
		t.Fatalf("%d distinct keys, want 1990", len(d.sel))
	}
}

// TestWriterSessionSettings: a Writer's session ends itself when its process
// freezes mid-transaction (idle_in_transaction_session_timeout), so a
// zombie cannot hold its partitions' offsets rows against the next owner;
// a setting in the connection string wins.
func TestWriterSessionSettings(t *testing.T) {
	url := newDB(t)
	ctx := testCtx(t)
	show := func(w *Writer) string {
		t.Helper()
		conn, err := w.connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res := conn.ExecParams(ctx, "SHOW idle_in_transaction_session_timeout", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		return string(res.Rows[0][0])
	}
	w := NewWriter(url, "sluice", "g")
	defer w.Close(ctx)
	if got := show(w); got != idleInTransaction {
		t.Errorf("idle_in_transaction_session_timeout = %s, want %s", got, idleInTransaction)
	}
	w2 := NewWriter(url+"&idle_in_transaction_session_timeout=30s", "sluice", "g")
	defer w2.Close(ctx)
	if got := show(w2); got != "30s" {
		t.Errorf("with the connection string's 30s: %s", got)
	}
}

// TestPrepareOrder: whether the encoder cut the keys (Batch.Keys) or
// prepare cuts them, the selection is the first occurrence of each key,
// ordered by the key's first eight value bytes, then the whole key: here
// text keys of every length from 0 to 13 bytes sharing prefixes, and
// duplicates, against a plain sort of the same rule.
func TestPrepareOrder(t *testing.T) {
	tbl := &Table{Name: "public.t", Key: []string{"k"}, OnConflict: PolicyIgnore,
		Columns: []Column{{Name: "v", SQLType: "int8"}, {Name: "k", SQLType: "text"}}}
	rng := rand.New(rand.NewPCG(1, 2))
	bl := newBuilder(tbl, "t", 0)
	var keys []string
	for i := range 3000 {
		k := strings.Repeat("ab", 6)[:rng.IntN(13)] + string(rune('a'+rng.IntN(3)))
		if rng.IntN(10) == 0 {
			k = k[:0]
		}
		keys = append(keys, k)
		bl.add(int64(i), fInt8(int64(i)), fText(k))
	}
	b := bl.batch(1, -1, int64(len(keys)))
	fields := tbl.KeyFields()
	if !reflect.DeepEqual(fields, []int{2}) {
		t.Fatalf("KeyFields %v, want [2]", fields)
	}
	// The reference: first occurrence of each key, sorted by (first 8
	// bytes zero-padded, whole encoded key).
	first := map[string]int32{}
	for i, k := range keys {
		if _, ok := first[k]; !ok {
			first[k] = int32(i)
		}
	}
	var want []int32
	for _, i := range first {
		want = append(want, i)
	}
	enc := func(i int32) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(keys[i]))), keys[i]...)
	}
	pre := func(i int32) []byte {
		var p [8]byte
		copy(p[:], keys[i])
		return p[:]
	}
	slices.SortFunc(want, func(a, b int32) int {
		if c := bytes.Compare(pre(a), pre(b)); c != 0 {
			return c
		}
		return bytes.Compare(enc(a), enc(b))
	})

	var d directKeys
	if !d.prepare(b, fields) {
		t.Fatal("prepare refused the batch")
	}
	if !slices.Equal(d.sel, want) {
		t.Fatalf("cutting its own keys: %d selected, want %d (first difference at %d)", len(d.sel), len(want), firstDiff(d.sel, want))
	}
	for i := range b.Ends {
		var ok bool
		if b.Keys, ok = CutKey(b.Keys, b.Data[b.start(i):b.Ends[i]], fields); !ok {
			t.Fatalf("CutKey refused tuple %d", i)
		}
		b.KeyEnds = append(b.KeyEnds, int32(len(b.Keys)))
	}
	var d2 directKeys
	if !d2.prepare(b, fields) || !slices.Equal(d2.sel, want) {
		t.Fatalf("with the batch's keys: %d selected, want %d (first difference at %d)", len(d2.sel), len(want), firstDiff(d2.sel, want))
	}
	// An empty key entry (a tuple the encoder could not cut) refuses.
	b.KeyEnds[len(b.KeyEnds)-1] = b.KeyEnds[len(b.KeyEnds)-2]
	if d2.prepare(b, fields) {
		t.Fatal("prepare accepted an empty key entry")
	}
}

func firstDiff(a, b []int32) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestDirectKeyFilter: with a KeyFilter the direct path probes only the
// keys committed through it; a key it does not know of that is in the
// table (here: written before a "restart", a fresh Writer and filter)
// makes the optimistic attempt fail and the batch rerun probing every key,
// and the table's next batch probes every key too (the back-off).
func TestDirectKeyFilter(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	ctx := testCtx(t)
	write := func(w *Writer, f *KeyFilter, from, to int64, keys ...int64) Result {
		t.Helper()
		b := newBuilder(tbl, "t", 0)
		for i, k := range keys {
			b.add(from+1+int64(i), fInt8(k), fText(fmt.Sprint("at", from+1+int64(i))), fInt8(from+1+int64(i)))
		}
		batch := b.batch(claims[0].Epoch, from, to)
		batch.Seen = f
		res, err := w.Write(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Direct {
			t.Fatalf("keys %v: not written directly: %+v", keys, res)
		}
		return res
	}
	w, f := newWriter(t, url), NewKeyFilter(0)
	if res := write(w, f, -1, 5, 1, 2, 3, 4, 5); res.ProbedKeys != 0 || res.Attempts != 1 {
		t.Fatalf("first batch, empty filter: %+v", res)
	}
	// Key 3 was committed through the filter: the only one probed.
	if res := write(w, f, 5, 9, 6, 7, 3, 8); res.ProbedKeys != 1 || res.Attempts != 1 || res.Affected != 3 {
		t.Fatalf("second batch: %+v", res)
	}
	// A restart: the new filter knows nothing; key 2 is in the table.
	w2, f2 := newWriter(t, url), NewKeyFilter(0)
	if res := write(w2, f2, 9, 11, 9, 2); res.Attempts != 2 || res.ProbedKeys != 2 || res.Affected != 1 {
		t.Fatalf("batch meeting an unknown existing key: %+v", res)
	}
	// Backing off: the next batch probes every key, though it could skip 10.
	if res := write(w2, f2, 11, 13, 10, 4); res.Attempts != 1 || res.ProbedKeys != 2 || res.Affected != 1 {
		t.Fatalf("batch after the failure: %+v", res)
	}
	wantEvents(t, c, 13, [][]string{{"1", "at0"}, {"2", "at1"}, {"3", "at2"}, {"4", "at3"}, {"5", "at4"},
		{"6", "at6"}, {"7", "at7"}, {"8", "at9"}, {"9", "at10"}, {"10", "at12"}})
}

// TestWriterPrepare: Prepare opens the session and the staging table, and
// the first Write then uses them as they are.
func TestWriterPrepare(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, _, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	ctx := testCtx(t)
	if err := w.Prepare(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	conn := w.conn
	ts := w.tables[tbl]
	if conn == nil || ts == nil || ts.stagedOn != conn {
		t.Fatalf("after Prepare: session %v, staging table on %v", conn, ts)
	}
	stmts := w.hooks.stmts
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(1), fText("a"), fInt8(0))
	if _, err := w.Write(ctx, b.batch(claims[0].Epoch, -1, 1)); err != nil {
		t.Fatal(err)
	}
	if w.conn != conn || ts.stagedOn != conn || w.hooks.stmts-stmts > 3 {
		t.Fatalf("the first Write reconnected or re-created its staging table (%d statements)", w.hooks.stmts-stmts)
	}
}

// TestCutKey: the key fields come out as the tuple holds them, also beyond
// the eighth field; a tuple without its seq field or cut short is refused.
func TestCutKey(t *testing.T) {
	var cols []Column
	for i := range 10 {
		cols = append(cols, Column{Name: fmt.Sprint("c", i), SQLType: "int8"})
	}
	tbl := &Table{Name: "public.wide", Columns: cols, Key: []string{"c9", "c1"}, OnConflict: PolicyIgnore}
	fields := tbl.KeyFields()
	if !slices.Equal(fields, []int{10, 2}) {
		t.Fatalf("KeyFields %v, want [10 2]", fields)
	}
	bl := newBuilder(tbl, "t", 0)
	var vals [][]byte
	for i := range 10 {
		vals = append(vals, fInt8(int64(100+i)))
	}
	bl.add(0, vals...)
	b := bl.batch(1, -1, 1)
	key, ok := CutKey([]byte("x"), b.Data, fields)
	want := append([]byte("x"), append(appendField(nil, fInt8(109)), appendField(nil, fInt8(101))...)...)
	if !ok || !bytes.Equal(key, want) {
		t.Fatalf("CutKey = %x, %v; want %x", key, ok, want)
	}
	if k, ok := CutKey(nil, b.Data[:len(b.Data)-3], fields); ok || len(k) != 0 {
		t.Errorf("a tuple cut short: %x, %v", k, ok)
	}
	if k, ok := CutKey(nil, []byte{0, 1, 0, 0, 0, 0}, []int{1}); ok || len(k) != 0 {
		t.Errorf("a tuple without seq: %x, %v", k, ok)
	}
}

// TestDirectUpdate: under on_conflict update the direct path copies new
// keys straight in and sends the stored keys' winners through the merge:
// within the batch the highest guard wins, then the last; a stored row
// with a higher guard is kept.
func TestDirectUpdate(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	tbl.OnConflict = PolicyUpdate
	url, c, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	mustExec(t, c, `INSERT INTO events VALUES (1, 'stored', 5), (2, 'stored newer', 100), (3, 'stored', 5)`)
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(1), fText("old"), fInt8(10))
	b.add(1, fInt8(1), fText("new"), fInt8(30))
	b.add(2, fInt8(1), fText("replayed"), fInt8(20)) // lower guard, later: loses
	b.add(3, fInt8(2), fText("stale"), fInt8(50))    // the stored row is newer
	b.add(4, fInt8(3), fText("updated"), fInt8(6))
	b.add(5, fInt8(4), fText("first"), fInt8(7))
	b.add(6, fInt8(4), fText("second"), fInt8(8))
	res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 7))
	if err != nil || !res.Direct || res.Distinct != 4 {
		t.Fatalf("%+v, %v; want a direct batch of 4 distinct keys", res, err)
	}
	got := queryRows(t, c, "SELECT id, val, off FROM events ORDER BY id")
	want := "[[1 new 30] [2 stored newer 100] [3 updated 6] [4 second 8]]"
	if fmt.Sprint(got) != want {
		t.Fatalf("rows %v, want %s", got, want)
	}
}

// TestDirectUpdateGuardTies: among a key's occurrences in one batch the
// direct path keeps the one the staging merge keeps (guard DESC NULLS
// LAST, then the last): of equal highest guards the last, of NULL guards
// only the last, a guard over any NULL.
func TestDirectUpdateGuardTies(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	tbl.OnConflict = PolicyUpdate
	b := newBuilder(tbl, "t", 0)
	for i, r := range []struct {
		id    int64
		val   string
		guard []byte
	}{
		{1, "a", fInt8(5)}, {1, "b", fInt8(5)}, {1, "c", fInt8(3)},
		{2, "a", nil}, {2, "b", nil},
		{3, "a", nil}, {3, "b", fInt8(1)}, {3, "c", nil},
		{4, "a", fInt8(7)}, {4, "b", fInt8(9)}, {4, "c", fInt8(9)}, {4, "d", fInt8(2)},
		{5, "a", fInt8(4)}, {5, "b", fInt8(4)},
	} {
		b.add(int64(i), fInt8(r.id), fText(r.val), r.guard)
	}
	batch := b.batch(1, -1, 14)
	var d directKeys
	if !d.prepareWinners(batch, []int{1}, true, 3) {
		t.Fatal("prepareWinners refused the batch")
	}
	var got []string
	for _, i := range d.sel {
		tup := batch.Data[batch.start(int(i)):batch.Ends[i]]
		id, _ := TupleInt8(tup, 1)
		got = append(got, fmt.Sprint(id, "=", i))
	}
	// Offsets 1 (1 b), 4 (2 b), 6 (3 b), 10 (4 c), 13 (5 b).
	if want := "[1=1 2=4 3=6 4=10 5=13]"; fmt.Sprint(got) != want {
		t.Fatalf("winners %v, want %s", got, want)
	}
}

// TestDirectUpdateGuards: the stored keys of an on_conflict update batch
// are updated under the guard, with the keys probed first (no KeyFilter)
// and with the UPDATE finding them (a KeyFilter that knows them): a higher
// guard replaces the stored row, a lower or equal one does not, a stored
// row without a guard is older than anything, an incoming row without
// one never replaces a guarded row; a key the filter only thinks it holds
// (a false positive) is inserted.
func TestDirectUpdateGuards(t *testing.T) {
	t.Parallel()
	for _, optimistic := range []bool{false, true} {
		t.Run(fmt.Sprint("optimistic=", optimistic), func(t *testing.T) {
			tbl := eventsTable()
			tbl.OnConflict = PolicyUpdate
			url, c, claims := setup(t, 1, tbl)
			w := newWriter(t, url)
			var seen *KeyFilter
			if optimistic {
				seen = NewKeyFilter(0)
			}
			b := newBuilder(tbl, "t", 0)
			for _, r := range []struct {
				id    int64
				guard []byte
			}{{1, fInt8(5)}, {2, fInt8(100)}, {3, fInt8(5)}, {4, nil}, {5, fInt8(5)}} {
				b.add(r.id-1, fInt8(r.id), fText("stored"), r.guard)
			}
			first := b.batch(claims[0].Epoch, -1, 5)
			first.Seen = seen
			if res, err := w.Write(testCtx(t), first); err != nil || !res.Direct || res.Affected != 5 {
				t.Fatalf("first batch: %+v, %v", res, err)
			}
			if optimistic {
				// Key 7 is not stored, but the filter may hold it.
				seen.add([]uint64{seen.hash(appendField(nil, fInt8(7)))})
			}
			b = newBuilder(tbl, "t", 0)
			b.add(5, fInt8(1), fText("higher"), fInt8(30))
			b.add(6, fInt8(2), fText("lower"), fInt8(50))
			b.add(7, fInt8(3), fText("equal"), fInt8(5))
			b.add(8, fInt8(4), fText("over a stored NULL"), fInt8(1))
			b.add(9, fInt8(5), fText("NULL guard"), nil)
			b.add(10, fInt8(6), fText("new"), fInt8(7))
			b.add(11, fInt8(7), fText("new, filter false positive"), fInt8(8))
			second := b.batch(claims[0].Epoch, 5, 12)
			second.Seen = seen
			res, err := w.Write(testCtx(t), second)
			if err != nil {
				t.Fatal(err)
			}
			// Updated 1 and 4, inserted 6 and 7. Probed: without a filter
			// every key first, then the three the UPDATE left (2, 3, 5);
			// with it, only the four it left (and 7).
			probed := 10
			if optimistic {
				probed = 4
			}
			if !res.Direct || res.Attempts != 1 || res.Affected != 4 || res.ProbedKeys != probed {
				t.Fatalf("second batch: %+v; want one direct attempt, 4 rows affected, %d keys probed", res, probed)
			}
			got := queryRows(t, c, "SELECT id, val, coalesce(off::text, 'NULL') FROM events ORDER BY id")
			want := "[[1 higher 30] [2 stored 100] [3 stored 5] [4 over a stored NULL 1] [5 stored 5] [6 new 7] [7 new, filter false positive 8]]"
			if fmt.Sprint(got) != want {
				t.Fatalf("rows %v\nwant %s", got, want)
			}
			if o := offsetsOf(t, c); o[0].NextOffset != 12 {
				t.Fatalf("offsets %+v", o)
			}
		})
	}
}

// TestDirectUpdateWithoutGuard: without a guard column the batch's last
// occurrence of a key replaces the stored row; a table whose every column
// is in the key keeps its stored keys (nothing to update).
func TestDirectUpdateWithoutGuard(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	tbl.OnConflict = PolicyUpdate
	tbl.OffsetColumn = ""
	keys := &Table{Name: "public.keys", Columns: []Column{{Name: "id", SQLType: "int8"}}, Key: []string{"id"},
		OnConflict: PolicyUpdate, Create: true}
	url, c, claims := setup(t, 2, tbl, keys)
	w := newWriter(t, url)
	seen, seenKeys := NewKeyFilter(0), NewKeyFilter(0)
	from := int64(-1)
	for i, vals := range [][]string{{"a", "b"}, {"c", "d"}} {
		off := int64(2 * i)
		b := newBuilder(tbl, "t", 0)
		b.add(off, fInt8(1), fText(vals[0]), fInt8(9))
		b.add(off+1, fInt8(1), fText(vals[1]), fInt8(1))
		batch := b.batch(claims[0].Epoch, from, off+2)
		batch.Seen = seen
		if res, err := w.Write(testCtx(t), batch); err != nil || !res.Direct || res.Affected != 1 {
			t.Fatalf("batch %d: %+v, %v", i, res, err)
		}
		k := newBuilder(keys, "t", 1)
		k.add(off, fInt8(1))
		k.add(off+1, fInt8(int64(2+i)))
		kb := k.batch(claims[1].Epoch, from, off+2)
		kb.Seen = seenKeys
		from = off + 2
		if res, err := w.Write(testCtx(t), kb); err != nil || !res.Direct || res.Attempts != 1 {
			t.Fatalf("keys batch %d: %+v, %v", i, res, err)
		}
	}
	if got := queryRows(t, c, "SELECT id, val, off FROM events"); fmt.Sprint(got) != "[[1 d 1]]" {
		t.Fatalf("rows %v, want the last occurrence", got)
	}
	if got := queryRows(t, c, "SELECT id FROM keys ORDER BY id"); fmt.Sprint(got) != "[[1] [2] [3]]" {
		t.Fatalf("keys %v", got)
	}
}

// TestDirectUpdateRerunsOnConcurrentKey: keys another transaction inserts
// after the batch began make its COPY fail with a unique violation once
// that transaction commits; the rerun finds them and updates them under
// the guard: the concurrent row with the higher guard stays, the other is
// replaced.
func TestDirectUpdateRerunsOnConcurrentKey(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	tbl.OnConflict = PolicyUpdate
	url, c, claims := setup(t, 1, tbl)
	w, pid := connectedWriter(t, url)
	other := connect(t, url)
	mustExec(t, other, "BEGIN; INSERT INTO events VALUES (7, 'other', 100), (8, 'other', 1)")
	b := newBuilder(tbl, "t", 0)
	for i := range 20 {
		b.add(int64(i), fInt8(int64(i)), fText("w"), fInt8(int64(10+i)))
	}
	batch := b.batch(claims[0].Epoch, -1, 20)
	batch.Seen = NewKeyFilter(0)
	errc := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = w.Write(testCtx(t), batch)
		errc <- err
	}()
	waitLocked(t, c, pid)
	mustExec(t, other, "COMMIT")
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !res.Direct || res.Attempts != 2 || res.Affected != 19 {
		t.Fatalf("result %+v: want a second, direct attempt writing 19 rows", res)
	}
	got := queryRows(t, c, "SELECT id, val, off FROM events WHERE id IN (7, 8) ORDER BY id")
	if fmt.Sprint(got) != "[[7 other 100] [8 w 18]]" {
		t.Fatalf("concurrent keys %v", got)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 20 {
		t.Fatalf("%d rows, want 20", n)
	}
}

// TestDirectUpdateLeftKeyStoredMeanwhile: a key the filter may hold but
// that is not stored is left by the optimistic batch's UPDATE; another
// process commits it, with a lower guard (or, without a guard column, at
// all), before the probe of the keys the UPDATE left. The batch's newer
// row must win: the batch reruns probing every key and updates it. A
// stored row with a higher guard found there still stays.
func TestDirectUpdateLeftKeyStoredMeanwhile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		guard  bool
		stored int64 // the other process's guard
		want   string
		reruns bool
	}{
		{name: "lower guard", guard: true, stored: 10, want: "[[7 w 50]]", reruns: true},
		{name: "higher guard", guard: true, stored: 90, want: "[[7 other 90]]"},
		{name: "no guard", want: "[[7 w 50]]", reruns: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tbl := eventsTable()
			tbl.OnConflict = PolicyUpdate
			if !tc.guard {
				tbl.OffsetColumn = ""
			}
			url, c, claims := setup(t, 1, tbl)
			w := newWriter(t, url)
			other := connect(t, url)
			seen := NewKeyFilter(0)
			seen.add([]uint64{seen.hash(appendField(nil, fInt8(7)))})
			probes := 0
			w.hooks.beforeLeftProbe = func() {
				if probes++; probes == 1 {
					mustExec(t, other, fmt.Sprintf("INSERT INTO events VALUES (7, 'other', %d)", tc.stored))
				}
			}
			b := newBuilder(tbl, "t", 0)
			b.add(0, fInt8(7), fText("w"), fInt8(50))
			b.add(1, fInt8(8), fText("w"), fInt8(51))
			batch := b.batch(claims[0].Epoch, -1, 2)
			batch.Seen = seen
			res, err := w.Write(testCtx(t), batch)
			if err != nil {
				t.Fatal(err)
			}
			if probes == 0 {
				t.Fatal("the UPDATE left no key to probe")
			}
			if got := queryRows(t, c, "SELECT id, val, coalesce(off, 0) FROM events WHERE id = 7"); fmt.Sprint(got) != tc.want {
				t.Fatalf("key 7: %v, want %s", got, tc.want)
			}
			if attempts := map[bool]int{false: 1, true: 2}[tc.reruns]; !res.Direct || res.Attempts != attempts {
				t.Fatalf("result %+v: want %d direct attempts", res, attempts)
			}
			if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 2 {
				t.Fatalf("%d rows, want 2", n)
			}
		})
	}
}

// TestDirectUpdateConcurrentWriters: writers of different processes (each
// with its own KeyFilter, so none knows the others' keys) update the same
// keys at once; every key ends holding its highest guard written, and
// the writers' batches all commit.
func TestDirectUpdateConcurrentWriters(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	tbl.OnConflict = PolicyUpdate
	url, c, claims := setup(t, 3, tbl)
	const batches, rows, keys = 12, 150, 200
	var guard atomic.Int64
	var mu sync.Mutex
	best := map[int64]int64{}
	attempts, deadlocks := 0, 0
	var wg sync.WaitGroup
	errs := make(chan error, len(claims))
	for _, cl := range claims {
		wg.Go(func() {
			w := NewWriter(url, "sluice", "g")
			w.hooks = &hooks{}
			defer w.Close(context.Background())
			defer func() { mu.Lock(); deadlocks += w.hooks.conflicts; mu.Unlock() }()
			seen := NewKeyFilter(0)
			rng := rand.New(rand.NewPCG(uint64(cl.Partition), 7))
			from := int64(-1)
			for range batches {
				b := newBuilder(tbl, "t", cl.Partition)
				off := max(from, 0)
				var written [][2]int64
				for range rows {
					k, g := int64(rng.IntN(keys)), guard.Add(1)
					b.add(off, fInt8(k), fText(fmt.Sprint("g", g)), fInt8(g))
					written = append(written, [2]int64{k, g})
					off++
				}
				batch := b.batch(cl.Epoch, from, off)
				batch.Seen = seen
				res, err := w.Write(testCtx(t), batch)
				if err != nil {
					errs <- err
					return
				}
				if !res.Direct {
					errs <- fmt.Errorf("partition %d: a batch went through the merge: %+v", cl.Partition, res)
					return
				}
				mu.Lock()
				attempts += res.Attempts - 1
				for _, kg := range written {
					best[kg[0]] = max(best[kg[0]], kg[1])
				}
				mu.Unlock()
				from = off
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := queryRows(t, c, "SELECT id, val, off FROM events ORDER BY id")
	if len(got) != len(best) {
		t.Fatalf("%d rows for %d keys written", len(got), len(best))
	}
	for _, r := range got {
		id, _ := strconv.ParseInt(r[0], 10, 64)
		if want := best[id]; r[2] != fmt.Sprint(want) || r[1] != fmt.Sprint("g", want) {
			t.Fatalf("key %d holds %v, want guard %d", id, r, want)
		}
	}
	for _, o := range offsetsOf(t, c) {
		if o.NextOffset != batches*rows {
			t.Fatalf("offsets %+v", o)
		}
	}
	t.Logf("%d transactions rerun, %d after deadlocks", attempts, deadlocks)
}

// TestDirectUpdateRejectsRow: a stored row the UPDATE may not write (a
// CHECK constraint) fails the direct attempt; the careful rerun makes its
// tuple a dead letter and lands the rest.
func TestDirectUpdateRejectsRow(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	tbl.OnConflict = PolicyUpdate
	url, c, claims := setup(t, 1, tbl)
	mustExec(t, c, "ALTER TABLE events ADD CONSTRAINT val_ok CHECK (val <> 'bad'); INSERT INTO events VALUES (1, 'stored', 0), (2, 'stored', 0)")
	w := newWriter(t, url)
	seen := NewKeyFilter(0)
	seen.add([]uint64{seen.hash(appendField(nil, fInt8(1))), seen.hash(appendField(nil, fInt8(2)))})
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(1), fText("bad"), fInt8(10))
	b.add(1, fInt8(2), fText("good"), fInt8(11))
	b.add(2, fInt8(3), fText("new"), fInt8(12))
	batch := b.batch(claims[0].Epoch, -1, 3)
	batch.Seen = seen
	res, err := w.Write(testCtx(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Offset != 0 || !strings.Contains(res.Rejected[0].Error, "val_ok") {
		t.Fatalf("result %+v: want the update of key 1 rejected", res)
	}
	if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); fmt.Sprint(got) != "[[1 stored] [2 good] [3 new]]" {
		t.Fatalf("rows %v", got)
	}
}
