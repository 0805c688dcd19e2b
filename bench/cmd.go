package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/loadgen"
)

// usageError marks a flag mistake; main prints usage-style exit 2 for
// flag.ErrHelp only, so these are plain errors with the fix.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// commonFlags registers the flags Run and the report share.
func commonFlags(fs *flag.FlagSet, o *Options, brokers *string, inProcess *bool) {
	fs.StringVar(brokers, "brokers", "", "Kafka brokers (comma-separated) instead of the embedded kfake broker")
	fs.BoolVar(inProcess, "in-process-broker", false, "run the embedded broker inside the bench process instead of as a sluice broker child process")
	fs.StringVar(&o.Postgres, "postgres", "", "PostgreSQL URL instead of a private cluster (tables are created and dropped)")
	fs.StringVar(&o.Schema, "schema", "reference", "loadgen schema: reference, narrow or wide")
	fs.Float64Var(&o.DupRatio, "dup-ratio", 0.01, "fraction of records that re-send an earlier event (negative: none)")
	fs.Int64Var(&o.Seed, "seed", 1, "loadgen seed")
	fs.DurationVar(&o.MaxAge, "max-age", 250*time.Millisecond, "batch.max_age")
	fs.Int64Var(&o.BatchBytes, "batch-bytes", 32<<20, "batch.max_bytes in bytes")
	fs.StringVar(&o.Compression, "compression", "none", "producer batch compression of the benchmark topics: none, gzip, snappy, lz4, zstd")
	fs.StringVar(&o.Keys, "keys", "event-id", "Kafka record key: event-id (every occurrence of an event in one partition), null (spread over the partitions; a re-send lands elsewhere than its original) or other-field (tenant_id)")
	fs.Float64Var(&o.UpdateRatio, "update-ratio", 0, "fraction of records that are a newer version of an earlier event (same id, new ts and amount)")
	fs.StringVar(&o.OnConflict, "on-conflict", "ignore", "the table's on_conflict: ignore (first write wins) or update (newest wins; with --keys null the table uses guard: version)")
	fs.StringVar(&o.Format, "format", "json", "record format: json, or avro, protobuf, json_schema (an embedded Schema Registry is started); cdc: json or avro (AvroConverter)")
	fs.StringVar(&o.Workload, "workload", "events", "events (the --schema's events, shaped by the flags above) or cdc (Debezium change events of an orders table into a format: debezium table, guard lsn)")
	fs.BoolVar(&o.CDCSchema, "cdc-schema", false, "cdc: send the change events with Kafka Connect's schema wrapper")
	fs.BoolVar(&o.SplitCores, "split-cores", false, "pin the private PostgreSQL to the first half of the CPUs and the appliance and broker to the rest, as when PostgreSQL has a server of its own (every phase alike)")
	fs.BoolVar(&o.SortedBaseline, "sorted-baseline", true, "also measure (a'): the raw COPY with each COPY's rows in key order, as Sluice's direct path sends them; the raw COPY limit is the faster of (a) and (a')")
}

// brokerFlags applies --brokers and --in-process-broker: by default the
// embedded broker runs as this executable's `broker` command in a child
// process, so the bench process measures the appliance alone.
func brokerFlags(o *Options, brokers string, inProcess bool) error {
	if brokers != "" {
		o.Brokers = strings.Split(brokers, ",")
		return nil
	}
	if inProcess {
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this executable to run the broker process (use --in-process-broker): %w", err)
	}
	o.BrokerCommand = []string{exe, "broker"}
	return nil
}

// BenchMain is `sluice bench`.
func BenchMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sluice bench", stderr)
	var o Options
	var brokers string
	var asJSON, inProcess bool
	commonFlags(fs, &o, &brokers, &inProcess)
	fs.Int64Var(&o.Records, "records", 1_000_000, "records to preload and drain")
	fs.IntVar(&o.Partitions, "partitions", 8, "partitions of the benchmark topic")
	fs.IntVar(&o.MaxConns, "max-conns", 2, "postgres.max_conns, and the baselines' connections")
	fs.BoolVar(&o.HugePages, "huge-pages", false, "batch.huge_pages: mark the appliance's heap for transparent huge pages")
	fs.IntVar(&o.BatchRows, "batch-rows", 50000, "batch.max_rows (and rows per transaction of the baselines)")
	fs.IntVar(&o.InsertRows, "insert-rows", 1000, "rows per INSERT statement of the plain writer")
	fs.DurationVar(&o.LatencyFor, "latency-for", 15*time.Second, "how long to produce at a fixed rate for the latency measurement (negative: skip)")
	fs.Float64Var(&o.LatencyFraction, "latency-fraction", 0.5, "fixed produce rate as a fraction of the measured maximum")
	fs.BoolVar(&o.SkipBaselines, "skip-baselines", false, "skip the raw COPY and INSERT baselines")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the bench process (the appliance) during the drain to this file")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON on stdout (progress still goes to stderr)")
	var prefill string
	fs.StringVar(&prefill, "prefill", "0", "fill the target with this many rows (e.g. 10M) inside PostgreSQL before the benchmark; the raw COPY limit is then measured into the same table (reference schema)")
	fs.BoolVar(&o.Partitioned, "partitioned", false, "make the target day-partitioned (partition: {column: ts, interval: day}, key [event_id, ts])")
	fs.BoolVar(&o.Matrix, "matrix", false, "run the workload shapes one after another (event-id keys, null keys, 30% and 1% updates under on_conflict update, avro, protobuf, cdc), each against its own raw COPY limit; no INSERT writer, no latency phase")
	fs.IntVar(&o.Runs, "runs", 1, "with --matrix: measure every shape this many times, in rounds, and print each run's ratio and the median")
	var shapes string
	fs.StringVar(&shapes, "shapes", "", "with --matrix: the shapes to run, comma-separated ("+shapeIDs()+"); default all")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: sluice bench [flags]

Preloads records, drains them through the appliance and measures, in the
same run, the raw COPY limit and a plain INSERT writer; then end-to-end
latency at a fixed rate; verifies exactly-once. See bench/README.md.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("cannot use argument %q: sluice bench takes flags only", fs.Arg(0))
	}
	o.Shapes = splitList(shapes)
	var err error
	if o.Prefill, err = parseRows(prefill); err != nil {
		return fmt.Errorf("--prefill: %w", err)
	}
	if err := brokerFlags(&o, brokers, inProcess); err != nil {
		return err
	}
	o.Log = stderr
	res, err := Run(ctx, o)
	if res != nil {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(res); jerr != nil {
				return errors.Join(err, jerr)
			}
		} else {
			WriteText(stdout, res)
		}
	}
	return err
}

// WriteText writes r for people.
func WriteText(w io.Writer, r *Result) {
	o := r.Options
	if o.Matrix {
		fmt.Fprintf(w, "sluice bench --matrix: %d %s records per shape (%s compression), %d partitions, %d connections, batches of %d rows\n",
			o.Records, o.Schema, o.Compression, o.Partitions, o.MaxConns, o.BatchRows)
	} else {
		what := o.Schema
		if o.Workload == loadgen.WorkloadCDC {
			what = "change"
		}
		fmt.Fprintf(w, "sluice bench: %d %s records (%s; %s compression), %d partitions, %d connections, batches of %d rows\n",
			o.Records, what, o.shape(), o.Compression, o.Partitions, o.MaxConns, o.BatchRows)
	}
	fmt.Fprintf(w, "  environment: %s\n", r.Env)
	fmt.Fprintf(w, "  PostgreSQL:  %s\n", r.PGSettings)
	if o.Prefill > 0 || o.Partitioned {
		layout := "plain"
		if o.Partitioned {
			layout = "day-partitioned"
		}
		fmt.Fprintf(w, "  target: %s, prefilled with %d rows (%.1f GB, %.0fs, not timed); (a) and (a') are raw COPYs into that same table, each COPY rolled back\n", layout, o.Prefill, float64(r.PrefillBytes)/1e9, r.PrefillSeconds)
	}
	fmt.Fprintln(w)
	if o.Matrix {
		writeMatrix(w, r.Matrix)
		return
	}
	fmt.Fprintf(w, "  %-34s %9s %12s %9s %10s %8s\n", "writer", "seconds", "rows/s", "MB/s", "GB/day", "vs (a)")
	row := func(name string, t *Throughput, ratio string) {
		fmt.Fprintf(w, "  %-34s %9.2f %12.0f %9.1f %10.0f %8s\n", name, t.Seconds, t.RowsPerSec, t.MBPerSec, t.GBPerDay, ratio)
	}
	// vs is base's time over t's, against (a), the first row.
	vs := func(t *Throughput) string {
		if r.RawCopy == nil || t.Seconds <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", r.RawCopy.Seconds/t.Seconds)
	}
	limit := rawLimit(r.RawCopy, r.RawCopySorted)
	mark := func(t *Throughput) string {
		if t == limit && r.RawCopySorted != nil {
			return " (limit)"
		}
		return ""
	}
	if r.RawCopy != nil {
		row("(a) raw binary COPY"+mark(r.RawCopy), r.RawCopy, "1.00")
	}
	if r.RawCopySorted != nil {
		row("(a') raw COPY, key-sorted"+mark(r.RawCopySorted), r.RawCopySorted, vs(r.RawCopySorted))
	}
	if r.Insert != nil {
		row("(b) INSERT … ON CONFLICT DO NOTHING", r.Insert, vs(r.Insert))
	}
	row("Sluice, exactly once, end to end", &r.Sluice, vs(&r.Sluice))
	fmt.Fprintln(w)
	if r.RatioRawCopy > 0 {
		fmt.Fprintf(w, "  Sluice / raw COPY limit   %.2f\n", r.RatioRawCopy)
		if r.RatioRawCopySorted > 0 {
			fmt.Fprintf(w, "  Sluice / (a) unsorted     %.2f\n", r.RatioRawCopyUnsorted)
			fmt.Fprintf(w, "  Sluice / (a') key-sorted  %.2f\n", r.RatioRawCopySorted)
		}
		if r.RatioInsert > 0 {
			fmt.Fprintf(w, "  Sluice / INSERT writer    %.2f\n", r.RatioInsert)
		}
	}
	fmt.Fprintf(w, "  MB/s and GB/day are of the %s record values (%d records, %.1f MB, %d distinct rows); ratios are ratios of times\n",
		o.Format, r.Sluice.Records, float64(r.Sluice.Bytes)/1e6, r.Sluice.Rows)
	fmt.Fprintf(w, "  batches committed         %d\n", r.Batches)
	fmt.Fprintf(w, "  start-up                  first record fetched after %.2fs, first batch committed after %.2fs\n", r.FirstRecord, r.FirstCommit)
	for _, l := range r.Latency {
		fmt.Fprintf(w, "  latency at %3.0f%% of max    %.0f records/s (%.1f MB/s) for %.0fs: p50 %.3fs, p99 %.3fs\n",
			100*l.Fraction, l.RecordsPerSec, l.MBPerSec, l.Seconds, l.P50Sec, l.P99Sec)
	}
	cpuLine := func(name, self string, c CPU) {
		if c.Appliance >= 0 {
			fmt.Fprintf(w, "  %-25s %s\n", name, c.describe(self))
		}
	}
	if r.RawCopy != nil && r.RawCopy.CPU != nil {
		cpuLine("CPU during (a)", "bench process", *r.RawCopy.CPU)
	}
	if r.RawCopySorted != nil && r.RawCopySorted.CPU != nil {
		cpuLine("CPU during (a')", "bench process", *r.RawCopySorted.CPU)
	}
	if r.Insert != nil && r.Insert.CPU != nil {
		cpuLine("CPU during (b)", "bench process", *r.Insert.CPU)
	}
	cpuLine("CPU during the drain", "appliance process", r.CPU)
	if r.PeakRSS > 0 {
		fmt.Fprintf(w, "  peak RSS                  %.0f MiB (RSS at drain start %.0f MiB; %s)\n",
			float64(r.PeakRSS)/(1<<20), float64(r.StartRSS)/(1<<20), r.RSSMethod)
	}
	if r.MemoryLimit > 0 {
		fmt.Fprintf(w, "  memory limit              %d MiB (the Go soft limit sluice run sets from batch.max_inflight_bytes; GOMEMLIMIT overrides it)\n", r.MemoryLimit>>20)
	}
	verdict := "FAILED"
	if r.Verified {
		verdict = "OK: exactly once"
	}
	fmt.Fprintf(w, "  verify                    %s\n", verdict)
	for _, v := range r.Verify {
		for _, line := range strings.Split(v, "\n") {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
}

// writeMatrix writes one line per shape: its raw COPY limit, Sluice, the
// ratio of the two and the verdict, then each failure. Over several runs
// the times are medians and the ratio is the median, then every run's.
func writeMatrix(w io.Writer, rs []ShapeResult) {
	sums := summarize(rs)
	runs := mostRuns(sums)
	ratioHead := "ratio"
	if runs > 1 {
		ratioHead = "ratio: median (each run)"
	}
	fmt.Fprintf(w, "  %-14s %-62s %9s %9s %9s  %-*s  %-9s  %s\n", "shape", "workload", "raw COPY", "Sluice", "MB/s", 7*runs+10, ratioHead, "/ (a)", "verify")
	for _, s := range sums {
		raw, ratio := "-", "-"
		if s.RawCopySeconds > 0 {
			raw = fmt.Sprintf("%.2fs", s.RawCopySeconds)
		}
		if s.MedianRatio > 0 {
			ratio = fmt.Sprintf("%.2f", s.MedianRatio)
		}
		if runs > 1 {
			ratio += " (" + s.eachRatio(" ", "-") + ")"
		}
		v := verdict(s.Verified == s.Runs)
		if s.Runs > 1 {
			v = fmt.Sprintf("%d of %d runs %s", s.Verified, s.Runs, verdict(true))
		}
		unsorted := "-"
		if s.MedianUnsortedRatio > 0 {
			unsorted = fmt.Sprintf("%.2f", s.MedianUnsortedRatio)
		}
		fmt.Fprintf(w, "  %-14s %-62s %9s %8.2fs %9.1f  %-*s  %-9s  %s\n", s.Shape.Name, s.Shape.String(), raw, s.SluiceSeconds, s.SluiceMBPerSec, 7*runs+10, ratio, unsorted, v)
	}
	fmt.Fprintf(w, "  ratio = raw COPY limit seconds / Sluice seconds, each shape against its own raw COPY of the rows it must end with, in the same run\n")
	fmt.Fprintf(w, "  raw COPY limit = the faster of (a), the rows in the workload's order, and (a'), each COPY's rows in key order (%s); / (a) is the median ratio to (a) alone\n", sortedLimits(sums))
	if runs > 1 {
		fmt.Fprintf(w, "  %d runs in rounds (every shape once per round); raw COPY, Sluice and MB/s are medians over the runs\n", runs)
	}
	for _, r := range rs {
		switch {
		case r.Error == "":
		case runs > 1:
			fmt.Fprintf(w, "\n  %s, run %d: %s\n", r.Shape.Name, r.Run, r.Error)
		default:
			fmt.Fprintf(w, "\n  %s: %s\n", r.Shape.Name, r.Error)
		}
	}
}

// sortedLimits says in how many runs (a') was the limit.
func sortedLimits(sums []ShapeSummary) string {
	n, runs := 0, 0
	for _, s := range sums {
		n += s.SortedLimit
		runs += s.Runs
	}
	return fmt.Sprintf("(a') in %d of %d runs", n, runs)
}

// shapeIDs lists the IDs of the matrix's shapes, for help texts.
func shapeIDs() string {
	var ids []string
	for _, sh := range MatrixShapes(0) {
		ids = append(ids, sh.ID)
	}
	return strings.Join(ids, ", ")
}

// splitList splits a comma-separated flag value; nil for "".
func splitList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}
