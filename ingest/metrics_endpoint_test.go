package ingest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/buildinfo"
)

func TestPprofConfig(t *testing.T) {
	f := func(metrics string, wantErr bool) {
		t.Helper()
		_, err := Parse([]byte(validYAML+metrics), noEnv)
		if wantErr && (err == nil || !strings.Contains(err.Error(), "metrics.pprof") || !strings.Contains(err.Error(), "loopback")) {
			t.Errorf("%q: error %v, want one naming metrics.pprof and loopback", metrics, err)
		}
		if !wantErr && err != nil {
			t.Errorf("%q: %v", metrics, err)
		}
	}
	f("metrics: {pprof: true}\n", false) // the default listen is 127.0.0.1:9187
	f("metrics: {pprof: true, listen: 127.0.0.1:0}\n", false)
	f("metrics: {pprof: true, listen: 127.0.0.2:9187}\n", false)
	f("metrics: {pprof: true, listen: \"[::1]:9187\"}\n", false)
	f("metrics: {pprof: true, listen: localhost:9187}\n", false)
	f("metrics: {pprof: false, listen: 0.0.0.0:9187}\n", false)
	f("metrics: {pprof: true, listen: 0.0.0.0:9187}\n", true)
	f("metrics: {pprof: true, listen: \":9187\"}\n", true)
	f("metrics: {pprof: true, listen: \"[::]:9187\"}\n", true)
	f("metrics: {pprof: true, listen: 10.0.0.1:9187}\n", true)
	f("metrics: {pprof: true, listen: metrics.example.com:9187}\n", true)
	f("metrics: {pprof: true, listen: \"\"}\n", true)
}

func TestPprofOffByDefault(t *testing.T) {
	get := func(a *App, path string) int {
		t.Helper()
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	cfg := mustParse(t, []byte(validYAML), noEnv)
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/goroutine", "/debug/pprof/profile", "/debug/pprof/trace"} {
		if code := get(a, p); code != http.StatusNotFound {
			t.Errorf("GET %s without metrics.pprof: %d, want 404", p, code)
		}
	}
	if code := get(a, "/metrics"); code != http.StatusOK {
		t.Errorf("GET /metrics: %d", code)
	}

	cfg = mustParse(t, []byte(validYAML+"metrics: {pprof: true, listen: 127.0.0.1:0}\n"), noEnv)
	if a, err = New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if code := get(a, "/debug/pprof/goroutine?debug=1"); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/goroutine with metrics.pprof: %d, want 200", code)
	}
	// Served for real on loopback.
	addr, stop, err := a.serveMetrics(cfg.Metrics.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Errorf("GET /debug/pprof/ on %s: %d %.200s", addr, resp.StatusCode, body)
	}

	// A configuration that bypassed checkPprof still does not serve
	// profiles on every interface.
	cfg.Metrics.Listen = "0.0.0.0:0"
	if _, _, err := a.serveMetrics(cfg.Metrics.Listen); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("metrics.pprof on 0.0.0.0: %v, want a refusal naming loopback", err)
	}
}

func TestRunPprofFlagNeedsLoopback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(validYAML+"metrics: {listen: 0.0.0.0:9187}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := RunMain(context.Background(), []string{"--config", path, "--pprof"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "metrics.pprof") {
		t.Fatalf("sluice run --pprof with metrics.listen 0.0.0.0:9187: %v, want an error naming metrics.pprof", err)
	}
}

func TestBuildInfoMetric(t *testing.T) {
	a, err := New(mustParse(t, []byte(validYAML), noEnv), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	want := `sluice_build_info{version="` + buildinfo.Version() + `",revision="` + buildinfo.Revision() + `",go_version="` + buildinfo.GoVersion() + `"} 1`
	if !strings.Contains(rec.Body.String(), want+"\n") {
		t.Errorf("/metrics has no %s", want)
	}
}
