package bench

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Instructions is a run of instruction counts per benchmark op, as
// `make bench` measures them with callgrind: a benchmark's instructions
// for N iterations less those for one, over N-1. Unlike times, they do not
// move with the machine's load, and valgrind reports the same CPU features
// to the program on every host, so they can be judged on any machine; they
// do move with the Go toolchain, which Go names.
type Instructions struct {
	Go    string           // runtime.Version() of the toolchain that built the benchmarks
	PerOp map[string]int64 // benchmark name → instructions per op
}

// ReadInstructions parses the format WriteInstructions writes: a "go:"
// line, then one "name count" line per benchmark. Blank lines and lines
// starting with # are skipped.
func ReadInstructions(r io.Reader) (Instructions, error) {
	in := Instructions{PerOp: map[string]int64{}}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if v, ok := strings.CutPrefix(text, "go:"); ok {
			in.Go = strings.TrimSpace(v)
			continue
		}
		f := strings.Fields(text)
		if len(f) != 2 {
			return in, fmt.Errorf("line %d: want a benchmark name and a count, got %q", line, text)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n <= 0 {
			return in, fmt.Errorf("line %d: bad instruction count %q", line, f[1])
		}
		in.PerOp[f[0]] = n
	}
	return in, sc.Err()
}

// WriteInstructions writes in in the format ReadInstructions reads,
// benchmarks in name order.
func WriteInstructions(w io.Writer, in Instructions) error {
	if _, err := fmt.Fprintf(w, "go: %s\n", in.Go); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(in.PerOp)) {
		if _, err := fmt.Fprintf(w, "%s %d\n", name, in.PerOp[name]); err != nil {
			return err
		}
	}
	return nil
}

// InstructionRegressions compares a run with the baseline. It returns the
// benchmarks whose instructions per op grew by more than maxIncrease (0.03
// for +3%), and those the baseline lacks. judged is false, with nothing
// returned, when the baseline was built by another toolchain: its counts
// say nothing about this one's code.
func InstructionRegressions(base, now Instructions, maxIncrease float64) (regs []string, judged bool) {
	if base.Go != now.Go {
		return nil, false
	}
	for _, name := range slices.Sorted(maps.Keys(now.PerOp)) {
		n := now.PerOp[name]
		b, ok := base.PerOp[name]
		switch {
		case !ok:
			regs = append(regs, fmt.Sprintf("%s: %d instructions/op, not in the baseline", name, n))
		case float64(n) > float64(b)*(1+maxIncrease):
			regs = append(regs, fmt.Sprintf("%s: %d → %d instructions/op (%+.1f%%)", name, b, n, 100*(float64(n)/float64(b)-1)))
		}
	}
	return regs, true
}
