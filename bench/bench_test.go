package bench

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChartSVG(t *testing.T) {
	c := &Chart{Title: "T <&>", XLabel: "x", YLabel: "y", HLine: 1, HLineLabel: "objective",
		Series: []Series{{Name: "a", Points: [][2]float64{{1, 0.2}, {2, 0.7}, {4, 1.9}}}, {Name: "b", Points: [][2]float64{{1, 3}}}}}
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML with one polyline (b has a single point) and four
	// markers; the title is escaped.
	d := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	counts := map[string]int{}
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
			// encoding/xml accepts duplicate attributes; XML (and so
			// browsers) do not.
			seen := map[string]bool{}
			for _, a := range se.Attr {
				if seen[a.Name.Local] {
					t.Errorf("<%s> repeats attribute %s", se.Name.Local, a.Name.Local)
				}
				seen[a.Name.Local] = true
			}
		}
	}
	if counts["svg"] != 1 || counts["polyline"] != 1 || counts["circle"] != 4 {
		t.Fatalf("elements %v in\n%s", counts, b.String())
	}
	if !strings.Contains(b.String(), "T &lt;&amp;&gt;") {
		t.Fatal("title not escaped")
	}
	// The y axis covers the largest value: ticks go up to 5 (niceCeil(3)).
	if !strings.Contains(b.String(), ">5<") {
		t.Fatalf("no tick at 5 in\n%s", b.String())
	}
	b.Reset()
	if err := (&Chart{Title: "empty"}).WriteSVG(&b); err != nil || !strings.Contains(b.String(), "no data") {
		t.Fatalf("empty chart: %v\n%s", err, b.String())
	}
}

func TestNiceCeilAndTicks(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{0.7, 1}, {1.2, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {130, 200}, {0, 0}} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	ts := ticks(0, 250)
	if len(ts) < 4 || len(ts) > 10 || ts[0] != 0 || ts[len(ts)-1] != 250 {
		t.Errorf("ticks(0, 250) = %v", ts)
	}
}

const benchstatCSV = `,base.txt,,new.txt,,,
,sec/op,CI,sec/op,CI,vs base,P
DecodeReference-2,1.0e-06,1%,1.3e-06,2%,+30.00%,p=0.002 n=6
Framing-2,2.0e-08,1%,2.1e-08,1%,~,p=0.310 n=6
Batching-2,5.0e-07,1%,5.4e-07,1%,+8.00%,p=0.002 n=6
geomean,1e-07,,1.1e-07,,+10.00%,

,/tmp/a.txt,,/tmp/b.txt,,,
,allocs/op,CI,allocs/op,CI,vs base,P
DecodeReference-2,0,∞,1,∞,~,p=0.100 n=6
Framing-2,0,∞,0,∞,~,p=1.000 n=6
Generator-2,3,∞,3,∞,~,p=1.000 n=6
geomean,,,,,+0.00%,
`

func TestRegressions(t *testing.T) {
	regs, err := Regressions(strings.NewReader(benchstatCSV), 0.15)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range regs {
		got = append(got, r.Benchmark+" "+r.Unit)
	}
	want := []string{"DecodeReference-2 sec/op", "DecodeReference-2 allocs/op"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("regressions %v, want %v", got, want)
	}
	// A looser threshold keeps the new allocation but not the slowdown.
	regs, _ = Regressions(strings.NewReader(benchstatCSV), 0.5)
	if len(regs) != 1 || regs[0].Unit != "allocs/op" {
		t.Fatalf("with 50%%: %v", regs)
	}
	if _, err := Regressions(strings.NewReader(",a.txt\n,sec/op,CI\nX-2,1,∞\n"), 0.15); err == nil {
		t.Fatal("output without a comparison was accepted")
	}
	// Against a baseline from another CPU only allocations are judged.
	regs, err = AllocRegressions(strings.NewReader(benchstatCSV), 0.15)
	if err != nil || len(regs) != 1 || regs[0].Unit != "allocs/op" {
		t.Fatalf("allocations only: %v, %v", regs, err)
	}
}

func TestParseProcStat(t *testing.T) {
	b := []byte("cpu  1000 20 300 5000 70 5 95 40 0 0\ncpu0 500 10 150 2500 35 2 48 20 0 0\n")
	v, err := parseProcStat(b)
	if err != nil || v != 14.2 { // user, nice, system, irq and softirq
		t.Fatalf("busy %v, %v; want 14.2", v, err)
	}
	if _, err := parseProcStat([]byte("intr 1 2 3\n")); err == nil {
		t.Fatal("a file without the cpu line was accepted")
	}
	c := CPU{Appliance: 2, Broker: 0.5, Postgres: 3.5, Wall: 4, Cores: 2, Machine: 7.6}
	if got, want := c.describe("appliance"), "CPU-s: appliance 2.0, broker 0.5, PostgreSQL 3.5 of 8.0 (75% busy; the whole machine 95%)"; got != want {
		t.Fatalf("describe: %q, want %q", got, want)
	}
	c.PostgresCores = 1
	if got, want := c.describe("appliance"), "CPU-s: appliance 2.0, broker 0.5, PostgreSQL 3.5 of 8.0 (75% busy; the whole machine 95%; PostgreSQL's own CPUs 88%)"; got != want {
		t.Fatalf("describe with PostgreSQL on one CPU: %q, want %q", got, want)
	}
}

func syntheticReport() *Report {
	lat := func(f, mb, p99 float64) *Latency {
		return &Latency{Fraction: f, RecordsPerSec: mb * 2000, MBPerSec: mb, P50Sec: p99 / 3, P99Sec: p99}
	}
	pt := func(param string, parts, conns, rows int, mb, p99 float64) ReportPoint {
		return ReportPoint{Param: param, Partitions: parts, MaxConns: conns, BatchRows: rows,
			Drain: newThroughput(10*time.Second, 1000, 900, int64(mb*10e6)), Latency: lat(0.5, mb/2, p99),
			CPU: CPU{Appliance: 4, Postgres: 6, Wall: 10, Cores: 2}}
	}
	raw := newThroughput(9*time.Second, 1000, 900, 600e6)
	return &Report{
		Generated: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Env: "synthetic",
		Options: ReportOptions{Options: Options{Records: 1000, Schema: "reference", DupRatio: 0.01, MaxAge: 250 * time.Millisecond}},
		RawCopy: &raw,
		Rate:    []Latency{*lat(0.25, 15, 0.3), *lat(0.5, 30, 0.6), *lat(0.9, 54, 2.5)},
		Points: []ReportPoint{
			pt("base", 4, 2, 50000, 60, 0.6),
			pt("max_conns", 4, 4, 50000, 70, 1.4), // faster but misses the objective
			pt("max_conns", 4, 1, 50000, 40, 0.5),
			pt("batch_rows", 4, 2, 20000, 55, 0.4),
		},
	}
}

// renderReport renders r into a temporary directory, checks that its
// report.md holds every string of want, and returns the directory.
func renderReport(t *testing.T, r *Report, want ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := Render(r, dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !strings.Contains(string(md), w) {
			t.Errorf("report lacks %q:\n%s", w, md)
		}
	}
	return dir
}

func TestRenderSynthetic(t *testing.T) {
	r := syntheticReport()
	if s := r.Sustainable(); s == nil || s.MBPerSec != 30 {
		t.Fatalf("sustainable %+v, want the 30 MB/s point", s)
	}
	if rec := r.Recommended(); rec.MaxConns != 2 || rec.BatchRows != 50000 {
		t.Fatalf("recommended %+v, want the base point", rec)
	}
	dir := renderReport(t, r,
		"30.0 MB/s = **2592 GB/day**",   // sustainable at p99 ≤ 1 s
		"**5.2×**",                      // headroom against 500 GB/day
		"reaches 0.90 of it",            // 9 s raw COPY over 10 s
		"appliance process 4.0 s (40%)", // where the time goes
		"`postgres.max_conns: 2`",       // recommended
		"| 1 | 90 | 40.0 |",             // the max_conns table, sorted
		"![latency against rate](latency-rate.svg)",
	)
	for _, f := range []string{"latency-rate.svg", "throughput-batch_rows.svg", "latency-max_conns.svg", "throughput-partitions.svg", "report.json"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if err := Render(&Report{}, dir); err == nil {
		t.Fatal("an empty report rendered")
	}
	// A report measured with the cores split says so in its command.
	r.Options.SplitCores = true
	renderReport(t, r, "./bin/sluice report --split-cores --out DIR")
}

// TestRunSmall runs the whole benchmark on a few thousand records: the
// result must be complete and verified. It asserts no timing.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The broker runs as `sluice broker` in a child process, as `sluice
	// bench` runs it: build this tree's sluice.
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/sluice-dev/sluice")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build sluice: %v\n%s", err, out)
	}
	// With 2 CPUs or more, the run splits them (--split-cores), and gives
	// this process its CPUs and GOMAXPROCS back at the end.
	allowed, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	split, procs := len(allowed) >= 2, runtime.GOMAXPROCS(0)
	var log bytes.Buffer
	res, err := Run(ctx, Options{Records: 4000, Partitions: 2, MaxConns: 2, BatchRows: 1000, InsertRows: 100,
		LatencyFor: 500 * time.Millisecond, Compression: "lz4", SortedBaseline: true, SplitCores: split,
		BrokerCommand: []string{bin, "broker"}, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !strings.Contains(res.Env, "in its own process") {
		t.Errorf("environment %q does not name the broker process", res.Env)
	}
	if split {
		if !strings.Contains(res.Env, "cores split: PostgreSQL on CPU ") {
			t.Errorf("environment %q does not name the split", res.Env)
		}
		after, err := allowedCPUs()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(after, allowed) || runtime.GOMAXPROCS(0) != procs {
			t.Errorf("after the run: CPUs %v, GOMAXPROCS %d; before %v, %d", after, runtime.GOMAXPROCS(0), allowed, procs)
		}
	}
	if !res.Verified || len(res.Verify) != 2 {
		t.Fatalf("verified %v: %v", res.Verified, res.Verify)
	}
	for name, th := range map[string]*Throughput{"sluice": &res.Sluice, "raw": res.RawCopy, "raw sorted": res.RawCopySorted, "insert": res.Insert} {
		if th == nil || th.Seconds <= 0 || th.Records != 4000 || th.Rows < 3900 || th.Rows > 4000 || th.RowsPerSec <= 0 || th.Bytes <= 0 {
			t.Errorf("%s throughput %+v", name, th)
		}
	}
	if res.RatioRawCopy <= 0 || res.RatioInsert <= 0 || res.Batches == 0 {
		t.Errorf("ratios %v %v, batches %d", res.RatioRawCopy, res.RatioInsert, res.Batches)
	}
	if len(res.Latency) != 1 || res.Latency[0].Records == 0 || res.Latency[0].P99Sec <= 0 || res.Latency[0].P50Sec > res.Latency[0].P99Sec {
		t.Errorf("latency %+v", res.Latency)
	}
	if res.CPU.Appliance <= 0 || res.CPU.Postgres < 0 || res.CPU.Broker < 0 {
		t.Errorf("cpu %+v", res.CPU)
	}
	// /proc counts CPU in clock ticks (10ms): a phase of a few tens of
	// milliseconds may show none, so each phase must be measured and all of
	// them together must show PostgreSQL working (found by a fresh-clone CI
	// run: the raw phase took 26ms and counted 0).
	pgCPU := res.CPU.Postgres
	for name, th := range map[string]*Throughput{"raw": res.RawCopy, "raw sorted": res.RawCopySorted, "insert": res.Insert} {
		if th == nil || th.CPU == nil || th.CPU.Wall <= 0 || th.CPU.Postgres < 0 {
			t.Errorf("%s phase CPU %+v", name, th)
			continue
		}
		pgCPU += th.CPU.Postgres
	}
	if pgCPU <= 0 {
		t.Errorf("no PostgreSQL CPU counted over all phases")
	}
	if res.FirstRecord <= 0 || res.FirstCommit < res.FirstRecord || res.FirstCommit > res.Sluice.Seconds {
		t.Errorf("start-up: first record %.3fs, first commit %.3fs, drain %.3fs", res.FirstRecord, res.FirstCommit, res.Sluice.Seconds)
	}
	var out bytes.Buffer
	WriteText(&out, res)
	if !strings.Contains(out.String(), "Sluice / raw COPY limit") || !strings.Contains(out.String(), "OK: exactly once") {
		t.Errorf("text output:\n%s", out.String())
	}
}

func TestValidateCompression(t *testing.T) {
	o := Options{Compression: "brotli"}
	o.ensureDefaults()
	if err := o.validate(); err == nil || !strings.Contains(err.Error(), "none, gzip, snappy, lz4 or zstd") {
		t.Fatalf("compression brotli: %v", err)
	}
	o.Compression = "zstd"
	if err := o.validate(); err != nil {
		t.Fatalf("compression zstd: %v", err)
	}
}
