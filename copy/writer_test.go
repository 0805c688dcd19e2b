package pgcopy

import (
	"time"

	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5/pgconn"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func offsetsOf(t *testing.T, c *pgconn.PgConn) []Claim {
	t.Helper()
	got, err := ReadOffsets(testCtx(t), c, "sluice", "g")
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestWriteAndCAS(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	epoch := claims[0].Epoch

	b := newBuilder(tbl, "t", 0)
	for i := range 10 {
		b.add(int64(i), fInt8(int64(i)), fText(fmt.Sprint("v", i)), fInt8(int64(i)))
	}
	res, err := w.Write(testCtx(t), b.batch(epoch, -1, 10))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 10 || res.Affected != 10 || len(res.Rejected) != 0 || res.Attempts != 1 {
		t.Fatalf("result %+v", res)
	}
	if got := offsetsOf(t, c); got[0].NextOffset != 10 || got[0].Epoch != epoch {
		t.Fatalf("offsets %+v", got)
	}
	// A wrong From is fenced and writes nothing.
	b = newBuilder(tbl, "t", 0)
	b.add(10, fInt8(100), fText("x"), fInt8(10))
	_, err = w.Write(testCtx(t), b.batch(epoch, 5, 11))
	var fe *FencedError
	if !errors.As(err, &fe) || IsRetryable(err) {
		t.Fatalf("wrong From: %v", err)
	}
	if !reflect.DeepEqual(fe.Stored, []Claim{{"t", 0, epoch, 10, 0}}) || fe.Ranges[0].From != 5 {
		t.Fatalf("fenced error %+v", fe)
	}
	// The right From continues.
	if _, err := w.Write(testCtx(t), b.batch(epoch, 10, 11)); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 11 {
		t.Fatalf("%d rows, want 11", n)
	}
	// Writing the same batch again is recognised as already committed.
	res, err = w.Write(testCtx(t), b.batch(epoch, 10, 11))
	if err != nil || !res.Replayed {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 11 {
		t.Fatalf("%d rows after replay, want 11", n)
	}
}

func TestFencedStaleOwner(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 2, tbl)
	w := newWriter(t, url)
	// A second owner claims partition 1.
	if _, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {1}}); err != nil {
		t.Fatal(err)
	}
	b := newBuilder(tbl, "t", 1)
	b.add(0, fInt8(1), fText("a"), fInt8(0))
	b.deadLetter(1, "garbage", "bad json")
	batch := b.batch(claims[1].Epoch, -1, 2)
	// Partition 0 is still ours; the batch must not land half.
	batch.Ranges = append(batch.Ranges, Range{Topic: "t", Partition: 0, Epoch: claims[0].Epoch, From: -1, To: 0})
	_, err := w.Write(testCtx(t), batch)
	var fe *FencedError
	if !errors.As(err, &fe) || IsRetryable(err) {
		t.Fatalf("stale owner: %v", err)
	}
	if len(fe.Ranges) != 1 || fe.Ranges[0].Partition != 1 || fe.Stored[0].Epoch != claims[1].Epoch+1 {
		t.Fatalf("fenced error %+v", fe)
	}
	if !strings.Contains(err.Error(), "t/1") {
		t.Errorf("error does not name the partition: %v", err)
	}
	for _, q := range []string{"SELECT count(*) FROM events", "SELECT count(*) FROM sluice.dead_letters"} {
		if n := queryInt(t, c, q); n != 0 {
			t.Errorf("%s = %d after a fenced write", q, n)
		}
	}
	if got := offsetsOf(t, c); got[0].NextOffset != -1 || got[1].NextOffset != -1 {
		t.Errorf("offsets moved: %+v", got)
	}
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	ignore := eventsTable()
	update := eventsTable()
	update.Name = "upd"
	update.OnConflict = PolicyUpdate
	noOffset := eventsTable()
	noOffset.Name = "upd_nooff"
	noOffset.OnConflict = PolicyUpdate
	noOffset.OffsetColumn = ""
	url, c, claims := setup(t, 3, ignore, update, noOffset)
	w := newWriter(t, url)

	next := map[int32]int64{0: -1, 1: -1, 2: -1}
	write := func(tbl *Table, part int32, rows ...[2]any) {
		t.Helper()
		b := newBuilder(tbl, "t", part)
		off := next[part]
		if off < 0 {
			off = 0
		}
		for _, r := range rows {
			b.add(off, fInt8(int64(r[0].(int))), fText(r[1].(string)), fInt8(int64(r[1].(string)[1]-'0')))
			off++
		}
		if _, err := w.Write(testCtx(t), b.batch(claims[part].Epoch, next[part], off)); err != nil {
			t.Fatal(err)
		}
		next[part] = off
	}
	check := func(table, want string) {
		t.Helper()
		var got []string
		for _, r := range queryRows(t, c, "SELECT id, val FROM "+table+" ORDER BY id") {
			got = append(got, r[0]+"="+r[1])
		}
		if s := strings.Join(got, " "); s != want {
			t.Errorf("%s: %s, want %s", table, s, want)
		}
	}
	// val "aN" carries offset-ish N in its digit (stored in off).
	write(ignore, 0, [2]any{1, "a1"}, [2]any{2, "a2"}, [2]any{1, "a3"})
	check("events", "1=a1 2=a2")
	write(ignore, 0, [2]any{2, "a4"}, [2]any{3, "a5"})
	check("events", "1=a1 2=a2 3=a5")

	write(update, 1, [2]any{1, "a1"}, [2]any{2, "a2"}, [2]any{1, "a3"})
	check("upd", "1=a3 2=a2")
	// A higher off overwrites, a lower one does not.
	write(update, 1, [2]any{2, "a9"}, [2]any{1, "a0"})
	check("upd", "1=a3 2=a9")

	write(noOffset, 2, [2]any{1, "a5"}, [2]any{1, "a6"})
	write(noOffset, 2, [2]any{1, "a1"})
	check("upd_nooff", "1=a1")
}

func TestKeyless(t *testing.T) {
	t.Parallel()
	tbl := &Table{Name: "logs", Columns: []Column{{Name: "line", SQLType: "text"}, {Name: "n", SQLType: "int8"}, {Name: "id", SQLType: "uuid"}, {Name: "doc", SQLType: "jsonb"}}, Create: true}
	url, c, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	b := newBuilder(tbl, "t", 0)
	for i := range 100 {
		b.add(int64(i), fText("same"), fInt8(7), fUUID(uint64(i)), fJSONB(`{"i":`+fmt.Sprint(i)+`}`))
	}
	b.add(100, nil, nil, nil, nil)
	res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 101))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 101 || res.Affected != 101 {
		t.Fatalf("result %+v", res)
	}
	if n := queryInt(t, c, `SELECT count(*) FROM logs WHERE line = 'same' AND (doc->>'i')::int8 = ('x'||right(replace(id::text, '-', ''), 16))::bit(64)::int8`); n != 100 {
		t.Fatalf("%d matching rows, want 100", n)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM logs WHERE line IS NULL"); n != 1 {
		t.Fatalf("%d null rows, want 1", n)
	}
}

func TestDeadLettersAndEmptyBatches(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	e := claims[0].Epoch

	// Only an offset advance.
	if _, err := w.Write(testCtx(t), newBuilder(tbl, "t", 0).batch(e, -1, 5)); err != nil {
		t.Fatal(err)
	}
	// Only dead letters, one with headers that are not JSON.
	b := newBuilder(tbl, "t", 0)
	b.deadLetter(5, "v5", "bad \x00json\xff")
	b.deadLetter(6, "v6", "too big")
	b.dls[0].Headers = []byte(`{"h":"x"}`)
	b.dls[1].Headers = []byte(`not json`)
	b.dls[1].Key = []byte{0, 1, 2}
	if _, err := w.Write(testCtx(t), b.batch(e, 5, 7)); err != nil {
		t.Fatal(err)
	}
	// Rows and dead letters together.
	b = newBuilder(tbl, "t", 0)
	b.add(7, fInt8(1), fText("a"), fInt8(7))
	b.deadLetter(8, "v8", "wrong type")
	if _, err := w.Write(testCtx(t), b.batch(e, 7, 9)); err != nil {
		t.Fatal(err)
	}
	got := queryRows(t, c, `SELECT "offset", value, key, headers::text, target, error FROM sluice.dead_letters ORDER BY 1`)
	want := [][]string{
		{"5", `\x7635`, "NULL", `{"h": "x"}`, "public.events", "bad json\uFFFD"},
		{"6", `\x7636`, `\x000102`, `"not json"`, "public.events", "too big"},
		{"8", `\x7638`, "NULL", "NULL", "public.events", "wrong type"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("dead letters\n got %q\nwant %q", got, want)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 1 {
		t.Fatalf("%d rows", n)
	}
	if got := offsetsOf(t, c); got[0].NextOffset != 9 {
		t.Fatalf("offsets %+v", got)
	}
}

func TestBisectCheckConstraint(t *testing.T) {
	t.Parallel()
	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprint("keyed=", keyed), func(t *testing.T) {
			tbl := eventsTable()
			if !keyed {
				tbl.Key = nil
			}
			url, c, claims := setup(t, 1, tbl)
			mustExec(t, c, "ALTER TABLE events ADD CONSTRAINT val_ok CHECK (val <> 'bad')")
			w := newWriter(t, url)
			b := newBuilder(tbl, "t", 0)
			bad := map[int]bool{137: true, 802: true}
			for i := range 1000 {
				v := "good"
				if bad[i] {
					v = "bad"
				}
				b.add(int64(1000+i), fInt8(int64(i)), fText(v), fInt8(int64(1000+i)))
			}
			res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 2000))
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows != 998 || len(res.Rejected) != 2 || res.Attempts != 3 {
				t.Fatalf("result rows=%d rejected=%d attempts=%d", res.Rows, len(res.Rejected), res.Attempts)
			}
			for _, dl := range res.Rejected {
				if !bad[int(dl.Offset-1000)] || !strings.Contains(dl.Error, "val_ok") || !strings.Contains(dl.Error, "23514") {
					t.Errorf("rejected %+v", dl)
				}
			}
			got := queryRows(t, c, `SELECT "offset" FROM sluice.dead_letters ORDER BY 1`)
			if !reflect.DeepEqual(got, [][]string{{"1137"}, {"1802"}}) {
				t.Errorf("dead letters %v", got)
			}
			if n := queryInt(t, c, "SELECT count(*) FROM events WHERE val = 'good'"); n != 998 {
				t.Errorf("%d rows landed, want 998", n)
			}
			if got := offsetsOf(t, c); got[0].NextOffset != 2000 {
				t.Errorf("offsets %+v", got)
			}
			// k=2 bad rows among n=1000: O(k log n) statements.
			if limit := 3*2*int(math.Ceil(math.Log2(1000))) + 12; w.hooks.stmts > limit {
				t.Errorf("%d statements, want at most %d", w.hooks.stmts, limit)
			}
		})
	}
}

func TestRejectAtCopyPinpointed(t *testing.T) {
	t.Parallel()
	for _, keyed := range []bool{true, false} {
		t.Run(fmt.Sprint("keyed=", keyed), func(t *testing.T) {
			tbl := eventsTable()
			tbl.Create = false
			if !keyed {
				tbl.Key = nil
			}
			url := newDB(t)
			c := connect(t, url)
			mustExec(t, c, `CREATE DOMAIN small AS int8 CHECK (VALUE < 1000000);
CREATE TABLE events (id int8 PRIMARY KEY, val varchar(3) NOT NULL, off small)`)
			if err := Migrate(testCtx(t), c, "sluice", []*Table{tbl}); err != nil {
				t.Fatal(err)
			}
			claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {0}})
			if err != nil {
				t.Fatal(err)
			}
			w := newWriter(t, url)
			b := newBuilder(tbl, "t", 0)
			for i := range 500 {
				v, off := fText("ok"), fInt8(int64(i))
				switch i {
				case 10:
					v = fText("toolong")
				case 20:
					v = nil
				case 30:
					off = fInt8(5000000)
				}
				b.add(int64(i), fInt8(int64(i)), v, off)
			}
			res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 500))
			if err != nil {
				t.Fatal(err)
			}
			want := map[int64]string{10: "value too long", 20: "null value", 30: "small_check"}
			if len(res.Rejected) != 3 {
				t.Fatalf("rejected %+v", res.Rejected)
			}
			for _, dl := range res.Rejected {
				if !strings.Contains(dl.Error, want[dl.Offset]) {
					t.Errorf("offset %d: error %q, want it to contain %q", dl.Offset, dl.Error, want[dl.Offset])
				}
			}
			if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 497 {
				t.Errorf("%d rows landed, want 497", n)
			}
			// Pinpointing: a handful of statements per bad row, far fewer than
			// bisection by halving would need, and a handful more for the
			// rerun that rejects them with their dead letters.
			if w.hooks.stmts > 48 {
				t.Errorf("%d statements for 3 pinpointed rows", w.hooks.stmts)
			}
		})
	}
}

func TestWriteWithoutDeadLetterFor(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	mustExec(t, c, "ALTER TABLE events ADD CHECK (id > 0)")
	w := newWriter(t, url)
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(-1), fText("x"), fInt8(0))
	batch := b.batch(claims[0].Epoch, -1, 1)
	batch.DeadLetterFor = nil
	_, err := w.Write(testCtx(t), batch)
	if err == nil || IsRetryable(err) || !strings.Contains(err.Error(), "DeadLetterFor") {
		t.Fatalf("error %v", err)
	}
	if got := offsetsOf(t, c); got[0].NextOffset != -1 {
		t.Fatalf("offsets moved: %+v", got)
	}
}

// backendOf returns the writer's backend pid once it waits on a lock.
func waitLocked(t *testing.T, c *pgconn.PgConn, pid uint32) {
	t.Helper()
	waitFor(t, "the writer to wait on a lock", 30*time.Second, func() bool {
		return queryInt(t, c, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'", pid)) == 1
	})
}

func TestTerminatedBackendRetried(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w, pid := connectedWriter(t, url)
	// Hold key 500 so the merge blocks mid-batch.
	blocker := connect(t, url)
	mustExec(t, blocker, "BEGIN; INSERT INTO events VALUES (500, 'blocker', 0)")

	b := newBuilder(tbl, "t", 0)
	for i := range 1000 {
		b.add(int64(i), fInt8(int64(i)), fText("w"), fInt8(int64(i)))
	}
	batch := b.batch(claims[0].Epoch, -1, 1000)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(testCtx(t), batch)
		errc <- err
	}()
	waitLocked(t, c, pid)
	mustExec(t, c, fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid))
	err := <-errc
	if err == nil || !IsRetryable(err) {
		t.Fatalf("terminated backend: %v (retryable %v)", err, IsRetryable(err))
	}
	mustExec(t, blocker, "ROLLBACK")
	res, err := w.Write(testCtx(t), batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed || res.Rows != 1000 {
		t.Fatalf("retry result %+v", res)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events WHERE val = 'w'"); n != 1000 {
		t.Fatalf("%d rows, want 1000", n)
	}
	if got := offsetsOf(t, c); got[0].NextOffset != 1000 {
		t.Fatalf("offsets %+v", got)
	}
}

func TestDeadlockRetried(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w, pid := connectedWriter(t, url)
	other := connect(t, url)
	// other holds key 1; the writer locks the offsets row, then waits for
	// key 1; other then waits for the offsets row: a deadlock. other waits
	// 60s before checking, so the writer is the one PostgreSQL aborts.
	mustExec(t, other, "SET deadlock_timeout = '60s'; BEGIN; INSERT INTO events VALUES (1, 'other', 0)")
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(1), fText("w"), fInt8(0))
	b.add(1, fInt8(2), fText("w"), fInt8(1))
	errc := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, 2))
		errc <- err
	}()
	waitLocked(t, c, pid)
	mustExec(t, other, "UPDATE sluice.offsets SET updated_at = now(); ROLLBACK")
	if err := <-errc; err != nil {
		t.Fatalf("deadlock escaped: %v", err)
	}
	if res.Attempts < 2 {
		t.Fatalf("attempts %d: the deadlock did not happen", res.Attempts)
	}
	if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"1", "w"}, {"2", "w"}}) {
		t.Fatalf("rows %v", got)
	}
}

func TestAmbiguousCommit(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	e := claims[0].Epoch

	// The COMMIT goes through but its answer is lost.
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(1), fText("a"), fInt8(0))
	w.hooks.afterCommit = func(err error) error {
		if err != nil {
			return err
		}
		w.conn.Close(context.Background())
		return io.ErrUnexpectedEOF
	}
	res, err := w.Write(testCtx(t), b.batch(e, -1, 1))
	w.hooks.afterCommit = nil
	if err != nil || res.Rows != 1 || res.Affected != -1 {
		t.Fatalf("lost answer to a commit that happened: %+v, %v", res, err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 1 {
		t.Fatalf("%d rows", n)
	}

	// Direct resolution: committed (stored at To), not committed (at From),
	// fenced (epoch moved).
	committed, err := w.resolveCommit(testCtx(t), []Range{{"t", 0, e, -1, 1}})
	if err != nil || !committed {
		t.Fatalf("committed: %v, %v", committed, err)
	}
	committed, err = w.resolveCommit(testCtx(t), []Range{{"t", 0, e, 1, 2}})
	if err != nil || committed {
		t.Fatalf("not committed: %v, %v", committed, err)
	}
	// The COMMIT never happens (the server rolls back) and the answer is
	// lost: the offsets show it, the error is retryable, the retry lands
	// the batch once.
	b = newBuilder(tbl, "t", 0)
	b.add(1, fInt8(2), fText("b"), fInt8(1))
	w.hooks.commitStmt = "ROLLBACK"
	w.hooks.afterCommit = func(error) error {
		w.conn.Close(context.Background())
		return io.ErrUnexpectedEOF
	}
	_, err = w.Write(testCtx(t), b.batch(e, 1, 2))
	if err == nil || !IsRetryable(err) {
		t.Fatalf("lost commit that did not happen: %v", err)
	}
	w.hooks.commitStmt, w.hooks.afterCommit = "", nil
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 1 {
		t.Fatalf("%d rows after a lost commit", n)
	}
	res, err = w.Write(testCtx(t), b.batch(e, 1, 2))
	if err != nil || res.Replayed || res.Rows != 1 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); !reflect.DeepEqual(got, [][]string{{"1", "a"}, {"2", "b"}}) {
		t.Fatalf("rows %v", got)
	}

	// A newer owner moved the epoch: fenced.
	if _, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {0}}); err != nil {
		t.Fatal(err)
	}
	_, err = w.resolveCommit(testCtx(t), []Range{{"t", 0, e, 2, 3}})
	var fe *FencedError
	if !errors.As(err, &fe) || fe.Stored[0].Epoch != e+1 {
		t.Fatalf("fenced: %v", err)
	}
}

func TestConcurrentWritersOverlappingKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy Policy
		// processes: 0, writers without KeyFilters; else that many
		// KeyFilters, shared by the writers in turn, as processes' are.
		processes int
	}{{PolicyIgnore, 0}, {PolicyUpdate, 0}, {PolicyIgnore, 1}, {PolicyUpdate, 1}, {PolicyIgnore, 2}, {PolicyUpdate, 2}} {
		name := tc.policy.String()
		if tc.processes > 0 {
			name += fmt.Sprintf("/%d processes", tc.processes)
		}
		t.Run(name, func(t *testing.T) {
			tbl := eventsTable()
			tbl.OnConflict = tc.policy
			url, c, claims := setup(t, 4, tbl)
			var filters []*KeyFilter
			for range tc.processes {
				filters = append(filters, NewKeyFilter(0))
			}
			var deferred int
			const batches, rows, keys = 15, 400, 1000
			var wg sync.WaitGroup
			errs := make(chan error, len(claims))
			var retried, chunkRetries int
			var mu sync.Mutex
			for i, cl := range claims {
				var f *KeyFilter
				if len(filters) > 0 {
					f = filters[i%len(filters)]
				}
				wg.Go(func() {
					w := NewWriter(url, "sluice", "g")
					defer w.Close(context.Background())
					// Chunks of 50 rows: a collision after the first costs
					// its chunk (copyNew).
					w.hooks = &hooks{chunkRows: 50}
					rng := rand.New(rand.NewPCG(uint64(cl.Partition), 1))
					from := int64(-1)
					for range batches {
						b := newBuilder(tbl, "t", cl.Partition)
						off := max(from, 0)
						for range rows {
							k := rng.IntN(keys)
							b.add(off, fInt8(int64(k)), fText(fmt.Sprint(cl.Partition)), fInt8(off))
							off++
						}
						batch := b.batch(cl.Epoch, from, off)
						batch.Seen = f
						res, err := w.Write(testCtx(t), batch)
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						retried += res.Attempts - 1
						deferred += res.Deferred
						chunkRetries += res.ChunkRetries
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
			if n := queryInt(t, c, "SELECT count(*) FROM events"); n != keys && n < keys*9/10 {
				t.Fatalf("%d rows for %d keys", n, keys)
			}
			if n := queryInt(t, c, "SELECT count(*) - count(DISTINCT id) FROM events"); n != 0 {
				t.Fatalf("%d duplicate keys", n)
			}
			for _, o := range offsetsOf(t, c) {
				if o.NextOffset != batches*rows {
					t.Fatalf("offsets %+v", o)
				}
			}
			if tc.processes == 1 && retried > 0 {
				// One process's writers set shared keys aside: none collides.
				t.Errorf("%d transactions retried", retried)
			}
			t.Logf("%d transactions retried, %d keys set aside, %d chunks copied again", retried, deferred, chunkRetries)
		})
	}
}

func TestIsRetryable(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}) }
	for err, want := range map[error]bool{
		nil:                                 false,
		&FencedError{}:                      false,
		pg("57P01"):                         true,
		pg("53300"):                         true,
		pg("08006"):                         true,
		pg("40P01"):                         true,
		pg("25P03"):                         true,
		pg("25P04"):                         true,
		pg("25P02"):                         false,
		pg("23505"):                         false,
		pg("22001"):                         false,
		pg("42P01"):                         false,
		io.ErrUnexpectedEOF:                 true,
		context.Canceled:                    false,
		errors.New("no config"):             false,
		&retryableError{errors.New("x")}:    true,
		fmt.Errorf("x: %w", &FencedError{}): false,
	} {
		if got := IsRetryable(err); got != want {
			t.Errorf("IsRetryable(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestBatchValidate(t *testing.T) {
	tbl := eventsTable()
	r := []Range{{Topic: "t", Partition: 0, Epoch: 1, From: -1, To: 1}}
	for name, b := range map[string]*Batch{
		"no table":     {Ranges: r},
		"no ranges":    {Table: tbl},
		"ends short":   {Table: tbl, Ranges: r, Data: []byte{1, 2, 3}, Ends: []int{2}},
		"empty tuple":  {Table: tbl, Ranges: r, Data: []byte{1, 2}, Ends: []int{0, 2}},
		"dup range":    {Table: tbl, Ranges: append(r, r[0])},
		"no advance":   {Table: tbl, Ranges: []Range{{Topic: "t", Partition: 0, Epoch: 1, From: 3, To: 3}}},
		"moves back":   {Table: tbl, Ranges: []Range{{Topic: "t", Partition: 0, Epoch: 1, From: 3, To: 2}, {Topic: "t", Partition: 1, Epoch: 1, From: 0, To: 1}}},
		"ends too far": {Table: tbl, Ranges: r, Data: []byte{1}, Ends: []int{2}},
	} {
		if err := b.validate(); err == nil {
			t.Errorf("%s: validate succeeded", name)
		}
	}
}

// TestCarefulTriggerRaises: a BEFORE trigger that refuses a row with RAISE
// EXCEPTION (SQLSTATE P0001) makes that row a dead letter naming the
// trigger's message, and the rest of the batch lands, on every path: keyed
// and keyless, ignore and update, with and without a KeyFilter, in a
// change batch (a refused delete too) and in a fan-out table of the
// batch. A trigger raising another class (55000 here) is not the row's
// fault: the batch fails, nothing is dead-lettered and the offset stays.
func TestCarefulTriggerRaises(t *testing.T) {
	t.Parallel()
	const refuse = `CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		IF OLD.id = 7 THEN RAISE EXCEPTION 'row 7 is kept'; END IF;
		RETURN OLD;
	END IF;
	IF NEW.%[1]s = 'bad' THEN RAISE EXCEPTION 'no bad values'; END IF;
	IF NEW.%[1]s = 'later' THEN RAISE EXCEPTION 'try later' USING ERRCODE = 'object_not_in_prerequisite_state'; END IF;
	RETURN NEW;
END$$;
CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON %[2]s FOR EACH ROW EXECUTE FUNCTION refuse()`
	for _, pol := range []Policy{PolicyIgnore, PolicyUpdate} {
		for _, keyed := range []bool{true, false} {
			for _, seen := range []bool{false, true} {
				if !keyed && (seen || pol == PolicyUpdate) {
					continue
				}
				t.Run(fmt.Sprintf("%s/keyed=%v/seen=%v", pol, keyed, seen), func(t *testing.T) {
					tbl := eventsTable()
					tbl.OnConflict = pol
					if !keyed {
						tbl.Key = nil
					}
					url, c, claims := setup(t, 1, tbl)
					mustExec(t, c, fmt.Sprintf(refuse, "val", "events"))
					w := newWriter(t, url)
					b := newBuilder(tbl, "t", 0)
					for i := range 200 {
						v := "good"
						if i == 37 || i == 150 {
							v = "bad"
						}
						b.add(int64(i), fInt8(int64(i)), fText(v), fInt8(int64(i)))
					}
					batch := b.batch(claims[0].Epoch, -1, 200)
					if seen {
						batch.Seen = NewKeyFilter(0)
					}
					res, err := w.Write(testCtx(t), batch)
					if err != nil {
						t.Fatal(err)
					}
					if res.Rows != 198 || len(res.Rejected) != 2 {
						t.Fatalf("result rows=%d rejected=%d", res.Rows, len(res.Rejected))
					}
					for _, dl := range res.Rejected {
						if (dl.Offset != 37 && dl.Offset != 150) || !strings.Contains(dl.Error, "no bad values") || !strings.Contains(dl.Error, "P0001") {
							t.Errorf("rejected %+v", dl)
						}
					}
					if n := queryInt(t, c, "SELECT count(*) FROM sluice.dead_letters"); n != 2 {
						t.Errorf("%d dead letters, want 2", n)
					}
					if n := queryInt(t, c, "SELECT count(*) FROM events WHERE val = 'good'"); n != 198 {
						t.Errorf("%d rows landed, want 198", n)
					}
					if got := offsetsOf(t, c); got[0].NextOffset != 200 {
						t.Errorf("offsets %+v", got)
					}

					// Another class: the batch fails as it is.
					b = newBuilder(tbl, "t", 0)
					b.add(200, fInt8(200), fText("good"), fInt8(200))
					b.add(201, fInt8(201), fText("later"), fInt8(201))
					batch = b.batch(claims[0].Epoch, 200, 202)
					if seen {
						batch.Seen = NewKeyFilter(0)
					}
					if _, err := w.Write(testCtx(t), batch); err == nil || IsRetryable(err) || !strings.Contains(err.Error(), "55000") {
						t.Fatalf("error %v", err)
					}
					if n := queryInt(t, c, "SELECT count(*) FROM sluice.dead_letters"); n != 2 {
						t.Errorf("%d dead letters after a refused batch, want 2", n)
					}
					if got := offsetsOf(t, c); got[0].NextOffset != 200 {
						t.Errorf("offsets moved: %+v", got)
					}
				})
			}
		}
	}
	for _, pol := range []Policy{PolicyIgnore, PolicyUpdate} {
		t.Run(fmt.Sprintf("ops/%s", pol), func(t *testing.T) {
			tbl := docsTable("docs", pol)
			url, c, claims := setup(t, 1, tbl)
			mustExec(t, c, fmt.Sprintf(refuse, "a", "docs"))
			d := &docsWriter{t: t, w: newWriter(t, url), tbl: tbl, epoch: claims[0].Epoch, next: -1, seen: NewKeyFilter(0)}
			var cs []change
			for i := range 10 {
				cs = append(cs, up(int64(i), "a", "b"))
			}
			d.write(cs...)
			res := d.write(del(3), del(7), up(8, "bad", "x"), up(9, "c", "c"), up(20, "bad", "x"), up(21, "n", "n"))
			got := map[int64]string{}
			for _, dl := range res.Rejected {
				got[dl.Offset-10] = dl.Error
			}
			want := map[int64]string{1: "row 7 is kept", 2: "no bad values", 4: "no bad values"}
			if len(got) != len(want) {
				t.Fatalf("rejected %v", got)
			}
			for i, s := range want {
				if !strings.Contains(got[i], s) || !strings.Contains(got[i], "P0001") {
					t.Errorf("tuple %d: rejected with %q, want it to mention %q", i, got[i], s)
				}
			}
			wantRows := "0=a,b 1=a,b 2=a,b 4=a,b 5=a,b 6=a,b 7=a,b 8=a,b 9=a,b 21=n,n"
			if pol == PolicyUpdate {
				wantRows = "0=a,b 1=a,b 2=a,b 4=a,b 5=a,b 6=a,b 7=a,b 8=a,b 9=c,c 21=n,n"
			}
			if rows := dump(t, d, "docs"); rows != wantRows {
				t.Errorf("rows\n got %s\nwant %s", rows, wantRows)
			}
			if got := offsetsOf(t, c); got[0].NextOffset != 16 {
				t.Errorf("offsets %+v", got)
			}
		})
	}
	t.Run("fanout", func(t *testing.T) {
		tbl := eventsTable()
		logs := &Table{Name: "public.logs", Columns: []Column{{Name: "id", SQLType: "int8"}, {Name: "line", SQLType: "text"}}, Create: true}
		url, c, claims := setup(t, 1, tbl, logs)
		mustExec(t, c, fmt.Sprintf(refuse, "line", "logs"))
		w := newWriter(t, url)
		b := newBuilder(tbl, "t", 0)
		lb := newBuilder(logs, "t", 0)
		for i := range 50 {
			b.add(int64(i), fInt8(int64(i)), fText("bad"), fInt8(int64(i)))
			line := "ok"
			if i == 20 {
				line = "bad"
			}
			lb.add(int64(i), fInt8(int64(i)), fText(line))
		}
		batch := b.batch(claims[0].Epoch, -1, 50)
		also := lb.batch(0, 0, 0)
		also.Ranges = nil
		also.DeadLetterFor = func(i int, err string) DeadLetter {
			return DeadLetter{Topic: "t", Partition: 0, Offset: lb.offs[i], Target: "public.logs", Error: err, Reason: "rejected"}
		}
		batch.Also = []*Batch{also}
		res, err := w.Write(testCtx(t), batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Rows != 50 || len(res.Rejected) != 0 || len(res.Also) != 1 || res.Also[0].Rows != 49 || len(res.Also[0].Rejected) != 1 {
			t.Fatalf("result %+v", res)
		}
		if dl := res.Also[0].Rejected[0]; dl.Offset != 20 || !strings.Contains(dl.Error, "no bad values") {
			t.Errorf("rejected %+v", dl)
		}
		if got := queryRows(t, c, `SELECT target, "offset" FROM sluice.dead_letters`); !reflect.DeepEqual(got, [][]string{{"public.logs", "20"}}) {
			t.Errorf("dead letters %v", got)
		}
		if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 50 {
			t.Errorf("%d events, want 50", n)
		}
		if n := queryInt(t, c, "SELECT count(*) FROM logs"); n != 49 {
			t.Errorf("%d logs, want 49", n)
		}
		if got := offsetsOf(t, c); got[0].NextOffset != 50 {
			t.Errorf("offsets %+v", got)
		}
	})
}

// TestCarefulConstraintKinds: the target refuses two rows of a batch for
// a reason the codec cannot know, each kind in turn, on every path (keyed
// and keyless, ignore and update, with and without a KeyFilter): the two
// rows become dead letters naming the constraint (or column, or the
// trigger's table), the other 98 land once, and the offset advances, in
// one failed attempt and the careful rerun.
func TestCarefulConstraintKinds(t *testing.T) {
	t.Parallel()
	type kind struct {
		name string
		ddl  string // run after Migrate; refuses the rows whose val is 'bad'
		want string // in the dead letters' error
	}
	kinds := []kind{
		{"check", "ALTER TABLE events ADD CONSTRAINT val_ok CHECK (val <> 'bad')", "val_ok"},
		{"fk", "CREATE TABLE ref (v text PRIMARY KEY); INSERT INTO ref SELECT 'g' || i FROM generate_series(0, 99) i; ALTER TABLE events ADD CONSTRAINT val_fk FOREIGN KEY (val) REFERENCES ref", "val_fk"},
		{"fkdeferred", "CREATE TABLE ref (v text PRIMARY KEY); INSERT INTO ref SELECT 'g' || i FROM generate_series(0, 99) i; ALTER TABLE events ADD CONSTRAINT val_fk FOREIGN KEY (val) REFERENCES ref DEFERRABLE INITIALLY DEFERRED", "val_fk"},
		{"notnull", "ALTER TABLE events ADD COLUMN extra text; UPDATE events SET extra = 'x'; ALTER TABLE events ALTER extra SET NOT NULL; CREATE FUNCTION fx() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW.val IS DISTINCT FROM 'bad' THEN NEW.extra := 'x'; END IF; RETURN NEW; END$$; CREATE TRIGGER fx BEFORE INSERT OR UPDATE ON events FOR EACH ROW EXECUTE FUNCTION fx()", "extra"},
		{"unique", "ALTER TABLE events ADD CONSTRAINT val_uniq UNIQUE (val); INSERT INTO events VALUES (-1, 'bad', 0)", "val_uniq"},
		{"exclusion", "CREATE EXTENSION IF NOT EXISTS btree_gist; ALTER TABLE events ADD CONSTRAINT val_excl EXCLUDE USING gist (val WITH =); INSERT INTO events VALUES (-1, 'bad', 0)", "val_excl"},
		{"trigger", "CREATE FUNCTION rj() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW.val = 'bad' THEN RAISE EXCEPTION 'no bad values'; END IF; RETURN NEW; END$$; CREATE TRIGGER rj BEFORE INSERT OR UPDATE ON events FOR EACH ROW EXECUTE FUNCTION rj()", "no bad values"},
		{"domain", "CREATE DOMAIN okval AS text CHECK (VALUE <> 'bad'); ALTER TABLE events ALTER val TYPE okval", "okval_check"},
		{"generated", "ALTER TABLE events ADD COLUMN g int GENERATED ALWAYS AS (1 / (CASE WHEN val = 'bad' THEN 0 ELSE 1 END)) STORED", "division"},
		{"sidetable", "CREATE TABLE audit (val text CHECK (val <> 'bad')); CREATE FUNCTION au() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO audit VALUES (NEW.val); RETURN NEW; END$$; CREATE TRIGGER au AFTER INSERT OR UPDATE ON events FOR EACH ROW EXECUTE FUNCTION au()", "audit_val_check"},
	}
	for _, k := range kinds {
		for _, pol := range []Policy{PolicyIgnore, PolicyUpdate} {
			for _, keyed := range []bool{true, false} {
				for _, seen := range []bool{false, true} {
					if !keyed && (seen || pol == PolicyUpdate) {
						continue
					}
					t.Run(fmt.Sprintf("%s/%v/keyed=%v/seen=%v", k.name, pol, keyed, seen), func(t *testing.T) {
						tbl := eventsTable()
						tbl.OnConflict = pol
						if !keyed {
							tbl.Key = nil
						}
						url, c, claims := setup(t, 1, tbl)
						mustExec(t, c, k.ddl)
						w := newWriter(t, url)
						b := newBuilder(tbl, "t", 0)
						for i := range 100 {
							v := fmt.Sprint("g", i)
							if i == 37 || i == 80 {
								v = "bad"
							}
							b.add(int64(i), fInt8(int64(i)), fText(v), fInt8(int64(i)))
						}
						batch := b.batch(claims[0].Epoch, -1, 100)
						if seen {
							batch.Seen = NewKeyFilter(1000)
						}
						res, err := w.Write(testCtx(t), batch)
						if err != nil {
							t.Fatalf("err %v (retryable %v) stmts %d", err, IsRetryable(err), w.hooks.stmts)
						}
						// One failed attempt, the careful rerun, then the
						// rerun with the dead letters made: a violation of a
						// unique index other than the key's is no race on
						// the key (it took 6 or 7 attempts under ignore, 12
						// and 5 s of back-off under update).
						if res.Attempts > 3 {
							t.Errorf("%d attempts, want at most 3", res.Attempts)
						}
						var errs []string
						for _, dl := range res.Rejected {
							errs = append(errs, fmt.Sprint(dl.Offset, ": ", dl.Error))
						}
						n := queryInt(t, c, "SELECT count(*) FROM events WHERE id >= 0 AND val LIKE 'g%'")
						if len(res.Rejected) != 2 || res.Rows != 98 || n != 98 {
							t.Errorf("rows=%d landed=%d rejected=%q", res.Rows, n, errs)
						}
						if got := queryRows(t, c, `SELECT "offset" FROM sluice.dead_letters ORDER BY 1`); !reflect.DeepEqual(got, [][]string{{"37"}, {"80"}}) {
							t.Errorf("dead letters %v", got)
						}
						for _, e := range errs {
							if !strings.Contains(e, k.want) {
								t.Errorf("reason %q lacks %q", e, k.want)
							}
						}
						if k.name == "sidetable" {
							// The refused rows' trigger writes were rolled back with them.
							if n := queryInt(t, c, "SELECT count(*) FROM audit"); n != 98 {
								t.Errorf("%d audit rows, want 98", n)
							}
						}
						if got := offsetsOf(t, c); got[0].NextOffset != 100 {
							t.Errorf("offsets %+v", got)
						}
					})
				}
			}
		}
	}
}

// TestLostCommitOfEmptyRanges: a batch whose ranges move no offset
// (From == To) leaves the offsets as they were whether it commits or not,
// so a lost answer to its COMMIT could not be resolved: read as
// committed, a rolled-back batch's rows were lost. Such a batch is
// refused, as is a range that moves an offset back.
func TestLostCommitOfEmptyRanges(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	w := newWriter(t, url)
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(1), fText("a"), fInt8(0))
	w.hooks.commitStmt = "ROLLBACK"
	w.hooks.afterCommit = func(error) error {
		w.conn.Close(context.Background())
		return io.ErrUnexpectedEOF
	}
	res, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, -1, -1))
	if err == nil {
		n := queryInt(t, c, "SELECT count(*) FROM events")
		t.Fatalf("batch of empty ranges: %+v with %d of its 1 rows stored; want it refused", res, n)
	}
	if IsRetryable(err) || !strings.Contains(err.Error(), "advance") {
		t.Fatalf("batch of empty ranges: %v (retryable %v)", err, IsRetryable(err))
	}
	if _, err := w.Write(testCtx(t), b.batch(claims[0].Epoch, 5, 3)); err == nil || IsRetryable(err) {
		t.Fatalf("range moving back: %v", err)
	}
}

// TestAlsoWithoutDeadLetterFor: a row refused in a batch of Batch.Also
// that has no DeadLetterFor fails the Write with an error naming the fix,
// as in the first batch, rather than bisecting into a nil function.
func TestAlsoWithoutDeadLetterFor(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	logs := &Table{Name: "public.logs", Columns: []Column{{Name: "id", SQLType: "int8"}, {Name: "line", SQLType: "text"}}, Create: true}
	url, c, claims := setup(t, 1, tbl, logs)
	mustExec(t, c, "ALTER TABLE logs ADD CONSTRAINT line_ok CHECK (line <> 'bad')")
	w := newWriter(t, url)
	b := newBuilder(tbl, "t", 0)
	lb := newBuilder(logs, "t", 0)
	b.add(0, fInt8(0), fText("a"), fInt8(0))
	lb.add(0, fInt8(0), fText("bad"))
	batch := b.batch(claims[0].Epoch, -1, 1)
	also := lb.batch(0, 0, 0)
	also.Ranges, also.DeadLetterFor = nil, nil
	batch.Also = []*Batch{also}
	_, err := w.Write(testCtx(t), batch)
	if err == nil || IsRetryable(err) || !strings.Contains(err.Error(), "DeadLetterFor") {
		t.Fatalf("err %v", err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 0 {
		t.Fatalf("%d events", n)
	}
}
