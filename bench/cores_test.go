package bench

import (
	"os/exec"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/procstat"
)

func TestSplitCPUs(t *testing.T) {
	for _, c := range []struct {
		allowed, pg, app []int
	}{
		{[]int{0, 1}, []int{0}, []int{1}},
		{[]int{0, 1, 2}, []int{0}, []int{1, 2}},
		{[]int{2, 3, 6, 7}, []int{2, 3}, []int{6, 7}},
	} {
		s, err := splitCPUs(c.allowed)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s.postgres, c.pg) || !reflect.DeepEqual(s.appliance, c.app) {
			t.Errorf("split of %v: PostgreSQL %v, appliance %v; want %v, %v", c.allowed, s.postgres, s.appliance, c.pg, c.app)
		}
	}
	if _, err := splitCPUs([]int{0}); err == nil {
		t.Error("one CPU split without an error")
	}
}

// TestPinTree: a process and the children it runs are pinned, and so is
// a child it starts afterwards (inherited, as PostgreSQL's backends are).
func TestPinTree(t *testing.T) {
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) < 2 {
		t.Skip("needs 2 CPUs")
	}
	// sh runs one sleep now and another after a second.
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 1; sleep 30 & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	want := allowed[len(allowed)-1:]
	var before []int
	for deadline := time.Now().Add(5 * time.Second); len(before) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		before = childrenOf(t, pid)
	}
	if len(before) < 2 {
		t.Fatalf("sh started %d children, want 2", len(before))
	}
	if err := pinTree(pid, want, true); err != nil {
		t.Fatal(err)
	}
	later := 0
	var kids []int
	for deadline := time.Now().Add(5 * time.Second); later == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		kids = childrenOf(t, pid)
		later = 0
		for _, k := range kids {
			if !slices.Contains(before, k) {
				later++
			}
		}
	}
	if later == 0 {
		t.Fatal("sh started no child after the pinning")
	}
	for _, p := range append([]int{pid}, kids...) {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(p, &set); err != nil {
			t.Fatal(err)
		}
		if set.Count() != 1 || !set.IsSet(want[0]) {
			t.Errorf("process %d may run on %d CPUs, want CPU %d alone", p, set.Count(), want[0])
		}
	}
}

func childrenOf(t *testing.T, pid int) []int {
	var kids []int
	if err := procstat.EachChild(pid, func(child int, _ [4]float64) { kids = append(kids, child) }); err != nil {
		t.Fatal(err)
	}
	return kids
}
