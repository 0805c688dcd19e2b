package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/loadgen"
)

// promResponse is the envelope of Prometheus' HTTP API.
type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Data      json.RawMessage `json:"data"`
}

func promGet(ctx context.Context, base, path string, q url.Values) (promResponse, error) {
	var pr promResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+q.Encode(), nil)
	if err != nil {
		return pr, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return pr, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return pr, err
	}
	if err := json.Unmarshal(b, &pr); err != nil {
		return pr, fmt.Errorf("GET %s: %s: %w", path, b, err)
	}
	return pr, nil
}

// grafanaVars replaces the dashboard's Grafana variables with what a
// query of one instance over a short test run needs.
var grafanaVars = strings.NewReplacer("$__rate_interval", "30s", "$__interval", "5s", "${instance}", ".*", "$instance", ".*")

var labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*([^,]+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)

// freePort returns a loopback port that was free a moment ago (Prometheus
// cannot listen on port 0 and report the port).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRealPrometheus runs a real Prometheus that scrapes a running
// appliance and loads the alert rules, then evaluates every dashboard
// query and every alert expression through its HTTP API: each must parse,
// evaluate without error or warning, and name only metrics Prometheus has
// scraped; every rule group must evaluate with health ok.
func TestRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the in-process appliance and Prometheus in -short mode")
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not in PATH: the dashboard and alerts are not evaluated by a real Prometheus (Debian package prometheus; .ci/run installs it)")
	}
	_, dq := dashboardQueries(t)
	_, aq := alertQueries(t)
	ctx := testCtx(t, 3*time.Minute)

	url_, err := testPostgres(t).CreateDatabase(ctx, "real_prometheus")
	if err != nil {
		t.Fatal(err)
	}
	b, err := devenv.StartBroker(devenv.BrokerOptions{Topics: []string{"events"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg, err := ingest.Parse(fmt.Appendf(nil, `kafka:
  brokers: [%q]
  group: real-prometheus
postgres:
  url: %q
  max_conns: 2
batch:
  max_age: 50ms
metrics:
  listen: 127.0.0.1:0
tables:
%s`, b.Addrs()[0], url_, loadgen.TableConfigYAML(loadgen.SchemaReference, "public.events", "events")), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	app, err := ingest.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	appCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(appCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("the appliance failed: %v", err)
		}
	}()
	waitFor(t, "the metrics listener", 60*time.Second, func() (bool, error) { return app.MetricsAddr() != "", nil })

	dir := t.TempDir()
	rules, err := filepath.Abs(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: [%q]
`, rules, app.MetricsAddr())
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freePort(t)
	cmd := exec.CommandContext(ctx, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+listen, "--log.level=warn")
	var promLog syncLog
	cmd.Stdout, cmd.Stderr = &promLog, &promLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	}()
	base := "http://" + listen

	// Traffic with bad records, so the labelled series (dead letters by
	// reason) exist.
	lo := loadgen.Options{Seed: 7, Records: 600, Topic: "events", DupRatio: 0.05}
	lo.SpreadBad(0.05)
	stats, err := loadgen.Produce(ctx, b.Addrs(), lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitLanded(t, ctx, url_, "public.events", stats.Committed[loadgen.KindGood], stats.Committed.Bad(), 60*time.Second, func() error { return nil })

	// Five scrapes after everything landed: rate() and increase() over
	// the substituted 30s have two points or more.
	scrapesAfter := func(min float64) func() (bool, error) {
		return func() (bool, error) {
			pr, err := promGet(ctx, base, "/api/v1/query", url.Values{"query": {`count_over_time(up{job="sluice"}[30s])`}})
			if err != nil || pr.Status != "success" {
				return false, nil // not up yet
			}
			var d struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			}
			if json.Unmarshal(pr.Data, &d) != nil || len(d.Result) == 0 {
				return false, nil
			}
			s, _ := d.Result[0].Value[1].(string)
			n, _ := strconv.ParseFloat(s, 64)
			return n >= min, nil
		}
	}
	waitFor(t, "Prometheus to scrape the appliance", 90*time.Second, scrapesAfter(1))
	landedAt := time.Now()
	waitFor(t, "five scrapes after the records landed", 60*time.Second, func() (bool, error) {
		pr, err := promGet(ctx, base, "/api/v1/query", url.Values{"query": {
			fmt.Sprintf(`timestamp(up{job="sluice"}) > %d`, landedAt.Add(5*time.Second).Unix())}})
		return err == nil && strings.Contains(string(pr.Data), `"result":[{`), err
	})

	known := func(name string) bool {
		pr, err := promGet(ctx, base, "/api/v1/series", url.Values{"match[]": {name}})
		return err == nil && pr.Status == "success" && string(pr.Data) != "[]"
	}
	withData := 0
	for _, q := range append(dq, aq...) {
		expr := grafanaVars.Replace(q.expr)
		if m := labelValuesRe.FindStringSubmatch(expr); m != nil {
			// A Grafana variable query: the series must exist with the label.
			pr, err := promGet(ctx, base, "/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}})
			if err != nil || pr.Status != "success" || string(pr.Data) == "[]" {
				t.Errorf("%s: label_values(%s, %s) finds no values: %v %s %s", q.where, m[1], m[2], err, pr.Error, pr.Data)
			}
			continue
		}
		pr, err := promGet(ctx, base, "/api/v1/query", url.Values{"query": {expr}})
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if pr.Status != "success" || len(pr.Warnings) > 0 {
			t.Errorf("%s: %s: %s %s (warnings %q)", q.where, expr, pr.ErrorType, pr.Error, pr.Warnings)
			continue
		}
		for _, n := range metricNames(expr) {
			if !known(n) {
				t.Errorf("%s: Prometheus has no series %s: %s", q.where, n, expr)
			}
		}
		if strings.Contains(string(pr.Data), `"result":[{`) {
			withData++
		}
	}
	t.Logf("%d dashboard and alert queries evaluated, %d returned data", len(dq)+len(aq), withData)
	if withData < len(dq)/2 {
		t.Errorf("only %d of %d dashboard queries returned data", withData, len(dq))
	}

	// Every rule evaluates with health ok.
	waitFor(t, "every alert rule to be evaluated", 30*time.Second, func() (bool, error) {
		pr, err := promGet(ctx, base, "/api/v1/rules", nil)
		if err != nil {
			return false, err
		}
		var d struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(pr.Data, &d); err != nil {
			return false, err
		}
		n := 0
		for _, g := range d.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health == "err" {
					return false, fmt.Errorf("rule %s: %s", r.Name, r.LastError)
				}
				if r.Health != "ok" {
					return false, nil
				}
			}
		}
		if n != len(aq) {
			return false, fmt.Errorf("Prometheus loaded %d rules, the rule file has %d", n, len(aq))
		}
		return true, nil
	})
}

// syncLog collects a child's output written from its pipes' goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
