package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sluice-dev/sluice/internal/procstat"
)

// coreSplit is Options.SplitCores applied: the CPUs the private
// PostgreSQL runs on and those the bench process (the appliance, and the
// baselines' client) and the broker child run on.
type coreSplit struct {
	postgres, appliance []int
	// allowed and procs are this process's CPUs and GOMAXPROCS before
	// the split, which restore puts back.
	allowed []int
	procs   int
}

func (c *coreSplit) String() string {
	return fmt.Sprintf("cores split: PostgreSQL on CPU %s, the appliance and the broker on CPU %s",
		cpuList(c.postgres), cpuList(c.appliance))
}

// splitCPUs gives PostgreSQL the first half of the allowed CPUs (rounded
// down) and the appliance the rest; it needs two CPUs at least.
func splitCPUs(allowed []int) (*coreSplit, error) {
	if len(allowed) < 2 {
		return nil, fmt.Errorf("--split-cores needs 2 CPUs at least; this process may run on %d", len(allowed))
	}
	n := len(allowed) / 2
	return &coreSplit{postgres: allowed[:n:n], appliance: allowed[n:], allowed: allowed}, nil
}

// restore gives this process back the CPUs and GOMAXPROCS it had before
// the split (the private PostgreSQL stops with the environment).
func (c *coreSplit) restore() error {
	if c.procs > 0 {
		runtime.GOMAXPROCS(c.procs)
	}
	return pinTree(os.Getpid(), c.allowed, false)
}

// allowedCPUs lists the CPUs this process may run on, in ascending order.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("cannot read this process's CPU affinity: %w", err)
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// pinTree sets the CPU affinity of every thread of pid and then, with
// children, of every thread of its direct children. A process or thread
// started later inherits the affinity of the thread that starts it: pid
// is pinned first, so a child it forks meanwhile is either found by the
// scan that follows or born pinned, and every backend the postmaster
// starts afterwards is too.
func pinTree(pid int, cpus []int, children bool) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	if err := pinThreads(pid, &set); err != nil {
		return err
	}
	if !children {
		return nil
	}
	return procstat.EachChild(pid, func(child int, _ [4]float64) {
		pinThreads(child, &set) // an error: the child exited meanwhile
	})
}

// pinThreads sets the CPU affinity of every thread of process pid. A
// thread that one not yet pinned starts during the pass inherits the old
// affinity, so the pass is repeated until it finds no new thread.
func pinThreads(pid int, set *unix.CPUSet) error {
	done := map[int]bool{}
	for {
		tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		if err != nil {
			return fmt.Errorf("cannot list the threads of process %d: %w", pid, err)
		}
		more := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited meanwhile
				}
				return fmt.Errorf("cannot set the CPU affinity of thread %d of process %d: %w", tid, pid, err)
			}
			done[tid], more = true, true
		}
		if !more {
			return nil
		}
	}
}

// splitCores pins the private PostgreSQL (postmaster and children) to
// the first half of the CPUs and this process to the rest, with
// GOMAXPROCS set to the latter's count, as for an appliance started on
// those CPUs alone. Run it before the broker child starts: the child
// inherits this process's affinity.
func splitCores(pgDataDir string) (*coreSplit, error) {
	allowed, err := allowedCPUs()
	if err != nil {
		return nil, err
	}
	split, err := splitCPUs(allowed)
	if err != nil {
		return nil, err
	}
	pm, err := postmasterPID(pgDataDir)
	if err != nil {
		return nil, err
	}
	if err := pinTree(pm, split.postgres, true); err != nil {
		return nil, fmt.Errorf("cannot pin PostgreSQL to CPU %s: %w", cpuList(split.postgres), err)
	}
	if err := pinTree(os.Getpid(), split.appliance, false); err != nil {
		split.restore()
		return nil, fmt.Errorf("cannot pin the bench process to CPU %s: %w", cpuList(split.appliance), err)
	}
	split.procs = runtime.GOMAXPROCS(len(split.appliance))
	return split, nil
}

func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}
