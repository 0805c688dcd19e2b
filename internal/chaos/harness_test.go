package chaos

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/loadgen"
)

var (
	sluiceBin string
	testPG    *devenv.Postgres
	long      = os.Getenv("SLUICE_CHAOS") == "long"
	summary   = &report{}
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "sluice-chaos-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	sluiceBin = filepath.Join(dir, "sluice")
	goBin, err := exec.LookPath("go")
	if err != nil {
		return 0, fmt.Errorf("cannot find the go command to build sluice: %w", err)
	}
	// The fault hooks (copy/fault.go) exist only in a sluicefault build.
	build := exec.Command(goBin, "build", "-tags", "sluicefault", "-o", sluiceBin, "github.com/sluice-dev/sluice")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("cannot build sluice: %v\n%s", err, out)
	}
	testPG, err = devenv.StartPostgres(context.Background(), devenv.PostgresOptions{
		// fsync stays off (an immediate stop is a PostgreSQL crash, not an
		// OS crash, so the page cache keeps the WAL), but a commit must be
		// in the WAL before it is acknowledged: with devenv's test default
		// synchronous_commit=off an immediate stop forgets the last
		// acknowledged commits, which no consumer can be exactly-once
		// against (see internal/chaos/README.md, "Findings").
		Settings: []string{"synchronous_commit=on"},
	})
	if err != nil {
		return 0, err
	}
	defer testPG.Stop()
	code := m.Run()
	summary.print(os.Stdout)
	return code, nil
}

// skipShort skips t under -short: every chaos test runs real processes.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos tests start processes and inject faults; skipped under -short")
	}
}

// waitFor polls cond until it holds or d passes; it is the only way tests
// synchronise with the processes they drive.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(25 * time.Millisecond)
	}
	return true
}

// ---------------------------------------------------------------------------
// Processes

// proc is one external process, restartable; its output goes to one log
// file for all its lives.
type proc struct {
	t       *testing.T
	name    string
	args    []string
	logPath string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when the current life ends
	state *os.ProcessState
	lives int
}

func newProc(t *testing.T, dir, name string, args ...string) *proc {
	p := &proc{t: t, name: name, args: args, logPath: filepath.Join(dir, name+".log")}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("---- last lines of %s ----\n%s", p.name, tailFile(p.logPath, 60))
		}
	})
	return p
}

// start starts a new life with extra environment variables.
func (p *proc) start(env ...string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		p.t.Fatalf("%s: start while running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.lives++
	fmt.Fprintf(f, "==== %s life %d %s env=%v\n", p.name, p.lives, time.Now().Format(time.RFC3339Nano), env)
	cmd := exec.Command(sluiceBin, p.args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("cannot start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.state = cmd, done, nil
	go func() {
		cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(done)
	}()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (p *proc) alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && !isClosed(p.done)
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		p.cmd.Process.Signal(sig)
	}
}

// waitExit waits up to d for the current life to end.
func (p *proc) waitExit(d time.Duration) (*os.ProcessState, bool) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil, true
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.state, true
	case <-time.After(d):
		return nil, false
	}
}

// kill sends SIGKILL (which also ends a stopped process) and waits.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	p.waitExit(time.Minute)
}

// term asks for a graceful shutdown and waits for it; a process that does
// not stop within d fails the test.
func (p *proc) term(d time.Duration) {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	st, ok := p.waitExit(d)
	if !ok {
		p.kill()
		p.t.Fatalf("%s did not stop within %v of SIGTERM", p.name, d)
	}
	if st != nil && !st.Success() {
		p.t.Errorf("%s exited with %v after SIGTERM; want a clean exit", p.name, st)
	}
}

// procState returns the state letter of /proc/PID/stat (R, S, T, ...).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

// vmHWM returns the peak resident set size of pid in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := devenv.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ---------------------------------------------------------------------------
// The cluster: a broker process, sluice instances, a database.

type clusterOptions struct {
	partitions     int
	topics         []string
	tablesYAML     string        // items of the tables: list
	sessionTimeout time.Duration // 0: the default
	batchYAML      string        // the batch: section's items; empty: defaults
	maxConns       int
	// registry makes the broker process serve its embedded Schema
	// Registry too (`sluice broker --registry-listen`), its schemas kept
	// in the broker's data directory across restarts, and points the
	// instances' schema_registry at it.
	registry bool
}

type cluster struct {
	t      *testing.T
	ctx    context.Context
	o      clusterOptions
	dir    string
	dbName string
	url    string
	group  string

	brokerAddr  string
	registryURL string // "" without clusterOptions.registry
	broker      *proc
	instances   []*instance

	sampler *sampler
	metrics *metricsWatch
}

type instance struct {
	*proc
	cfgPath     string
	metricsAddr string
}

var dbSeq struct {
	sync.Mutex
	n int
}

func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	skipShort(t)
	if o.maxConns == 0 {
		o.maxConns = 2
	}
	dbSeq.Lock()
	dbSeq.n++
	name := fmt.Sprintf("chaos_%d", dbSeq.n)
	dbSeq.Unlock()
	ctx := context.Background()
	url, err := testPG.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &cluster{t: t, ctx: ctx, o: o, dir: dir, dbName: name, url: url, group: "chaos"}
	c.brokerAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := []string{"broker", "--listen", c.brokerAddr,
		"--data-dir", filepath.Join(dir, "kafka"), "--partitions", strconv.Itoa(o.partitions),
		"--topics", strings.Join(o.topics, ",")}
	if o.registry {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		c.registryURL = "http://" + addr
		args = append(args, "--registry-listen", addr)
	}
	c.broker = newProc(t, dir, "broker", args...)
	c.startBroker()
	c.metrics = newMetricsWatch(t)
	return c
}

// startBroker starts the broker process and waits until it serves the
// topics' metadata.
func (c *cluster) startBroker() {
	c.t.Helper()
	c.broker.start()
	waitFor(c.t, 60*time.Second, "the broker to serve metadata", func() bool {
		if !c.broker.alive() {
			c.t.Fatalf("the broker exited:\n%s", tailFile(c.broker.logPath, 30))
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokerAddr), kgo.DialTimeout(time.Second))
		if err != nil {
			return false
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		defer cancel()
		md, err := kadm.NewClient(cl).Metadata(ctx, c.o.topics...)
		if err != nil {
			return false
		}
		for _, tp := range c.o.topics {
			if d, ok := md.Topics[tp]; !ok || d.Err != nil || len(d.Partitions) != c.o.partitions {
				return false
			}
		}
		return true
	})
	if c.registryURL == "" {
		return
	}
	waitFor(c.t, 60*time.Second, "the schema registry to answer", func() bool {
		cl := http.Client{Timeout: 2 * time.Second}
		resp, err := cl.Get(c.registryURL + "/subjects")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// restartBroker stops the broker (SIGKILL when hard, else SIGTERM) and
// starts it again on the same port and data directory.
func (c *cluster) restartBroker(hard bool) {
	c.t.Helper()
	if hard {
		c.broker.kill()
	} else {
		c.broker.term(60 * time.Second)
	}
	c.startBroker()
}

func (c *cluster) configYAML(metricsPort int) string {
	session := ""
	if c.o.sessionTimeout > 0 {
		session = fmt.Sprintf("  session_timeout: %s\n", c.o.sessionTimeout)
	}
	batch := ""
	if c.o.batchYAML != "" {
		batch = "batch:\n" + c.o.batchYAML
	}
	reg := ""
	if c.registryURL != "" {
		reg = fmt.Sprintf("schema_registry:\n  urls: [%q]\n", c.registryURL)
	}
	return fmt.Sprintf(`kafka:
  brokers: [%q]
  group: %s
  rebalance_timeout: 20s
%spostgres:
  url: %q
  max_conns: %%d
%s%smetrics:
  listen: 127.0.0.1:%d
log:
  level: info
tables:
%s`, c.brokerAddr, c.group, session, c.url, batch, reg, metricsPort, c.o.tablesYAML)
}

// addInstance prepares (does not start) an appliance instance. maxConns 0
// keeps the cluster's.
func (c *cluster) addInstance(maxConns int) *instance {
	c.t.Helper()
	if maxConns == 0 {
		maxConns = c.o.maxConns
	}
	port := freePort(c.t)
	name := fmt.Sprintf("sluice%d", len(c.instances)+1)
	cfg := filepath.Join(c.dir, name+".yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, c.configYAML(port), maxConns), 0o644); err != nil {
		c.t.Fatal(err)
	}
	in := &instance{proc: newProc(c.t, c.dir, name, "run", "--config", cfg), cfgPath: cfg,
		metricsAddr: fmt.Sprintf("127.0.0.1:%d", port)}
	c.instances = append(c.instances, in)
	c.metrics.add(in)
	return in
}

// migrate creates the tables with `sluice migrate` and indexes the
// position columns so the sampler's per-partition max() is cheap.
func (c *cluster) migrate(tables ...string) {
	c.t.Helper()
	if len(c.instances) == 0 {
		c.addInstance(0)
	}
	out, err := exec.Command(sluiceBin, "migrate", "--config", c.instances[0].cfgPath).CombinedOutput()
	if err != nil {
		c.t.Fatalf("sluice migrate: %v\n%s", err, out)
	}
	conn := c.conn()
	defer conn.Close(c.ctx)
	for _, tb := range tables {
		idx := strings.ReplaceAll(tb, ".", "_") + "_pos"
		if _, err := conn.Exec(c.ctx, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (src_partition, src_offset)", idx, tb)); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *cluster) conn() *pgx.Conn {
	c.t.Helper()
	conn, err := pgx.Connect(c.ctx, c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	return conn
}

// start starts an instance and waits until its metrics endpoint answers.
func (in *instance) startAndWait(t *testing.T, env ...string) {
	t.Helper()
	in.start(env...)
	waitFor(t, 60*time.Second, in.name+" to serve /healthz", func() bool {
		if !in.alive() {
			t.Fatalf("%s exited at start:\n%s", in.name, tailFile(in.logPath, 30))
		}
		resp, err := http.Get("http://" + in.metricsAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// waitGroupSettled waits until the consumer group is Stable with as many
// members as instances are alive: every live instance has finished
// joining and no killed instance's member is left. A member killed while
// its JoinGroup waited for the rebalance used to stay for good (kfake arms
// no session timer when the join response cannot be delivered; see
// README.md, "Findings (fixed)"); the embedded broker now removes it after
// its session and rebalance timeouts, and this checks that it did.
func (c *cluster) waitGroupSettled(d time.Duration) {
	c.t.Helper()
	var last string
	ok := poll(d, func() bool {
		alive := 0
		for _, in := range c.instances {
			if in.alive() {
				alive++
			}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokerAddr))
		if err != nil {
			return false
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		defer cancel()
		gs, err := kadm.NewClient(cl).DescribeGroups(ctx, c.group)
		if err != nil {
			return false
		}
		g := gs[c.group]
		last = fmt.Sprintf("state %s, %d members, %d instances alive", g.State, len(g.Members), alive)
		return g.Err == nil && g.State == "Stable" && len(g.Members) == alive
	})
	if !ok {
		c.t.Fatalf("the group did not settle within %v: %s", d, last)
	}
}

// endOffsets returns the log end offset of every partition of the topics.
func (c *cluster) endOffsets() map[tp]int64 {
	c.t.Helper()
	var out map[tp]int64
	waitFor(c.t, 60*time.Second, "the broker's end offsets", func() bool {
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokerAddr))
		if err != nil {
			return false
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		defer cancel()
		lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, c.o.topics...)
		if err != nil || lo.Error() != nil {
			return false
		}
		out = map[tp]int64{}
		lo.Each(func(o kadm.ListedOffset) { out[tp{o.Topic, o.Partition}] = o.Offset })
		return len(out) == len(c.o.topics)*c.o.partitions
	})
	return out
}

// waitDrained waits until every partition's stored next_offset is its log
// end offset. A stored offset beyond the log end fails at once.
func (c *cluster) waitDrained(d time.Duration) {
	c.t.Helper()
	ends := c.endOffsets()
	conn := c.conn()
	defer conn.Close(c.ctx)
	var behind []string
	ok := poll(d, func() bool {
		stored, err := readOffsets(c.ctx, conn, c.group)
		if err != nil {
			return false
		}
		behind = behind[:0]
		for k, end := range ends {
			s, ok := stored[k]
			switch {
			case ok && s.next > end:
				c.t.Fatalf("%s/%d: stored next_offset %d is beyond the log end %d", k.topic, k.partition, s.next, end)
			case end == 0:
			case !ok || s.next != end:
				behind = append(behind, fmt.Sprintf("%s/%d at %d of %d", k.topic, k.partition, s.next, end))
			}
		}
		return len(behind) == 0
	})
	if !ok {
		sort.Strings(behind)
		c.t.Fatalf("not drained after %v: %s", d, strings.Join(behind, ", "))
	}
}

// waitLagZero waits until the running instances report sluice_consumer_lag
// 0 for every partition and at least one of them reports each partition.
func (c *cluster) waitLagZero(d time.Duration) {
	c.t.Helper()
	var last string
	ok := poll(d, func() bool {
		seen := map[string]bool{}
		for _, in := range c.instances {
			if !in.alive() {
				continue
			}
			m, err := scrape(in.metricsAddr)
			if err != nil {
				return false
			}
			for k, v := range m {
				if strings.HasPrefix(k, "sluice_consumer_lag{") {
					if v != 0 {
						last = fmt.Sprintf("%s %s = %v", in.name, k, v)
						return false
					}
					seen[k] = true
				}
			}
		}
		last = fmt.Sprintf("lag reported for %d partitions, want %d", len(seen), len(c.o.topics)*c.o.partitions)
		return len(seen) == len(c.o.topics)*c.o.partitions
	})
	if !ok {
		c.t.Fatalf("sluice_consumer_lag did not return to 0 within %v: %s", d, last)
	}
}

// terminateBackends terminates the appliance's PostgreSQL sessions and
// returns how many.
func (c *cluster) terminateBackends(conn *pgx.Conn) (int, error) {
	var n int
	err := conn.QueryRow(c.ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = 'sluice' AND datname = $1 AND pid <> pg_backend_pid()`, c.dbName).Scan(&n)
	return n, err
}

// ---------------------------------------------------------------------------
// Traffic

// stream is one loadgen run into one table, produced in the background
// until stopped.
type stream struct {
	gen        loadgen.Options
	table      string
	onConflict string
	guard      string // the table's guard column under update: "" (the offset) or "version"

	cancel context.CancelFunc
	done   chan struct{}
	stats  loadgen.Stats
	err    error
}

func (c *cluster) produce(gen loadgen.Options, table, onConflict string) *stream {
	ctx, cancel := context.WithCancel(c.ctx)
	s := &stream{gen: gen, table: table, onConflict: onConflict, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.stats, s.err = loadgen.Produce(ctx, []string{c.brokerAddr}, gen, nil)
	}()
	c.t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// stop ends the stream (what was handed to the producer is flushed and
// transactions end as planned) and returns its stats.
func (s *stream) stop(t *testing.T) loadgen.Stats {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute):
		t.Fatalf("loadgen on %s did not stop within 3 minutes", s.gen.Topic)
	}
	if s.err != nil {
		t.Fatalf("loadgen on %s: %v", s.gen.Topic, s.err)
	}
	return s.stats
}

// wait waits for a stream with a record count to finish.
func (s *stream) wait(t *testing.T, d time.Duration) loadgen.Stats {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		t.Fatalf("loadgen on %s did not finish within %v", s.gen.Topic, d)
	}
	if s.err != nil {
		t.Fatalf("loadgen on %s: %v", s.gen.Topic, s.err)
	}
	return s.stats
}

// verify runs loadgen.Verify for s and fails on any anomaly.
func (c *cluster) verify(s *stream, st loadgen.Stats) loadgen.Report {
	c.t.Helper()
	rep, err := loadgen.Verify(c.ctx, c.url, loadgen.VerifyOptions{Gen: s.gen, Stats: &st, Table: s.table, OnConflict: s.onConflict, Guard: s.guard})
	if err != nil {
		c.t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteSummary(&b)
	c.t.Log(b.String())
	if !rep.OK() {
		c.t.Errorf("exactly-once violated in %s:\n%s", s.table, b.String())
	}
	if st.Committed.Total() == 0 {
		c.t.Errorf("%s: nothing was committed by the producer; the run proves nothing", s.table)
	}
	return rep
}

// tableYAML is the table loadgen's schema lands in, with the partition
// column the sampler needs, small oversized limit and the conflict policy.
func tableYAML(schema, table, topic, onConflict string, maxRecordBytes int) string {
	y := loadgen.TableConfigYAML(schema, table, topic)
	y = strings.Replace(y, "on_conflict: ignore", "on_conflict: "+onConflict, 1)
	y += "    - {name: src_partition, type: int4, source: kafka.partition}\n"
	if maxRecordBytes > 0 {
		y += fmt.Sprintf("  max_record_bytes: %d\n", maxRecordBytes)
	}
	return y
}

// ---------------------------------------------------------------------------
// The sampler: invariants while the faults run.

type tp struct {
	topic     string
	partition int32
}

type stored struct {
	next, epoch int64
}

func readOffsets(ctx context.Context, conn *pgx.Conn, group string) (map[tp]stored, error) {
	rows, err := conn.Query(ctx, `SELECT topic, partition, next_offset, owner_epoch FROM sluice.offsets WHERE group_id = $1`, group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[tp]stored{}
	for rows.Next() {
		var k tp
		var s stored
		if err := rows.Scan(&k.topic, &k.partition, &s.next, &s.epoch); err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, rows.Err()
}

// progress is a change of a partition's stored next_offset, as observed.
type progress struct {
	at   time.Time
	next int64
}

type sampler struct {
	c      *cluster
	tables map[string]string // topic → target table
	idle   map[string]bool   // topics no longer produced to: progress is not awaited
	stop   chan struct{}
	done   chan struct{}

	mu         sync.Mutex
	last       map[tp]stored
	history    map[tp][]progress
	violations []string
	samples    int
	snapshots  int
	pgErrors   int
}

// startSampler polls sluice.offsets every 50 ms (monotonicity of
// next_offset and owner_epoch per partition) and every 500 ms checks, in
// one repeatable-read snapshot, that no row or dead letter lies at or
// beyond its partition's stored offset.
func (c *cluster) startSampler(tables map[string]string) *sampler {
	s := &sampler{c: c, tables: tables, stop: make(chan struct{}), done: make(chan struct{}),
		last: map[tp]stored{}, history: map[tp][]progress{}, idle: map[string]bool{}}
	c.sampler = s
	go s.run()
	c.t.Cleanup(func() {
		s.halt()
		if c.t.Failed() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, v := range s.violations {
				c.t.Logf("sampler saw: %s", v)
			}
		}
	})
	return s
}

func (s *sampler) halt() {
	if !isClosed(s.stop) {
		close(s.stop)
	}
	<-s.done
}

func (s *sampler) violate(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.violations) < 50 {
		s.violations = append(s.violations, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

func (s *sampler) run() {
	defer close(s.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	lastSnap := time.Time{}
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if conn == nil || conn.IsClosed() {
			ctx, cancel := context.WithTimeout(s.c.ctx, 2*time.Second)
			var err error
			conn, err = pgx.Connect(ctx, s.c.url)
			cancel()
			if err != nil {
				conn = nil
				s.mu.Lock()
				s.pgErrors++
				s.mu.Unlock()
				continue
			}
		}
		ctx, cancel := context.WithTimeout(s.c.ctx, 5*time.Second)
		err := s.sample(ctx, conn)
		if err == nil && time.Since(lastSnap) > 500*time.Millisecond {
			err = s.snapshot(ctx, conn)
			lastSnap = time.Now()
		}
		cancel()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			s.mu.Lock()
			s.pgErrors++
			s.mu.Unlock()
		}
	}
}

func (s *sampler) sample(ctx context.Context, conn *pgx.Conn) error {
	now := time.Now()
	offs, err := readOffsets(ctx, conn, s.c.group)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	for k, cur := range offs {
		prev, seen := s.last[k]
		if seen && cur.next < prev.next {
			s.violations = append(s.violations, fmt.Sprintf("%s %s/%d: next_offset went back from %d to %d",
				now.Format("15:04:05.000"), k.topic, k.partition, prev.next, cur.next))
		}
		if seen && cur.epoch < prev.epoch {
			s.violations = append(s.violations, fmt.Sprintf("%s %s/%d: owner_epoch went back from %d to %d",
				now.Format("15:04:05.000"), k.topic, k.partition, prev.epoch, cur.epoch))
		}
		if !seen || cur.next != prev.next {
			s.history[k] = append(s.history[k], progress{at: now, next: cur.next})
		}
		s.last[k] = cur
	}
	for k := range s.last {
		if _, ok := offs[k]; !ok {
			s.violations = append(s.violations, fmt.Sprintf("%s/%d: offsets row vanished", k.topic, k.partition))
		}
	}
	return nil
}

func (s *sampler) snapshot(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	offs := map[tp]stored{}
	rows, err := tx.Query(ctx, `SELECT topic, partition, next_offset, owner_epoch FROM sluice.offsets WHERE group_id = $1`, s.c.group)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k tp
		var st stored
		if err := rows.Scan(&k.topic, &k.partition, &st.next, &st.epoch); err != nil {
			rows.Close()
			return err
		}
		offs[k] = st
	}
	rows.Close()
	if rows.Err() != nil {
		return rows.Err()
	}
	for topic, table := range s.tables {
		for p := int32(0); p < int32(s.c.o.partitions); p++ {
			next := int64(-1)
			if st, ok := offs[tp{topic, p}]; ok {
				next = st.next
			}
			var maxRow, maxDead *int64
			if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT max(src_offset) FROM %s WHERE src_partition = $1", table), p).Scan(&maxRow); err != nil {
				return err
			}
			if err := tx.QueryRow(ctx, `SELECT max("offset") FROM sluice.dead_letters WHERE topic = $1 AND partition = $2`, topic, p).Scan(&maxDead); err != nil {
				return err
			}
			if maxRow != nil && *maxRow >= next {
				s.violate("%s/%d: %s holds a row at offset %d but the stored next_offset is %d", topic, p, table, *maxRow, next)
			}
			if maxDead != nil && *maxDead >= next {
				s.violate("%s/%d: a dead letter at offset %d but the stored next_offset is %d", topic, p, *maxDead, next)
			}
		}
	}
	s.mu.Lock()
	s.snapshots++
	s.mu.Unlock()
	return nil
}

// check fails the test on any violation seen so far and on a sampler that
// never sampled.
func (s *sampler) check(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.violations {
		t.Errorf("invariant violated: %s", v)
	}
	if s.samples == 0 || s.snapshots == 0 {
		t.Errorf("the sampler took %d samples and %d snapshots; the invariants were not watched", s.samples, s.snapshots)
	}
	t.Logf("sampler: %d offset samples, %d snapshots, %d PostgreSQL errors (expected during PostgreSQL faults)", s.samples, s.snapshots, s.pgErrors)
}

// setIdle stops awaiting progress on topic (its producer stopped).
func (s *sampler) setIdle(topic string) {
	s.mu.Lock()
	s.idle[topic] = true
	s.mu.Unlock()
}

// current returns the last sampled next_offset of every partition.
// fresh returns the stored offsets as of a sample taken after the call
// (or, if PostgreSQL answers no sample within 10 s, the last one). A base
// for allProgressedSince must be fresh: a sample from just before a kill
// misses the victim's last commits, which would then count as progress by
// its successor, and the next fault would hit the successor mid-join.
func (s *sampler) fresh() map[tp]int64 {
	s.mu.Lock()
	want := s.samples + 2
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		n := s.samples
		s.mu.Unlock()
		if n >= want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s.current()
}

func (s *sampler) current() map[tp]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[tp]int64{}
	for k, v := range s.last {
		out[k] = v.next
	}
	return out
}

// allProgressedSince waits until every partition of the sampler's topics
// stored an offset beyond base, and returns when the last of them did.
func (s *sampler) allProgressedSince(t *testing.T, base map[tp]int64, d time.Duration) time.Time {
	t.Helper()
	var latest time.Time
	waitFor(t, d, "every partition to make progress", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		latest = time.Time{}
		for topic := range s.tables {
			if s.idle[topic] {
				continue
			}
			for p := int32(0); p < int32(s.c.o.partitions); p++ {
				k := tp{topic, p}
				found := false
				for _, h := range s.history[k] {
					if h.next > base[k] {
						if h.at.After(latest) {
							latest = h.at
						}
						found = true
						break
					}
				}
				if !found {
					return false
				}
			}
		}
		return true
	})
	return latest
}

// ---------------------------------------------------------------------------
// Metrics

// scrape reads /metrics into series → value.
func scrape(addr string) (map[string]float64, error) {
	cl := http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

func sumPrefix(m map[string]float64, prefix string) float64 {
	var n float64
	for k, v := range m {
		if k == prefix || strings.HasPrefix(k, prefix+"{") {
			n += v
		}
	}
	return n
}

// metricsWatch accumulates counters of every instance across its lives
// (a restarted process starts its counters at 0).
type metricsWatch struct {
	mu    sync.Mutex
	ins   []*instance
	last  map[string]float64 // instance/series → last value
	total map[string]float64 // series name (no labels) → accumulated
	stop  chan struct{}
	done  chan struct{}
}

var watchedCounters = []string{"sluice_rebalances_total", "sluice_fenced_total", "sluice_batch_retries_total", "sluice_batches_committed_total",
	"sluice_probed_keys_total", "sluice_chunk_retries_total", "sluice_rows_deduplicated_total"}

func newMetricsWatch(t *testing.T) *metricsWatch {
	w := &metricsWatch{last: map[string]float64{}, total: map[string]float64{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			w.scrapeAll()
		}
	}()
	t.Cleanup(func() { close(w.stop); <-w.done })
	return w
}

func (w *metricsWatch) add(in *instance) {
	w.mu.Lock()
	w.ins = append(w.ins, in)
	w.mu.Unlock()
}

func (w *metricsWatch) scrapeAll() {
	w.mu.Lock()
	ins := append([]*instance(nil), w.ins...)
	w.mu.Unlock()
	for _, in := range ins {
		if !in.alive() {
			continue
		}
		m, err := scrape(in.metricsAddr)
		if err != nil {
			continue
		}
		w.mu.Lock()
		for _, name := range watchedCounters {
			v := sumPrefix(m, name)
			k := in.name + "/" + name
			prev, ok := w.last[k]
			switch {
			case !ok || v < prev: // first sight, or a new life
				w.total[name] += v
			default:
				w.total[name] += v - prev
			}
			w.last[k] = v
		}
		w.mu.Unlock()
	}
}

// forget makes the next scrape of in count from 0: call it when in starts a
// new life, so counts of the old life are not lost or doubled.
func (w *metricsWatch) forget(in *instance) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, name := range watchedCounters {
		w.last[in.name+"/"+name] = 0
	}
}

func (w *metricsWatch) get(name string) float64 {
	w.scrapeAll()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total[name]
}

// ---------------------------------------------------------------------------
// Faults

// killAt starts in with SLUICE_FAULT=point:n, waits for the hook to kill it
// and checks that it died of SIGKILL at that point.
func (c *cluster) killAt(in *instance, point string, n int) {
	c.t.Helper()
	c.metrics.forget(in)
	in.start(fmt.Sprintf("SLUICE_FAULT=%s:%d", point, n))
	c.faultDeath(in, point, n, 2*time.Minute)
}

// faultDeath waits up to d for in, started with SLUICE_FAULT=point:n, to
// die and checks that it died of SIGKILL at that point.
func (c *cluster) faultDeath(in *instance, point string, n int, d time.Duration) {
	c.t.Helper()
	st, ok := in.waitExit(d)
	if !ok {
		c.t.Fatalf("%s with SLUICE_FAULT=%s:%d did not die within %v: the point was not reached %d times", in.name, point, n, d, n)
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("%s with SLUICE_FAULT=%s:%d exited with %v, want death by SIGKILL:\n%s", in.name, point, n, st, tailFile(in.logPath, 30))
	}
	if !strings.Contains(tailFile(in.logPath, 200), "SLUICE_FAULT: "+point) {
		c.t.Fatalf("%s died without the fault hook's message for %s", in.name, point)
	}
}

// restart starts a dead instance's next life and waits for /healthz.
func (c *cluster) restart(in *instance) {
	c.t.Helper()
	c.metrics.forget(in)
	in.startAndWait(c.t)
}

// randomDelay is a fault's random timing (not synchronisation).
func randomDelay(lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(rand.Int64N(int64(hi-lo))))
}

// lockTable holds an EXCLUSIVE lock on table for d, from the test: the
// appliance's merges block (slow PostgreSQL) while reads go on.
func (c *cluster) lockTable(table string, d time.Duration) error {
	conn := c.conn()
	defer conn.Close(c.ctx)
	tx, err := conn.Begin(c.ctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(c.ctx, "LOCK TABLE "+table+" IN EXCLUSIVE MODE"); err != nil {
		tx.Rollback(c.ctx)
		return err
	}
	time.Sleep(d) // the fault's duration
	return tx.Commit(c.ctx)
}
