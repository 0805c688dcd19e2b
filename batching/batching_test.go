package batching

import (
	"bytes"
	"runtime"
	"testing"
	"time"
)

func TestBatchRowsAndTruncate(t *testing.T) {
	b := Get()
	defer Put(b)
	now := time.Unix(100, 0)
	b.Buf.B = append(b.Buf.B, "row0"...)
	b.EndRow(now)
	mark := b.Mark()
	b.Buf.B = append(b.Buf.B, "half"...)
	b.Truncate(mark)
	b.Buf.B = append(b.Buf.B, "row1!"...)
	b.EndRow(now.Add(time.Second))
	if b.Rows() != 2 || b.Len() != 9 {
		t.Fatalf("rows=%d len=%d, want 2 and 9", b.Rows(), b.Len())
	}
	if !bytes.Equal(b.Row(0), []byte("row0")) || !bytes.Equal(b.Row(1), []byte("row1!")) {
		t.Fatalf("rows %q %q", b.Row(0), b.Row(1))
	}
	if !b.Started.Equal(now) {
		t.Fatalf("Started = %v, want the first row's time %v", b.Started, now)
	}
}

func TestLimits(t *testing.T) {
	l := Limits{MaxRows: 2, MaxBytes: 10, MaxAge: time.Second}
	b := Get()
	defer Put(b)
	now := time.Unix(100, 0)
	if l.Full(b) || l.Due(b, now.Add(time.Hour)) {
		t.Fatal("an empty batch is neither full nor due")
	}
	b.Buf.B = append(b.Buf.B, "abc"...)
	b.EndRow(now)
	if l.Full(b) {
		t.Fatal("1 row, 3 bytes is not full")
	}
	if l.Due(b, now.Add(999*time.Millisecond)) || !l.Due(b, now.Add(time.Second)) {
		t.Fatal("age trigger wrong")
	}
	b.Buf.B = append(b.Buf.B, "abcdefgh"...)
	if !l.Full(b) {
		t.Fatal("11 bytes must be full by bytes")
	}
	b.Truncate(3)
	b.Buf.B = append(b.Buf.B, "x"...)
	b.EndRow(now)
	if !l.Full(b) {
		t.Fatal("2 rows must be full by rows")
	}
}

func TestBudgetHysteresis(t *testing.T) {
	b := NewBudget(100)
	if b.Acquire(60) {
		t.Fatal("60/100 is not over")
	}
	if !b.Acquire(60) {
		t.Fatal("120/100 is over")
	}
	b.Release(30)
	if b.Over() || b.Resumable() {
		t.Fatalf("90/100: over=%v resumable=%v, want false false", b.Over(), b.Resumable())
	}
	b.Release(40)
	if !b.Resumable() || b.InUse() != 50 {
		t.Fatalf("50/100 must be resumable, inUse=%d", b.InUse())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("releasing more than acquired must panic")
		}
	}()
	b.Release(51)
}

func TestPutGetReuses(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	allocs := testing.AllocsPerRun(1000, func() {
		b := Get()
		b.Buf.B = append(b.Buf.B, "0123456789"...)
		b.EndRow(time.Time{})
		Put(b)
	})
	if allocs != 0 {
		t.Fatalf("Get/append/Put allocates %.1f times, want 0", allocs)
	}
}

// A large batch buffer outlives garbage collections (which empty the
// sync.Pool under bytebufferpool), and Reserve sizes a fresh batch without
// copying it later.
func TestLargeBufferSurvivesGC(t *testing.T) {
	b := Get()
	b.Reserve(4<<20, 1000)
	if cap(b.Buf.B) < 4<<20 || cap(b.Ends) < 1000 {
		t.Fatalf("Reserve(4 MiB, 1000) left capacities %d and %d", cap(b.Buf.B), cap(b.Ends))
	}
	b.Buf.B = append(b.Buf.B, bytes.Repeat([]byte{'x'}, 3<<20)...)
	want := &b.Buf.B[:1][0]
	b.Reserve(1<<20, 10) // already large enough: no new buffer
	if &b.Buf.B[:1][0] != want {
		t.Fatal("Reserve replaced a buffer that was large enough")
	}
	Put(b)
	runtime.GC()
	runtime.GC()
	got := Get()
	defer Put(got)
	if got.Len() != 0 {
		t.Fatalf("a reused buffer holds %d bytes, want 0", got.Len())
	}
	if cap(got.Buf.B) < 4<<20 || &got.Buf.B[:1][0] != want {
		t.Fatalf("after two GCs Get returned a buffer of capacity %d, not the 4 MiB one put back", cap(got.Buf.B))
	}
}

func TestEnsureDoubles(t *testing.T) {
	b := Get()
	defer Put(b)
	b.Ensure(1 << 20)
	c := cap(b.Buf.B)
	if c < 1<<20 {
		t.Fatalf("Ensure(1 MiB) on an empty batch left capacity %d", c)
	}
	b.Buf.B = b.Buf.B[:c]
	b.Ensure(10)
	if cap(b.Buf.B) < 2*c {
		t.Fatalf("Ensure on a full batch of capacity %d grew it to %d, want at least double", c, cap(b.Buf.B))
	}
	if len(b.Buf.B) != c {
		t.Fatalf("Ensure changed the length from %d to %d", c, len(b.Buf.B))
	}
}

func TestSlowStart(t *testing.T) {
	l := Limits{MaxRows: 50000, MaxBytes: 32 << 20, MaxAge: time.Second}
	for _, c := range []struct{ prev, rows int }{
		{0, 3125}, {10, 3125}, {3125, 6250}, {6250, 12500}, {12500, 25000}, {25000, 50000}, {50000, 50000}, {90000, 50000},
	} {
		got := l.SlowStart(c.prev)
		if got.MaxRows != c.rows || got.MaxAge != l.MaxAge {
			t.Errorf("SlowStart(%d) = %+v, want %d rows and the same age", c.prev, got, c.rows)
		}
		if want := int(int64(l.MaxBytes) * int64(c.rows) / int64(l.MaxRows)); got.MaxBytes != want {
			t.Errorf("SlowStart(%d).MaxBytes = %d, want %d", c.prev, got.MaxBytes, want)
		}
	}
	one := Limits{MaxRows: 1, MaxBytes: 1024}
	if got := one.SlowStart(0); got.MaxRows != 1 || got.MaxBytes != 1024 {
		t.Errorf("SlowStart of a one-row limit = %+v, want it unchanged", got)
	}
}

// TestShare: a batch takes at most half of what is left, between a
// sixteenth of MaxRows and MaxRows; unknown remaining changes nothing.
func TestShare(t *testing.T) {
	l := Limits{MaxRows: 50000, MaxBytes: 32 << 20, MaxAge: time.Second}
	for _, c := range []struct{ remaining, rows int }{
		{-1, 50000}, {1 << 40, 50000}, {200000, 50000}, {60000, 30000}, {30000, 15000}, {6000, 3125}, {0, 3125},
	} {
		got := l.Share(c.remaining)
		if got.MaxRows != c.rows || got.MaxAge != l.MaxAge {
			t.Errorf("Share(%d) = %+v, want %d rows and the same age", c.remaining, got, c.rows)
		}
		if want := int(int64(l.MaxBytes) * int64(c.rows) / int64(l.MaxRows)); got.MaxBytes != want {
			t.Errorf("Share(%d).MaxBytes = %d, want %d", c.remaining, got.MaxBytes, want)
		}
	}
}
