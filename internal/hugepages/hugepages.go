// Package hugepages asks Linux to back the process's large anonymous
// mappings (the Go heap, where fetched records and batch buffers live) with
// transparent huge pages.
//
// Most distributions set /sys/kernel/mm/transparent_hugepage/enabled to
// "madvise": only memory a process marks with madvise(MADV_HUGEPAGE) gets
// huge pages, and the Go runtime marks none of its heap. The appliance
// streams hundreds of megabytes a second through a heap of a few hundred
// megabytes; with 4 KiB pages it takes a page fault for every 4 KiB it
// first touches and a TLB miss (two-dimensional under a hypervisor) for
// much of the rest. bench/README.md ("Where the drain's CPU goes, and
// transparent huge pages") has what marking the heap measured, with and
// without a tight Go memory limit.
//
// Marker.Advise marks every anonymous private read-write mapping of at
// least one huge page that it has not marked before. The runtime maps the
// heap in steps as it grows, and memory first touched before it was marked
// keeps its small pages, so Marker.Grow maps heap the process is going to
// use up front (untouched, it costs no memory) and marks it before any of
// it is used; Marker.Run marks what the heap grows by later. Marking is a
// hint: the kernel falls back to small pages when it has no huge page
// free, and with THP "never" nothing changes.
package hugepages

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

// ErrUnavailable says that this system has no transparent huge pages.
var ErrUnavailable = errors.New("transparent huge pages are not available on this system")

// hugePage is the size of an x86-64 and arm64 (4 KiB granule) huge page:
// smaller mappings cannot hold one.
const hugePage = 2 << 20

// span is an address range [start, end).
type span struct{ start, end uintptr }

// Marker remembers what it has marked, so that calling Advise again costs
// one read of /proc/self/maps and no system call for known mappings.
type Marker struct {
	mu     sync.Mutex
	marked []span // sorted, merged
	err    error  // the first madvise error, after which Advise stops trying
}

// Advise marks the mappings of /proc/self/maps not marked yet. It returns
// the bytes newly marked. Where the system has no transparent huge pages
// the error wraps ErrUnavailable.
func (m *Marker) Advise() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return 0, m.err
	}
	if !available {
		m.err = ErrUnavailable
		return 0, m.err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	todo, err := candidates(f)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range todo {
		if m.covered(s) {
			continue
		}
		if err := madviseHuge(s.start, s.end-s.start); err != nil {
			m.err = fmt.Errorf("cannot mark %#x-%#x for huge pages: %w", s.start, s.end, err)
			return n, m.err
		}
		m.add(s)
		n += int64(s.end - s.start)
	}
	return n, nil
}

// Grow allocates n bytes and lets them go untouched, then marks what the
// heap maps with Advise. Called at start, before the heap has free memory
// of that size, it makes the runtime map n bytes fresh from the kernel
// (neither zeroed nor touched, so they cost no memory); the allocator
// reuses the lowest free addresses first, so the heap the process fills
// afterwards is the marked one. It returns what Advise returns.
func (m *Marker) Grow(n int) (int64, error) {
	b := make([]byte, n)
	marked, err := m.Advise()
	runtime.KeepAlive(b)
	return marked, err
}

// Run calls Advise at once, then every interval until ctx ends. It
// returns the first error Advise met (then huge pages are not available
// here, and nothing is retried), or nil when ctx ended.
func (m *Marker) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := m.Advise(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// covered reports whether s lies inside one marked span. Mappings merge
// when their flags agree, so a mapping made of marked pieces is one span
// of the merged list.
func (m *Marker) covered(s span) bool {
	i := sort.Search(len(m.marked), func(i int) bool { return m.marked[i].end >= s.end })
	return i < len(m.marked) && m.marked[i].start <= s.start
}

// add inserts s into the sorted list, merging it with spans it touches.
func (m *Marker) add(s span) {
	out := m.marked[:0:0]
	done := false
	for _, k := range m.marked {
		switch {
		case k.end < s.start:
			out = append(out, k)
		case s.end < k.start:
			if !done {
				out, done = append(out, s), true
			}
			out = append(out, k)
		default: // overlapping or adjacent
			s.start, s.end = min(s.start, k.start), max(s.end, k.end)
		}
	}
	if !done {
		out = append(out, s)
	}
	m.marked = out
}

// candidates lists, from a /proc/pid/maps listing, the anonymous private
// read-write mappings of at least one huge page: the Go heap, goroutine
// stacks and the runtime's own metadata. Mappings of files, the main
// thread's stack and the kernel's special mappings ([vdso] …) have a path.
func candidates(r io.Reader) ([]span, error) {
	var out []span
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		s, ok, err := parseLine(sc.Bytes())
		if err != nil {
			return nil, err
		}
		if ok && s.end-s.start >= hugePage {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// parseLine parses one maps line: "start-end perms offset dev inode [path]".
// ok is true for an anonymous private read-write mapping.
func parseLine(line []byte) (s span, ok bool, err error) {
	fields := bytes.Fields(line)
	if len(fields) < 5 {
		return s, false, fmt.Errorf("cannot parse maps line %q", line)
	}
	lo, hi, found := bytes.Cut(fields[0], []byte("-"))
	if !found {
		return s, false, fmt.Errorf("cannot parse the address range of maps line %q", line)
	}
	start, err1 := strconv.ParseUint(string(lo), 16, 64)
	end, err2 := strconv.ParseUint(string(hi), 16, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, false, fmt.Errorf("cannot parse the address range of maps line %q: %w", line, err)
	}
	s = span{uintptr(start), uintptr(end)}
	anonymous := len(fields) == 5 && string(fields[4]) == "0"
	return s, anonymous && string(fields[1]) == "rw-p", nil
}
