package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// unitApp builds an App from tables (items of tables:) that is never run,
// for tests that drive a worker by hand.
func unitApp(t *testing.T, tables string, tune func(*Config)) *App {
	t.Helper()
	y := fmt.Appendf(nil, "kafka: {brokers: [\"127.0.0.1:1\"]}\npostgres: {url: \"postgres://u@127.0.0.1:1/db\"}\nmetrics: {listen: \"\"}\ntables:\n%s", tables)
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(cfg)
	}
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a.hardCtx, a.hardCancel = context.WithCancel(context.Background())
	t.Cleanup(a.hardCancel)
	return a
}

// fakeCommitter stands in for w's commitLoop: it takes each batch handed
// over, hands it to seen, and lets it go as a commit would.
func fakeCommitter(w *worker, seen func(p *pending)) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range w.commit {
			if p.barrier != nil {
				close(p.barrier)
				continue
			}
			seen(p)
			w.release(p.bytes)
			p.releaseParts(w)
			w.written.Add(1)
			select {
			case w.idle <- struct{}{}:
			default:
			}
		}
	}()
	return func() { close(w.commit); <-done }
}

// TestFanOutBatchBytes: a topic that four tables read puts every record's
// tuple in each of them, all riding in one batch. batch.max_bytes bounds
// the batch, not each table's share of it: a batch of four tables was
// flushed only once one of them held max_bytes, four times the setting.
func TestFanOutBatchBytes(t *testing.T) {
	var tables strings.Builder
	for i := range 4 {
		fmt.Fprintf(&tables, `
  - name: public.t%d
    topics: [events]
    columns:
      - {name: v, type: text, path: v}
`, i)
	}
	const maxBytes = 64 << 10
	a := unitApp(t, tables.String(), func(c *Config) { c.Batch.MaxBytes, c.Batch.MaxRows = maxBytes, 100 })
	w := newWorker(a, 0)
	a.workers = []*worker{w}
	table, fan, err := a.tablesFor(context.Background(), "events")
	if err != nil {
		t.Fatal(err)
	}
	if len(fan) != 4 {
		t.Fatalf("topic routed to %d tables, want 4", len(fan))
	}
	st := &partState{topic: "events", table: table, fan: fan, worker: w, next: 0}
	st.highWatermark.Store(1 << 30)
	a.parts[partKey{"events", 0}] = st
	var largest, batches int
	stop := fakeCommitter(w, func(p *pending) {
		n := p.b.Len()
		for _, q := range p.parts {
			n += q.b.Len()
		}
		largest = max(largest, n)
		batches++
	})
	const recBytes = 1 << 10
	var recs []*kgo.Record
	for i := range 2000 {
		recs = append(recs, &kgo.Record{Topic: "events", Offset: int64(i),
			Value: fmt.Appendf(nil, `{"v":%q}`, strings.Repeat("x", recBytes))})
	}
	n := int64(0)
	for _, r := range recs {
		n += recordCost(r)
	}
	a.budget.Acquire(n)
	w.decode(wmsg{st: st, recs: recs, bytes: n})
	w.flushAll()
	stop()
	// One record's four tuples past the limit at most.
	if limit := maxBytes + 4*(recBytes+64); largest > limit {
		t.Fatalf("largest of %d batches held %d bytes of tuples, over batch.max_bytes %d plus one record's tuples", batches, largest, maxBytes)
	}
}

// TestStuckTableDoesNotStallOthers: a table that cannot be written keeps
// its worker's batches (one committing, one full behind it) and queue in
// the in-flight budget. Once another table's traffic pushed the budget
// over, fetching paused for every partition until the budget fell to
// half, which the stuck worker's bytes alone exceeded: the other table
// stopped too, for as long as the first stayed stuck.
func TestStuckTableDoesNotStallOthers(t *testing.T) {
	e := newEnv(t, 1)
	roleURL := grantableRole(t, e, "sluice_stall")
	cfg, err := Parse(configYAML(e.broker.Addrs(), roleURL, "", "", fmt.Sprintf(tableYAML, "ignore")+othersYAML), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	// A budget of 400 KiB (fetching resumes at 200 KiB); batches of at
	// least 100 rows, 200 KiB of 2 KiB records.
	cfg.Batch.MaxInflightBytes = 1 << 20
	cfg.Batch.MaxRows = 1600
	cfg.Batch.MaxBytes = 3200 << 10
	cfg.Kafka.FetchMaxBytes = 64 << 10
	r := e.start(cfg)
	revokeOnSplit(t, e, r, "sluice_stall")
	a := r.app
	var recs []*kgo.Record
	for i := 1; i <= 1000; i++ {
		recs = append(recs, item(i, strings.Repeat("s", 2000)))
	}
	e.produce(recs...)
	// The stuck worker fills up: a batch committing, one full behind it.
	e.waitFor("the stuck worker to hold more than half the budget", func() bool {
		return a.budget.InUse() > a.budget.Max()/2
	})
	recs = recs[:0]
	for i := 1; i <= 2000; i++ {
		recs = append(recs, otherItem(100000+i))
	}
	e.produce(recs...)
	deadline := time.Now().Add(30 * time.Second)
	for e.count(`SELECT count(*) FROM public.others`) < 2001 {
		if time.Now().After(deadline) {
			t.Fatalf("public.others holds %d of 2001 rows after 30s while public.items is stuck: fetching paused for the budget (%d of %d bytes in use) and never resumed",
				e.count(`SELECT count(*) FROM public.others`), a.budget.InUse(), a.budget.Max())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeadLetterBatchBytes: a batch's dead letters keep a copy of their
// records, and the writer copies them again into one INSERT's
// parameters; batch.max_bytes did not count them, so a run of bad
// records (every record of a backlog malformed) filled one batch with
// dead letters until the budget paused fetching and the batch aged: a
// 300 MB backlog of 10 KB malformed records drained at a peak RSS of 267
// MiB with the defaults.
func TestDeadLetterBatchBytes(t *testing.T) {
	const maxBytes = 64 << 10
	a := unitApp(t, fmt.Sprintf(tableYAML, "ignore"), func(c *Config) { c.Batch.MaxBytes, c.Batch.MaxRows = maxBytes, 100 })
	w := newWorker(a, 0)
	a.workers = []*worker{w}
	st := &partState{topic: "events", table: a.tables[0], worker: w, next: 0}
	st.highWatermark.Store(1 << 30)
	a.parts[partKey{"events", 0}] = st
	var largest, batches, dls int
	stop := fakeCommitter(w, func(p *pending) {
		n := 0
		for _, dl := range p.dls {
			n += len(dl.Value)
		}
		largest = max(largest, n)
		batches++
		dls += len(p.dls)
	})
	const recBytes = 1 << 10
	var recs []*kgo.Record
	n := int64(0)
	for i := range 2000 {
		r := &kgo.Record{Topic: "events", Offset: int64(i), Value: fmt.Appendf(nil, `{"v":%q`, strings.Repeat("x", recBytes))}
		recs = append(recs, r)
		n += recordCost(r)
	}
	a.budget.Acquire(n)
	w.decode(wmsg{st: st, recs: recs, bytes: n})
	w.flushAll()
	stop()
	if dls != len(recs) {
		t.Fatalf("%d dead letters committed, want %d", dls, len(recs))
	}
	if limit := maxBytes + recBytes + 64; largest > limit {
		t.Fatalf("largest of %d batches held %d bytes of dead letters, over batch.max_bytes %d plus one record", batches, largest, maxBytes)
	}
}
