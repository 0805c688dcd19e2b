package ingest

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/loadgen"
	"github.com/sluice-dev/sluice/registry"
)

// TestRegistryOutageWaits: while the Schema Registry answers 503, Avro
// records are not dead-lettered: the partition waits, /readyz says why
// and the errors are counted; once the registry answers, every record
// lands exactly once.
func TestRegistryOutageWaits(t *testing.T) {
	e := newEnv(t, 1)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	up, _ := url.Parse(reg.URL())
	var down atomic.Bool
	down.Store(true)
	proxy := httputil.NewSingleHostReverseProxy(up)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	lo := loadgen.Options{Seed: 3, Schema: loadgen.SchemaReference, Records: 300, Partitions: 1, Topic: "avro_events", Format: loadgen.FormatAvro}
	if err := loadgen.RegisterSchema(e.ctx, &lo, registry.Options{URLs: []string{reg.URL()}}); err != nil {
		t.Fatal(err)
	}
	stats, err := loadgen.Produce(e.ctx, e.broker.Addrs(), lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	tables := loadgen.TableConfigYAMLFormat(loadgen.SchemaReference, loadgen.FormatAvro, "public.avro_events", "avro_events")
	y := configYAML(e.broker.Addrs(), e.url, "", "", "  "+strings.ReplaceAll(tables, "\n", "\n  "))
	y = append([]byte("schema_registry:\n  urls: ["+front.URL+"]\n"), y...)
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	r := e.start(cfg)
	e.waitFor("registry errors while it is down", func() bool { return r.app.m.registryErrors.Get() >= 2 })
	if why := r.app.notReady(); !strings.Contains(why, "schema registry") || !strings.Contains(why, "503") {
		t.Errorf("/readyz while the registry is down: %q", why)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letters while the registry was down", n)
	}
	down.Store(false)
	e.waitFor("the backlog to land", func() bool {
		return e.count(`SELECT coalesce(sum(next_offset), 0) FROM sluice.offsets`) == stats.Records
	})
	if !r.app.Ready() {
		t.Errorf("not ready after the registry came back: %s", r.app.notReady())
	}
	rep, err := loadgen.Verify(e.ctx, e.url, loadgen.VerifyOptions{Gen: lo, Stats: &stats, Table: "public.avro_events"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		var b strings.Builder
		rep.WriteSummary(&b)
		t.Errorf("not exactly once:\n%s", b.String())
	}
}
