package pgcopy

// Measurements (copy_timing_test.go; 2-vCPU AMD EPYC VM shared with other
// builds, private PostgreSQL 15 with fsync on, 10k reference rows per batch
// (~3.9 MB of tuples), 1% in-batch duplicate keys, fresh keys each batch):
//
//	go test -run XXX -bench . -benchtime=30x ./copy
//
//	BenchmarkRawCopy (COPY into an identical table, no merge)  ~90 ms/batch  111k rows/s
//	BenchmarkWrite (CAS + COPY to temp staging + DISTINCT ON merge + commit)
//	                                                           ~150 ms/batch  64-68k rows/s
//	    of which COPY ~37-40 ms, merge ~94-103 ms, commit ~11-16 ms
//	    merge overhead: Write/RawCopy ≈ 0.6 of the raw COPY rate
//	BenchmarkStaging, same batches by hand:
//	    temp ON COMMIT DELETE ROWS + INSERT … DISTINCT ON … ON CONFLICT  152-183 ms
//	    temp + MERGE (PostgreSQL 15 MERGE, no ON CONFLICT)               158-197 ms
//	    unlogged + TRUNCATE per batch + DISTINCT ON INSERT               215-228 ms
//	    unlogged + DELETE per batch + DISTINCT ON INSERT                 187-314 ms
//
// The load average was 2-15 during these runs, so differences under ~20%
// are noise. Kept: a temporary staging table created once per connection
// (no WAL, no catalog churn, emptied by COMMIT for free) and INSERT …
// SELECT DISTINCT ON … ON CONFLICT, which is never slower than MERGE here
// and, unlike MERGE in PostgreSQL 15, cannot fail with a unique violation
// when two writers insert the same new key concurrently. EXPLAIN ANALYZE of
// the merge: the DISTINCT ON sort is ~20-25 ms and spills to disk under the
// default work_mem (4MB), hence the 64MB session default; the rest is
// single-row speculative insertion, which is what separates the merge from
// COPY's multi-insert. temp_buffers 64MB vs 8MB was within noise for 10k
// rows and matters for larger batches (staging beyond temp_buffers spills).
//
// Direct path (direct.go; BenchmarkWrite/direct, the batches now also hold
// keys of earlier batches, load average ~0.7, one run, -benchtime=20x):
//
//	BenchmarkRawCopy                                 41.7 ms/batch  240k rows/s  1.00
//	BenchmarkWrite/direct                            44.2 ms/batch  226k rows/s  0.94
//	BenchmarkWrite/merge/sluice-defaults             66.0 ms/batch  151k rows/s  0.63
//	BenchmarkWrite/merge/postgres-defaults           73.7 ms/batch  136k rows/s  0.57
//
// The direct path's cost over raw COPY is the key probe (one index lookup
// per distinct key, pipelined with the offsets CAS) and the sort in Go;
// both are far cheaper than speculative insertion, so it is the default
// for on_conflict ignore.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Range is the offset advance of one partition in a Batch.
type Range struct {
	Topic     string
	Partition int32
	Epoch     int64 // the owner's fencing token from ClaimPartitions
	From      int64 // next_offset the caller believes is stored (may be -1)
	To        int64 // the new next_offset: last offset in the batch + 1
}

// DeadLetter is a record that cannot become a row.
type DeadLetter struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []byte // JSON text or nil; text that is not JSON is stored as a JSON string
	Target    string // target table; empty: Batch.Table.Name
	Error     string
	Reason    string // metric label, not stored
}

// Batch is one transaction's worth of work for one table.
//
// The Writer reads Data, Ends and the keys only during Write and keeps no reference
// to them afterwards.
type Batch struct {
	Table *Table
	Data  []byte // tuples back to back, no header/trailer
	Ends  []int  // Ends[i] = end of tuple i in Data
	// Keys and KeyEnds optionally hold each tuple's key as CutKey cuts it
	// (KeyEnds[i] = end of tuple i's key in Keys); with one per tuple the
	// direct path reads them instead of cutting the keys itself.
	Keys    []byte
	KeyEnds []int32
	// Seen, when set, is the target's KeyFilter, shared by the Writers of
	// the table: the direct path then probes only the keys it may hold,
	// and adds the batch's keys once it commits.
	Seen          *KeyFilter
	Ranges        []Range      // one per partition in the batch
	DeadLetters   []DeadLetter // found by the decoder; inserted in the same transaction
	DeadLetterFor func(i int, err string) DeadLetter
}

// Result describes a committed Write.
type Result struct {
	// Rows is the number of tuples handed to the target: len(Ends) minus
	// Rejected. In-batch duplicates and conflicts are counted; see Affected.
	Rows int
	// Affected is the number of rows inserted or updated in the target as
	// reported by PostgreSQL, or -1 when the commit was confirmed by
	// re-reading the offsets after a lost connection.
	Affected int64
	// Rejected are the tuples PostgreSQL refused, as dead letters committed
	// with the batch.
	Rejected []DeadLetter
	// Direct is set when the tuples were copied straight into the target
	// (direct.go) rather than merged from the staging table.
	Direct bool
	// Replayed is set when the batch had already been committed by an
	// earlier Write whose outcome was lost; this Write changed nothing and
	// Rejected is unknown.
	Replayed bool
	// Attempts is the number of transactions tried (deadlock and
	// serialization retries, and the bisecting rerun after a row-level
	// rejection).
	Attempts                        int
	CopyTime, MergeTime, CommitTime time.Duration
	// Distinct is the number of distinct keys among the tuples of a keyed
	// batch (Rows minus the in-batch duplicates), or -1 when not counted
	// (keyless tables, careful reruns).
	Distinct int
	// ProbedKeys is the number of keys the direct path's probe looked up
	// in the target (all distinct keys without Batch.Seen).
	ProbedKeys int

	optimistic bool // the direct path probed only the keys Seen may hold
}

// FencedError reports that another owner holds (some of) the partitions of
// a batch, or that their stored offsets differ from Range.From. Nothing of
// the batch was written. The caller must drop its in-memory work for these
// partitions and re-read their offsets.
type FencedError struct {
	Ranges []Range // the mismatched ranges
	Stored []Claim // what is stored for them, in the same order (Epoch 0: no row)
}

func (e *FencedError) Error() string {
	var b strings.Builder
	b.WriteString("cannot commit batch: fenced by a newer owner or a moved offset (")
	for i, r := range e.Ranges {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s/%d: have epoch %d next_offset %d", r.Topic, r.Partition, r.Epoch, r.From)
		if i < len(e.Stored) {
			fmt.Fprintf(&b, ", stored epoch %d next_offset %d", e.Stored[i].Epoch, e.Stored[i].NextOffset)
		}
	}
	b.WriteString("); drop the partitions' work and reclaim them")
	return b.String()
}

// retryableError marks an error the caller resolves by retrying the batch.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// IsRetryable reports whether retrying the same Batch (after a backoff) may
// succeed: lost connections, server shutdown and restart, too many
// connections, resource exhaustion, I/O errors. It is false for
// *FencedError, for row-level data errors, for configuration errors and
// for a cancelled context.
//
// Retrying is always safe: a batch that did commit is recognised by the
// offsets compare-and-set and reported as Result.Replayed.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var fe *FencedError
	if errors.As(err, &fe) {
		return false
	}
	var re *retryableError
	if errors.As(err, &re) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case strings.HasPrefix(c, "08"), // connection exception
			strings.HasPrefix(c, "53"),  // insufficient resources (too many connections, disk full, out of memory)
			strings.HasPrefix(c, "57P"), // admin/crash shutdown, cannot connect now
			strings.HasPrefix(c, "58"),  // system error (I/O)
			c == "40001", c == "40P01",  // conflicts that outlived the retries inside Write
			c == "55P03": // lock not available
			return true
		}
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.As(err, &ne), errors.As(err, &ce), pgconn.SafeToRetry(err):
		return true
	}
	return false
}

// maxConflictAttempts bounds the transactions tried for one Write when they
// fail with a deadlock or serialization failure.
const maxConflictAttempts = 5

// tempBuffers is the session's temp_buffers unless the connection string
// sets it: staging tables live in local buffers, and a batch that does not
// fit spills to disk on every commit. Allocated only as used.
const tempBuffers = "64MB"

// workMem is the session's work_mem unless the connection string sets it:
// the merge sorts the whole batch (DISTINCT ON), and with the default 4MB a
// 10k-row reference batch already sorts on disk.
const workMem = "64MB"

// idleInTransaction is the session's idle_in_transaction_session_timeout
// unless the connection string sets it. A writer holds its partitions'
// offsets rows locked from the first statement of a batch to COMMIT; if its
// process freezes mid-transaction (SIGSTOP, a VM pause: a zombie), the new
// owner's claim would wait on those locks for as long as the freeze lasts.
// PostgreSQL ends such a session after this long, which releases the locks
// and fences the zombie. Between the statements of a healthy batch the
// client only does in-memory work, milliseconds long.
const idleInTransaction = "5s"

// Writer writes batches over one connection, opened on first use and
// reopened after a failure. It is not safe for concurrent use; run one
// Writer per connection wanted.
type Writer struct {
	connString, schema, group string

	cfg       *pgconn.Config
	conn      *pgconn.PgConn
	tables    map[*Table]*tableState
	nextStage int
	casSQL    string
	dlSQL     string
	p         params
	rd        copyReader
	probeArgs params
	dk        directKeys
	// noDirect turns the direct path off (benchmarks compare both).
	noDirect bool

	// stmts counts round trips; tests bound bisection with it.
	stmts int
	// commitStmt is COMMIT; tests swap in ROLLBACK to lose a commit.
	commitStmt string
	// afterCommit, when set by tests, sees COMMIT's error and may replace it.
	afterCommit func(error) error
}

type tableState struct {
	sql      *tableSQL
	stagedOn *pgconn.PgConn // connection holding the staging table

	// Set by createStage: the direct path applies (direct.go).
	direct    bool
	keyFields []int    // tuple field positions of the key columns (0 is seq)
	keyOIDs   []uint32 // configured type OIDs of the key columns
	probe     string   // probeSQL

	// Back-off of the KeyFilter's optimism (Batch.Seen): after an
	// optimistic batch met a key the filter did not know of, the next
	// skip batches probe every key; penalty doubles with each such
	// failure (up to maxPenalty) and halves with each optimistic success.
	skip, penalty int
}

// maxPenalty bounds the KeyFilter back-off: at worst one optimistic try
// per 64 batches, whose failed COPY costs about half a batch.
const maxPenalty = 64

// NewWriter returns a Writer for connString (a PostgreSQL URL or DSN) that
// keeps offsets and dead letters in schema for consumer group group. It
// connects lazily.
func NewWriter(connString, schema, group string) *Writer {
	off := offsetsTable(schema)
	return &Writer{
		connString: connString,
		schema:     schema,
		group:      group,
		tables:     make(map[*Table]*tableState),
		commitStmt: "COMMIT",
		casSQL: `UPDATE ` + off + ` AS o SET next_offset = v.next, updated_at = now()
FROM unnest($2::text[], $3::int4[], $4::int8[], $5::int8[], $6::int8[]) AS v(topic, part, epoch, prev, next)
WHERE o.group_id = $1 AND o.topic = v.topic AND o.partition = v.part AND o.owner_epoch = v.epoch AND o.next_offset = v.prev`,
		dlSQL: `INSERT INTO ` + pgx.Identifier{schema, "dead_letters"}.Sanitize() + ` (group_id, topic, partition, "offset", key, value, headers, target, error, received_at)
SELECT $9::text, *, now() FROM unnest($1::text[], $2::int4[], $3::int8[], $4::bytea[], $5::bytea[], $6::jsonb[], $7::text[], $8::text[])
ORDER BY 8, 2, 3, 4
ON CONFLICT (group_id, target, topic, partition, "offset") DO NOTHING`,
	}
}

// Close closes the connection.
func (w *Writer) Close(ctx context.Context) error {
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close(ctx)
	w.conn = nil
	return err
}

func (w *Writer) connect(ctx context.Context) (*pgconn.PgConn, error) {
	if w.conn != nil && !w.conn.IsClosed() {
		return w.conn, nil
	}
	w.conn = nil
	if w.cfg == nil {
		cfg, err := pgconn.ParseConfig(w.connString)
		if err != nil {
			return nil, fmt.Errorf("cannot parse the PostgreSQL connection string: %w; fix postgres.url", err)
		}
		if _, ok := cfg.RuntimeParams["temp_buffers"]; !ok {
			cfg.RuntimeParams["temp_buffers"] = tempBuffers
		}
		if _, ok := cfg.RuntimeParams["work_mem"]; !ok {
			cfg.RuntimeParams["work_mem"] = workMem
		}
		if _, ok := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
			cfg.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransaction
		}
		if _, ok := cfg.RuntimeParams["application_name"]; !ok {
			cfg.RuntimeParams["application_name"] = "sluice"
		}
		w.cfg = cfg
	}
	conn, err := pgconn.ConnectConfig(ctx, w.cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to PostgreSQL at %s:%d: %w", w.cfg.Host, w.cfg.Port, err)
	}
	w.conn = conn
	return conn, nil
}

// dropConn forgets a broken connection; the next Write reconnects.
func (w *Writer) dropConn() {
	if w.conn != nil {
		w.conn.Close(context.Background())
		w.conn = nil
	}
}

// Prepare opens the Writer's session and, for each keyed table, its
// staging table, so that the first Write does not pay for them: called
// while the consumer joins its group, it takes connection set-up off the
// first batch's commit. An error is only reported; Write connects again.
func (w *Writer) Prepare(ctx context.Context, tables ...*Table) error {
	conn, err := w.connect(ctx)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if !t.Keyed() {
			continue
		}
		ts, err := w.table(t)
		if err != nil {
			return err
		}
		if err := w.createStage(ctx, conn, t, ts); err != nil {
			return w.abort(ctx, err)
		}
	}
	return nil
}

func (w *Writer) table(t *Table) (*tableState, error) {
	if ts, ok := w.tables[t]; ok {
		return ts, nil
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	ts := &tableState{sql: t.compile("sluice_stage_" + strconv.Itoa(w.nextStage))}
	w.nextStage++
	w.tables[t] = ts
	return ts, nil
}

// validate checks the shape of b; it does not parse tuples.
func (b *Batch) validate() error {
	if b.Table == nil {
		return errors.New("cannot write a batch without a table: set Batch.Table")
	}
	if len(b.Ranges) == 0 {
		return fmt.Errorf("cannot write a batch for %s without ranges: every batch must advance the offsets of the partitions it came from", b.Table.Name)
	}
	prev := 0
	for i, e := range b.Ends {
		if e <= prev {
			return fmt.Errorf("cannot write a batch for %s: Ends[%d]=%d does not follow %d; every tuple must be non-empty", b.Table.Name, i, e, prev)
		}
		prev = e
	}
	if prev != len(b.Data) {
		return fmt.Errorf("cannot write a batch for %s: the tuples end at %d but Data holds %d bytes", b.Table.Name, prev, len(b.Data))
	}
	for i := range b.Ranges {
		for j := range i {
			if b.Ranges[i].Topic == b.Ranges[j].Topic && b.Ranges[i].Partition == b.Ranges[j].Partition {
				return fmt.Errorf("cannot write a batch for %s: partition %s/%d has two ranges; merge them", b.Table.Name, b.Ranges[i].Topic, b.Ranges[i].Partition)
			}
		}
	}
	return nil
}

func (b *Batch) start(i int) int {
	if i == 0 {
		return 0
	}
	return b.Ends[i-1]
}

// seq returns the seq field of tuple i of a keyed batch.
func (b *Batch) seq(i int) (int64, error) {
	s := b.start(i)
	if b.Ends[i]-s < 14 || binary.BigEndian.Uint32(b.Data[s+2:]) != 8 {
		return 0, fmt.Errorf("cannot read the seq field of tuple %d for %s: a keyed tuple must start with an int8 seq field", i, b.Table.Name)
	}
	return int64(binary.BigEndian.Uint64(b.Data[s+6:])), nil
}

// Write commits b in one transaction: the offsets compare-and-set, the
// tuples, the dead letters. See the package comment for the outcomes.
func (w *Writer) Write(ctx context.Context, b *Batch) (Result, error) {
	if err := b.validate(); err != nil {
		return Result{}, err
	}
	ts, err := w.table(b.Table)
	if err != nil {
		return Result{}, err
	}
	careful := false
	direct := !w.noDirect
	optimistic := b.Seen != nil
	if ts.skip > 0 {
		ts.skip--
		optimistic = false
	}
	for attempt := 1; ; attempt++ {
		res, err := w.attempt(ctx, b, ts, careful, direct, optimistic)
		res.Attempts = attempt
		if err == nil {
			if res.optimistic {
				ts.penalty /= 2
			}
			return res, nil
		}
		var fe *FencedError
		switch {
		case errors.As(err, &fe):
			return res, err
		case res.optimistic && pgCode(err) == "23505":
			// A key the filter did not know of is in the target (written
			// by another process, or before this one started), or a
			// concurrent writer committed it: rerun probing every key,
			// and keep probing every key for a while.
			ts.penalty = min(2*ts.penalty+1, maxPenalty)
			ts.skip = ts.penalty
			optimistic = false
			continue
		case res.Direct && (pgCode(err) == "23505" || isConflict(err)):
			// A key committed by a concurrent writer since the probe, or a
			// deadlock with one: the staging merge handles both.
			direct = false
			continue
		case res.Direct && isRowLevel(err) && b.DeadLetterFor != nil:
			// A row PostgreSQL refuses: find it under savepoints (careful
			// attempts always merge).
			direct, careful = false, true
			continue
		case !careful && isRowLevel(err) && b.DeadLetterFor != nil:
			// Rerun the transaction under savepoints to find the rows.
			careful = true
			continue
		case isConflict(err) && attempt < maxConflictAttempts:
			// 10ms, 20ms, 40ms … each scaled by a random factor in [0.5, 1.5)
			// so the transactions that collided do not collide again.
			d := time.Duration(float64(10*time.Millisecond<<(attempt-1)) * (0.5 + rand.Float64()))
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return res, fmt.Errorf("cannot write batch for %s: %w (while retrying after %v)", b.Table.Name, ctx.Err(), err)
			case <-t.C:
			}
			continue
		}
		if isRowLevel(err) && b.DeadLetterFor == nil {
			return res, fmt.Errorf("cannot write batch for %s: %w; set Batch.DeadLetterFor so rejected rows become dead letters", b.Table.Name, err)
		}
		return res, fmt.Errorf("cannot write batch for %s: %w", b.Table.Name, err)
	}
}

// tx is the state of one attempt.
type tx struct {
	b        *Batch
	ts       *tableSQL
	conn     *pgconn.PgConn
	rejects  []DeadLetter
	staged   []int // tuples that reached the staging table (careful keyed attempts)
	affected int64
}

// attempt runs one transaction. On error the transaction is rolled back or
// the connection dropped.
func (w *Writer) attempt(ctx context.Context, b *Batch, ts *tableState, careful, direct, optimistic bool) (Result, error) {
	var res Result
	conn, err := w.connect(ctx)
	if err != nil {
		return res, err
	}
	t := &tx{b: b, ts: ts.sql, conn: conn}
	if b.Table.Keyed() {
		if err := w.createStage(ctx, conn, b.Table, ts); err != nil {
			return res, w.abort(ctx, err)
		}
	}
	direct = direct && !careful && ts.direct && len(b.Ends) > 0 && w.dk.prepare(b, ts.keyFields)
	res.Distinct = -1
	switch {
	case direct:
		res.Distinct = len(w.dk.sel)
	case b.Table.Keyed() && !careful && len(b.Ends) > 0 && w.dk.prepare(b, ts.keyFields):
		// The merge dedups in SQL; the sort here (a few ms for 50,000
		// keys) tells the duplicates apart from the keys already stored.
		res.Distinct = len(w.dk.sel)
	}
	var probe *params
	if direct {
		res.optimistic = optimistic && b.Seen != nil
		w.dk.choose(b.Seen, res.optimistic)
		res.ProbedKeys = len(w.dk.probe)
		if len(w.dk.probe) > 0 {
			probe = &w.probeArgs
			probe.reset()
			w.dk.probeArrays(probe, ts.keyOIDs)
		}
	}

	start := time.Now()
	fault("begin") // test-only (fault.go)
	existing, err := w.begin(ctx, b, ts.probe, probe)
	if err != nil {
		if errors.Is(err, errReplayed) {
			return Result{Rows: len(b.Ends), Affected: -1, Replayed: true}, nil
		}
		return res, w.abort(ctx, err)
	}
	fault("copy") // test-only (fault.go)

	if direct {
		res.Direct = true
		if err := w.dk.dropExisting(existing); err != nil {
			return res, w.abort(ctx, err)
		}
		if len(w.dk.sel) > 0 {
			w.dk.rd.reset(b, w.dk.sel)
			w.stmts++
			tag, err := copyFrom(ctx, conn, &w.dk.rd, ts.sql.copyTarget)
			w.dk.rd.reset(nil, nil)
			if err != nil {
				return res, w.abort(ctx, err)
			}
			t.affected = tag.RowsAffected()
		}
	} else if len(b.Ends) > 0 {
		copySQL := ts.sql.copyTarget
		if b.Table.Keyed() {
			copySQL = ts.sql.copyStage
		}
		if careful {
			_, err = w.copyCareful(ctx, t, copySQL, 0, len(b.Ends), false)
		} else {
			var tag pgconn.CommandTag
			tag, err = w.copyRange(ctx, conn, copySQL, b, 0, len(b.Ends))
			if !b.Table.Keyed() {
				t.affected = tag.RowsAffected()
			}
		}
		if err != nil {
			return res, w.abort(ctx, err)
		}
	}
	res.CopyTime = time.Since(start)

	start = time.Now()
	if b.Table.Keyed() && len(b.Ends) > 0 && !direct {
		if careful {
			_, err = w.mergeCareful(ctx, t, t.staged, false)
		} else {
			w.stmts++
			var tag pgconn.CommandTag
			tag, err = conn.ExecParams(ctx, ts.sql.merge, nil, nil, nil, nil).Close()
			t.affected = tag.RowsAffected()
		}
		if err != nil {
			return res, w.abort(ctx, err)
		}
	}
	if len(b.DeadLetters)+len(t.rejects) > 0 {
		if err := w.insertDeadLetters(ctx, t); err != nil {
			return res, w.abort(ctx, err)
		}
	}
	res.MergeTime = time.Since(start)

	fault("merge")  // test-only (fault.go)
	fault("commit") // test-only (fault.go)
	start = time.Now()
	w.stmts++
	err = execSimple(ctx, conn, w.commitStmt)
	if err == nil {
		fault("committed") // test-only (fault.go)
	}
	if w.afterCommit != nil {
		err = w.afterCommit(err)
	}
	res.CommitTime = time.Since(start)
	res.Rows = len(b.Ends) - len(t.rejects)
	if res.Distinct > res.Rows {
		res.Distinct = -1 // rows were rejected: the count no longer applies
	}
	res.Rejected = t.rejects
	res.Affected = t.affected
	if err == nil {
		w.remember(b, res)
		return res, nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && !conn.IsClosed() {
		// The server answered: the transaction is over and did not commit.
		return Result{Direct: res.Direct, optimistic: res.optimistic}, err
	}
	// The connection broke while COMMIT was in flight: ask the offsets.
	w.dropConn()
	committed, rerr := w.resolveCommit(ctx, b.Ranges)
	if rerr != nil {
		return Result{}, fmt.Errorf("cannot tell whether the commit went through (%v): %w", err, rerr)
	}
	if !committed {
		return Result{}, &retryableError{fmt.Errorf("cannot commit: the connection broke and the offsets show the transaction did not commit: %w", err)}
	}
	res.Affected = -1
	w.remember(b, res)
	return res, nil
}

// remember adds the keys of a committed direct batch to its KeyFilter:
// those it inserted and those the probe found already there.
func (w *Writer) remember(b *Batch, res Result) {
	if res.Direct && b.Seen != nil {
		b.Seen.add(w.dk.hashes)
	}
}

// abort ends a failed attempt: a broken connection is dropped so the next
// attempt reconnects; otherwise the transaction is rolled back.
func (w *Writer) abort(ctx context.Context, err error) error {
	if w.conn == nil {
		return err
	}
	if !w.conn.IsClosed() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		rollback(rctx, w.conn)
		cancel()
	}
	if w.conn.IsClosed() {
		w.dropConn()
	}
	return err
}

// begin opens the transaction and compare-and-sets every range in one
// round trip. The UPDATE also row-locks the offsets rows, so a claim by a
// new owner waits for this transaction and then sees its result. With
// probeArgs, the direct path's key probe (probeSQL) runs in the same round
// trip and its rows are returned.
func (w *Writer) begin(ctx context.Context, b *Batch, probeSQL string, probeArgs *params) ([][][]byte, error) {
	p := &w.p
	p.reset()
	p.text(w.group)
	p.partitions(len(b.Ranges), func(i int) (string, int32) { return b.Ranges[i].Topic, b.Ranges[i].Partition })
	a := p.array(oidInt8)
	for _, r := range b.Ranges {
		a.int8(r.Epoch)
	}
	p.endArray(oidInt8Arr)
	a = p.array(oidInt8)
	for _, r := range b.Ranges {
		a.int8(r.From)
	}
	p.endArray(oidInt8Arr)
	a = p.array(oidInt8)
	for _, r := range b.Ranges {
		a.int8(r.To)
	}
	p.endArray(oidInt8Arr)

	var pb pgconn.Batch
	pb.ExecParams("BEGIN", nil, nil, nil, nil)
	// Deferred constraints would fail at COMMIT, where no row can be blamed.
	pb.ExecParams("SET CONSTRAINTS ALL IMMEDIATE", nil, nil, nil, nil)
	pb.ExecParams(w.casSQL, p.args(), p.oids, p.formats, nil)
	want := 3
	if probeArgs != nil {
		pb.ExecParams(probeSQL, probeArgs.args(), probeArgs.oids, probeArgs.formats, nil)
		want++
	}
	w.stmts++
	results, err := w.conn.ExecBatch(ctx, &pb).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("cannot begin the transaction and compare-and-set the offsets: %w", err)
	}
	if len(results) != want {
		return nil, fmt.Errorf("cannot compare-and-set the offsets: expected %d results, got %d", want, len(results))
	}
	if n := results[2].CommandTag.RowsAffected(); n == int64(len(b.Ranges)) {
		if probeArgs != nil {
			return results[3].Rows, nil
		}
		return nil, nil
	}
	rollback(ctx, w.conn)
	stored, err := readClaims(ctx, w.conn, w.schema, w.group, b.Ranges)
	if err != nil {
		return nil, err
	}
	fe := &FencedError{}
	replayed := true
	for i, r := range b.Ranges {
		s := stored[i]
		if s.Epoch == r.Epoch && s.NextOffset == r.From {
			replayed = false // this one matched: not a replay
			continue
		}
		if s.Epoch != r.Epoch || s.NextOffset != r.To || r.From == r.To {
			replayed = false
		}
		fe.Ranges = append(fe.Ranges, r)
		fe.Stored = append(fe.Stored, s)
	}
	if replayed {
		return nil, errReplayed
	}
	return nil, fe
}

// errReplayed reports that every range is already at To under the same
// epoch: only this owner can have done that, with this very batch, in an
// earlier Write whose outcome was lost.
var errReplayed = errors.New("batch already committed")

// copyRange streams tuples [lo, hi) of b through COPY.
func (w *Writer) copyRange(ctx context.Context, conn *pgconn.PgConn, sql string, b *Batch, lo, hi int) (pgconn.CommandTag, error) {
	w.rd.reset(b.Data[b.start(lo):b.Ends[hi-1]])
	w.stmts++
	tag, err := copyFrom(ctx, conn, &w.rd, sql)
	w.rd.reset(nil)
	return tag, err
}

// errCopyAbandoned is what a COPY's reader returns once copyFrom has
// returned: its caller may already be reusing the rows.
var errCopyAbandoned = errors.New("the COPY was abandoned")

// copyGuard is the reader copyFrom hands to pgconn. Read holds mu while it
// reads the rows, and copyFrom clears r under mu when CopyFrom returns.
type copyGuard struct {
	mu sync.Mutex
	r  io.Reader
}

func (g *copyGuard) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.r == nil {
		return 0, errCopyAbandoned
	}
	return g.r.Read(p)
}

// copyFrom is conn.CopyFrom(ctx, r, sql), except that r is not read once
// it returns. pgconn reads r in a goroutine and, when the connection fails
// mid-COPY, returns without waiting for that goroutine, which may then
// still read rows its caller is already reusing: internal/chaos caught a
// writer panicking in tupleReader.Read after PostgreSQL terminated its
// connection. The guard is fresh for every call, so an abandoned
// goroutine can never read the next COPY's rows.
func copyFrom(ctx context.Context, conn *pgconn.PgConn, r io.Reader, sql string) (pgconn.CommandTag, error) {
	g := &copyGuard{r: r}
	tag, err := conn.CopyFrom(ctx, g, sql)
	g.mu.Lock()
	g.r = nil
	g.mu.Unlock()
	return tag, err
}

const (
	savepoint        = "SAVEPOINT sluice_bisect"
	releaseSavepoint = "RELEASE SAVEPOINT sluice_bisect"
	undoSavepoint    = "ROLLBACK TO SAVEPOINT sluice_bisect; RELEASE SAVEPOINT sluice_bisect"
)

// underSavepoint runs f in a savepoint. A row-level error rolls the
// savepoint back and is returned for the caller to narrow down; any other
// error is returned with the transaction left as it is.
func (w *Writer) underSavepoint(ctx context.Context, conn *pgconn.PgConn, f func() error) error {
	w.stmts++
	if err := execSimple(ctx, conn, savepoint); err != nil {
		return err
	}
	ferr := f()
	w.stmts++
	if ferr == nil {
		return execSimple(ctx, conn, releaseSavepoint)
	}
	if !isRowLevel(ferr) {
		return ferr
	}
	if err := execSimple(ctx, conn, undoSavepoint); err != nil {
		return err
	}
	return ferr
}

// copyCareful copies tuples [lo, hi) under savepoints, rejecting the ones
// COPY refuses. When the error names the tuple (the COPY context's line
// number) it is rejected at once, the tuples before it are copied again in
// one go and the rest is halved; otherwise the range is halved, and when
// the left half copies cleanly the right half is split without trying it
// whole. Each rejection thus costs O(log n) statements, and a range
// without bad tuples costs one. It reports whether [lo, hi) copied in one
// statement.
func (w *Writer) copyCareful(ctx context.Context, t *tx, sql string, lo, hi int, knownBad bool) (bool, error) {
	if lo >= hi {
		return true, nil
	}
	if !knownBad || hi-lo == 1 {
		err := w.underSavepoint(ctx, t.conn, func() error {
			_, err := w.copyRange(ctx, t.conn, sql, t.b, lo, hi)
			return err
		})
		if err == nil {
			t.staged = appendRange(t.staged, lo, hi)
			return true, nil
		}
		if !isRowLevel(err) {
			return false, err
		}
		if line, _, ok := copyLine(err); ok && lo+line-1 < hi {
			bad := lo + line - 1
			w.reject(t, bad, err)
			if _, err := w.copyCareful(ctx, t, sql, lo, bad, false); err != nil {
				return false, err
			}
			mid := bad + 1 + (hi-bad-1)/2
			if _, err := w.copyCareful(ctx, t, sql, bad+1, mid, false); err != nil {
				return false, err
			}
			_, err := w.copyCareful(ctx, t, sql, mid, hi, false)
			return false, err
		}
		if hi-lo == 1 {
			w.reject(t, lo, err)
			return false, nil
		}
	}
	mid := lo + (hi-lo)/2
	leftClean, err := w.copyCareful(ctx, t, sql, lo, mid, false)
	if err != nil {
		return false, err
	}
	_, err = w.copyCareful(ctx, t, sql, mid, hi, leftClean)
	return false, err
}

func appendRange(dst []int, lo, hi int) []int {
	for i := lo; i < hi; i++ {
		dst = append(dst, i)
	}
	return dst
}

// mergeCareful merges the staged tuples idx (ascending) under savepoints,
// halving on a row-level error until the single tuples responsible are
// found. Halves are merged in seq order, so a key's first occurrence
// (ignore) or last occurrence (update) still wins across halves. When the
// left half of a failed range merges cleanly the right half is known to
// fail and is split without trying it whole. Each node costs one round
// trip (two when it fails), so k bad tuples cost O(k log n) of them.
// It reports whether idx merged in one statement.
func (w *Writer) mergeCareful(ctx context.Context, t *tx, idx []int, knownBad bool) (bool, error) {
	if len(idx) == 0 {
		return true, nil
	}
	if !knownBad || len(idx) == 1 {
		lo, err := t.b.seq(idx[0])
		if err != nil {
			return false, err
		}
		hi, err := t.b.seq(idx[len(idx)-1])
		if err != nil {
			return false, err
		}
		sql := savepoint + "; " + t.ts.mergeRange[0] + strconv.FormatInt(lo, 10) + " AND " + strconv.FormatInt(hi, 10) +
			t.ts.mergeRange[1] + "; " + releaseSavepoint
		w.stmts++
		results, err := t.conn.Exec(ctx, sql).ReadAll()
		if err == nil {
			if len(results) > 1 {
				t.affected += results[1].CommandTag.RowsAffected()
			}
			return true, nil
		}
		if !isRowLevel(err) {
			return false, err
		}
		w.stmts++
		if uerr := execSimple(ctx, t.conn, undoSavepoint); uerr != nil {
			return false, uerr
		}
		if len(idx) == 1 {
			w.reject(t, idx[0], err)
			return false, nil
		}
	}
	mid := len(idx) / 2
	leftClean, err := w.mergeCareful(ctx, t, idx[:mid], false)
	if err != nil {
		return false, err
	}
	_, err = w.mergeCareful(ctx, t, idx[mid:], leftClean)
	return false, err
}

func (w *Writer) reject(t *tx, i int, err error) {
	t.rejects = append(t.rejects, t.b.DeadLetterFor(i, rejectMessage(err)))
}

// createStage creates the connection's staging table for a keyed table:
// (sluice_seq, columns) with each column of the target's own type (domains,
// typmods and NOT NULL included, so COPY itself rejects bad tuples and names
// their line) when the configured type has the same wire format, and of the
// configured type otherwise (the merge then converts).
//
// It is a temporary table ON COMMIT DELETE ROWS: no WAL, no catalog churn
// per batch, emptied by the commit that used it and gone with the session.
// It is created once per session: a call on the connection that already
// holds it does nothing.
func (w *Writer) createStage(ctx context.Context, conn *pgconn.PgConn, t *Table, st *tableState) error {
	if st.stagedOn == conn {
		return nil
	}
	ts := st.sql
	cols, err := describeTarget(ctx, conn, t)
	if err != nil {
		return err
	}
	oids, err := resolveTypes(ctx, conn, t)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("CREATE TEMP TABLE IF NOT EXISTS " + ts.stage[len(`"pg_temp".`):] + " (" + pgx.Identifier{seqColumn}.Sanitize() + " int8 NOT NULL")
	direct := t.OnConflict == PolicyIgnore
	for i, c := range t.Columns {
		tc, ok := cols[c.Name]
		if !ok {
			return fmt.Errorf("cannot find column %q in table %s: add it or remove it from the configuration, then run sluice migrate", c.Name, t.Name)
		}
		b.WriteString(", " + pgx.Identifier{c.Name}.Sanitize() + " ")
		direct = direct && sameWireFormat(oids[i], tc.baseOID)
		if sameWireFormat(oids[i], tc.baseOID) {
			b.WriteString(tc.typ)
			if tc.notNull {
				b.WriteString(" NOT NULL")
			}
		} else {
			b.WriteString(c.SQLType)
		}
	}
	b.WriteString(") ON COMMIT DELETE ROWS")
	w.stmts++
	if err := execSimple(ctx, conn, b.String()); err != nil {
		return fmt.Errorf("cannot create the staging table for %s: %w", t.Name, err)
	}
	st.direct = direct
	st.keyFields, st.keyOIDs = st.keyFields[:0], st.keyOIDs[:0]
	var keyTypes []string
	for _, k := range t.Key {
		i := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == k })
		st.keyFields = append(st.keyFields, 1+i)
		st.keyOIDs = append(st.keyOIDs, oids[i])
		keyTypes = append(keyTypes, t.Columns[i].SQLType)
	}
	st.probe = probeSQL(t, keyTypes)
	st.stagedOn = conn
	return nil
}

// insertDeadLetters inserts the decoder's and PostgreSQL's rejections.
// A record already dead-lettered for this group and target (same topic,
// partition, offset) is left as it is: a rerun of a batch adds nothing.
func (w *Writer) insertDeadLetters(ctx context.Context, t *tx) error {
	all := t.b.DeadLetters
	if len(t.rejects) > 0 {
		all = append(all[:len(all):len(all)], t.rejects...)
	}
	var p params
	a := p.array(oidText)
	for i := range all {
		a.str(cleanText(all[i].Topic))
	}
	p.endArray(oidTextArr)
	a = p.array(oidInt4)
	for i := range all {
		a.int4(all[i].Partition)
	}
	p.endArray(oidInt4Arr)
	a = p.array(oidInt8)
	for i := range all {
		a.int8(all[i].Offset)
	}
	p.endArray(oidInt8Arr)
	for _, f := range []func(*DeadLetter) []byte{
		func(d *DeadLetter) []byte { return d.Key },
		func(d *DeadLetter) []byte { return d.Value },
	} {
		a = p.array(oidBytea)
		for i := range all {
			if v := f(&all[i]); v != nil {
				a.bytes(v)
			} else {
				a.null()
			}
		}
		p.endArray(oidByteaArr)
	}
	a = p.array(oidJSONB)
	for i := range all {
		if h := all[i].Headers; h != nil {
			a.jsonb(safeJSON(h))
		} else {
			a.null()
		}
	}
	p.endArray(oidJSONBArr)
	a = p.array(oidText)
	for i := range all {
		target := all[i].Target
		if target == "" {
			target = t.b.Table.Name
		}
		a.str(cleanText(target))
	}
	p.endArray(oidTextArr)
	a = p.array(oidText)
	for i := range all {
		a.str(cleanText(all[i].Error))
	}
	p.endArray(oidTextArr)
	p.text(w.group)
	w.stmts++
	if _, err := t.conn.ExecParams(ctx, w.dlSQL, p.args(), p.oids, p.formats, nil).Close(); err != nil {
		return fmt.Errorf("cannot insert %d dead letters into %s: %w", len(all), pgx.Identifier{w.schema, "dead_letters"}.Sanitize(), err)
	}
	return nil
}

// cleanText makes s acceptable to a text column: valid UTF-8, no NUL.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// safeJSON returns h if jsonb accepts it, else h as a JSON string.
func safeJSON(h []byte) []byte {
	if json.Valid(h) && !strings.Contains(string(h), `\u0000`) {
		return h
	}
	s, _ := json.Marshal(cleanText(string(h)))
	return s
}

// resolveCommit learns whether a transaction for ranges whose COMMIT got no
// answer committed: on a fresh connection it reads the offsets rows. All at
// To under the same epoch: committed. All at From under the same epoch: not
// committed. Anything else: a newer owner moved them (*FencedError).
func (w *Writer) resolveCommit(ctx context.Context, ranges []Range) (bool, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	conn, err := w.connect(rctx)
	if err != nil {
		return false, &retryableError{err}
	}
	stored, err := readClaims(rctx, conn, w.schema, w.group, ranges)
	if err != nil {
		w.abort(rctx, err)
		return false, &retryableError{err}
	}
	atTo, atFrom := true, true
	fe := &FencedError{}
	for i, r := range ranges {
		s := stored[i]
		atTo = atTo && s.Epoch == r.Epoch && s.NextOffset == r.To
		atFrom = atFrom && s.Epoch == r.Epoch && s.NextOffset == r.From
		if s.Epoch != r.Epoch || (s.NextOffset != r.To && s.NextOffset != r.From) {
			fe.Ranges = append(fe.Ranges, r)
			fe.Stored = append(fe.Stored, s)
		}
	}
	switch {
	case atTo:
		return true, nil
	case atFrom:
		return false, nil
	}
	if len(fe.Ranges) == 0 {
		// Some at From, some at To: no single transaction did that.
		for i, r := range ranges {
			fe.Ranges = append(fe.Ranges, r)
			fe.Stored = append(fe.Stored, stored[i])
		}
	}
	return false, fe
}
