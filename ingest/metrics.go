package ingest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/internal/buildinfo"
)

// Metric names are a contract (docs/design.md, "Metrics"); dashboards and alerts
// depend on them.

var (
	sizeBuckets    = []float64{1, 10, 100, 1000, 5000, 10000, 25000, 50000, 100000, 250000}
	latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// appMetrics is one App's metric set. Each App has its own set so several
// can run in one process (tests, `sluice bench`).
type appMetrics struct {
	set *metrics.Set

	recordsConsumed  *metrics.Counter
	bytesConsumed    *metrics.Counter
	batchesCommitted *metrics.Counter
	fenced           *metrics.Counter
	rebalances       *metrics.Counter
	batchRows        *metrics.PrometheusHistogram
	copyDur          *metrics.PrometheusHistogram
	mergeDur         *metrics.PrometheusHistogram
	commitDur        *metrics.PrometheusHistogram
	endToEnd         *metrics.PrometheusHistogram
	retries          *metrics.Counter
	fetchPauses      *metrics.Counter
	fetched          fetchCounters
	probedKeys       *metrics.Counter
	chunkRetries     *metrics.Counter
	registryErrors   *metrics.Counter
	e2eHist          latencyHist

	mu     sync.Mutex
	tables map[string]*tableMetrics
	dls    map[[2]string]*metrics.Counter
}

// tableMetrics are a target table's row counters. Every tuple handed to
// the target lands (written), is a later duplicate of a key earlier in its
// batch (deduplicated), or is kept out by a stored row that wins (ignored:
// the key exists under on_conflict ignore, or the stored row is newer under
// update).
type tableMetrics struct {
	written, deduplicated, ignored, deleted *metrics.Counter
	batchLat                                latencyHist // seconds to write a batch, for the status page

	set  *metrics.Set
	name string
	mu   sync.Mutex
	skip map[codec.Op]*metrics.Counter
}

// skipped counts change events that make no row (Debezium messages, the
// tombstones after deletes, truncates without truncate: true).
func (tm *tableMetrics) skipped(op codec.Op) *metrics.Counter {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	c := tm.skip[op]
	if c == nil {
		c = tm.set.NewCounter(fmt.Sprintf("sluice_change_events_skipped_total{table=%q,op=%q}", tm.name, op.String()))
		tm.skip[op] = c
	}
	return c
}

// newAppMetrics returns the process's metrics; inflight and filters give
// the gauges sluice_inflight_bytes and sluice_key_filter_bytes.
func newAppMetrics(inflight, filters func() float64) *appMetrics {
	// Every family gets # HELP and # TYPE lines (the setting is global to
	// the library; Sluice's help texts are filled in by writeWithHelp).
	metrics.ExposeMetadata(true)
	s := metrics.NewSet()
	m := &appMetrics{
		set:              s,
		recordsConsumed:  s.NewCounter("sluice_records_consumed_total"),
		bytesConsumed:    s.NewCounter("sluice_bytes_consumed_total"),
		batchesCommitted: s.NewCounter("sluice_batches_committed_total"),
		fenced:           s.NewCounter("sluice_fenced_total"),
		rebalances:       s.NewCounter("sluice_rebalances_total"),
		retries:          s.NewCounter("sluice_batch_retries_total"),
		fetchPauses:      s.NewCounter("sluice_fetch_pauses_total"),
		fetched: fetchCounters{
			records: s.NewCounter("sluice_fetch_records_read_total"),
			wire:    s.NewCounter("sluice_fetch_wire_bytes_total"),
			decoded: s.NewCounter("sluice_fetch_decoded_bytes_total"),
		},
		probedKeys:     s.NewCounter("sluice_probed_keys_total"),
		chunkRetries:   s.NewCounter("sluice_chunk_retries_total"),
		registryErrors: s.NewCounter("sluice_schema_registry_errors_total"),
		batchRows:      s.NewPrometheusHistogramExt("sluice_batch_rows", sizeBuckets),
		copyDur:        s.NewPrometheusHistogramExt("sluice_copy_duration_seconds", latencyBuckets),
		mergeDur:       s.NewPrometheusHistogramExt("sluice_merge_duration_seconds", latencyBuckets),
		commitDur:      s.NewPrometheusHistogramExt("sluice_commit_duration_seconds", latencyBuckets),
		endToEnd:       s.NewPrometheusHistogramExt("sluice_end_to_end_seconds", latencyBuckets),
		tables:         map[string]*tableMetrics{},
		dls:            map[[2]string]*metrics.Counter{},
	}
	s.NewGauge("sluice_inflight_bytes", inflight)
	s.NewGauge("sluice_key_filter_bytes", filters)
	s.NewGauge(fmt.Sprintf(`sluice_build_info{version=%q,revision=%q,go_version=%q}`,
		buildinfo.Version(), buildinfo.Revision(), buildinfo.GoVersion()), func() float64 { return 1 })
	return m
}

func (m *appMetrics) table(name string) *tableMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	tm := m.tables[name]
	if tm == nil {
		tm = &tableMetrics{
			written:      m.set.NewCounter(fmt.Sprintf("sluice_rows_written_total{table=%q}", name)),
			deduplicated: m.set.NewCounter(fmt.Sprintf("sluice_rows_deduplicated_total{table=%q}", name)),
			ignored:      m.set.NewCounter(fmt.Sprintf("sluice_rows_ignored_total{table=%q}", name)),
			deleted:      m.set.NewCounter(fmt.Sprintf("sluice_rows_deleted_total{table=%q}", name)),
			set:          m.set,
			name:         name,
			skip:         map[codec.Op]*metrics.Counter{},
		}
		m.tables[name] = tm
	}
	return tm
}

// committed counts a committed batch's rows.
func (tm *tableMetrics) committed(res pgcopy.Result) {
	if res.Affected < 0 {
		// The commit's answer was lost and the offsets showed it went
		// through: how many rows were kept out is unknown.
		tm.written.Add(res.Rows)
		return
	}
	tm.written.Add(int(res.Affected))
	if res.Deleted > 0 {
		tm.deleted.Add(int(res.Deleted))
	}
	if res.Distinct >= 0 {
		tm.deduplicated.Add(res.Rows - res.Distinct)
		if kept := res.Distinct - int(res.Affected) - int(max(res.Deleted, 0)); kept > 0 {
			tm.ignored.Add(kept)
		}
	}
}

func (m *appMetrics) deadLetters(table, reason string) *metrics.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{table, reason}
	c := m.dls[k]
	if c == nil {
		c = m.set.NewCounter(fmt.Sprintf("sluice_dead_letters_total{table=%q,reason=%q}", table, reason))
		m.dls[k] = c
	}
	return c
}

// writePartitionMetrics writes the per-partition and per-table gauges,
// which come and go with assignments and so are rendered from the live
// state.
func (a *App) writePartitionMetrics(w io.Writer) {
	parts := a.snapshotParts()
	tableLag := map[string]int64{}
	for _, t := range a.tableList() {
		tableLag[t.cfg.Name] = 0
	}
	writeFamily(w, "sluice_consumer_lag", "gauge")
	addTableLags(tableLag, parts)
	for _, st := range parts {
		fmt.Fprintf(w, "sluice_consumer_lag{topic=%q,partition=\"%d\"} %d\n", st.topic, st.partition, st.lag())
	}
	writeFamily(w, "sluice_partition_halted", "gauge")
	for _, st := range parts {
		halted := 0
		if st.halted.Load() {
			halted = 1
		}
		fmt.Fprintf(w, "sluice_partition_halted{topic=%q,partition=\"%d\"} %d\n", st.topic, st.partition, halted)
	}
	writeFamily(w, "sluice_table_lag", "gauge")
	for _, t := range a.tableList() {
		fmt.Fprintf(w, "sluice_table_lag{table=%q} %d\n", t.cfg.Name, tableLag[t.cfg.Name])
	}
	writeFamily(w, "sluice_stuck", "gauge")
	for _, t := range a.tableList() {
		stuck := 0
		if a.stuckStatus(t) != nil {
			stuck = 1
		}
		fmt.Fprintf(w, "sluice_stuck{table=%q} %d\n", t.cfg.Name, stuck)
	}
	writeFamily(w, "sluice_partitions_assigned", "gauge")
	fmt.Fprintf(w, "sluice_partitions_assigned %d\n", len(parts))
	writeFamily(w, "sluice_missing_topics", "gauge")
	fmt.Fprintf(w, "sluice_missing_topics %d\n", len(a.missingTopics()))
}

// tableName is the name of the table st's batches carry the offsets of;
// "" for an unrouted partition, which has none (adjustOffsets).
func (st *partState) tableName() string {
	if st.table == nil {
		return ""
	}
	return st.table.cfg.Name
}

// addTableLags adds the lag of each of parts to lag under its table's
// name. An unrouted partition (adjustOffsets) has no table and is left out.
func addTableLags(lag map[string]int64, parts []*partState) {
	for _, st := range parts {
		if name := st.tableName(); name != "" {
			lag[name] += st.lag()
		}
	}
}

// lag is the partition's high watermark minus its committed offset. Until
// a batch commits it counts from the first record fetched (a partition
// that halts or waits before its first commit lags by all it fetched), or
// from 0 before any record; 0 before the high watermark is known.
func (st *partState) lag() int64 {
	c := st.committed.Load()
	if c < 0 {
		c = max(st.fetchedFrom.Load(), 0)
	}
	return max(st.highWatermark.Load()-c, 0)
}

// Handler serves the status page (/ and /status.json, status.go),
// /metrics, /healthz and /readyz, and /debug/pprof/ with metrics.pprof.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", a.serveStatusPage)
	mux.HandleFunc("/status.json", a.serveStatusJSON)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		var b bytes.Buffer
		a.m.set.WritePrometheus(&b)
		a.writePartitionMetrics(&b)
		metrics.WriteProcessMetrics(&b)
		writeWithHelp(w, b.Bytes())
	})
	if a.cfg.Metrics.Pprof {
		// Profiles, for diagnosing CPU and memory in production; only on
		// a loopback listener (checkPprof, docs/security.md).
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := a.notReady(); why != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, why+"\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

// serveMetrics listens on addr; it returns the listener's address (useful
// with port 0) and a function that stops the server.
func (a *App) serveMetrics(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on metrics.listen %s: %w; pick a free host:port or empty to disable", addr, err)
	}
	if a.cfg.Metrics.Pprof {
		// checkPprof read the configured host; this is what it resolved to.
		if ta, ok := ln.Addr().(*net.TCPAddr); !ok || !ta.IP.IsLoopback() {
			ln.Close()
			return "", nil, fmt.Errorf("cannot serve metrics.pprof on %s (metrics.listen %s): it is not a loopback address; listen on 127.0.0.1 or turn metrics.pprof off", ln.Addr(), addr)
		}
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// checkPprof refuses metrics.pprof unless metrics.listen is a loopback
// address: profiles and goroutine dumps show memory contents (record
// values, connection strings), and the CPU profile and trace endpoints
// cost CPU on demand, so they must not be reachable from the network. An
// operator reaches a loopback listener through ssh -L or kubectl
// port-forward.
func (m *MetricsConfig) checkPprof() error {
	if !m.Pprof {
		return nil
	}
	if m.Listen == "" {
		return cfgErr("metrics.pprof", "is on but metrics.listen is empty; set metrics.listen to a loopback host:port such as 127.0.0.1:9187")
	}
	if !isLoopbackListen(m.Listen) {
		return cfgErr("metrics.pprof", "needs a loopback metrics.listen, not %q (profiles expose memory contents); listen on 127.0.0.1, [::1] or localhost and reach it with ssh -L or kubectl port-forward, or turn metrics.pprof off", m.Listen)
	}
	return nil
}

// isLoopbackListen reports whether host:port names only the loopback
// interface. An empty host (all interfaces) is not loopback.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Stats is a snapshot of an App's counters, for the demo, benchmarks and
// tests.
type Stats struct {
	RecordsConsumed  uint64
	RecordsFetched   uint64 // records the client read, some of them more than once (fetchCounters)
	FetchedWire      uint64 // bytes of the batches read, as fetched
	FetchedDecoded   uint64 // the same batches' bytes decompressed
	BytesConsumed    uint64
	RowsWritten      uint64 // rows that landed in the targets
	DeadLetters      uint64
	BatchesCommitted uint64
	Fenced           uint64
	Rebalances       uint64
	InflightBytes    int64
	Partitions       int
	Lag              int64 // sum over owned partitions of high watermark minus committed offset
}

// Stats returns the App's counters now.
func (a *App) Stats() Stats {
	s := Stats{
		RecordsConsumed:  a.m.recordsConsumed.Get(),
		RecordsFetched:   a.m.fetched.records.Get(),
		FetchedWire:      a.m.fetched.wire.Get(),
		FetchedDecoded:   a.m.fetched.decoded.Get(),
		BytesConsumed:    a.m.bytesConsumed.Get(),
		BatchesCommitted: a.m.batchesCommitted.Get(),
		Fenced:           a.m.fenced.Get(),
		Rebalances:       a.m.rebalances.Get(),
		InflightBytes:    a.budget.InUse(),
	}
	a.m.mu.Lock()
	for _, tm := range a.m.tables {
		s.RowsWritten += tm.written.Get()
	}
	for _, c := range a.m.dls {
		s.DeadLetters += c.Get()
	}
	a.m.mu.Unlock()
	for _, st := range a.snapshotParts() {
		s.Partitions++
		s.Lag += st.lag()
	}
	return s
}
