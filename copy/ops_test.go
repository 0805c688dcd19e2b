package pgcopy

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
		Changes:      true,
	}
}

// change is one tuple of a docs batch. A delete carries id and off only.
type change struct {
	op        RowOp
	id        int64
	a, b      string // "" is NULL
	unchanged uint64 // bit 1: a, bit 2: b
	nullOff   bool   // off is NULL instead of the Kafka offset
	// off, when hasOff, is off instead of the Kafka offset.
	off    int64
	hasOff bool
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
	// seen, when set, is every batch's KeyFilter (Batch.Seen), as the
	// appliance gives each keyed table one: ops batches then claim their
	// keys and apply the plain ones first.
	seen *KeyFilter
	// key encodes an id as the table's key field; nil: int8.
	key func(int64) []byte
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
	key := d.key
	if key == nil {
		key = fInt8
	}
	for _, c := range cs {
		o := fInt8(off)
		switch {
		case c.nullOff:
			o = nil
		case c.hasOff:
			o = fInt8(c.off)
		}
		if c.op == RowDelete {
			b.add(off, key(c.id), nil, nil, o)
		} else {
			b.add(off, key(c.id), nullable(c.a), nullable(c.b), o)
		}
		ops = append(ops, c.op)
		unch = append(unch, c.unchanged)
		off++
	}
	batch := b.batch(d.epoch, d.next, off)
	batch.Ops, batch.Unchanged = ops, unch
	if d.seen != nil {
		batch.Seen = d.seen
	}
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
		p                 Policy
		want              string
		deleted, affected int64
	}{
		// Affected: the keys whose winner was inserted or updated it.
		{PolicyIgnore, "2=u,u 4=u2,u2 5=s,s 6=s,s 13=u1,u1 14=-,u", 4, 4},
		{PolicyUpdate, "2=u,u 4=u3,u3 5=u2,u2 6=s,u 13=u2,u2 14=-,u", 4, 6},
	} {
		for _, claimed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/claimed=%v", tc.p, claimed), func(t *testing.T) {
				tbl := docsTable("docs", tc.p)
				url, _, claims := setup(t, 1, tbl)
				d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
				if claimed {
					d.seen = NewKeyFilter(0)
				}
				d.write(stored...)
				res := d.write(batch...)
				if got := dump(t, d, "docs"); got != tc.want {
					t.Errorf("rows\n got %s\nwant %s", got, tc.want)
				}
				// Keys 1, 2, 3 and 4 had stored rows and a delete.
				if res.Deleted != tc.deleted || res.Affected != tc.affected || res.Direct || res.Rows != len(batch) || res.Distinct != 10 {
					t.Errorf("result %+v", res)
				}
			})
		}
	}
}

// TestOpsKeyOrder checks the order in which an ops batch touches the
// target's rows (a trigger logs each row operation): its plain keys and
// the keys it only deletes in a pass each, then the other keys, each pass
// in ascending key order. A batch that did not claim its keys (the
// careful rerun) touches all of them in one ascending pass, deletes and
// inserts alike.
func TestOpsKeyOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p       Policy
		claimed bool
	}{{PolicyIgnore, true}, {PolicyUpdate, true}, {PolicyIgnore, false}, {PolicyUpdate, false}} {
		p := tc.p
		t.Run(fmt.Sprintf("%s/claimed=%v", p, tc.claimed), func(t *testing.T) {
			tbl := docsTable("docs", p)
			url, c, claims := setup(t, 1, tbl)
			d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
			if tc.claimed {
				d.seen = NewKeyFilter(0)
			}
			var cs []change
			for i := range 50 {
				cs = append(cs, up(int64(i*7%50), "s", "s"))
			}
			d.write(cs...)
			mustExec(t, c, `CREATE TABLE touched (n serial, id int8, what text);
CREATE FUNCTION log_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN INSERT INTO touched (id, what) VALUES (OLD.id, TG_OP); RETURN OLD; END IF;
	INSERT INTO touched (id, what) VALUES (NEW.id, TG_OP); RETURN NEW;
END $$;
CREATE TRIGGER log_touch BEFORE INSERT OR UPDATE OR DELETE ON docs FOR EACH ROW EXECUTE FUNCTION log_touch()`)
			cs = cs[:0]
			rng := rand.New(rand.NewPCG(3, 4))
			for range 200 {
				id := int64(rng.IntN(100))
				switch rng.IntN(3) {
				case 0:
					cs = append(cs, del(id))
				case 1:
					cs = append(cs, up(id, "u", "u"))
				default:
					cs = append(cs, keep(id, "", "k", keepA))
				}
			}
			// Each key's pass: plain keys (no delete; under PolicyUpdate
			// a winner that marks nothing) and keys only deleted (no
			// upsert after their last delete) by a statement each, in
			// key order; the others in the loop, in key order, after
			// both. Unclaimed, every key is the loop's.
			const (
				passPlain = iota
				passDelete
				passLoop
			)
			deleted, upsertAfter, lastMarks := map[int64]bool{}, map[int64]bool{}, map[int64]uint64{}
			for _, ch := range cs {
				if ch.op == RowDelete {
					deleted[ch.id], upsertAfter[ch.id] = true, false
				} else {
					upsertAfter[ch.id], lastMarks[ch.id] = true, ch.unchanged
				}
			}
			pass := map[int64]int{}
			for id := range upsertAfter {
				switch {
				case !tc.claimed:
					pass[id] = passLoop
				case !deleted[id] && (p == PolicyIgnore || lastMarks[id] == 0):
					pass[id] = passPlain
				case !upsertAfter[id]:
					pass[id] = passDelete
				default:
					pass[id] = passLoop
				}
			}
			res := d.write(cs...)
			got := queryRows(t, c, "SELECT id, what FROM touched ORDER BY n")
			if len(got) < 50 || res.Deleted == 0 {
				t.Fatalf("%d row operations, %d deleted: the batch did too little", len(got), res.Deleted)
			}
			// The row operations fall in runs, one per pass, each in
			// ascending key order, the loop's last.
			prev, cur, done := int64(-1), -1, map[int]bool{}
			for _, r := range got {
				id, _ := strconv.ParseInt(r[0], 10, 64)
				if ps := pass[id]; ps != cur {
					if done[ps] || done[passLoop] {
						t.Fatalf("key %s (%s) of pass %d touched after another pass: %v", r[0], r[1], ps, got)
					}
					done[ps], cur, prev = true, ps, -1
				}
				switch {
				case id < prev:
					t.Fatalf("key %s (%s) touched after key %d: %v", r[0], r[1], prev, got)
				case cur == passPlain && r[1] == "DELETE", cur == passDelete && r[1] != "DELETE":
					t.Fatalf("key %s: %s in pass %d: %v", r[0], r[1], cur, got)
				}
				prev = id
			}
			if tc.claimed && len(done) != 3 {
				t.Fatalf("passes %v: the batch did not test every pass", done)
			}
		})
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
		// Under PolicyUpdate the winner is the last upsert; when it keeps
		// stored values, the key's upserts before it apply first, in
		// order, as the source made them.
		todo := cand[:1]
		if p == PolicyUpdate {
			todo = cand[len(cand)-1:]
			if cs[todo[0]].unchanged != 0 {
				todo = cand
			}
		}
		for _, w := range todo {
			c, woff := cs[w], off+int64(w)
			switch {
			case !ok:
				row, ok = docRow{c.a, c.b, woff}, true
			case p == PolicyUpdate && (!guard || row.off < woff):
				if c.unchanged&keepA == 0 {
					row.a = c.a
				}
				if c.unchanged&keepB == 0 {
					row.b = c.b
				}
				row.off = woff
			}
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
		for _, v := range []struct{ guard, claimed bool }{{true, true}, {false, true}, {true, false}, {false, false}} {
			guard := v.guard
			t.Run(fmt.Sprintf("%s/guard=%v/claimed=%v", p, guard, v.claimed), func(t *testing.T) {
				tbl := docsTable("docs", p)
				if !guard {
					tbl.OffsetColumn = ""
				}
				url, _, claims := setup(t, 1, tbl)
				d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
				if v.claimed {
					d.seen = NewKeyFilter(0)
				}
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
	// When the last upsert of a key keeps stored values, the key's
	// upserts apply in order: the value kept is the one the upsert
	// before it set.
	step("1=A3,y 2=A2,B", keep(1, "x", "y", keepA), keep(1, "A3", "", keepB))
	// Marks on a key column are ignored; a new key takes the values sent.
	step("1=A4,y 2=A2,B 3=-,B", keep(1, "A4", "", keepB|1), keep(3, "", "B", keepA))
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

// TestOpsCareful checks that row-level errors in an ops batch are found
// and dead-lettered while the rest of the batch applies: a value refused
// by COPY into the ops stage (too long), one refused by the insert (a
// CHECK, a NOT NULL the ops stage does not enforce) and a delete refused
// by a foreign key.
func TestOpsCareful(t *testing.T) {
	t.Parallel()
	tbl := docsTable("docs", PolicyUpdate)
	tbl.Create = false
	url := newDB(t)
	c := connect(t, url)
	mustExec(t, c, `CREATE TABLE docs (id int8 PRIMARY KEY, a varchar(5) CHECK (a <> 'bad'), b text NOT NULL, off int8);
CREATE TABLE child (id int8 REFERENCES docs (id))`)
	if err := Migrate(testCtx(t), c, "sluice", []*Table{tbl}); err != nil {
		t.Fatal(err)
	}
	claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {0}})
	if err != nil {
		t.Fatal(err)
	}
	d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1}
	var cs []change
	for i := range 40 {
		cs = append(cs, up(int64(i), "a", "b"))
	}
	d.write(cs...)
	mustExec(t, c, "INSERT INTO child VALUES (7)")
	b := d.batch(
		del(1), del(7), // 1: 7 is referenced
		up(2, "toolong", "b"),   // 2: refused by COPY
		up(3, "bad", "b"),       // 3: CHECK
		up(4, "x", ""),          // 4: NOT NULL
		keep(5, "y", "", keepB), // keeps b: no NOT NULL violation
		del(6), up(6, "z", "z"),
		up(50, "new", "new"),
		up(3, "c", "c"), // a later upsert of 3 is fine, and wins
	)
	res, err := d.w.Write(testCtx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	d.next = b.Ranges[0].To
	got := map[int64]string{}
	for _, dl := range res.Rejected {
		got[dl.Offset-40] = dl.Error
	}
	// 3's CHECK violation may be found in a half merged on its own, where
	// it wins; it is overwritten by the later upsert of 3 either way.
	want := map[int64]string{1: "child", 2: "too long", 3: "docs_a_check", 4: "null value"}
	if _, ok := got[3]; !ok {
		delete(want, 3)
	}
	if len(got) != len(want) {
		t.Fatalf("rejected %v", got)
	}
	for i, s := range want {
		if !strings.Contains(got[i], s) {
			t.Errorf("tuple %d: rejected with %q, want it to mention %q", i, got[i], s)
		}
	}
	if res.Deleted != 2 || res.Rows != len(b.Ends)-len(want) {
		t.Errorf("result %+v", res)
	}
	rows := dump(t, d, "docs")
	for _, s := range []string{" 2=a,b ", " 3=c,c ", " 4=a,b ", " 5=y,b ", " 6=z,z ", " 7=a,b ", " 50=new,new"} {
		if !strings.Contains(rows+" ", s) {
			t.Errorf("rows lack %q: %s", s, rows)
		}
	}
	if strings.HasPrefix(rows, "0=a,b 1=") {
		t.Errorf("row 1 was not deleted: %s", rows)
	}
	// The second attempt bisected under savepoints, the third committed
	// with the dead letters made in between.
	if res.Attempts != 3 {
		t.Errorf("attempts %d", res.Attempts)
	}
}

// TestOpsTypes checks an ops batch on a target whose columns differ from
// the configured types (int4 sent, int8 stored: the ops stage converts),
// with a two-column key.
func TestOpsTypes(t *testing.T) {
	t.Parallel()
	tbl := &Table{
		Name:         "kv",
		Columns:      []Column{{Name: "tenant", SQLType: "int4"}, {Name: "name", SQLType: "text"}, {Name: "v", SQLType: "int4"}, {Name: "off", SQLType: "int4"}},
		Key:          []string{"tenant", "name"},
		OnConflict:   PolicyUpdate,
		OffsetColumn: "off",
	}
	url := newDB(t)
	c := connect(t, url)
	mustExec(t, c, `CREATE TABLE kv (tenant int8, name varchar(10), v int8, off int8, PRIMARY KEY (tenant, name))`)
	if err := Migrate(testCtx(t), c, "sluice", []*Table{tbl}); err != nil {
		t.Fatal(err)
	}
	claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {0}})
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, url)
	i4 := func(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	b := newBuilder(tbl, "t", 0)
	for i := range 6 {
		b.add(int64(i), i4(int32(i%2)), fText(fmt.Sprint("n", i%3)), i4(int32(10+i)), i4(int32(i)))
	}
	if _, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 6)); err != nil {
		t.Fatal(err)
	}
	b = newBuilder(tbl, "t", 0)
	b.add(6, i4(0), fText("n0"), nil, i4(6))    // delete (0, n0)
	b.add(7, i4(1), fText("n1"), i4(0), i4(7))  // keeps v of (1, n1)
	b.add(8, i4(1), fText("n2"), i4(99), i4(8)) // plain update
	batch := b.batch(claims[0].Epoch, 6, 9)
	batch.Ops = []RowOp{RowDelete, RowUpsert, RowUpsert}
	batch.Unchanged = []uint64{0, 1 << 2, 0}
	res, err := w.Write(testCtx(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || res.Affected != 2 {
		t.Errorf("result %+v", res)
	}
	got := queryRows(t, c, "SELECT tenant, name, v, off FROM kv ORDER BY 1, 2")
	want := [][]string{{"0", "n1", "14", "4"}, {"0", "n2", "12", "2"}, {"1", "n0", "13", "3"}, {"1", "n1", "11", "7"}, {"1", "n2", "99", "8"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows\n got %v\nwant %v", got, want)
	}
}

// TestOpsConcurrentWriters runs writers on four partitions whose batches
// delete and upsert overlapping keys, some keeping stored values, some
// plain (merged or direct): every Write must succeed and every row must be
// whole. Writers of one process must not deadlock: unclaimed, every path
// takes its row locks in key order; claimed (one KeyFilter), batches that
// share keys wait for each other. Writers with a KeyFilter each, as
// instances have, may deadlock, and Write retries.
func TestOpsConcurrentWriters(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p       Policy
		claimed bool
		// instances: each writer has a KeyFilter of its own, as the
		// instances of a group do; their batches claim keys but never
		// wait for each other, and may deadlock (retried).
		instances bool
	}{{PolicyIgnore, true, false}, {PolicyUpdate, true, false}, {PolicyIgnore, false, false}, {PolicyUpdate, false, false},
		{PolicyIgnore, true, true}, {PolicyUpdate, true, true}} {
		p := tc.p
		t.Run(fmt.Sprintf("%s/claimed=%v/instances=%v", p, tc.claimed, tc.instances), func(t *testing.T) {
			var seen *KeyFilter
			if tc.claimed {
				// One process: its writers share the table's KeyFilter.
				seen = NewKeyFilter(0)
			}
			tbl := docsTable("docs", p)
			tbl.OffsetColumn = "" // offsets of different partitions do not compare
			url, c, claims := setup(t, 4, tbl)
			const batches, rows, keys = 12, 200, 300
			var wg sync.WaitGroup
			errs := make(chan error, len(claims))
			var mu sync.Mutex
			retried, deadlocks, waits, outlived, deleted := 0, 0, 0, 0, int64(0)
			for _, cl := range claims {
				wg.Go(func() {
					w := NewWriter(url, "sluice", "g")
					w.hooks = &hooks{}
					defer w.Close(context.Background())
					defer func() {
						mu.Lock()
						deadlocks += w.hooks.conflicts
						waits += w.hooks.waits
						mu.Unlock()
					}()
					rng := rand.New(rand.NewPCG(uint64(cl.Partition), 2))
					d := &docsWriter{t: t, w: w, tbl: tbl, part: cl.Partition, epoch: cl.Epoch, next: -1, base: int64(cl.Partition) << 20, seen: seen}
					if tc.instances {
						d.seen = NewKeyFilter(0)
					}
					for range batches {
						var cs []change
						plain := rng.IntN(4) == 0
						off := d.next
						if off < 0 {
							off = d.base
						}
						for i := range rows {
							id := int64(rng.IntN(keys))
							// b always holds the tuple's offset: a row is whole
							// when b matches off.
							v := fmt.Sprint(off + int64(i))
							switch r := rng.IntN(10); {
							case plain || r >= 6:
								cs = append(cs, up(id, v, v))
							case r < 3:
								cs = append(cs, del(id))
							default:
								cs = append(cs, keep(id, "", v, keepA))
							}
						}
						b := d.batch(cs...)
						if plain {
							b.Ops, b.Unchanged = nil, nil
						}
						res, err := w.Write(testCtx(t), b)
						// Instances' transactions may keep deadlocking past
						// Write's own retries; the error is transient and
						// the worker writes the batch again, as here.
						for again := 0; err != nil && tc.instances && isConflict(err) && IsRetryable(err) && again < 10; again++ {
							mu.Lock()
							outlived++
							mu.Unlock()
							res, err = w.Write(testCtx(t), b)
						}
						if err != nil {
							errs <- err
							return
						}
						d.next = b.Ranges[0].To
						mu.Lock()
						retried += res.Attempts - 1
						deleted += res.Deleted
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if n := queryInt(t, c, "SELECT count(*) FROM docs WHERE b IS DISTINCT FROM off::text"); n != 0 {
				t.Errorf("%d rows are not whole", n)
			}
			if n := queryInt(t, c, "SELECT count(*) - count(DISTINCT id) FROM docs"); n != 0 {
				t.Errorf("%d duplicate keys", n)
			}
			for _, o := range offsetsOf(t, c) {
				if o.NextOffset != int64(o.Partition)<<20+batches*rows {
					t.Errorf("offsets %+v", o)
				}
			}
			if deleted == 0 {
				t.Error("nothing was deleted")
			}
			if deadlocks != 0 && !tc.instances {
				t.Errorf("%d transactions deadlocked", deadlocks)
			}
			if tc.claimed && !tc.instances && waits == 0 {
				t.Error("no batch waited for another that claimed its keys first: the test did not make writers share keys")
			}
			t.Logf("%d transactions retried (%d deadlocked), %d waited for another, %d rows deleted, %d writes outlived Write's retries", retried, deadlocks, waits, deleted, outlived)
		})
	}
}

// TestOpsOddNames checks that column names clashing with the apply
// function's variables, record fields and dollar quote change nothing.
func TestOpsOddNames(t *testing.T) {
	t.Parallel()
	// A column named after the key query's quote makes the function plan
	// its own key query, without the resolved form (ops.go).
	for _, odd := range []string{"$sluice_apply$", queryTag} {
		for _, claimed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/claimed=%v", odd, claimed), func(t *testing.T) {
				tbl := &Table{
					Name:         "odd",
					Columns:      []Column{{Name: "lo", SQLType: "int8"}, {Name: "deleted", SQLType: "text"}, {Name: odd, SQLType: "text"}, {Name: "c0", SQLType: "text"}, {Name: "n", SQLType: "int8"}},
					Key:          []string{"lo"},
					OnConflict:   PolicyUpdate,
					OffsetColumn: "n",
					Create:       true,
					Changes:      true,
				}
				url, c, claims := setup(t, 1, tbl)
				w := newWriter(t, url)
				var seen *KeyFilter
				if claimed {
					seen = NewKeyFilter(0)
				}
				b := newBuilder(tbl, "t", 0)
				for i := range 4 {
					b.add(int64(i), fInt8(int64(i)), fText("d"), fText("s"), fText("c"), fInt8(int64(i)))
				}
				first := b.batch(claims[0].Epoch, -1, 4)
				first.Seen = seen
				if _, err := w.Write(testCtx(t), first); err != nil {
					t.Fatal(err)
				}
				b = newBuilder(tbl, "t", 0)
				b.add(4, fInt8(0), nil, nil, nil, fInt8(4))
				b.add(5, fInt8(1), fText("d2"), nil, fText("c2"), fInt8(5))
				batch := b.batch(claims[0].Epoch, 4, 6)
				batch.Ops = []RowOp{RowDelete, RowUpsert}
				batch.Unchanged = []uint64{0, 1 << 2}
				batch.Seen = seen
				before := w.hooks.resolved
				res, err := w.Write(testCtx(t), batch)
				if err != nil {
					t.Fatal(err)
				}
				if resolved := w.hooks.resolved > before; resolved != (claimed && odd != queryTag) {
					t.Errorf("resolved %v", resolved)
				}
				got := queryRows(t, c, `SELECT lo, deleted, "`+odd+`", c0, n FROM odd ORDER BY lo`)
				want := [][]string{{"1", "d2", "s", "c2", "5"}, {"2", "d", "s", "c", "2"}, {"3", "d", "s", "c", "3"}}
				if !reflect.DeepEqual(got, want) || res.Deleted != 1 || res.Affected != 1 {
					t.Errorf("rows %v, want %v; result %+v", got, want, res)
				}
			})
		}
	}
}

// TestOpsSplitDeadlockBacksOff: two instances (each its own KeyFilter)
// whose batches share keys deadlock once their plain passes have locked a
// key the other's loop wants. PostgreSQL ends one; its Writer retries it
// with every key in the loop and leaves its next change batch there too.
func TestOpsSplitDeadlockBacksOff(t *testing.T) {
	t.Parallel()
	tbl := docsTable("docs", PolicyUpdate)
	tbl.OffsetColumn = "" // offsets of different partitions do not compare
	url, c, claims := setup(t, 2, tbl)
	a := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1, seen: NewKeyFilter(0)}
	b := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, part: 1, epoch: claims[1].Epoch, next: -1, base: 1000, seen: NewKeyFilter(0)}
	mustExec(t, c, "INSERT INTO docs VALUES (0, 's', 's', NULL), (1, 's', 's', NULL), (2, 's', 's', NULL)")
	// Key 0 is held by a third transaction, so both batches lock their
	// plain key (A: 1, B: 2) and wait for 0 in their loops; once 0 is
	// free, A's loop wants 2 and B's wants 1.
	hold := connect(t, url)
	mustExec(t, hold, "BEGIN; SELECT FROM docs WHERE id = 0 FOR UPDATE")
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 2)
	for _, x := range []struct {
		d  *docsWriter
		cs []change
	}{
		{a, []change{up(1, "a", "a"), del(0), up(0, "a", "a"), del(2), up(2, "a", "a")}},
		{b, []change{up(2, "b", "b"), del(0), up(0, "b", "b"), del(1), up(1, "b", "b")}},
	} {
		batch := x.d.batch(x.cs...)
		go func() {
			res, err := x.d.w.Write(testCtx(t), batch)
			done <- out{res, err}
		}()
	}
	for i := 0; queryInt(t, c, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") < 2; i++ {
		if i == 500 {
			t.Fatal("the batches never both waited for key 0")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustExec(t, hold, "COMMIT")
	for range 2 {
		if o := <-done; o.err != nil {
			t.Fatal(o.err)
		}
	}
	a.next, b.next = 5, 1005
	var loser *docsWriter
	switch {
	case a.w.hooks.conflicts == 1 && b.w.hooks.conflicts == 0:
		loser = a
	case b.w.hooks.conflicts == 1 && a.w.hooks.conflicts == 0:
		loser = b
	default:
		t.Fatalf("deadlocks: A %d, B %d; want one", a.w.hooks.conflicts, b.w.hooks.conflicts)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM docs"); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
	// The loser's next change batch goes through the loop alone; the
	// winner's is split as before.
	if res := loser.write(del(5), up(6, "x", "x")); res.split {
		t.Errorf("the batch after a deadlock was split: %+v", res)
	}
	winner := map[*docsWriter]*docsWriter{a: b, b: a}[loser]
	if res := winner.write(del(7), up(8, "x", "x")); !res.split {
		t.Errorf("the other instance's batch was not split: %+v", res)
	}
}

// TestOpsResolvedMatchesFunction writes the same random change batches to
// two tables, one in batches the writer resolves (a KeyFilter: claimed,
// resolve.go), the other in batches the apply function's key query
// resolves (none), and compares the tables after every batch. Guards are
// NULL, equal and out of order (replays), among deletes, upserts and
// upserts keeping stored values, under both policies, with a guard column
// and without.
func TestOpsResolvedMatchesFunction(t *testing.T) {
	t.Parallel()
	for _, v := range []struct {
		p     Policy
		guard bool
		key   string // the id column's type
	}{{PolicyIgnore, true, "int8"}, {PolicyIgnore, false, "int8"}, {PolicyUpdate, true, "int8"}, {PolicyUpdate, false, "int8"}, {PolicyUpdate, true, "text"}} {
		p, guard := v.p, v.guard
		t.Run(fmt.Sprintf("%s/guard=%v/%s", p, guard, v.key), func(t *testing.T) {
			ta, tb := docsTable("docs_a", p), docsTable("docs_b", p)
			ta.Columns[0].SQLType, tb.Columns[0].SQLType = v.key, v.key
			var key func(int64) []byte
			if v.key == "text" {
				key = func(n int64) []byte { return fText(fmt.Sprint("k", n)) }
			}
			if !guard {
				ta.OffsetColumn, tb.OffsetColumn = "", ""
			}
			url, c, claims := setup(t, 2, ta, tb)
			w := newWriter(t, url)
			sides := []*docsWriter{
				{t: t, w: w, tbl: ta, epoch: claims[0].Epoch, next: -1, seen: NewKeyFilter(0), key: key},
				{t: t, w: w, tbl: tb, part: 1, epoch: claims[1].Epoch, next: -1, key: key},
			}
			rng := rand.New(rand.NewPCG(uint64(p), 11))
			for range 300 {
				var cs []change
				for j := range 1 + rng.IntN(30) {
					x := change{id: int64(rng.IntN(8)), off: int64(rng.IntN(6)), hasOff: true, nullOff: rng.IntN(4) == 0}
					v := func() string {
						if rng.IntN(6) == 0 {
							return ""
						}
						return fmt.Sprint("v", rng.IntN(1000))
					}
					switch r := rng.IntN(10); {
					case j == 0 || r < 3:
						x.op = RowDelete
					case r < 6:
						x.a, x.b, x.unchanged = v(), v(), uint64(1+rng.IntN(3))<<1
					default:
						x.a, x.b = v(), v()
					}
					cs = append(cs, x)
				}
				for side, d := range sides {
					before := w.hooks.resolved
					d.write(cs...)
					if resolved := w.hooks.resolved > before; resolved != (side == 0) {
						t.Fatalf("side %d: resolved %v", side, resolved)
					}
				}
				q := "SELECT id, coalesce(a, '-'), coalesce(b, '-'), coalesce(off::text, '-') FROM %s ORDER BY id"
				got, want := queryRows(t, c, fmt.Sprintf(q, "docs_a")), queryRows(t, c, fmt.Sprintf(q, "docs_b"))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("after %+v:\n resolved %v\n function %v", cs, got, want)
				}
			}
		})
	}
}

// TestOpsNondeterministicKeyNotResolved: under a case-insensitive ICU
// collation 'A' and 'a' are one key to PostgreSQL and two to the writer's
// bytes, so a change table keyed by such a column leaves the resolution to
// the apply function, whose staging columns take the target's collation:
// both changes apply to the one row.
func TestOpsNondeterministicKeyNotResolved(t *testing.T) {
	t.Parallel()
	tbl := &Table{
		Name:         "ci",
		Columns:      []Column{{Name: "id", SQLType: "text"}, {Name: "v", SQLType: "text"}, {Name: "off", SQLType: "int8"}},
		Key:          []string{"id"},
		OnConflict:   PolicyUpdate,
		OffsetColumn: "off",
		Changes:      true,
	}
	url, c, claims := setup(t, 1)
	if _, err := c.Exec(testCtx(t), "CREATE COLLATION sluice_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)").ReadAll(); err != nil {
		t.Skipf("no ICU collation here: %v", err)
	}
	mustExec(t, c, `CREATE TABLE ci (id text COLLATE sluice_ci PRIMARY KEY, v text, off int8)`)
	w := newWriter(t, url)
	b := newBuilder(tbl, "t", 0)
	b.add(0, fText("gone"), nil, fInt8(0))
	b.add(1, fText("A"), fText("first"), fInt8(1))
	b.add(2, fText("a"), fText("second"), fInt8(2))
	batch := b.batch(claims[0].Epoch, -1, 3)
	batch.Ops, batch.Unchanged = []RowOp{RowDelete, RowUpsert, RowUpsert}, []uint64{0, 0, 0}
	batch.Seen = NewKeyFilter(0)
	if _, err := w.Write(testCtx(t), batch); err != nil {
		t.Fatal(err)
	}
	if w.hooks.resolved != 0 {
		t.Error("the writer resolved keys its bytes cannot compare")
	}
	if got := queryRows(t, c, "SELECT v, off FROM ci"); !reflect.DeepEqual(got, [][]string{{"second", "2"}}) {
		t.Errorf("rows %v, want the one row the later change left", got)
	}
	// A batch of upserts alone goes through the staging merge, whose
	// DISTINCT ON groups keys under the column's collation too.
	b = newBuilder(tbl, "t", 0)
	b.add(3, fText("B"), fText("first"), fInt8(3))
	b.add(4, fText("b"), fText("second"), fInt8(4))
	batch = b.batch(claims[0].Epoch, 3, 5)
	batch.Seen = NewKeyFilter(0)
	if _, err := w.Write(testCtx(t), batch); err != nil {
		t.Fatal(err)
	}
	if got := queryRows(t, c, "SELECT v, off FROM ci WHERE id = 'B'"); !reflect.DeepEqual(got, [][]string{{"second", "4"}}) {
		t.Errorf("rows %v, want the one row the later upsert left", got)
	}
}
