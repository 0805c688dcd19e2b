// Package ingest is the appliance: the Kafka consumer group, per-partition
// state, the exactly-once commit protocol, configuration, metrics wiring and
// the `run` command. It owns ordering and ownership; it knows nothing of SQL
// text (package pgcopy does) or of record formats (package codec does).
//
// Protocol (docs/design.md, "Exactly-once protocol"):
//
//   - On assignment each partition's offsets row in PostgreSQL is claimed:
//     owner_epoch+1 is this owner's fencing token and next_offset is where
//     fetching starts. Kafka's own committed offsets are never used.
//   - Each claimed partition goes to the worker (one PostgreSQL connection
//     each) owning the fewest partitions (leastLoadedWorker); a worker
//     decodes its partitions' records into one batch per table and hands
//     full or aged batches to its committer, which writes
//     each in one transaction that compare-and-sets the offsets first.
//     Batches of one worker commit strictly in order, so each batch's
//     expected offsets are the previous batch's new ones.
//   - A fenced batch drops the fenced partitions' work; revoke commits
//     in-flight work before returning; loss drops it. Bytes between fetch and
//     commit are bounded by batch.max_inflight_bytes: over it, fetching is
//     paused while the poll loop keeps serving the group.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/batching"
	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/registry"
)

// tableRT is a configured table at run time.
type tableRT struct {
	cfg     TableConfig
	pg      *pgcopy.Table
	cols    []codec.Column
	format  codec.Format
	opts    codec.Options
	nFields int // fields per tuple, including the seq field of keyed tables
	// keyFields are the key's field positions in a tuple (keyed tables):
	// the worker cuts each key out as it encodes the tuple (pgcopy.CutKey).
	keyFields []int
	// seen remembers the keys this process committed lately (keyed
	// tables), shared by every worker's writer: the direct path probes
	// only the keys it may hold (pgcopy.KeyFilter).
	seen *pgcopy.KeyFilter
	// part is set for a table with partition: (partitions.go).
	part *tablePartitions
	// ev holds the shape the workers encode with (evolve.go); it starts
	// as pg, cols, nFields and keyFields above.
	ev evolution
	// stuck is the table's streak of write failures that need an
	// operator (readiness.go).
	stuck stuckState
	// keys checks the record key schemas against the key (format
	// debezium with converter avro; nil otherwise): keychange.go.
	keys *keyCheck
}

// partKey names a partition.
type partKey struct {
	topic     string
	partition int32
}

// partState is one owned partition. Fields marked "worker" are touched only
// by the owning worker's goroutine.
type partState struct {
	topic     string
	partition int32
	table     *tableRT   // its batches carry the offsets
	fan       []*tableRT // with several tables or a when: condition, the tables chosen per record (fanout.go)
	worker    *worker
	epoch     int64

	next int64 // worker: next_offset expected in PostgreSQL when the next batch commits
	// keysOK are the key schemas found fitting each table the
	// partition's records go to (worker; keychange.go).
	keysOK []keyChecked

	dropped       atomic.Bool            // revoked, lost or fenced: drop its work
	halted        atomic.Bool            // offset out of range, data loss or no route: needs an operator
	haltWhy       atomic.Pointer[string] // why, when not the stored offset
	committed     atomic.Int64           // last committed next_offset (-1: none)
	haltReason    atomic.Pointer[string] // why it halted, for the status page
	highWatermark atomic.Int64
	// fetchedFrom is the offset of the first record fetched (-1: none
	// yet): where the partition's lag counts from until a batch commits.
	fetchedFrom atomic.Int64
	// stopWhy is set when the partition stopped writing because its
	// record keys name another primary key than its table's
	// (keychange.go): its chunks are dropped, its fetching paused.
	stopWhy atomic.Pointer[string]
}

// App is one running appliance instance.
type App struct {
	cfg    *Config
	log    *slog.Logger // scrubs secrets (security.go)
	red    *redactor
	m      *appMetrics
	budget *batching.Budget
	// filters is the memory the keyed tables' KeyFilters share
	// (batch.max_inflight_bytes over filterShare).
	filters *pgcopy.FilterBudget
	limits  batching.Limits

	routeMu  sync.Mutex            // guards resolved, tables and the routes' instances
	routes   []*route              // tables[] in order (routing.go)
	resolved map[string][]*tableRT // topics routed so far: their tables, the first carrying the offsets
	tables   []*tableRT            // configured tables and template instances
	topics   []string              // the topic names configured (patterns aside)
	workers  []*worker

	cl        *kgo.Client
	fetchSize fetchSizer // the fetch size asked for, kept by the poll loop

	ctlMu sync.Mutex
	ctl   *pgconn.PgConn

	mu    sync.Mutex
	parts map[partKey]*partState
	// resets are partitions whose commit a reset-offset fenced: the poll
	// loop claims them again (pickUpResets). Guarded by mu.
	resets []*partState
	// wakePoll ends the poll waiting for records, if any, so that a reset
	// is picked up before the next record arrives.
	wakePoll atomic.Pointer[context.CancelFunc]

	consuming   atomic.Bool
	metricsAddr atomic.Value // string

	reg     *registry.Client // nil without schema_registry
	regWait registryWait     // partitions waiting for the registry
	topicsW topicWatch       // subscribed topics that do not exist (monitor.go)
	periods monitorPeriods   // the monitor's timings
	status  statusState      // history and last error for the status page (status.go)

	// failed holds the first fatal error; failPoll stops the poll loop.
	failMu   sync.Mutex
	failed   error
	failPoll context.CancelFunc

	// hardCtx is canceled only when in-flight work must be abandoned.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	pm partitionMaint // partitions.go
}

// New builds an App from a validated configuration. The columns of a
// table that lists none are derived here from the Schema Registry and
// fitted to its target when that exists (deriveTables), which reads the
// registry and PostgreSQL.
func New(cfg *Config, log *slog.Logger) (*App, error) {
	if log == nil {
		log = slog.Default()
	}
	red := newRedactor(cfg)
	a := &App{
		cfg:      cfg,
		log:      slog.New(red.handler(log.Handler())),
		red:      red,
		budget:   batching.NewBudget(dataBudget(cfg)),
		filters:  pgcopy.NewFilterBudget(int(cfg.Batch.MaxInflightBytes / filterShare)),
		resolved: map[string][]*tableRT{},
		parts:    map[partKey]*partState{},
		limits: batching.Limits{
			MaxRows:  cfg.Batch.MaxRows,
			MaxBytes: int(cfg.Batch.MaxBytes),
			MaxAge:   cfg.Batch.MaxAge.D(),
		},
	}
	a.metricsAddr.Store("")
	a.periods = defaultPeriods()
	for _, w := range securityWarnings(cfg) {
		a.log.Warn("insecure setting: " + w)
	}
	a.m = newAppMetrics(func() float64 { return float64(a.budget.InUse()) },
		func() float64 { return float64(a.filters.Size()) })
	reg, err := newRegistry(cfg)
	if err != nil {
		return nil, err
	}
	a.reg = reg
	if err := deriveTables(context.Background(), cfg, a.reg, nil, a.log); err != nil {
		return nil, err
	}
	for i := range cfg.Tables {
		tc := cfg.Tables[i]
		r := &route{cfg: tc, index: i, names: map[string]bool{}, template: hasTemplate(tc.Name), byName: map[string]*tableRT{}}
		for _, tp := range tc.Topics {
			if isPattern(tp) {
				re, err := compilePattern(tp)
				if err != nil {
					return nil, cfgErr(fmt.Sprintf("tables[%d].topics", i), "%q is not a valid pattern: %v", tp, err)
				}
				r.patterns = append(r.patterns, re)
				continue
			}
			r.names[tp] = true
			a.topics = append(a.topics, tp)
		}
		sample := tc
		if r.template {
			sample.Name, _ = expandTable(tc.Name, "sample.topic.name")
		}
		filters := a.filters
		if r.template {
			filters = nil // the sample is never written
		}
		t, err := newTableRT(sample, filters)
		if err != nil {
			return nil, fmt.Errorf("tables[%d]: %w", i, err)
		}
		a.routes = append(a.routes, r)
		if r.template {
			continue // instances are made per topic (routing.go)
		}
		a.initPartitions(t)
		t.initShape()
		r.fixed = t
		a.tables = append(a.tables, t)
	}
	sort.Strings(a.topics)
	return a, nil
}

// dataShare is the part of batch.max_inflight_bytes that fetched records
// and their encoded rows may hold before fetching pauses. The rest is
// headroom for what is not counted: the fetch in progress, decoders, the Go
// runtime and garbage not yet collected (measured: a held byte costs about
// two bytes of RSS under the default GOGC; internal/chaos TestBacklogRSS).
const dataShare = 0.4

// filterShare: the KeyFilters of all keyed tables together hold at most
// batch.max_inflight_bytes over filterShare (16 MiB by default: two
// tables' filters at their largest, 8 MiB each). Like the rest of the
// headroom, not counted against the data budget.
const filterShare = 16

func dataBudget(cfg *Config) int64 {
	return int64(float64(cfg.Batch.MaxInflightBytes) * dataShare)
}

// MetricsAddr returns the address the metrics server listens on, once Run
// has started it.
func (a *App) MetricsAddr() string { return a.metricsAddr.Load().(string) }

// Ready reports whether the App consumes with no halted partition.
func (a *App) Ready() bool { return a.notReady() == "" }

func (a *App) notReady() string {
	if !a.consuming.Load() {
		return "not consuming"
	}
	if missing := a.missingTopics(); len(missing) > 0 {
		return missingTopicsMessage(missing)
	}
	if why := a.regWait.reason(); why != "" {
		return why
	}

	if why := a.stuckReason(); why != "" {
		return why
	}
	var halted, unrouted []string
	for _, st := range a.snapshotParts() {
		switch {
		case st.haltWhy.Load() != nil:
			unrouted = append(unrouted, fmt.Sprintf("%s/%d: %s", st.topic, st.partition, *st.haltWhy.Load()))
		case st.halted.Load():
			halted = append(halted, fmt.Sprintf("%s/%d", st.topic, st.partition))
		}
	}
	if len(unrouted) > 0 {
		return "unrouted partitions: " + strings.Join(unrouted, "; ")
	}
	if len(halted) > 0 {
		return "halted partitions: " + strings.Join(halted, ", ") + " (see logs; reset with `sluice reset-offset`)"
	}
	return ""
}

func (a *App) snapshotParts() []*partState {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*partState, 0, len(a.parts))
	for _, st := range a.parts {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].partition < out[j].partition
	})
	return out
}

// Migrate connects to PostgreSQL and creates the offsets, dead-letter and
// (create: true) target tables.
func Migrate(ctx context.Context, cfg *Config) error {
	_, err := migrate(ctx, cfg)
	return err
}

// migrate is Migrate; it returns what the partition maintenance round did,
// a line per change (sluice migrate prints them).
func migrate(ctx context.Context, cfg *Config) (done []string, err error) {
	defer func() { err = newRedactor(cfg).error(err) }()
	conn, err := connectPG(ctx, cfg.Postgres.URL, 30*time.Second, slog.Default())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if reg, err := newRegistry(cfg); err != nil {
		return nil, err
	} else if err := deriveTables(ctx, cfg, reg, conn, slog.Default()); err != nil {
		return nil, err
	}
	var tables []*pgcopy.Table
	for i := range cfg.Tables {
		if hasTemplate(cfg.Tables[i].Name) {
			continue // a table per topic, made when an instance first routes it
		}
		t, err := cfg.Tables[i].pgTable()
		if err != nil {
			return nil, err
		}
		if err := addDerived(ctx, conn, &cfg.Tables[i], t, slog.Default()); err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	if err := pgcopy.Migrate(ctx, conn, cfg.Postgres.Schema, tables); err != nil {
		return nil, fmt.Errorf("cannot migrate: %w", err)
	}
	for _, t := range tables {
		if t.Partition == nil {
			continue
		}
		// The first partitions, so that a table is ready before any
		// instance runs.
		m, err := pgcopy.MaintainPartitions(ctx, conn, t, time.Now(), partitionLockTimeout)
		if err == nil && len(m.Failed) > 0 {
			err = m.Failed[0]
		}
		if err != nil {
			return nil, fmt.Errorf("cannot migrate: %w", err)
		}
		done = append(done, maintenanceDone(t, m)...)
	}
	return done, nil
}

// maintenanceDone describes what maintenance round m of t changed.
func maintenanceDone(t *pgcopy.Table, m pgcopy.Maintenance) []string {
	s, name := splitName(t.Name)
	def := s + "." + name + "_default"
	var out []string
	for _, n := range m.Created {
		out = append(out, "created partition "+s+"."+n)
	}
	for _, n := range m.Dropped {
		out = append(out, "dropped partition "+s+"."+n+" (older than the retention)")
	}
	for _, n := range m.Detached {
		out = append(out, "detached partition "+s+"."+n+" (older than the retention)")
	}
	if m.Moved > 0 {
		out = append(out, fmt.Sprintf("moved %d row(s) of %s into the partitions made for them", m.Moved, def))
	}
	if m.Expired > 0 {
		out = append(out, fmt.Sprintf("deleted %d row(s) of %s older than the retention", m.Expired, def))
	}
	if m.DefaultRows > 0 {
		out = append(out, fmt.Sprintf("left %d row(s) in %s: no partition can be made for them", m.DefaultRows, def))
	}
	return out
}

// connectPG connects, retrying transient failures for up to patience.
// Authentication and TLS failures are returned at once: retrying them only
// hides a configuration mistake. The first retry is logged on log (when
// not nil), so that a server that is down or a wrong port is named at once
// rather than after patience of silence.
func connectPG(ctx context.Context, url string, patience time.Duration, log *slog.Logger) (*pgconn.PgConn, error) {
	deadline := time.Now().Add(patience)
	backoff := 100 * time.Millisecond
	for retry := false; ; retry = true {
		conn, err := pgconn.Connect(ctx, url)
		if err == nil {
			return conn, nil
		}
		if !pgcopy.IsRetryable(err) || time.Now().After(deadline) || isAuthError(err) {
			return nil, errors.New(pgConnectError(err, url))
		}
		if !retry && log != nil {
			log.Warn("cannot connect to PostgreSQL yet; retrying", "for", patience, "error", pgConnectError(err, url))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", pgConnectError(err, url), ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// pgConnectError words a failed connection. A server's refusal (wrong or
// missing password, no pg_hba.conf rule, no such database) is reported
// alone: with sslmode=prefer pgconn also lists the TLS attempt the server
// refused first, which only hides the cause.
func pgConnectError(err error, url string) string {
	const prefix = "cannot connect to PostgreSQL (postgres.url)"
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !(strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000") {
		return withHint(prefix+": "+redactErr(err, url), pgHint(err))
	}
	who, noPassword := "", false
	if cfg, perr := pgconn.ParseConfig(url); perr == nil {
		who = fmt.Sprintf(" as user %s at %s:%d", cfg.User, cfg.Host, cfg.Port)
		noPassword = cfg.Password == ""
	}
	msg := fmt.Sprintf("%s%s: %s: %s (SQLSTATE %s)", prefix, who, pe.Severity, pe.Message, pe.Code)
	hint := pgHint(err)
	if pe.Code == "28P01" && noPassword {
		hint = "no password was given; set it with postgres.password_file, SLUICE_POSTGRES_PASSWORD_FILE, SLUICE_POSTGRES_PASSWORD or in postgres.url"
	}
	return withHint(msg, hint)
}

// withCtl runs f on the control connection (claims, table preparation,
// partition maintenance, evolution), connecting it when needed and
// dropping it after an error a reconnect may cure.
func (a *App) withCtl(ctx context.Context, f func(*pgconn.PgConn) error) error {
	a.ctlMu.Lock()
	defer a.ctlMu.Unlock()
	if a.ctl == nil || a.ctl.IsClosed() {
		conn, err := connectPG(ctx, a.cfg.Postgres.URL, 0, nil)
		if err != nil {
			return err
		}
		a.ctl = conn
	}
	err := f(a.ctl)
	if err != nil && pgcopy.IsRetryable(err) {
		a.ctl.Close(context.Background())
		a.ctl = nil
	}
	return err
}

func isAuthError(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "28") || pe.Code == "3D000"
	}
	s := err.Error()
	return strings.Contains(s, "tls") || strings.Contains(s, "certificate") || strings.Contains(s, "x509")
}

// Run runs the appliance until ctx is canceled, then shuts down gracefully:
// polling stops, in-flight batches commit, the group is left. It returns nil
// after a graceful shutdown.
func (a *App) Run(ctx context.Context) (err error) {
	defer func() { err = a.red.error(err) }()
	a.hardCtx, a.hardCancel = context.WithCancel(context.Background())
	defer a.hardCancel()

	ctl, err := connectPG(ctx, a.cfg.Postgres.URL, 30*time.Second, a.log)
	if err != nil {
		return err
	}
	a.ctl = ctl
	defer func() {
		a.ctlMu.Lock()
		if a.ctl != nil {
			a.ctl.Close(context.Background())
		}
		a.ctlMu.Unlock()
	}()
	var pts []*pgcopy.Table
	for _, t := range a.tableList() {
		if err := addDerived(ctx, ctl, &t.cfg, t.pg, a.log); err != nil {
			return err
		}
		pts = append(pts, t.pg)
	}
	if err := pgcopy.Migrate(ctx, ctl, a.cfg.Postgres.Schema, pts); err != nil {
		return fmt.Errorf("cannot prepare tables: %w", err)
	}
	// The targets' length, precision and scale are known now: the
	// decoders (built by the workers from t.cols) dead-letter values
	// PostgreSQL would round or trim.
	for _, t := range a.tableList() {
		t.applyLimits()
	}
	if err := a.loadEvolved(ctx); err != nil {
		return fmt.Errorf("cannot prepare tables: %w", err)
	}
	stopPartitions, err := a.startPartitions(ctx)
	if err != nil {
		return err
	}
	defer stopPartitions()

	if a.cfg.Metrics.Listen != "" {
		addr, stop, err := a.serveMetrics(a.cfg.Metrics.Listen)
		if err != nil {
			return err
		}
		defer stop()
		a.metricsAddr.Store(addr)
		a.log.Info("serving metrics", "addr", addr)
	}

	if a.cfg.Batch.HugePages {
		go a.markHugePages(ctx)
	}
	for i := 0; i < a.cfg.Postgres.MaxConns; i++ {
		a.workers = append(a.workers, newWorker(a, i))
	}
	var wg sync.WaitGroup
	for _, w := range a.workers {
		wg.Add(2)
		go func() { defer wg.Done(); w.run() }()
		go func() { defer wg.Done(); w.commitLoop() }()
	}
	defer func() {
		for _, w := range a.workers {
			close(w.in)
		}
		wg.Wait()
		for _, w := range a.workers {
			w.writer.Close(context.Background())
		}
	}()

	opts, err := a.clientOptions()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("cannot create the Kafka client (kafka.*): %w", err)
	}
	a.cl = cl
	if err := a.checkKafka(ctx); err != nil {
		cl.Close()
		return err
	}
	missing, err := a.checkTopics(ctx)
	switch {
	case err != nil:
		a.log.Warn("cannot list the subscribed topics; the monitor retries", "err", err)
	case len(missing) > 0 && a.cfg.Kafka.MissingTopics == "fail":
		cl.Close()
		return fmt.Errorf("cannot start: subscribed topic(s) %s do not exist (kafka.missing_topics: fail); create them, correct tables[].topics, or set kafka.missing_topics: wait",
			strings.Join(missing, ", "))
	default:
		a.updateMissing(missing)
	}
	a.log.Info("consuming", "topics", a.subscriptions(), "group", a.cfg.Kafka.Group, "workers", len(a.workers))
	a.consuming.Store(true)
	pollCtx, cancelPoll := context.WithCancel(ctx)
	a.failMu.Lock()
	a.failPoll = cancelPoll
	a.failMu.Unlock()
	monitorDone := make(chan struct{})
	go func() { defer close(monitorDone); a.monitor(pollCtx) }()
	// The first sample is taken here, before any record is polled, so the
	// history's rates account for every row written.
	a.sample(time.Now())
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); a.sampler(pollCtx.Done()) }()
	retainDone := make(chan struct{})
	go func() { defer close(retainDone); a.retain(pollCtx) }()
	pollErr := a.pollLoop(pollCtx)
	cancelPoll()
	<-monitorDone
	<-samplerDone
	<-retainDone
	cancelPoll()
	a.consuming.Store(false)
	if pollErr == nil {
		pollErr = a.failure()
	}

	// Leaving the group revokes every partition; onRevoked commits what is
	// in flight before the leave completes.
	a.log.Info("shutting down: committing in-flight batches and leaving the group")
	closed := make(chan struct{})
	go func() { cl.CloseAllowingRebalance(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(a.cfg.Kafka.RebalanceTimeout.D() + 5*time.Second):
		a.log.Error("leaving the group timed out; abandoning in-flight batches (they will be re-read: nothing is lost)")
		a.hardCancel()
		<-closed
	}
	if pollErr != nil {
		return pollErr
	}
	a.log.Info("stopped")
	return nil
}

// fail stops the App with err: the poll loop ends, in-flight work is
// committed or dropped as at any shutdown, and Run returns err. For states
// only a restart from the stored offsets can repair.
func (a *App) fail(err error) {
	a.failMu.Lock()
	defer a.failMu.Unlock()
	if a.failed != nil {
		return
	}
	a.failed = err
	a.noteError("stop", err)
	a.log.Error("stopping", "err", err)
	if a.failPoll != nil {
		a.failPoll()
	}
}

func (a *App) failure() error {
	a.failMu.Lock()
	defer a.failMu.Unlock()
	return a.failed
}

// checkKafka fails fast on an unreachable or misconfigured cluster instead
// of retrying forever behind the consumer group.
func (a *App) checkKafka(ctx context.Context) error {
	// 15s: kgo tries the seed twice with a 10s dial timeout; a TLS client
	// on a plaintext listener waits out the handshake.
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := a.cl.Ping(pctx)
	if err != nil {
		return fmt.Errorf("cannot connect to Kafka at %v (kafka.*): %w%s", a.cfg.Kafka.Brokers, err, hintSuffix(kafkaHint(err, &a.cfg.Kafka)))
	}
	return nil
}
