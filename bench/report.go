package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/redact"
)

// ReportOptions configures Sweep. The base point uses Options' partitions,
// connections and batch rows; every other point changes one of them.
type ReportOptions struct {
	Options
	Fractions  []float64 `json:"sweep_fractions"` // produce rates for the latency sweep, as fractions of the base point's maximum
	BatchRows  []int     `json:"sweep_batch_rows"`
	Partitions []int     `json:"sweep_partitions"`
	MaxConns   []int     `json:"sweep_max_conns"`
	// Growth lists target sizes (rows) for the growth curve (growth.go);
	// empty: none. GrowthOnly skips the capacity sweep.
	Growth     []int64 `json:"growth_rows,omitempty"`
	GrowthOnly bool    `json:"growth_only,omitempty"`
}

// ReportPoint is one configuration's measurements.
type ReportPoint struct {
	Param      string     `json:"param"` // "base", "batch_rows", "partitions", "max_conns"
	Partitions int        `json:"partitions"`
	MaxConns   int        `json:"max_conns"`
	BatchRows  int        `json:"batch_rows"`
	Drain      Throughput `json:"drain"`
	Latency    *Latency   `json:"latency,omitempty"` // at the fraction nearest 0.5
	CPU        CPU        `json:"cpu"`
}

// Report is a capacity sweep's outcome.
type Report struct {
	Generated time.Time     `json:"generated"`
	Env       string        `json:"environment"`
	Options   ReportOptions `json:"options"`
	RawCopy   *Throughput   `json:"raw_copy,omitempty"` // at the base point: the faster of (a) and (a')
	Insert    *Throughput   `json:"insert,omitempty"`
	Rate      []Latency     `json:"rate"` // the latency sweep at the base point
	Points    []ReportPoint `json:"points"`
	Growth    []GrowthPoint `json:"growth,omitempty"`

	// PGSettings are the server's durability settings, read back from it.
	PGSettings string `json:"postgres_settings"`
	// Shapes is the shape matrix (Options.Matrix): each workload shape
	// against its own raw COPY limit.
	Shapes  []ShapeResult `json:"shapes,omitempty"`
	Elapsed float64       `json:"elapsed_seconds"`
}

// Objective is the end-to-end latency a rate must keep at p99 to count as
// sustainable, and Target the original system's daily volume.
const (
	Objective = 1.0   // seconds
	TargetGB  = 500.0 // GB/day
)

func (o *ReportOptions) ensureDefaults() {
	if o.Records == 0 {
		o.Records = 300_000
	}
	if o.LatencyFor == 0 {
		o.LatencyFor = 8 * time.Second
	}
	o.Options.ensureDefaults()
	if o.Fractions == nil {
		o.Fractions = []float64{0.25, 0.5, 0.75, 0.9}
	}
	if o.BatchRows == nil {
		o.BatchRows = []int{5000, 20000, 50000}
	}
	if o.Partitions == nil {
		o.Partitions = []int{2, 4, 8}
	}
	if o.MaxConns == nil {
		o.MaxConns = []int{1, 2, 4}
	}
}

// Sweep measures the base point (with the raw COPY and INSERT baselines
// and the latency sweep), then each other value of batch rows, partitions
// and connections (drain, and latency at half its own maximum), then,
// with Options.Matrix, every shape of MatrixShapes against its own raw
// COPY limit. Every table is verified exactly once. A failing shape does
// not stop the report: Sweep returns the report with the error.
func Sweep(ctx context.Context, o ReportOptions) (*Report, error) {
	o.ensureDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.LatencyFor <= 0 {
		return nil, fmt.Errorf("cannot report without a latency sweep; use a positive --latency-for")
	}
	e, err := startEnv(ctx, o.Options)
	if err != nil {
		return nil, err
	}
	defer e.close()
	start := time.Now()
	r := &Report{Generated: start.UTC(), Env: e.describe(), Options: o, PGSettings: e.settings}
	r.Options.Options.Postgres = redact.Passwords(o.Options.Postgres) // the report is printed and saved
	logf(o.Log, "environment: %s", r.Env)
	if o.GrowthOnly {
		if len(o.Growth) == 0 {
			return nil, fmt.Errorf("cannot report growth only without sizes; give --growth, e.g. 0,10M,30M,50M")
		}
		go_ := o.Options
		go_.LatencyFor = -1
		g, err := e.growth(ctx, go_, o.Growth)
		r.Growth = g
		r.Elapsed = time.Since(start).Seconds()
		return r, err
	}
	logf(o.Log, "PostgreSQL: %s", r.PGSettings)
	base := pointSpec{shape: o.Options.shape(), Partitions: o.Options.Partitions, MaxConns: o.Options.MaxConns, BatchRows: o.Options.BatchRows,

		BatchBytes: o.BatchBytes, MaxAge: o.MaxAge, Records: o.Records, Seed: o.Seed,
		Latency: o.Fractions, LatencyFor: o.LatencyFor, cleanup: true}
	if !o.SkipBaselines {
		base.before = func(ctx context.Context, s *stream) error {
			raw, sorted, ins, err := e.baselines(ctx, s, o.Options)
			r.RawCopy, r.Insert = rawLimit(raw, sorted), ins
			return err
		}
	}
	logf(o.Log, "base point: %d partitions, %d connections, batches of %d rows", base.Partitions, base.MaxConns, base.BatchRows)
	pr, err := e.point(ctx, o.Options, base)
	if err != nil {
		return nil, err
	}
	r.Rate = pr.Latency
	basePt := ReportPoint{Param: "base", Partitions: base.Partitions, MaxConns: base.MaxConns, BatchRows: base.BatchRows,
		Drain: pr.Drain, Latency: nearestHalf(pr.Latency), CPU: pr.CPU}
	r.Points = append(r.Points, basePt)

	vary := func(param string, values []int, set func(*pointSpec, int), get func(pointSpec) int) error {
		for _, v := range values {
			if v == get(base) {
				continue
			}
			sp := base
			sp.before = nil
			sp.Latency = []float64{0.5}
			set(&sp, v)
			logf(o.Log, "point %s=%d", param, v)
			p, err := e.point(ctx, o.Options, sp)
			if err != nil {
				return fmt.Errorf("cannot measure %s=%d: %w", param, v, err)
			}
			r.Points = append(r.Points, ReportPoint{Param: param, Partitions: sp.Partitions, MaxConns: sp.MaxConns,
				BatchRows: sp.BatchRows, Drain: p.Drain, Latency: nearestHalf(p.Latency), CPU: p.CPU})
		}
		return nil
	}
	if err := vary("batch_rows", o.BatchRows, func(s *pointSpec, v int) { s.BatchRows = v }, func(s pointSpec) int { return s.BatchRows }); err != nil {
		return r, err
	}
	if err := vary("partitions", o.Partitions, func(s *pointSpec, v int) { s.Partitions = v }, func(s pointSpec) int { return s.Partitions }); err != nil {
		return r, err
	}
	if err := vary("max_conns", o.MaxConns, func(s *pointSpec, v int) { s.MaxConns = v }, func(s pointSpec) int { return s.MaxConns }); err != nil {
		return r, err
	}
	if len(o.Growth) > 0 {
		go_ := o.Options
		go_.LatencyFor = -1
		g, err := e.growth(ctx, go_, o.Growth)
		r.Growth = g
		if err != nil {
			return r, err
		}
	}
	if o.Matrix {
		logf(o.Log, "shape matrix: %d records per shape", o.Records)
		var shapes []Shape
		if shapes, err = selectShapes(MatrixShapes(o.DupRatio), o.Shapes); err == nil {
			r.Shapes, err = e.matrix(ctx, o.Options, shapes)
		}
	}
	r.Elapsed = time.Since(start).Seconds()
	return r, err
}

func nearestHalf(ls []Latency) *Latency {
	var best *Latency
	for i := range ls {
		if best == nil || math.Abs(ls[i].Fraction-0.5) < math.Abs(best.Fraction-0.5) {
			best = &ls[i]
		}
	}
	return best
}

// Sustainable returns the highest offered rate of the latency sweep whose
// p99 met Objective, or nil.
func (r *Report) Sustainable() *Latency {
	var best *Latency
	for i := range r.Rate {
		l := &r.Rate[i]
		if l.P99Sec <= Objective && (best == nil || l.MBPerSec > best.MBPerSec) {
			best = l
		}
	}
	return best
}

// Recommended returns the point with the highest drain throughput among
// those whose p99 at half their maximum met Objective (the base point if
// none did).
func (r *Report) Recommended() ReportPoint {
	best := -1
	for i, p := range r.Points {
		if p.Latency == nil || p.Latency.P99Sec > Objective {
			continue
		}
		if best < 0 || p.Drain.MBPerSec > r.Points[best].Drain.MBPerSec {
			best = i
		}
	}
	if best < 0 {
		return r.Points[0]
	}
	return r.Points[best]
}

// paramValue is the varied parameter's value of p.
func (p ReportPoint) paramValue(param string) int {
	switch param {
	case "batch_rows":
		return p.BatchRows
	case "partitions":
		return p.Partitions
	}
	return p.MaxConns
}

// series returns the base point and the points varying param, by value.
func (r *Report) series(param string) []ReportPoint {
	var out []ReportPoint
	for _, p := range r.Points {
		if p.Param == param || p.Param == "base" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b ReportPoint) int { return a.paramValue(param) - b.paramValue(param) })
	return out
}

var paramTitles = map[string]string{
	"batch_rows": "batch.max_rows",
	"partitions": "partitions",
	"max_conns":  "postgres.max_conns",
}

// Render writes report.md, report.json and the SVG charts into dir.
func Render(r *Report, dir string) error {
	if len(r.Points) == 0 && len(r.Growth) > 0 {
		return renderGrowthOnly(r, dir)
	}
	if len(r.Points) == 0 {
		return fmt.Errorf("cannot render a report without points; run the sweep first")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the report directory %s: %w", dir, err)
	}
	writeChart := func(name string, c svgChart) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("cannot write chart %s: %w", name, err)
		}
		if err := c.WriteSVG(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	var md strings.Builder
	o := r.Options
	base := r.Points[0]
	fmt.Fprintf(&md, "# Sluice capacity report\n\n")
	fmt.Fprintf(&md, "Generated %s by `sluice report` in %.0fs. Environment: %s. PostgreSQL settings: %s.\n\n",
		r.Generated.Format(time.RFC3339), r.Elapsed, r.Env, r.PGSettings)
	fmt.Fprintf(&md, "Workload per point: %d `%s` records (%.1f%% verbatim duplicates), batch.max_bytes %d, batch.max_age %v. "+
		"Base point: %d partitions, %d connections, batches of %d rows. %s "+
		"MB/s and GB/day are of the JSON input; numbers come from one run on a shared machine, so compare them within this report only.\n\n",
		o.Records, o.Schema, 100*o.DupRatio, o.BatchBytes, o.MaxAge, base.Partitions, base.MaxConns, base.BatchRows, verifiedLine(r.Shapes))

	fmt.Fprintf(&md, "## Summary\n\n| | value |\n|---|---|\n")
	fmt.Fprintf(&md, "| maximum (drain of a backlog) | %.1f MB/s, %.0f rows/s, %.0f GB/day |\n", base.Drain.MBPerSec, base.Drain.RowsPerSec, base.Drain.GBPerDay)
	if r.RawCopy != nil {
		fmt.Fprintf(&md, "| raw COPY limit, same rows, same connections (the faster of the rows in workload order and in key order) | %.1f MB/s (Sluice reaches %.2f of it) |\n", r.RawCopy.MBPerSec, r.RawCopy.Seconds/base.Drain.Seconds)
	}
	if r.Insert != nil {
		fmt.Fprintf(&md, "| plain INSERT … ON CONFLICT DO NOTHING | %.1f MB/s (Sluice is %.2f× it) |\n", r.Insert.MBPerSec, r.Insert.Seconds/base.Drain.Seconds)
	}
	if s := r.Sustainable(); s != nil {
		gb := s.MBPerSec * 86.4
		fmt.Fprintf(&md, "| sustainable at p99 ≤ %.0f s | %.1f MB/s = **%.0f GB/day** (at %.0f%% of the maximum: p50 %.3f s, p99 %.3f s) |\n",
			Objective, s.MBPerSec, gb, 100*s.Fraction, s.P50Sec, s.P99Sec)
		fmt.Fprintf(&md, "| headroom against %.0f GB/day | **%.1f×** |\n", TargetGB, gb/TargetGB)
	} else {
		fmt.Fprintf(&md, "| sustainable at p99 ≤ %.0f s | not met at any measured rate (lowest: %.0f%% of the maximum) |\n", Objective, 100*slices.Min(o.Fractions))
	}
	c := base.CPU
	if c.Appliance >= 0 && c.Postgres >= 0 {
		tot := c.Appliance + c.Postgres + max(c.Broker, 0)
		broker := ""
		if c.Broker >= 0 {
			broker = fmt.Sprintf(", embedded broker %.1f s (%.0f%%)", c.Broker, 100*c.Broker/tot)
		}
		fmt.Fprintf(&md, "| where the time goes (base drain, CPU seconds) | appliance process %.1f s (%.0f%%)%s, PostgreSQL %.1f s (%.0f%%), of %.1f s wall × %d cores |\n",
			c.Appliance, 100*c.Appliance/tot, broker, c.Postgres, 100*c.Postgres/tot, c.Wall, c.Cores)
	}
	rec := r.Recommended()
	fmt.Fprintf(&md, "| recommended | `postgres.max_conns: %d`, `batch.max_rows: %d`, %d partitions (%.1f MB/s, p99 %s at half load) |\n\n",
		rec.MaxConns, rec.BatchRows, rec.Partitions, rec.Drain.MBPerSec, fmtLat(rec.Latency))

	// Latency against rate.
	fmt.Fprintf(&md, "## Latency against produce rate (base point)\n\n![latency against rate](latency-rate.svg)\n\n")
	fmt.Fprintf(&md, "| fraction of max | records/s | MB/s | GB/day | p50 | p99 |\n|---|---|---|---|---|---|\n")
	lc := &Chart{Title: "End-to-end latency against produce rate", XLabel: "offered MB/s", YLabel: "seconds", HLine: Objective, HLineLabel: "p99 objective"}
	var p50s, p99s [][2]float64
	for _, l := range r.Rate {
		fmt.Fprintf(&md, "| %.0f%% | %.0f | %.1f | %.0f | %.3f s | %.3f s |\n", 100*l.Fraction, l.RecordsPerSec, l.MBPerSec, l.MBPerSec*86.4, l.P50Sec, l.P99Sec)
		p50s = append(p50s, [2]float64{l.MBPerSec, l.P50Sec})
		p99s = append(p99s, [2]float64{l.MBPerSec, l.P99Sec})
	}
	lc.Series = []Series{{Name: "p50", Points: p50s}, {Name: "p99", Points: p99s}}
	if err := writeChart("latency-rate.svg", lc); err != nil {
		return err
	}
	md.WriteString("\n")

	for _, param := range []string{"batch_rows", "partitions", "max_conns"} {
		pts := r.series(param)
		title := paramTitles[param]
		fmt.Fprintf(&md, "## Throughput and latency against %s\n\n", title)
		fmt.Fprintf(&md, "![throughput against %s](throughput-%s.svg) ![latency against %s](latency-%s.svg)\n\n", title, param, title, param)
		fmt.Fprintf(&md, "| %s | rows/s | MB/s | GB/day | p50 at half load | p99 at half load | appliance CPU | broker CPU | PostgreSQL CPU | wall |\n|---|---|---|---|---|---|---|---|---|---|\n", title)
		var thr, l50, l99 [][2]float64
		for _, p := range pts {
			x := float64(p.paramValue(param))
			fmt.Fprintf(&md, "| %d | %.0f | %.1f | %.0f | %s | %s | %s | %s | %s | %.1f s |\n", p.paramValue(param), p.Drain.RowsPerSec, p.Drain.MBPerSec, p.Drain.GBPerDay,
				fmtP(p.Latency, false), fmtP(p.Latency, true), fmtCPU(p.CPU.Appliance), fmtCPU(p.CPU.Broker), fmtCPU(p.CPU.Postgres), p.CPU.Wall)
			thr = append(thr, [2]float64{x, p.Drain.MBPerSec})
			if p.Latency != nil {
				l50 = append(l50, [2]float64{x, p.Latency.P50Sec})
				l99 = append(l99, [2]float64{x, p.Latency.P99Sec})
			}
		}
		md.WriteString("\n")
		if err := writeChart("throughput-"+param+".svg", &Chart{Title: "Drain throughput against " + title, XLabel: title, YLabel: "MB/s",
			Series: []Series{{Name: "Sluice", Points: thr}}}); err != nil {
			return err
		}
		if err := writeChart("latency-"+param+".svg", &Chart{Title: "Latency at half load against " + title, XLabel: title, YLabel: "seconds",
			HLine: Objective, HLineLabel: "p99 objective", Series: []Series{{Name: "p50", Points: l50}, {Name: "p99", Points: l99}}}); err != nil {
			return err
		}
	}
	if len(r.Growth) > 0 {
		if err := renderGrowth(&md, r.Growth, writeChart); err != nil {
			return err
		}
	}
	if len(r.Shapes) > 0 {
		if err := writeShapes(&md, r.Shapes, o.Records, writeChart); err != nil {
			return err
		}
	}
	split := ""
	if o.SplitCores {
		split = " --split-cores"
	}
	fmt.Fprintf(&md, "## How to reproduce\n\n```sh\nmake build && ./bin/sluice report%s --out DIR   # flags widen the sweep: sluice report -h\n```\n", split)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o644)
}

// svgChart is a Chart or a BarChart.
// verifiedLine says what the report's verification found: every table
// exactly once, or how many shape runs failed (a failed shape is in the
// report with its verdict; a failed point or growth point is not).
func verifiedLine(shapes []ShapeResult) string {
	failed := 0
	for _, s := range shapes {
		if !s.Verified {
			failed++
		}
	}
	switch failed {
	case 0:
		return "Every table was verified exactly once."
	case 1:
		return "Every table was verified exactly once except in 1 shape run, which FAILED (Workload shapes): it has no ratio."
	}
	return fmt.Sprintf("Every table was verified exactly once except in %d shape runs, which FAILED (Workload shapes): they have no ratio.", failed)
}

type svgChart interface{ WriteSVG(io.Writer) error }

// writeShapes writes the shape matrix: a table and shapes.svg, a bar per
// shape of its ratio to the raw COPY limit (the median over its runs).
func writeShapes(md *strings.Builder, shapes []ShapeResult, records int64, writeChart func(string, svgChart) error) error {
	sums := summarize(shapes)
	runs := mostRuns(sums)
	fmt.Fprintf(md, "## Workload shapes\n\n![Sluice / raw COPY limit per shape](shapes.svg)\n\n")
	fmt.Fprintf(md, "%d records per shape; each shape's raw COPY copies the rows its table must end with (each event's winning version), "+
		"into an identical table, just before the shape's drain, twice: in the workload's order (a) and with each COPY's rows in key order (a'), "+
		"as Sluice sends them. The raw COPY limit is the faster of the two (%s). The ratio is raw COPY limit seconds over Sluice seconds.",
		records, sortedLimits(sums))
	if runs > 1 {
		fmt.Fprintf(md, " Every shape ran %d times, in rounds (each round runs every shape once); the times are medians, "+
			"the ratio is the median of the runs' ratios, each against the raw COPY of its own run.", runs)
	}
	md.WriteString("\n\n| shape | keys | dups | updates | on_conflict | format | raw COPY | Sluice | Sluice MB/s | **Sluice / raw COPY** |")
	if runs > 1 {
		md.WriteString(" each run |")
	}
	md.WriteString(" verify |\n|---|---|---|---|---|---|---|---|---|---|")
	if runs > 1 {
		md.WriteString("---|")
	}
	md.WriteString("---|\n")
	var bars []Bar
	for _, s := range sums {
		raw := "–"
		if s.RawCopySeconds > 0 {
			raw = fmt.Sprintf("%.2f s", s.RawCopySeconds)
		}
		oc := s.Shape.OnConflict
		if g := s.Shape.Guard(); g != "" {
			oc += " (guard " + g + ")"
		}
		// A shape none of whose runs verified has no times and no ratio.
		drain, mbs, ratio := "–", "–", "–"
		if s.SluiceSeconds > 0 {
			drain, mbs = fmt.Sprintf("%.2f s", s.SluiceSeconds), fmt.Sprintf("%.1f", s.SluiceMBPerSec)
		}
		if s.MedianRatio > 0 {
			ratio = fmt.Sprintf("**%.2f**", s.MedianRatio)
		}
		fmt.Fprintf(md, "| %s | %s | %.0f%% | %g%% | %s | %s | %s | %s | %s | %s |", s.Shape.Name, s.Shape.Keys, 100*s.Shape.DupRatio,
			100*s.Shape.UpdateRatio, oc, s.Shape.formatName(), raw, drain, mbs, ratio)
		v := verdict(s.Verified == s.Runs)
		if runs > 1 {
			fmt.Fprintf(md, " %s |", s.eachRatio(", ", "–"))
			v = fmt.Sprintf("%d of %d runs %s", s.Verified, s.Runs, verdict(true))
		}
		fmt.Fprintf(md, " %s |\n", v)
		bars = append(bars, Bar{Label: s.Shape.Name, Value: s.MedianRatio})
	}
	md.WriteString("\n")
	return writeChart("shapes.svg", &BarChart{Title: "Sluice / raw COPY limit, per workload shape", YLabel: "ratio of times",
		Bars: bars, HLine: 0.9, HLineLabel: "0.9"})
}

func fmtLat(l *Latency) string {
	if l == nil {
		return "not measured"
	}
	return fmt.Sprintf("%.3f s", l.P99Sec)
}

func fmtP(l *Latency, p99 bool) string {
	if l == nil {
		return "–"
	}
	if p99 {
		return fmt.Sprintf("%.3f s", l.P99Sec)
	}
	return fmt.Sprintf("%.3f s", l.P50Sec)
}

func fmtCPU(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f s", v)
}

// ReportMain is `sluice report`.
func ReportMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sluice report", stderr)
	var o ReportOptions
	var brokers, fractions, batchRows, partitions, conns, out string
	var inProcess bool
	commonFlags(fs, &o.Options, &brokers, &inProcess)
	fs.Int64Var(&o.Records, "records", 300_000, "records preloaded and drained per point")
	fs.IntVar(&o.Options.Partitions, "base-partitions", 4, "partitions of the base point")
	fs.IntVar(&o.Options.MaxConns, "base-max-conns", 2, "connections of the base point")
	fs.IntVar(&o.Options.BatchRows, "base-batch-rows", 50000, "batch.max_rows of the base point")
	fs.DurationVar(&o.LatencyFor, "latency-for", 8*time.Second, "how long each fixed-rate latency measurement produces")
	fs.StringVar(&fractions, "fractions", "0.25,0.5,0.75,0.9", "produce rates of the latency sweep, as fractions of the base maximum")
	fs.StringVar(&batchRows, "batch-rows", "5000,20000,50000", "batch.max_rows values to sweep")
	fs.StringVar(&partitions, "partitions", "2,4,8", "partition counts to sweep")
	fs.StringVar(&conns, "max-conns", "1,2,4", "postgres.max_conns values to sweep")
	fs.BoolVar(&o.SkipBaselines, "skip-baselines", false, "skip the raw COPY and INSERT baselines")
	fs.BoolVar(&o.Matrix, "matrix", true, "also measure each workload shape (as sluice bench --matrix) against its own raw COPY limit")
	fs.IntVar(&o.Runs, "runs", 1, "measure every shape of the matrix this many times, in rounds, and report the median ratio and each run's")
	var shapes string
	fs.StringVar(&shapes, "shapes", "", "the matrix's shapes to measure, comma-separated ("+shapeIDs()+"); default all")
	fs.StringVar(&out, "out", "report", "directory for report.md, report.json and the SVG charts")
	var growth string
	fs.StringVar(&growth, "growth", "", "table sizes for the growth curve, e.g. 0,10M,30M,50M: throughput of a plain and a day-partitioned target prefilled with that many rows, against the raw COPY limit into the same table (long: the full curve prefills 180M rows)")
	fs.BoolVar(&o.GrowthOnly, "growth-only", false, "measure only the growth curve (--growth), not the capacity sweep")
	var from string
	fs.StringVar(&from, "render", "", "measure nothing: render this report.json of an earlier run into --out")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: sluice report [flags]\n\nA capacity sweep over rate, batch size, partitions and connections, written as\nMarkdown with SVG charts. The default sweep takes a few minutes.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("cannot use argument %q: sluice report takes flags only", fs.Arg(0))
	}
	if from != "" {
		return renderFrom(from, out, stdout)
	}
	var err error
	if o.Fractions, err = parseList(fractions, "--fractions", func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }); err != nil {
		return err
	}
	atoi := func(s string) (int, error) { return strconv.Atoi(s) }
	if o.BatchRows, err = parseList(batchRows, "--batch-rows", atoi); err != nil {
		return err
	}
	if o.Partitions, err = parseList(partitions, "--partitions", atoi); err != nil {
		return err
	}
	if o.MaxConns, err = parseList(conns, "--max-conns", atoi); err != nil {
		return err
	}
	if growth != "" {
		for _, f := range strings.Split(growth, ",") {
			n, err := parseRows(f)
			if err != nil {
				return fmt.Errorf("--growth: %w", err)
			}
			o.Growth = append(o.Growth, n)
		}
	}
	o.Shapes = splitList(shapes)
	if err := brokerFlags(&o.Options, brokers, inProcess); err != nil {
		return err
	}
	o.Log = stderr
	r, err := Sweep(ctx, o)
	if !r.hasResults() {
		return err
	}
	// A failed shape is in the report (its verdict and error); the
	// error still fails the command.
	if rerr := Render(r, out); rerr != nil {
		return errors.Join(err, rerr)
	}
	fmt.Fprintf(stdout, "sluice report: wrote %s\n", filepath.Join(out, "report.md"))
	return err
}

// renderFrom renders the report saved in file (a report.json) into dir.
func renderFrom(file, dir string, stdout io.Writer) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("cannot read the report to render: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("cannot read %s as a report.json of sluice report: %w", file, err)
	}
	if !r.hasResults() {
		return fmt.Errorf("cannot render %s: it holds no measurements", file)
	}
	if err := Render(&r, dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sluice report: wrote %s\n", filepath.Join(dir, "report.md"))
	return nil
}

// hasResults reports whether r holds measurements to render: a growth
// curve (whole or, after a failure, the points measured) for a
// growth-only report, else the sweep's points and, with the matrix, its
// shapes.
func (r *Report) hasResults() bool {
	switch {
	case r == nil:
		return false
	case r.Options.GrowthOnly:
		return len(r.Growth) > 0
	}
	return len(r.Points) > 0 && (!r.Options.Matrix || len(r.Shapes) > 0)
}

// renderGrowthOnly writes report.md and report.json of a growth-only
// report.
func renderGrowthOnly(r *Report, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the report directory %s: %w", dir, err)
	}
	writeChart := func(name string, c svgChart) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("cannot write chart %s: %w", name, err)
		}
		if err := c.WriteSVG(f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	var md strings.Builder
	o := r.Options
	fmt.Fprintf(&md, "# Sluice growth report\n\n")
	fmt.Fprintf(&md, "Generated %s by `sluice report --growth-only` in %.0fs. Environment: %s.", r.Generated.Format(time.RFC3339), r.Elapsed, r.Env)
	if r.PGSettings != "" {
		fmt.Fprintf(&md, " PostgreSQL settings: %s.", r.PGSettings)
	}
	md.WriteString("\n\n")
	fmt.Fprintf(&md, "Workload per point: %d `%s` records (%.1f%% verbatim duplicates), %d partitions, %d connections, batches of %d rows. "+
		"Every table was verified exactly once. Numbers come from one run on a shared machine: compare them within this report only.\n\n",
		o.Records, o.Schema, 100*o.DupRatio, o.Options.Partitions, o.Options.MaxConns, o.Options.BatchRows)
	if err := renderGrowth(&md, r.Growth, writeChart); err != nil {
		return err
	}
	fmt.Fprintf(&md, "## How to reproduce\n\n```sh\nmake build && ./bin/sluice report --growth-only --growth %s --records %d --out DIR\n```\n", growthList(o.Growth), o.Records)
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o644)
}

func growthList(sizes []int64) string {
	var s []string
	for _, n := range sizes {
		s = append(s, strings.ReplaceAll(fmtRows(n), " ", ""))
	}
	return strings.Join(s, ",")
}

func parseList[T int | float64](s, flagName string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("cannot parse %q in %s; give positive numbers separated by commas", f, flagName)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cannot sweep an empty %s; give at least one value", flagName)
	}
	return out, nil
}
