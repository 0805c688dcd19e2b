package ingest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestPoolClasses(t *testing.T) {
	for _, c := range []struct{ n, class int }{{0, 0}, {1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {1 << 20, 20}, {1<<20 + 1, 21}} {
		if got := classOf(c.n); got != c.class {
			t.Errorf("classOf(%d) = %d, want %d", c.n, got, c.class)
		}
	}
	for _, c := range []struct{ cap, class int }{{1, 0}, {2, 1}, {3, 1}, {4, 2}, {1<<20 + 5, 20}} {
		if got := classHeld(c.cap); got != c.class {
			t.Errorf("classHeld(%d) = %d, want %d", c.cap, got, c.class)
		}
	}
}

// A slice put back is handed out again for any request its class covers,
// and a Get always returns enough room.
func TestFetchPoolsReuse(t *testing.T) {
	var p fetchPools
	r := p.GetRecords(100)
	if len(r) != 100 || cap(r) < 100 {
		t.Fatalf("GetRecords(100) returned len %d cap %d", len(r), cap(r))
	}
	p.PutRecords(r)
	r2 := p.GetRecords(70)
	if len(r2) != 70 || cap(r2) < 70 {
		t.Fatalf("GetRecords(70) returned len %d cap %d", len(r2), cap(r2))
	}
	b := p.GetDecompressBytes(make([]byte, 1000), kgo.CodecLz4)
	if len(b) != 0 || cap(b) < 4000 {
		t.Fatalf("GetDecompressBytes for 1000 compressed bytes returned len %d cap %d, want 0 and at least 4000", len(b), cap(b))
	}
	grown := make([]byte, 10000) // the client grew it: it comes back larger
	p.PutDecompressBytes(grown)
	b2 := p.GetDecompressBytes(make([]byte, 1500), kgo.CodecLz4)
	if cap(b2) < 6000 {
		t.Fatalf("GetDecompressBytes for 1500 compressed bytes returned capacity %d, want at least 6000", cap(b2))
	}
}
