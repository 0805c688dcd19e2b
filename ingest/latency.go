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
	i := 0
	if seconds > latMin {
		i = int(math.Log(seconds/latMin) / math.Log(latFactor))
	}
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i].Add(1)
}

// quantile returns the upper bound of the bucket holding the q-quantile, or
// 0 with no observations.
func (h *latencyHist) quantile(q float64) float64 {
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return latMin * math.Pow(latFactor, float64(i+1))
		}
	}
	return latMin * math.Pow(latFactor, float64(len(h.counts)))
}

func (h *latencyHist) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
}
