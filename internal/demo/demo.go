// Package demo is `sluice demo`: the README's first command. It brings up the
// embedded environment (or uses given services), produces the reference
// workload with duplicates and bad records while the appliance runs, waits
// until everything is committed, checks exactly-once and prints a summary.
// It fails when the check fails. With the cdc workload it produces Debezium
// change events of a simulated orders table instead (inserts, updates,
// deletes with their tombstones, dups, replays, TOAST placeholders) into a
// format: debezium table, and checks that the target equals the source's
// final state.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/internal/progress"
	"github.com/sluice-dev/sluice/loadgen"
	"github.com/sluice-dev/sluice/registry"
)

// Options configures a demo run.
type Options struct {
	Duration   time.Duration // how long to produce
	Records    int64         // or how many records (overrides Duration)
	Rate       float64       // records/s, 0 = as fast as possible
	Partitions int
	Postgres   string // use this PostgreSQL instead of a private one
	Brokers    string // use these brokers instead of the embedded one
	Topic      string
	Seed       int64
	DupRatio   float64
	BadRatio   float64
	MaxConns   int
	Verbose    bool
	// Format is json (default) or a Schema Registry format (avro,
	// protobuf, json_schema): the demo then also runs the embedded
	// registry and registers the reference schema in it.
	Format string
	// Workload is events (default) or cdc: loadgen's cdc workload into a
	// format: debezium table (Format json or avro, the latter with
	// converter: avro; BadRatio does not apply).
	Workload string
}

// Main is `sluice demo`.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long to produce traffic")
	fs.Int64Var(&o.Records, "records", 0, "produce exactly this many records instead of --duration")
	fs.Float64Var(&o.Rate, "rate", 0, "records per second (0: as fast as possible)")
	fs.IntVar(&o.Partitions, "partitions", 4, "partitions of the demo topic (embedded broker)")
	fs.StringVar(&o.Postgres, "postgres", "", "PostgreSQL URL to use instead of a private cluster")
	fs.StringVar(&o.Brokers, "brokers", "", "Kafka brokers (comma-separated) to use instead of the embedded broker")
	fs.StringVar(&o.Topic, "topic", "", "topic to produce to and consume from (default sluice_demo_events, or shop.public.orders for --workload cdc)")
	fs.Int64Var(&o.Seed, "seed", 42, "loadgen seed")
	fs.Float64Var(&o.DupRatio, "dup-ratio", 0.02, "fraction of records that re-send an earlier event")
	fs.Float64Var(&o.BadRatio, "bad-ratio", 0.005, "fraction of records that are bad (spread over every kind)")
	fs.IntVar(&o.MaxConns, "max-conns", 2, "writer connections")
	fs.BoolVar(&o.Verbose, "v", false, "log the appliance at info level")
	fs.StringVar(&o.Format, "format", "json", "record format: json, or avro, protobuf, json_schema with the embedded Schema Registry")
	fs.StringVar(&o.Workload, "workload", "events", "events (reference events with duplicates and bad records) or cdc (Debezium change events of an orders table)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return Run(ctx, o, stdout)
}

// Run runs the demo and returns an error when anything, including the
// exactly-once check, fails.
func Run(ctx context.Context, o Options, out io.Writer) error {
	cdc := o.Workload == loadgen.WorkloadCDC
	switch {
	case o.Workload != "" && o.Workload != loadgen.WorkloadEvents && !cdc:
		return fmt.Errorf("cannot run workload %q; use --workload events or cdc", o.Workload)
	case cdc && o.Format != "" && o.Format != loadgen.FormatJSON && o.Format != loadgen.FormatAvro:
		return fmt.Errorf("cannot run the cdc workload in format %s: it is Debezium's JSON or AvroConverter's Avro; use --format json or avro", o.Format)
	}
	if o.Topic == "" {
		o.Topic = "sluice_demo_events"
		if cdc {
			o.Topic = "shop.public.orders"
		}
	}
	fmt.Fprintln(out, "sluice demo: Kafka → PostgreSQL, exactly once")
	pgURL := o.Postgres
	if pgURL == "" {
		fmt.Fprint(out, "  starting a private PostgreSQL … ")
		pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{Durable: true})
		if err != nil {
			return err
		}
		defer pg.Stop()
		pgURL, err = pg.CreateDatabase(ctx, "sluice_demo")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%s:%d (fsync on)\n", pg.Host, pg.Port)
	}
	var brokers []string
	if o.Brokers == "" {
		fmt.Fprint(out, "  starting the embedded Kafka-protocol broker … ")
		b, err := devenv.StartBroker(devenv.BrokerOptions{Topics: []string{o.Topic}, Partitions: o.Partitions})
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = b.Addrs()
		fmt.Fprintf(out, "%s, topic %s with %d partitions\n", brokers[0], o.Topic, o.Partitions)
	} else {
		brokers = strings.Split(o.Brokers, ",")
	}

	table := "public.sluice_demo_events"
	if cdc {
		table = "public.sluice_demo_orders"
	}
	if o.Format == "" {
		o.Format = loadgen.FormatJSON
	}
	lo := loadgen.Options{
		Seed:     o.Seed,
		Schema:   loadgen.SchemaReference,
		Records:  o.Records,
		Duration: o.Duration,
		Rate:     o.Rate,
		DupRatio: o.DupRatio,
		Topic:    o.Topic,
		Format:   o.Format,
	}
	if o.Records > 0 {
		lo.Duration = 0
	}
	spec := loadgen.TableSpec{Schema: loadgen.SchemaReference, Format: o.Format, Table: table, Topic: o.Topic}
	if cdc {
		lo.Workload, lo.CDCUpdates, lo.CDCDeletes, lo.CDCReplays, lo.CDCToast =
			loadgen.WorkloadCDC, loadgen.DefaultCDCUpdates, loadgen.DefaultCDCDeletes, loadgen.DefaultCDCReplays, loadgen.DefaultCDCToast
		spec.Workload = loadgen.WorkloadCDC
	} else {
		lo.SpreadBad(o.BadRatio)
	}
	registryYAML := ""
	if o.Format != loadgen.FormatJSON {
		fmt.Fprint(out, "  starting the embedded Schema Registry … ")
		reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
		if err != nil {
			return err
		}
		defer reg.Close()
		if err := loadgen.RegisterSchema(ctx, &lo, registry.Options{URLs: []string{reg.URL()}}); err != nil {
			return fmt.Errorf("cannot register the %s reference schema: %w", o.Format, err)
		}
		fmt.Fprintf(out, "%s, %s schema id %d under subject %s\n", reg.URL(), o.Format, lo.SchemaID, loadgen.Subject(o.Topic))
		registryYAML = fmt.Sprintf("schema_registry:\n  urls: [%q]\n", reg.URL())
	}
	cfgYAML := fmt.Sprintf(`
kafka:
  brokers: %s
  group: sluice-demo-%d
%spostgres:
  url: %q
  max_conns: %d
metrics:
  listen: 127.0.0.1:0
tables:
%s`, yamlList(brokers), time.Now().UnixNano(), registryYAML, pgURL, o.MaxConns, spec.YAML())
	cfg, err := ingest.Parse([]byte(cfgYAML), func(string) string { return "" })
	if err != nil {
		return fmt.Errorf("cannot build the demo configuration: %w", err)
	}
	level := slog.LevelWarn
	if o.Verbose {
		level = slog.LevelInfo
	}
	app, err := ingest.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	if err != nil {
		return err
	}
	appCtx, stopApp := context.WithCancel(context.Background())
	defer stopApp()
	appDone := make(chan error, 1)
	go func() { appDone <- app.Run(appCtx) }()

	if cdc {
		fmt.Fprintf(out, "  producing Debezium change events of an orders table (%s: %.0f%% updates, %.0f%% deletes with tombstones, %.0f%% replays, %.1f%% duplicates, TOAST placeholders) while the appliance runs …\n",
			describeAmount(o), 100*lo.CDCUpdates, 100*lo.CDCDeletes, 100*lo.CDCReplays, 100*o.DupRatio)
	} else {
		fmt.Fprintf(out, "  producing %s reference events (%s, %.1f%% duplicates, %.1f%% bad records) while the appliance runs …\n",
			o.Format, describeAmount(o), 100*o.DupRatio, 100*o.BadRatio)
	}
	start := time.Now()
	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		total := int64(-1)
		if o.Records > 0 {
			total = o.Records
		}
		showProgress(out, app, stopProgress, total)
	}()
	stats, err := loadgen.Produce(ctx, brokers, lo, nil)
	if err != nil {
		close(stopProgress)
		<-progressDone
		return fmt.Errorf("cannot produce the workload: %w", err)
	}
	produceTime := time.Since(start)
	total := stats.Records

	// Drain: until the offsets stored in PostgreSQL reach the log end.
	ends, err := devenv.LogEnds(ctx, brokers, o.Topic)
	if err != nil {
		close(stopProgress)
		<-progressDone
		return err
	}
	if err := waitStored(ctx, pgURL, cfg, o.Topic, ends, appDone); err != nil {
		close(stopProgress)
		<-progressDone
		return err
	}
	elapsed := time.Since(start)
	close(stopProgress)
	<-progressDone
	st := app.Stats()
	p99 := app.EndToEndLatency().Quantile(0.99)
	stopApp()
	if err := <-appDone; err != nil {
		return fmt.Errorf("the appliance failed: %w", err)
	}

	// Exactly-once check.
	db, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	var rows, dls int64
	if err := db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&rows); err != nil {
		return err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM sluice.dead_letters WHERE target = $1`, table).Scan(&dls); err != nil {
		return err
	}
	wantRows := stats.Committed[loadgen.KindGood]
	wantDLs := stats.Committed.Bad()
	vo := loadgen.VerifyOptions{Gen: lo, Stats: &stats, Table: table}
	if cdc {
		wantRows = loadgen.CDCRows(lo, stats.Records)
	}
	rep, verr := loadgen.Verify(ctx, pgURL, vo)
	ok := rows == wantRows && dls == wantDLs && verr == nil && rep.OK()

	mb := float64(stats.CommittedBytes) / 1e6
	secs := elapsed.Seconds()
	fmt.Fprintf(out, "\nsummary\n")
	if cdc {
		c := &stats.Committed
		fmt.Fprintf(out, "  records produced    %d (%d inserts, %d updates, %d deletes + %d tombstones, %d duplicates, %d replays) in %.1fs\n",
			total, c[loadgen.KindGood], c[loadgen.KindUpdate], c[loadgen.KindDelete], c[loadgen.KindTombstone], c[loadgen.KindDup], c[loadgen.KindReplay], produceTime.Seconds())
	} else {
		fmt.Fprintf(out, "  records produced    %d (%d unique events, %d duplicates, %d bad) in %.1fs\n",
			total, wantRows, stats.Committed[loadgen.KindDup], wantDLs, produceTime.Seconds())
	}
	fmt.Fprintf(out, "  records consumed    %d, %.1f MB\n", st.RecordsConsumed, float64(st.BytesConsumed)/1e6)
	fmt.Fprintf(out, "  drained in          %.1fs: %.0f records/s, %.1f MB/s, %.0f rows/s\n",
		secs, float64(total)/secs, mb/secs, float64(rows)/secs)
	fmt.Fprintf(out, "  batches committed   %d, end-to-end p99 %.2fs\n", st.BatchesCommitted, p99)
	if cdc {
		fmt.Fprintf(out, "  target rows         %d (want %d rows of the source table)\n", rows, wantRows)
	} else {
		fmt.Fprintf(out, "  target rows         %d (want %d unique events)\n", rows, wantRows)
	}
	fmt.Fprintf(out, "  dead letters        %d (want %d bad records)\n", dls, wantDLs)
	if verr != nil {
		fmt.Fprintf(out, "  verify              error: %v\n", verr)
	} else {
		rep.WriteSummary(out)
	}
	if !ok {
		fmt.Fprintln(out, "  verdict             FAIL")
		return errors.New("exactly-once check failed")
	}
	if cdc {
		fmt.Fprint(out, "  verdict             PASS: the target equals the source table's final state")
		if rep.ToastStale > 0 {
			fmt.Fprintf(out, ", but for %d TOASTed notes kept from before their batch (docs/change-streams.md, \"Unchanged TOAST columns\")", rep.ToastStale)
		}
		fmt.Fprintln(out)
		return nil
	}
	fmt.Fprintln(out, "  verdict             PASS: every record landed exactly once (or once in dead_letters)")
	return nil
}

func describeAmount(o Options) string {
	if o.Records > 0 {
		return fmt.Sprintf("%d records", o.Records)
	}
	return "for " + o.Duration.String()
}

// showProgress prints the appliance's progress until stop is closed: one
// line rewritten in place on a terminal, a plain line every few seconds
// elsewhere (internal/progress).
func showProgress(out io.Writer, app *ingest.App, stop <-chan struct{}, total int64) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stop; cancel() }()
	progress.New(out, "  consumed", total).Poll(ctx, progress.TerminalEvery, func() (int64, string) {
		s := app.Stats()
		return int64(s.RecordsConsumed), fmt.Sprintf("rows %s  dead letters %s  lag %s  in flight %.1f MiB",
			progress.Thousands(int64(s.RowsWritten)), progress.Thousands(int64(s.DeadLetters)), progress.Thousands(s.Lag), float64(s.InflightBytes)/(1<<20))
	})
}

func waitStored(ctx context.Context, url string, cfg *ingest.Config, topic string, ends map[int32]int64, appDone <-chan error) error {
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	return devenv.WaitStored(ctx, db, cfg.Postgres.Schema, cfg.Kafka.Group, topic, ends, appDone, 100*time.Millisecond, nil)
}

// yamlList renders ss as a YAML flow sequence (JSON is YAML).
func yamlList(ss []string) string {
	b, _ := json.Marshal(ss)
	return string(b)
}
