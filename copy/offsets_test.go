package pgcopy

import (
	"reflect"
	"testing"
)

func TestClaimPartitions(t *testing.T) {
	t.Parallel()
	url, c, claims := setup(t, 2)
	_ = url
	want := []Claim{{"t", 0, 1, -1}, {"t", 1, 1, -1}}
	if !reflect.DeepEqual(claims, want) {
		t.Fatalf("first claim: %+v, want %+v", claims, want)
	}
	claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": {1, 0}, "u": {3}})
	if err != nil {
		t.Fatal(err)
	}
	want = []Claim{{"t", 0, 2, -1}, {"t", 1, 2, -1}, {"u", 3, 1, -1}}
	if !reflect.DeepEqual(claims, want) {
		t.Fatalf("second claim: %+v, want %+v", claims, want)
	}
	old, epoch, err := ResetOffset(testCtx(t), c, "sluice", "g", "t", 1, 500)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Claim{"t", 1, 2, -1}); old != want || epoch != 3 {
		t.Fatalf("reset returned %+v and epoch %d, want %+v and 3", old, epoch, want)
	}
	got, err := ReadOffsets(testCtx(t), c, "sluice", "g")
	if err != nil {
		t.Fatal(err)
	}
	want = []Claim{{"t", 0, 2, -1}, {"t", 1, 3, 500}, {"u", 3, 1, -1}}
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
	if want := (Claim{"v", 0, 0, -1}); old != want || epoch != 1 {
		t.Fatalf("reset of a new partition returned %+v and epoch %d, want %+v and 1", old, epoch, want)
	}
}
