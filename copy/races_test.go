package pgcopy

import (
	"errors"
	"fmt"
	"testing"
)

// Races between two processes writing the same keys: each test forces
// one interleaving of a Writer's statements with another session's (the
// other process) and checks that the row ends as some order of the two
// commits would leave it.

// pauseAfterUpdate makes the nth UPDATE statement on table of each
// transaction of a Writer's session (application_name sluice) wait, once
// it has run, for the advisory lock key, which the returned session
// holds: a statement-level trigger, which fires even when the UPDATE
// changed no row (and for INSERT … ON CONFLICT DO UPDATE, whether or not
// it updated). release lets the statement go on.
func pauseAfterUpdate(t *testing.T, url, table string, nth, key int) (release func()) {
	t.Helper()
	c := connect(t, url)
	mustExec(t, c, fmt.Sprintf(`CREATE FUNCTION pause_%[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n int := coalesce(nullif(current_setting('sluice_test.updates', true), ''), '0')::int + 1;
BEGIN
IF current_setting('application_name') <> 'sluice' THEN RETURN NULL; END IF;
PERFORM set_config('sluice_test.updates', n::text, true);
IF n = %[2]d THEN PERFORM pg_advisory_xact_lock_shared(%[3]d); END IF;
RETURN NULL;
END $$;
CREATE TRIGGER pause_%[1]s AFTER UPDATE ON %[1]s FOR EACH STATEMENT EXECUTE FUNCTION pause_%[1]s()`, table, nth, key))
	holder := connect(t, url)
	mustExec(t, holder, fmt.Sprintf("SELECT pg_advisory_lock(%d)", key))
	return func() { mustExec(t, holder, fmt.Sprintf("SELECT pg_advisory_unlock(%d)", key)) }
}

// TestOpsKeptColumnsRowCommittedAfterUpdate: under on_conflict update a
// change that keeps a stored column (a TOAST placeholder) updates the
// stored row under the guard; when that UPDATE finds no row, the apply
// function looked whether the key was stored and, if so, kept it as
// stored, taking it for a row with a guard at least as high. A row
// another process committed between the two, with a lower guard, then
// won over the newer change. Every order of the two commits leaves the
// newer change applied over the other's row (its kept column from it).
func TestOpsKeptColumnsRowCommittedAfterUpdate(t *testing.T) {
	t.Parallel()
	for _, claimed := range []bool{false, true} {
		t.Run(fmt.Sprint("claimed=", claimed), func(t *testing.T) {
			tbl := docsTable("docs", PolicyUpdate)
			url, c, claims := setup(t, 1, tbl)
			w, pid := connectedWriter(t, url)
			d := &docsWriter{t: t, w: w, tbl: tbl, epoch: claims[0].Epoch, next: -1, base: 100}
			if claimed {
				d.seen = NewKeyFilter(0)
			}
			// The apply function's key query (its INSERT … ON CONFLICT DO
			// UPDATE of the plain keys) is the first UPDATE; the loop's
			// UPDATE of key 1 the second.
			release := pauseAfterUpdate(t, url, "docs", 2, 7001)
			// Key 1 is not stored yet: the change at offset 100 keeps a.
			b := d.batch(keep(1, "", "mine", keepA))
			errc := make(chan error, 1)
			go func() {
				_, err := w.Write(testCtx(t), b)
				errc <- err
			}()
			waitLocked(t, c, pid)
			// The other process commits key 1 with an older guard.
			mustExec(t, c, "INSERT INTO docs VALUES (1, 'theirs', 'theirs', 5)")
			release()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			got := queryRows(t, c, "SELECT id, a, b, off FROM docs ORDER BY id")
			if want := "[[1 theirs mine 100]]"; fmt.Sprint(got) != want {
				t.Fatalf("rows %v, want %s: the newer change applied over the row committed meanwhile", got, want)
			}
		})
	}
}

// TestClaimDuringBatch: a new owner's claim and a batch of the old owner
// in flight, in both orders. A batch past its compare-and-set holds the
// offsets row: the claim waits for the batch's commit and starts after
// it, and the old owner's next batch is fenced. A batch whose
// compare-and-set meets a claim not yet committed waits for it, and is
// then fenced, writing nothing.
func TestClaimDuringBatch(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 1, tbl)
	batch := func(epoch, from int64, keys ...int64) *Batch {
		b := newBuilder(tbl, "t", 0)
		for i, k := range keys {
			b.add(max(from, 0)+int64(i), fInt8(k), fText(fmt.Sprint("epoch ", epoch)), fInt8(0))
		}
		return b.batch(epoch, from, max(from, 0)+int64(len(keys)))
	}
	old := newWriter(t, url)
	release, result := pausedWrite(t, old, batch(claims[0].Epoch, -1, 1, 2))
	claimer := connect(t, url)
	type claimed struct {
		c   []Claim
		err error
	}
	cc := make(chan claimed, 1)
	go func() {
		cl, err := ClaimPartitions(testCtx(t), claimer, "sluice", "g", map[string][]int32{"t": {0}})
		cc <- claimed{cl, err}
	}()
	waitLocked(t, c, claimer.PID())
	release(nil)
	if _, err := result(); err != nil {
		t.Fatalf("the batch in flight: %v", err)
	}
	cl := <-cc
	if cl.err != nil || len(cl.c) != 1 || cl.c[0].Epoch != claims[0].Epoch+1 || cl.c[0].NextOffset != 2 {
		t.Fatalf("claim %+v, %v: want epoch %d at offset 2, after the batch", cl.c, cl.err, claims[0].Epoch+1)
	}
	var fe *FencedError
	if _, err := old.Write(testCtx(t), batch(claims[0].Epoch, 2, 3)); !errors.As(err, &fe) {
		t.Fatalf("the old owner's next batch: %v, want fenced", err)
	}

	// The other order: a claim holds the row when the batch begins.
	mustExec(t, claimer, "BEGIN; UPDATE sluice.offsets SET owner_epoch = owner_epoch + 1")
	w, pid := connectedWriter(t, url)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(testCtx(t), batch(cl.c[0].Epoch, 2, 3, 4))
		errc <- err
	}()
	waitLocked(t, c, pid)
	mustExec(t, claimer, "COMMIT")
	if err := <-errc; !errors.As(err, &fe) {
		t.Fatalf("a batch meeting a claim: %v, want fenced", err)
	}
	if got := queryRows(t, c, "SELECT id, val FROM events ORDER BY id"); fmt.Sprint(got) != fmt.Sprintf("[[1 epoch %[1]d] [2 epoch %[1]d]]", claims[0].Epoch) {
		t.Fatalf("rows %v: want only the first batch's", got)
	}
	if o := offsetsOf(t, c); o[0].NextOffset != 2 || o[0].Epoch != cl.c[0].Epoch+1 {
		t.Fatalf("offsets %+v", o)
	}
}
