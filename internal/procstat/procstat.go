// Package procstat reads a process's CPU times from Linux's
// /proc/PID/stat: the benchmark's per-phase CPU split and the chaos
// harness's figures for a `sluice run` child both come from here.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of the times in /proc/*/stat; it is 100
// on every Linux architecture Go supports.
const ClockTicks = 100

// Read returns the ppid and the utime, stime, cutime and cstime fields of
// /proc/pid/stat, in seconds.
func Read(pid int) (ppid int, times [4]float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, times, err
	}
	return Parse(b)
}

// Parse parses a /proc/pid/stat line. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from the last ')'.
func Parse(b []byte) (ppid int, times [4]float64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, times, errors.New("cannot parse /proc stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime..cstime are 14..17.
	if len(f) < 15 {
		return 0, times, errors.New("cannot parse /proc stat: too few fields")
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return 0, times, fmt.Errorf("cannot parse /proc stat ppid %q: %w", f[1], err)
	}
	for k := range 4 {
		v, err := strconv.ParseFloat(f[11+k], 64)
		if err != nil {
			return 0, times, fmt.Errorf("cannot parse /proc stat time %q: %w", f[11+k], err)
		}
		times[k] = v / ClockTicks
	}
	return ppid, times, nil
}

// CPU returns utime+stime of pid, plus its reaped children's with
// children.
func CPU(pid int, children bool) (float64, error) {
	_, t, err := Read(pid)
	if err != nil {
		return 0, err
	}
	v := t[0] + t[1]
	if children {
		v += t[2] + t[3]
	}
	return v, nil
}

// EachChild calls fn with the pid and the times (as Read returns them) of
// every live process whose parent is pid, in one pass over /proc. A
// process that exits meanwhile is skipped.
func EachChild(pid int, fn func(child int, times [4]float64)) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, d := range ents {
		p, err := strconv.Atoi(d.Name())
		if err != nil || p == pid {
			continue
		}
		if ppid, t, err := Read(p); err == nil && ppid == pid {
			fn(p, t)
		}
	}
	return nil
}
