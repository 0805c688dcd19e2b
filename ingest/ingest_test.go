package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	pgcopy "github.com/sluice-dev/sluice/copy"
	"github.com/sluice-dev/sluice/internal/devenv"
)

var testPG *devenv.Postgres

func TestMain(m *testing.M) {
	ctx := context.Background()
	var err error
	testPG, err = devenv.StartPostgres(ctx, devenv.PostgresOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the test PostgreSQL:", err)
		os.Exit(1)
	}
	code := m.Run()
	testPG.Stop()
	os.Exit(code)
}

// env is one test's world: its own database, broker and topic.
type env struct {
	t      *testing.T
	ctx    context.Context
	url    string
	broker *devenv.Broker
	topic  string
	parts  int
	prod   *kgo.Client
	db     *pgx.Conn
}

var dbSeq struct {
	sync.Mutex
	n int
}

func newEnv(t *testing.T, partitions int) *env {
	t.Helper()
	ctx := context.Background()
	dbSeq.Lock()
	dbSeq.n++
	name := fmt.Sprintf("ingest_%d", dbSeq.n)
	dbSeq.Unlock()
	url, err := testPG.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := devenv.StartBroker(devenv.BrokerOptions{Topics: []string{"events", "events2"}, Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic("events"),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return &env{t: t, ctx: ctx, url: url, broker: b, topic: "events", parts: partitions, prod: prod, db: db}
}

// tableYAML is the default test table: keyed by id.
const tableYAML = `
  - name: public.items
    topics: [events]
    key: [id]
    on_conflict: %s
    columns:
      - {name: id, type: uuid, path: id, required: true}
      - {name: n, type: int8, path: n}
      - {name: v, type: text, path: v}
      - {name: src_offset, type: int8, source: kafka.offset}
`

// configYAML is the tests' configuration: the env's broker and database,
// fast group timeouts and small batches. kafkaExtra and pgExtra are lines
// indented by two spaces, inside kafka: and postgres:; tables are items of
// the tables: list.
func configYAML(brokers []string, pgURL, kafkaExtra, pgExtra, tables string) []byte {
	bs, _ := json.Marshal(brokers) // JSON is YAML
	return fmt.Appendf(nil, `
kafka:
  brokers: %s
  group: g
  session_timeout: 3s
  rebalance_timeout: 10s
%s
postgres:
  url: %q
  max_conns: 2
%s
batch:
  max_rows: 500
  max_bytes: 1MiB
  max_age: 50ms
metrics:
  listen: 127.0.0.1:0
tables:
%s`, bs, kafkaExtra, pgURL, pgExtra, tables)
}

// configRegistry is config with schema_registry.urls set to registryURL.
func (e *env) configRegistry(registryURL, tables string) *Config {
	e.t.Helper()
	y := configYAML(e.broker.Addrs(), e.url, "", "", tables)
	y = append([]byte("schema_registry:\n  urls: ["+registryURL+"]\n"), y...)
	c, err := Parse(y, noEnv)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) config(tables string) *Config {
	e.t.Helper()
	y := configYAML(e.broker.Addrs(), e.url, "", "", tables)
	c, err := Parse(y, noEnv)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

type running struct {
	app  *App
	stop func()
}

func (e *env) start(cfg *Config, prep ...func(*App)) *running {
	e.t.Helper()
	lvl := slog.LevelInfo
	if os.Getenv("SLUICE_TEST_DEBUG") != "" {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: lvl}))
	app, err := New(cfg, log)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range prep {
		f(app)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(60 * time.Second):
				e.t.Error("Run did not return within 60s of cancel")
			}
		})
	}
	e.t.Cleanup(stop)
	e.waitFor("app consuming", func() bool {
		select {
		case err := <-done:
			e.t.Fatalf("Run returned early: %v", err)
		default:
		}
		return app.consuming.Load()
	})
	return &running{app: app, stop: stop}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			if os.Getenv("SLUICE_TEST_DEBUG") != "" {
				pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			}
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func uuidFor(i int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
}

func item(i int, v string) *kgo.Record {
	id := uuidFor(i)
	return &kgo.Record{Key: []byte(id), Value: fmt.Appendf(nil, `{"id":%q,"n":%d,"v":%q}`, id, i, v)}
}

func (e *env) produce(recs ...*kgo.Record) {
	e.t.Helper()
	if err := e.prod.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// logEnd returns the sum of the topics' log end offsets.
func (e *env) logEnd() int64 {
	e.t.Helper()
	lo, err := kadm.NewClient(e.prod).ListEndOffsets(e.ctx, "events", "events2")
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	lo.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// storedSum returns the sum of stored next_offsets (ignoring -1).
func (e *env) storedSum() int64 {
	var n int64
	err := e.db.QueryRow(e.ctx, `SELECT coalesce(sum(greatest(next_offset,0)),0) FROM sluice.offsets WHERE group_id='g'`).Scan(&n)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) count(q string, args ...any) int64 {
	e.t.Helper()
	var n int64
	if err := e.db.QueryRow(e.ctx, q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitDrained waits until the stored offsets cover `produced` records
// (no transactions here, so the log end offsets sum to the records produced).
func (e *env) waitDrained(produced int64) {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("stored offsets to reach %d", produced), func() bool { return e.storedSum() >= produced })
	if got := e.storedSum(); got != produced {
		e.t.Fatalf("stored offsets sum to %d, want exactly %d", got, produced)
	}
}

func TestExactlyOnceWithDuplicatesAndBadRecords(t *testing.T) {
	e := newEnv(t, 4)
	r := e.start(e.config(fmt.Sprintf(tableYAML, "ignore")))
	var recs []*kgo.Record
	const good, dups = 2000, 300
	for i := 0; i < good; i++ {
		recs = append(recs, item(i, "first"))
	}
	for i := 0; i < dups; i++ {
		recs = append(recs, item(i*5, "dup")) // same key, so same partition, later offset
	}
	bad := []*kgo.Record{
		{Key: []byte("b1"), Value: []byte(`{"id":`)},                                                  // malformed
		{Key: []byte("b2"), Value: []byte(`{"id":"` + uuidFor(9000) + `","n":"many"}`)},               // wrong type
		{Key: []byte("b3"), Value: []byte(`{"n":1}`)},                                                 // missing required id
		{Key: []byte("b4"), Value: []byte(`{"id":"` + uuidFor(9001) + `","n":1e30}`)},                 // out of range
		{Key: []byte("b5"), Value: []byte(`{"id":"` + uuidFor(9002) + `","v":"a\u0000b"}`)},           // NUL in text
		{Key: []byte("b6"), Value: append([]byte(`{"id":"`+uuidFor(9003)+`","v":"`), 0xff, '"', '}')}, // invalid UTF-8
	}
	recs = append(recs, bad...)
	e.produce(recs...)
	e.waitDrained(int64(len(recs)))

	if n := e.count(`SELECT count(*) FROM public.items`); n != good {
		t.Errorf("target holds %d rows, want %d unique events", n, good)
	}
	if n := e.count(`SELECT count(*) FROM public.items WHERE v <> 'first'`); n != 0 {
		t.Errorf("%d rows were overwritten by duplicates under on_conflict ignore", n)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != int64(len(bad)) {
		t.Errorf("dead letters = %d, want %d", n, len(bad))
	}
	// A dead letter names its reason.
	var reasons []string
	rows, err := e.db.Query(e.ctx, `SELECT error FROM sluice.dead_letters ORDER BY "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		reasons = append(reasons, s)
	}
	rows.Close()
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"malformed_json", "column n", "missing_required", "out_of_range", "nul_in_text", "invalid_utf8"} {
		if !strings.Contains(all, want) {
			t.Errorf("dead-letter errors do not mention %q:\n%s", want, all)
		}
	}
	// Metrics and health.
	body := httpGet(t, "http://"+r.app.MetricsAddr()+"/metrics")
	for _, name := range []string{"sluice_records_consumed_total", "sluice_rows_written_total{table=\"public.items\"}",
		"sluice_dead_letters_total{table=\"public.items\",reason=\"malformed_json\"}", "sluice_batches_committed_total",
		"sluice_batch_rows_bucket", "sluice_copy_duration_seconds_bucket", "sluice_merge_duration_seconds_bucket",
		"sluice_commit_duration_seconds_bucket", "sluice_consumer_lag{topic=\"events\"", "sluice_inflight_bytes",
		"sluice_end_to_end_seconds_bucket", "sluice_fenced_total", "sluice_rebalances_total", "sluice_partition_halted{"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if s := httpGet(t, "http://"+r.app.MetricsAddr()+"/readyz"); !strings.Contains(s, "ready") {
		t.Errorf("/readyz = %q", s)
	}
	if err := HealthcheckMain(e.ctx, []string{"--addr", r.app.MetricsAddr(), "--path", "/readyz"}, io.Discard, io.Discard); err != nil {
		t.Errorf("healthcheck of a ready appliance: %v", err)
	}
	if err := HealthcheckMain(e.ctx, []string{"--addr", "127.0.0.1:1"}, io.Discard, io.Discard); err == nil {
		t.Error("healthcheck of a closed port succeeded")
	}
	r.stop()
	if got := e.count(`SELECT count(*) FROM public.items`); got != good {
		t.Errorf("after shutdown target holds %d rows, want %d", got, good)
	}
}

func pgconnFor(e *env) (*pgconn.PgConn, error) { return pgconn.Connect(e.ctx, e.url) }

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRestartMidStream(t *testing.T) {
	e := newEnv(t, 3)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r1 := e.start(cfg)
	var total int64
	for i := 0; i < 1500; i++ {
		e.produce(item(i, "x"))
		total++
		if i == 300 {
			e.waitFor("a first commit", func() bool { return e.storedSum() > 0 })
			r1.stop() // graceful stop in the middle of the stream
		}
	}
	if e.storedSum() >= total {
		t.Fatal("everything was committed before the restart; the test proves nothing")
	}
	e.start(cfg)
	e.waitDrained(total)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 1500 {
		t.Fatalf("target holds %d rows, want 1500", n)
	}
}

func TestRebalanceTwoConsumers(t *testing.T) {
	e := newEnv(t, 6)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r1 := e.start(cfg)
	var total int64
	produceN := func(from, n int) {
		for i := from; i < from+n; i += 50 {
			var recs []*kgo.Record
			for j := i; j < i+50 && j < from+n; j++ {
				recs = append(recs, item(j, "x"))
			}
			e.produce(recs...)
			total += int64(len(recs))
		}
	}
	produceN(0, 1000)
	r2 := e.start(cfg) // joins the group: partitions move from r1 to r2
	e.waitFor("r2 to own partitions", func() bool { return r2.app.Stats().Partitions == 3 && r1.app.Stats().Partitions == 3 })
	produceN(1000, 1000)
	e.waitFor("both instances to commit", func() bool {
		return r1.app.m.batchesCommitted.Get() > 0 && r2.app.m.batchesCommitted.Get() > 0
	})
	r1.stop() // leaves: its partitions move to r2
	e.waitFor("r2 to own every partition", func() bool { return r2.app.Stats().Partitions == 6 })
	produceN(2000, 1000)
	e.waitDrained(total)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 3000 {
		t.Fatalf("target holds %d rows, want 3000", n)
	}
	if r2.app.m.rebalances.Get() < 2 {
		t.Errorf("r2 saw %d rebalances, want at least 2", r2.app.m.rebalances.Get())
	}
	if n := e.count(`SELECT max(owner_epoch) FROM sluice.offsets`); n < 2 {
		t.Errorf("max owner_epoch = %d; partitions should have been claimed more than once", n)
	}
}

func TestFencedStaleOwner(t *testing.T) {
	e := newEnv(t, 2)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r1 := e.start(cfg)
	e.waitFor("partitions claimed", func() bool {
		return e.count(`SELECT count(*) FROM sluice.offsets WHERE owner_epoch >= 1`) == 2
	})
	// A newer owner claims both partitions behind r1's back (what a new
	// group member does after r1 is presumed dead).
	conn, err := pgconnFor(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgcopy.ClaimPartitions(e.ctx, conn, "sluice", "g", map[string][]int32{"events": {0, 1}}); err != nil {
		t.Fatal(err)
	}
	conn.Close(e.ctx)
	for i := 0; i < 200; i++ {
		e.produce(item(i, "x"))
	}
	e.waitFor("r1 to be fenced", func() bool { return r1.app.m.fenced.Get() >= 1 })
	if n := e.count(`SELECT count(*) FROM public.items`); n != 0 {
		t.Fatalf("the fenced owner wrote %d rows", n)
	}
	if n := e.count(`SELECT count(*) FROM sluice.offsets WHERE next_offset >= 0`); n != 0 {
		t.Fatalf("the fenced owner advanced %d offsets", n)
	}
	r1.stop()
	// The next owner lands everything exactly once.
	e.start(cfg)
	e.waitDrained(200)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 200 {
		t.Fatalf("target holds %d rows, want 200", n)
	}
}

// TestResetOffsetWhileRunning: a reset-offset fences the running owner's
// next commit, and the owner, finding that the reset (not another owner)
// moved the partition, claims it again and resumes at the reset offset; it
// used to drop the partition's records until the next rebalance, silently.
// A reset followed by another owner's claim still stops it as a zombie.
func TestResetOffsetWhileRunning(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r := e.start(cfg)
	for i := 0; i < 5; i++ {
		e.produce(item(i, "x"))
	}
	e.waitDrained(5)
	path := writeConfig(t, cfg)
	// Back to 2: 2..4 are read again (and merged away), then 5..9.
	if err := ResetOffsetMain(e.ctx, []string{"--config", path, "--topic", "events", "--partition", "0", "--to", "2"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 10; i++ {
		e.produce(item(i, "x"))
	}
	e.waitDrained(10)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 10 {
		t.Errorf("target holds %d rows after the reset, want 10", n)
	}
	if r.app.m.fenced.Get() == 0 {
		t.Errorf("the owner's commit after the reset was not fenced")
	}
	if !r.app.Ready() {
		t.Errorf("not ready after picking up the reset: %s", r.app.notReady())
	}

	// A reset, then another owner's claim behind the instance's back.
	if err := ResetOffsetMain(e.ctx, []string{"--config", path, "--topic", "events", "--partition", "0", "--to", "10"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	conn, err := pgconnFor(e)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := pgcopy.ClaimPartitions(e.ctx, conn, "sluice", "g", map[string][]int32{"events": {0}})
	conn.Close(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	fenced := r.app.m.fenced.Get()
	for i := 10; i < 15; i++ {
		e.produce(item(i, "x"))
	}
	e.waitFor("the zombie to be fenced", func() bool { return r.app.m.fenced.Get() > fenced })
	time.Sleep(500 * time.Millisecond)
	if n := e.count(`SELECT owner_epoch FROM sluice.offsets WHERE topic = 'events' AND partition = 0`); n != claims[0].Epoch {
		t.Errorf("stored owner epoch %d, want the other owner's %d: the zombie claimed the partition back", n, claims[0].Epoch)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != 10 {
		t.Errorf("the zombie wrote: target holds %d rows, want 10", n)
	}
}

func TestOnConflictPolicies(t *testing.T) {
	e := newEnv(t, 1)
	tables := fmt.Sprintf(tableYAML, "update") + strings.NewReplacer("public.items", "public.firsts", "[events]", "[events2]", "on_conflict: %s", "on_conflict: ignore").Replace(tableYAML)
	r := e.start(e.config(tables))
	_ = r
	send := func(topic string, vs ...string) {
		for _, v := range vs {
			rec := item(7, v)
			rec.Topic = topic
			e.produce(rec)
		}
	}
	// Two values inside one batch, then later batches with more.
	send("events", "v1", "v2")
	send("events2", "v1", "v2")
	e.waitFor("first batches", func() bool { return e.storedSum() >= 4 })
	send("events", "v3", "v4", "v5")
	send("events2", "v3", "v4", "v5")
	e.waitDrained(10)
	var v string
	var off int64
	if err := e.db.QueryRow(e.ctx, `SELECT v, src_offset FROM public.items`).Scan(&v, &off); err != nil {
		t.Fatal(err)
	}
	if v != "v5" || off != 4 {
		t.Errorf("update policy: got v=%s src_offset=%d, want the highest offset's v5 at 4", v, off)
	}
	if err := e.db.QueryRow(e.ctx, `SELECT v, src_offset FROM public.firsts`).Scan(&v, &off); err != nil {
		t.Fatal(err)
	}
	if v != "v1" || off != 0 {
		t.Errorf("ignore policy: got v=%s src_offset=%d, want the first write v1 at 0", v, off)
	}
}

func TestPoisonRecordsAndPostgresRejects(t *testing.T) {
	e := newEnv(t, 1)
	// A target with a CHECK the codec cannot know about: PostgreSQL rejects
	// the row, the batch is bisected and only that row is dead-lettered.
	if _, err := e.db.Exec(e.ctx, `CREATE TABLE public.items (id uuid PRIMARY KEY, n int8 CHECK (n >= 0), v text, src_offset int8)`); err != nil {
		t.Fatal(err)
	}
	tables := strings.Replace(fmt.Sprintf(tableYAML, "ignore"), "key: [id]", "key: [id]\n    create: false", 1)
	e.start(e.config(tables))
	e.produce(
		item(1, "a"),
		&kgo.Record{Value: []byte(`{"id":"` + uuidFor(2) + `","n":"NaN-ish"}`)}, // codec rejects
		item(3, "c"),
		&kgo.Record{Value: []byte(`{"id":"` + uuidFor(4) + `","n":-4}`)}, // PostgreSQL rejects
		item(5, "e"),
	)
	e.waitDrained(5)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 3 {
		t.Errorf("target holds %d rows, want the 3 good neighbours", n)
	}
	var errs []string
	rows, err := e.db.Query(e.ctx, `SELECT "offset", error FROM sluice.dead_letters ORDER BY "offset"`)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for rows.Next() {
		var o int64
		var s string
		rows.Scan(&o, &s)
		offs = append(offs, o)
		errs = append(errs, s)
	}
	rows.Close()
	if fmt.Sprint(offs) != "[1 3]" {
		t.Fatalf("dead letters at offsets %v, want [1 3]; errors %q", offs, errs)
	}
	if !strings.Contains(errs[0], "column n") || !strings.Contains(errs[1], "items_n_check") {
		t.Errorf("dead-letter reasons not precise: %q", errs)
	}
	// The row PostgreSQL rejected keeps its record's bytes (re-read from
	// Kafka: batches hold no record bytes).
	var value []byte
	if err := e.db.QueryRow(e.ctx, `SELECT value FROM sluice.dead_letters WHERE "offset" = 3`).Scan(&value); err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"` + uuidFor(4) + `","n":-4}`; string(value) != want {
		t.Errorf("rejected row's dead letter holds %q, want the record's value %q", value, want)
	}
}

// TestHaltOnOffsetOutOfRange: when the broker no longer has the stored
// offset (retention deleted it), the partition halts loudly instead of
// skipping; an operator reset moves it on.
func TestHaltOnOffsetOutOfRange(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r := e.start(cfg)
	for i := 0; i < 5; i++ {
		e.produce(item(i, "x"))
	}
	e.waitDrained(5)
	r.stop()
	for i := 5; i < 15; i++ {
		e.produce(item(i, "x"))
	}
	// Retention deletes offsets 5..9 before Sluice read them.
	adm := kadm.NewClient(e.prod)
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: "events", Partition: 0, At: 10})
	if _, err := adm.DeleteRecords(e.ctx, del); err != nil {
		t.Fatal(err)
	}
	r = e.start(cfg)
	e.waitFor("the partition to halt", func() bool { return !r.app.Ready() })
	if why := r.app.notReady(); !strings.Contains(why, "events/0") {
		t.Errorf("readyz reason %q does not name the halted partition", why)
	}
	body := httpGet(t, "http://"+r.app.MetricsAddr()+"/metrics")
	if !strings.Contains(body, `sluice_partition_halted{topic="events",partition="0"} 1`) {
		t.Errorf("/metrics does not show the halted partition")
	}
	resp, err := http.Get("http://" + r.app.MetricsAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d, want 503", resp.StatusCode)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != 5 {
		t.Fatalf("a halted partition wrote rows: %d, want 5", n)
	}
	r.stop()

	// The operator resets to the earliest available offset and restarts.
	path := writeConfig(t, cfg)
	var out strings.Builder
	if err := ResetOffsetMain(e.ctx, []string{"--config", path, "--topic", "events", "--partition", "0", "--to", "earliest"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "set to 10") {
		t.Errorf("reset-offset said %q", out.String())
	}
	r = e.start(cfg)
	e.waitDrained(15)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 10 {
		t.Fatalf("after reset the target holds %d rows, want 10 (0..4 and 10..14)", n)
	}
	if !r.app.Ready() {
		t.Errorf("not ready after the reset: %s", r.app.notReady())
	}
}

// TestResetOffsetRefusesMistakes: reset-offset refuses a topic no table
// reads, a partition the broker does not have, a negative offset and one
// outside the broker's log, storing nothing (a mistyped reset used to
// report success while the partition meant stayed halted); a reset it does
// make is reported with what was stored before.
func TestResetOffsetRefusesMistakes(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r := e.start(cfg)
	for i := 0; i < 5; i++ {
		e.produce(item(i, "x"))
	}
	e.waitDrained(5)
	r.stop()
	epoch := e.count(`SELECT owner_epoch FROM sluice.offsets WHERE topic = 'events' AND partition = 0`)
	path := writeConfig(t, cfg)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--topic", "evnets", "--partition", "0", "--to", "5"}, "no table reads topic evnets"},
		{[]string{"--topic", "events", "--partition", "7", "--to", "5"}, "topic events has 1 partition(s)"},
		{[]string{"--topic", "events", "--partition", "7", "--to", "latest"}, "topic events has 1 partition(s)"},
		{[]string{"--topic", "events", "--partition", "0", "--to", "-1"}, "use an offset >= 0"},
		{[]string{"--topic", "events", "--partition", "0", "--to", "6"}, "holds offsets 0 to 5"},
	} {
		var out strings.Builder
		err := ResetOffsetMain(e.ctx, append([]string{"--config", path}, c.args...), &out, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("reset-offset %v: %v (printed %q), want an error containing %q", c.args, err, out.String(), c.want)
		}
	}
	if n := e.count(`SELECT count(*) FROM sluice.offsets WHERE topic <> 'events' OR partition <> 0 OR next_offset <> 5 OR owner_epoch <> ` + fmt.Sprint(epoch)); n != 0 {
		t.Errorf("%d offsets row(s) stored or changed by refused resets", n)
	}
	var out, logged strings.Builder
	if err := ResetOffsetMain(e.ctx, []string{"--config", path, "--topic", "events", "--partition", "0", "--to", "2"}, &out, &logged); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("events/0 next offset set to 2, owner epoch %d (was 5 under owner epoch %d)", epoch+1, epoch); !strings.Contains(out.String(), want) {
		t.Errorf("reset-offset printed %q, want %q", out.String(), want)
	}
	if want := fmt.Sprintf("old_next_offset=5 old_epoch=%d", epoch); !strings.Contains(logged.String(), want) {
		t.Errorf("reset-offset logged %q, want %q", logged.String(), want)
	}
}

// writeConfig writes cfg as YAML to a temporary file.
func writeConfig(t *testing.T, cfg *Config) string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/sluice.yaml"
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBackpressure: with a tiny in-flight budget, fetching pauses instead of
// buffering the backlog, and everything still lands exactly once.
func TestBackpressure(t *testing.T) {
	e := newEnv(t, 2)
	var recs []*kgo.Record
	for i := 0; i < 3000; i++ {
		recs = append(recs, item(i, strings.Repeat("p", 200)))
	}
	e.produce(recs...)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	cfg.Batch.MaxBytes = 16 << 10
	cfg.Batch.MaxInflightBytes = 64 << 10
	cfg.Kafka.FetchMaxBytes = 32 << 10
	r := e.start(cfg)
	e.waitDrained(3000)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 3000 {
		t.Fatalf("target holds %d rows, want 3000", n)
	}
	if r.app.m.fetchPauses.Get() == 0 {
		t.Error("fetching never paused although the backlog is far larger than the in-flight budget")
	}
	if r.app.m.rebalances.Get() > 1 {
		t.Errorf("backpressure caused %d rebalances, want just the initial assignment", r.app.m.rebalances.Get())
	}
	// Bytes are released right after each commit; a leak never returns to 0.
	e.waitFor("the in-flight budget to return to 0", func() bool { return r.app.budget.InUse() == 0 })
}

// TestBudgetHoldsBackExpandingRows: records of a few KiB (gzip
// content-encoding) decode to rows of 2 MiB. Exceeding the budget pauses
// fetching, but the records already fetched were all encoded: every worker
// held a batch committing and a full one waiting, four rows each time the
// budget was already spent. Now a worker encodes no more while the budget
// is exceeded and its committer is writing, so each holds one row at most;
// a worker with nothing being written goes on, lest it wait on another.
func TestBudgetHoldsBackExpandingRows(t *testing.T) {
	e := newEnv(t, 4)
	const rowBytes = 2 << 20
	var recs []*kgo.Record
	for i := 0; i < 40; i++ {
		var z bytes.Buffer
		gz := gzip.NewWriter(&z)
		fmt.Fprintf(gz, `{"id":%q,"n":%d,"v":%q}`, uuidFor(i), i, strings.Repeat("a", rowBytes))
		gz.Close()
		recs = append(recs, &kgo.Record{Key: []byte(uuidFor(i)), Value: z.Bytes(),
			Headers: []kgo.RecordHeader{{Key: "content-encoding", Value: []byte("gzip")}}})
	}
	e.produce(recs...)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	cfg.Postgres.MaxConns = 4
	cfg.Batch.MaxBytes = 1 << 20
	cfg.Batch.MaxInflightBytes = 4 << 20
	cfg.Kafka.FetchMaxBytes = 1 << 20
	r := e.start(cfg)
	var peak int64
	deadline := time.Now().Add(60 * time.Second)
	for e.storedSum() < 40 && time.Now().Before(deadline) {
		for range 200 {
			peak = max(peak, r.app.budget.InUse())
			time.Sleep(100 * time.Microsecond)
		}
	}
	e.waitDrained(40)
	// One row per worker, and the records not yet decoded.
	if limit := int64(cfg.Postgres.MaxConns*rowBytes + rowBytes/2); peak > limit {
		t.Fatalf("the in-flight budget counted %d bytes at its peak, over %d (a row of %d bytes per worker)", peak, limit, rowBytes)
	}
	e.waitFor("the in-flight budget to return to 0", func() bool { return r.app.budget.InUse() == 0 })
}

// othersYAML is a second table, fed by the env's second topic.
const othersYAML = `
  - name: public.others
    topics: [events2]
    key: [id]
    columns:
      - {name: id, type: uuid, path: id, required: true}
      - {name: n, type: int8, path: n}
`

func otherItem(i int) *kgo.Record {
	r := item(i, "o")
	r.Topic = "events2"
	return r
}

// TestStuckWorkerDoesNotStarveOthers: one worker whose table cannot be
// written keeps its committer retrying; the other worker's table still
// fills. A trickle of small records fills the stuck worker's channel (64
// chunks) long before its bytes reach the flow-control mark, and the poll
// loop, blocked sending it one more chunk, once fed no worker at all.
func TestStuckWorkerDoesNotStarveOthers(t *testing.T) {
	e := newEnv(t, 1)
	roleURL := grantableRole(t, e, "sluice_starve")
	cfg, err := Parse(configYAML(e.broker.Addrs(), roleURL, "", "", fmt.Sprintf(tableYAML, "ignore")+othersYAML), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	r := e.start(cfg)
	stuck := revokeOnSplit(t, e, r, "sluice_starve")
	// One small chunk per fetch for the stuck worker.
	for i := 1; i <= 300; i++ {
		e.produce(item(i, "x"))
		time.Sleep(5 * time.Millisecond)
	}
	for i := 1; i <= 50; i++ {
		e.produce(otherItem(100000 + i))
	}
	deadline := time.Now().Add(20 * time.Second)
	for e.count(`SELECT count(*) FROM public.others`) < 51 {
		if time.Now().After(deadline) {
			t.Fatalf("public.others holds %d of 51 rows after 20s: the stuck worker (%d chunks, %d bytes queued) starves the other",
				e.count(`SELECT count(*) FROM public.others`), len(stuck.in), stuck.queued.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// revokeOnSplit drains one record each of events and events2, checks that
// their partitions went to two workers, and revokes role's INSERT on
// public.items until the test ends. It returns the worker of events,
// stuck from there on.
func revokeOnSplit(t *testing.T, e *env, r *running, role string) *worker {
	t.Helper()
	e.produce(item(0, "x"), otherItem(100000))
	e.waitDrained(2)
	a := r.app
	a.mu.Lock()
	stuck, other := a.parts[partKey{"events", 0}].worker, a.parts[partKey{"events2", 0}].worker
	a.mu.Unlock()
	if stuck == other {
		t.Fatal("both partitions on one worker; leastLoadedWorker should spread them")
	}
	if _, err := e.db.Exec(e.ctx, `REVOKE INSERT ON public.items FROM `+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Exec(context.Background(), `GRANT INSERT ON public.items TO `+role) })
	return stuck
}

// TestDispatchHoldsBack: dispatch never waits on a worker. A chunk its full
// channel does not take is held, and so is every later chunk of that
// partition, which is paused; handOver hands them over in order as the
// channel drains, then resumes the partition. The held chunks of a
// partition dropped meanwhile are let go, their bytes released.
func TestDispatchHoldsBack(t *testing.T) {
	y := fmt.Appendf(nil, "kafka: {brokers: [\"127.0.0.1:1\"]}\npostgres: {url: \"postgres://u@127.0.0.1:1/db\"}\nmetrics: {listen: \"\"}\ntables:\n%s",
		fmt.Sprintf(tableYAML, "ignore"))
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if a.cl, err = kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	defer a.cl.Close()
	w := newWorker(a, 0) // not running: its channel only fills
	a.workers = []*worker{w}
	st := &partState{topic: "events", table: a.tables[0], worker: w}
	a.parts[partKey{"events", 0}] = st
	var f flowControl
	offset := int64(0)
	chunk := func() {
		fp := kgo.FetchTopicPartition{Topic: "events", FetchPartition: kgo.FetchPartition{Partition: 0}}
		for range 3 {
			fp.Records = append(fp.Records, &kgo.Record{Topic: "events", Offset: offset, Value: []byte("{}")})
			offset++
		}
		a.dispatch(&f, fp)
	}
	paused := func() bool { return len(a.cl.PauseFetchPartitions(nil)["events"]) > 0 }
	next := int64(0)
	take := func(n int) {
		for range n {
			m := <-w.in
			for _, r := range m.recs {
				if r.Offset != next {
					t.Fatalf("worker got offset %d, want %d", r.Offset, next)
				}
				next++
			}
		}
	}
	for range cap(w.in) + 3 {
		chunk()
	}
	if len(w.in) != cap(w.in) || len(f.held[partKey{"events", 0}]) != 3 || !paused() {
		t.Fatalf("%d chunks sent, %d held, paused %v; want a full channel, 3 held, the partition paused",
			len(w.in), len(f.held[partKey{"events", 0}]), paused())
	}
	take(2)
	f.handOver(a)
	if len(f.held) != 1 || !paused() {
		t.Fatalf("after 2 chunks taken: %d partitions holding back, paused %v; want one chunk still held, paused", len(f.held), paused())
	}
	take(1)
	f.handOver(a)
	if len(f.held) != 0 || paused() {
		t.Fatalf("after 3 chunks taken: %d partitions holding back, paused %v; want none, resumed", len(f.held), paused())
	}
	take(cap(w.in))

	for range cap(w.in) + 2 {
		chunk()
	}
	take(cap(w.in))
	before := a.budget.InUse()
	st.dropped.Store(true)
	f.handOver(a)
	if len(f.held) != 0 || len(w.in) != 0 || paused() || a.budget.InUse() != before-6*recordCost(&kgo.Record{Value: []byte("{}")}) {
		t.Fatalf("dropped partition: %d held, %d sent, paused %v, budget %d of %d; want its 2 held chunks let go and released, resumed",
			len(f.held), len(w.in), paused(), a.budget.InUse(), before)
	}
}

// TestKcatInterop feeds the embedded broker with a real third-party Kafka
// client (kcat, librdkafka) and checks the appliance lands its records.
func TestKcatInterop(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (.ci/run installs it: apt-get install kcat)")
	}
	e := newEnv(t, 2)
	e.start(e.config(fmt.Sprintf(tableYAML, "ignore")))
	var in strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&in, "%s|{\"id\":%q,\"n\":%d,\"v\":\"kcat\"}\n", uuidFor(i), uuidFor(i), i)
	}
	in.WriteString("bad|{not json\n")
	cmd := exec.Command(kcat, "-P", "-b", e.broker.Addrs()[0], "-t", "events", "-K", "|", "-H", "source=kcat")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	e.waitDrained(101)
	if n := e.count(`SELECT count(*) FROM public.items WHERE v = 'kcat'`); n != 100 {
		t.Errorf("target holds %d kcat rows, want 100", n)
	}
	var key, headers string
	if err := e.db.QueryRow(e.ctx, `SELECT convert_from(key, 'UTF8'), headers::text FROM sluice.dead_letters`).Scan(&key, &headers); err != nil {
		t.Fatal(err)
	}
	if key != "bad" || !strings.Contains(headers, "kcat") {
		t.Errorf("dead letter key %q headers %s; want key bad and the kcat header", key, headers)
	}
}

// TestLostCommitStops: when PostgreSQL loses acknowledged commits (the
// stored offset moves back under this owner's own epoch), the appliance must
// not drop the partition for good nor skip ahead: it stops with an error
// naming the cause, and a restart resumes from the stored offsets.
func TestLostCommitStops(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	app, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(e.ctx) }()
	for i := 0; i < 10; i++ {
		e.produce(item(i, "x"))
	}
	e.waitDrained(10)
	// Simulate a lost commit: rows 5..9 and the offset advance vanish.
	if _, err := e.db.Exec(e.ctx, `DELETE FROM public.items WHERE n >= 5`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(e.ctx, `UPDATE sluice.offsets SET next_offset = 5`); err != nil {
		t.Fatal(err)
	}
	e.produce(item(10, "x"))
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "lost acknowledged commits") {
			t.Fatalf("Run returned %v, want the lost-commit error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not stop after PostgreSQL lost a commit")
	}
	// A restart re-claims at the stored offset and lands everything once.
	e.start(cfg)
	e.waitDrained(11)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 11 {
		t.Fatalf("target holds %d rows after the restart, want 11", n)
	}
}
