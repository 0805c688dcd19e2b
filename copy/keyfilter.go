package pgcopy

import (
	"hash/maphash"
	"math/bits"
	"sync"
	"unsafe"
)

// KeyFilter remembers, approximately and in bounded memory, the keys
// recently committed to one target table, so that the direct path probes
// the table only for the keys that may be there (direct.go). Measured with
// `sluice bench` on the reference event, probing every key cost PostgreSQL
// about a CPU-second per million rows, a sixth of its work.
//
// It is a list of blocked Bloom filters, the generations (each key sets
// probesPerKey bits within one 64-byte block of bitsPerKey bits per key,
// so a lookup is one cache miss per generation): a key added is reported
// as possibly present for as long as its generation lives (no false
// negative); a key never added is reported with a probability of about
// 0.1% over all generations (a false positive: one needless probe; see
// bitsPerKey). Generations start at firstGenKeys (512 KiB) and double up
// to max keys, so a small table's filter stays small while a large one is
// checked against a few generations only (each costs a lookup, and most
// keys are new, so most lookups check them all); when one is full a new
// one starts, and the oldest are forgotten once the others hold more than
// max keys. The filter thus covers every key until it has seen about
// 2×max, the last max to 2×max keys after that, and holds at most 4×max
// bytes (bitsPerKey is 16). The filters of one process draw max from a
// FilterBudget (below).
//
// The filter knows only what its own process committed: keys written by
// other instances, by this instance before a restart, or longer ago than
// its window are unknown to it. Correctness never depends on it: a key it
// lets through unprobed that is in the table makes COPY fail with a unique
// violation, and the Writer reruns the batch probing every key, and probes
// every key of that table for a while after (Writer.Write's back-off).
//
// A KeyFilter is safe for concurrent use: the Writers of one table share
// one (Batch.Seen).
type KeyFilter struct {
	flying inFlight // keys of direct batches in flight (inflight.go)

	mu   sync.RWMutex
	seed maphash.Seed
	max  int     // keys per generation at most
	gens []bloom // oldest first
}

// bloom is one generation.
type bloom struct {
	blocks []bloomBlock
	n, cap int // keys added, keys it is sized for
}

type bloomBlock [8]uint64

const (
	// KeyFilterKeys is the default largest generation: the filter then
	// remembers the last 2–4 million keys of a table in at most 8 MiB.
	KeyFilterKeys = 2 << 20
	firstGenKeys  = 1 << 18
	// bitsPerKey and probesPerKey: 0.08-0.10% false positives in
	// TestKeyFilter, against 2.5% with 8 bits and 5 probes. In a
	// 1,000,000-record drain of the reference event with 1% updates
	// (`sluice bench`, debug log) a 50,000-row batch then probed 0-66 keys
	// where it had probed 800-1,300 once the generations filled (the
	// plain shape 1,300-2,700); under on_conflict update each of those
	// was also staged and looked up by the UPDATE. Two bytes per key
	// remembered buy that.
	bitsPerKey   = 16
	probesPerKey = 7 // bits set per key, each chosen by 9 bits of the hash
)

// NewKeyFilter returns an empty filter whose generations hold at most
// maxKeys keys each (KeyFilterKeys when maxKeys <= 0).
func NewKeyFilter(maxKeys int) *KeyFilter {
	if maxKeys <= 0 {
		maxKeys = KeyFilterKeys
	}
	return &KeyFilter{seed: maphash.MakeSeed(), max: max(maxKeys, firstGenKeys)}
}

// FilterBudget bounds the memory of the KeyFilters made from it, one per
// keyed table of a process: without it, each would grow to 4×KeyFilterKeys
// bytes (8 MiB), and a process writing dozens of large tables (a topic
// routed to many, {topic} templates) would hold far more than its memory
// limit. Each filter's generations hold at most the budget's share,
// its bytes over the filters made from it so far, as a power of two of
// keys between minFilterKeys and KeyFilterKeys. A new filter lowers every
// share at once: a filter over its new share forgets its oldest
// generations and folds its newest (limit). Fewer keys remembered or more
// false positives cost probes, never correctness (KeyFilter).
type FilterBudget struct {
	bytes   int
	mu      sync.Mutex
	filters []*KeyFilter
}

// minFilterKeys is the fewest keys a budgeted filter's generations are
// sized for, whatever its share: 32 KiB for its two generations.
const minFilterKeys = 1 << 13

// NewFilterBudget returns a budget of bytes for the filters made from it.
func NewFilterBudget(bytes int) *FilterBudget { return &FilterBudget{bytes: bytes} }

// NewKeyFilter returns an empty filter that draws on b, and lowers the
// share of the filters made before it.
func (b *FilterBudget) NewKeyFilter() *KeyFilter {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := &KeyFilter{seed: maphash.MakeSeed()}
	b.filters = append(b.filters, f)
	// A filter holds at most two generations' worth: 4 bytes per key of
	// its largest generation (bitsPerKey is 16).
	keys := b.bytes / len(b.filters) / (2 * bitsPerKey / 8)
	keys = min(max(keys, minFilterKeys), KeyFilterKeys)
	keys = 1 << (bits.Len(uint(keys)) - 1) // folding halves generations
	for _, g := range b.filters {
		g.limit(keys)
	}
	return f
}

// Size returns the bytes the filters made from b hold.
func (b *FilterBudget) Size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, f := range b.filters {
		n += f.Size()
	}
	return n
}

// limit lowers f's largest generation to maxKeys keys (a power of two):
// it forgets its oldest generations while the others hold more than
// maxKeys, and folds the rest down to maxKeys (fold).
func (f *KeyFilter) limit(maxKeys int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.max = maxKeys
	if len(f.gens) == 0 {
		return
	}
	for i := range f.gens {
		for f.gens[i].cap > maxKeys {
			f.gens[i].fold()
		}
	}
	f.forgetOldest()
}

// hash returns the filter's hash of an encoded key.
func (f *KeyFilter) hash(key []byte) uint64 { return maphash.Bytes(f.seed, key) }

func newBloom(keys int) bloom {
	return bloom{blocks: make([]bloomBlock, max(keys*bitsPerKey/512, 1)), cap: keys}
}

// block returns h's block.
func (g *bloom) block(h uint64) *bloomBlock {
	blk, _ := bits.Mul64(h, uint64(len(g.blocks)))
	return &g.blocks[blk]
}

// where returns h's block and the bits it sets in it.
func (g *bloom) where(h uint64) (*bloomBlock, bloomBlock) {
	var m bloomBlock
	x := h * 0x9e3779b97f4a7c15 // bit positions from other bits than the block's
	for range probesPerKey {
		bit := x >> 55 // the top 9 bits
		m[bit>>6] |= 1 << (bit & 63)
		x <<= 9
	}
	return g.block(h), m
}

func (g *bloom) has(h uint64) bool {
	b, m := g.where(h)
	for i := range m {
		if b[i]&m[i] != m[i] {
			return false
		}
	}
	return true
}

// fold halves g's blocks and keeps every key it holds: block i of the
// halved filter is blocks 2i and 2i+1 merged, which is where block picks
// a key's block from among half as many (the top bits of h×n over 2^64,
// halved), and the bits within a block come from other bits of the hash.
// It then holds twice as many keys per bit: more false positives, no
// false negative. A generation with one block stays as it is.
func (g *bloom) fold() {
	n := len(g.blocks) / 2
	if n == 0 {
		g.cap = max(g.cap/2, 1)
		return
	}
	for i := range n {
		a, b := &g.blocks[2*i], &g.blocks[2*i+1]
		for j := range a {
			g.blocks[i][j] = a[j] | b[j]
		}
	}
	blocks := make([]bloomBlock, n) // let the larger array go
	copy(blocks, g.blocks[:n])
	g.blocks = blocks
	g.cap /= 2
}

func (g *bloom) add(h uint64) {
	b, m := g.where(h)
	for i := range m {
		b[i] |= m[i]
	}
	g.n++
}

// mayContain reports, for each hash in hs, whether the key may be in the
// table, into may (as long as hs).
func (f *KeyFilter) mayContain(hs []uint64, may []bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for i, h := range hs {
		if i+lookAhead < len(hs) {
			f.prefetch(hs[i+lookAhead])
		}
		m := false
		for g := len(f.gens) - 1; g >= 0 && !m; g-- {
			m = f.gens[g].has(h)
		}
		may[i] = m
	}
}

// lookAhead is how many keys ahead of the one it looks up mayContain
// asks the CPU for their blocks: a key's blocks are at random places in
// megabytes of filter, so each lookup would otherwise wait on memory
// once per generation (BenchmarkKeyFilterLookup).
const lookAhead = 8

// prefetch asks the CPU for the blocks of h in every generation.
func (f *KeyFilter) prefetch(h uint64) {
	for g := range f.gens {
		prefetch((*byte)(unsafe.Pointer(f.gens[g].block(h))), 64)
	}
}

// add records the keys of hashes hs as committed.
func (f *KeyFilter) add(hs []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range hs {
		if len(f.gens) == 0 || f.gens[len(f.gens)-1].n >= f.gens[len(f.gens)-1].cap {
			f.rotate()
		}
		f.gens[len(f.gens)-1].add(h)
	}
}

// rotate starts a generation, twice the size of the last up to f.max, and
// forgets the oldest ones while the others hold more than f.max keys.
func (f *KeyFilter) rotate() {
	next := min(firstGenKeys, f.max)
	if n := len(f.gens); n > 0 {
		next = min(2*f.gens[n-1].cap, f.max)
	}
	f.gens = append(f.gens, newBloom(next))
	f.forgetOldest()
}

// forgetOldest drops f's oldest generations while those before the
// newest hold more than f.max keys.
func (f *KeyFilter) forgetOldest() {
	older := 0
	for _, g := range f.gens[:len(f.gens)-1] {
		older += g.cap
	}
	drop := 0
	for older > f.max {
		older -= f.gens[drop].cap
		drop++
	}
	if drop > 0 {
		f.gens = append(f.gens[:0], f.gens[drop:]...)
		clear(f.gens[len(f.gens):cap(f.gens)]) // let the forgotten ones go
	}
}

// Size returns the bytes the filter holds.
func (f *KeyFilter) Size() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, g := range f.gens {
		n += 64 * len(g.blocks)
	}
	return n
}
