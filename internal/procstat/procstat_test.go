package procstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	line := []byte("4242 (post gres: (x)) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 100 1000 10")
	ppid, times, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if ppid != 17 || times != [4]float64{2.5, 0.5, 0.07, 0.03} {
		t.Fatalf("ppid %d times %v", ppid, times)
	}
	if _, _, err := Parse([]byte("1 (x) S 0")); err == nil {
		t.Fatal("a short line was accepted")
	}
	if _, _, err := Parse([]byte("no name")); err == nil {
		t.Fatal("a line without a command name was accepted")
	}
}

// TestCPUSelf reads this process's own CPU time: it has run, so it is
// positive, and it does not go backwards.
func TestCPUSelf(t *testing.T) {
	// The kernel counts CPU time in clock ticks (10 ms at 100 Hz): spin
	// until one is counted, rather than for a fixed amount of work that a
	// fast machine does within a tick.
	x := 0
	var a float64
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for i := range 10_000_000 {
			x ^= i
		}
		if a, err = CPU(os.Getpid(), false); err != nil || a > 0 {
			break
		}
	}
	if err != nil || a <= 0 {
		t.Fatalf("CPU %v, %v (x %d)", a, err, x)
	}
	b, err := CPU(os.Getpid(), true)
	if err != nil || b < a {
		t.Fatalf("with children %v < %v, %v", b, a, err)
	}
	if _, err := CPU(-1, false); err == nil {
		t.Fatal("pid -1 was read")
	}
}

// TestEachChild finds a child this process started, and only children.
func TestEachChild(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	found := false
	err := EachChild(os.Getpid(), func(child int, _ [4]float64) {
		if child == cmd.Process.Pid {
			found = true
		}
		if ppid, _, err := Read(child); err == nil && ppid != os.Getpid() {
			t.Errorf("process %d has parent %d, not this process", child, ppid)
		}
	})
	if err != nil || !found {
		t.Fatalf("child %d found %v, %v", cmd.Process.Pid, found, err)
	}
}
