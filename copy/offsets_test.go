package pgcopy

import (
	"reflect"
	"testing"
)

func TestClaimPartitions(t *testing.T) {
	t.Parallel()
	url, c, claims := setup(t, 2)
	_ = url
	want := []Claim{{"t", 0, 1, -1, 0}, {"t", 1, 1, -1, 0}}
	if !reflect.DeepEqual(claims, want) {
		t.Fatalf("first claim: %+v, want %+v", claims, want)
	}
	claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {1, 0}, "u": {3}})
	if err != nil {
		t.Fatal(err)
	}
	want = []Claim{{"t", 0, 2, -1, 0}, {"t", 1, 2, -1, 0}, {"u", 3, 1, -1, 0}}
	if !reflect.DeepEqual(claims, want) {
		t.Fatalf("second claim: %+v, want %+v", claims, want)
	}
	old, epoch, err := ResetOffset(testCtx(t), c, "sluice", "g", "t", 1, 500)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Claim{"t", 1, 2, -1, 0}); old != want || epoch != 3 {
		t.Fatalf("reset returned %+v and epoch %d, want %+v and 3", old, epoch, want)
	}
	got, err := ReadOffsets(testCtx(t), c, "sluice", "g")
	if err != nil {
		t.Fatal(err)
	}
	want = []Claim{{"t", 0, 2, -1, 0}, {"t", 1, 3, 500, 2}, {"u", 3, 1, -1, 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after reset: %+v, want %+v", got, want)
	}
	if other, err := ReadOffsets(testCtx(t), c, "sluice", "other"); err != nil || len(other) != 0 {
		t.Fatalf("other group: %v, %v", other, err)
	}
	for _, next := range []int64{-1, -5} {
		if _, _, err := ResetOffset(testCtx(t), c, "sluice", "g", "t", 1, next); err == nil {
			t.Fatalf("reset to %d succeeded", next)
		}
	}
	// A partition nothing claimed yet: no old row.
	old, epoch, err = ResetOffset(testCtx(t), c, "sluice", "g", "v", 0, 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Claim{"v", 0, 0, -1, 0}); old != want || epoch != 1 {
		t.Fatalf("reset of a new partition returned %+v and epoch %d, want %+v and 1", old, epoch, want)
	}
}

// TestReclaimReset: an owner fenced by resets (and nothing else since its
// claim) claims the partition again at the reset offset; after another
// owner's claim it cannot, and changes nothing.
func TestReclaimReset(t *testing.T) {
	t.Parallel()
	_, c, _ := setup(t, 1) // t/0 at epoch 1
	ctx := testCtx(t)
	for _, next := range []int64{10, 20} { // two resets: the first owner is still the one fenced
		if _, _, err := ResetOffset(ctx, c, "sluice", "g", "t", 0, next); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := ReclaimReset(ctx, c, "sluice", "g", "t", 0, 2); err != nil || ok {
		t.Fatalf("reclaim under epoch 2 (never an owner's): %v, %v; want false", ok, err)
	}
	got, ok, err := ReclaimReset(ctx, c, "sluice", "g", "t", 0, 1)
	if want := (Claim{"t", 0, 4, 20, 0}); err != nil || !ok || got != want {
		t.Fatalf("reclaim under epoch 1: %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if _, ok, err := ReclaimReset(ctx, c, "sluice", "g", "t", 0, 1); err != nil || ok {
		t.Fatalf("second reclaim: %v, %v; want false", ok, err)
	}
	// A reset, then another owner's claim: the owner under epoch 4 is a
	// zombie.
	if _, _, err := ResetOffset(ctx, c, "sluice", "g", "t", 0, 30); err != nil {
		t.Fatal(err)
	}
	if _, err := ClaimPartitions(ctx, c, "sluice", "g", map[string][]int32{"t": {0}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ReclaimReset(ctx, c, "sluice", "g", "t", 0, 4); err != nil || ok {
		t.Fatalf("reclaim after another owner's claim: %v, %v; want false", ok, err)
	}
	stored, err := ReadOffsets(ctx, c, "sluice", "g")
	if want := []Claim{{"t", 0, 6, 30, 0}}; err != nil || !reflect.DeepEqual(stored, want) {
		t.Fatalf("stored %+v, %v; want %+v", stored, err, want)
	}
}

// TestReplayWithEmptyRange: a batch whose ranges include one that moves
// no offset (From == To) is recognised as a replay when it is written
// again after committing: its empty range matches as it did the first
// time, and the others are at To under the same epoch.
func TestReplayWithEmptyRange(t *testing.T) {
	t.Parallel()
	tbl := eventsTable()
	url, c, claims := setup(t, 2, tbl)
	w := newWriter(t, url)
	b := newBuilder(tbl, "t", 0)
	b.add(0, fInt8(1), fText("a"), fInt8(0))
	batch := b.batch(claims[0].Epoch, -1, 1)
	batch.Ranges = append(batch.Ranges, Range{Topic: "t", Partition: 1, Epoch: claims[1].Epoch, From: -1, To: -1})
	if _, err := w.Write(testCtx(t), batch); err != nil {
		t.Fatal(err)
	}
	res, err := w.Write(testCtx(t), batch)
	if err != nil || !res.Replayed {
		t.Fatalf("written again: %+v, %v; want Replayed", res, err)
	}
	if n := queryInt(t, c, "SELECT count(*) FROM events"); n != 1 {
		t.Fatalf("%d rows", n)
	}
}
