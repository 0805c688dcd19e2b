package hugepages

import (
	"bufio"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestCandidates(t *testing.T) {
	maps := `00400000-004ab000 r-xp 00000000 fe:00 9978039                            /usr/bin/sluice
0058e000-00599000 rw-p 0018e000 fe:00 9978039                            /usr/bin/sluice
00599000-005cf000 rw-p 00000000 00:00 0
13da70000000-13da71000000 ---p 00000000 00:00 0
13da71000000-13da7b400000 rw-p 00000000 00:00 0
7f08adfec000-7f08ae100000 rw-p 00000000 00:00 0
7f08ae100000-7f08b0200000 rw-p 00000000 00:00 0
7f08b0200000-7f08c29b4000 rw-s 00000000 00:01 1234                       /dev/shm/x
7ffd845c2000-7ffd847e3000 rw-p 00000000 00:00 0                          [stack]
`
	got, err := candidates(strings.NewReader(maps))
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{0x13da71000000, 0x13da7b400000}, {0x7f08ae100000, 0x7f08b0200000}}
	if len(got) != len(want) {
		t.Fatalf("candidates = %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("candidates = %x, want %x", got, want)
		}
	}
	if _, err := candidates(strings.NewReader("garbage\n")); err == nil {
		t.Fatal("a malformed line was accepted")
	}
	if _, err := candidates(strings.NewReader("zz-10 rw-p 0 00:00 0\n")); err == nil {
		t.Fatal("a malformed address was accepted")
	}
}

func TestMarkedSpans(t *testing.T) {
	var m Marker
	m.add(span{100, 200})
	m.add(span{300, 400})
	m.add(span{200, 250}) // adjacent: merges with the first
	m.add(span{50, 60})
	if want := []span{{50, 60}, {100, 250}, {300, 400}}; !equal(m.marked, want) {
		t.Fatalf("marked = %v, want %v", m.marked, want)
	}
	m.add(span{240, 310}) // bridges two
	if want := []span{{50, 60}, {100, 400}}; !equal(m.marked, want) {
		t.Fatalf("marked = %v, want %v", m.marked, want)
	}
	for _, c := range []struct {
		s    span
		want bool
	}{
		{span{100, 400}, true}, {span{120, 130}, true}, {span{50, 60}, true},
		{span{40, 60}, false}, {span{55, 110}, false}, {span{390, 410}, false}, {span{500, 600}, false},
	} {
		if got := m.covered(c.s); got != c.want {
			t.Errorf("covered(%v) = %v, want %v", c.s, got, c.want)
		}
	}
}

func equal(a, b []span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGrowMarksTheHeap checks with the kernel that Grow leaves the heap it
// mapped flagged for huge pages ("hg" in /proc/self/smaps), and that a
// second Advise finds nothing new to mark.
func TestGrowMarksTheHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("transparent huge pages are a Linux feature")
	}
	var m Marker
	n, err := m.Grow(64 << 20)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n < 64<<20 {
		t.Fatalf("Grow marked %d bytes, want at least the 64 MiB it mapped", n)
	}
	runtime.GC()              // frees what Grow mapped
	b := make([]byte, 32<<20) // and this reuses it
	addr := uintptr(unsafe.Pointer(&b[0]))
	if !flagged(t, addr) {
		t.Fatalf("the mapping holding a heap buffer at %#x is not flagged hg", addr)
	}
	runtime.KeepAlive(b)
	if _, err := m.Advise(); err != nil {
		t.Fatal(err)
	}
	if again, err := m.Advise(); err != nil || again != 0 {
		t.Fatalf("Advise right after Advise marked %d bytes (err %v), want 0", again, err)
	}
}

// flagged reports whether the mapping holding addr has VmFlags hg.
func flagged(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line + " x")[0], "-"); ok && !strings.HasSuffix(lo, ":") {
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uintptr(s) <= addr && addr < uintptr(e)
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Contains(line+" ", " hg ")
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return false
}
