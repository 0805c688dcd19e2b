package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice/internal/procstat"
)

// cpuSample is cumulative CPU seconds at one moment.
type cpuSample struct {
	self, broker, postgres float64 // < 0: unknown
	// machine is the busy seconds of every CPU of the machine (/proc/stat):
	// the processes above and everything else, including softirqs (the
	// network stack's receive side among them) and kernel threads (page
	// cache writeback), which the processes' own times may leave out.
	machine float64 // < 0: unknown
	pgCores int     // CPUs PostgreSQL is pinned to; 0: every CPU
}

func (e *env) cpuNow() cpuSample {
	s := cpuSample{self: -1, broker: -1, postgres: -1, machine: -1}
	if e.split != nil {
		s.pgCores = len(e.split.postgres)
	}
	if v, err := machineBusy(); err == nil {
		s.machine = v
	}
	if v, err := procstat.CPU(os.Getpid(), false); err == nil {
		s.self = v
	}
	if e.bproc != nil {
		if v, err := procstat.CPU(e.bproc.pid(), false); err == nil {
			s.broker = v
		}
	}
	if e.pg != nil {
		if v, err := postgresCPU(e.pg.DataDir); err == nil {
			s.postgres = v
		}
	}
	return s
}

func (s cpuSample) sub(before cpuSample, wall time.Duration) CPU {
	c := CPU{Appliance: -1, Broker: -1, Postgres: -1, Wall: wall.Seconds(), Cores: runtime.NumCPU(), PostgresCores: s.pgCores}
	if s.self >= 0 && before.self >= 0 {
		c.Appliance = s.self - before.self
	}
	if s.broker >= 0 && before.broker >= 0 {
		c.Broker = s.broker - before.broker
	}
	if s.postgres >= 0 && before.postgres >= 0 {
		c.Postgres = s.postgres - before.postgres
	}
	if s.machine >= 0 && before.machine >= 0 {
		c.Machine = s.machine - before.machine
	}
	return c
}

// describe says where the CPU time of a phase went, for the log: each
// process's CPU seconds (self names what the bench process was doing) and
// how busy that kept the machine.
func (c *CPU) describe(self string) string {
	if c == nil {
		return "CPU unknown"
	}
	var b strings.Builder
	add := func(name string, v float64) {
		if v >= 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %.1f", name, v)
		}
	}
	add(self, c.Appliance)
	add("broker", c.Broker)
	add("PostgreSQL", c.Postgres)
	if b.Len() == 0 {
		return "CPU unknown"
	}
	out := "CPU-s: " + b.String()
	if c.Wall > 0 && c.Cores > 0 && c.Appliance >= 0 && c.Postgres >= 0 {
		used := max(c.Appliance, 0) + max(c.Broker, 0) + c.Postgres
		all := c.Wall * float64(c.Cores)
		out += fmt.Sprintf(" of %.1f (%.0f%% busy", all, 100*used/all)
		if c.Machine > 0 {
			out += fmt.Sprintf("; the whole machine %.0f%%", 100*c.Machine/all)
		}
		if c.PostgresCores > 0 {
			out += fmt.Sprintf("; PostgreSQL's own CPUs %.0f%%", 100*c.Postgres/(c.Wall*float64(c.PostgresCores)))
		}
		out += ")"
	}
	return out
}

// machineBusy returns the CPU seconds all CPUs of the machine spent busy:
// the user, nice, system, irq and softirq times of /proc/stat's first line
// (not idle, iowait or steal).
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(b)
}

// parseProcStat parses the busy seconds out of /proc/stat's "cpu" line.
func parseProcStat(b []byte) (float64, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	// cpu user nice system idle iowait irq softirq ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("cannot parse /proc/stat: no cpu line")
	}
	busy := 0.0
	for _, k := range []int{1, 2, 3, 6, 7} {
		v, err := strconv.ParseFloat(f[k], 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse /proc/stat time %q: %w", f[k], err)
		}
		busy += v
	}
	return busy / procstat.ClockTicks, nil
}

// postgresCPU returns the CPU seconds of the cluster in dataDir: its
// postmaster (with the children it has reaped: backends that exited) and
// its live children (backends, checkpointer, WAL writer, ...).
func postgresCPU(dataDir string) (float64, error) {
	pm, err := postmasterPID(dataDir)
	if err != nil {
		return 0, err
	}
	total, err := procstat.CPU(pm, true)
	if err != nil {
		return 0, err
	}
	err = procstat.EachChild(pm, func(_ int, t [4]float64) { total += t[0] + t[1] })
	return total, err
}

// postmasterPID reads the postmaster's pid from the data directory's
// postmaster.pid.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("cannot read postmaster.pid: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("cannot parse the postmaster pid %q: %w", line, err)
	}
	return pm, nil
}

// resetPeakRSS resets VmHWM to the current RSS (Linux ≥ 4.0).
func resetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// readRSS returns a "Vm…:  N kB" field of /proc/self/status in bytes.
func readRSS(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				break
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return n * 1024, nil
		}
	}
	return 0, fmt.Errorf("cannot find %s in /proc/self/status", field)
}

// procFaults returns this process's minor page faults so far (-1 when
// unknown): on a VM a fault on fresh memory costs microseconds, so they
// show where fresh buffers cost CPU.
func procFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Minflt
}

// gcCycles returns the garbage collection cycles completed so far.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
