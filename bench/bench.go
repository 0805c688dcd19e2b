// Package bench is Sluice's benchmark harness: `sluice bench` (one
// end-to-end run against the raw COPY limit) and `sluice report` (a
// capacity sweep written as Markdown with SVG charts).
//
// Contract:
//
//   - Run brings up the embedded environment (a private PostgreSQL that
//     runs as production does: wal_level=replica, fsync, full_page_writes
//     and synchronous_commit on, read back and reported in
//     Result.PGSettings; the kfake broker: in this process, or as the
//     Options.BrokerCommand child process, which is what `sluice bench`
//     runs; an embedded Schema Registry for registry formats) or uses the
//     given brokers and PostgreSQL, preloads Options.Records loadgen
//     records of the workload's Shape (keys, 1% verbatim duplicates by
//     default, updates, format; producer compression
//     Options.Compression) in full record batches, whatever the format,
//     and measures, in
//     one run, on fresh tables with the same primary key, after one
//     untimed warm-up COPY (a cold server made the first phase ~25% slow):
//     (a) the raw COPY: the rows the table must end with (each event's
//     winning version under the shape's on_conflict), decoded with codec
//     before the clock starts, copied in binary by MaxConns parallel
//     connections (sharded by key, BatchRows rows per COPY, each its own
//     transaction); with Options.SortedBaseline and a keyed table, (a')
//     the same with each COPY's rows in key order, as Sluice's direct
//     path sends them. The raw COPY limit is the faster of (a) and (a'):
//     the order of the rows alone moved PostgreSQL's CPU for them by up to
//     a fifth (bench/README.md);
//     (b) a plain writer: multi-row INSERT … ON CONFLICT DO NOTHING of every
//     record (duplicates included) over the same connections, InsertRows
//     rows per statement, committed every BatchRows rows (on_conflict
//     ignore only: one statement may not update a key twice); (c) Sluice: the
//     appliance (ingest.New/Run in-process) drains the topic, timed from
//     Run to the moment the offsets stored in PostgreSQL reach the log end,
//     under the Go memory limit `sluice run` sets (ingest.MemoryLimit)
//     unless GOMEMLIMIT is set.
//     Each phase starts after a CHECKPOINT; a baseline table is dropped
//     once its phase is measured. Throughputs are of the same workload
//     (the same records, the same distinct rows landed), so a ratio is a
//     ratio of times.
//   - Then, with the appliance still running, records are produced at
//     LatencyFraction of Sluice's measured rate for LatencyFor into a second
//     topic and table, and the p50/p99 of record timestamp to commit are read
//     from ingest.App.EndToEndLatency.
//   - With Options.Matrix, Run measures each of MatrixShapes instead: per
//     shape a fresh topic and table, (a) and (a') just before (c), the
//     one that follows the warm-up alternating from round to round, no
//     (b) and no latency phase; ShapeResult holds each ratio and verdict.
//   - Every table Sluice wrote is checked with loadgen.Verify (the shape's
//     on_conflict and guard tell it which version each row must hold); Run returns
//     an error (and the result) when a check fails: a benchmark that loses
//     data is worthless.
//   - CPU is read from /proc for every phase: utime+stime of this process
//     (the appliance, plus the broker when it runs in-process), of the
//     broker child process, and of the private cluster's postmaster and
//     its children (found through the data directory's postmaster.pid;
//     unknown for an external PostgreSQL). Peak RSS is this process's
//     VmHWM, reset through /proc/self/clear_refs when the drain starts:
//     the appliance's peak (plus the broker's when in-process).
//   - With Options.SplitCores (private cluster only) the postmaster and
//     every process it runs are pinned to the first half of the CPUs, this
//     process and the broker child to the rest with GOMAXPROCS to match
//     (cores.go), for every phase; each phase's CPU then also says how
//     busy PostgreSQL kept its own CPUs. Closing the environment gives
//     this process its CPUs and GOMAXPROCS back.
//   - For `make bench`, Regressions judges a benchstat comparison (times
//     only against a baseline from the same machine, regress.go), and
//     InstructionRegressions the decoders' instructions per op that
//     bench/instrcheck counts under callgrind (instructions.go).
//
// Timings belong here and in reports, never in tests: `go test ./bench`
// asserts only that results are well formed and verified.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/internal/progress"
	"github.com/sluice-dev/sluice/internal/redact"
	"github.com/sluice-dev/sluice/loadgen"
	"github.com/sluice-dev/sluice/registry"
)

// Options configures Run. Zero fields take the defaults documented on each.
type Options struct {
	Brokers []string `json:"brokers,omitempty"` // empty: the embedded kfake broker
	// BrokerCommand, when set (and Brokers empty), runs the embedded broker
	// as this child process (`sluice broker`) instead of in this process.
	BrokerCommand []string `json:"-"`
	Postgres      string   `json:"postgres,omitempty"` // empty: a private durable cluster

	Schema     string        `json:"schema"`      // loadgen schema; default reference
	Records    int64         `json:"records"`     // preloaded records; default 1,000,000
	DupRatio   float64       `json:"dup_ratio"`   // verbatim re-sends; default 0.01 (negative: none)
	Seed       int64         `json:"seed"`        // loadgen seed; default 1
	Partitions int           `json:"partitions"`  // default 8
	MaxConns   int           `json:"max_conns"`   // postgres.max_conns and the baselines' connections; default 2
	BatchRows  int           `json:"batch_rows"`  // batch.max_rows; default 50000
	BatchBytes int64         `json:"batch_bytes"` // batch.max_bytes; default 32 MiB
	MaxAge     time.Duration `json:"max_age"`     // batch.max_age; default 250ms
	HugePages  bool          `json:"huge_pages"`  // batch.huge_pages; default false
	InsertRows int           `json:"insert_rows"` // rows per INSERT statement of the plain writer; default 1000
	// Compression is the producer's batch compression (loadgen's
	// --compression: none, gzip, snappy, lz4, zstd); default none.
	Compression string `json:"compression"`

	// The workload's shape (see Shape): the Kafka key (loadgen's --keys:
	// event-id, null, other-field; default event-id), the fraction of
	// records that are newer versions of earlier events, the table's
	// on_conflict policy (ignore, update; default ignore) and the record
	// format (json, avro, protobuf, json_schema; default json).
	Keys        string  `json:"keys"`
	UpdateRatio float64 `json:"update_ratio"`
	OnConflict  string  `json:"on_conflict"`
	Format      string  `json:"format"`
	// Workload is events (default: the Schema's events in the shape
	// above) or cdc: loadgen's cdc workload (Debezium change events of an
	// orders table: 50% updates, 10% deletes each with its tombstone, 2%
	// replays, TOAST placeholders, DupRatio dups) drained into a format:
	// debezium table guarded by the source LSN; CDCSchema sends it with
	// Kafka Connect's schema wrapper.
	Workload  string `json:"workload,omitempty"`
	CDCSchema bool   `json:"cdc_schema,omitempty"`
	// Matrix runs every shape of MatrixShapes one after another instead
	// of the single workload, each measured against its own raw COPY
	// limit; no INSERT writer, no latency phase.
	Matrix bool `json:"matrix,omitempty"`
	// Runs measures every shape of the matrix this many times (default
	// 1), in rounds: each round runs every shape once, in order, so a
	// drift of the machine's speed reaches every shape alike. Each run is
	// a ratio against its own raw COPY, measured just before its drain.
	Runs int `json:"runs,omitempty"`
	// Shapes selects shapes of the matrix by Shape.ID; empty: all of them.
	Shapes []string `json:"shapes,omitempty"`

	LatencyFor      time.Duration `json:"latency_for"`      // default 15s; negative skips the latency phase
	LatencyFraction float64       `json:"latency_fraction"` // of Sluice's measured records/s; default 0.5

	SkipBaselines bool `json:"skip_baselines,omitempty"` // skip the raw COPY and INSERT phases
	// SortedBaseline adds (a'): the raw COPY with each COPY's rows in key
	// order, as Sluice's direct path sends them (keyed schemas only). The
	// raw COPY limit is then the faster of (a) and (a'). `sluice bench`
	// sets it unless told not to.
	SortedBaseline bool `json:"sorted_baseline,omitempty"`

	// SplitCores pins the private PostgreSQL to the first half of the
	// CPUs and the bench process (the appliance, the baselines' client)
	// and the broker child to the rest, as when PostgreSQL runs on a
	// server of its own; every phase runs so. Without it the processes
	// share every CPU. Needs the private cluster.
	SplitCores bool `json:"split_cores,omitempty"`

	// Prefill fills the target with this many rows before the benchmark
	// (growth.go); Partitioned makes the target day-partitioned. With
	// either, the raw COPY limit is measured into the target itself and
	// the INSERT baseline is skipped (reference schema only).
	Prefill     int64 `json:"prefill,omitempty"`
	Partitioned bool  `json:"partitioned,omitempty"`

	// CPUProfile, when set, is a file that receives a CPU profile of this
	// process (the appliance, and the broker when in-process) during the
	// drain.
	CPUProfile string `json:"-"`

	// Log receives progress lines; nil discards them.
	Log io.Writer `json:"-"`
}

func (o *Options) ensureDefaults() {
	if o.Schema == "" {
		o.Schema = loadgen.SchemaReference
	}
	if o.Records == 0 {
		o.Records = 1_000_000
	}
	if o.DupRatio == 0 {
		o.DupRatio = 0.01
	}
	if o.DupRatio < 0 {
		o.DupRatio = 0
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Partitions == 0 {
		o.Partitions = 8 // the reference workload's
	}
	if o.MaxConns == 0 {
		o.MaxConns = 2
	}
	if o.BatchRows == 0 {
		o.BatchRows = 50000
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 32 << 20
	}
	if o.MaxAge == 0 {
		o.MaxAge = 250 * time.Millisecond
	}
	if o.InsertRows == 0 {
		o.InsertRows = 1000
	}
	if o.LatencyFor == 0 {
		o.LatencyFor = 15 * time.Second
	}
	if o.LatencyFraction == 0 {
		o.LatencyFraction = 0.5
	}
	if o.Compression == "" {
		o.Compression = "none"
	}
	if o.Keys == "" {
		o.Keys = loadgen.KeysEventID
	}
	if o.OnConflict == "" {
		o.OnConflict = "ignore"
	}
	if o.Format == "" {
		o.Format = loadgen.FormatJSON
	}
	if o.Workload == "" {
		o.Workload = loadgen.WorkloadEvents
	}
	if o.Runs == 0 {
		o.Runs = 1
	}
	switch o.Log.(type) {
	case nil:
		o.Log = io.Discard
	case *os.File, *lockedWriter:
	default:
		// The broker child's stderr goes to Log too, copied by os/exec in
		// a goroutine of its own unless Log is a file.
		o.Log = &lockedWriter{w: o.Log}
	}
}

// lockedWriter serialises the writes of the bench and of the broker child
// process's stderr copier to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Unwrap returns the writer l locks (progress.IsTerminal looks through it).
func (l *lockedWriter) Unwrap() io.Writer { return l.w }

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (o *Options) validate() error {
	switch {
	case o.Records < 1000:
		return fmt.Errorf("cannot benchmark %d records; use --records 1000 or more", o.Records)
	case o.Partitions < 1:
		return fmt.Errorf("cannot use %d partitions; use --partitions 1 or more", o.Partitions)
	case o.MaxConns < 1:
		return fmt.Errorf("cannot use %d connections; use --max-conns 1 or more", o.MaxConns)
	case o.BatchRows < 1 || o.BatchBytes < 1024:
		return fmt.Errorf("cannot use batches of %d rows and %d bytes; use --batch-rows ≥ 1 and --batch-bytes ≥ 1024", o.BatchRows, o.BatchBytes)
	case o.InsertRows < 1 || o.InsertRows > 5000:
		return fmt.Errorf("cannot use %d rows per INSERT; use --insert-rows between 1 and 5000 (PostgreSQL allows 65535 parameters)", o.InsertRows)
	case o.DupRatio > 0.5:
		return fmt.Errorf("cannot use dup ratio %v; use a fraction up to 0.5", o.DupRatio)
	case o.LatencyFraction <= 0 || o.LatencyFraction > 2:
		return fmt.Errorf("cannot produce at %v of the measured rate; use --latency-fraction in (0, 2]", o.LatencyFraction)
	}
	switch o.Schema {
	case loadgen.SchemaReference, loadgen.SchemaNarrow, loadgen.SchemaWide:
	default:
		return fmt.Errorf("cannot use schema %q; use reference, narrow or wide", o.Schema)
	}
	switch o.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		return fmt.Errorf("cannot use compression %q; use none, gzip, snappy, lz4 or zstd", o.Compression)
	}
	switch o.Workload {
	case loadgen.WorkloadEvents:
	case loadgen.WorkloadCDC:
		switch {
		case o.Matrix:
			return fmt.Errorf("cannot combine --workload cdc with --matrix: the matrix has cdc shapes of its own (cdc, cdc-avro); drop one")
		case o.Keys != loadgen.KeysEventID || o.UpdateRatio != 0 || o.OnConflict != "ignore":
			return fmt.Errorf("cannot shape the cdc workload with --keys, --update-ratio or --on-conflict: it is Debezium's events keyed by id, applied with on_conflict update; drop them")
		case o.Format != loadgen.FormatJSON && o.Format != loadgen.FormatAvro:
			return fmt.Errorf("cannot send the cdc workload in format %s; use --format json (JsonConverter) or avro (AvroConverter)", o.Format)
		case o.sameTable():
			return fmt.Errorf("cannot prefill or partition the cdc workload's target; drop --prefill and --partitioned")
		}
	default:
		return fmt.Errorf("cannot use workload %q; use --workload events or cdc", o.Workload)
	}
	switch {
	case o.Runs < 1:
		return fmt.Errorf("cannot run the matrix %d times; use --runs 1 or more", o.Runs)
	case !o.Matrix && (o.Runs > 1 || len(o.Shapes) > 0):
		return fmt.Errorf("--runs and --shapes repeat and select the shapes of the matrix; add --matrix")
	}
	if _, err := selectShapes(MatrixShapes(o.DupRatio), o.Shapes); err != nil {
		return err
	}
	if o.Matrix && o.sameTable() {
		// The matrix measures each shape's raw COPY into an empty,
		// unpartitioned copy of the target; Sluice would write into the
		// prefilled or partitioned target itself: two different tables.
		return fmt.Errorf("cannot run the shape matrix on a prefilled or partitioned target: its raw COPY would go into another table than Sluice's; drop --prefill and --partitioned, or --matrix")
	}
	if o.Matrix && o.Schema != loadgen.SchemaReference {
		return fmt.Errorf("cannot run the shape matrix on schema %s: its avro and protobuf shapes carry the reference schema; drop --schema or --matrix", o.Schema)
	}
	if err := o.shape().validate(o.Schema); err != nil {
		return err
	}
	return o.checkGrowthOptions()
}

// sameTable reports whether the raw COPY limit is measured into the
// target itself (a prefilled or partitioned target).
func (o *Options) sameTable() bool { return o.Prefill > 0 || o.Partitioned }

// Shape is one workload shape: how records are keyed, re-sent, updated
// and encoded, and the target's conflict policy.
type Shape struct {
	// ID names the shape on the command line (--shapes); Name, in tables.
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// Workload is loadgen's workload: "" or events, or cdc (Keys "id",
	// UpdateRatio its updates, OnConflict update, Format debezium: what
	// the cdc workload is, for the report's columns).
	Workload    string  `json:"workload,omitempty"`
	CDCSchema   bool    `json:"cdc_schema,omitempty"`
	Converter   string  `json:"converter,omitempty"` // cdc: "" (JsonConverter) or avro (AvroConverter, registry-framed)
	Keys        string  `json:"keys"`                // loadgen.KeysEventID, KeysNull, KeysOtherField
	DupRatio    float64 `json:"dup_ratio"`           // verbatim re-sends
	UpdateRatio float64 `json:"update_ratio"`        // newer versions of earlier events
	OnConflict  string  `json:"on_conflict"`         // ignore or update
	Format      string  `json:"format"`              // json, avro, protobuf, json_schema
}

// Guard is the table's guard column: "version" when an update table is fed
// by null keys (offsets do not order an event's versions across
// partitions), else "" (the kafka.offset column).
func (s Shape) Guard() string {
	if s.cdc() {
		return "lsn"
	}
	if s.OnConflict == "update" && s.Keys == loadgen.KeysNull {
		return "version"
	}
	return ""
}

func (s Shape) cdc() bool { return s.Workload == loadgen.WorkloadCDC }

// formatName is s's format in tables: debezium avro for the cdc workload
// through the AvroConverter.
func (s Shape) formatName() string {
	if s.Converter == loadgen.FormatAvro {
		return s.Format + " avro"
	}
	return s.Format
}

// cdcShape is the cdc workload's shape with dups re-sent, its events in
// format (json or avro: loadgen's, the converter's).
func cdcShape(name string, dup float64, wrapped bool, format string) Shape {
	s := Shape{Name: name, Workload: loadgen.WorkloadCDC, CDCSchema: wrapped, Keys: "id", DupRatio: dup,
		UpdateRatio: loadgen.DefaultCDCUpdates, OnConflict: "update", Format: "debezium"}
	if format == loadgen.FormatAvro {
		s.Converter = loadgen.FormatAvro
	}
	return s
}

// genOptions is the loadgen stream of s.
func (s Shape) genOptions(schema string) loadgen.Options {
	if s.cdc() {
		return loadgen.Options{Workload: loadgen.WorkloadCDC, DupRatio: s.DupRatio, CDCUpdates: loadgen.DefaultCDCUpdates,
			CDCDeletes: loadgen.DefaultCDCDeletes, CDCReplays: loadgen.DefaultCDCReplays, CDCToast: loadgen.DefaultCDCToast, CDCSchema: s.CDCSchema,
			Format: s.Converter}
	}
	return loadgen.Options{Schema: schema, Keys: s.Keys, DupRatio: s.DupRatio, UpdateRatio: s.UpdateRatio, Format: s.Format}
}

// String describes s in one line.
func (s Shape) String() string {
	if s.cdc() {
		enc := "without schema"
		if s.CDCSchema {
			enc = "with schema"
		}
		if s.Converter == loadgen.FormatAvro {
			enc = "avro (AvroConverter)"
		}
		return fmt.Sprintf("cdc: %.0f%% updates, %.0f%% deletes, %.0f%% replays, %.0f%% dups; debezium %s, guard lsn",
			100*loadgen.DefaultCDCUpdates, 100*loadgen.DefaultCDCDeletes, 100*loadgen.DefaultCDCReplays, 100*s.DupRatio, enc)
	}
	d := fmt.Sprintf("keys %s, %.0f%% dups", s.Keys, 100*s.DupRatio)
	if s.UpdateRatio > 0 {
		d += fmt.Sprintf(", %g%% updates", 100*s.UpdateRatio)
	}
	d += ", on_conflict " + s.OnConflict
	if g := s.Guard(); g != "" {
		d += " (guard " + g + ")"
	}
	return d + ", " + s.Format
}

func (s Shape) validate(schema string) error {
	switch s.OnConflict {
	case "ignore", "update":
	default:
		return fmt.Errorf("cannot use on_conflict %q; use --on-conflict ignore or update", s.OnConflict)
	}
	if s.cdc() {
		g := s.genOptions(schema)
		if err := g.EnsureDefaults().Validate(); err != nil {
			return fmt.Errorf("cannot benchmark this workload: %w", err)
		}
		return nil
	}
	if s.UpdateRatio < 0 || s.UpdateRatio > 0.9 {
		return fmt.Errorf("cannot use update ratio %v; use --update-ratio in [0, 0.9]", s.UpdateRatio)
	}
	if schema == loadgen.SchemaWide && s.OnConflict == "update" {
		return fmt.Errorf("cannot benchmark on_conflict update on the keyless wide schema; use --schema reference or narrow")
	}
	g := loadgen.Options{Schema: schema, Keys: s.Keys, DupRatio: s.DupRatio, UpdateRatio: s.UpdateRatio, Format: s.Format}
	if err := g.EnsureDefaults().Validate(); err != nil {
		return fmt.Errorf("cannot benchmark this workload: %w", err)
	}
	return nil
}

// shape is the single workload's shape.
func (o *Options) shape() Shape {
	if o.Workload == loadgen.WorkloadCDC {
		return cdcShape("workload", o.DupRatio, o.CDCSchema, o.Format)
	}
	return Shape{Name: "workload", Keys: o.Keys, DupRatio: o.DupRatio, UpdateRatio: o.UpdateRatio, OnConflict: o.OnConflict, Format: o.Format}
}

// MatrixShapes are the shapes `sluice bench --matrix` and `sluice report`
// measure, each with dup re-sends: keyed by event id (the reference
// workload); null keys (a re-send lands on another partition than its
// original); 30% and 1% updates under on_conflict update; Avro and
// Protobuf records; the cdc workload (Debezium change events) as
// JsonConverter writes them without the schema wrapper, and as
// AvroConverter writes them (what --workload cdc --format avro runs).
func MatrixShapes(dup float64) []Shape {
	j, u := loadgen.FormatJSON, "update"
	cdc := cdcShape("cdc", dup, false, loadgen.FormatJSON)
	cdc.ID = "cdc"
	cdcAvro := cdcShape("cdc avro", dup, false, loadgen.FormatAvro)
	cdcAvro.ID = "cdc-avro"
	return []Shape{
		{ID: "event-id", Name: "event-id keys", Keys: loadgen.KeysEventID, DupRatio: dup, OnConflict: "ignore", Format: j},
		{ID: "null", Name: "null keys", Keys: loadgen.KeysNull, DupRatio: dup, OnConflict: "ignore", Format: j},
		{ID: "updates-30", Name: "30% updates", Keys: loadgen.KeysEventID, DupRatio: dup, UpdateRatio: 0.3, OnConflict: u, Format: j},
		{ID: "updates-1", Name: "1% updates", Keys: loadgen.KeysEventID, DupRatio: dup, UpdateRatio: 0.01, OnConflict: u, Format: j},
		{ID: "avro", Name: "avro", Keys: loadgen.KeysEventID, DupRatio: dup, OnConflict: "ignore", Format: loadgen.FormatAvro},
		{ID: "protobuf", Name: "protobuf", Keys: loadgen.KeysEventID, DupRatio: dup, OnConflict: "ignore", Format: loadgen.FormatProtobuf},
		cdc,
		cdcAvro,
	}
}

// selectShapes returns the shapes of all whose ID is in ids, in the order
// of all; every shape when ids is empty.
func selectShapes(all []Shape, ids []string) ([]Shape, error) {
	if len(ids) == 0 {
		return all, nil
	}
	var out []Shape
	known := make([]string, len(all))
	for i, sh := range all {
		known[i] = sh.ID
		if slices.Contains(ids, sh.ID) {
			out = append(out, sh)
		}
	}
	for _, id := range ids {
		if !slices.Contains(known, id) {
			return nil, fmt.Errorf("cannot select shape %q; use one or more of %s", id, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// ShapeResult is one shape of the matrix: Sluice against the raw COPY
// limit measured just before it, in the same run.
type ShapeResult struct {
	Shape   Shape       `json:"shape"`
	Run     int         `json:"run,omitempty"` // 1-based round of Options.Runs
	RawCopy *Throughput `json:"raw_copy,omitempty"`
	// RawCopySorted is (a'), with Options.SortedBaseline on a keyed table.
	RawCopySorted *Throughput `json:"raw_copy_sorted,omitempty"`
	Sluice        Throughput  `json:"sluice"`
	// Ratio is over the raw COPY limit, the faster of RawCopy and
	// RawCopySorted; RatioUnsorted over RawCopy alone.
	Ratio         float64  `json:"ratio_raw_copy"`
	RatioUnsorted float64  `json:"ratio_raw_copy_unsorted,omitempty"`
	Batches       uint64   `json:"batches"`
	CPU           CPU      `json:"cpu"`
	Verified      bool     `json:"verified"`
	Verify        []string `json:"verify"`
	Error         string   `json:"error,omitempty"`
}

// Throughput is one writer's time for the workload.
type Throughput struct {
	Seconds    float64 `json:"seconds"`
	Records    int64   `json:"records"` // records of the workload (duplicates included)
	Rows       int64   `json:"rows"`    // distinct rows landed
	Bytes      int64   `json:"bytes"`   // record value bytes of the workload (JSON, or the registry format's)
	RowsPerSec float64 `json:"rows_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`    // of the JSON input, 10^6 bytes
	GBPerDay   float64 `json:"gb_per_day"`    // MBPerSec × 86.4
	CPU        *CPU    `json:"cpu,omitempty"` // of a baseline phase (Sluice's is Result.CPU)
}

// logPhase logs a baseline phase's result: its time, rates and CPU.
func (t *Throughput) logPhase(w io.Writer) {
	logf(w, "  %.2fs: %.0f rows/s, %.1f MB/s; %s", t.Seconds, t.RowsPerSec, t.MBPerSec, t.CPU.describe("client"))
}

func newThroughput(d time.Duration, records, rows, bytes int64) Throughput {
	s := d.Seconds()
	t := Throughput{Seconds: s, Records: records, Rows: rows, Bytes: bytes}
	if s > 0 {
		t.RowsPerSec = float64(rows) / s
		t.MBPerSec = float64(bytes) / 1e6 / s
		t.GBPerDay = t.MBPerSec * 86.4
	}
	return t
}

// Latency is the end-to-end latency at a fixed produce rate.
type Latency struct {
	Fraction      float64 `json:"fraction"`        // of the measured maximum records/s
	RecordsPerSec float64 `json:"records_per_sec"` // offered
	MBPerSec      float64 `json:"mb_per_sec"`      // offered
	Records       int64   `json:"records"`
	Seconds       float64 `json:"seconds"`
	P50, P99      float64 `json:"-"`
	P50Sec        float64 `json:"p50_seconds"`
	P99Sec        float64 `json:"p99_seconds"`
}

// CPU is CPU time spent during the drain, in seconds.
type CPU struct {
	Appliance float64 `json:"appliance_seconds"` // this process (appliance; with the in-process broker, the broker too)
	Broker    float64 `json:"broker_seconds"`    // the broker child process; -1: none (in-process or external)
	Postgres  float64 `json:"postgres_seconds"`  // postmaster and children; -1: unknown (external PostgreSQL)
	Wall      float64 `json:"wall_seconds"`
	Cores     int     `json:"cores"`
	// Machine is the busy CPU seconds of the whole machine (0: unknown):
	// the three above, softirqs, kernel threads and any other process.
	Machine float64 `json:"machine_busy_seconds,omitempty"`
	// PostgresCores is the number of CPUs the private PostgreSQL was
	// pinned to (Options.SplitCores); 0: it shared every CPU.
	PostgresCores int `json:"postgres_cores,omitempty"`
}

// Result is what Run measured.
type Result struct {
	Options Options     `json:"options"`
	Sluice  Throughput  `json:"sluice"`
	RawCopy *Throughput `json:"raw_copy,omitempty"`
	// RawCopySorted is (a'), with Options.SortedBaseline.
	RawCopySorted *Throughput `json:"raw_copy_sorted,omitempty"`
	Insert        *Throughput `json:"insert,omitempty"`
	// RatioRawCopy is Sluice's throughput over the raw COPY limit: the
	// faster of (a) and (a'). RatioRawCopyUnsorted is over (a),
	// RatioRawCopySorted over (a') and RatioInsert over (b).
	RatioRawCopy         float64 `json:"ratio_raw_copy,omitempty"`
	RatioRawCopyUnsorted float64 `json:"ratio_raw_copy_unsorted,omitempty"`
	RatioRawCopySorted   float64 `json:"ratio_raw_copy_sorted,omitempty"`
	RatioInsert          float64 `json:"ratio_insert,omitempty"`
	Batches              uint64  `json:"batches"`
	// FirstRecord and FirstCommit are the seconds from the appliance's
	// start to its first fetched record and first committed batch.
	FirstRecord float64   `json:"first_record_seconds"`
	FirstCommit float64   `json:"first_commit_seconds"`
	Latency     []Latency `json:"latency,omitempty"`
	CPU         CPU       `json:"cpu"`
	// PeakRSS is VmHWM of this process during the drain; StartRSS its RSS
	// when the drain started (the embedded broker's preloaded log, ...).
	PeakRSS  int64 `json:"peak_rss_bytes"`
	StartRSS int64 `json:"start_rss_bytes"`
	// MemoryLimit is the Go memory limit the appliance ran under, as
	// `sluice run` sets it; 0 when GOMEMLIMIT set it.
	MemoryLimit int64    `json:"memory_limit_bytes,omitempty"`
	RSSMethod   string   `json:"rss_method"`
	Verified    bool     `json:"verified"`
	Verify      []string `json:"verify"` // one summary per table checked
	Env         string   `json:"environment"`
	// PrefillSeconds is how long Options.Prefill took (not part of any
	// measurement).
	PrefillSeconds float64 `json:"prefill_seconds,omitempty"`
	// PrefillBytes is the prefilled target's size on disk, its indexes
	// and TOAST included (every partition's, when partitioned).
	PrefillBytes int64 `json:"prefill_bytes,omitempty"`
	// PGSettings are the durability settings the server ran with, read
	// back from it (wal_level, fsync, full_page_writes,
	// synchronous_commit).
	PGSettings string `json:"postgres_settings"`
	// Matrix holds every run of the shapes of Options.Matrix, in the order
	// they ran (round by round); MatrixSummary gathers each shape's runs.
	Matrix        []ShapeResult  `json:"matrix,omitempty"`
	MatrixSummary []ShapeSummary `json:"matrix_summary,omitempty"`
}

// Run runs the benchmark described by o. It returns the result and an
// error when any phase fails, including the exactly-once check.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.ensureDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	e, err := startEnv(ctx, o)
	if err != nil {
		return nil, err
	}
	defer e.close()
	res := &Result{Options: o, Env: e.describe(), PGSettings: e.settings}
	res.Options.Postgres = redact.Passwords(o.Postgres) // the result is printed and saved
	logf(o.Log, "environment: %s", res.Env)
	logf(o.Log, "PostgreSQL: %s", res.PGSettings)
	if o.Matrix {
		shapes, err := selectShapes(MatrixShapes(o.DupRatio), o.Shapes)
		if err != nil {
			return nil, err
		}
		res.Matrix, err = e.matrix(ctx, o, shapes)
		res.MatrixSummary = summarize(res.Matrix)
		res.Verified = err == nil
		return res, err
	}

	spec := pointSpec{shape: o.shape(),
		Partitions: o.Partitions, MaxConns: o.MaxConns, BatchRows: o.BatchRows, BatchBytes: o.BatchBytes,
		MaxAge: o.MaxAge, Records: o.Records, Seed: o.Seed,
	}
	if o.LatencyFor > 0 {
		spec.Latency = []float64{o.LatencyFraction}
		spec.LatencyFor = o.LatencyFor
	}
	switch {
	case o.SkipBaselines:
	case o.sameTable():
		spec.before = func(ctx context.Context, s *stream) error {
			var err error
			res.RawCopy, res.RawCopySorted, err = e.rawCopiesInto(ctx, s, o, o.SortedBaseline)
			return err
		}
	default:
		spec.before = func(ctx context.Context, s *stream) error {
			raw, sorted, ins, err := e.baselines(ctx, s, o)
			if err != nil {
				return err
			}
			res.RawCopy, res.RawCopySorted, res.Insert = raw, sorted, ins
			return nil
		}
	}
	pr, err := e.point(ctx, o, spec)
	if pr != nil {
		res.Sluice = pr.Drain
		res.Batches = pr.Batches
		res.FirstRecord, res.FirstCommit = pr.FirstRecord, pr.FirstCommit
		res.Latency = pr.Latency
		res.CPU = pr.CPU
		res.PeakRSS, res.StartRSS, res.RSSMethod = pr.PeakRSS, pr.StartRSS, pr.RSSMethod
		res.MemoryLimit = pr.MemoryLimit
		res.Verified = pr.Verified
		res.Verify = pr.Verify
		res.PrefillSeconds, res.PrefillBytes = pr.PrefillSeconds, pr.PrefillBytes
		res.RatioRawCopy = ratio(rawLimit(res.RawCopy, res.RawCopySorted), pr.Drain)
		res.RatioRawCopyUnsorted = ratio(res.RawCopy, pr.Drain)
		res.RatioRawCopySorted = ratio(res.RawCopySorted, pr.Drain)
		res.RatioInsert = ratio(res.Insert, pr.Drain)
	}
	return res, err
}

// ratio is base's time over drain's: Sluice's throughput over base's; 0
// when either is missing.
func ratio(base *Throughput, drain Throughput) float64 {
	if base == nil || base.Seconds <= 0 || drain.Seconds <= 0 {
		return 0
	}
	return base.Seconds / drain.Seconds
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "bench: "+format+"\n", args...)
}

// matrix measures each shape against its own raw COPY limit, one after
// another, and verifies each; with o.Runs above 1 it does so in rounds,
// every shape once per round. A failing run is recorded and the next one
// runs; the error joins every run's.
func (e *env) matrix(ctx context.Context, o Options, shapes []Shape) ([]ShapeResult, error) {
	var out []ShapeResult
	var errs []error
	runs := max(o.Runs, 1)
	for run := 1; run <= runs; run++ {
		for i, sh := range shapes {
			of := ""
			if runs > 1 {
				of = fmt.Sprintf(", run %d of %d", run, runs)
			}
			logf(o.Log, "shape %d of %d%s: %s (%s)", i+1, len(shapes), of, sh.Name, sh)
			r := ShapeResult{Shape: sh, Run: run}
			spec := pointSpec{shape: sh, Partitions: o.Partitions, MaxConns: o.MaxConns, BatchRows: o.BatchRows, BatchBytes: o.BatchBytes,
				MaxAge: o.MaxAge, Records: o.Records, Seed: o.Seed, cleanup: true}
			spec.before = func(ctx context.Context, s *stream) error {
				// Which of (a) and (a') follows the warm-up alternates
				// from round to round.
				var err error
				r.RawCopy, r.RawCopySorted, err = e.rawCopy(ctx, s, o, run%2 == 0)
				return err
			}
			pr, err := e.point(ctx, o, spec)
			if pr != nil {
				r.Sluice, r.Batches, r.CPU, r.Verified, r.Verify = pr.Drain, pr.Batches, pr.CPU, pr.Verified, pr.Verify
				r.Ratio = ratio(rawLimit(r.RawCopy, r.RawCopySorted), pr.Drain)
				r.RatioUnsorted = ratio(r.RawCopy, pr.Drain)
			}
			if err != nil {
				r.Verified = false
				r.Error = err.Error()
				errs = append(errs, fmt.Errorf("shape %s, run %d: %w", sh.Name, run, err))
			}
			logf(o.Log, "shape %s: Sluice / raw COPY limit %.2f (/ unsorted raw COPY %.2f), %s", sh.Name, r.Ratio, r.RatioUnsorted, verdict(r.Verified))
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// ShapeSummary gathers the runs of one shape of the matrix.
type ShapeSummary struct {
	Shape    Shape `json:"shape"`
	Runs     int   `json:"runs"`
	Verified int   `json:"verified_runs"` // runs verified exactly once
	// Ratios holds each run's Sluice / raw COPY limit, in run order; 0
	// where a run measured none (it failed before its drain ended) or
	// failed its exactly-once check (its ratio stays in Matrix).
	Ratios []float64 `json:"ratios"`
	// MedianRatio, MinRatio and MaxRatio are over the measured ratios of
	// the verified runs; so are the medians below.
	MedianRatio float64 `json:"median_ratio"`
	MinRatio    float64 `json:"min_ratio"`
	MaxRatio    float64 `json:"max_ratio"`
	// MedianUnsortedRatio is the median of Sluice / (a), the raw COPY of
	// the rows in the workload's order, alone.
	MedianUnsortedRatio float64 `json:"median_ratio_unsorted,omitempty"`
	// SortedLimit counts the runs whose limit was (a'), the key-sorted
	// raw COPY.
	SortedLimit int `json:"sorted_limit_runs"`
	// Medians of the runs' raw COPY limit and drain seconds and of the
	// drain's MB/s, each over the verified runs that measured it.
	RawCopySeconds float64 `json:"raw_copy_seconds"`
	SluiceSeconds  float64 `json:"sluice_seconds"`
	SluiceMBPerSec float64 `json:"sluice_mb_per_sec"`
}

// eachRatio joins the runs' ratios with sep, none for a run that measured
// none.
func (s ShapeSummary) eachRatio(sep, none string) string {
	each := make([]string, len(s.Ratios))
	for i, v := range s.Ratios {
		each[i] = none
		if v > 0 {
			each[i] = fmt.Sprintf("%.2f", v)
		}
	}
	return strings.Join(each, sep)
}

// summarize gathers rs by shape, in the order the shapes first appear.
func summarize(rs []ShapeResult) []ShapeSummary {
	var out []ShapeSummary
	var raws, drains, rates, unsorted [][]float64
	for _, r := range rs {
		i := slices.IndexFunc(out, func(s ShapeSummary) bool { return s.Shape.Name == r.Shape.Name })
		if i < 0 {
			i = len(out)
			out = append(out, ShapeSummary{Shape: r.Shape})
			raws, drains, rates, unsorted = append(raws, nil), append(drains, nil), append(rates, nil), append(unsorted, nil)
		}
		s := &out[i]
		s.Runs++
		if r.Verified {
			s.Verified++
		}
		limit := rawLimit(r.RawCopy, r.RawCopySorted)
		if limit != nil && limit.Seconds > 0 && limit == r.RawCopySorted {
			s.SortedLimit++
		}
		if !r.Verified {
			// A run that failed its exactly-once check measured nothing
			// worth a ratio: a writer that loses or doubles rows may well
			// be fast. It counts as a run, with no ratio and no times.
			s.Ratios = append(s.Ratios, 0)
			continue
		}
		s.Ratios = append(s.Ratios, r.Ratio)
		if r.RatioUnsorted > 0 {
			unsorted[i] = append(unsorted[i], r.RatioUnsorted)
		}
		if limit != nil && limit.Seconds > 0 {
			raws[i] = append(raws[i], limit.Seconds)
		}
		if r.Sluice.Seconds > 0 {
			drains[i] = append(drains[i], r.Sluice.Seconds)
			rates[i] = append(rates[i], r.Sluice.MBPerSec)
		}
	}
	for i := range out {
		s := &out[i]
		var measured []float64
		for _, v := range s.Ratios {
			if v > 0 {
				measured = append(measured, v)
			}
		}
		s.MedianRatio = median(measured)
		if len(measured) > 0 {
			s.MinRatio, s.MaxRatio = slices.Min(measured), slices.Max(measured)
		}
		s.RawCopySeconds, s.SluiceSeconds, s.SluiceMBPerSec = median(raws[i]), median(drains[i]), median(rates[i])
		s.MedianUnsortedRatio = median(unsorted[i])
	}
	return out
}

// mostRuns returns the most runs any of sums had, at least 1.
func mostRuns(sums []ShapeSummary) int {
	runs := 1
	for _, s := range sums {
		runs = max(runs, s.Runs)
	}
	return runs
}

// median returns the median of vs (the mean of the middle two for an even
// count), 0 for none.
func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	v := slices.Clone(vs)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func verdict(ok bool) string {
	if ok {
		return "verified exactly once"
	}
	return "FAILED"
}

// pgSettingNames are the settings that make a run durable, printed with
// every result.
var pgSettingNames = []string{"wal_level", "fsync", "full_page_writes", "synchronous_commit"}

// durableSettings are the private cluster's settings beyond devenv's
// Durable: the server runs as production does (wal_level replica, as a
// server with a standby or WAL archiving must; devenv's default minimal
// skips WAL for a COPY into a table created in the same transaction).
var durableSettings = []string{"wal_level=replica", "fsync=on", "full_page_writes=on", "synchronous_commit=on"}

// env is the environment a run stands on.
type env struct {
	pgURL       string
	settings    string // pgSettingNames as name=value, read from the server
	brokers     []string
	reg         *devenv.Registry // for registry formats; nil until needed
	pg          *devenv.Postgres
	broker      *devenv.Broker // in-process broker
	bproc       *brokerProc    // or broker child process
	run         string         // unique suffix of this run's topics, tables and groups
	compression string         // producer batch compression of every stream
	n           int
	owned       []string   // tables created in an external PostgreSQL, dropped at close
	split       *coreSplit // with Options.SplitCores
}

func startEnv(ctx context.Context, o Options) (*env, error) {
	e := &env{run: fmt.Sprintf("%d", time.Now().UnixNano()%1e9), compression: o.Compression}
	if o.SplitCores && o.Postgres != "" {
		return nil, errors.New("--split-cores pins the private PostgreSQL: it cannot be used with --postgres")
	}
	if o.Postgres == "" {
		pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{Durable: true, Settings: durableSettings})
		if err != nil {
			return nil, err
		}
		e.pg = pg
		url, err := pg.CreateDatabase(ctx, "sluice_bench")
		if err != nil {
			pg.Stop()
			return nil, fmt.Errorf("cannot create the benchmark database: %w", err)
		}
		e.pgURL = url
		if o.SplitCores {
			if e.split, err = splitCores(pg.DataDir); err != nil {
				pg.Stop()
				return nil, err
			}
		}
	} else {
		// Parsed here, once, so that no later connection's error quotes
		// the URL: pgconn's masking of the password in it is best effort.
		if _, err := pgx.ParseConfig(o.Postgres); err != nil {
			return nil, fmt.Errorf("cannot parse --postgres: %s", redact.PGParseDetail(err))
		}
		e.pgURL = o.Postgres
	}
	if len(o.Brokers) == 0 && len(o.BrokerCommand) > 0 {
		p, err := startBrokerProc(ctx, o.BrokerCommand, o.Partitions, o.Log)
		if err != nil {
			e.close()
			return nil, err
		}
		e.bproc = p
		e.brokers = []string{p.addr}
	} else if len(o.Brokers) == 0 {
		b, err := devenv.StartBroker(devenv.BrokerOptions{Partitions: o.Partitions})
		if err != nil {
			e.close()
			return nil, err
		}
		e.broker = b
		e.brokers = b.Addrs()
	} else {
		e.brokers = o.Brokers
	}
	if o.Matrix || o.Format != loadgen.FormatJSON {
		r, err := devenv.StartRegistry(devenv.RegistryOptions{})
		if err != nil {
			e.close()
			return nil, fmt.Errorf("cannot start the embedded Schema Registry: %w", err)
		}
		e.reg = r
	}
	if err := e.readSettings(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// readSettings reads the durability settings back from the server.
func (e *env) readSettings(ctx context.Context) error {
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	var parts []string
	for _, n := range pgSettingNames {
		var v string
		if err := c.QueryRow(ctx, "SELECT setting FROM pg_settings WHERE name = $1", n).Scan(&v); err != nil {
			return fmt.Errorf("cannot read PostgreSQL setting %s: %w", n, err)
		}
		parts = append(parts, n+"="+v)
	}
	e.settings = strings.Join(parts, ", ")
	return nil
}

func (e *env) describe() string {
	pg := "PostgreSQL " + redact.Passwords(e.pgURL)
	if e.pg != nil {
		pg = fmt.Sprintf("private PostgreSQL %s:%d", e.pg.Host, e.pg.Port)
	}
	k := "Kafka " + strings.Join(e.brokers, ",")
	if e.broker != nil {
		k = "embedded kfake broker " + e.brokers[0] + " in this process"
	}
	if e.bproc != nil {
		k = fmt.Sprintf("embedded kfake broker %s in its own process (pid %d)", e.brokers[0], e.bproc.pid())
	}
	if e.reg != nil {
		k += "; embedded Schema Registry " + e.reg.URL()
	}
	cpus := fmt.Sprintf("%d CPUs", runtime.NumCPU())
	if e.split != nil {
		cpus += "; " + e.split.String()
	}
	return fmt.Sprintf("%s; %s; %s", pg, k, cpus)
}

func (e *env) close() {
	if len(e.owned) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if c, err := pgx.Connect(ctx, e.pgURL); err == nil {
			for _, t := range e.owned {
				c.Exec(ctx, "DROP TABLE IF EXISTS "+t)
			}
			c.Close(ctx)
		}
		cancel()
	}
	if e.broker != nil {
		e.broker.Close()
	}
	if e.reg != nil {
		e.reg.Close()
	}
	if e.bproc != nil {
		e.bproc.stop()
	}
	if e.pg != nil {
		e.pg.Stop()
	}
	if e.split != nil {
		e.split.restore()
	}
}

// stream is one topic and the table it lands in.
type stream struct {
	topic, table string
	shape        Shape
	gen          loadgen.Options
	stats        loadgen.Stats
}

// rows is the number of rows s's table must end with: one per committed
// good event, or the cdc source table's final rows.
func (s *stream) rows() int64 {
	if s.shape.cdc() {
		return loadgen.CDCRows(s.gen, s.stats.Records)
	}
	return s.stats.Committed[loadgen.KindGood]
}

func (e *env) newStream(schema string, sh Shape, partitions int, seed int64) *stream {
	e.n++
	name := fmt.Sprintf("bench_%s_%d", e.run, e.n)
	s := &stream{topic: name, table: "public." + name, shape: sh}
	s.gen = sh.genOptions(schema)
	s.gen.Seed, s.gen.Topic, s.gen.Partitions, s.gen.Compression = seed, name, partitions, e.compression
	if e.pg == nil {
		e.owned = append(e.owned, s.table)
	}
	return s
}

// register registers the reference schema of s's registry format under
// its topic and sets s.gen.SchemaID (for the cdc workload in avro, the
// Envelope and Key: SchemaID and KeySchemaID).
func (e *env) register(ctx context.Context, s *stream) error {
	if s.gen.Format == "" || s.gen.Format == loadgen.FormatJSON {
		return nil
	}
	if e.reg == nil {
		return fmt.Errorf("cannot produce %s records: no Schema Registry runs", s.gen.Format)
	}
	return loadgen.RegisterSchema(ctx, &s.gen, registry.Options{URLs: []string{e.reg.URL()}})
}

// tableSpec is the table s lands in.
func (s *stream) tableSpec() loadgen.TableSpec {
	return loadgen.TableSpec{Workload: s.gen.Workload, Schema: s.gen.Schema, Format: s.gen.Format, Table: s.table, Topic: s.topic,
		OnConflict: s.shape.OnConflict, Guard: s.shape.Guard()}
}

// pointSpec is one appliance configuration and workload.
type pointSpec struct {
	shape                           Shape
	Partitions, MaxConns, BatchRows int
	BatchBytes                      int64
	MaxAge                          time.Duration
	Records                         int64
	Seed                            int64
	Latency                         []float64 // fractions of the drain rate, each measured for LatencyFor
	LatencyFor                      time.Duration

	// before runs after the preload and before the drain (the baselines).
	before func(ctx context.Context, s *stream) error
	// cleanup drops the point's topics and tables once verified.
	cleanup bool
}

// pointResult is what one pointSpec measured.
type pointResult struct {
	Drain Throughput
	// FirstRecord and FirstCommit are the seconds from Run to the first
	// fetched record and to the first committed batch (start-up: group
	// join, claims, first fetch; then the first batch filling).
	FirstRecord, FirstCommit float64
	Batches                  uint64
	Latency                  []Latency
	CPU                      CPU
	PeakRSS                  int64
	StartRSS                 int64
	RSSMethod                string
	Verified                 bool
	Verify                   []string
	PrefillSeconds           float64
	PrefillBytes             int64
	MemoryLimit              int64 // the appliance's Go memory limit; 0: GOMEMLIMIT's
}

// preloadOpts make the preload write every topic in full record batches
// (kgo's 1 MB, or loadgen's limit for oversized records), as a producer
// with enough linger writes a backlog, whatever the generator's speed.
// With loadgen's own 5 ms linger a batch held what the generator made
// while the previous request was out: JSON came in batches of about
// 380 KB, Avro of 31–47 KB and Protobuf, the slowest to encode, of
// 8–18 KB, and the embedded broker, on the cores the drain shares, spent
// up to twice the CPU serving the same records (300,000 Protobuf records
// from `sluice broker`: 0.21–0.44 s, against 0.13–0.14 s in full batches
// and 0.15–0.25 s for JSON either way). The latency phase keeps the 5 ms
// linger: there the batches are what the rate makes them.
var preloadOpts = []kgo.Opt{
	kgo.ProducerLinger(time.Second),
	// A partition's batch goes when full; a limit reached first would
	// send the others half full.
	kgo.MaxBufferedRecords(1 << 20),
	kgo.MaxBufferedBytes(64 << 20),
}

// point preloads a topic, drains it through a fresh appliance, measures
// latency at the requested rates on further topics, and verifies every
// table.
func (e *env) point(ctx context.Context, o Options, sp pointSpec) (*pointResult, error) {
	drain := e.newStream(o.Schema, sp.shape, sp.Partitions, sp.Seed)
	drain.gen.Records = sp.Records
	var lat []*stream
	for i := range sp.Latency {
		lat = append(lat, e.newStream(o.Schema, sp.shape, sp.Partitions, sp.Seed+int64(i)+1))
	}
	all := append([]*stream{drain}, lat...)
	if err := e.createTopics(ctx, all, sp.Partitions); err != nil {
		return nil, err
	}
	for _, s := range all {
		if err := e.register(ctx, s); err != nil {
			return nil, err
		}
	}

	logf(o.Log, "preloading %d %s records (%s) into %s (%d partitions)", sp.Records, o.Schema, sp.shape, drain.topic, sp.Partitions)
	st, err := loadgen.Produce(ctx, e.brokers, drain.gen, o.Log, preloadOpts...)
	if err != nil {
		return nil, fmt.Errorf("cannot preload the benchmark topic: %w", err)
	}
	if st.Failed.Total() > 0 || st.Interrupted {
		return nil, fmt.Errorf("cannot preload the benchmark topic: %d records failed (interrupted %v); check the broker", st.Failed.Total(), st.Interrupted)
	}
	drain.stats = st

	cfg, err := e.config(o, sp, all)
	if err != nil {
		return nil, err
	}
	if err := ingest.Migrate(ctx, cfg); err != nil {
		return nil, err
	}
	var prefillTook time.Duration
	var prefillBytes int64
	if o.Partitioned {
		for _, s := range all {
			if err := e.makeDayPartitions(ctx, s.table); err != nil {
				return nil, err
			}
		}
	}
	if o.Prefill > 0 {
		logf(o.Log, "prefilling %s with %d rows inside PostgreSQL (not timed) …", drain.table, o.Prefill)
		if prefillTook, prefillBytes, err = e.prefill(ctx, drain.table, o.Prefill, o.Partitioned, func(f string, a ...any) { logf(o.Log, f, a...) }); err != nil {
			return nil, err
		}
	}
	if sp.before != nil {
		if err := sp.before(ctx, drain); err != nil {
			return nil, err
		}
	}
	ends, err := devenv.LogEnds(ctx, e.brokers, drain.topic)
	if err != nil {
		return nil, err
	}

	// The drain. The appliance runs under the Go memory limit `sluice run`
	// sets (unless GOMEMLIMIT is set): without it the heap would grow to
	// twice what is live and the collector run less often than it does
	// in production. What the bench process itself still holds (the
	// broker's log when in-process, clients, results) is added to it, so
	// that the appliance has the headroom it would have alone.
	runtime.GC()
	debug.FreeOSMemory()
	if err := e.checkpoint(ctx); err != nil {
		return nil, err
	}
	memLimit, benchHeap := int64(0), int64(0)
	if os.Getenv("GOMEMLIMIT") == "" {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		benchHeap = int64(ms.HeapAlloc)
		memLimit = ingest.MemoryLimit(cfg)
		prev := debug.SetMemoryLimit(memLimit + benchHeap)
		defer debug.SetMemoryLimit(prev)
	}
	app, err := ingest.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: benchLogLevel()})))
	if err != nil {
		return nil, err
	}
	db, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to PostgreSQL to watch the offsets: %w", err)
	}
	defer db.Close(context.Background())

	method := "VmHWM of the bench process (the appliance; the broker runs in its own process), reset at drain start via /proc/self/clear_refs"
	if e.broker != nil {
		method = "VmHWM of the bench process (the appliance and the in-process broker with the preloaded log), reset at drain start via /proc/self/clear_refs"
	}
	pr := &pointResult{RSSMethod: method, PrefillSeconds: prefillTook.Seconds(), PrefillBytes: prefillBytes, MemoryLimit: memLimit}
	rssOK := resetPeakRSS() == nil
	pr.StartRSS, _ = readRSS("VmRSS")
	cpu0 := e.cpuNow()
	faults0, gcs0 := procFaults(), gcCycles()
	appCtx, stopApp := context.WithCancel(context.Background())
	defer stopApp()
	appDone := make(chan error, 1)
	limitNote := "GOMEMLIMIT from the environment"
	if memLimit > 0 {
		limitNote = fmt.Sprintf("Go memory limit %d MiB, as sluice run sets it, plus the %d MiB the bench process holds", memLimit>>20, benchHeap>>20)
	}
	logf(o.Log, "draining through the appliance (%d connections, batches of %d rows; %s) …", sp.MaxConns, sp.BatchRows, limitNote)
	stopProfile, err := startCPUProfile(o.CPUProfile)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	go func() { appDone <- app.Run(appCtx) }()
	firsts := watchFirsts(app, start)
	progCtx, stopProgress := context.WithCancel(ctx)
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		progress.New(o.Log, "drain", st.Records).Poll(progCtx, progress.TerminalEvery, func() (int64, string) {
			s := app.Stats()
			return int64(s.RecordsConsumed), fmt.Sprintf("rows %s  lag %s", progress.Thousands(int64(s.RowsWritten)), progress.Thousands(s.Lag))
		})
	}()
	// PostgreSQL is polled every 5ms only once every record was fetched:
	// before that, the polls would only add load to the server measured.
	fetchedAll := func() bool { return app.Stats().RecordsConsumed >= uint64(st.Records) }
	err = devenv.WaitStored(ctx, db, cfg.Postgres.Schema, cfg.Kafka.Group, drain.topic, ends, appDone, 5*time.Millisecond, fetchedAll)
	elapsed := time.Since(start)
	stopProgress()
	<-progDone
	if err != nil {
		stopProfile()
		return nil, err
	}
	if err := stopProfile(); err != nil {
		return nil, err
	}
	pr.FirstRecord, pr.FirstCommit = firsts()
	cpu1 := e.cpuNow()
	if rssOK {
		pr.PeakRSS, _ = readRSS("VmHWM")
	} else {
		pr.RSSMethod = "unavailable (/proc/self/clear_refs not writable)"
	}
	pr.CPU = cpu1.sub(cpu0, elapsed)
	pr.Drain = newThroughput(elapsed, st.Records, drain.rows(), st.CommittedBytes)
	pr.Batches = app.Stats().BatchesCommitted
	logf(o.Log, "drained %d records in %.2fs: %.0f rows/s, %.1f MB/s (first record fetched after %.2fs, first batch committed after %.2fs)",
		st.Records, elapsed.Seconds(), pr.Drain.RowsPerSec, pr.Drain.MBPerSec, pr.FirstRecord, pr.FirstCommit)
	logf(o.Log, "  during the drain: %s; the bench process took %d minor page faults and %d GC cycles",
		pr.CPU.describe("appliance"), procFaults()-faults0, gcCycles()-gcs0)
	if s := app.Stats(); s.RecordsConsumed > 0 {
		logf(o.Log, "  the client read %d records for the %d consumed (%.1f%% read twice), %.1f MB fetched that decoded to %.1f MB",
			s.RecordsFetched, s.RecordsConsumed, 100*(float64(s.RecordsFetched)/float64(s.RecordsConsumed)-1),
			float64(s.FetchedWire)/1e6, float64(s.FetchedDecoded)/1e6)
	}

	// Latency at fixed rates, the appliance consuming live.
	recBytes := float64(st.CommittedBytes) / float64(max(st.Committed.Total(), 1))
	for i, frac := range sp.Latency {
		s := lat[i]
		rate := frac * float64(st.Records) / elapsed.Seconds()
		s.gen.Rate = rate
		s.gen.Duration = sp.LatencyFor
		logf(o.Log, "latency at %.0f%% of the measured rate: %.0f records/s for %v …", 100*frac, rate, sp.LatencyFor)
		since := app.EndToEndLatency()
		t0 := time.Now()
		lst, err := loadgen.Produce(ctx, e.brokers, s.gen, nil)
		if err != nil {
			return pr, fmt.Errorf("cannot produce the latency workload: %w", err)
		}
		produced := time.Since(t0)
		s.stats = lst
		s.gen.Records = lst.Records
		lends, err := devenv.LogEnds(ctx, e.brokers, s.topic)
		if err != nil {
			return pr, err
		}
		if err := devenv.WaitStored(ctx, db, cfg.Postgres.Schema, cfg.Kafka.Group, s.topic, lends, appDone, 5*time.Millisecond, nil); err != nil {
			return pr, err
		}
		l := Latency{Fraction: frac, RecordsPerSec: rate, MBPerSec: rate * recBytes / 1e6, Records: lst.Records,
			Seconds: produced.Seconds()}
		phase := app.EndToEndLatency().Sub(since)
		l.P50, l.P99 = phase.Quantile(0.5), phase.Quantile(0.99)
		l.P50Sec, l.P99Sec = l.P50, l.P99
		pr.Latency = append(pr.Latency, l)
		logf(o.Log, "  p50 %.3fs, p99 %.3fs", l.P50, l.P99)
	}
	stopApp()
	if err := <-appDone; err != nil {
		return pr, fmt.Errorf("the appliance failed: %w", err)
	}

	// Exactly once, for every table.
	pr.Verified = true
	for _, s := range all {
		vo := loadgen.VerifyOptions{Gen: s.gen, Stats: &s.stats, Table: s.table, OnConflict: s.shape.OnConflict, Guard: s.shape.Guard()}
		if s.shape.cdc() {
			// A TOAST placeholder keeps the value stored before its batch
			// (docs/change-streams.md): accepted, and counted in the
			// summary as stale TOAST notes.
			vo = loadgen.VerifyOptions{Gen: s.gen, Stats: &s.stats, Table: s.table}
		}
		if o.Prefill > 0 {
			vo.Where = "src_offset IS NOT NULL" // not the prefilled rows
		}
		rep, err := loadgen.Verify(ctx, e.pgURL, vo)
		if err != nil {
			pr.Verified = false
			return pr, fmt.Errorf("cannot verify %s: %w", s.table, err)
		}
		var b strings.Builder
		rep.WriteSummary(&b)
		pr.Verify = append(pr.Verify, strings.TrimRight(b.String(), "\n"))
		if !rep.OK() {
			pr.Verified = false
		}
	}
	if !pr.Verified {
		return pr, errors.New("exactly-once check failed:\n" + strings.Join(pr.Verify, "\n"))
	}
	logf(o.Log, "verified %d tables: exactly once", len(all))
	if sp.cleanup {
		e.drop(ctx, all)
	}
	return pr, nil
}

// watchFirsts samples app's counters every millisecond from start until
// the returned function is called, which reports the seconds to the first
// fetched record and to the first committed batch (0: not seen).
func watchFirsts(app *ingest.App, start time.Time) func() (record, commit float64) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var rec, com float64
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for rec == 0 || com == 0 {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			s := app.Stats()
			if rec == 0 && s.RecordsConsumed > 0 {
				rec = time.Since(start).Seconds()
			}
			if com == 0 && s.BatchesCommitted > 0 {
				com = time.Since(start).Seconds()
			}
		}
	}()
	return func() (float64, float64) {
		close(stop)
		<-done
		return rec, com
	}
}

// startCPUProfile starts a CPU profile into path ("" profiles nothing);
// the returned function stops it and closes the file.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cannot create the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start the CPU profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// drop deletes the streams' topics (the embedded broker holds them in this
// process's heap, which would slow later points through GC) and tables
// (so autovacuum of old tables does not run during later points).
func (e *env) drop(ctx context.Context, ss []*stream) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err == nil {
		var topics []string
		for _, s := range ss {
			topics = append(topics, s.topic)
		}
		kadm.NewClient(cl).DeleteTopics(ctx, topics...)
		cl.Close()
	}
	if c, err := pgx.Connect(ctx, e.pgURL); err == nil {
		for _, s := range ss {
			c.Exec(ctx, "DROP TABLE IF EXISTS "+s.table+", "+s.table+"_rawcopy, "+s.table+"_insert")
		}
		c.Close(context.Background())
	}
	runtime.GC()
	debug.FreeOSMemory()
}

// config is the appliance configuration for sp over streams.
func (e *env) config(o Options, sp pointSpec, streams []*stream) (*ingest.Config, error) {
	var tables strings.Builder
	regYAML := ""
	for _, s := range streams {
		entry := s.tableSpec().YAML()
		if o.Partitioned {
			entry = partitionedYAML(entry)
		}
		tables.WriteString(entry)
		if s.gen.Format != loadgen.FormatJSON && e.reg != nil {
			regYAML = fmt.Sprintf("schema_registry:\n  urls: [%q]\n", e.reg.URL())
		}
	}
	brokersYAML, _ := json.Marshal(e.brokers) // JSON is YAML
	y := regYAML + fmt.Sprintf(`
kafka:
  brokers: %s
  group: sluice-bench-%s-%d
postgres:
  url: %q
  max_conns: %d
batch:
  max_rows: %d
  max_bytes: %d
  max_age: %s
  huge_pages: %t
metrics:
  listen: ""
tables:
%s`, brokersYAML, e.run, e.n, e.pgURL, sp.MaxConns, sp.BatchRows, sp.BatchBytes, sp.MaxAge, o.HugePages, tables.String())
	cfg, err := ingest.Parse([]byte(y), func(string) string { return "" })
	if err != nil {
		return nil, fmt.Errorf("cannot build the benchmark configuration: %w", err)
	}
	return cfg, nil
}

func (e *env) createTopics(ctx context.Context, ss []*stream, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		return fmt.Errorf("cannot create a Kafka client for %v: %w", e.brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, s := range ss {
		r, err := adm.CreateTopic(ctx, int32(partitions), -1, nil, s.topic)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			return fmt.Errorf("cannot create topic %s with %d partitions: %w", s.topic, partitions, err)
		}
	}
	return nil
}

func (e *env) checkpoint(ctx context.Context) error {
	c, err := pgx.Connect(ctx, e.pgURL)
	if err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CHECKPOINT"); err != nil && e.pg != nil {
		return fmt.Errorf("cannot run CHECKPOINT before a measurement: %w", err)
	}
	return nil
}

// benchLogLevel is the appliance's log level in the bench: warnings, or
// SLUICE_BENCH_LOG (debug, info, warn, error) to watch batches commit.
func benchLogLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("SLUICE_BENCH_LOG"))); err != nil {
		return slog.LevelWarn
	}
	return l
}
