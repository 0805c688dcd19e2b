package pgcopy

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// docsTable is a keyed target with two value columns that a change event
// may leave out: id, a, b, off (the guard).
func docsTable(name string, p Policy) *Table {
	return &Table{
		Name:         name,
		Columns:      []Column{{Name: "id", SQLType: "int8"}, {Name: "a", SQLType: "text"}, {Name: "b", SQLType: "text"}, {Name: "off", SQLType: "int8"}},
		Key:          []string{"id"},
		OnConflict:   p,
		OffsetColumn: "off",
		Create:       true,
	}
}

// change is one tuple of a docs batch. A delete carries id and off only.
type change struct {
	op        RowOp
	id        int64
	a, b      string // "" is NULL
	unchanged uint64 // bit 1: a, bit 2: b
	nullOff   bool   // off is NULL instead of the Kafka offset
}

func del(id int64) change             { return change{op: RowDelete, id: id} }
func up(id int64, a, b string) change { return change{id: id, a: a, b: b} }
func keep(id int64, a, b string, m uint64) change {
	return change{id: id, a: a, b: b, unchanged: m}
}

const (
	keepA = 1 << 1
	keepB = 1 << 2
)

func nullable(s string) []byte {
	if s == "" {
		return nil
	}
	return fText(s)
}

// docsWriter writes batches of changes to one partition of a docs table,
// each tuple's off being its Kafka offset.
type docsWriter struct {
	t     *testing.T
	w     *Writer
	tbl   *Table
	part  int32
	epoch int64
	next  int64 // -1 before the first batch, whose offsets start at base
	base  int64
}

// batch builds the changes at offsets next, next+1, …
func (d *docsWriter) batch(cs ...change) *Batch {
	b := newBuilder(d.tbl, "t", d.part)
	off := d.next
	if off < 0 {
		off = d.base
	}
	var ops []RowOp
	var unch []uint64
	for _, c := range cs {
		o := fInt8(off)
		if c.nullOff {
			o = nil
		}
		if c.op == RowDelete {
			b.add(off, fInt8(c.id), nil, nil, o)
		} else {
			b.add(off, fInt8(c.id), nullable(c.a), nullable(c.b), o)
		}
		ops = append(ops, c.op)
		unch = append(unch, c.unchanged)
		off++
	}
	batch := b.batch(d.epoch, d.next, off)
	batch.Ops, batch.Unchanged = ops, unch
	return batch
}

func (d *docsWriter) write(cs ...change) Result {
	d.t.Helper()
	b := d.batch(cs...)
	res, err := d.w.Write(testCtx(d.t), b)
	if err != nil {
		d.t.Fatal(err)
	}
	d.next = b.Ranges[0].To
	return res
}

func dump(t *testing.T, d *docsWriter, table string) string {
	t.Helper()
	c := connect(t, d.w.connString)
	var out []string
	for _, r := range queryRows(t, c, "SELECT id, coalesce(a, '-'), coalesce(b, '-') FROM "+table+" ORDER BY id") {
		out = append(out, r[0]+"="+r[1]+","+r[2])
	}
	return strings.Join(out, " ")
}

func TestOpsWithinBatch(t *testing.T) {
	t.Parallel()
	// Keys 1-9 are stored before the batch, 11-19 are not.
	stored := []change{up(1, "s", "s"), up(2, "s", "s"), up(3, "s", "s"), up(4, "s", "s"), up(5, "s", "s"), up(6, "s", "s")}
	batch := []change{
		up(1, "u", "u"), del(1), // upsert then delete
		del(2), up(2, "u", "u"), // delete then upsert
		del(3), del(3), // delete twice
		up(4, "u1", "u1"), del(4), up(4, "u2", "u2"), up(4, "u3", "u3"), // upsert-delete-upsert-upsert
		up(5, "u1", "u1"), up(5, "u2", "u2"), // no delete: as before
		keep(6, "", "u", keepA),   // keeps a under update
		del(11),                   // delete of a missing key
		up(12, "u", "u"), del(12), // upsert then delete, new key
		del(13), up(13, "u1", "u1"), up(13, "u2", "u2"), // delete then upserts, new key
		keep(14, "", "u", keepA|keepB), // inserted: NULL as sent
	}
	for _, tc := range []struct {
		p       Policy
		want    string
		deleted int64
	}{
		{PolicyIgnore, "2=u,u 4=u2,u2 5=s,s 6=s,s 13=u1,u1 14=-,u", 4},
		{PolicyUpdate, "2=u,u 4=u3,u3 5=u2,u2 6=s,u 13=u2,u2 14=-,u", 4},
	} {
		t.Run(tc.p.String(), func(t *testing.T) {
			tbl := docsTable("docs", tc.p)
			url, _, claims := setup(t, 1, tbl)
			d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
			d.write(stored...)
			res := d.write(batch...)
			if got := dump(t, d, "docs"); got != tc.want {
				t.Errorf("rows\n got %s\nwant %s", got, tc.want)
			}
			// Keys 1, 2, 3 and 4 had stored rows and a delete.
			if res.Deleted != tc.deleted || res.Direct || res.Rows != len(batch) || res.Distinct != 10 {
				t.Errorf("result %+v", res)
			}
		})
	}
}

// TestOpsLockOrder checks the plans of the lock: rows are locked above the
// sort by the staged key, i.e. in key order, and a large target is probed
// by its index, not scanned.
func TestOpsLockOrder(t *testing.T) {
	t.Parallel()
	tbl := docsTable("docs", PolicyUpdate)
	url, c, claims := setup(t, 1, tbl)
	d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
	d.write(del(1))
	ts := d.w.tables[tbl]
	explain := func(sql string) string {
		t.Helper()
		r, err := d.w.conn.Exec(testCtx(t), "EXPLAIN (COSTS OFF) "+sql).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for _, row := range r[len(r)-1].Rows {
			plan = append(plan, string(row[0]))
		}
		return strings.Join(plan, "\n")
	}
	// The plans of the writer's own session, where its ops stage lives,
	// with 100 keys staged.
	fill := "BEGIN; INSERT INTO " + ts.ops.stage + " SELECT g, g % 2, 0, g, 'x', 'x', g FROM generate_series(1, 100) g"
	for _, large := range []bool{false, true} {
		if large {
			mustExec(t, c, "INSERT INTO docs SELECT g, 'x', 'x', 0 FROM generate_series(1, 300000) g; ANALYZE docs")
		}
		if err := execSimple(testCtx(t), d.w.conn, fill); err != nil {
			t.Fatal(err)
		}
		text := explain(ts.ops.lock)
		lock, sort := strings.Index(text, "LockRows"), strings.Index(text, "Sort Key: s.id")
		if lock < 0 || sort < lock {
			t.Errorf("rows are not locked in key order:\n%s", text)
		}
		if large && strings.Contains(text, "Seq Scan on docs") {
			t.Errorf("the lock scans the whole target:\n%s", text)
		}
		for _, stmt := range strings.Split(ts.ops.statements(true, true, true, 0, 0).sql, "; ") {
			if text := explain(stmt); large && strings.Contains(text, "Seq Scan on docs") {
				t.Errorf("%s\nscans the whole target:\n%s", stmt, text)
			}
		}
		mustExec(t, d.w.conn, "ROLLBACK")
	}
}

// docsModel is what a docs table should hold: id -> row.
type docsModel map[int64]docRow

type docRow struct {
	a, b string // "" is NULL
	off  int64
}

// apply applies a batch of changes at offsets from off on, per key in
// order, as the package comment specifies.
func (m docsModel) apply(cs []change, off int64, p Policy, guard, truncate bool) {
	if truncate {
		clear(m)
	}
	byKey := map[int64][]int{}
	var keys []int64
	for i, c := range cs {
		if byKey[c.id] == nil {
			keys = append(keys, c.id)
		}
		byKey[c.id] = append(byKey[c.id], i)
	}
	for _, k := range keys {
		idx := byKey[k]
		lastDel := -1
		for j, i := range idx {
			if cs[i].op == RowDelete {
				lastDel = j
			}
		}
		row, ok := m[k]
		if lastDel >= 0 && ok && (!guard || row.off < off+int64(idx[lastDel])) {
			delete(m, k)
			ok = false
		}
		cand := idx[lastDel+1:]
		if len(cand) == 0 {
			continue
		}
		w := cand[0]
		if p == PolicyUpdate {
			w = cand[len(cand)-1]
		}
		c, woff := cs[w], off+int64(w)
		switch {
		case !ok:
			m[k] = docRow{c.a, c.b, woff}
		case p == PolicyUpdate && (!guard || row.off < woff):
			if c.unchanged&keepA == 0 {
				row.a = c.a
			}
			if c.unchanged&keepB == 0 {
				row.b = c.b
			}
			row.off = woff
			m[k] = row
		}
	}
}

func (m docsModel) String() string {
	var ids []int64
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []string
	for _, id := range ids {
		r := m[id]
		out = append(out, fmt.Sprintf("%d=%s,%s", id, cmp.Or(r.a, "-"), cmp.Or(r.b, "-")))
	}
	return strings.Join(out, " ")
}

// TestOpsModel writes random batches of deletes, upserts and upserts
// keeping stored values, some truncating first and some plain, and checks
// the target against docsModel after each; every batch is then written
// again and must be recognised as a replay that changes nothing.
func TestOpsModel(t *testing.T) {
	t.Parallel()
	for _, p := range []Policy{PolicyIgnore, PolicyUpdate} {
		for _, guard := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/guard=%v", p, guard), func(t *testing.T) {
				tbl := docsTable("docs", p)
				if !guard {
					tbl.OffsetColumn = ""
				}
				url, _, claims := setup(t, 1, tbl)
				d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
				rng := rand.New(rand.NewPCG(uint64(p), 7))
				model := docsModel{}
				paths := map[string]int{}
				for range 40 {
					var cs []change
					plain := rng.IntN(5) == 0
					for range 1 + rng.IntN(25) {
						id := int64(rng.IntN(12))
						v := func() string {
							if rng.IntN(6) == 0 {
								return ""
							}
							return fmt.Sprint("v", rng.IntN(1000))
						}
						switch r := rng.IntN(10); {
						case plain || r >= 5:
							cs = append(cs, up(id, v(), v()))
						case r < 3:
							cs = append(cs, del(id))
						default:
							cs = append(cs, keep(id, v(), v(), uint64(1+rng.IntN(3))<<1))
						}
					}
					b := d.batch(cs...)
					b.Truncate = rng.IntN(10) == 0
					if plain {
						b.Ops, b.Unchanged = nil, nil
					}
					res, err := d.w.Write(testCtx(t), b)
					if err != nil {
						t.Fatal(err)
					}
					model.apply(cs, max(d.next, 0), p, guard, b.Truncate)
					d.next = b.Ranges[0].To
					switch {
					case res.Direct:
						paths["direct"]++
					case plain:
						paths["merge"]++
					default:
						paths["ops"]++
					}
					want := model.String()
					if got := dump(t, d, "docs"); got != want {
						t.Fatalf("after batch %v (truncate %v):\n got %s\nwant %s", cs, b.Truncate, got, want)
					}
					res, err = d.w.Write(testCtx(t), b)
					if err != nil || !res.Replayed || res.Deleted != -1 {
						t.Fatalf("replay: %+v, %v", res, err)
					}
					if got := dump(t, d, "docs"); got != want {
						t.Fatalf("the replay changed the target:\n got %s\nwant %s", got, want)
					}
				}
				t.Logf("paths %v", paths)
				if paths["ops"] == 0 || paths["merge"]+paths["direct"] == 0 {
					t.Errorf("paths %v: not every path was taken", paths)
				}
			})
		}
	}
}

// TestOpsGuard checks that a delete removes a stored row only when the
// row's OffsetColumn is lower than the delete's, or either is NULL, and
// that upserts keep their guard after an ignored delete.
func TestOpsGuard(t *testing.T) {
	t.Parallel()
	for _, p := range []Policy{PolicyIgnore, PolicyUpdate} {
		t.Run(p.String(), func(t *testing.T) {
			tbl := docsTable("docs", p)
			url, c, claims := setup(t, 2, tbl)
			w := newWriter(t, url)
			// Partition 1 is ahead: its rows carry offsets from 1000.
			newer := &docsWriter{t: t, w: w, tbl: tbl, part: 1, epoch: claims[1].Epoch, next: -1, base: 1000}
			older := &docsWriter{t: t, w: w, tbl: tbl, epoch: claims[0].Epoch, next: -1}
			newer.write(up(1, "new", "new"), up(2, "new", "new"), up(3, "new", "new"))
			mustExec(t, c, "INSERT INTO docs VALUES (4, 'null', 'null', NULL)")
			res := older.write(
				del(1),                      // older: ignored
				del(2), up(2, "old", "old"), // older delete and upsert: both ignored
				change{op: RowDelete, id: 3, nullOff: true}, // no offset: deletes
				del(4), // stored without offset: deleted
			)
			if res.Deleted != 2 {
				t.Errorf("deleted %d, want 2", res.Deleted)
			}
			if got, want := dump(t, older, "docs"), "1=new,new 2=new,new"; got != want {
				t.Errorf("rows %s, want %s", got, want)
			}
			// A newer delete removes the row.
			res = newer.write(del(1))
			if got, want := dump(t, older, "docs"), "2=new,new"; got != want || res.Deleted != 1 {
				t.Errorf("rows %s, want %s; result %+v", got, want, res)
			}
		})
	}
}

// TestOpsUnchanged checks that marked columns keep their stored values on
// update, across batches, and are NULL (as sent) on insert.
func TestOpsUnchanged(t *testing.T) {
	t.Parallel()
	tbl := docsTable("docs", PolicyUpdate)
	url, _, claims := setup(t, 2, tbl)
	w := newWriter(t, url)
	d := &docsWriter{t: t, w: w, tbl: tbl, epoch: claims[0].Epoch, next: -1}
	step := func(want string, cs ...change) Result {
		t.Helper()
		res := d.write(cs...)
		if got := dump(t, d, "docs"); got != want {
			t.Fatalf("after %v:\n got %s\nwant %s", cs, got, want)
		}
		return res
	}
	step("1=A,B 2=A,B", up(1, "A", "B"), up(2, "A", "B"))
	res := step("1=A,B2 2=A2,B", keep(1, "", "B2", keepA), keep(2, "A2", "", keepB))
	if res.Affected != 2 || res.Deleted != 0 {
		t.Errorf("result %+v", res)
	}
	// The last upsert of a key wins, with its own marks.
	step("1=A3,B2 2=A2,B", keep(1, "x", "y", keepA), keep(1, "A3", "", keepB))
	// Marks on a key column are ignored; a new key takes the values sent.
	step("1=A4,B2 2=A2,B 3=-,B", keep(1, "A4", "", keepB|1), keep(3, "", "B", keepA))
	// After a delete in the same batch the winner is inserted as sent.
	step("1=-,B5 2=A2,B 3=-,B", del(1), keep(1, "", "B5", keepA))
	// A mark with no stored row left to keep from, then a plain upsert.
	step("1=-,B5 2=A6,B6 3=-,B", keep(2, "A6", "", keepB), up(2, "A6", "B6"))
	// An older update keeping values is refused by the guard like any other.
	old := &docsWriter{t: t, w: w, tbl: tbl, part: 1, epoch: claims[1].Epoch, next: -1}
	old.write(keep(2, "old", "", keepB), keep(3, "", "old", keepA))
	if got, want := dump(t, d, "docs"), "1=-,B5 2=A6,B6 3=-,B"; got != want {
		t.Errorf("after an older update: %s, want %s", got, want)
	}
	// Under PolicyIgnore stored rows are kept whatever the marks say.
	ign := docsTable("ign", PolicyIgnore)
	if err := Migrate(testCtx(t), connect(t, url), "sluice", []*Table{ign}); err != nil {
		t.Fatal(err)
	}
	i := &docsWriter{t: t, w: w, tbl: ign, part: 1, epoch: claims[1].Epoch, next: old.next}
	i.write(up(1, "A", "B"))
	i.write(keep(1, "", "x", keepA), keep(2, "", "B", keepA))
	if got, want := dump(t, i, "ign"), "1=A,B 2=-,B"; got != want {
		t.Errorf("ignore: %s, want %s", got, want)
	}
}

// TestOpsTruncate checks that a truncating batch empties the target before
// its rows land, on a keyed table whose plain batches take the direct path
// and on a keyless one; that its replay truncates nothing; and that a
// fenced one changes nothing.
func TestOpsTruncate(t *testing.T) {
	t.Parallel()
	tbl := docsTable("docs", PolicyIgnore)
	logs := &Table{Name: "logs", Columns: []Column{{Name: "line", SQLType: "text"}}, Create: true}
	url, c, claims := setup(t, 2, tbl, logs)
	w := newWriter(t, url)
	d := &docsWriter{t: t, w: w, tbl: tbl, epoch: claims[0].Epoch, next: -1}
	if res := d.write(up(1, "s", "s"), up(2, "s", "s"), up(3, "s", "s")); !res.Direct {
		t.Fatalf("the plain batch did not take the direct path: %+v", res)
	}
	b := d.batch(up(1, "new", "new"), up(4, "new", "new"), del(4), up(5, "new", "new"))
	b.Truncate = true
	res, err := w.Write(testCtx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if res.Direct || res.Deleted != 0 {
		t.Errorf("result %+v", res)
	}
	d.next = b.Ranges[0].To
	if got, want := dump(t, d, "docs"), "1=new,new 5=new,new"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	// Plain upserts after a truncate, in the same batch.
	b2 := d.batch(up(2, "p", "p"))
	b2.Ops, b2.Unchanged, b2.Truncate = nil, nil, true
	if _, err := w.Write(testCtx(t), b2); err != nil {
		t.Fatal(err)
	}
	d.next = b2.Ranges[0].To
	mustExec(t, c, "INSERT INTO docs VALUES (7, 'later', 'later', 0)")
	// The replay of a committed truncate truncates nothing.
	if res, err := w.Write(testCtx(t), b2); err != nil || !res.Replayed {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if got, want := dump(t, d, "docs"), "2=p,p 7=later,later"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	// Only a truncate, on a keyless table.
	lb := newBuilder(logs, "t", 1)
	lb.add(0, fText("a"))
	if _, err := w.Write(testCtx(t), lb.batch(claims[1].Epoch, -1, 1)); err != nil {
		t.Fatal(err)
	}
	lb = newBuilder(logs, "t", 1)
	lb.add(1, fText("b"))
	lt := lb.batch(claims[1].Epoch, 1, 2)
	lt.Truncate = true
	lt.Unchanged = []uint64{1} // means nothing to an insert
	if _, err := w.Write(testCtx(t), lt); err != nil {
		t.Fatal(err)
	}
	if got := queryRows(t, c, "SELECT line FROM logs"); !reflect.DeepEqual(got, [][]string{{"b"}}) {
		t.Fatalf("logs %v", got)
	}
	// A stale owner's truncate and deletes change nothing.
	if _, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {0}}); err != nil {
		t.Fatal(err)
	}
	stale := d.batch(del(2), up(8, "stale", "stale"))
	stale.Truncate = true
	_, err = w.Write(testCtx(t), stale)
	var fe *FencedError
	if !errors.As(err, &fe) {
		t.Fatalf("stale owner: %v", err)
	}
	if got, want := dump(t, d, "docs"), "2=p,p 7=later,later"; got != want {
		t.Fatalf("a fenced batch changed the rows: %s, want %s", got, want)
	}
}

// TestOpsReplay checks that a committed ops batch written again is a
// replay that deletes nothing, and that once a later batch committed it is
// fenced and deletes nothing either.
func TestOpsReplay(t *testing.T) {
	t.Parallel()
	tbl := docsTable("docs", PolicyUpdate)
	url, c, claims := setup(t, 1, tbl)
	d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
	d.write(up(1, "a", "a"), up(2, "a", "a"))
	b := d.batch(del(1), keep(2, "", "b", keepA))
	if res, err := d.w.Write(testCtx(t), b); err != nil || res.Deleted != 1 || res.Affected != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	d.next = b.Ranges[0].To
	mustExec(t, c, "INSERT INTO docs VALUES (1, 'back', 'back', 0)")
	res, err := d.w.Write(testCtx(t), b)
	if err != nil || !res.Replayed || res.Deleted != -1 || res.Affected != -1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	d.write(up(3, "c", "c"))
	var fe *FencedError
	if _, err := d.w.Write(testCtx(t), b); !errors.As(err, &fe) {
		t.Fatalf("an old batch after a newer one: %v", err)
	}
	if got, want := dump(t, d, "docs"), "1=back,back 2=a,b 3=c,c"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
}

func TestOpsValidate(t *testing.T) {
	tbl := docsTable("docs", PolicyUpdate)
	logs := &Table{Name: "logs", Columns: []Column{{Name: "line", SQLType: "text"}}}
	wide := &Table{Name: "wide", Key: []string{"c0"}}
	for i := range MaxUnchangedColumns + 1 {
		wide.Columns = append(wide.Columns, Column{Name: fmt.Sprint("c", i), SQLType: "text"})
	}
	r := []Range{{Topic: "t", Partition: 0, Epoch: 1, From: -1, To: 1}}
	data, ends := []byte{0, 1, 0, 0, 0, 0}, []int{6}
	for _, tc := range []struct {
		b    *Batch
		want string
	}{
		{&Batch{Table: logs, Ranges: r, Data: data, Ends: ends, Ops: []RowOp{RowDelete}}, "keyless table logs (tuple 0 is a delete): a delete finds its row by key; configure the table's key"},
		{&Batch{Table: tbl, Ranges: r, Data: data, Ends: ends, Ops: []RowOp{RowDelete, RowDelete}}, "2 ops for 1 tuples"},
		{&Batch{Table: tbl, Ranges: r, Data: data, Ends: ends, Ops: []RowOp{7}}, "op 7; use RowUpsert or RowDelete"},
		{&Batch{Table: tbl, Ranges: r, Data: data, Ends: ends, Unchanged: []uint64{}}, "0 unchanged masks for 1 tuples"},
		{&Batch{Table: tbl, Ranges: r, Data: data, Ends: ends, Unchanged: []uint64{1 << 4}}, "marks column 4 unchanged but the table has 4 columns"},
		{&Batch{Table: wide, Ranges: r, Data: data, Ends: ends, Unchanged: []uint64{0}}, "65 columns and Batch.Unchanged marks at most 64"},
	} {
		if err := tc.b.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want it to contain %q", err, tc.want)
		}
	}
	ok := &Batch{Table: logs, Ranges: r, Data: data, Ends: ends, Ops: []RowOp{RowUpsert}, Unchanged: []uint64{1}}
	if err := ok.validate(); err != nil {
		t.Errorf("upserts on a keyless table: %v", err)
	}
	for _, name := range []string{"sluice_op", "sluice_unchanged"} {
		bad := docsTable("docs", PolicyIgnore)
		bad.Columns[1].Name = name
		if err := bad.validate(); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("column %s: %v", name, err)
		}
	}
}
