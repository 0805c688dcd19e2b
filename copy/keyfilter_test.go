package pgcopy

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestKeyFilter: a key added is reported for as long as its generation
// lives (no false negative over the last generation's worth of keys),
// keys never added are reported rarely, a full generation rotates out the
// one before it, and memory stays within two generations.
func TestKeyFilter(t *testing.T) {
	const max = 2 * firstGenKeys
	f := NewKeyFilter(max)
	key := func(i uint64) uint64 {
		var b [20]byte
		binary.BigEndian.PutUint32(b[:], 16)
		binary.BigEndian.PutUint64(b[4:], mix64(i))
		binary.BigEndian.PutUint64(b[12:], i)
		return f.hash(b[:])
	}
	hits := func(from, to uint64) int {
		hs := make([]uint64, 0, to-from)
		for i := from; i < to; i++ {
			hs = append(hs, key(i))
		}
		may := make([]bool, len(hs))
		f.mayContain(hs, may)
		n := 0
		for _, m := range may {
			if m {
				n++
			}
		}
		return n
	}
	var added uint64
	add := func(n int) {
		hs := make([]uint64, 0, n)
		for range n {
			hs = append(hs, key(added))
			added++
		}
		f.add(hs)
	}
	if n := hits(0, 1000); n != 0 {
		t.Fatalf("an empty filter holds %d of 1000 keys", n)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for next := uint64(max / 8); added < 5*max; next += max / 8 {
		for added < next {
			add(1 + rng.IntN(20000))
		}
		// Every key of the last generation's capacity is still known.
		from := uint64(0)
		if added > max {
			from = added - max
		}
		if n := hits(from, added); n != int(added-from) {
			t.Fatalf("after %d keys: only %d of the last %d are known", added, n, added-from)
		}
		if s := f.Size(); s > 2*max*bitsPerKey/8+128 {
			t.Fatalf("after %d keys the filter holds %d bytes, more than two generations", added, s)
		}
	}
	// Keys never added: false positives at about 0.1%.
	if n := hits(1<<40, 1<<40+100000); n > 500 {
		t.Errorf("%d false positives in 100,000 keys never added, want under 0.5%%", n)
	} else {
		t.Logf("%.2f%% false positives", float64(n)/1000)
	}
	// The first keys are long rotated out: known no more often than keys
	// never added.
	if n := hits(0, 10000); n > 1000 {
		t.Errorf("%d of the 10,000 first keys still known after %d more", n, added)
	}
}
