package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/loadgen"
)

// TestDecodeWorkloadWinners: the raw COPY's rows are each event's winning
// version under the shape's policy, one per event.
func TestDecodeWorkloadWinners(t *testing.T) {
	for _, sh := range []Shape{
		{Keys: loadgen.KeysEventID, DupRatio: 0.05, UpdateRatio: 0.3, OnConflict: "ignore", Format: loadgen.FormatJSON},
		{Keys: loadgen.KeysEventID, DupRatio: 0.05, UpdateRatio: 0.3, OnConflict: "update", Format: loadgen.FormatJSON},
		{Keys: loadgen.KeysNull, DupRatio: 0.05, UpdateRatio: 0.3, OnConflict: "update", Format: loadgen.FormatAvro},
	} {
		gen := loadgen.Options{Seed: 3, Schema: loadgen.SchemaReference, Keys: sh.Keys, DupRatio: sh.DupRatio, UpdateRatio: sh.UpdateRatio,
			Format: sh.Format, SchemaID: 1}
		const n = 3000
		// The winner of each event, from the stream.
		want := map[[16]byte]int64{} // event id -> version of the row
		g := loadgen.NewGenerator(gen)
		var r loadgen.Rec
		var good int64
		for i := range int64(n) {
			g.At(i, &r)
			v, seen := want[r.EventID]
			switch {
			case r.Kind == loadgen.KindGood:
				good++
				want[r.EventID] = r.Version
			case sh.OnConflict == "ignore":
			case sh.Guard() == "version" && r.Version < v:
			case seen:
				want[r.EventID] = r.Version // update by offset: the last occurrence
			}
		}
		w, err := decodeWorkload(gen, n, 2, sh)
		if err != nil {
			t.Fatal(err)
		}
		if w.rows != good || int64(len(want)) != good {
			t.Fatalf("%s: %d distinct rows, %d good records, %d events", sh, w.rows, good, len(want))
		}
		idField, verField := -1, -1
		for k, c := range w.cols {
			switch c {
			case "event_id":
				idField = k
			case "version":
				verField = k
			}
		}
		got := 0
		for k := range w.distinct {
			s := &w.distinct[k]
			for i := range s.ends {
				tup := s.tuple(i)
				id := [16]byte(tupleField(tup, idField))
				ver := int64(binary.BigEndian.Uint64(tupleField(tup, verField)))
				if want[id] != ver {
					t.Fatalf("%s: event %x lands with version %d, want %d", sh, id, ver, want[id])
				}
				got++
			}
		}
		if int64(got) != good {
			t.Fatalf("%s: %d tuples, want %d", sh, got, good)
		}
	}
}

func TestShapeValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Keys: "uuid"}, "keys"},
		{Options{OnConflict: "replace"}, "on_conflict"},
		{Options{Schema: loadgen.SchemaWide, OnConflict: "update"}, "keyless"},
		{Options{UpdateRatio: 0.95}, "update ratio"},
		{Options{Format: "thrift"}, "format"},
		{Options{Schema: loadgen.SchemaNarrow, Format: loadgen.FormatAvro}, "reference"},
		{Options{Schema: loadgen.SchemaNarrow, Matrix: true}, "matrix"},
		{Options{Workload: loadgen.WorkloadCDC, Format: loadgen.FormatProtobuf}, "--format json (JsonConverter) or avro"},
		{Options{Workload: loadgen.WorkloadCDC, Format: loadgen.FormatAvro, CDCSchema: true}, "drop --cdc-schema"},
		{Options{Workload: loadgen.WorkloadCDC, Matrix: true}, "cdc shapes"},
		{Options{Workload: loadgen.WorkloadCDC, Prefill: 1000}, "prefill"},
		{Options{Workload: "logs"}, "events or cdc"},
		{Options{Matrix: true, Prefill: 1000}, "prefilled or partitioned"},
		{Options{Matrix: true, Partitioned: true}, "prefilled or partitioned"},
		{Options{Runs: 3}, "add --matrix"},
		{Options{Shapes: []string{"null"}}, "add --matrix"},
		{Options{Matrix: true, Runs: -1}, "--runs 1 or more"},
		{Options{Matrix: true, Shapes: []string{"null", "uuid"}}, "event-id, null, updates-30, updates-1, avro, protobuf, cdc, cdc-avro"},
	} {
		o := tc.o
		o.ensureDefaults()
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %q", tc.o, err, tc.want)
		}
	}
	o := Options{Keys: loadgen.KeysNull, OnConflict: "update", UpdateRatio: 0.3}
	o.ensureDefaults()
	if err := o.validate(); err != nil || o.shape().Guard() != "version" {
		t.Fatalf("null keys under update: %v, guard %q", err, o.shape().Guard())
	}
	if g := (Shape{Keys: loadgen.KeysEventID, OnConflict: "update"}).Guard(); g != "" {
		t.Fatalf("event-id keys under update: guard %q, want the offset", g)
	}
}

func TestBarChartSVG(t *testing.T) {
	c := &BarChart{Title: "ratios <&>", YLabel: "ratio", HLine: 0.9, HLineLabel: "0.9",
		Bars: []Bar{{"event-id keys", 0.95}, {"null keys", 0.8}, {"30% updates", 0.4}}}
	var b bytes.Buffer
	if err := c.WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	rects := 0
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// Background, plot frame and three bars.
	if rects != 5 || !strings.Contains(b.String(), "ratios &lt;&amp;&gt;") || !strings.Contains(b.String(), ">0.95<") {
		t.Fatalf("%d rects in\n%s", rects, b.String())
	}
	b.Reset()
	if err := (&BarChart{Title: "empty"}).WriteSVG(&b); err != nil || !strings.Contains(b.String(), "no data") {
		t.Fatalf("empty chart: %v\n%s", err, b.String())
	}
}

func TestRenderShapes(t *testing.T) {
	r := syntheticReport()
	raw := newThroughput(2*time.Second, 1000, 990, 480e3)
	for i, sh := range MatrixShapes(0.01) {
		r.Shapes = append(r.Shapes, ShapeResult{Shape: sh, RawCopy: &raw, Sluice: newThroughput(time.Duration(2+i)*time.Second, 1000, 990, 480e3),
			Ratio: 2 / float64(2+i), Verified: i != 3})
	}
	dir := renderReport(t, r,
		"## Workload shapes", "![Sluice / raw COPY limit per shape](shapes.svg)",
		"| event-id keys | event-id | 1% | 0% | ignore | json | 2.00 s | 2.00 s |",
		"| 30% updates | event-id | 1% | 30% | update | json |", "| 1% updates | event-id | 1% | 1% | update | json | – | – | – | – | FAILED |",
		"except in 1 shape run, which FAILED",
		"| cdc | id | 1% | 50% | update (guard lsn) | debezium |", "| cdc avro | id | 1% | 50% | update (guard lsn) | debezium avro |",
	)
	if b, err := os.ReadFile(filepath.Join(dir, "report.md")); err != nil || strings.Contains(string(b), "**0.40**") ||
		strings.Contains(string(b), "Every table was verified exactly once. ") {
		t.Errorf("the failed shape's ratio, or a claim that every table verified, is in the report (%v)", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "shapes.svg")); err != nil || fi.Size() == 0 {
		t.Fatalf("shapes.svg: %v", err)
	}
}

// TestMatrixCDCAvro: the matrix's cdc-avro shape is the workload `sluice
// bench --workload cdc --format avro` runs: the same loadgen stream (the
// events as AvroConverter writes them) into the same converter: avro
// table.
func TestMatrixCDCAvro(t *testing.T) {
	o := Options{Workload: loadgen.WorkloadCDC, Format: loadgen.FormatAvro}
	o.ensureDefaults()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	got, err := selectShapes(MatrixShapes(o.DupRatio), []string{"cdc-avro"})
	if err != nil || len(got) != 1 {
		t.Fatalf("shape cdc-avro: %v, %v", got, err)
	}
	sh, single := got[0], o.shape()
	if sh.Name != "cdc avro" || sh.Converter != loadgen.FormatAvro {
		t.Errorf("shape %+v", sh)
	}
	if g, w := sh.genOptions(o.Schema), single.genOptions(o.Schema); !reflect.DeepEqual(g, w) {
		t.Errorf("loadgen stream of the shape:\n%+v\nof --workload cdc --format avro:\n%+v", g, w)
	}
	sh.ID, sh.Name, single.Name = "", "", ""
	if sh != single {
		t.Errorf("shape %+v, --workload cdc --format avro runs %+v", sh, single)
	}
	s := &stream{topic: "t", table: "public.t", shape: got[0], gen: got[0].genOptions(o.Schema)}
	if y := s.tableSpec().YAML(); !strings.Contains(y, "format: debezium") || !strings.Contains(y, "converter: avro") {
		t.Errorf("table of the shape:\n%s", y)
	}
}

// TestMatrixSmall runs the shape matrix on a few thousand records: every
// shape measured against its own raw COPY and verified. No timing is
// asserted.
func TestMatrixSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log bytes.Buffer
	res, err := Run(ctx, Options{Records: 3000, Partitions: 2, MaxConns: 2, BatchRows: 1000, Matrix: true, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !res.Verified || len(res.Matrix) != len(MatrixShapes(0.01)) {
		t.Fatalf("verified %v, %d shapes", res.Verified, len(res.Matrix))
	}
	for _, r := range res.Matrix {
		if !r.Verified || r.RawCopy == nil || r.RawCopy.Seconds <= 0 || r.Sluice.Seconds <= 0 || r.Ratio <= 0 || len(r.Verify) != 1 {
			t.Errorf("shape %s: %+v", r.Shape.Name, r)
		}
		if r.Shape.Workload == loadgen.WorkloadCDC && !strings.Contains(r.Verify[0], "final state") {
			t.Errorf("shape %s verified as\n%s", r.Shape.Name, r.Verify[0])
		}
		if r.Shape.Workload == "" && r.Shape.UpdateRatio > 0 && !strings.Contains(r.Verify[0], "last committed occurrence") {
			t.Errorf("shape %s verified as\n%s", r.Shape.Name, r.Verify[0])
		}
	}
	if res.PGSettings != "wal_level=replica, fsync=on, full_page_writes=on, synchronous_commit=on" {
		t.Errorf("PostgreSQL settings %q", res.PGSettings)
	}
	var out bytes.Buffer
	WriteText(&out, res)
	for _, want := range []string{"null keys", "protobuf", "cdc: 50% updates", "wal_level=replica", "verified exactly once"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRenderShapesRuns: over several runs the report gives each shape's
// median ratio and every run's.
func TestRenderShapesRuns(t *testing.T) {
	r := syntheticReport()
	r.Options.Runs = 2
	raw := newThroughput(2*time.Second, 1000, 990, 480e3)
	shapes := MatrixShapes(0.01)[:2]
	for run := 1; run <= 2; run++ {
		for i, sh := range shapes {
			d := time.Duration(2+i+run) * time.Second
			r.Shapes = append(r.Shapes, ShapeResult{Shape: sh, Run: run, RawCopy: &raw, Sluice: newThroughput(d, 1000, 990, 480e3),
				Ratio: raw.Seconds / d.Seconds(), Verified: true})
		}
	}
	renderReport(t, r,
		"Every shape ran 2 times, in rounds", "| **Sluice / raw COPY** | each run | verify |",
		"| event-id keys | event-id | 1% | 0% | ignore | json | 2.00 s | 3.50 s | 0.1 | **0.58** | 0.67, 0.50 | 2 of 2 runs verified exactly once |",
		"| null keys | null | 1% | 0% | ignore | json | 2.00 s | 4.50 s |",
	)
}

// TestSelectShapes: --shapes picks shapes by ID, in the matrix's order.
func TestSelectShapes(t *testing.T) {
	all := MatrixShapes(0.01)
	got, err := selectShapes(all, []string{"cdc", "event-id"})
	if err != nil || len(got) != 2 || got[0].Name != "event-id keys" || got[1].Name != "cdc" {
		t.Fatalf("selected %+v, %v", got, err)
	}
	if got, err := selectShapes(all, nil); err != nil || len(got) != len(all) {
		t.Fatalf("no selection: %d shapes, %v", len(got), err)
	}
	ids := map[string]bool{}
	for _, sh := range all {
		if sh.ID == "" || ids[sh.ID] {
			t.Fatalf("shape %q has ID %q: every shape needs its own", sh.Name, sh.ID)
		}
		ids[sh.ID] = true
	}
}

// TestSummarize: runs gather by shape; the median, the range and the
// verdicts count only what each run measured.
func TestSummarize(t *testing.T) {
	a, b := MatrixShapes(0.01)[0], MatrixShapes(0.01)[1]
	run := func(sh Shape, n int, raw, drain float64, ok bool) ShapeResult {
		r := ShapeResult{Shape: sh, Run: n, Verified: ok, Sluice: Throughput{Seconds: drain, MBPerSec: 100 / drain}}
		if raw > 0 {
			r.RawCopy = &Throughput{Seconds: raw}
			r.Ratio = raw / drain
		}
		return r
	}
	rs := []ShapeResult{
		run(a, 1, 4, 5, true), run(b, 1, 4, 4, true),
		run(a, 2, 4.5, 5, true), run(b, 2, 0, 0, false), // b's second run failed before its raw COPY
		run(a, 3, 3, 5, false), run(b, 3, 3, 4, true),
		run(a, 4, 4.5, 4.5, true),
	}
	rs[3].Error = "no drain"
	sums := summarize(rs)
	if len(sums) != 2 || sums[0].Shape.Name != a.Name || sums[1].Shape.Name != b.Name {
		t.Fatalf("summaries %+v", sums)
	}
	sa, sb := sums[0], sums[1]
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	// a's third run measured 0.6 but failed verification: no ratio, no
	// times in the summary.
	if sa.Runs != 4 || sa.Verified != 3 || len(sa.Ratios) != 4 || sa.Ratios[2] != 0 || !near(sa.MedianRatio, 0.9) ||
		!near(sa.MinRatio, 0.8) || !near(sa.MaxRatio, 1) || !near(sa.RawCopySeconds, 4.5) || !near(sa.SluiceSeconds, 5) {
		t.Errorf("shape a: %+v", sa)
	}
	if sb.Runs != 3 || sb.Verified != 2 || sb.Ratios[1] != 0 || !near(sb.MedianRatio, (1+0.75)/2) ||
		!near(sb.MinRatio, 0.75) || !near(sb.RawCopySeconds, 3.5) || !near(sb.SluiceSeconds, 4) {
		t.Errorf("shape b: %+v", sb)
	}
	if median(nil) != 0 || median([]float64{3, 1, 2}) != 2 {
		t.Error("median")
	}

	var out bytes.Buffer
	writeMatrix(&out, rs)
	for _, want := range []string{"ratio: median (each run)", "0.90 (0.80 0.90 - 1.00)", "3 of 4 runs verified exactly once",
		"0.88 (1.00 - 0.75)", "2 of 3 runs verified exactly once", "medians over the runs", "null keys, run 2: no drain"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("matrix text lacks %q:\n%s", want, out.String())
		}
	}
	t.Log(out.String())
	out.Reset()
	writeMatrix(&out, rs[:2])
	if strings.Contains(out.String(), "each run") || !strings.Contains(out.String(), " 0.80  ") {
		t.Errorf("one run is printed as before:\n%s", out.String())
	}
}

// TestSortedLimit: the raw COPY limit is the faster of (a) and (a'); the
// summary counts the runs (a') was the limit and keeps the ratio to (a)
// alone beside it.
func TestSortedLimit(t *testing.T) {
	raw, sorted := &Throughput{Seconds: 5}, &Throughput{Seconds: 4}
	if rawLimit(raw, sorted) != sorted || rawLimit(sorted, raw) != sorted || rawLimit(raw, nil) != raw ||
		rawLimit(nil, sorted) != sorted || rawLimit(raw, &Throughput{}) != raw {
		t.Fatal("rawLimit does not pick the faster measured baseline")
	}
	if ratio(nil, Throughput{Seconds: 1}) != 0 || ratio(raw, Throughput{}) != 0 || ratio(raw, Throughput{Seconds: 10}) != 0.5 {
		t.Fatal("ratio")
	}
	sh := MatrixShapes(0.01)[0]
	run := func(n int, raw, sorted, drain float64) ShapeResult {
		r := ShapeResult{Shape: sh, Run: n, Verified: true, Sluice: Throughput{Seconds: drain}, RawCopy: &Throughput{Seconds: raw}}
		if sorted > 0 {
			r.RawCopySorted = &Throughput{Seconds: sorted}
		}
		r.Ratio = ratio(rawLimit(r.RawCopy, r.RawCopySorted), r.Sluice)
		r.RatioUnsorted = ratio(r.RawCopy, r.Sluice)
		return r
	}
	rs := []ShapeResult{run(1, 5, 4, 5), run(2, 4, 4.5, 5), run(3, 6, 4.5, 5)}
	s := summarize(rs)[0]
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if s.SortedLimit != 2 || !near(s.RawCopySeconds, 4) || !near(s.MedianRatio, 0.8) || !near(s.MedianUnsortedRatio, 1) {
		t.Errorf("summary %+v", s)
	}
	var out bytes.Buffer
	writeMatrix(&out, rs)
	for _, want := range []string{"0.80 (0.80 0.80 0.90)", "(a') in 2 of 3 runs", "/ (a)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("matrix text lacks %q:\n%s", want, out.String())
		}
	}
}

// TestMatrixRuns runs one selected shape twice: two runs, each with its
// own raw COPY, verified, and gathered into one summary.
func TestMatrixRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	res, err := Run(ctx, Options{Records: 2000, Partitions: 2, MaxConns: 2, BatchRows: 1000, Matrix: true, Shapes: []string{"null"}, Runs: 2, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !res.Verified || len(res.Matrix) != 2 || len(res.MatrixSummary) != 1 {
		t.Fatalf("verified %v, %d runs, %d summaries", res.Verified, len(res.Matrix), len(res.MatrixSummary))
	}
	for i, r := range res.Matrix {
		if r.Run != i+1 || r.Shape.ID != "null" || !r.Verified || r.RawCopy == nil || r.Ratio <= 0 {
			t.Errorf("run %d: %+v", i+1, r)
		}
	}
	s := res.MatrixSummary[0]
	if s.Runs != 2 || s.Verified != 2 || len(s.Ratios) != 2 || s.MedianRatio != (res.Matrix[0].Ratio+res.Matrix[1].Ratio)/2 {
		t.Errorf("summary %+v", s)
	}
	if !strings.Contains(log.String(), "shape 1 of 1, run 2 of 2: null keys") || !strings.Contains(log.String(), "MiB, as sluice run sets it") {
		t.Errorf("log:\n%s", log.String())
	}
}

// TestRegressionsNewBenchmark: a benchmark the baseline lacks (added since)
// is shown by benchstat without a comparison and fails nothing.
func TestRegressionsNewBenchmark(t *testing.T) {
	const csv = `,base.txt,,new.txt,,,
,sec/op,CI,sec/op,CI,vs base,P
DecodeReferenceEvent-2,1.0e-06,1%,1.0e-06,2%,~,p=0.900 n=6
DecodeAvroReferenceEvent-2,,,9.0e-07,0%

,base.txt,,new.txt,,,
,allocs/op,CI,allocs/op,CI,vs base,P
DecodeReferenceEvent-2,0,0%,0,0%,~,p=1.000 n=6
DecodeAvroReferenceEvent-2,,,3,0%
`
	regs, err := Regressions(strings.NewReader(csv), 0.15)
	if err != nil || len(regs) != 0 {
		t.Fatalf("a benchmark missing from the baseline: %v, %v", regs, err)
	}
}

// TestRunCDC benchmarks the cdc workload on a few thousand records: the
// raw COPY of the source's final rows and the drain into a format:
// debezium table, verified against the source's final state.
func TestRunCDC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	for _, tc := range []struct {
		format  string
		records int64
		want    string
	}{{loadgen.FormatJSON, 5000, "debezium with schema"}, {loadgen.FormatAvro, 2000, "debezium avro (AvroConverter)"}} {
		t.Run(tc.format, func(t *testing.T) { runCDC(t, tc.format, tc.records, tc.want) })
	}
}

func runCDC(t *testing.T, format string, records int64, want string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log bytes.Buffer
	res, err := Run(ctx, Options{Workload: loadgen.WorkloadCDC, CDCSchema: format == loadgen.FormatJSON, Format: format, Records: records,
		Partitions: 2, MaxConns: 2, BatchRows: 1000, LatencyFor: -1, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	gen := res.Options.shape().genOptions("")
	gen.Seed = res.Options.Seed
	rows := loadgen.CDCRows(gen, records)
	if !res.Verified || len(res.Verify) != 1 || !strings.Contains(res.Verify[0], "replay") {
		t.Fatalf("verified %v: %v", res.Verified, res.Verify)
	}
	for name, th := range map[string]*Throughput{"sluice": &res.Sluice, "raw": res.RawCopy} {
		if th == nil || th.Seconds <= 0 || th.Records != records || th.Rows != rows || th.Bytes <= 0 {
			t.Errorf("%s throughput %+v, want %d rows", name, th, rows)
		}
	}
	if res.Insert != nil || res.RatioRawCopy <= 0 {
		t.Errorf("insert %+v, ratio %v", res.Insert, res.RatioRawCopy)
	}
	var out bytes.Buffer
	WriteText(&out, res)
	if !strings.Contains(out.String(), "cdc: 50% updates") || !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "OK: exactly once") {
		t.Errorf("text output:\n%s", out.String())
	}
	t.Log(out.String())
}
