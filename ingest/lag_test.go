package ingest

import (
	"net/http"
	"testing"
)

// TestLagBeforeFirstCommit: a partition that never committed, whose
// batches fail (the appliance's role may not insert), lags by every
// record fetched, on /metrics and in the status, so an alert on lag sees
// it; before, the lag read 0 until the first commit.
func TestLagBeforeFirstCommit(t *testing.T) {
	e := newEnv(t, 2)
	r, batch := startAsRole(t, e, "sluice_lag")
	addr := r.app.MetricsAddr()
	if _, err := e.db.Exec(e.ctx, `REVOKE INSERT ON public.items FROM sluice_lag`); err != nil {
		t.Fatal(err)
	}
	const n = 150
	batch(0, n)
	e.waitFor("/readyz 503", func() bool {
		code, _ := get(t, "http://"+addr+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if c := e.count(`SELECT count(*) FROM sluice.offsets WHERE next_offset >= 0`); c != 0 {
		t.Fatalf("%d partitions committed while the grant is revoked", c)
	}
	e.waitFor("every record fetched", func() bool {
		return r.app.Stats().RecordsConsumed == n
	})
	if v := metricValue(httpGet(t, "http://"+addr+"/metrics"), `sluice_table_lag{table="public.items"}`); v != n {
		t.Errorf("sluice_table_lag = %d before the first commit, want %d", v, n)
	}
	if got := r.app.Stats().Lag; got != n {
		t.Errorf("Stats().Lag = %d, want %d", got, n)
	}
	var lag int64
	for _, tb := range getStatus(t, addr).Tables {
		lag += tb.Lag
	}
	if lag != n {
		t.Errorf("the status shows a lag of %d, want %d", lag, n)
	}
}
