package pgcopy

import (
	"fmt"
	"strings"
	"testing"
)

// TestDirectChunkedCollision: a key another transaction commits after a
// direct batch probed its keys makes the batch's COPY fail on the unique
// index (23505). The first time, the batch is rerun whole and its table
// starts copying in chunks; then such a key costs its chunk (rolled back
// to its savepoint, probed again, copied without the key) and the batch
// commits in one attempt. Either way every key is stored once and the
// contested key keeps the other transaction's row (the first write wins).
func TestDirectChunkedCollision(t *testing.T) {
	t.Parallel()
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			t.Parallel()
			tbl := eventsTable()
			url, c, claims := setup(t, 1, tbl)
			w, pid := connectedWriter(t, url)
			if chunked {
				ts, err := w.table(tbl)
				if err != nil {
					t.Fatal(err)
				}
				ts.chunked = 2
			}
			w.hooks = &hooks{chunkRows: 1000}
			keys := make([]int64, 3000)
			for i := range keys {
				keys[i] = int64(i + 1)
			}
			contested := int64(2007) // in the third chunk
			other := connect(t, url)
			mustExec(t, other, fmt.Sprintf("BEGIN; INSERT INTO events (id, val, off) VALUES (%d, 'other', -1)", contested))
			type out struct {
				res Result
				err error
			}
			done := make(chan out, 1)
			go func() {
				res, err := w.Write(testCtx(t), keysBatch(tbl, nil, 0, claims[0].Epoch, keys...))
				done <- out{res, err}
			}()
			// The batch's probe ran before the other transaction committed:
			// its COPY waits on the uncommitted key.
			waitLocked(t, c, pid)
			mustExec(t, other, "COMMIT")
			o := <-done
			if o.err != nil {
				t.Fatal(o.err)
			}
			want := Result{Attempts: 2, ChunkRetries: 0}
			if chunked {
				want = Result{Attempts: 1, ChunkRetries: 1}
			}
			if !o.res.Direct || o.res.Attempts != want.Attempts || o.res.ChunkRetries != want.ChunkRetries || o.res.Affected != int64(len(keys)-1) {
				t.Fatalf("result %+v; want direct, %d attempts, %d chunk retries, %d rows affected", o.res, want.Attempts, want.ChunkRetries, len(keys)-1)
			}
			if n := queryInt(t, c, "SELECT count(*) FROM events"); n != int64(len(keys)) {
				t.Errorf("%d rows, want %d", n, len(keys))
			}
			if v := queryRows(t, c, fmt.Sprintf("SELECT val FROM events WHERE id = %d", contested)); len(v) != 1 || v[0][0] != "other" {
				t.Errorf("contested key: %v, want the other transaction's row", v)
			}
			// The unchunked batch's failure turned chunking on for the
			// table's next batches.
			if ts, _ := w.table(tbl); !chunked && ts.chunked != chunkedBatches {
				t.Errorf("chunked countdown %d after a collision, want %d", ts.chunked, chunkedBatches)
			}
		})
	}
}

// TestDirectOtherUnique: a direct batch whose COPY fails on a unique index
// other than the key's (a UNIQUE constraint on another column) met no key
// another transaction committed: no probe or rerun drops the row. The
// batch goes straight to the careful rerun, which dead-letters the row
// naming the constraint, without retrying its chunk, and its table does
// not start copying in chunks.
func TestDirectOtherUnique(t *testing.T) {
	t.Parallel()
	for _, chunked := range []bool{false, true} {
		for _, pol := range []Policy{PolicyIgnore, PolicyUpdate} {
			t.Run(fmt.Sprintf("chunked=%v/%v", chunked, pol), func(t *testing.T) {
				t.Parallel()
				tbl := eventsTable()
				tbl.OnConflict = pol
				url, c, claims := setup(t, 1, tbl)
				mustExec(t, c, "ALTER TABLE events ADD CONSTRAINT val_uniq UNIQUE (val); INSERT INTO events VALUES (-1, 'taken', 0)")
				w := newWriter(t, url)
				ts, err := w.table(tbl)
				if err != nil {
					t.Fatal(err)
				}
				if chunked {
					ts.chunked = 2
					w.hooks.chunkRows = 1000
				}
				b := newBuilder(tbl, "t", 0)
				for i := range 3000 {
					v := fmt.Sprint("v", i)
					if i == 2500 {
						v = "taken"
					}
					b.add(int64(i), fInt8(int64(i)), fText(v), fInt8(int64(i)))
				}
				res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 3000))
				if err != nil {
					t.Fatal(err)
				}
				if res.Attempts != 3 || res.ChunkRetries != 0 || len(res.Rejected) != 1 || res.Rejected[0].Offset != 2500 ||
					!strings.Contains(res.Rejected[0].Error, "val_uniq") {
					t.Fatalf("result %+v; want 3 attempts, no chunk retry, offset 2500 rejected naming val_uniq", res)
				}
				if n := queryInt(t, c, "SELECT count(*) FROM events WHERE id >= 0"); n != 2999 {
					t.Errorf("%d rows, want 2999", n)
				}
				if want := map[bool]int{false: 0, true: 1}[chunked]; ts.chunked != want {
					t.Errorf("chunked countdown %d, want %d", ts.chunked, want)
				}
			})
		}
	}
}
