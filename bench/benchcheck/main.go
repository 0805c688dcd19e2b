// Command benchcheck reads `benchstat -format csv` output on stdin and
// exits 1 when it shows a regression (bench.Regressions); `make bench`
// runs it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/sluice-dev/sluice/bench"
)

func main() {
	maxSlowdown := flag.Float64("max-slowdown", 0.15, "largest tolerated significant sec/op increase, as a fraction")
	allocsOnly := flag.Bool("allocs-only", false, "judge allocs/op only (the baseline ran on another CPU)")
	flag.Parse()
	judge := bench.Regressions
	if *allocsOnly {
		judge = bench.AllocRegressions
	}
	regs, err := judge(os.Stdin, *maxSlowdown)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcheck:", err)
		os.Exit(2)
	}
	if len(regs) == 0 && *allocsOnly {
		fmt.Println("benchcheck: no new allocations (sec/op not judged)")
		return
	}
	if len(regs) == 0 {
		fmt.Printf("benchcheck: no regression beyond +%.0f%% sec/op or new allocations\n", 100**maxSlowdown)
		return
	}
	fmt.Fprintf(os.Stderr, "benchcheck: %d regression(s):\n", len(regs))
	for _, r := range regs {
		fmt.Fprintln(os.Stderr, "  "+r.String())
	}
	os.Exit(1)
}
