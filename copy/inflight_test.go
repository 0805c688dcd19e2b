package pgcopy

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// claimOf claims hs on f with fresh buffers.
func claimOf(f *KeyFilter, hs ...uint64) (*flight, []int32, []*flight) {
	return f.claim(hs, &claimBufs{}, nil, nil)
}

// TestClaimQueue: a claim reports the positions of the hashes earlier
// flights hold, and for each the last of them; a flight holds its hashes
// until released, whoever queued behind it.
func TestClaimQueue(t *testing.T) {
	f := NewKeyFilter(0)
	a, contested, owners := claimOf(f, 1, 2, 2)
	if len(contested) != 0 || len(owners) != 0 {
		t.Fatalf("first claim: contested %v, owners %v", contested, owners)
	}
	b, contested, owners := claimOf(f, 2, 3, 1)
	if !reflect.DeepEqual(contested, []int32{0, 2}) || !reflect.DeepEqual(owners, []*flight{a}) {
		t.Fatalf("second claim: contested %v, owners %v (want [0 2], [a])", contested, owners)
	}
	c, contested, owners := claimOf(f, 1, 4)
	if !reflect.DeepEqual(contested, []int32{0}) || !reflect.DeepEqual(owners, []*flight{b}) {
		t.Fatalf("third claim: contested %v, owners %v (want [0], [b])", contested, owners)
	}
	f.release(b)
	select {
	case <-b.done:
	default:
		t.Fatal("release did not end the flight")
	}
	d, contested, owners := claimOf(f, 5, 2, 1, 3)
	if !reflect.DeepEqual(contested, []int32{1, 2}) || !reflect.DeepEqual(owners, []*flight{a, c}) {
		t.Fatalf("claim after a release: contested %v, owners %v (want [1 2], [a c])", contested, owners)
	}
	for _, fl := range []*flight{a, c, d} {
		f.release(fl)
	}
	if n := len(f.flying.flights); n != 0 {
		t.Fatalf("%d flights still in flight", n)
	}
}

// pausedWrite starts w.Write(b) in the background, paused before COMMIT
// until the returned release is called with the error the pause ends with
// (nil: commit); it returns once the batch is paused.
func pausedWrite(t *testing.T, w *Writer, b *Batch) (release func(error), result func() (Result, error)) {
	t.Helper()
	paused, resume := make(chan struct{}), make(chan error, 1)
	w.hooks.beforeCommit = func() error {
		close(paused)
		return <-resume
	}
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := w.Write(testCtx(t), b)
		done <- out{res, err}
	}()
	select {
	case <-paused:
	case o := <-done:
		t.Fatalf("the paused write ended: %+v %v", o.res, o.err)
	}
	return func(err error) { resume <- err }, func() (Result, error) { o := <-done; return o.res, o.err }
}

// awaitFlightWait returns once a transaction waits for a flight's lock
// (inflight.go), failing when done is closed first or none does soon.
func awaitFlightWait(t *testing.T, c *pgconn.PgConn, done <-chan struct{}) {
	t.Helper()
	q := fmt.Sprintf("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %d"+
		" AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", flightLockClass)
	for range 500 {
		select {
		case <-done:
			t.Fatal("B ended while A, holding one of its keys, was in flight")
		default:
		}
		if queryInt(t, c, q) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("B never waited for A's lock")
}

// TestDirectDeferredKeys: two writers of one process share a KeyFilter. A
// batch whose keys another batch in flight holds copies its other keys at
// once, waits at its commit for that batch, then merges the shared keys:
// found stored when the other committed, inserted when it rolled back;
// under update, with the guard, whether or not the batch also updates
// stored keys through the staging table.
func TestDirectDeferredKeys(t *testing.T) {
	t.Parallel()
	type row struct {
		key   int64
		val   string
		guard int64
	}
	for _, tc := range []struct {
		name     string
		policy   Policy
		before   []row // committed first, through writer A
		a, b     []row
		abort    bool // A's batch rolls back
		affected int64
		want     [][]string
	}{
		{name: "ignore, other committed", policy: PolicyIgnore, a: []row{{1, "a1", 1}, {2, "a2", 1}, {3, "a3", 1}},
			b: []row{{3, "b3", 1}, {4, "b4", 1}}, affected: 1,
			want: [][]string{{"1", "a1"}, {"2", "a2"}, {"3", "a3"}, {"4", "b4"}}},
		{name: "ignore, other rolled back", policy: PolicyIgnore, a: []row{{1, "a1", 1}, {3, "a3", 1}},
			b: []row{{3, "b3", 1}, {4, "b4", 1}}, abort: true, affected: 2,
			want: [][]string{{"3", "b3"}, {"4", "b4"}}},
		{name: "update, higher guard wins", policy: PolicyUpdate, before: []row{{5, "old5", 1}},
			a: []row{{3, "a3", 10}}, b: []row{{3, "b3", 20}, {5, "b5", 2}, {6, "b6", 1}}, affected: 3,
			want: [][]string{{"3", "b3"}, {"5", "b5"}, {"6", "b6"}}},
		{name: "update, lower guard loses", policy: PolicyUpdate, before: []row{{5, "old5", 1}},
			a: []row{{3, "a3", 10}}, b: []row{{3, "b3", 5}, {5, "b5", 2}, {6, "b6", 1}}, affected: 2,
			want: [][]string{{"3", "a3"}, {"5", "b5"}, {"6", "b6"}}},
		{name: "update, other rolled back", policy: PolicyUpdate,
			a: []row{{3, "a3", 10}}, b: []row{{3, "b3", 5}, {6, "b6", 1}}, abort: true, affected: 2,
			want: [][]string{{"3", "b3"}, {"6", "b6"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tbl := eventsTable()
			tbl.OnConflict = tc.policy
			url, c, claims := setup(t, 3, tbl)
			f := NewKeyFilter(0)
			batch := func(part int32, from int64, rows []row) *Batch {
				bl := newBuilder(tbl, "t", part)
				for i, r := range rows {
					bl.add(from+1+int64(i), fInt8(r.key), fText(r.val), fInt8(r.guard))
				}
				b := bl.batch(claims[part].Epoch, from, from+int64(len(rows)))
				b.Seen = f
				return b
			}
			wa, wb := newWriter(t, url), newWriter(t, url)
			if len(tc.before) > 0 {
				if _, err := wa.Write(testCtx(t), batch(2, -1, tc.before)); err != nil {
					t.Fatal(err)
				}
			}
			release, resultA := pausedWrite(t, wa, batch(0, -1, tc.a))
			bDone := make(chan struct{})
			var res Result
			var err error
			go func() {
				defer close(bDone)
				res, err = wb.Write(testCtx(t), batch(1, -1, tc.b))
			}()
			awaitFlightWait(t, c, bDone)
			if tc.abort {
				release(errors.New("test: A rolls back"))
			} else {
				release(nil)
			}
			if _, aerr := resultA(); (aerr != nil) != tc.abort {
				t.Fatalf("A: %v", aerr)
			}
			<-bDone
			if err != nil {
				t.Fatal(err)
			}
			if !res.Direct || res.Attempts != 1 || res.Deferred != 1 || res.Affected != tc.affected {
				t.Fatalf("B: %+v; want direct, 1 attempt, 1 deferred key, %d affected", res, tc.affected)
			}
			if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("rows %v, want %v", got, tc.want)
			}
			if n := len(f.flying.flights); n != 0 {
				t.Fatalf("%d key hashes still claimed", n)
			}
		})
	}
}

// keysBatch is the first batch of partition part (epoch epoch) of the
// events table: one row per key, valued "p<part>", through KeyFilter f.
func keysBatch(tbl *Table, f *KeyFilter, part int32, epoch int64, keys ...int64) *Batch {
	bl := newBuilder(tbl, "t", part)
	for i, k := range keys {
		bl.add(int64(i), fInt8(k), fText(fmt.Sprint("p", part)), fInt8(int64(i)))
	}
	b := bl.batch(epoch, -1, int64(len(keys)))
	b.Seen = f
	return b
}

// TestDirectDeferredWaitsInPostgreSQL: a batch waits for the batch
// holding its set-aside keys as a lock wait in PostgreSQL, where the
// deadlock detector sees it, and goes on once that batch commits.
func TestDirectDeferredWaitsInPostgreSQL(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 2, tbl)
	f := NewKeyFilter(0)
	batch := func(part int32, keys ...int64) *Batch { return keysBatch(tbl, f, part, claims[part].Epoch, keys...) }
	wa, wb := newWriter(t, url), newWriter(t, url)
	release, resultA := pausedWrite(t, wa, batch(0, 1, 2))
	type out struct {
		res Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := wb.Write(testCtx(t), batch(1, 2, 3))
		done <- out{res, err}
	}()
	awaitFlightWait(t, c, nil)
	release(nil)
	if _, err := resultA(); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if !o.res.Direct || o.res.Attempts != 1 || o.res.Deferred != 1 || o.res.Affected != 1 {
		t.Fatalf("B: %+v; want direct, 1 attempt, 1 deferred key, 1 row affected", o.res)
	}
	if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); !slices.EqualFunc(got, [][]string{{"1", "p0"}, {"2", "p0"}, {"3", "p1"}}, slices.Equal) {
		t.Fatalf("rows %v", got)
	}
}

// TestAwaitBegun: the wait for the transactions of the batches holding
// set-aside keys to begin gives the ids of those still in flight, and ends
// with errDeferTimeout when one does not begin in time.
func TestAwaitBegun(t *testing.T) {
	f := NewKeyFilter(0)
	a, _, _ := claimOf(f, 1)
	b, _, _ := claimOf(f, 2)
	ended, _, _ := claimOf(f, 3)
	f.release(ended)
	a.began()
	if _, err := awaitBegun(testCtx(t), []*flight{a, b}, 50*time.Millisecond, nil); !errors.Is(err, errDeferTimeout) {
		t.Fatalf("b never began: %v, want errDeferTimeout", err)
	}
	b.began()
	ids, err := awaitBegun(testCtx(t), []*flight{a, ended, b}, time.Second, nil)
	if err != nil || !slices.Equal(ids, []int32{a.id, b.id}) {
		t.Fatalf("ids %v, err %v; want %v", ids, err, []int32{a.id, b.id})
	}
	if got := waitSQL([]int32{-5, 7}); got != fmt.Sprintf("SELECT pg_advisory_xact_lock_shared(%d, x) FROM unnest('{-5,7}'::int4[]) AS x", flightLockClass) {
		t.Fatalf("waitSQL: %s", got)
	}
}

// TestDirectDeferredFenced: a batch of a partition another owner claimed
// meanwhile is still fenced when some of its keys wait for another batch
// of the process, writes nothing, and leaves no claim behind.
func TestDirectDeferredFenced(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 2, tbl)
	f := NewKeyFilter(0)
	batch := func(part int32, epoch int64, keys ...int64) *Batch { return keysBatch(tbl, f, part, epoch, keys...) }
	// Another owner takes partition 1: its epoch moves on.
	if _, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {1}}); err != nil {
		t.Fatal(err)
	}
	wa, wb := newWriter(t, url), newWriter(t, url)
	release, resultA := pausedWrite(t, wa, batch(0, claims[0].Epoch, 1, 2))
	go func() {
		time.Sleep(200 * time.Millisecond)
		release(nil)
	}()
	_, err := wb.Write(testCtx(t), batch(1, claims[1].Epoch, 2, 3))
	var fe *FencedError
	if !errors.As(err, &fe) {
		t.Fatalf("B: %v, want fenced", err)
	}
	if _, err := resultA(); err != nil {
		t.Fatal(err)
	}
	if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); !slices.EqualFunc(got, [][]string{{"1", "p0"}, {"2", "p0"}}, slices.Equal) {
		t.Fatalf("rows %v", got)
	}
	if n := len(f.flying.flights); n != 0 {
		t.Fatalf("%d key hashes still claimed", n)
	}
}

// TestDeferredWaitOutsideTransaction: a batch whose keys another batch of
// the process claimed first waits for that batch's transaction to begin
// (up to deferWait, 30 s) before its own begins, not idle inside its
// transaction, where it would hold its offsets rows locked and be ended
// by idle_in_transaction_session_timeout (5 s).
func TestDeferredWaitOutsideTransaction(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	f := NewKeyFilter(0)
	b := keysBatch(tbl, f, 0, claims[0].Epoch, 1, 2)
	k, ok := CutKey(nil, b.Data[:b.Ends[0]], tbl.KeyFields())
	if !ok {
		t.Fatal("cannot cut the key of tuple 0")
	}
	other, _, _ := claimOf(f, f.hash(k)) // claimed, not begun
	w, pid := connectedWriter(t, url)
	state := ""
	w.hooks.beforeAwait = func() {
		state = queryRows(t, c, fmt.Sprintf("SELECT state FROM pg_stat_activity WHERE pid = %d", pid))[0][0]
		f.release(other)
	}
	res, err := w.Write(testCtx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if state == "" {
		t.Fatal("the writer did not wait for the batch holding key 1")
	}
	if state != "idle" {
		t.Errorf("the writer waited for the batch holding key 1 in state %q, want idle", state)
	}
	if res.Rows != 2 || queryInt(t, c, "SELECT count(*) FROM events") != 2 {
		t.Fatalf("result %+v", res)
	}
}
