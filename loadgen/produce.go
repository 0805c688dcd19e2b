package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/progress"
)

// KindCounts holds one count per record kind. In JSON it is an object keyed
// by kind name, without zero entries.
type KindCounts [NumKinds]int64

// Total returns the sum over all kinds.
func (c *KindCounts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Bad returns the sum over the bad kinds.
func (c *KindCounts) Bad() int64 {
	var n int64
	for k := KindMalformedJSON; k < numKinds; k++ {
		n += c[k]
	}
	return n
}

// MarshalJSON encodes c as {"good": n, ...}.
func (c KindCounts) MarshalJSON() ([]byte, error) {
	m := make(map[string]int64)
	for k, v := range c {
		if v != 0 {
			m[Kind(k).String()] = v
		}
	}
	return json.Marshal(m)
}

// UnmarshalJSON decodes the form MarshalJSON writes.
func (c *KindCounts) UnmarshalJSON(b []byte) error {
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = KindCounts{}
	for name, v := range m {
		k := Kind(0)
		for ; k < numKinds && kindNames[k] != name; k++ {
		}
		if k == numKinds {
			return fmt.Errorf("cannot decode record kind %q; the manifest is from another loadgen version", name)
		}
		c[k] = v
	}
	return nil
}

// Stats says what a Produce run delivered.
type Stats struct {
	// Records is the number of records generated and handed to the
	// producer: exactly the indices 0..Records-1 of the stream (from
	// Options.Start, when set, to Records-1).
	Records int64 `json:"records"`
	// Committed counts records acknowledged by the broker and not in an
	// aborted transaction: what a read_committed consumer sees.
	Committed KindCounts `json:"committed"`
	// Aborted counts records written in transactions that were aborted.
	Aborted KindCounts `json:"aborted"`
	// Failed counts records the producer could not deliver; with an
	// idempotent producer such a record may still have been written.
	Failed KindCounts `json:"failed"`
	// CommittedBytes is the sum of committed value sizes.
	CommittedBytes int64 `json:"committed_bytes"`
	// TxnsCommitted and TxnsAborted count transactions by outcome.
	TxnsCommitted int64 `json:"txns_committed"`
	TxnsAborted   int64 `json:"txns_aborted"`
	// FailedIndices lists the records (non-transactional runs) whose
	// outcome is unknown; verify accepts them present or absent.
	FailedIndices []int64 `json:"failed_indices,omitempty"`
	// FirstFailure is the error of the first record that failed, if any.
	FirstFailure string `json:"first_failure,omitempty"`
	firstErr     error
	// ForcedAborts lists transactions aborted because a record in them
	// failed, though the seed meant them to commit.
	ForcedAborts []int64 `json:"forced_aborts,omitempty"`
	// UncertainTxns lists transactions whose commit returned an error: they
	// may or may not have committed.
	UncertainTxns []int64 `json:"uncertain_txns,omitempty"`
	// TopicPartitions is the topic's partition count when the run
	// started (0: unknown). Verify checks every kafka.partition column
	// and dead letter against it.
	TopicPartitions int32 `json:"topic_partitions,omitempty"`
	// Interrupted is set when the context ended the run early.
	Interrupted bool          `json:"interrupted,omitempty"`
	Elapsed     time.Duration `json:"elapsed"`
}

// maxFailedIndices bounds the manifest; beyond it verify cannot tell which
// records are uncertain and refuses to judge.
const maxFailedIndices = 100_000

// Produce sends the records o describes to brokers and returns what was
// committed. Records are keyed as o.Keys says; the producer is idempotent with
// acks from all in-sync replicas. With o.Transactional every TxnRecords
// consecutive records form one transaction, committed or aborted as the seed
// decides. Progress is written to progress (nil for none): one updating line
// on a terminal, a line per second otherwise. Extra opts (TLS, SASL, ...) are
// appended to the client's options and may override them.
//
// Cancelling ctx stops generating; what was handed to the producer is
// flushed (transactions ended as planned) and counted, Stats.Interrupted is
// set and the error is nil. An error means the run could not continue; the
// returned Stats still describes what was committed before it.
func Produce(ctx context.Context, brokers []string, o Options, progress io.Writer, opts ...kgo.Opt) (Stats, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return Stats{}, err
	}
	if o.Records == 0 && o.Duration == 0 {
		return Stats{}, errors.New("cannot produce an endless stream; set a record count or a duration")
	}
	if len(brokers) == 0 {
		return Stats{}, errors.New("cannot produce without brokers; give at least one host:port")
	}
	if registryFormat(o.Format) && o.SchemaID == 0 {
		return Stats{}, fmt.Errorf("cannot produce %s records without a schema id; register the reference schema first (RegisterSchema, or loadgen --registry URL)", o.Format)
	}
	if o.EvolveAt > 0 && o.EvolvedSchemaID == 0 {
		return Stats{}, fmt.Errorf("cannot produce %s records from record %d on without the second schema version's id; register it first (RegisterSchema with EvolveAt set, or loadgen --registry URL)", o.Format, o.EvolveAt)
	}
	codec, err := batchCodec(o.Compression)
	if err != nil {
		return Stats{}, err
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(o.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(5 * time.Millisecond),
	}
	if o.Bad[KindOversized] > 0 {
		kopts = append(kopts, kgo.ProducerBatchMaxBytes(int32(batchLimit(o))))
	}
	if o.Transactional {
		kopts = append(kopts, kgo.TransactionalID(o.TransactionalID), kgo.TransactionTimeout(time.Minute))
	}
	if o.Keys == KeysNull {
		kopts = append(kopts, kgo.RecordPartitioner(nullKeyPartitioner()))
	}
	kopts = append(kopts, opts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return Stats{}, fmt.Errorf("cannot create the Kafka producer for %v: %w", brokers, err)
	}
	defer cl.Close()
	if o.Partitions > 0 {
		if err := ensureTopic(ctx, cl, &o); err != nil {
			return Stats{}, err
		}
	}
	p := newProducer(cl, &o)
	p.stats.TopicPartitions = topicPartitions(ctx, cl, o.Topic)
	stopProgress := p.startProgress(progress)
	err = p.run(ctx)
	stopProgress()
	return p.stats, err
}

// nullKeyPartitioner places each null-keyed record on the partition its
// Rec chose (Rec.Partition): produceOne packs the choice into the record's
// Partition field, which franz-go leaves alone until the partitioner sets
// it. The choice spreads records uniformly and sends a re-send elsewhere
// than its original, which franz-go's sticky partitioning (a batch's worth
// of records to one partition) would not.
func nullKeyPartitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, n int) int { return hintPartition(r.Partition, n) }
	})
}

func batchLimit(o Options) int { return o.MaxValueBytes + 64<<10 }

func batchCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("cannot use compression %q; use one of none, gzip, snappy, lz4, zstd", name)
}

// ensureTopic creates o.Topic with o.Partitions partitions unless it exists.
// A topic that will carry oversized records accepts batches that big.
func ensureTopic(ctx context.Context, cl *kgo.Client, o *Options) error {
	var cfg map[string]*string
	if o.Bad[KindOversized] > 0 {
		v := strconv.Itoa(batchLimit(*o) + 64<<10)
		cfg = map[string]*string{"max.message.bytes": &v}
	}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, int32(o.Partitions), -1, cfg, o.Topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("cannot create topic %s with %d partitions: %w (create it yourself and pass partitions 0)", o.Topic, o.Partitions, err)
	}
	return nil
}

// topicPartitions returns how many partitions topic has, or 0 when the
// brokers cannot say (a topic created on first write): one metadata
// request, so that verify can tell a row's partition is one the run wrote.
func topicPartitions(ctx context.Context, cl *kgo.Client, topic string) int32 {
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil || td[topic].Err != nil {
		return 0
	}
	return int32(len(td[topic].Partitions))
}

// item is a pooled record in flight: the kgo record points into rec's
// buffers, so generating into rec costs no copy.
type item struct {
	kr      kgo.Record
	rec     Rec
	promise func(*kgo.Record, error)
}

type producer struct {
	cl *kgo.Client
	o  *Options
	g  *Generator

	pool sync.Pool

	// Updated by promises (producer goroutines), read by progress.
	acked      [NumKinds]atomic.Int64
	ackedBytes atomic.Int64
	failed     [NumKinds]atomic.Int64
	produced   atomic.Int64
	aborted    atomic.Int64

	mu        sync.Mutex
	failedIdx []int64
	tooMany   bool
	firstErr  error

	stats   Stats
	start   time.Time
	prodCtx context.Context // outlives ctx by graceAfterCancel
}

func newProducer(cl *kgo.Client, o *Options) *producer {
	p := &producer{cl: cl, o: o, g: NewGenerator(*o)}
	p.pool.New = func() any {
		it := &item{}
		it.promise = func(_ *kgo.Record, err error) { p.done(it, err) }
		return it
	}
	return p
}

func (p *producer) done(it *item, err error) {
	k := it.rec.Kind
	if err != nil {
		p.failed[k].Add(1)
		p.mu.Lock()
		if p.firstErr == nil {
			p.firstErr = err
		}
		if len(p.failedIdx) < maxFailedIndices {
			p.failedIdx = append(p.failedIdx, it.rec.Index)
		} else {
			p.tooMany = true
		}
		p.mu.Unlock()
	} else {
		p.acked[k].Add(1)
		p.ackedBytes.Add(int64(len(it.rec.Value)))
	}
	if cap(it.rec.Value) > 1<<20 {
		it.rec = Rec{} // do not pool oversized buffers
	}
	p.pool.Put(it)
}

// snapshot returns the acked and failed counts so far and resets nothing.
func (p *producer) snapshot() (acked, failed KindCounts, bytes int64) {
	for k := range acked {
		acked[k] = p.acked[k].Load()
		failed[k] = p.failed[k].Load()
	}
	return acked, failed, p.ackedBytes.Load()
}

func (p *producer) run(ctx context.Context) error {
	p.start = time.Now()
	var cancel context.CancelFunc
	p.prodCtx, cancel = withGrace(ctx, graceAfterCancel)
	defer cancel()
	var deadline time.Time
	if p.o.Duration > 0 {
		deadline = p.start.Add(p.o.Duration)
	}
	pace := pacer{start: p.start, rate: p.o.Rate, byteRate: p.o.ByteRate}
	var err error
	if p.o.Transactional {
		err = p.runTxns(ctx, deadline, &pace)
	} else {
		err = p.runPlain(ctx, deadline, &pace)
	}
	p.stats.Elapsed = time.Since(p.start)
	p.mu.Lock()
	p.stats.FailedIndices = p.failedIdx
	if p.firstErr != nil {
		p.stats.FirstFailure, p.stats.firstErr = p.firstErr.Error(), p.firstErr
	}
	tooMany := p.tooMany
	p.mu.Unlock()
	if err == nil && tooMany {
		err = fmt.Errorf("cannot track more than %d failed records; the run cannot be verified, check the brokers and rerun", maxFailedIndices)
	}
	return err
}

// stop reports whether generation must end before record i.
func (p *producer) stop(ctx context.Context, i int64, deadline time.Time) bool {
	if p.o.Records > 0 && i >= p.o.Records {
		return true
	}
	if ctx.Err() != nil {
		p.stats.Interrupted = true
		return true
	}
	return !deadline.IsZero() && i&63 == 0 && time.Now().After(deadline)
}

// produceOne generates record i and hands it to the client. It waits for
// the pacer first, so a rate limit applies to generation, not just sending.
func (p *producer) produceOne(ctx context.Context, i int64, pace *pacer) error {
	it := p.pool.Get().(*item)
	p.g.At(i, &it.rec)
	if err := pace.wait(ctx, len(it.rec.Value)); err != nil {
		p.pool.Put(it)
		return err
	}
	it.kr = kgo.Record{Key: it.rec.Key, Value: it.rec.Value, Headers: it.rec.Headers}
	if p.o.Keys == KeysNull {
		it.kr.Partition = it.rec.partitionHint()
	}
	p.produced.Add(1)
	p.cl.Produce(p.prodCtx, &it.kr, it.promise)
	return nil
}

// graceAfterCancel is how long records already handed to the client may
// still be delivered after the caller's context ends.
const graceAfterCancel = 30 * time.Second

// withGrace returns a context that ends grace after ctx does (or when the
// returned cancel is called), so that a cancelled run still delivers what
// it generated unless the brokers are unreachable.
func withGrace(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(gctx, func() { t.Stop() })
	})
	return gctx, func() { stop(); cancel() }
}

func (p *producer) runPlain(ctx context.Context, deadline time.Time, pace *pacer) error {
	i := p.o.Start
	for ; !p.stop(ctx, i, deadline); i++ {
		if err := p.produceOne(ctx, i, pace); err != nil {
			p.stats.Interrupted = true
			break
		}
	}
	p.stats.Records = i
	err := p.cl.Flush(p.prodCtx)
	acked, failed, bytes := p.snapshot()
	p.stats.Committed, p.stats.Failed, p.stats.CommittedBytes = acked, failed, bytes
	if err != nil {
		return fmt.Errorf("cannot flush %d records to Kafka: %w", p.produced.Load()-acked.Total()-failed.Total(), err)
	}
	return nil
}

func (p *producer) runTxns(ctx context.Context, deadline time.Time, pace *pacer) error {
	per := int64(p.o.TxnRecords)
	var i int64
	for !p.stop(ctx, i, deadline) {
		txn := i / per
		if err := p.cl.BeginTransaction(); err != nil {
			return fmt.Errorf("cannot begin transaction %d: %w", txn, err)
		}
		before, failedBefore, bytesBefore := p.snapshot()
		for ; i < (txn+1)*per && !p.stop(ctx, i, deadline); i++ {
			if err := p.produceOne(ctx, i, pace); err != nil {
				p.stats.Interrupted = true
				break
			}
		}
		p.stats.Records = i
		// The context may be cancelled: finish this transaction anyway so
		// that its outcome is known.
		err := p.cl.Flush(p.prodCtx)
		after, failedAfter, bytesAfter := p.snapshot()
		abort := p.g.TxnAborted(txn)
		if failedAfter.Total() > failedBefore.Total() || err != nil {
			if !abort {
				p.stats.ForcedAborts = append(p.stats.ForcedAborts, txn)
			}
			abort = true
		}
		try := kgo.TryCommit
		if abort {
			try = kgo.TryAbort
		}
		endErr := p.cl.EndTransaction(p.prodCtx, try)
		var n KindCounts
		for k := range n {
			n[k] = after[k] - before[k]
		}
		for k := range n {
			p.stats.Failed[k] += failedAfter[k] - failedBefore[k]
		}
		switch {
		case endErr != nil && !abort:
			p.stats.UncertainTxns = append(p.stats.UncertainTxns, txn)
			return fmt.Errorf("cannot commit transaction %d (outcome unknown, recorded as uncertain): %w", txn, endErr)
		case endErr != nil:
			// An abort that fails leaves the records uncommitted: the
			// broker aborts the transaction when it times out.
			p.addAborted(n)
			return fmt.Errorf("cannot abort transaction %d: %w", txn, endErr)
		case abort:
			p.addAborted(n)
		default:
			for k := range n {
				p.stats.Committed[k] += n[k]
			}
			p.stats.CommittedBytes += bytesAfter - bytesBefore
			p.stats.TxnsCommitted++
		}
		if err != nil {
			return fmt.Errorf("cannot flush transaction %d to Kafka: %w", txn, err)
		}
	}
	return nil
}

func (p *producer) addAborted(n KindCounts) {
	for k := range n {
		p.stats.Aborted[k] += n[k]
	}
	p.aborted.Add(n.Total())
	p.stats.TxnsAborted++
}

// pacer spreads records evenly in time: record n (or byte b) is due at
// start + n/rate. Falling behind is not made up with a burst larger than
// one second's worth.
type pacer struct {
	start          time.Time
	rate, byteRate float64
	n              float64 // records or bytes so far
	timer          *time.Timer
}

func (pc *pacer) wait(ctx context.Context, size int) error {
	var per float64
	switch {
	case pc.rate > 0:
		per, pc.n = pc.rate, pc.n+1
	case pc.byteRate > 0:
		per, pc.n = pc.byteRate, pc.n+float64(size)
	default:
		return nil
	}
	due := pc.start.Add(time.Duration(pc.n / per * float64(time.Second)))
	now := time.Now()
	d := due.Sub(now)
	if d < -time.Second {
		// Far behind (a stall): rebase so we do not burst to catch up.
		pc.start = pc.start.Add(-d - time.Second)
		return nil
	}
	if d < time.Millisecond {
		return nil
	}
	if pc.timer == nil {
		pc.timer = time.NewTimer(d)
	} else {
		pc.timer.Reset(d)
	}
	select {
	case <-pc.timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startProgress prints progress until the returned func is called, which
// prints the final line: one line rewritten in place on a terminal, a plain
// line every few seconds elsewhere (internal/progress).
func (p *producer) startProgress(w io.Writer) (stop func()) {
	if w == nil {
		return func() {}
	}
	total := int64(-1)
	if p.o.Records > 0 {
		total = p.o.Records
	}
	line := progress.New(w, "loadgen", total).Unit("records acked")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		line.Poll(ctx, progress.TerminalEvery, func() (int64, string) {
			acked, failed, bytes := p.snapshot()
			return acked.Total(), fmt.Sprintf("%d sent  %.1f MB  dup %d  bad %d  aborted %d  errors %d",
				p.produced.Load(), float64(bytes)/1e6, acked[KindDup], acked.Bad(), p.aborted.Load(), failed.Total())
		})
	}()
	return func() {
		cancel()
		<-done
		s := &p.stats
		fmt.Fprintf(w, "loadgen: done: %d records in %v; committed %d (good %d, dup %d, bad %d), aborted %d, failed %d, %.1f MB committed\n",
			s.Records, s.Elapsed.Round(time.Millisecond), s.Committed.Total(), s.Committed[KindGood], s.Committed[KindDup],
			s.Committed.Bad(), s.Aborted.Total(), s.Failed.Total(), float64(s.CommittedBytes)/1e6)
	}
}

// Manifest is what a loadgen run writes for verify: the options (and so the
// seed) and what was committed.
type Manifest struct {
	Options Options            `json:"options"`
	Bad     map[string]float64 `json:"bad,omitempty"`
	Stats   Stats              `json:"stats"`
	// Error is the error that ended the run, if any.
	Error string `json:"error,omitempty"`
}

// NewManifest returns the manifest of a run of o that ended with stats and
// err.
func NewManifest(o Options, stats Stats, err error) Manifest {
	o.EnsureDefaults()
	m := Manifest{Options: o, Bad: o.badByName(), Stats: stats}
	if err != nil {
		m.Error = err.Error()
	}
	return m
}

// WriteManifest writes m as indented JSON to path, atomically (a temporary
// file renamed into place).
func WriteManifest(path string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the manifest: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write manifest %s: %w (choose a writable path)", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write manifest %s: %w", path, err)
	}
	return nil
}

// ReadManifest reads a manifest written by WriteManifest.
func ReadManifest(path string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("cannot read manifest %s: %w (pass the file loadgen --manifest wrote)", path, err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("cannot parse manifest %s: %w (is it a loadgen manifest?)", path, err)
	}
	if err := m.Options.setBadByName(m.Bad); err != nil {
		return m, fmt.Errorf("cannot use manifest %s: %w", path, err)
	}
	m.Options.EnsureDefaults()
	return m, nil
}
