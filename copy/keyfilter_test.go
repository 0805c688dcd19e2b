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

// TestFilterBudget: the filters made from one budget hold at most its
// bytes together however many keys they are given, each new filter lowers
// the others' share at once, and a filter whose share fell still knows the
// keys its newest generation held (folded, not forgotten).
func TestFilterBudget(t *testing.T) {
	const budget = 4 << 20
	b := NewFilterBudget(budget)
	var filters []*KeyFilter
	var next uint64
	keys := func(f *KeyFilter, n int) []uint64 {
		hs := make([]uint64, n)
		for i := range hs {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], next)
			next++
			hs[i] = f.hash(k[:])
		}
		return hs
	}
	known := func(f *KeyFilter, hs []uint64) int {
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
	total := func() int {
		n := 0
		for _, f := range filters {
			n += f.Size()
		}
		return n
	}
	// One filter takes the whole budget: 4 MiB is 1 Mi keys at most in its
	// largest generation, 512 Ki of them.
	f0 := b.NewKeyFilter()
	filters = append(filters, f0)
	for range 8 {
		f0.add(keys(f0, 1<<18))
	}
	if s := total(); s > budget || s < budget/2 {
		t.Fatalf("one filter given 2 Mi keys holds %d bytes of a %d-byte budget", s, budget)
	}
	last := keys(f0, 100000)
	f0.add(last)
	// Seven more filters: each share is an eighth, and f0 is over its
	// share at once, before any of them is written.
	for range 7 {
		filters = append(filters, b.NewKeyFilter())
	}
	if s := f0.Size(); s > budget/8 {
		t.Fatalf("the first filter holds %d bytes after seven more filters, its share is %d", s, budget/8)
	}
	if n := known(f0, last); n != len(last) {
		t.Fatalf("the first filter knows %d of the %d keys it was given last after its share fell", n, len(last))
	}
	// Folded twice, its newest generation holds four times the keys per
	// bit: most keys never added are reported (probed needlessly) until
	// generations of its new size have replaced it.
	never := keys(f0, 100000)
	t.Logf("folded filter: %.2f%% false positives", float64(known(f0, never))/1000)
	// Every filter written well past its share: the budget holds, and
	// the first one's false positives are back to those of a full filter.
	for _, f := range filters {
		for range 6 {
			f.add(keys(f, 1<<16))
		}
	}
	if s := total(); s > budget {
		t.Fatalf("eight filters hold %d bytes, over the %d-byte budget", s, budget)
	}
	if n := known(f0, never); n > 1000 {
		t.Errorf("the first filter reports %d of 100,000 keys never added after its folded generation rotated out", n)
	}
	// Past the point where a share is minFilterKeys, a filter holds its
	// floor: 32 KiB, and the keys of its newest generation.
	for len(filters) < 1000 {
		filters = append(filters, b.NewKeyFilter())
	}
	f := filters[len(filters)-1]
	recent := keys(f, minFilterKeys)
	f.add(keys(f, 3*minFilterKeys))
	f.add(recent)
	if s := f.Size(); s > 4*minFilterKeys*bitsPerKey/8 {
		t.Fatalf("a filter at its floor holds %d bytes", s)
	}
	if n := known(f, recent); n != len(recent) {
		t.Fatalf("a filter at its floor knows %d of its last %d keys", n, len(recent))
	}
}

// TestBloomFold: a folded generation knows every key it held.
func TestBloomFold(t *testing.T) {
	g := newBloom(1 << 14)
	rng := rand.New(rand.NewPCG(5, 6))
	hs := make([]uint64, 1<<14)
	for i := range hs {
		hs[i] = rng.Uint64()
		g.add(hs[i])
	}
	for range 3 {
		g.fold()
		for i, h := range hs {
			if !g.has(h) {
				t.Fatalf("after folding to %d blocks, key %d is not known", len(g.blocks), i)
			}
		}
	}
	if len(g.blocks) != (1<<14)*bitsPerKey/512/8 || g.cap != 1<<11 {
		t.Fatalf("folded thrice: %d blocks for %d keys", len(g.blocks), g.cap)
	}
}
