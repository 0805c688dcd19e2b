package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluice-dev/sluice/registry"
)

// genFlags registers the generator's flags on fs. apply must be called after
// parsing to resolve --bad-ratio and --bad into o.Bad.
func genFlags(fs *flag.FlagSet, o *Options) (apply func() error) {
	fs.Int64Var(&o.Seed, "seed", 1, "stream seed; the same seed and flags give the same records")
	fs.StringVar(&o.Workload, "workload", WorkloadEvents, "events (the --schema's events) or cdc (Debezium change events of a simulated orders table; see --cdc-*)")
	fs.Float64Var(&o.CDCUpdates, "cdc-updates", DefaultCDCUpdates, "cdc: fraction of records that update a row")
	fs.Float64Var(&o.CDCDeletes, "cdc-deletes", DefaultCDCDeletes, "cdc: fraction of records that delete a row (each followed by its tombstone)")
	fs.Float64Var(&o.CDCReplays, "cdc-replays", DefaultCDCReplays, "cdc: fraction of records that re-send an older change verbatim (the guard must reject it)")
	fs.Float64Var(&o.CDCToast, "cdc-toast", DefaultCDCToast, "cdc: fraction of the updates leaving notes unchanged that send it as the TOAST placeholder")
	fs.BoolVar(&o.CDCSchema, "cdc-schema", false, "cdc: wrap key and value with their Kafka Connect schema (total as a base64 Decimal, updated_at a MicroTimestamp)")
	fs.StringVar(&o.Schema, "schema", DefaultSchema, "event schema: reference (~480 B), narrow (~100 B) or wide (~2 KB)")
	fs.StringVar(&o.Format, "format", FormatJSON, "record format: json, or avro, protobuf, json_schema (the reference schema, registry-framed); cdc: json or avro (as Confluent's AvroConverter writes Debezium's events)")
	fs.IntVar(&o.SchemaID, "schema-id", 0, "registry id framed into avro/protobuf/json_schema records (0: register the schema with --registry; cdc avro: the Envelope's, keys then JSON)")
	fs.Int64Var(&o.EvolveAt, "evolve-at", 0, "avro/protobuf/json_schema: write records from index N on with a second version of the reference schema, registered with --registry under the same subject, that adds an optional string field channel (0: one version)")
	fs.Int64Var(&o.Records, "records", 0, "records to produce (0: until --duration)")
	fs.StringVar(&o.Topic, "topic", DefaultTopic, "Kafka topic")
	fs.IntVar(&o.ValueSize, "value-size", 0, "mean value size in bytes (0: the schema's natural size)")
	fs.Float64Var(&o.SizeSpread, "size-spread", 0.5, "variable field length spread, fraction of its mean in [0,1]")
	fs.Int64Var(&o.KeyCardinality, "key-cardinality", 0, "distinct event ids good records draw from (0: every event unique)")
	fs.Float64Var(&o.DupRatio, "dup-ratio", 0, "fraction of records re-sending an earlier event verbatim")
	fs.Float64Var(&o.UpdateRatio, "update-ratio", 0, "fraction of records that are a newer version of an earlier event (same id, new ts and amount, higher version)")
	fs.StringVar(&o.Keys, "keys", KeysEventID, "Kafka record key: event-id (every occurrence of an event in one partition), null (records spread over the partitions, a re-send elsewhere than its original) or other-field (the reference schema's tenant_id)")
	fs.IntVar(&o.MaxValueBytes, "max-value-bytes", DefaultMaxValueBytes, "the appliance's value size limit; oversized records exceed it by one byte")
	fs.StringVar(&o.ValueCompression, "value-compression", "none", "per-value compression with a content-encoding header: none, gzip, snappy, lz4, zstd")
	fs.BoolVar(&o.Transactional, "transactional", false, "produce in transactions of --txn-records records")
	fs.Float64Var(&o.AbortRatio, "abort-ratio", 0, "fraction of transactions aborted (needs --transactional)")
	fs.IntVar(&o.TxnRecords, "txn-records", DefaultTxnRecords, "records per transaction")
	var badRatio float64
	fs.Float64Var(&badRatio, "bad-ratio", 0, "fraction of bad records, spread over every bad kind except oversized")
	bad := map[Kind]float64{}
	fs.Func("bad", "KIND=RATIO: fraction of bad records of one kind, repeatable; kinds: "+strings.Join(BadKindNames(), ", ")+
		" (wrong_magic, truncated and unknown_schema for registry formats only; avro and protobuf cannot carry malformed_json, wrong_type, missing_required, out_of_range)", func(s string) error {
		name, val, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("cannot parse %q; use KIND=RATIO, e.g. --bad wrong_type=0.01", s)
		}
		k, err := ParseKind(name)
		if err != nil {
			return err
		}
		r, err := strconv.ParseFloat(val, 64)
		if err != nil || r < 0 || r > 1 {
			return fmt.Errorf("cannot parse ratio %q for %s; use a fraction in [0,1]", val, name)
		}
		bad[k] = r
		return nil
	})
	return func() error {
		if o.Workload != WorkloadCDC {
			o.CDCUpdates, o.CDCDeletes, o.CDCReplays, o.CDCToast = 0, 0, 0, 0
		}
		if badRatio < 0 || badRatio > 1 {
			return fmt.Errorf("cannot use --bad-ratio %v; use a fraction in [0,1]", badRatio)
		}
		if badRatio > 0 {
			o.SpreadBad(badRatio)
		}
		for k, r := range bad {
			if o.Bad == nil {
				o.Bad = map[Kind]float64{}
			}
			o.Bad[k] = r
		}
		if o.SizeSpread == 0 {
			o.SizeSpread = -1 // an explicit 0 means exactly the mean
		}
		return nil
	}
}

func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (help bool, err error) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, fmt.Errorf("cannot parse the flags: %w (see %s -h)", err, fs.Name())
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("cannot use argument %q: %s takes flags only (see %s -h)", fs.Arg(0), fs.Name(), fs.Name())
	}
	return false, nil
}

// registryFlags are the Schema Registry's address and credentials; the
// credentials come from the environment only, so that they stay out of
// process listings.
type registryFlags struct{ urls string }

func (f *registryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.urls, "registry", envOr("SLUICE_SCHEMA_REGISTRY_URLS", ""),
		"comma-separated Schema Registry URLs for registry formats (env SLUICE_SCHEMA_REGISTRY_URLS; credentials from SLUICE_SCHEMA_REGISTRY_USERNAME/_PASSWORD or _TOKEN)")
}

func (f *registryFlags) options() (registry.Options, bool) {
	var o registry.Options
	for _, u := range strings.Split(f.urls, ",") {
		if u = strings.TrimSpace(u); u != "" {
			o.URLs = append(o.URLs, u)
		}
	}
	o.Username = os.Getenv("SLUICE_SCHEMA_REGISTRY_USERNAME")
	o.Password = os.Getenv("SLUICE_SCHEMA_REGISTRY_PASSWORD")
	o.Token = os.Getenv("SLUICE_SCHEMA_REGISTRY_TOKEN")
	return o, len(o.URLs) > 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// LoadgenMain is the `sluice loadgen` command: it produces the simulated
// traffic, prints progress to stderr and a summary to stdout, and writes a
// manifest for `sluice verify` when --manifest is given.
func LoadgenMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice loadgen", flag.ContinueOnError)
	var o Options
	apply := genFlags(fs, &o)
	brokers := fs.String("brokers", envOr("SLUICE_KAFKA_BROKERS", "127.0.0.1:9092"), "comma-separated Kafka brokers (env SLUICE_KAFKA_BROKERS)")
	fs.DurationVar(&o.Duration, "duration", 0, "run time (0: until --records)")
	fs.Float64Var(&o.Rate, "rate", 0, "records per second (0: as fast as possible)")
	fs.Float64Var(&o.ByteRate, "byte-rate", 0, "value bytes per second (0: as fast as possible)")
	fs.StringVar(&o.Compression, "compression", "none", "producer batch compression: none, gzip, snappy, lz4, zstd")
	fs.IntVar(&o.Partitions, "partitions", 0, "create the topic with this many partitions if missing (0: leave it)")
	manifest := fs.String("manifest", "", "write the run's manifest (options and committed counts) to this file, for sluice verify --manifest")
	printTable := fs.String("print-table-config", "", "print the tables: entry for the schema into table NAME (e.g. public.events) and exit")
	quiet := fs.Bool("quiet", false, "no progress output")
	var sec securityFlags
	sec.register(fs)
	var reg registryFlags
	reg.register(fs)
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	secOpts, err := sec.opts()
	if err != nil {
		return err
	}
	if err := apply(); err != nil {
		return err
	}
	if *printTable != "" {
		if ro, ok := reg.options(); ok && registryFormat(o.Format) {
			fmt.Fprintf(stdout, "schema_registry:\n  urls: [%s]\n", strings.Join(ro.URLs, ", "))
		}
		fmt.Fprint(stdout, "tables:\n"+TableSpec{Workload: o.Workload, Schema: o.Schema, Format: o.Format, Table: *printTable, Topic: o.Topic}.YAML())
		return nil
	}
	if o.Records == 0 && o.Duration == 0 {
		return errors.New("cannot produce an endless stream; set --records N or --duration D")
	}
	if err := o.EnsureDefaults().Validate(); err != nil {
		return fmt.Errorf("%w (see sluice loadgen -h)", err)
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = nil
	}
	var addrs []string
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			addrs = append(addrs, b)
		}
	}
	if len(addrs) == 0 {
		return errors.New("cannot produce without brokers; set --brokers host:port[,host:port]")
	}
	if err := ping(ctx, addrs, secOpts); err != nil {
		return err
	}
	if registryFormat(o.Format) && (o.SchemaID == 0 || o.EvolveAt > 0 && o.EvolvedSchemaID == 0) {
		ro, ok := reg.options()
		if !ok {
			if o.SchemaID != 0 {
				return fmt.Errorf("cannot produce %s records with --evolve-at without a registry; pass --registry URL (the second schema version is registered under %s)", o.Format, Subject(o.Topic))
			}
			return fmt.Errorf("cannot produce %s records without a schema id; pass --registry URL (the reference schema is registered under %s) or --schema-id N", o.Format, Subject(o.Topic))
		}
		if err := RegisterSchema(ctx, &o, ro); err != nil {
			return err
		}
		if o.Workload == WorkloadCDC {
			fmt.Fprintf(stdout, "registered the Debezium Envelope under subject %s: id %d, and its Key under %s: id %d\n",
				Subject(o.Topic), o.SchemaID, KeySubject(o.Topic), o.KeySchemaID)
		} else {
			fmt.Fprintf(stdout, "registered the reference %s schema under subject %s: id %d\n", o.Format, Subject(o.Topic), o.SchemaID)
		}
		if o.EvolveAt > 0 {
			fmt.Fprintf(stdout, "registered its second version (field %s added) under subject %s: id %d, written from record %d on\n",
				EvolvedField, Subject(o.Topic), o.EvolvedSchemaID, o.EvolveAt)
		}
	}
	stats, err := Produce(ctx, addrs, o, progress, secOpts...)
	if *manifest != "" {
		if werr := WriteManifest(*manifest, NewManifest(o, stats, err)); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintf(stdout, "manifest written to %s\n", *manifest)
	}
	if err != nil {
		return fmt.Errorf("loadgen stopped: %w", err)
	}
	if err := failures(stats, o.Topic, stderr); err != nil {
		return err
	}
	if stats.Interrupted {
		fmt.Fprintf(stdout, "interrupted after %d records\n", stats.Records)
	}
	return nil
}

// VerifyMain is the `sluice verify` command: it checks the target and
// dead-letter tables against what loadgen sent (from --manifest, or from
// the same generator flags and --records) and returns an error when the
// report shows any anomaly.
func VerifyMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice verify", flag.ContinueOnError)
	var o Options
	apply := genFlags(fs, &o)
	// verify has no --duration: the stream it regenerates is --records long.
	fs.Lookup("records").Usage = "records sluice loadgen produced (without --manifest)"
	// The default is read after parsing, not shown in --help: the URL may
	// hold a password.
	pgURL := fs.String("postgres", "", "Postgres URL (default $SLUICE_POSTGRES_URL)")
	schemaName := fs.String("schema-name", "sluice", "Postgres schema of the dead_letters table")
	table := fs.String("table", "public.events", "target table")
	group := fs.String("group", "", "consumer group whose dead letters are checked (default: every group's for --table)")
	onConflict := fs.String("on-conflict", "ignore", "the table's policy: ignore (first occurrence wins), update (last wins) or any")
	guard := fs.String("guard", "offset", "the table's guard column under update: offset (the kafka.offset column) or version (the event's version field; needed with --keys null)")
	manifest := fs.String("manifest", "", "manifest written by sluice loadgen --manifest (replaces the generator flags)")
	examples := fs.Int("examples", 5, "examples printed per anomaly")
	staleToast := fs.Bool("allow-stale-toast", false, "cdc: where a row's last change sent notes as the TOAST placeholder, accept notes NULL or any earlier value of the row's notes, whatever the batches were (a value kept from before its batch, docs/change-streams.md); other columns are still checked and such rows are counted either way")
	var reg registryFlags
	reg.register(fs)
	if help, err := parseFlags(fs, args, stderr); help || err != nil {
		return err
	}
	if err := apply(); err != nil {
		return err
	}
	if *pgURL == "" {
		*pgURL = os.Getenv("SLUICE_POSTGRES_URL")
	}
	if *pgURL == "" {
		return errors.New("cannot verify without Postgres; set --postgres postgres://user@host:port/db or SLUICE_POSTGRES_URL")
	}
	vo := VerifyOptions{Table: *table, Schema: *schemaName, Group: *group, OnConflict: *onConflict, Guard: *guard, MaxExamples: *examples, AllowStaleToast: *staleToast}
	if *manifest != "" {
		var conflict string
		genNames := map[string]bool{}
		tmp := flag.NewFlagSet("", flag.ContinueOnError)
		genFlags(tmp, &Options{})
		tmp.VisitAll(func(f *flag.Flag) { genNames[f.Name] = true })
		fs.Visit(func(f *flag.Flag) {
			if genNames[f.Name] && conflict == "" {
				conflict = f.Name
			}
		})
		if conflict != "" {
			return fmt.Errorf("cannot combine --manifest with --%s: the manifest holds the generator options; drop one of them", conflict)
		}
		m, err := ReadManifest(*manifest)
		if err != nil {
			return err
		}
		if m.Error != "" {
			fmt.Fprintf(stderr, "verify: the loadgen run ended with an error (%s); records it could not account for may show as anomalies\n", m.Error)
		}
		vo.Gen, vo.Stats = m.Options, &m.Stats
	} else {
		if o.Records <= 0 {
			return errors.New("cannot verify without knowing what was sent; pass --manifest FILE or the loadgen flags with --records N")
		}
		vo.Gen = o
	}
	if vo.Gen.EnsureDefaults(); registryFormat(vo.Gen.Format) && (vo.Gen.SchemaID == 0 || vo.Gen.EvolveAt > 0 && vo.Gen.EvolvedSchemaID == 0) {
		ro, ok := reg.options()
		if !ok {
			return fmt.Errorf("cannot verify %s records without their schema ids; pass --manifest, --schema-id N (without --evolve-at) or --registry URL", vo.Gen.Format)
		}
		var err error
		if vo.Gen.SchemaID == 0 {
			if vo.Gen.SchemaID, err = LookupSchemaID(ctx, vo.Gen, ro); err != nil {
				return err
			}
		}
		if vo.Gen.EvolveAt > 0 && vo.Gen.EvolvedSchemaID == 0 {
			if vo.Gen.EvolvedSchemaID, err = LookupEvolvedSchemaID(ctx, vo.Gen, ro); err != nil {
				return err
			}
		}
		if vo.Gen.Workload == WorkloadCDC && vo.Gen.KeySchemaID == 0 {
			// The producer registered the Key too and framed the keys
			// with its id: verify matches dead letters by their keys.
			if vo.Gen.KeySchemaID, err = lookupKeySchemaID(ctx, vo.Gen.Topic, ro); err != nil {
				return err
			}
		}
	}
	rep, err := Verify(ctx, *pgURL, vo)
	if err != nil {
		return err
	}
	rep.WriteSummary(stdout)
	if !rep.OK() {
		return fmt.Errorf("verify found exactly-once violations in %s (see the report above)", *table)
	}
	return nil
}

// failures reports records the broker did not take: a run where none was
// written fails, naming the first error (and, for a topic that does not
// exist, how to create it); a run where some failed says so on w, since
// their outcome is unknown (verify accepts them present or absent).
func failures(stats Stats, topic string, w io.Writer) error {
	failed := stats.Failed.Total()
	if failed == 0 {
		return nil
	}
	if stats.Committed.Total()+stats.Aborted.Total() == 0 {
		hint := "; check the brokers and the topic"
		if errors.Is(stats.firstErr, kerr.UnknownTopicOrPartition) {
			hint = fmt.Sprintf("; topic %s does not exist and the brokers do not create it on write: create it, or pass --partitions N to create it", topic)
		}
		return fmt.Errorf("no record was written to topic %s: all %d failed (the first: %s)%s", topic, failed, strings.TrimSuffix(stats.FirstFailure, "."), hint)
	}
	fmt.Fprintf(w, "loadgen: %d record(s) failed, their outcome unknown (sluice verify accepts them present or absent); the first: %s\n", failed, stats.FirstFailure)
	return nil
}
