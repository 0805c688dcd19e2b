package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// metricValue returns the value of the series line that starts with
// series (name and labels as exposed) in a /metrics body, or -1.
func metricValue(body, series string) int64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int64(f)
		}
	}
	return -1
}

func getStatus(t *testing.T, addr string) Status {
	t.Helper()
	var s Status
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+addr+"/status.json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStatusJSON checks /status.json against what the App did: rows, dead
// letters by reason, partitions with their epochs and offsets, the history
// and throughput from the sample ring.
func TestStatusJSON(t *testing.T) {
	e := newEnv(t, 2)
	r := e.start(e.config(fmt.Sprintf(tableYAML, "ignore")), func(a *App) { a.periods.sample = 50 * time.Millisecond })
	var recs []*kgo.Record
	for i := range 300 {
		recs = append(recs, item(i, "x"))
	}
	recs = append(recs, &kgo.Record{Key: []byte("b"), Value: []byte(`{"id":`)}, &kgo.Record{Key: []byte("c"), Value: []byte(`{"n":1}`)})
	e.produce(recs...)
	e.waitDrained(int64(len(recs)))
	addr := r.app.MetricsAddr()
	s := getStatus(t, addr)
	if len(s.Tables) != 1 || s.Tables[0].Name != "public.items" {
		t.Fatalf("tables = %+v", s.Tables)
	}
	tb := s.Tables[0]
	if tb.RowsWritten != 300 || tb.DeadLettersTotal != 2 || tb.DeadLetters["malformed_json"] != 1 || tb.DeadLetters["missing_required"] != 1 {
		t.Errorf("table status = %+v, want 300 rows, dead letters malformed_json 1 and missing_required 1", tb)
	}
	if tb.RowsPerSec <= 0 || tb.BatchLatency.Batches == 0 || tb.BatchLatency.P99 <= 0 || tb.BatchLatency.P50 > tb.BatchLatency.P99 {
		t.Errorf("throughput %v rows/s and batch latency %+v: want both measured", tb.RowsPerSec, tb.BatchLatency)
	}
	if tb.Lag != 0 || tb.LagSeconds == nil || *tb.LagSeconds != 0 {
		t.Errorf("drained table shows lag %d (%v s)", tb.Lag, tb.LagSeconds)
	}
	if len(s.Partitions) != 2 || tb.Partitions != 2 {
		t.Fatalf("partitions = %+v", s.Partitions)
	}
	var next int64
	for _, p := range s.Partitions {
		if p.Epoch < 1 || p.Table != "public.items" || p.Halted || p.Lag != 0 {
			t.Errorf("partition %+v", p)
		}
		next += p.NextOffset
	}
	if next != int64(len(recs)) {
		t.Errorf("next offsets sum to %d, want %d", next, len(recs))
	}
	if !s.Ready || s.Group != "g" || s.Counters.BatchesCommitted == 0 || s.Counters.RecordsConsumed != uint64(len(recs)) {
		t.Errorf("status header = ready %v group %q counters %+v", s.Ready, s.Group, s.Counters)
	}
	// The ring keeps sampling; the rates in the history add up to the rows
	// once a sample follows the last batch's count (the offsets the test
	// waited for are stored a moment before the worker counts the rows).
	// The ring still holds the sample taken at start (historyLen is
	// 18,000 at this period); times are rounded to milliseconds.
	e.waitFor("the history rates to integrate to the 300 rows", func() bool {
		s := getStatus(t, addr)
		h := s.History.Tables["public.items"]
		if len(s.History.Times) < 5 || len(h.Rate) != len(s.History.Times) || len(h.Lag) != len(s.History.Times) {
			return false
		}
		rows := 0.0
		for i := 1; i < len(h.Rate); i++ {
			rows += h.Rate[i] * float64(s.History.Times[i]-s.History.Times[i-1]) / 1000
		}
		return math.Abs(rows-300) <= 3
	})
}

// TestHistoryRing checks that the ring keeps historyLen samples, oldest
// first, and drops old latency snapshots.
func TestHistoryRing(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.periods.sample = time.Minute // historyLen 15
	t0 := time.Unix(1000, 0)
	for i := range 40 {
		a.sample(t0.Add(time.Duration(i) * time.Second))
	}
	got := a.status.ordered()
	if len(got) != a.historyLen() || a.historyLen() != 15 {
		t.Fatalf("ring holds %d samples, historyLen %d, want 15", len(got), a.historyLen())
	}
	for i, s := range got {
		if want := t0.Add(time.Duration(25+i) * time.Second); !s.at.Equal(want) {
			t.Errorf("sample %d at %v, want %v", i, s.at, want)
		}
		if keep := i >= len(got)-latencyKeep; keep != (s.lat != nil) {
			t.Errorf("sample %d of %d has latency snapshot %v", i, len(got), s.lat != nil)
		}
	}
}

// findChromium returns the path of a Chromium binary, "" when none is
// installed.
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromium returns the path of a Chromium binary, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	p := findChromium()
	if p == "" {
		t.Skip("chromium not found in PATH: the status page is not checked in a browser (Debian package chromium; .ci/run installs it)")
	}
	return p
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
		"--no-first-run", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.Bytes())
	}
	return out
}

// TestStatusPageInBrowser renders / in headless Chromium and checks that
// what a person sees matches /metrics: rows written, dead letters by
// reason, partitions and their offsets, a halted-free readiness badge and
// drawn charts. It saves a screenshot (docs/status-page.png with
// SLUICE_UPDATE_SCREENSHOT=1).
func TestStatusPageInBrowser(t *testing.T) {
	bin := chromium(t)
	e := newEnv(t, 3)
	r := e.start(e.config(fmt.Sprintf(tableYAML, "ignore")), func(a *App) { a.periods.sample = 100 * time.Millisecond })
	produced := 0
	for wave := range 6 {
		var recs []*kgo.Record
		for i := range 200 * (wave + 1) {
			recs = append(recs, item(produced+i, "v"))
		}
		recs = append(recs, &kgo.Record{Key: []byte("bad"), Value: []byte(`{"id":`)})
		if wave%2 == 1 {
			recs = append(recs, &kgo.Record{Key: []byte("c"), Value: []byte(`{"id":"` + uuidFor(99000+wave) + `","n":"many"}`)})
		}
		produced += len(recs)
		e.produce(recs...)
		samples := func() int {
			r.app.status.mu.Lock()
			defer r.app.status.mu.Unlock()
			return len(r.app.status.samples)
		}
		before := samples()
		e.waitFor("a few samples", func() bool { return samples() >= min(before+3, r.app.historyLen()) })
	}
	e.waitDrained(int64(produced))
	addr := r.app.MetricsAddr()
	metricsBody := httpGet(t, "http://"+addr+"/metrics")
	dom := string(runChromium(t, bin, "--dump-dom", "http://"+addr+"/"))

	attr := func(k string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`data-k="`+regexp.QuoteMeta(k)+`"[^>]*?data-v="([^"]*)"`).FindAllStringSubmatch(dom, -1) {
			out = append(out, m[1])
		}
		return out
	}
	want := func(what string, got []string, v int64) {
		t.Helper()
		if len(got) == 0 || got[0] != strconv.FormatInt(v, 10) {
			t.Errorf("page shows %s %v, /metrics says %d", what, got, v)
		}
	}
	rows := metricValue(metricsBody, `sluice_rows_written_total{table="public.items"}`)
	want("rows written", attr("rows"), rows)
	want("dead letters", attr("dead_letters_total"), metricValue(metricsBody, `sluice_dead_letters_total{table="public.items",reason="malformed_json"}`)+
		metricValue(metricsBody, `sluice_dead_letters_total{table="public.items",reason="wrong_type"}`))
	want("partitions", attr("partitions_total"), metricValue(metricsBody, "sluice_partitions_assigned"))
	want("batches", attr("batches"), metricValue(metricsBody, "sluice_batches_committed_total"))
	want("records read twice", attr("read_twice"), max(metricValue(metricsBody, "sluice_fetch_records_read_total")-metricValue(metricsBody, "sluice_records_consumed_total"), 0))
	if rows != int64(produced-6-3) {
		t.Errorf("/metrics says %d rows, want %d", rows, produced-9)
	}
	for _, reason := range []string{"malformed_json", "wrong_type"} {
		m := regexp.MustCompile(`data-reason="` + reason + `" data-v="(\d+)"`).FindStringSubmatch(dom)
		if m == nil || m[1] != strconv.FormatInt(metricValue(metricsBody, `sluice_dead_letters_total{table="public.items",reason="`+reason+`"}`), 10) {
			t.Errorf("page shows dead letters %s = %v", reason, m)
		}
	}
	// The visible text, not only the attributes: 1,000s separated.
	if !strings.Contains(dom, ">"+fmtThousands(rows)+"<") {
		t.Errorf("page does not show %s rows as text", fmtThousands(rows))
	}
	var lagSum int64
	for _, v := range attr("lag") {
		n, _ := strconv.ParseInt(v, 10, 64)
		lagSum += n
	}
	if lagSum != 0 || metricValue(metricsBody, `sluice_table_lag{table="public.items"}`) != 0 {
		t.Errorf("page shows lag %d after draining", lagSum)
	}
	var nextSum int64
	for _, v := range attr("next_offset") {
		n, _ := strconv.ParseInt(v, 10, 64)
		nextSum += n
	}
	if nextSum != int64(produced) || len(attr("next_offset")) != 3 {
		t.Errorf("page shows next offsets %v (sum %d), want 3 partitions summing to %d", attr("next_offset"), nextSum, produced)
	}
	if !strings.Contains(dom, `data-v="ready"`) {
		t.Errorf("page does not show ready")
	}
	if n := strings.Count(dom, "<polyline"); n != 2 {
		t.Errorf("page draws %d chart lines, want 2 (throughput and lag of one table)", n)
	}

	shot := filepath.Join(t.TempDir(), "status-page.png")
	if os.Getenv("SLUICE_UPDATE_SCREENSHOT") == "1" {
		shot, _ = filepath.Abs(filepath.Join("..", "docs", "status-page.png"))
	}
	runChromium(t, bin, "--screenshot="+shot, "--window-size=1280,900", "http://"+addr+"/")
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 10_000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot %s is %d bytes, not a PNG of the page", shot, len(png))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}

func fmtThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
