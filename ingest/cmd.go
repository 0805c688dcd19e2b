package ingest

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	pgcopy "github.com/sluice-dev/sluice/copy"
)

// ErrUsage is returned after a command printed a usage mistake.
var ErrUsage = errors.New("usage error")

// commonFlags are the flags shared by the commands that read a config.
type commonFlags struct {
	config, brokers, postgres, group, metrics, logLevel string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "YAML config file (default $SLUICE_CONFIG)")
	fs.StringVar(&c.brokers, "brokers", "", "override kafka.brokers (comma-separated host:port)")
	fs.StringVar(&c.postgres, "postgres", "", "override postgres.url")
	fs.StringVar(&c.group, "group", "", "override kafka.group")
	fs.StringVar(&c.metrics, "metrics-listen", "", "override metrics.listen (host:port)")
	fs.StringVar(&c.logLevel, "log-level", "", "override log.level (debug|info|warn|error)")
}

// load reads the config: file, then SLUICE_* environment, then flags.
func (c *commonFlags) load() (*Config, error) {
	path := c.config
	if path == "" {
		path = os.Getenv("SLUICE_CONFIG")
	}
	if path == "" {
		return nil, errNoConfig
	}
	env := func(k string) string {
		switch {
		case k == "SLUICE_KAFKA_BROKERS" && c.brokers != "":
			return c.brokers
		case k == "SLUICE_POSTGRES_URL" && c.postgres != "":
			return c.postgres
		case k == "SLUICE_KAFKA_GROUP" && c.group != "":
			return c.group
		case k == "SLUICE_METRICS_LISTEN" && c.metrics != "":
			return c.metrics
		case k == "SLUICE_LOG_LEVEL" && c.logLevel != "":
			return c.logLevel
		}
		return os.Getenv(k)
	}
	return LoadFile(path, env)
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	return nil
}

// NewLogger returns the logger described by cfg, writing to w.
func NewLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level))
	o := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// RunMain is `sluice run`.
func RunMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs)
	pprof := fs.Bool("pprof", false, "serve /debug/pprof/ on the metrics listener, which must be loopback (metrics.pprof)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if *pprof {
		cfg.Metrics.Pprof = true
		if err := cfg.Metrics.checkPprof(); err != nil {
			return err
		}
	}
	log := NewLogger(cfg.Log, stderr)
	app, err := New(cfg, log)
	if err != nil {
		return err
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit(cfg))
	}
	return app.Run(ctx)
}

// MemoryLimit is the Go soft memory limit `sluice run` sets from
// batch.max_inflight_bytes when GOMEMLIMIT is not set. The budget bounds
// the process: the garbage collector works harder as the heap nears the
// limit instead of letting the heap grow to twice what is live (GOGC). The
// runtime's limit leaves out the mapped binary and C memory, hence the
// margin, measured in internal/chaos TestBacklogRSS with the defaults:
// with 48MiB the drain peaked at 211-268 MiB in five runs, with 80MiB at
// 219-225 MiB in three, draining as fast (72-88 MiB/s of values against
// 57-76). The closer the heap sits to the limit, the more CPU the
// collector takes (docs/operations.md, "Memory").
func MemoryLimit(cfg *Config) int64 {
	b := int64(cfg.Batch.MaxInflightBytes)
	return max(b-80<<20, b*5/8)
}

// MigrateMain is `sluice migrate`.
func MigrateMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs)
	check := fs.Bool("check", false, "print what migrate would create or change (tables, partitions) and what it would refuse, changing nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if *check {
		return CheckMigration(ctx, cfg, stdout)
	}
	done, err := migrate(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrated: schema %s (offsets, dead_letters) and %d table(s)\n", cfg.Postgres.Schema, len(cfg.Tables))
	for _, l := range done {
		fmt.Fprintln(stdout, "  "+l)
	}
	return nil
}

// ResetOffsetMain is `sluice reset-offset`: the operator's way out of a
// halted partition. It bumps the owner epoch, so a running owner is fenced;
// run it with the group's instances stopped and restart them afterwards.
//
// A mistyped topic or partition would otherwise store a row nothing reads
// and report success while the partition meant stays halted, and an offset
// outside the broker's log halts the partition again at once: it refuses a
// topic no table reads, a partition the broker does not have and an offset
// outside [log start, log end]. It prints and logs what was stored before,
// so that the change can be undone.
func ResetOffsetMain(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("sluice reset-offset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf commonFlags
	cf.register(fs)
	topic := fs.String("topic", "", "topic of the partition (required)")
	partition := fs.Int("partition", -1, "partition number (required)")
	to := fs.String("to", "", "new next offset: a number within the partition's log, earliest or latest (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *topic == "" || *partition < 0 || *to == "" {
		fmt.Fprintln(stderr, "sluice reset-offset: --topic, --partition and --to are required")
		return ErrUsage
	}
	next, numErr := strconv.ParseInt(*to, 10, 64)
	switch {
	case numErr == nil && next < 0:
		return fmt.Errorf("cannot reset to --to %d: use an offset >= 0, earliest or latest", next)
	case numErr != nil && *to != "earliest" && *to != "latest":
		return fmt.Errorf("cannot parse --to %q; use a number, earliest or latest", *to)
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	defer func() { err = newRedactor(cfg).error(err) }()
	if !readsTopic(cfg, *topic) {
		return fmt.Errorf("cannot reset %s/%d: no table reads topic %s (tables[].topics); check --topic and --config", *topic, *partition, *topic)
	}
	first, end, err := logBounds(ctx, cfg, *topic, int32(*partition))
	if err != nil {
		return err
	}
	switch {
	case *to == "earliest":
		next = first
	case *to == "latest":
		next = end
	case next < first || next > end:
		return fmt.Errorf("cannot reset %s/%d to %d: the broker's log holds offsets %d to %d (log start to log end), and a partition outside it halts again; use an offset in that range, earliest or latest",
			*topic, *partition, next, first, end)
	}
	conn, err := connectPG(ctx, cfg.Postgres.URL, 0, nil)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	old, epoch, err := pgcopy.ResetOffset(ctx, conn, cfg.Postgres.Schema, cfg.Kafka.Group, *topic, int32(*partition), next)
	if err != nil {
		return fmt.Errorf("cannot reset %s/%d: %w", *topic, *partition, err)
	}
	was := "nothing was stored"
	if old.Epoch > 0 {
		was = fmt.Sprintf("was %d under owner epoch %d", old.NextOffset, old.Epoch)
	}
	fmt.Fprintf(stdout, "group %s: %s/%d next offset set to %d, owner epoch %d (%s)\n", cfg.Kafka.Group, *topic, *partition, next, epoch, was)
	NewLogger(cfg.Log, stderr).Info("offset reset", "group", cfg.Kafka.Group, "topic", *topic, "partition", *partition,
		"next_offset", next, "epoch", epoch, "old_next_offset", old.NextOffset, "old_epoch", old.Epoch)
	return nil
}

// logBounds returns the log start and log end of topic/partition, asking
// the broker's metadata first so that a topic or partition the cluster does
// not have is named as such.
func logBounds(ctx context.Context, cfg *Config, topic string, partition int32) (start, end int64, err error) {
	sec, err := KafkaSecurityOpts(cfg)
	if err != nil {
		return 0, 0, err
	}
	cl, err := kgo.NewClient(append(sec, kgo.SeedBrokers(cfg.Kafka.Brokers...))...)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot create the Kafka client (kafka.*): %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read the metadata of topic %s: %w%s", topic, err, hintSuffix(kafkaHint(err, &cfg.Kafka)))
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		why := "not in its metadata"
		if td.Err != nil {
			why = td.Err.Error()
		}
		return 0, 0, fmt.Errorf("cannot reset %s/%d: the broker has no topic %s (%s); check --topic", topic, partition, topic, why)
	}
	if _, ok := td.Partitions[partition]; !ok {
		return 0, 0, fmt.Errorf("cannot reset %s/%d: topic %s has %d partition(s), numbered from 0; check --partition", topic, partition, topic, len(td.Partitions))
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot list the earliest offsets of %s: %w%s", topic, err, hintSuffix(kafkaHint(err, &cfg.Kafka)))
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot list the latest offsets of %s: %w%s", topic, err, hintSuffix(kafkaHint(err, &cfg.Kafka)))
	}
	s, _ := starts.Lookup(topic, partition)
	e, _ := ends.Lookup(topic, partition)
	if err := cmp.Or(s.Err, e.Err); err != nil {
		return 0, 0, fmt.Errorf("cannot list the offsets of %s/%d: %w", topic, partition, err)
	}
	return s.Offset, e.Offset, nil
}

// HealthcheckMain is `sluice healthcheck`: one GET of /healthz (or --path)
// on the metrics listener, for container health checks in images without
// curl. Exit 0 on HTTP 200, 1 otherwise, 2 on a usage error.
func HealthcheckMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "host:port of the metrics listener (default $SLUICE_METRICS_LISTEN, then metrics.listen from $SLUICE_CONFIG, then 127.0.0.1:9187)")
	path := fs.String("path", "/healthz", "path to probe: /healthz or /readyz")
	timeout := fs.Duration("timeout", 2*time.Second, "request timeout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	a := *addr
	if a == "" {
		a = os.Getenv("SLUICE_METRICS_LISTEN")
	}
	if a == "" {
		if p := os.Getenv("SLUICE_CONFIG"); p != "" {
			if b, err := os.ReadFile(p); err == nil {
				var c struct {
					Metrics struct {
						Listen string `yaml:"listen"`
					} `yaml:"metrics"`
				}
				if yaml.Unmarshal(b, &c) == nil {
					a = c.Metrics.Listen
				}
			}
		}
	}
	if a == "" {
		a = "127.0.0.1:9187"
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		fmt.Fprintf(stderr, "sluice healthcheck: cannot parse address %q: %v\n", a, err)
		return ErrUsage
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + *path
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{Proxy: nil}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		first, _, _ := strings.Cut(string(body), "\n")
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, first)
	}
	return nil
}
