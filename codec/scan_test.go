package codec

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// needsAttention is specialBytes' rule for one byte.
func needsAttention(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }

// TestScanSpecial checks scanSpecial against the byte-at-a-time rule on
// random strings: plain bytes with, at random places, the bytes next to
// and on the edges of each class.
func TestScanSpecial(t *testing.T) {
	edges := []byte{'"', '\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xc3, 0xff, '!', '#'}
	r := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 20000; iter++ {
		n := r.IntN(100)
		s := make([]byte, n)
		for i := range s {
			s[i] = byte('a' + r.IntN(26))
		}
		for range r.IntN(3) {
			if n > 0 {
				s[r.IntN(n)] = edges[r.IntN(len(edges))]
			}
		}
		first := n
		for i, c := range s {
			if needsAttention(c) {
				first = i
				break
			}
		}
		got := scanSpecial(s)
		if got > n {
			t.Fatalf("%q: scanSpecial %d beyond the string", s, got)
		}
		for _, c := range s[:got] {
			if needsAttention(c) {
				t.Fatalf("%q: scanSpecial %d passed byte %#x, which needs attention", s, got, c)
			}
		}
		if runtime.GOARCH == "amd64" {
			if want := min(first, n&^15); got != want {
				t.Fatalf("%q: scanSpecial %d, want %d", s, got, want)
			}
		}
	}
}
