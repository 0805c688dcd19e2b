package ingest

import (
	"strings"
	"testing"
)

func TestLatencySub(t *testing.T) {
	var h latencyHist
	for range 100 {
		h.update(5) // a warm-up phase: slow
	}
	warm := h.snapshot()
	if q := warm.Quantile(0.5); q < 5 || q > 5*latFactor*latFactor {
		t.Fatalf("p50 of 100 observations of 5s = %v", q)
	}
	for range 10 {
		h.update(0.01)
	}
	phase := h.snapshot().Sub(warm)
	if q := phase.Quantile(0.99); q < 0.01 || q > 0.01*latFactor*latFactor {
		t.Fatalf("p99 of the phase after the warm-up = %v, want about 0.01 (the warm-up must not count)", q)
	}
	if q := h.snapshot().Quantile(0.5); q < 5 {
		t.Fatalf("p50 of everything = %v, want the warm-up's 5s", q)
	}
	if q := warm.Sub(warm).Quantile(0.5); q != 0 {
		t.Fatalf("quantile of no observations = %v, want 0", q)
	}
}

// TestObserveLatency checks the batch path against one update per row:
// runs of equal timestamps, a timestamp that comes back after another,
// latencies below the first bucket and beyond the last.
func TestObserveLatency(t *testing.T) {
	m := newAppMetrics(func() float64 { return 0 }, func() float64 { return 0 })
	var want latencyHist
	const now = int64(1_800_000_000_000_000_000)
	var rows []rowMeta
	for i, ms := range []int64{5, 5, 5, 7, 7, 5, 1200, 0, 0, 90_000_000, 3, 3} {
		ts := now - ms*1_000_000
		rows = append(rows, rowMeta{offset: int64(i), ts: ts})
		want.update(float64(now-ts) / 1e9)
	}
	m.observeLatency(now, rows)
	if got, w := m.e2eHist.snapshot(), want.snapshot(); got != w {
		t.Fatalf("in-process histogram after observeLatency differs from one update per row:\n got %v\nwant %v", got, w)
	}
	var b strings.Builder
	m.set.WritePrometheus(&b)
	for _, line := range []string{`sluice_end_to_end_seconds_count 12`, `sluice_end_to_end_seconds_bucket{le="0.001"} 2`, `sluice_end_to_end_seconds_bucket{le="0.005"} 8`} {
		if !strings.Contains(b.String(), line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, b.String())
		}
	}
}
