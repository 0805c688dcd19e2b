package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/loadgen"
)

// TestImageEndToEnd builds the image with `make image` (under a test tag and
// into a temporary binary, so it disturbs neither bin/ nor sluice:dev) or
// takes the one SLUICE_TEST_IMAGE names, runs it with --network host against
// the embedded broker and a private PostgreSQL, and lands two workloads with
// duplicates and bad records exactly once across a stop and restart of the
// container. Each stop is what an orchestrator does: SIGTERM, graceful, exit
// code 0.
func TestImageEndToEnd(t *testing.T) {
	requireDocker(t)
	ctx := testCtx(t, 3*time.Minute)
	start := time.Now()

	// SLUICE_TEST_IMAGE tests an image built elsewhere instead, e.g. the
	// source build: docker build -f docker/Dockerfile -t sluice:src .
	tag := os.Getenv("SLUICE_TEST_IMAGE")
	if tag == "" {
		tag = fmt.Sprintf("sluice:test-%d", os.Getpid())
		bin := filepath.Join(t.TempDir(), "sluice")
		run(t, ctx, repoRoot, "make", "image", "BIN="+bin, "IMAGE="+tag)
		t.Cleanup(func() { runErr(context.Background(), "", "docker", "rmi", "-f", tag) })
	}
	var img struct {
		Size   int64
		Config struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			Env          []string
			ExposedPorts map[string]struct{}
		}
	}
	inspect := run(t, ctx, "", "docker", "image", "inspect", "--format", "{{json .}}", tag)
	if err := json.Unmarshal([]byte(inspect), &img); err != nil {
		t.Fatalf("cannot parse docker image inspect: %v\n%s", err, inspect)
	}
	t.Logf("image %s: %.1f MB, ready in %s", tag, float64(img.Size)/1e6, time.Since(start).Round(time.Millisecond))
	if img.Config.User != "65532:65532" {
		t.Errorf("image user = %q, want 65532:65532 (non-root)", img.Config.User)
	}
	if strings.Join(img.Config.Entrypoint, " ") != "/sluice" || strings.Join(img.Config.Cmd, " ") != "run" {
		t.Errorf("image entrypoint %q cmd %q, want [/sluice] [run]", img.Config.Entrypoint, img.Config.Cmd)
	}
	if _, ok := img.Config.ExposedPorts["9187/tcp"]; !ok {
		t.Errorf("image exposes %v, want 9187/tcp", img.Config.ExposedPorts)
	}
	for _, want := range []string{"SLUICE_CONFIG=/etc/sluice/sluice.yaml", "SLUICE_METRICS_LISTEN=0.0.0.0:9187"} {
		if !contains(img.Config.Env, want) {
			t.Errorf("image environment %q lacks %s", img.Config.Env, want)
		}
	}
	if img.Size > 60e6 {
		t.Errorf("image is %d bytes; a scratch image with one static binary should stay well under 60 MB", img.Size)
	}

	url, err := testPostgres(t).CreateDatabase(ctx, "image_e2e")
	if err != nil {
		t.Fatal(err)
	}
	b, err := devenv.StartBroker(devenv.BrokerOptions{Topics: []string{"events"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	port, err := devenv.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", port)

	// The mounted file names unreachable services on purpose: the container
	// only works if the SLUICE_* environment overrides them.
	cfg := fmt.Sprintf(`kafka:
  brokers: ["kafka.invalid:9092"]
  group: from-file
postgres:
  url: postgres://nobody@127.0.0.1:1/none
  max_conns: 2
batch:
  max_age: 100ms
metrics:
  listen: 127.0.0.1:1
log:
  level: info
tables:
%s`, loadgen.TableConfigYAML(loadgen.SchemaReference, "public.events", "events"))
	cfgPath := filepath.Join(t.TempDir(), "sluice.yaml")
	// Readable by the image's user 65532.
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	name := fmt.Sprintf("sluice-test-%d", os.Getpid())
	runErr(ctx, "", "docker", "rm", "-f", name)
	run(t, ctx, "", "docker", "run", "-d", "--name", name, "--network", "host",
		"-v", cfgPath+":/etc/sluice/sluice.yaml:ro",
		"-e", "SLUICE_KAFKA_BROKERS="+strings.Join(b.Addrs(), ","),
		"-e", "SLUICE_POSTGRES_URL="+url,
		"-e", "SLUICE_KAFKA_GROUP=image-e2e",
		"-e", "SLUICE_METRICS_LISTEN="+metricsAddr,
		tag)
	t.Cleanup(func() { runErr(context.Background(), "", "docker", "rm", "-f", name) })
	logs := func() string {
		out, _ := runErr(context.Background(), "", "docker", "logs", name)
		return out
	}
	alive := func() error {
		out, err := runErr(ctx, "", "docker", "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
		if err != nil {
			return fmt.Errorf("docker inspect: %v: %s", err, out)
		}
		if !strings.HasPrefix(out, "true") {
			return fmt.Errorf("%w (running, exit code: %s); its log:\n%s", errStopped, strings.TrimSpace(out), logs())
		}
		return nil
	}

	// stop is what an orchestrator does: SIGTERM; the appliance commits
	// what is in flight, leaves the group and exits 0, logging "stopped".
	stops := 0
	stop := func() {
		t.Helper()
		began := time.Now()
		run(t, ctx, "", "docker", "stop", "-t", "40", name)
		stops++
		code := strings.TrimSpace(run(t, ctx, "", "docker", "inspect", "--format", "{{.State.ExitCode}}", name))
		log := logs()
		if code != "0" {
			t.Errorf("exit code after docker stop = %s, want 0 (graceful); log:\n%s", code, log)
		}
		if n := strings.Count(log, "msg=stopped"); n != stops {
			t.Errorf("the log has %d \"stopped\" lines after %d docker stops:\n%s", n, stops, log)
		}
		t.Logf("docker stop %d took %s", stops, time.Since(began).Round(time.Millisecond))
	}
	// produce sends records at rate records/s (0: at once); it must not
	// call t.Fatal (it also runs in a goroutine).
	produce := func(seed, records int64, rate float64) (loadgen.Stats, error) {
		lo := loadgen.Options{Seed: seed, Records: records, Rate: rate, Topic: "events", DupRatio: 0.05}
		lo.SpreadBad(0.03)
		stats, err := loadgen.Produce(ctx, b.Addrs(), lo, nil)
		if err == nil && (stats.Committed[loadgen.KindGood] == 0 || stats.Committed.Bad() == 0 || stats.Committed[loadgen.KindDup] == 0) {
			err = fmt.Errorf("the workload should hold good, duplicate and bad records: %+v", stats.Committed)
		}
		return stats, err
	}

	// A first workload, paced so that the container is stopped while it is
	// still being produced: what was fetched but not committed is committed
	// on the way out or read again after the restart.
	type produced struct {
		stats loadgen.Stats
		err   error
	}
	firstDone := make(chan produced, 1)
	go func() {
		st, err := produce(11, 3000, 2000)
		firstDone <- produced{st, err}
	}()
	waitFor(t, "the first rows", 90*time.Second, func() (bool, error) {
		if err := alive(); err != nil {
			return false, err
		}
		rows, _, err := landed(ctx, url, "public.events")
		if err != nil && strings.Contains(err.Error(), "42P01") { // not migrated yet
			return false, nil
		}
		return rows > 0, err
	})
	stop()
	stoppedRows, stoppedDLs, _ := landed(ctx, url, "public.events")
	p := <-firstDone
	if p.err != nil {
		t.Fatal(p.err)
	}
	first := p.stats
	t.Logf("at the first stop: %d of %d rows, %d of %d dead letters", stoppedRows, first.Committed[loadgen.KindGood], stoppedDLs, first.Committed.Bad())

	// The same container started again resumes from the offsets stored in
	// PostgreSQL; a second workload joins the rest of the first.
	run(t, ctx, "", "docker", "start", name)
	second, err := produce(12, 2000, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantRows := first.Committed[loadgen.KindGood] + second.Committed[loadgen.KindGood]
	wantDLs := first.Committed.Bad() + second.Committed.Bad()
	waitLanded(t, ctx, url, "public.events", wantRows, wantDLs, 90*time.Second, alive)

	// What an orchestrator probes, served from inside the container.
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		code, body := httpGet(t, "http://"+metricsAddr+path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d %q, want 200 %q", path, code, body, want)
		}
	}
	if _, body := httpGet(t, "http://"+metricsAddr+"/metrics"); !strings.Contains(body, `sluice_rows_written_total{table="public.events"}`) {
		t.Errorf("/metrics has no sluice_rows_written_total for public.events:\n%s", body)
	}

	stop()
	rows, dls, err := landed(ctx, url, "public.events")
	if err != nil || rows != wantRows || dls != wantDLs {
		t.Errorf("after the stop: %d rows, %d dead letters (%v), want %d and %d", rows, dls, err, wantRows, wantDLs)
	}
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// indent prefixes every line of s with pre.
// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("cannot parse the port of %q", addr)
	}
	return p
}
