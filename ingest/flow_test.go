package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// flowApp returns an App whose n workers are not running (their channels
// only fill) and whose client reaches no broker: enough for the poll
// loop's flow control, whose pauses the client keeps.
func flowApp(t *testing.T, n int) *App {
	t.Helper()
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
	t.Cleanup(a.cl.Close)
	for i := range n {
		a.workers = append(a.workers, newWorker(a, i))
	}
	return a
}

// pausedParts returns the partitions the client keeps paused, sorted.
func pausedParts(a *App) []partKey {
	var out []partKey
	for t, ps := range a.cl.PauseFetchPartitions(nil) {
		for _, p := range ps {
			out = append(out, partKey{t, p})
		}
	}
	slices.SortFunc(out, func(x, y partKey) int {
		if x.topic != y.topic {
			if x.topic < y.topic {
				return -1
			}
			return 1
		}
		return int(x.partition - y.partition)
	})
	return out
}

// TestFlowControlFollowsRebalances: the client keeps a partition's pause
// across assignments. A partition paused with its backlogged worker's
// partitions, revoked and assigned again to another worker, stayed paused
// until the old worker drained: forever while that worker's table was
// stuck. And a partition assigned to a worker already paused was not
// paused with it. Flow control now pauses what the worker owns now.
func TestFlowControlFollowsRebalances(t *testing.T) {
	a := flowApp(t, 2)
	w0, w1 := a.workers[0], a.workers[1]
	k0, k1 := partKey{"events", 0}, partKey{"events", 1}
	a.parts[k0] = &partState{topic: k0.topic, partition: k0.partition, table: a.tables[0], worker: w0}
	var f flowControl
	for range cap(w0.in)/2 + 1 {
		w0.in <- wmsg{}
	}
	f.update(a)
	if got := pausedParts(a); !slices.Equal(got, []partKey{k0}) {
		t.Fatalf("paused %v with its worker's channel over half full, want %v", got, []partKey{k0})
	}

	// events/0 is revoked and claimed again, by the other worker; events/1
	// is assigned to the backlogged one.
	a.parts[k0].dropped.Store(true)
	a.parts[k0] = &partState{topic: k0.topic, partition: k0.partition, table: a.tables[0], worker: w1}
	a.parts[k1] = &partState{topic: k1.topic, partition: k1.partition, table: a.tables[0], worker: w0}
	f.update(a)
	f.handOver(a)
	if got := pausedParts(a); !slices.Equal(got, []partKey{k1}) {
		t.Fatalf("after the rebalance paused %v, want %v: only the backlogged worker's partitions", got, []partKey{k1})
	}

	for len(w0.in) > 0 {
		<-w0.in
	}
	f.update(a)
	if got := pausedParts(a); len(got) != 0 || f.any() {
		t.Fatalf("the worker drained, yet paused %v (flow control holding %v)", got, f.paused)
	}
}

// TestUnroutedPartitionResumes: a partition whose topic could not be
// routed is paused, and the client keeps that across assignments: once
// claimed again with a table (the rebalance after the table was made), it
// stayed paused, ready by /readyz yet never read. Nor may a worker's pause
// and resume lift an unrouted partition's pause, which had it fetched and
// thrown away again after every backlog.
func TestUnroutedPartitionResumes(t *testing.T) {
	a := flowApp(t, 1)
	w := a.workers[0]
	k := partKey{"events", 0}
	a.parts[k] = &partState{topic: k.topic, partition: k.partition, worker: w} // no table
	var f flowControl
	fetched := func() {
		f.update(a)
		f.handOver(a)
		a.dispatch(&f, kgo.FetchTopicPartition{Topic: k.topic, FetchPartition: kgo.FetchPartition{
			Partition: k.partition, Records: []*kgo.Record{{Topic: k.topic, Value: []byte("{}")}}}})
	}
	fetched()
	if got := pausedParts(a); !slices.Equal(got, []partKey{k}) {
		t.Fatalf("unrouted: paused %v, want %v", got, []partKey{k})
	}

	for range cap(w.in)/2 + 1 {
		w.in <- wmsg{}
	}
	f.update(a)
	for len(w.in) > 0 {
		<-w.in
	}
	f.update(a)
	if got := pausedParts(a); !slices.Equal(got, []partKey{k}) {
		t.Fatalf("unrouted, after its worker's backlog: paused %v, want %v", got, []partKey{k})
	}

	// Revoked, then assigned again and routed this time.
	a.parts[k].dropped.Store(true)
	a.parts[k] = &partState{topic: k.topic, partition: k.partition, table: a.tables[0], worker: w}
	f.update(a)
	f.handOver(a)
	if got := pausedParts(a); len(got) != 0 {
		t.Fatalf("routed after its reassignment, yet paused %v", got)
	}
}

// TestDroppedOwnerKeepsNewOwnersDeadLetters: a batch can hold the rows of
// two owners' states of one partition: the worker's open batch still had
// rows of the state a reset-offset fenced when the records read again from
// the reset offset came (pickUpResets gave the partition a new state, often
// on the same worker). Writing it, dropDead took every dead letter of the
// partition for the dropped state's, since it found that range first: the
// new owner's batch committed past its bad records with no dead letter for
// them. Dead letters now go with the state that made them.
func TestDroppedOwnerKeepsNewOwnersDeadLetters(t *testing.T) {
	a := flowApp(t, 1)
	w := a.workers[0]
	tbl := a.tables[0]
	k := partKey{"events", 0}
	good := func(off int64, i int) *kgo.Record {
		r := item(i, "x")
		r.Topic, r.Offset = k.topic, off
		return r
	}
	old := &partState{topic: k.topic, partition: k.partition, table: tbl, worker: w, epoch: 1, next: 10}
	w.decode(wmsg{st: old, recs: []*kgo.Record{good(10, 10), {Topic: k.topic, Offset: 11, Value: []byte("{bad")}}})
	old.dropped.Store(true)
	// Claimed again after a reset to offset 5.
	cur := &partState{topic: k.topic, partition: k.partition, table: tbl, worker: w, epoch: 3, next: 5}
	w.decode(wmsg{st: cur, recs: []*kgo.Record{good(5, 5), {Topic: k.topic, Offset: 6, Value: []byte("{bad")}, good(7, 7)}})
	p := w.open[tbl]
	if p == nil || len(p.ranges) != 2 || len(p.dls) != 2 {
		t.Fatalf("the open batch holds %v, want both states' ranges and two dead letters", p)
	}
	p.dropDead()
	if len(p.ranges) != 1 || p.ranges[0].st != cur || p.ranges[0].from != 5 || p.ranges[0].to != 8 {
		t.Fatalf("ranges after dropDead: %+v, want the new state's 5..8", p.ranges)
	}
	if len(p.rows) != 2 {
		t.Errorf("%d rows after dropDead, want the new state's 2", len(p.rows))
	}
	if len(p.dls) != 1 || p.dls[0].Offset != 6 {
		t.Fatalf("dead letters after dropDead: %+v, want the new state's one, of offset 6: committing 5..8 without it loses the record", p.dls)
	}
}

// TestBudgetPausesTopicsAssignedLater: fetching pauses while the in-flight
// budget is exceeded, every topic of the instance's. A topic assigned while
// paused (a rebalance, a new topic a pattern matches) was fetched anyway,
// past batch.max_inflight_bytes, until the budget paused again.
func TestBudgetPausesTopicsAssignedLater(t *testing.T) {
	a := flowApp(t, 1)
	a.parts[partKey{"events", 0}] = &partState{topic: "events", table: a.tables[0], worker: a.workers[0]}
	over := a.budget.Max() + 1
	a.budget.Acquire(over)
	paused := a.budgetPause(&flowControl{}, false)
	if got := a.cl.PauseFetchTopics(); !paused || !slices.Equal(got, []string{"events"}) {
		t.Fatalf("over the budget: paused %v, topics %v; want events paused", paused, got)
	}
	a.parts[partKey{"events2", 0}] = &partState{topic: "events2", table: a.tables[0], worker: a.workers[0]}
	paused = a.budgetPause(&flowControl{}, paused)
	got := a.cl.PauseFetchTopics()
	slices.Sort(got)
	if !paused || !slices.Equal(got, []string{"events", "events2"}) {
		t.Fatalf("a topic assigned while over the budget: paused %v, topics %v; want both paused", paused, got)
	}
	a.budget.Release(over)
	if paused = a.budgetPause(&flowControl{}, paused); paused || len(a.cl.PauseFetchTopics()) != 0 {
		t.Fatalf("under the budget: paused %v, topics %v; want none", paused, a.cl.PauseFetchTopics())
	}
}

// TestBudgetStalledBytesDoNotFlap: a worker whose commit has stalled
// holds more than the whole budget. Its bytes are left out of the test
// that pauses fetching as well as of the one that resumes it: counted in
// the first only, fetching was paused and resumed on alternate passes of
// the poll loop, and sluice_fetch_pauses_total counted every one.
func TestBudgetStalledBytesDoNotFlap(t *testing.T) {
	a := flowApp(t, 2)
	a.parts[partKey{"events", 0}] = &partState{topic: "events", table: a.tables[0], worker: a.workers[0]}
	stalled := a.workers[0]
	n := a.budget.Max() + 1
	stalled.acquire(n)
	stalled.writing.Store(time.Now().Add(-2 * commitStall).UnixNano())
	f := &flowControl{}
	paused := false
	for range 4 {
		paused = a.budgetPause(f, paused)
		if paused {
			t.Fatal("fetching paused for the bytes of a stalled commit alone")
		}
	}
	if got := a.m.fetchPauses.Get(); got != 0 {
		t.Errorf("%d fetch pauses counted", got)
	}
	// Bytes of a worker that is not stalled still pause fetching, and it
	// stays paused.
	a.workers[1].acquire(a.budget.Max() + 1)
	for range 4 {
		if paused = a.budgetPause(f, paused); !paused {
			t.Fatal("fetching not paused over the budget beside the stalled bytes")
		}
	}
	if got := a.m.fetchPauses.Get(); got != 1 {
		t.Errorf("%d fetch pauses counted, want 1", got)
	}
}
