package ingest

import "testing"

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
