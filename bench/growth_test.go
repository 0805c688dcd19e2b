package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/ingest"
)

// TestGrowthSmall runs a prefilled, day-partitioned benchmark on a few
// thousand records: the prefill lands beside the benchmark's rows without
// a key in common, the raw COPY baseline goes into the same table and
// leaves nothing, and the run verifies exactly once. It asserts no timing.
func TestGrowthSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := Options{Records: 3000, Partitions: 2, MaxConns: 2, BatchRows: 1000, LatencyFor: -1, Log: &lockedWriter{w: testLog{t}}}
	o.ensureDefaults()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	e, err := startEnv(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	pts, err := e.growth(ctx, o, []int64{0, 5000})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 4 || pts[0].Layout != "plain" || pts[3].Layout != "day-partitioned" || pts[3].Rows != 5000 {
		t.Fatalf("points %+v", pts)
	}
	for _, p := range pts {
		if p.RawCopy == nil || p.Ratio <= 0 || p.Sluice.Rows != pts[0].Sluice.Rows {
			t.Errorf("point %+v is incomplete", p)
		}
		// The run's 1% dups: fewer distinct rows than records.
		if p.Sluice.Rows >= p.Sluice.Records {
			t.Errorf("point %s/%d drained %d records into %d rows: the workload's dups were left out", p.Layout, p.Rows, p.Sluice.Records, p.Sluice.Rows)
		}
	}
	// The last point's table is dropped (cleanup); build one more to look at.
	po := o
	po.Prefill, po.Partitioned = 5000, true
	s := e.newStream(o.Schema, o.shape(), o.Partitions, 9)
	s.gen.Records = 10
	if err := e.createTopics(ctx, []*stream{s}, o.Partitions); err != nil {
		t.Fatal(err)
	}
	cfg, err := e.config(po, pointSpec{Partitions: 2, MaxConns: 1, BatchRows: 100, BatchBytes: 1 << 20, MaxAge: time.Second}, []*stream{s})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tables[0].Partition == nil || strings.Join(cfg.Tables[0].Key, ",") != "event_id,ts" {
		t.Fatalf("partitioned config: %+v", cfg.Tables[0])
	}
	if err := ingest.Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.makeDayPartitions(ctx, s.table); err != nil {
		t.Fatal(err)
	}
	_, size, err := e.prefill(ctx, s.table, 5000, true, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	// 30 partitions of at least a heap page, an index page and a TOAST
	// index each; 5,000 rows of about 600 bytes.
	if size < 3_000_000 || size > 30_000_000 {
		t.Errorf("prefilled size %d bytes, want the partitions' sum (3–30 MB)", size)
	}
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n, parts, v4 int64
	if err := c.QueryRow(ctx, `SELECT count(*), count(DISTINCT tableoid), count(*) FILTER (WHERE substr(event_id::text, 15, 1) = '4') FROM `+qualified(s.table)).Scan(&n, &parts, &v4); err != nil {
		t.Fatal(err)
	}
	if n != 5000 || parts != prefillDays || v4 != 0 {
		t.Errorf("prefill: %d rows in %d partitions, %d with loadgen's UUID version; want 5000 in %d, none", n, parts, v4, prefillDays)
	}

	r := &Report{Generated: time.Now(), Env: "test", Options: ReportOptions{Options: o, Growth: []int64{0, 5000}, GrowthOnly: true}, Growth: pts}
	dir := renderReport(t, r, "## Throughput against table size", "| day-partitioned | 5 k |", "--growth 0,5k")
	if fi, err := os.Stat(filepath.Join(dir, "growth.svg")); err != nil || fi.Size() == 0 {
		t.Errorf("growth.svg: %v", err)
	}
}

// TestGrowthSpecShape: every growth point drains the run's workload shape
// (dups, keys, updates, format), the one its raw COPY limit is decoded
// with, not loadgen's defaults.
func TestGrowthSpecShape(t *testing.T) {
	o := Options{Keys: "null", UpdateRatio: 0.3, OnConflict: "update", DupRatio: 0.05}
	o.ensureDefaults()
	sp := growthSpec(o)
	if sp.shape != o.shape() {
		t.Errorf("growth point shape %+v, want the run's %+v", sp.shape, o.shape())
	}
	if g := sp.shape.genOptions(o.Schema); g.DupRatio != 0.05 || g.Keys != "null" || g.UpdateRatio != 0.3 {
		t.Errorf("growth point's loadgen options %+v lose the run's shape", g)
	}
	if sp.Records != o.Records || sp.MaxConns != o.MaxConns || sp.BatchRows != o.BatchRows || !sp.cleanup {
		t.Errorf("growth point spec %+v", sp)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestParseRows(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "500k": 500_000, "10M": 10_000_000, "1.5M": 1_500_000, "42": 42} {
		if got, err := parseRows(in); err != nil || got != want {
			t.Errorf("parseRows(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := parseRows("ten"); err == nil {
		t.Error("parseRows(ten) succeeded")
	}
}

// TestReportGrowthOnlyCommand: `sluice report --growth-only` writes its
// report (it once measured the whole curve and wrote nothing).
func TestReportGrowthOnlyCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := ReportMain(ctx, []string{"--in-process-broker", "--growth-only", "--growth", "0,2k", "--records", "2000",
		"--base-partitions", "2", "--base-batch-rows", "1000", "--out", dir}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "wrote "+filepath.Join(dir, "report.md")) {
		t.Errorf("stdout %q", stdout.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| plain | 2 k |", "| day-partitioned | 2 k |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "report.json")); err != nil {
		t.Fatal(err)
	}
	// The empty table keeps all of its own throughput.
	if !regexp.MustCompile(`\| plain \| 0 \| – \| [0-9.]+ \| [0-9]+ \| 1\.00 \|`).Match(md) {
		t.Errorf("the empty plain table's row lacks kept 1.00:\n%s", md)
	}
	// --render draws the same report from report.json, measuring nothing.
	again := t.TempDir()
	stdout.Reset()
	if err := ReportMain(ctx, []string{"--render", filepath.Join(dir, "report.json"), "--out", again}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	md2, err := os.ReadFile(filepath.Join(again, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(md, md2) {
		t.Errorf("rendered again from report.json:\n%s\nwant\n%s", md2, md)
	}
	if err := ReportMain(ctx, []string{"--render", filepath.Join(dir, "growth.svg"), "--out", again}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "report.json") {
		t.Errorf("rendering an SVG: %v", err)
	}
}
