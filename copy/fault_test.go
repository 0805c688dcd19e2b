//go:build sluicefault && unix

package pgcopy

import "testing"

func TestParseFault(t *testing.T) {
	if parseFault("") != nil {
		t.Fatal("an empty SLUICE_FAULT must disable fault injection")
	}
	f := parseFault("merge:3")
	if f.point != "merge" || f.n != 3 || f.stop {
		t.Fatalf("merge:3 parsed as %+v", f)
	}
	if f := parseFault("begin:1:stop"); !f.stop || f.point != "begin" {
		t.Fatalf("begin:1:stop parsed as %+v", f)
	}
	if f := parseFault("evolve:2"); f.point != "evolve" || f.n != 2 || f.stop {
		t.Fatalf("evolve:2 parsed as %+v", f)
	}
	for _, s := range []string{"merge", "merge:0", "merge:x", "nowhere:1", "copy:1:pause", "commit:1:stop", "evolve:1:stop", "a:1:kill:x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SLUICE_FAULT=%q was accepted; a typo must fail loudly", s)
				}
			}()
			parseFault(s)
		}()
	}
	// Hits other than the Nth, and other points, do nothing.
	faultPlan = parseFault("copy:1000")
	defer func() { faultPlan = nil }()
	for range 10 {
		fault("copy")
		fault("merge")
	}
	if got := faultPlan.hits.Load(); got != 10 {
		t.Fatalf("copy hits = %d, want 10", got)
	}
}
