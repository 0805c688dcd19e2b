package ingest

import (
	"math"
	"sync/atomic"
)

// latencyHist is a log-scale histogram for quantiles at 5% resolution, from
// 100µs to about an hour. The Prometheus histogram serves dashboards; this
// one serves benchmarks and reports that need a p50/p99 in-process.
type latencyHist struct {
	counts [360]atomic.Uint64
}

const (
	latMin    = 1e-4
	latFactor = 1.05
)

func (h *latencyHist) update(seconds float64) {
	h.counts[latencyBucket(seconds)].Add(1)
}

func latencyBucket(seconds float64) int {
	i := 0
	if seconds > latMin {
		i = int(math.Log(seconds/latMin) / math.Log(latFactor))
	}
	return min(i, len(latencyHist{}.counts)-1)
}

// observeLatency records the end-to-end latency of a batch's rows,
// committed at now (Unix nanoseconds), in both histograms. Rows come in
// runs of one record timestamp (Kafka's are in milliseconds), so a run's
// bucket is found once, and the in-process histogram is added to once per
// bucket, not per row.
func (m *appMetrics) observeLatency(now int64, rows []rowMeta) {
	var local [len(latencyHist{}.counts)]uint32
	prev, lat, bucket := int64(math.MinInt64), 0.0, 0
	for _, r := range rows {
		if r.ts != prev {
			prev, lat = r.ts, float64(now-r.ts)/1e9
			bucket = latencyBucket(lat)
		}
		m.endToEnd.Update(lat)
		local[bucket]++
	}
	for i, c := range local {
		if c != 0 {
			m.e2eHist.counts[i].Add(uint64(c))
		}
	}
}

// Latency is a snapshot of the end-to-end latency histogram (record
// timestamp to commit): counts per log-scale bucket since the App started.
// A benchmark that wants the latency of one phase subtracts the snapshot
// taken at its start (Sub).
type Latency struct {
	counts [len(latencyHist{}.counts)]uint64
}

// EndToEndLatency returns the latency observations so far.
func (a *App) EndToEndLatency() Latency { return a.m.e2eHist.snapshot() }

func (h *latencyHist) snapshot() Latency {
	var l Latency
	for i := range l.counts {
		l.counts[i] = h.counts[i].Load()
	}
	return l
}

// Sub returns the observations in l that are not in earlier, a snapshot
// of the same App taken before l.
func (l Latency) Sub(earlier Latency) Latency {
	for i := range l.counts {
		l.counts[i] -= min(earlier.counts[i], l.counts[i])
	}
	return l
}

// Quantile returns the upper bound of the bucket holding the q-quantile
// (0..1), in seconds, or 0 with no observations.
func (l Latency) Quantile(q float64) float64 {
	var total uint64
	for _, c := range l.counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range l.counts {
		seen += c
		if seen >= rank {
			return latMin * math.Pow(latFactor, float64(i+1))
		}
	}
	return latMin * math.Pow(latFactor, float64(len(l.counts)))
}
