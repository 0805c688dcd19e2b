package ingest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/buildinfo"
)

// The status page (GET / on the metrics listener) is what an operator opens
// first: per table and partition what is behind, how fast it moves, what
// was dead-lettered, what is halted or stuck and the last error, with small
// charts of the last minutes. It is one self-contained HTML file (no
// external assets, so it works offline and behind any proxy) that renders
// GET /status.json and polls it. Everything comes from the App's live state
// and metrics; the history is a ring of samples kept in memory.

//go:embed statuspage.html
var statusPage []byte

// Status history defaults: a sample every 5s for 15 minutes.
const (
	sampleEvery  = 5 * time.Second
	historySpan  = 15 * time.Minute
	rateWindow   = time.Minute // throughput and latency quantiles are over the last minute
	latencyKeep  = 14          // samples that keep their latency snapshot (just over rateWindow)
	statusPollMS = 2000
)

// Status is the document of /status.json. Field names are part of the page
// and of scripts that read it; add, do not rename.
type Status struct {
	Time          time.Time         `json:"time"`
	Version       string            `json:"version"`
	Group         string            `json:"group"`
	Ready         bool              `json:"ready"`
	NotReady      string            `json:"not_ready,omitempty"`
	Tables        []TableStatus     `json:"tables"`
	Partitions    []PartitionStatus `json:"partitions"`
	MissingTopics []string          `json:"missing_topics"`
	LastError     *ErrorStatus      `json:"last_error"`
	Counters      CounterStatus     `json:"counters"`
	History       HistoryStatus     `json:"history"`
	PollMillis    int               `json:"poll_ms"`
}

// TableStatus is one target table.
type TableStatus struct {
	Name        string   `json:"name"`
	Topics      []string `json:"topics"`
	Partitions  int      `json:"partitions"` // owned by this instance
	RowsWritten uint64   `json:"rows_written"`
	// RowsPerSec is the rows written per second over the last minute (or
	// since start when younger).
	RowsPerSec float64 `json:"rows_per_sec"`
	Lag        int64   `json:"lag"`
	// LagSeconds estimates how long the lag takes to drain at RowsPerSec;
	// nil when there is lag and no throughput to estimate from.
	LagSeconds       *float64          `json:"lag_seconds"`
	DeadLetters      map[string]uint64 `json:"dead_letters"` // by reason, since start
	DeadLettersTotal uint64            `json:"dead_letters_total"`
	BatchLatency     LatencyStatus     `json:"batch_latency"`
	// Stuck is set while the table's batches fail with an error retrying
	// cannot fix (see readiness.go).
	Stuck *StuckStatus `json:"stuck,omitempty"`
}

// LatencyStatus are quantiles of the time to write one batch (copy, merge,
// dead letters and commit), in seconds, over the last minute.
type LatencyStatus struct {
	Batches uint64  `json:"batches"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
}

// PartitionStatus is one partition this instance owns.
type PartitionStatus struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	Table         string `json:"table"`
	Epoch         int64  `json:"epoch"`
	NextOffset    int64  `json:"next_offset"`    // committed next_offset, -1 before the first commit
	HighWatermark int64  `json:"high_watermark"` // -1 before the first fetch
	Lag           int64  `json:"lag"`
	Halted        bool   `json:"halted"`
	HaltReason    string `json:"halt_reason,omitempty"`
}

// ErrorStatus is the last error the App met.
type ErrorStatus struct {
	Time    time.Time `json:"time"`
	Where   string    `json:"where"`
	Message string    `json:"message"`
}

// CounterStatus are the App's counters since start.
type CounterStatus struct {
	RecordsConsumed  uint64 `json:"records_consumed"`
	BatchesCommitted uint64 `json:"batches_committed"`
	Fenced           uint64 `json:"fenced"`
	Retried          uint64 `json:"retried"`
	Rebalances       uint64 `json:"rebalances"`
	InflightBytes    int64  `json:"inflight_bytes"`
	// What the client read from the brokers (fetchCounters): records,
	// some of them twice, and their batches' bytes as fetched and as
	// decompressed.
	RecordsFetched      uint64 `json:"records_fetched"`
	FetchedWireBytes    uint64 `json:"fetched_wire_bytes"`
	FetchedDecodedBytes uint64 `json:"fetched_decoded_bytes"`
}

// HistoryStatus is the sampled history, oldest first: Times in Unix
// milliseconds, and per table the rows written per second over each
// interval (Rate[i] covers Times[i-1] to Times[i]; Rate[0] is 0) and the
// lag at each sample.
type HistoryStatus struct {
	StepSeconds float64                 `json:"step_seconds"`
	Times       []int64                 `json:"times"`
	Tables      map[string]TableHistory `json:"tables"`
}

// TableHistory is one table's series.
type TableHistory struct {
	Rate []float64 `json:"rate"`
	Lag  []int64   `json:"lag"`
}

// statusState is what the App keeps for the status page.
type statusState struct {
	mu      sync.Mutex
	samples []statusSample // ring, oldest at head once full
	head    int
	lastErr *ErrorStatus
}

type statusSample struct {
	at   time.Time
	rows map[string]uint64
	lag  map[string]int64
	lat  map[string]Latency // nil once the sample is older than latencyKeep samples
}

// noteError records err as the App's last error (status page, sluice
// status). where says what failed: "write public.items", "fetch events/3".
func (a *App) noteError(where string, err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	if a.red != nil {
		msg = a.red.scrub(msg)
	}
	a.status.mu.Lock()
	a.status.lastErr = &ErrorStatus{Time: time.Now().UTC(), Where: where, Message: msg}
	a.status.mu.Unlock()
}

// sample appends the current counters to the history ring.
func (a *App) sample(now time.Time) {
	s := statusSample{at: now, rows: map[string]uint64{}, lag: map[string]int64{}, lat: map[string]Latency{}}
	for _, t := range a.tableList() {
		tm := a.m.table(t.cfg.Name)
		s.rows[t.cfg.Name] = tm.written.Get()
		s.lat[t.cfg.Name] = tm.batchLat.snapshot()
		s.lag[t.cfg.Name] = 0
	}
	addTableLags(s.lag, a.snapshotParts())
	n := a.historyLen()
	h := &a.status
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) < n {
		h.samples = append(h.samples, s)
	} else {
		h.samples[h.head] = s
		h.head = (h.head + 1) % n
	}
	// Latency snapshots are 3KB per table: keep them only as far back as
	// the rate window needs.
	if m := len(h.samples); m > latencyKeep {
		old := (h.head + m - latencyKeep - 1) % m
		if len(h.samples) < n {
			old = m - latencyKeep - 1
		}
		h.samples[old].lat = nil
	}
}

func (a *App) historyLen() int {
	return max(int(historySpan/a.periods.sample), 2)
}

// ordered returns the samples oldest first. The caller holds mu.
func (h *statusState) ordered() []statusSample {
	out := make([]statusSample, 0, len(h.samples))
	out = append(out, h.samples[h.head:]...)
	return append(out, h.samples[:h.head]...)
}

// sampler samples every periods.sample until done is closed (Run takes
// the first sample itself, before polling).
func (a *App) sampler(done <-chan struct{}) {
	tick := time.NewTicker(a.periods.sample)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			a.sample(now)
		}
	}
}

// Status returns the App's state now.
func (a *App) Status() Status {
	now := time.Now()
	st := Status{
		Time:          now.UTC(),
		Version:       buildinfo.Version(),
		Group:         a.cfg.Kafka.Group,
		MissingTopics: a.missingTopics(),
		Partitions:    []PartitionStatus{},
		PollMillis:    statusPollMS,
	}
	if st.MissingTopics == nil {
		st.MissingTopics = []string{}
	}
	st.NotReady = a.notReady()
	st.Ready = st.NotReady == ""
	st.Counters = CounterStatus{
		RecordsConsumed:  a.m.recordsConsumed.Get(),
		BatchesCommitted: a.m.batchesCommitted.Get(),
		Fenced:           a.m.fenced.Get(),
		Retried:          a.m.retries.Get(),
		Rebalances:       a.m.rebalances.Get(),
		InflightBytes:    a.budget.InUse(),

		RecordsFetched:      a.m.fetched.records.Get(),
		FetchedWireBytes:    a.m.fetched.wire.Get(),
		FetchedDecodedBytes: a.m.fetched.decoded.Get(),
	}

	byTable := map[string]*TableStatus{}
	for _, t := range a.tableList() {
		ts := &TableStatus{Name: t.cfg.Name, Topics: t.cfg.Topics, DeadLetters: map[string]uint64{}}
		ts.RowsWritten = a.m.table(t.cfg.Name).written.Get()
		ts.Stuck = a.stuckStatus(t)
		byTable[t.cfg.Name] = ts
	}
	for _, p := range a.snapshotParts() {
		ps := PartitionStatus{
			Topic: p.topic, Partition: p.partition, Table: p.tableName(), Epoch: p.epoch,
			NextOffset: p.committed.Load(), HighWatermark: p.highWatermark.Load(), Lag: p.lag(),
			Halted: p.halted.Load(),
		}
		if r := p.haltReason.Load(); r != nil {
			ps.HaltReason = *r
		}
		st.Partitions = append(st.Partitions, ps)
		if ts := byTable[ps.Table]; ts != nil {
			ts.Partitions++
			ts.Lag += ps.Lag
		}
	}
	a.m.mu.Lock()
	for k, c := range a.m.dls {
		if ts := byTable[k[0]]; ts != nil {
			n := c.Get()
			ts.DeadLetters[k[1]] += n
			ts.DeadLettersTotal += n
		}
	}
	a.m.mu.Unlock()

	a.status.mu.Lock()
	samples := a.status.ordered()
	if a.status.lastErr != nil {
		e := *a.status.lastErr
		st.LastError = &e
	}
	a.status.mu.Unlock()

	// The window's start: the oldest sample within rateWindow, or the
	// oldest there is.
	var base *statusSample
	for i := range samples {
		if now.Sub(samples[i].at) <= rateWindow+a.periods.sample/2 {
			base = &samples[i]
			break
		}
	}
	if base == nil && len(samples) > 0 {
		base = &samples[len(samples)-1]
	}
	for _, t := range a.tableList() {
		ts := byTable[t.cfg.Name]
		tm := a.m.table(t.cfg.Name)
		lat := tm.batchLat.snapshot()
		if base != nil {
			if el := now.Sub(base.at).Seconds(); el >= a.periods.sample.Seconds()/2 {
				ts.RowsPerSec = float64(ts.RowsWritten-min(base.rows[ts.Name], ts.RowsWritten)) / el
			}
			if bl, ok := base.lat[ts.Name]; ok {
				lat = lat.Sub(bl)
			}
		}
		ts.BatchLatency = LatencyStatus{Batches: lat.Count(), P50: lat.Quantile(0.5), P90: lat.Quantile(0.9), P99: lat.Quantile(0.99)}
		switch {
		case ts.Lag == 0:
			z := 0.0
			ts.LagSeconds = &z
		case ts.RowsPerSec > 0:
			s := float64(ts.Lag) / ts.RowsPerSec
			ts.LagSeconds = &s
		}
		st.Tables = append(st.Tables, *ts)
	}

	st.History = HistoryStatus{StepSeconds: a.periods.sample.Seconds(), Tables: map[string]TableHistory{}}
	for i, s := range samples {
		st.History.Times = append(st.History.Times, s.at.UnixMilli())
		for _, t := range a.tableList() {
			name := t.cfg.Name
			th := st.History.Tables[name]
			rate := 0.0
			if i > 0 {
				prev := samples[i-1]
				// Over the reported (millisecond) times, so the series
				// integrates to the rows written.
				if el := float64(s.at.UnixMilli()-prev.at.UnixMilli()) / 1000; el > 0 && s.rows[name] >= prev.rows[name] {
					rate = float64(s.rows[name]-prev.rows[name]) / el
				}
			}
			th.Rate = append(th.Rate, rate)
			th.Lag = append(th.Lag, s.lag[name])
			st.History.Tables[name] = th
		}
	}
	sort.Slice(st.Tables, func(i, j int) bool { return st.Tables[i].Name < st.Tables[j].Name })
	return st
}

// Count returns the number of observations in l.
func (l Latency) Count() uint64 {
	var n uint64
	for _, c := range l.counts {
		n += c
	}
	return n
}

func (a *App) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(a.Status())
}

// statusDataMarker is replaced in the page by the status at the time of
// the request, so the first paint needs no second request (and a
// non-scripted fetch of the page, such as a headless browser's DOM dump,
// shows real figures).
var statusDataMarker = []byte("/*STATUS_JSON*/null")

func (a *App) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	// json.Marshal escapes <, > and & so the document cannot close the
	// script element it is embedded in.
	data, err := json.Marshal(a.Status())
	if err != nil {
		http.Error(w, "cannot render the status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(bytes.Replace(statusPage, statusDataMarker, data, 1))
}
