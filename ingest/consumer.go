package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	pgcopy "github.com/sluice-dev/sluice/copy"
)

func (a *App) clientOptions() ([]kgo.Opt, error) {
	k := a.cfg.Kafka
	iso := kgo.ReadCommitted()
	if k.Isolation == "read_uncommitted" {
		iso = kgo.ReadUncommitted()
	}
	pools := &fetchPools{read: &a.m.fetched}
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.ConsumerGroup(k.Group),
		kgo.ConsumeTopics(a.subscriptions()...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(iso),
		// Transaction markers are delivered so offsets advance past them
		// (worker.decode); they are never written.
		kgo.KeepControlRecords(),
		// Out of range is never skipped: the partition halts for an operator.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.OnPartitionsAssigned(a.onAssigned),
		kgo.OnPartitionsRevoked(a.onRevoked),
		kgo.OnPartitionsLost(a.onLost),
		kgo.AdjustFetchOffsetsFn(a.adjustOffsets),
		kgo.SessionTimeout(k.SessionTimeout.D()),
		kgo.HeartbeatInterval(max(k.SessionTimeout.D()/10, 100*time.Millisecond)),
		kgo.RebalanceTimeout(k.RebalanceTimeout.D()),
		// The first fetches ask for little: how much a fetch decodes to
		// is known only once batches were read (fetchSizer).
		kgo.FetchMaxBytes(int32(firstFetchBytes(int64(k.FetchMaxBytes)))),
		kgo.FetchMaxPartitionBytes(int32(max(firstFetchBytes(int64(k.FetchMaxBytes))/4, minFetchBytes/4))),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.WithPools(pools),
		kgo.WithHooks(pools), // it learns each codec's expansion
		kgo.ClientID("sluice"),
		kgo.WithLogger(kgoLogger{a.log}),
	}
	if a.usesPatterns() {
		// Patterns match topics created later too: look for them often.
		opts = append(opts, kgo.ConsumeRegex(), kgo.MetadataMaxAge(topicRefresh))
	}
	sec, err := KafkaSecurityOpts(a.cfg)
	if err != nil {
		return nil, err
	}
	return append(opts, sec...), nil
}

// adjustOffsets claims newly assigned partitions in PostgreSQL and returns
// where to fetch from: the stored next_offset, or start_offset when none is
// stored. It runs before fetching starts, so nothing is read from a position
// PostgreSQL did not give.
func (a *App) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	tps := map[string][]int32{}
	for t, ps := range offsets {
		for p := range ps {
			tps[t] = append(tps[t], p)
		}
	}
	// Every topic is routed to its table (a template instance is created
	// and checked here) before anything is claimed: a topic that cannot be
	// routed is not claimed, and its partitions halt with the reason.
	tables := map[string]*tableRT{}
	fans := map[string][]*tableRT{}
	unrouted := map[string]error{}
	for tp := range tps {
		t, fan, err := a.tablesFor(ctx, tp)
		if err != nil {
			a.log.Error("PARTITIONS HALTED: cannot route topic; nothing of it is consumed until the configuration is fixed and sluice restarted", "topic", tp, "err", err)
			unrouted[tp] = err
			delete(tps, tp)
			continue
		}
		tables[tp], fans[tp] = t, fan
	}
	var claims []pgcopy.Claim
	backoff := 100 * time.Millisecond
	for {
		var err error
		claims, err = a.claim(ctx, tps)
		if err == nil {
			break
		}
		a.log.Warn("cannot claim partitions in PostgreSQL; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cannot claim partitions: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	start := kgo.NewOffset().AtStart()
	if a.cfg.Kafka.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for tp, err := range unrouted {
		for p := range offsets[tp] {
			st := &partState{topic: tp, partition: p}
			st.halted.Store(true)
			why := err.Error()
			st.haltWhy.Store(&why)
			st.haltReason.Store(&why)
			st.committed.Store(-1)
			st.highWatermark.Store(-1)
			st.fetchedFrom.Store(-1)
			st.worker = a.leastLoadedWorker()
			a.parts[partKey{tp, p}] = st
		}
	}
	for _, c := range claims {
		a.claimed(c, tables[c.Topic], fans[c.Topic])
		if c.NextOffset >= 0 {
			offsets[c.Topic][c.Partition] = kgo.NewOffset().At(c.NextOffset)
		} else {
			offsets[c.Topic][c.Partition] = start
		}
		a.log.Info("claimed partition", "topic", c.Topic, "partition", c.Partition, "epoch", c.Epoch, "next_offset", c.NextOffset)
	}
	return offsets, nil
}

// claimed makes c the partition's state, dropping the work of the one it
// replaces. The caller holds a.mu.
func (a *App) claimed(c pgcopy.Claim, t *tableRT, fan []*tableRT) {
	st := &partState{
		topic:     c.Topic,
		partition: c.Partition,
		table:     t,
		fan:       fan,
		epoch:     c.Epoch,
		next:      c.NextOffset,
	}
	st.committed.Store(c.NextOffset)
	st.highWatermark.Store(-1)
	st.fetchedFrom.Store(-1)
	st.worker = a.leastLoadedWorker()
	k := partKey{c.Topic, c.Partition}
	if old := a.parts[k]; old != nil {
		old.dropped.Store(true)
	}
	a.parts[k] = st
}

// pickUpReset queues st, whose commit a reset-offset fenced, for the poll
// loop to claim again (pickUpResets), and wakes the poll.
func (a *App) pickUpReset(st *partState) {
	a.mu.Lock()
	a.resets = append(a.resets, st)
	a.mu.Unlock()
	if wake := a.wakePoll.Load(); wake != nil {
		(*wake)()
	}
}

// pickUpResets claims again the partitions queued by pickUpReset, at the
// offset the reset stored, and moves the client's fetch position there.
// It runs on the poll loop before AllowRebalance, as SetOffsets asks: no
// revoke runs meanwhile, and the records fetched before it went to the
// dropped state. A partition claimed by another owner since the reset is
// left to it, as a zombie leaves it.
func (a *App) pickUpResets(ctx context.Context) {
	a.mu.Lock()
	resets := a.resets
	a.resets = nil
	a.mu.Unlock()
	for _, old := range resets {
		a.mu.Lock()
		cur := a.parts[partKey{old.topic, old.partition}]
		a.mu.Unlock()
		if cur != old {
			continue // revoked or lost since
		}
		var c pgcopy.Claim
		var ok bool
		err := a.withCtl(ctx, func(conn *pgconn.PgConn) error {
			var err error
			c, ok, err = pgcopy.ReclaimReset(ctx, conn, a.cfg.Postgres.Schema, a.cfg.Kafka.Group, old.topic, old.partition, old.epoch)
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("cannot claim a reset partition again; retrying", "topic", old.topic, "partition", old.partition, "err", err)
				a.mu.Lock()
				a.resets = append(a.resets, old)
				a.mu.Unlock()
			}
			continue
		}
		if !ok {
			a.log.Warn("partition fenced: a newer owner claimed it after its reset; dropping local work",
				"topic", old.topic, "partition", old.partition, "epoch", old.epoch)
			continue
		}
		a.mu.Lock()
		a.claimed(c, old.table, old.fan)
		a.mu.Unlock()
		a.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{c.Topic: {c.Partition: {Epoch: -1, Offset: c.NextOffset}}})
		a.log.Info("claimed partition after its reset", "topic", c.Topic, "partition", c.Partition, "epoch", c.Epoch, "next_offset", c.NextOffset)
	}
}

func (a *App) claim(ctx context.Context, tps map[string][]int32) ([]pgcopy.Claim, error) {
	var claims []pgcopy.Claim
	err := a.withCtl(ctx, func(conn *pgconn.PgConn) error {
		var err error
		claims, err = pgcopy.ClaimPartitions(ctx, conn, a.cfg.Postgres.Schema, a.cfg.Kafka.Group, tps)
		return err
	})
	return claims, err
}

// leastLoadedWorker returns the worker owning the fewest partitions, so
// that partitions spread evenly over the writer connections (a hash of a
// few partition numbers over a few workers is often lopsided). The caller
// holds a.mu.
func (a *App) leastLoadedWorker() *worker {
	load := make(map[*worker]int, len(a.workers))
	for _, st := range a.parts {
		if !st.dropped.Load() {
			load[st.worker]++
		}
	}
	best := a.workers[0]
	for _, w := range a.workers[1:] {
		if load[w] < load[best] {
			best = w
		}
	}
	return best
}

// onAssigned runs once in every generation of the group this instance
// joins, even when nothing new is assigned: it is where a rebalance is
// counted. onRevoked and onLost run around the same rebalances (at the end
// of a generation, for partitions lost to the next) and count nothing.
func (a *App) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	a.m.rebalances.Inc()
	a.log.Info("partitions assigned", "partitions", assigned)
}

// onRevoked commits the revoked partitions' in-flight work, then forgets
// them. It must return within the rebalance timeout; past it the work is
// dropped (the next owner re-reads it from the stored offsets).
func (a *App) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	a.log.Info("partitions revoked", "partitions", revoked)
	a.release(revoked, true)
}

// onLost drops the lost partitions' in-flight work: another owner may
// already have claimed them, and the offsets CAS fences anything we would
// still try to commit.
func (a *App) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if len(lost) == 0 {
		return
	}
	a.log.Warn("partitions lost", "partitions", lost)
	a.release(lost, false)
}

func (a *App) release(tps map[string][]int32, commit bool) {
	byWorker := map[*worker][]*partState{}
	a.mu.Lock()
	for t, ps := range tps {
		for _, p := range ps {
			k := partKey{t, p}
			st := a.parts[k]
			if st == nil {
				continue
			}
			if !commit {
				st.dropped.Store(true)
			}
			byWorker[st.worker] = append(byWorker[st.worker], st)
		}
	}
	a.mu.Unlock()

	// A context, not time.After: its Done channel stays closed for every
	// select below once the deadline passes.
	dctx, cancel := context.WithTimeout(context.Background(), max(a.cfg.Kafka.RebalanceTimeout.D()-2*time.Second, time.Second))
	defer cancel()
	deadline := dctx.Done()
	var dones []chan struct{}
	for w, sts := range byWorker {
		done := make(chan struct{})
		select {
		case w.in <- wmsg{ctl: &ctlMsg{parts: sts, done: done}}:
			dones = append(dones, done)
		case <-deadline:
			// The worker is stuck behind a commit that keeps failing: drop
			// the partitions below; their next owner re-reads the work.
		}
	}
	for _, d := range dones {
		select {
		case <-d:
		case <-deadline:
			a.log.Error("in-flight batches did not commit within the rebalance timeout; dropping them (they will be re-read from the stored offsets)")
		case <-a.hardCtx.Done():
		}
	}
	a.mu.Lock()
	for _, sts := range byWorker {
		for _, st := range sts {
			st.dropped.Store(true)
			if a.parts[partKey{st.topic, st.partition}] == st {
				delete(a.parts, partKey{st.topic, st.partition})
			}
		}
	}
	a.mu.Unlock()
}

// pollLoop fetches and hands records to workers until ctx is canceled or a
// fatal client error (a configuration the cluster rejects) occurs.
func (a *App) pollLoop(ctx context.Context) error {
	paused := false
	var flow flowControl
	defer flow.drop(a)
	size := &a.fetchSize
	size.limit = int64(a.cfg.Kafka.FetchMaxBytes)
	size.cur.Store(firstFetchBytes(size.limit))
	for ctx.Err() == nil {
		size.update(a)
		flow.update(a)
		paused = a.budgetPause(&flow, paused)
		// Published before resets are read: a reset queued after the read
		// finds the poll to wake.
		wctx, wake := context.WithCancel(ctx)
		a.wakePoll.Store(&wake)
		a.mu.Lock()
		resetting := len(a.resets) > 0
		a.mu.Unlock()
		pctx, cancel := wctx, context.CancelFunc(func() {})
		switch {
		case paused || flow.any():
			pctx, cancel = context.WithTimeout(wctx, 20*time.Millisecond)
		case resetting || len(flow.unrouted) > 0:
			// A reset partition failed to be claimed again: retry each
			// second. An unrouted one may be routed after a rebalance:
			// resume it within a second (flowControl.update).
			pctx, cancel = context.WithTimeout(wctx, time.Second)
		}
		fs := a.cl.PollRecords(pctx, 5000)
		a.wakePoll.Store(nil)
		cancel()
		wake()
		if fs.IsClientClosed() {
			return nil
		}
		var fatal error
		fs.EachError(func(t string, p int32, err error) {
			if f := a.fetchError(t, p, err); f != nil {
				fatal = f
			}
		})
		if fatal != nil {
			return fatal
		}
		// What was held back goes first: a partition's records stay in order.
		flow.handOver(a)
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			a.dispatch(&flow, fp)
		})
		a.pickUpResets(ctx)
		a.cl.AllowRebalance()
	}
	return nil
}

// budgetPause pauses fetching every assigned topic once the in-flight
// budget is exceeded, and resumes them once it is resumable; paused says
// whether they are paused, and it returns that anew. While paused it
// pauses the topics assigned since, too (a rebalance, a new topic a
// pattern matches): fetched, they would go past the budget.
func (a *App) budgetPause(f *flowControl, paused bool) bool {
	switch {
	case !paused && a.budget.Over() && a.budget.OverBeside(a.stalledBytes(f)):
		// Stalled bytes are left out of both tests: counted here, they
		// would pause fetching on every pass that the resume test below
		// resumes it.
		a.cl.PauseFetchTopics(a.assignedTopics()...)
		a.m.fetchPauses.Inc()
		a.log.Debug("in-flight byte budget exceeded; fetching paused", "inflight", a.budget.InUse())
		return true
	case paused && (a.budget.Resumable() || a.budget.ResumableBeside(a.stalledBytes(f))):
		a.cl.ResumeFetchTopics(a.cl.PauseFetchTopics()...)
		return false
	case paused:
		a.cl.PauseFetchTopics(a.assignedTopics()...)
	}
	return paused
}

// flowControl keeps one worker's backlog from starving the others. The
// in-flight budget is shared: a worker whose committer falls behind would
// otherwise pile fetched records in its queue until the budget pauses
// every partition, and the other workers would run dry until the commits
// brought the budget down (measured: one writer idle for a quarter of a
// drain). So the poll loop pauses the partitions of a worker whose queue
// holds more than 2 × kafka.fetch_max_bytes, or fills more than half its
// channel, and resumes them once it holds half that and a quarter of the
// channel; the budget stays the memory bound.
//
// The channel counts too: small records fill its 64 chunks long before
// their bytes reach the mark. And the poll loop never waits on a worker:
// a chunk its full channel does not take is held back here, its partition
// paused, and handed over, in order, once the channel has room. Blocked on
// one stuck worker's channel, the poll loop starved every other worker
// and never let a rebalance through.
//
// A partition is paused while any of three reasons holds: its worker's
// backlog (paused), chunks held back (held), or a topic with no table
// (unrouted); it is resumed when the last one ends. The client keeps a
// partition's pause across revocations and assignments, so each reason
// follows the partition's current state: a partition that moved to
// another worker leaves its old worker's pause, one assigned to a paused
// worker joins it, and a partition routed after its reassignment resumes.
type flowControl struct {
	// paused are the partitions paused for each worker whose backlog is
	// over the mark: those it owns now (update follows rebalances).
	paused map[*worker]map[partKey]struct{}
	// held are the chunks of each partition a full channel did not take,
	// oldest first; their partition is paused until they are handed over.
	held map[partKey][]wmsg
	// unrouted are the partitions dispatch paused because their topic has
	// no table, or because they stopped for their key schema
	// (keychange.go); update resumes one once it is revoked or routed
	// (claimed again: a new partState).
	unrouted map[partKey]struct{}
}

// any reports whether a backlog or held chunks keep partitions paused: the
// poll loop then polls briefly, to resume them soon.
func (f *flowControl) any() bool { return len(f.paused) > 0 || len(f.held) > 0 }

// keeps reports whether a reason keeps k paused.
func (f *flowControl) keeps(k partKey) bool {
	if f.held[k] != nil {
		return true
	}
	if _, ok := f.unrouted[k]; ok {
		return true
	}
	for _, ps := range f.paused {
		if _, ok := ps[k]; ok {
			return true
		}
	}
	return false
}

// resume resumes the partitions of ks that no reason keeps paused.
func (f *flowControl) resume(a *App, ks []partKey) {
	tps := map[string][]int32{}
	for _, k := range ks {
		if !f.keeps(k) {
			tps[k.topic] = append(tps[k.topic], k.partition)
		}
	}
	if len(tps) > 0 {
		a.cl.ResumeFetchPartitions(tps)
	}
}

// update pauses or resumes each worker's partitions by its queue, and,
// while a worker stays paused, makes its pause follow the partitions it
// owns now. It resumes the unrouted partitions revoked or routed since.
func (f *flowControl) update(a *App) {
	high := 2 * int64(a.cfg.Kafka.FetchMaxBytes)
	var owned map[*worker][]partKey
	var freed []partKey
	for _, w := range a.workers {
		q, n := w.queued.Load(), len(w.in)
		ps, isPaused := f.paused[w]
		switch {
		case isPaused && q <= high/2 && n <= cap(w.in)/4:
			delete(f.paused, w)
			for k := range ps {
				freed = append(freed, k)
			}
			continue
		case !isPaused && (q > high || n > cap(w.in)/2):
			ps = map[partKey]struct{}{}
			if f.paused == nil {
				f.paused = map[*worker]map[partKey]struct{}{}
			}
			f.paused[w] = ps
		case !isPaused:
			continue
		}
		if owned == nil {
			owned = a.ownedByWorker()
		}
		now := map[partKey]struct{}{}
		pause := map[string][]int32{}
		for _, k := range owned[w] {
			now[k] = struct{}{}
			if _, ok := ps[k]; !ok {
				ps[k] = struct{}{}
				pause[k.topic] = append(pause[k.topic], k.partition)
			}
		}
		for k := range ps {
			if _, ok := now[k]; !ok {
				delete(ps, k)
				freed = append(freed, k)
			}
		}
		if len(pause) > 0 {
			a.cl.PauseFetchPartitions(pause)
		}
	}
	if len(f.unrouted) > 0 {
		a.mu.Lock()
		for k := range f.unrouted {
			if st := a.parts[k]; st == nil || st.table != nil && st.stopWhy.Load() == nil {
				delete(f.unrouted, k)
				freed = append(freed, k)
			}
		}
		a.mu.Unlock()
	}
	f.resume(a, freed)
}

// ownedByWorker returns the routed partitions of each worker.
func (a *App) ownedByWorker() map[*worker][]partKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	owned := map[*worker][]partKey{}
	for k, st := range a.parts {
		if st.table != nil {
			owned[st.worker] = append(owned[st.worker], k)
		}
	}
	return owned
}

// commitStall is how long a committer writes one batch before the poll
// loop takes its worker's bytes for stalled (App.stalledBytes).
const commitStall = 5 * time.Second

// stalledBytes returns the budget bytes held by the workers whose
// committer has been writing one batch for commitStall or longer: a
// table PostgreSQL refuses (a revoked grant, a dropped table) or a lock
// that does not end. They are left out of the test that resumes fetching.
// A stalled worker holds its batch being written, one more behind it,
// its queue and its held chunks; while they stayed over half the budget,
// fetching stayed paused for every partition and every other table
// stopped until the stalled one could be written again. Its own
// partitions stay paused by flowControl once its queue fills, and the
// budget still pauses fetching whenever it is exceeded.
func (a *App) stalledBytes(f *flowControl) int64 {
	now := time.Now().UnixNano()
	var n int64
	for _, w := range a.workers {
		since := w.writing.Load()
		if since == 0 || now-since < int64(commitStall) {
			continue
		}
		n += w.held.Load() + w.queued.Load()
		for _, ms := range f.held {
			for _, m := range ms {
				if m.st.worker == w {
					n += m.bytes
				}
			}
		}
	}
	return n
}

// hold keeps m, which its worker's full channel did not take, and pauses
// its partition: the records already fetched are ours (the client's
// position is past them), and what it buffered for the partition is
// dropped and fetched again after the resume.
func (f *flowControl) hold(a *App, k partKey, m wmsg) {
	if f.held == nil {
		f.held = map[partKey][]wmsg{}
	}
	if f.held[k] == nil {
		a.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
	}
	f.held[k] = append(f.held[k], m)
}

// unroute pauses k, whose topic has no table.
func (f *flowControl) unroute(a *App, k partKey) {
	if f.unrouted == nil {
		f.unrouted = map[partKey]struct{}{}
	}
	f.unrouted[k] = struct{}{}
	a.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
}

// handOver offers each partition's held chunks to their worker, in order,
// as far as its channel takes them, and resumes a partition whose chunks
// are all handed over, unless its worker's backlog keeps it paused. It
// runs before AllowRebalance, so no revoke runs meanwhile; the chunks of
// a partition dropped since (revoked, lost or claimed again after a
// reset) are let go, to be read again by whoever owns it next.
func (f *flowControl) handOver(a *App) {
	var freed []partKey
	for k, ms := range f.held {
		i := 0
		for ; i < len(ms); i++ {
			if ms[i].st.dropped.Load() {
				ms[i].letGo(a)
			} else if !ms[i].st.worker.offer(ms[i]) {
				break
			}
		}
		clear(ms[:i])
		if i < len(ms) {
			f.held[k] = ms[i:]
			continue
		}
		delete(f.held, k)
		freed = append(freed, k)
	}
	f.resume(a, freed)
}

// letGo gives back a held chunk that no worker will take: its bytes to
// the budget, its records to the fetch pools.
func (m *wmsg) letGo(a *App) {
	a.budget.Release(m.bytes)
	recycle(m.recs)
}

// drop lets go of the held chunks when the poll loop ends; they were never
// committed, so they are read again from the stored offsets.
func (f *flowControl) drop(a *App) {
	for k, ms := range f.held {
		for _, m := range ms {
			m.letGo(a)
		}
		delete(f.held, k)
	}
}

// fetchSizer keeps what one fetch decodes to near kafka.fetch_max_bytes.
// Kafka bounds a fetch by its bytes on the wire; a compressed topic's
// fetch decodes to several times that (4.6 times for the reference
// records under zstd). Such a fetch pushed a worker's queue past the
// flow-control mark at once, its partitions were paused, and the client
// dropped the fetch it held for them: in a drain of a zstd topic it read
// 1.8 records for every one consumed. So the fetch sizes asked for are
// divided by the expansion of the batches read lately; one fetch then
// decodes to about what the setting says, and the marks above hold.
type fetchSizer struct {
	limit int64        // kafka.fetch_max_bytes
	cur   atomic.Int64 // the wire size asked for now
	// the fetch counters at the last measurement
	wire0, decoded0 uint64
}

// minFetchBytes is the least a fetch asks for, however well batches
// compress.
const minFetchBytes = 64 << 10

// firstFetchBytes is the wire size the first fetches ask for, before any
// batch was read: the least, since a batch may decode to any multiple of
// its size. Asked for kafka.fetch_max_bytes, a backlog of zstd batches
// that decode to 220 times their size fetched nearly a gigabyte at once
// (1 GB of such values drained at a peak RSS of 660 MiB with the
// defaults). The sizer raises it after the first fetch's worth of
// batches: to the setting at once for batches that do not expand.
func firstFetchBytes(limit int64) int64 { return min(limit, minFetchBytes) }

// update measures the expansion over the batches read since the last
// measurement, once they add up to a fetch, and asks for the size
// nextFetchSize gives.
func (f *fetchSizer) update(a *App) {
	wire, decoded := a.m.fetched.wire.Get(), a.m.fetched.decoded.Get()
	dw, dd := wire-f.wire0, decoded-f.decoded0
	if dw < uint64(f.cur.Load()) || dd == 0 {
		return
	}
	f.wire0, f.decoded0 = wire, decoded
	if want, ok := nextFetchSize(f.limit, f.cur.Load(), dw, dd); ok {
		f.cur.Store(want)
		a.cl.UpdateFetchMaxBytes(int32(want), int32(max(want/4, minFetchBytes/4)))
	}
}

// nextFetchSize returns the wire size at which a fetch of batches that
// decoded from wire to decoded bytes decodes to limit (within
// [minFetchBytes, limit]), and whether it differs from cur by more than a
// quarter.
func nextFetchSize(limit, cur int64, wire, decoded uint64) (int64, bool) {
	want := min(max(int64(float64(limit)*float64(wire)/float64(decoded)), minFetchBytes), limit)
	return want, 4*want < 3*cur || 4*want > 5*cur
}

// fetchError handles one error from a poll. It returns an error when the
// appliance cannot continue: the cluster rejects its configuration or
// credentials, which retrying would only hide.
func (a *App) fetchError(topic string, partition int32, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var ke *kerr.Error
	if topic == "" && errors.As(err, &ke) && !ke.Retriable && !isGroupSessionError(err) {
		return fmt.Errorf("cannot consume (kafka.*): the cluster rejects this client: %w", err)
	}
	var dl *kgo.ErrDataLoss
	if errors.Is(err, kerr.OffsetOutOfRange) || errors.As(err, &dl) {
		a.mu.Lock()
		st := a.parts[partKey{topic, partition}]
		a.mu.Unlock()
		if st != nil && !st.halted.Load() {
			reason := fmt.Sprintf("stored next_offset %d is not on the broker (offset out of range or data loss): %v; inspect the topic, then sluice reset-offset and restart", st.committed.Load(), err)
			st.haltReason.Store(&reason)
		}
		if st != nil && !st.halted.Swap(true) {
			a.noteError(fmt.Sprintf("fetch %s/%d", topic, partition), err)
			a.log.Error("PARTITION HALTED: the stored offset is not on the broker (out of range or data loss); nothing is skipped. Inspect the topic, then run `sluice reset-offset` and restart",
				"topic", topic, "partition", partition, "stored_next_offset", st.committed.Load(), "err", err)
		}
		return nil
	}
	where := "fetch"
	if topic != "" {
		where = fmt.Sprintf("fetch %s/%d", topic, partition)
	}
	a.noteError(where, err)
	a.log.Warn("fetch error", "topic", topic, "partition", partition, "err", err)
	return nil
}

// isGroupSessionError reports an error that ends a group session, not the
// appliance: franz-go rejoins by itself and the new assignment reclaims the
// partitions in PostgreSQL. A restarted broker that forgot the member answers
// UNKNOWN_MEMBER_ID, which is not retriable in kerr's sense; treating it as
// a rejected configuration made `sluice run` exit after every broker
// restart (found by internal/chaos).
func isGroupSessionError(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.RebalanceInProgress)
}

// dispatch hands fp's records to their partition's worker, never waiting:
// behind a chunk held back, or past a full channel, they are held (f.hold).
func (a *App) dispatch(f *flowControl, fp kgo.FetchTopicPartition) {
	a.mu.Lock()
	st := a.parts[partKey{fp.Topic, fp.Partition}]
	a.mu.Unlock()
	if st == nil || st.dropped.Load() {
		return
	}
	if st.table == nil || st.stopWhy.Load() != nil {
		// Unrouted (see adjustOffsets), or stopped for its key schema
		// (keychange.go): stop fetching it.
		f.unroute(a, partKey{fp.Topic, fp.Partition})
		recycle(fp.Records)
		return
	}
	if fp.HighWatermark > st.highWatermark.Load() {
		st.highWatermark.Store(fp.HighWatermark)
	}
	if len(fp.Records) == 0 {
		return
	}
	if st.fetchedFrom.Load() < 0 {
		st.fetchedFrom.Store(fp.Records[0].Offset)
	}
	var n int64
	var data, kv int
	for _, r := range fp.Records {
		n += recordCost(r)
		if !r.Attrs.IsControl() {
			// Transaction markers (kgo.KeepControlRecords) are not
			// consumed records, and headers are not keys or values.
			data++
			kv += len(r.Key) + len(r.Value)
		}
	}
	a.budget.Acquire(n)
	a.m.recordsConsumed.Add(data)
	a.m.bytesConsumed.Add(kv)
	m := wmsg{st: st, recs: fp.Records, bytes: n}
	if k := (partKey{fp.Topic, fp.Partition}); f.held[k] != nil || !st.worker.offer(m) {
		f.hold(a, k, m)
	}
}

// recordCost is what a fetched record holds in memory until its batch
// commits, as counted against the in-flight budget.
func recordCost(r *kgo.Record) int64 {
	n := int64(len(r.Key)+len(r.Value)) + recordOverhead + headerOverhead*int64(len(r.Headers))
	for _, h := range r.Headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}

const (
	// recordOverhead is what recordCost counts for a record besides its
	// bytes.
	recordOverhead = 64
	// headerOverhead is what a header holds besides its bytes: its
	// kgo.RecordHeader. Counting its key and value alone, a record of
	// 100,000 empty headers (200 KB on the wire, and not bounded by
	// max_record_bytes, which counts key and value) cost 67 bytes while
	// the client held 4 MB of headers for it.
	headerOverhead = int64(unsafe.Sizeof(kgo.RecordHeader{}))
)

// kgoLogger forwards franz-go's log lines to slog (at debug level only, where
// the client's chatter helps; its errors reach us through fetches anyway).
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelDebug
	}
	return kgo.LogLevelNone
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l.log.Debug("kgo: "+msg, keyvals...)
}
