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
//
// Change-stream batches (ops.go; BenchmarkWriteOps, 10k reference rows,
// 5% deletes of stored keys, load average 4-9, four runs of
// -benchtime=10x, merge time per batch):
//
//	BenchmarkWrite/merge/sluice-defaults (plain upserts)    47-70 ms
//	BenchmarkWriteOps/deletes (ignore)                      79-108 ms
//	BenchmarkWriteOps/unchanged (update, +10% updates
//	    of stored keys keeping a column)                    124-153 ms
//
// The ops stage's COPY costs what the plain stage's does; the key-by-key
// apply function costs about 1.5 (ignore) to 2.3 (update with marks) times
// the set-based merge. Plain batches are unaffected: they never touch the
// ops stage (same allocations per batch, and times within the noise,
// before and after it was added).
//
// Since claimed ops batches insert their plain keys and delete their
// delete-only keys by a statement each (ops.go, "Plain keys first";
// -benchtime 20x -count 3, the same batches applied both ways in one run,
// merge time per batch, 2-vCPU AMD EPYC VM):
//
//	BenchmarkWriteOps/deletes/loop (every key in the loop)  77-84 ms
//	BenchmarkWriteOps/deletes/split                         54-58 ms
//	BenchmarkWriteOps/unchanged/loop                       101-109 ms
//	BenchmarkWriteOps/unchanged/split                       66-71 ms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

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
	ord       opsReader
	probeArgs params
	dk        directKeys
	// The dead letters of the rows the current Write's careful attempts
	// rejected (Batch.DeadLetterFor's, called between transactions), and
	// the rejections of the last attempt that have none yet.
	dls     map[dlKey]DeadLetter
	missing []missingDL
	// hooks are set by the package's tests and benchmarks only; nil in
	// production, where each costs one nil check.
	hooks *hooks
}

// hooks are a Writer's test and benchmark knobs.
type hooks struct {
	// noDirect turns the direct path off (benchmarks compare both).
	noDirect bool
	// stmts counts round trips; tests bound bisection with it.
	stmts int
	// commitStmt replaces COMMIT when set; tests use ROLLBACK to lose a
	// commit.
	commitStmt string
	// afterCommit, when set, sees COMMIT's error and may replace it.
	afterCommit func(error) error
	// beforeCommit, when set, runs before COMMIT; an error ends the
	// attempt with it.
	beforeCommit func() error
	// deferWait, when set, replaces deferWait (inflight.go).
	deferWait time.Duration
	// beforeAwait, when set, runs when the writer is about to wait for
	// batches holding keys of its batch that have not begun their
	// transactions (awaitBegun).
	beforeAwait func()
	// conflicts counts the transactions retried after a deadlock or
	// serialization failure (not the direct path's fallbacks).
	conflicts int
	// waits counts the waits for batches that claimed keys first
	// (awaitOwners) that found one still in flight.
	waits int
	// resolved counts the attempts whose change batch the writer
	// resolved (resolve.go).
	resolved int
	// probeUpdates makes an optimistic update batch probe its keys with
	// the offsets compare-and-set, as other batches do, instead of
	// finding them with the UPDATE; mergeUpdates merges the stored keys'
	// winners with the staging merge (INSERT … ON CONFLICT DO UPDATE)
	// instead of the UPDATE. Benchmarks compare the ways (updateStored).
	probeUpdates, mergeUpdates bool
	// beforeLeftProbe, when set, runs between the direct path's UPDATE
	// of stored keys and the probe of the keys it left (updateStored).
	beforeLeftProbe func()
	// chunkRows, when set, is the size of a chunked COPY's chunks
	// (copyNew), so that small batches copy in several.
	chunkRows int
}

// roundTrip counts a round trip for the tests.
func (w *Writer) roundTrip() {
	if w.hooks != nil {
		w.hooks.stmts++
	}
}

type tableState struct {
	sql      *tableSQL
	stagedOn *pgconn.PgConn // connection holding the staging table

	// Set by createStage: the direct path applies (direct.go).
	direct     bool
	guardField int      // on_conflict update: the guard's int8 tuple field, -1 without a guard
	keyFields  []int    // tuple field positions of the key columns (0 is seq)
	keyOIDs    []uint32 // configured type OIDs of the key columns
	probe      string   // probeSQL
	probeGuard string   // probeGuardSQL

	// The ops stage (ops.go), built and created on the first batch that
	// needs it from the column types createStage found. opsResolve says
	// the writer may resolve its batches' keys (resolve.go): every key
	// column compares by its bytes (byteKey) and is staged as the
	// target's type, and the OffsetColumn, if any, is int8, at field
	// opsGuard (-1: none).
	opsResolve         bool
	opsGuard           int
	ops                *opsSQL
	opsOn              *pgconn.PgConn // connection holding the ops stage
	opsTypes, opsCasts []string

	// Back-off of the KeyFilter's optimism (Batch.Seen): after an
	// optimistic batch met a key the filter did not know of, the next
	// skip batches probe every key; penalty doubles with each such
	// failure (up to maxPenalty) and halves with each optimistic success.
	skip, penalty int
	// Back-off of the ops batches' plain keys first (ops.go): a claimed
	// ops batch that deadlocked with another instance's transaction is
	// retried, and the table's next splitOff batches are written, with
	// every key in the loop, which takes keys in the one order every
	// unsplit batch does (unsplit: the current Write); splitPenalty
	// doubles with each such deadlock (up to maxPenalty) and halves with
	// each split batch that commits.
	splitOff, splitPenalty int
	unsplit                bool
	// chunked counts down the batches whose direct COPY runs in chunks
	// under savepoints (copyNew): set after a direct batch met a
	// key another transaction committed since its probe.
	chunked int
	// uniques caches keyRace's answers: whether the unique index named
	// "schema.name" is one of the key's (a violation of it is a key
	// another transaction committed since the probe) or another one.
	uniques map[string]bool
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
	m := modeDirect
	if b.Seen != nil {
		m = modeOptimistic
	}
	if ts.skip > 0 {
		ts.skip--
		m = max(m, modeDirect)
	}
	if w.hooks != nil && w.hooks.noDirect {
		m = modeMerge
	}
	if ts.chunked > 0 {
		ts.chunked--
	}
	ts.unsplit = ts.splitOff > 0
	if ts.unsplit {
		ts.splitOff--
	}
	directReruns := 0
	defer w.forgetDeadLetters()
	for attempt := 1; ; attempt++ {
		res, err := w.attempt(ctx, b, ts, m)
		res.Attempts = attempt
		if errors.Is(err, errPrepareDeadLetters) {
			// The careful attempt rejected rows: their dead letters are
			// made now, with no transaction open (DeadLetterFor may take
			// its time), and the next careful attempt rejects those rows
			// again without looking for them.
			w.prepareDeadLetters()
			continue
		}
		if err == nil {
			if res.optimistic {
				ts.penalty /= 2
			}
			if res.split {
				ts.splitPenalty /= 2
			}
			return res, nil
		}
		if res.split && isConflict(err) {
			ts.splitPenalty = min(2*ts.splitPenalty+1, maxPenalty)
			ts.splitOff, ts.unsplit = ts.splitPenalty, true
		}
		// race: a direct attempt met a key another transaction committed
		// since its probe. A violation of another unique index is the
		// row's: the careful rerun below finds it.
		race := res.Direct && errors.Is(err, errLeftRace)
		if res.Direct && pgCode(err) == "23505" {
			if conn, cerr := w.connect(ctx); cerr == nil {
				race = w.keyRace(ctx, conn, b.Table, ts, err)
			} else {
				race = true
			}
		}
		if race && b.Table.OnConflict == PolicyIgnore {
			// Another transaction committed one of the keys since the
			// probe (another process's, or one the KeyFilter did not know
			// of): this batch's rerun and the next ones copy in chunks,
			// so that such a key costs its chunk, not the batch.
			ts.chunked = chunkedBatches
		}
		var fe *FencedError
		switch {
		case errors.As(err, &fe):
			return res, err
		case errors.Is(err, errDeferTimeout) && directReruns < maxDirectReruns:
			// The wait for the batches holding keys set aside was too
			// long (inflight.go): rerun, claiming again.
			directReruns++
			continue
		case errors.Is(err, errDeferTimeout):
			m = modeMerge
			continue
		case res.optimistic && race:
			// A key the filter did not know of is in the target (written
			// by another process, or before this one started), or a
			// concurrent writer committed it: rerun probing every key,
			// and keep probing every key for a while.
			ts.penalty = min(2*ts.penalty+1, maxPenalty)
			ts.skip = ts.penalty
			m = modeDirect
			continue
		case race && directReruns < maxDirectReruns:
			// A key a concurrent writer committed since the probe (its
			// insert waited for that commit, then failed): probing again
			// finds it, and the batch still skips the staging merge, which
			// costs two to four times the direct path. Two committers of
			// null-keyed topics meet this all the time.
			directReruns++
			m = modeDirect
			continue
		case res.Direct && b.Table.OnConflict == PolicyUpdate && (race || isConflict(err)) &&
			attempt < 2*maxConflictAttempts:
			// An update batch stays on the direct path: direct writers
			// cannot deadlock on each other (updates, then inserts, each
			// in key order), but a merging writer, which inserts and
			// updates in one pass, can deadlock with them, so falling back
			// to the merge would make more of what it escapes.
			if isConflict(err) && w.hooks != nil {
				w.hooks.conflicts++
			}
			if cerr := conflictBackoff(ctx, attempt); cerr != nil {
				return res, fmt.Errorf("cannot write batch for %s: %w (while retrying after %v)", b.Table.Name, cerr, err)
			}
			m = modeDirect
			continue
		case res.Direct && (race || isConflict(err)):
			// Keys kept colliding, or a deadlock with a merging writer
			// (which orders its keys differently): the staging merge
			// handles both.
			m = modeMerge
			continue
		case res.Direct && isRowLevel(err) && b.canReject():
			// A row PostgreSQL refuses: find it under savepoints (careful
			// attempts always merge).
			m = modeCareful
			continue
		case m != modeCareful && isRowLevel(err) && b.canReject():
			// Rerun the transaction under savepoints to find the rows.
			m = modeCareful
			continue
		case isConflict(err) && attempt < maxConflictAttempts:
			if w.hooks != nil {
				w.hooks.conflicts++
			}
			if cerr := conflictBackoff(ctx, attempt); cerr != nil {
				return res, fmt.Errorf("cannot write batch for %s: %w (while retrying after %v)", b.Table.Name, cerr, err)
			}
			continue
		}
		if isRowLevel(err) && !b.canReject() {
			return res, fmt.Errorf("cannot write batch for %s: %w; set Batch.DeadLetterFor (of the batch and of each of its Also) so rejected rows become dead letters", b.Table.Name, err)
		}
		return res, fmt.Errorf("cannot write batch for %s: %w", b.Table.Name, err)
	}
}

// keyRace reports whether err, a unique violation (23505) of a direct
// attempt, is of one of the unique indexes on exactly t's key columns, of
// the target or of one of its partitions: a key another transaction
// committed since the probe, which a rerun probing again resolves. Any
// other unique index (a UNIQUE constraint besides the key, one of a
// table a trigger writes to) refuses the row itself, however often the
// batch is rerun. The answer is read from the catalog on conn (which must
// not be in a failed transaction) once per index and kept; when it cannot
// be read, the violation is taken for a race.
func (w *Writer) keyRace(ctx context.Context, conn *pgconn.PgConn, t *Table, ts *tableState, err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || pe.ConstraintName == "" {
		return false
	}
	name := pe.SchemaName + "." + pe.ConstraintName
	if key, ok := ts.uniques[name]; ok {
		return key
	}
	var p params
	p.text(pe.SchemaName)
	p.text(pe.ConstraintName)
	p.text(t.ident())
	a := p.array(oidText)
	for _, k := range t.Key {
		a.str(k)
	}
	p.endArray(oidTextArr)
	w.roundTrip()
	r, qerr := query(ctx, conn, `SELECT count(*) FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2
AND (i.indrelid = $3::regclass OR i.indrelid IN (SELECT relid FROM pg_partition_tree($3::regclass)))
AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($4::text[])
AND NOT EXISTS (
	SELECT 1 FROM unnest(i.indkey[0:i.indnkeyatts-1]) AS k(attnum)
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	WHERE NOT a.attname::text = ANY($4::text[]))`, &p)
	if qerr != nil || len(r.Rows) != 1 {
		return true
	}
	key := string(r.Rows[0][0]) != "0"
	if ts.uniques == nil {
		ts.uniques = make(map[string]bool)
	}
	ts.uniques[name] = key
	return key
}

// conflictBackoff waits before retrying a transaction that met a deadlock
// or a serialization failure: 10ms, 20ms, 40ms … (at most about 2.5 s),
// each scaled by a random factor in [0.5, 1.5) so the transactions that
// collided do not collide again.
func conflictBackoff(ctx context.Context, attempt int) error {
	d := time.Duration(float64(10*time.Millisecond<<min(attempt-1, 8)) * (0.5 + rand.Float64()))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxDirectReruns bounds the direct reruns of a batch whose keys collide
// with concurrent writers' before it goes through the staging merge.
const maxDirectReruns = 3

// tx is the state of one attempt.
type tx struct {
	b       *Batch
	ts      *tableSQL
	conn    *pgconn.PgConn
	rejects []DeadLetter
	staged  []int // tuples that reached the staging table (careful keyed attempts)
	// prepare: the dead letters of rejected tuples are made between
	// transactions (Writer.dls); Replay's, which only note the error,
	// are made at once.
	prepare  bool
	affected int64
	deleted  int64

	// ops is set when the batch goes through the ops stage (ops.go);
	// split when it claimed its keys, so that its plain keys may be
	// applied before the others.
	ops   *opsSQL
	split bool
	// resolved: the writer resolved the batch's keys and stages the rows
	// in w.dk.opsRows (resolve.go).
	resolved bool
}

// mode is how an attempt writes a batch. Write starts with the cheapest
// mode that may apply and only moves down the list, as failures show what
// the batch needs.
type mode uint8

const (
	// modeOptimistic is the direct path (direct.go) probing only the keys
	// Batch.Seen may hold.
	modeOptimistic mode = iota
	// modeDirect is the direct path probing every distinct key.
	modeDirect
	// modeMerge copies into the staging table and merges it into the
	// target in one statement (a keyless target is copied into directly).
	modeMerge
	// modeCareful is modeMerge under savepoints, rejecting the tuples
	// PostgreSQL refuses (careful.go).
	modeCareful
)

// attempt runs one transaction in mode m. The direct modes fall back to
// modeMerge when the table or the batch does not allow the direct path. On
// error the transaction is rolled back or the connection dropped.
func (w *Writer) attempt(ctx context.Context, b *Batch, ts *tableState, m mode) (Result, error) {
	var res Result
	conn, err := w.connect(ctx)
	if err != nil {
		return res, err
	}
	t := &tx{b: b, ts: ts.sql, conn: conn, prepare: true}
	w.missing = w.missing[:0]
	if b.Table.Keyed() {
		if err := w.createStage(ctx, conn, b.Table, ts); err != nil {
			return res, w.abort(ctx, err)
		}
		if deletes, keeps := b.changes(); (deletes || keeps) && len(b.Ends) > 0 {
			if err := w.createOps(ctx, conn, ts); err != nil {
				return res, w.abort(ctx, err)
			}
			t.ops = ts.ops
		}
	}
	subs, err := w.prepareAlso(ctx, conn, b)
	if err != nil {
		return res, w.abort(ctx, err)
	}
	careful := m == modeCareful
	// The direct path only inserts, and its probe runs before a TRUNCATE.
	update := b.Table.OnConflict == PolicyUpdate
	direct := m <= modeDirect && ts.direct && t.ops == nil && !b.Truncate && len(b.Ends) > 0 &&
		w.dk.prepareWinners(b, ts.keyFields, update, ts.guardField)
	// updates: the direct path updates stored keys (a table whose every
	// column is in the key has nothing to update: its stored keys are
	// dropped as under ignore).
	updates := direct && ts.sql.update != ""
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
	var fl *flight
	if direct {
		res.optimistic = m == modeOptimistic && b.Seen != nil
		w.dk.hashKeys(b.Seen)
		if b.Seen != nil {
			// Claim the keys; those other batches of the process hold are
			// set aside until those end (inflight.go). The claim ends
			// with this attempt.
			fl = w.dk.claimKeys(b.Seen)
			w.dk.setAside(w.dk.contested)
			defer b.Seen.release(fl)
			res.Deferred = len(w.dk.later)
		}
		w.dk.choose(b.Seen, res.optimistic)
		// An optimistic update batch probes nothing here: the UPDATE of
		// the keys the filter may hold finds them (updateStored).
		if !updates || !res.optimistic || w.hooks != nil && w.hooks.probeUpdates {
			res.ProbedKeys = len(w.dk.probe)
			if len(w.dk.probe) > 0 {
				probe = &w.probeArgs
				probe.reset()
				w.dk.probeArrays(probe, ts.keyOIDs)
			}
		}
	} else if b.Table.Changes && m <= modeDirect && b.Seen != nil && res.Distinct >= 0 {
		// A merged batch of a change-stream table claims its keys, and
		// waits for the batches of the process that claimed any of them
		// before it (inflight.go) before it touches the target: its ops
		// batches then apply their plain keys first (ops.go), which is
		// not the one key order the others lock keys in.
		w.dk.hashKeys(b.Seen)
		fl = w.dk.claimKeys(b.Seen)
		defer b.Seen.release(fl)
		t.split = t.ops != nil && !ts.unsplit
		res.split = t.split
		if t.split && ts.opsResolve && t.ops.resolvable {
			w.dk.resolveOps(b, b.Table.OnConflict, t.ops.update, ts.opsGuard)
			t.resolved = true
			if w.hooks != nil {
				w.hooks.resolved++
			}
		}
	}

	if fl != nil && len(w.dk.owners) > 0 {
		// Before this transaction begins: see awaitBegun.
		if _, err := w.awaitBegun(ctx); err != nil {
			return res, err
		}
	}
	start := time.Now()
	fault("begin") // test-only (fault.go)
	existing, err := w.begin(ctx, b, ts.probe, probe, fl)
	if err == nil && fl != nil {
		fl.began()
	}
	if err != nil {
		if errors.Is(err, errReplayed) {
			return Result{Rows: len(b.Ends), Affected: -1, Deleted: -1, Replayed: true}, nil
		}
		return res, w.abort(ctx, err)
	}
	if b.Truncate {
		w.roundTrip()
		if err := execSimple(ctx, conn, "TRUNCATE "+b.Table.ident()); err != nil {
			return res, w.abort(ctx, fmt.Errorf("cannot truncate %s: %w", b.Table.Name, err))
		}
	}
	fault("copy") // test-only (fault.go)

	if direct {
		res.Direct = true
		if updates {
			// The stored keys first, in key order, then the new keys, in
			// key order: two such writers cannot wait on each other in a
			// cycle (an insert waits only for another's uncommitted
			// insert, which comes after all of that writer's updates).
			ustart := time.Now()
			n, err := w.updateStored(ctx, conn, b, ts, existing, probe != nil, &res)
			if err != nil {
				return res, w.abort(ctx, err)
			}
			t.affected += n
			res.MergeTime = time.Since(ustart)
		} else if err := w.dk.dropExisting(existing); err != nil {
			return res, w.abort(ctx, err)
		}
		if len(w.dk.sel) > 0 {
			n, err := w.copyNew(ctx, conn, b, ts, !updates && ts.chunked > 0, &res)
			if err != nil {
				return res, w.abort(ctx, err)
			}
			t.affected += n
		}
		if len(w.dk.later) > 0 {
			n, err := w.mergeLater(ctx, conn, b, ts, updates && len(w.dk.cand) > 0)
			if err != nil {
				return res, w.abort(ctx, err)
			}
			t.affected += n
		}
	} else if len(b.Ends) > 0 {
		if err := w.copyRows(ctx, t, careful); err != nil {
			return res, w.abort(ctx, err)
		}
	}
	res.CopyTime = time.Since(start) - res.MergeTime

	start = time.Now()
	if b.Table.Keyed() && len(b.Ends) > 0 && !direct {
		if fl != nil && len(w.dk.owners) > 0 {
			if err := w.awaitOwners(ctx, conn); err != nil {
				return res, w.abort(ctx, err)
			}
		}
		if err := w.mergeRows(ctx, t, careful); err != nil {
			return res, w.abort(ctx, err)
		}
	}
	// The other tables of the batch (Batch.Also), in the same
	// transaction: staged and merged, never direct.
	for _, st := range subs {
		if len(st.b.Ends) > 0 {
			if err := w.copyRows(ctx, st, careful); err != nil {
				return res, w.abort(ctx, err)
			}
			if st.b.Table.Keyed() {
				if err := w.mergeRows(ctx, st, careful); err != nil {
					return res, w.abort(ctx, err)
				}
			}
		}
		if len(st.b.DeadLetters)+len(st.rejects) > 0 {
			if err := w.insertDeadLetters(ctx, st); err != nil {
				return res, w.abort(ctx, err)
			}
		}
	}
	if len(b.DeadLetters)+len(t.rejects) > 0 {
		if err := w.insertDeadLetters(ctx, t); err != nil {
			return res, w.abort(ctx, err)
		}
	}
	res.MergeTime += time.Since(start)
	if len(w.missing) > 0 {
		return Result{}, w.abort(ctx, errPrepareDeadLetters)
	}

	fault("merge")  // test-only (fault.go)
	fault("commit") // test-only (fault.go)
	if w.hooks != nil && w.hooks.beforeCommit != nil {
		if err := w.hooks.beforeCommit(); err != nil {
			return res, w.abort(ctx, err)
		}
	}
	start = time.Now()
	w.roundTrip()
	commit := "COMMIT"
	if w.hooks != nil && w.hooks.commitStmt != "" {
		commit = w.hooks.commitStmt
	}
	err = execSimple(ctx, conn, commit)
	if err == nil {
		fault("committed") // test-only (fault.go)
	}
	if w.hooks != nil && w.hooks.afterCommit != nil {
		err = w.hooks.afterCommit(err)
	}
	res.CommitTime = time.Since(start)
	res.Rows = len(b.Ends) - len(t.rejects)
	if res.Distinct > res.Rows {
		res.Distinct = -1 // rows were rejected: the count no longer applies
	}
	res.Rejected = t.rejects
	res.Affected = t.affected
	res.Deleted = t.deleted
	for _, st := range subs {
		res.Also = append(res.Also, Result{Rows: len(st.b.Ends) - len(st.rejects), Affected: st.affected,
			Deleted: st.deleted, Rejected: st.rejects, Distinct: -1})
	}
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
	res.Affected, res.Deleted = -1, -1
	for i := range res.Also {
		res.Also[i].Affected, res.Also[i].Deleted = -1, -1
	}
	w.remember(b, res)
	return res, nil
}

// copyRows copies t's tuples to its staging table (keyed tables, or the
// ops stage) or straight into its keyless target.
func (w *Writer) copyRows(ctx context.Context, t *tx, careful bool) error {
	b := t.b
	copySQL := t.ts.copyTarget
	switch {
	case t.ops != nil:
		copySQL = t.ops.copy
	case b.Table.Keyed():
		copySQL = t.ts.copyStage
	}
	if t.resolved && !careful {
		w.roundTrip()
		w.ord.resetRows(b, w.dk.opsRows)
		_, err := copyFrom(ctx, t.conn, &w.ord, copySQL)
		w.ord.reset(nil, 0, 0)
		return err
	}
	if careful {
		if t.prepare && len(w.dls) > 0 {
			return w.copyPrepared(ctx, t, copySQL)
		}
		_, err := w.copyCareful(ctx, t, copySQL, 0, len(b.Ends), false)
		return err
	}
	tag, err := w.copyRange(ctx, t.conn, copySQL, b, 0, len(b.Ends), t.ops != nil)
	if err == nil && !b.Table.Keyed() {
		t.affected = tag.RowsAffected()
	}
	return err
}

// mergeRows merges t's staged tuples into its keyed target.
func (w *Writer) mergeRows(ctx context.Context, t *tx, careful bool) error {
	switch {
	case careful:
		_, err := w.mergeCareful(ctx, t, t.staged, false)
		return err
	case t.ops != nil:
		return w.mergeOps(ctx, t)
	}
	w.roundTrip()
	tag, err := t.conn.ExecParams(ctx, t.ts.merge, nil, nil, nil, nil).Close()
	t.affected = tag.RowsAffected()
	return err
}

// prepareAlso opens the staging (and ops) tables of the batch's other
// tables on conn, before the transaction begins.
func (w *Writer) prepareAlso(ctx context.Context, conn *pgconn.PgConn, b *Batch) ([]*tx, error) {
	var subs []*tx
	for _, sb := range b.Also {
		sts, err := w.table(sb.Table)
		if err != nil {
			return nil, err
		}
		st := &tx{b: sb, ts: sts.sql, conn: conn, prepare: true}
		if sb.Table.Keyed() {
			if err := w.createStage(ctx, conn, sb.Table, sts); err != nil {
				return nil, err
			}
			if deletes, keeps := sb.changes(); (deletes || keeps) && len(sb.Ends) > 0 {
				if err := w.createOps(ctx, conn, sts); err != nil {
					return nil, err
				}
				st.ops = sts.ops
			}
		}
		subs = append(subs, st)
	}
	return subs, nil
}

// mergeLater writes the tuples of a direct batch set aside for other
// batches of the process (inflight.go): once those have ended it copies
// the tuples to the staging table and merges them, and
// returns the rows the merge inserted or updated. staged says the staging
// table holds this transaction's earlier rows (the update path's), which
// are deleted first.
func (w *Writer) mergeLater(ctx context.Context, conn *pgconn.PgConn, b *Batch, ts *tableState, staged bool) (int64, error) {
	if err := w.awaitOwners(ctx, conn); err != nil {
		return 0, err
	}
	if staged {
		w.roundTrip()
		if err := execSimple(ctx, conn, "DELETE FROM "+ts.sql.stage); err != nil {
			return 0, fmt.Errorf("cannot empty the staging table of %s: %w", b.Table.Name, err)
		}
	}
	w.dk.rd.reset(b, w.dk.later)
	w.dk.rd.ord = true
	w.roundTrip()
	_, err := copyFrom(ctx, conn, &w.dk.rd, ts.sql.copyStage)
	w.dk.rd.reset(nil, nil)
	if err != nil {
		return 0, err
	}
	w.roundTrip()
	tag, err := conn.ExecParams(ctx, ts.sql.merge, nil, nil, nil, nil).Close()
	return tag.RowsAffected(), err
}

// awaitOwners waits in PostgreSQL until the transactions of the batches
// that claimed keys of this one before it (w.dk.owners) have ended.
func (w *Writer) awaitOwners(ctx context.Context, conn *pgconn.PgConn) error {
	ids, err := w.awaitBegun(ctx)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		if w.hooks != nil {
			w.hooks.waits++
		}
		w.roundTrip()
		if _, err := conn.ExecParams(ctx, waitSQL(ids), nil, nil, nil, nil).Close(); err != nil {
			return fmt.Errorf("cannot wait for the batches holding keys of this one: %w", err)
		}
	}
	return nil
}

// awaitBegun waits in Go until the transactions of the batches that
// claimed keys of this one before it (w.dk.owners) have begun, and
// returns the ids of those still in flight. attempt calls it before its
// own transaction begins, so that awaitOwners, inside it, finds them
// begun: the wait may be long (deferWait), and a session idle inside
// its transaction holds its offsets rows locked and is ended by
// idle_in_transaction_session_timeout.
func (w *Writer) awaitBegun(ctx context.Context) ([]int32, error) {
	wait := deferWait
	if w.hooks != nil && w.hooks.deferWait > 0 {
		wait = w.hooks.deferWait
	}
	if w.hooks != nil && w.hooks.beforeAwait != nil && !allBegun(w.dk.owners) {
		w.hooks.beforeAwait()
	}
	ids, err := awaitBegun(ctx, w.dk.owners, wait, w.dk.ids[:0])
	w.dk.ids = ids
	return ids, err
}

// remember adds the keys of a committed direct batch to its KeyFilter:
// those it inserted and those the probe found already there.
func (w *Writer) remember(b *Batch, res Result) {
	if res.Direct && b.Seen != nil {
		b.Seen.add(w.dk.hashes)
		b.Seen.add(w.dk.laterHashes)
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
func (w *Writer) begin(ctx context.Context, b *Batch, probeSQL string, probeArgs *params, fl *flight) ([][][]byte, error) {
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
	if fl != nil {
		// The lock other batches wait on for this one (inflight.go).
		pb.ExecParams(fl.lockSQL(), nil, nil, nil, nil)
		want++
	}
	w.roundTrip()
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
	// A replay has every range at To under the same epoch; a range that
	// moves no offset (From == To) matches whether or not it committed.
	replayed := true
	for i, r := range b.Ranges {
		s := stored[i]
		if s.Epoch == r.Epoch && s.NextOffset == r.From {
			if r.From != r.To {
				replayed = false // this one matched: not a replay
			}
			continue
		}
		if s.Epoch != r.Epoch || s.NextOffset != r.To || r.From == r.To {
			replayed = false
		}
		fe.Ranges = append(fe.Ranges, r)
		fe.Stored = append(fe.Stored, s)
	}
	if replayed && len(fe.Ranges) > 0 {
		return nil, errReplayed
	}
	return nil, fe
}

// copyRange streams tuples [lo, hi) of b through COPY; with ops, each with
// its op and unchanged mask (opsReader).
func (w *Writer) copyRange(ctx context.Context, conn *pgconn.PgConn, sql string, b *Batch, lo, hi int, ops bool) (pgconn.CommandTag, error) {
	w.roundTrip()
	if ops {
		w.ord.reset(b, lo, hi)
		tag, err := copyFrom(ctx, conn, &w.ord, sql)
		w.ord.reset(nil, 0, 0)
		return tag, err
	}
	w.rd.reset(b.Data[b.start(lo):b.Ends[hi-1]])
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
