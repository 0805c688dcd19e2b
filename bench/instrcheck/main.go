// Command instrcheck counts the instructions per op of the decoders'
// benchmarks under valgrind's callgrind and compares them with a baseline
// (bench.InstructionRegressions); `make bench` runs it. Instruction counts
// stay put when the machine is busy or another VM is slower, where times
// do not: this is the part of the regression gate that judges speed on any
// machine.
//
// For each benchmark it runs the package's test binary twice, with
// -test.benchtime Nx and 1x, and divides the difference by N-1, so the
// binary's start-up and the benchmark's setup cancel out. The runs use
// GOMAXPROCS=1, no asynchronous preemption (callgrind does not survive
// Go's preemption signals) and no garbage collection (the benchmarks
// allocate nothing per op; a collection of the start-up's garbage would
// land in one run or the other). What does not cancel is the scheduler's
// own work while the benchmark runs: with the default 50,000 iterations,
// three counts of the Avro benchmark agreed within 0.7%. (Counting inside
// the benchmark function alone, callgrind's --toggle-collect, loses track
// when the goroutine's stack is copied to grow.)
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/bench"
)

func main() {
	pkg := flag.String("pkg", "./codec", "package whose benchmarks to count")
	names := flag.String("bench", "", "comma-separated benchmark names")
	n := flag.Int("n", 50000, "iterations per counted run")
	baseline := flag.String("baseline", "bench/instructions.txt", "baseline file")
	update := flag.Bool("update", false, "write the counts to the baseline instead of judging them")
	maxIncrease := flag.Float64("max-increase", 0.03, "largest tolerated increase in instructions per op, as a fraction")
	flag.Parse()
	regs, err := run(*pkg, strings.Split(*names, ","), *n, *baseline, *update, *maxIncrease)
	if err != nil {
		fmt.Fprintln(os.Stderr, "instrcheck:", err)
		os.Exit(2)
	}
	if len(regs) > 0 {
		fmt.Fprintf(os.Stderr, "instrcheck: %d regression(s):\n", len(regs))
		for _, r := range regs {
			fmt.Fprintln(os.Stderr, "  "+r)
		}
		os.Exit(1)
	}
}

// run counts the benchmarks and writes the baseline (update) or returns
// the regressions against it.
func run(pkg string, names []string, n int, baseline string, update bool, maxIncrease float64) ([]string, error) {
	names = slices.DeleteFunc(names, func(s string) bool { return s == "" })
	if len(names) == 0 {
		return nil, fmt.Errorf("no benchmark named (-bench)")
	}
	if n < 2 {
		return nil, fmt.Errorf("-n %d: need at least 2 iterations", n)
	}
	if _, err := exec.LookPath("valgrind"); err != nil {
		fmt.Println("instrcheck: valgrind is not installed: instructions not counted (apt-get install valgrind)")
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "instrcheck")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pkg.test")
	build := exec.Command("go", "test", "-c", "-o", bin, pkg)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building %s's tests: %w", pkg, err)
	}
	now := bench.Instructions{Go: runtime.Version(), PerOp: map[string]int64{}}
	for _, name := range names {
		many, err := count(dir, bin, name, n)
		if err != nil {
			return nil, err
		}
		one, err := count(dir, bin, name, 1)
		if err != nil {
			return nil, err
		}
		if many <= one {
			return nil, fmt.Errorf("%s: %d iterations counted %d instructions, one counted %d", name, n, many, one)
		}
		now.PerOp[name] = (many - one) / int64(n-1)
		fmt.Printf("%-48s %8d instructions/op\n", name, now.PerOp[name])
	}
	if update {
		f, err := os.Create(baseline)
		if err != nil {
			return nil, err
		}
		if err := bench.WriteInstructions(f, now); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		fmt.Printf("instrcheck: %s refreshed; commit it\n", baseline)
		return nil, nil
	}
	f, err := os.Open(baseline)
	if err != nil {
		return nil, err
	}
	base, err := bench.ReadInstructions(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", baseline, err)
	}
	regs, judged := bench.InstructionRegressions(base, now, maxIncrease)
	switch {
	case !judged:
		fmt.Printf("instrcheck: the baseline was counted with %s, this is %s: not judged; refresh it with make bench-baseline\n", base.Go, now.Go)
	case len(regs) == 0:
		fmt.Printf("instrcheck: no benchmark takes more than %+.0f%% instructions per op\n", 100*maxIncrease)
	}
	return regs, nil
}

// count runs benchmark name for iters iterations under callgrind and
// returns the instructions the whole process executed.
func count(dir, bin, name string, iters int) (int64, error) {
	out := filepath.Join(dir, "callgrind.out")
	cmd := exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file="+out, bin,
		"-test.run", "^$", "-test.bench", "^"+name+"$", "-test.benchtime", strconv.Itoa(iters)+"x")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GODEBUG=asyncpreemptoff=1", "GOGC=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("valgrind %s (%dx): %w\n%s", name, iters, err, tail(stderr.String()))
	}
	if !bytes.Contains(stdout, []byte(name)) {
		return 0, fmt.Errorf("%s: no such benchmark in %s", name, bin)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "summary:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: callgrind wrote no summary", name)
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}
