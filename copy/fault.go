//go:build sluicefault && unix

package pgcopy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Test-only fault injection for the chaos tests (internal/chaos), compiled
// only into a binary built with -tags sluicefault (the chaos harness builds
// its own); a release binary has the no-op in fault_off.go and ignores
// SLUICE_FAULT. Even in a fault build it is off unless the environment
// variable SLUICE_FAULT is set when the process starts; then each call of
// fault costs one comparison.
//
//	SLUICE_FAULT=POINT:N[:ACTION]
//
// At the Nth time (1-based, counted over every Writer of the process) a
// Write passes POINT, ACTION is applied to the whole process: kill
// (SIGKILL, the default) or stop (SIGSTOP: the process freezes until it gets
// SIGCONT, like a long GC pause or a frozen VM). Points, in the order a
// transaction passes them:
//
//	begin      before BEGIN and the offsets compare-and-set (no lock held)
//	copy       after the compare-and-set, before COPY
//	merge      after the merge and the dead letters, before COMMIT is sent
//	commit     during COMMIT: SIGKILL comes from another goroutine within
//	           2 ms while COMMIT is in flight, so the transaction may or may
//	           not have committed (only kill)
//	committed  after COMMIT succeeded, before the caller learns of it
//	replay     a dead-letter replay batch (Writer.Replay): rows written and
//	           dead letters deleted, before COMMIT is sent
//	evolve     schema evolution (AddColumns, not a Write): SIGKILL comes
//	           from another goroutine within 2 ms while the transaction
//	           that takes the advisory lock, adds the columns and commits
//	           is in flight, so the columns may or may not have been
//	           added (only kill)
var faultPlan = parseFault(os.Getenv("SLUICE_FAULT"))

type faultSpec struct {
	point string
	n     int64
	stop  bool
	hits  atomic.Int64
}

func parseFault(s string) *faultSpec {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ":")
	bad := func(why string) *faultSpec {
		// A typo must not let a chaos test believe it injected a fault.
		panic(fmt.Sprintf("cannot parse SLUICE_FAULT=%q: %s; use POINT:N[:kill|stop] with POINT one of begin, copy, merge, commit, committed, replay, evolve", s, why))
	}
	if len(parts) < 2 || len(parts) > 3 {
		return bad("wrong number of fields")
	}
	switch parts[0] {
	case "begin", "copy", "merge", "commit", "committed", "replay", "evolve":
	default:
		return bad("unknown point")
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || n < 1 {
		return bad("N must be a positive integer")
	}
	f := &faultSpec{point: parts[0], n: n}
	if len(parts) == 3 {
		switch parts[2] {
		case "kill":
		case "stop":
			f.stop = true
		default:
			return bad("unknown action")
		}
	}
	if f.stop && (f.point == "commit" || f.point == "evolve") {
		return bad(f.point + " only supports kill")
	}
	return f
}

// fault applies SLUICE_FAULT when point is its Nth hit.
func fault(point string) {
	f := faultPlan
	if f == nil || f.point != point || f.hits.Add(1) != f.n {
		return
	}
	pid := os.Getpid()
	switch {
	case f.stop:
		fmt.Fprintf(os.Stderr, "SLUICE_FAULT: %s #%d: stopping the process\n", point, f.n)
		syscall.Kill(pid, syscall.SIGSTOP)
	case point == "commit" || point == "evolve":
		fmt.Fprintf(os.Stderr, "SLUICE_FAULT: %s #%d: killing the process while its transaction is in flight\n", point, f.n)
		go func() {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			syscall.Kill(pid, syscall.SIGKILL)
		}()
	default:
		fmt.Fprintf(os.Stderr, "SLUICE_FAULT: %s #%d: killing the process\n", point, f.n)
		syscall.Kill(pid, syscall.SIGKILL)
		select {} // nothing of this Write may run after the point
	}
}
