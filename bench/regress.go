package bench

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Regression is one benchmark metric that got worse beyond the threshold.
type Regression struct {
	Benchmark string
	Unit      string  // sec/op, allocs/op
	Base, New float64 // the two summaries (medians) benchstat printed
	Delta     string  // benchstat's "vs base" column, e.g. "+23.10%"
	P         string  // benchstat's "p=… n=…" column
}

func (r Regression) String() string {
	return fmt.Sprintf("%s %s: %g → %g (%s, %s)", r.Benchmark, r.Unit, r.Base, r.New, r.Delta, r.P)
}

// Regressions parses the output of `benchstat -format csv base new` and
// returns the metrics that regressed:
//
//   - sec/op: benchstat found the difference significant (it prints a
//     percentage instead of "~") and the slowdown exceeds maxSlowdown
//     (0.15 for +15%);
//   - allocs/op: the base allocates nothing and the new run allocates
//     (allocation counts are deterministic, so no significance is needed),
//     or a significant increase beyond maxSlowdown.
//
// Other units (B/s, B/op, custom metrics) are not judged.
func Regressions(benchstatCSV io.Reader, maxSlowdown float64) ([]Regression, error) {
	return regressions(benchstatCSV, maxSlowdown, true)
}

// AllocRegressions is Regressions judging allocs/op only: for a baseline
// measured on another CPU, whose times say nothing about this one's,
// while allocation counts are the same on every machine.
func AllocRegressions(benchstatCSV io.Reader, maxSlowdown float64) ([]Regression, error) {
	return regressions(benchstatCSV, maxSlowdown, false)
}

func regressions(benchstatCSV io.Reader, maxSlowdown float64, times bool) ([]Regression, error) {
	rd := csv.NewReader(benchstatCSV)
	rd.FieldsPerRecord = -1
	var out []Regression
	unit := ""
	rows := 0
	for {
		rec, err := rd.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("cannot parse benchstat CSV output: %w; run benchstat with -format csv", err)
		}
		if len(rec) == 0 || (len(rec) == 1 && strings.TrimSpace(rec[0]) == "") {
			unit = ""
			continue
		}
		if rec[0] == "" {
			// A header row: the one naming the files, or the one naming
			// the unit, which is followed by "CI".
			if len(rec) > 2 && rec[2] == "CI" {
				unit = rec[1]
			}
			continue
		}
		if rec[0] == "geomean" || unit == "" {
			continue
		}
		if len(rec) < 7 {
			// One file only (no comparison) or a malformed row.
			continue
		}
		rows++
		base, err1 := strconv.ParseFloat(rec[1], 64)
		nw, err2 := strconv.ParseFloat(rec[3], 64)
		if err1 != nil || err2 != nil {
			continue // a benchmark present on one side only
		}
		delta, p := rec[5], rec[6]
		pct, significant := parsePercent(delta)
		r := Regression{Benchmark: rec[0], Unit: unit, Base: base, New: nw, Delta: delta, P: p}
		switch unit {
		case "sec/op":
			if times && significant && pct > maxSlowdown*100 {
				out = append(out, r)
			}
		case "allocs/op":
			if (base == 0 && nw > 0) || (significant && pct > maxSlowdown*100) {
				out = append(out, r)
			}
		}
	}
	if rows == 0 {
		return nil, fmt.Errorf("cannot find any compared benchmark in the benchstat output; check that the baseline and the new run name the same benchmarks")
	}
	return out, nil
}

// parsePercent parses benchstat's "vs base" cell: "+12.34%", "-3.10%",
// "+Inf%"; "~" (not significant) and anything else report false.
func parsePercent(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasSuffix(s, "%") {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil && !math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}
