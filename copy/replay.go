package pgcopy

import (
	"context"
	"errors"
	"fmt"
)

// ReplayResult counts what Replay did.
type ReplayResult struct {
	Batches int // transactions committed
	Landed  int // dead letters whose row was written (or kept out by a stored row that wins) and which were deleted
	Skipped int // dead letters whose record makes no row now (ErrNoRow), deleted
	Failed  int // dead letters that still fail; their error now says why
}

// RowChange is what a tuple does to its key's row: its entry of Batch.Ops
// and of Batch.Unchanged.
type RowChange struct {
	Op        RowOp
	Unchanged uint64
}

// ErrNoRow is what a ReplayDecoder returns for a record that makes no row
// now, such as a change event that changes nothing. The appliance passes
// such a record over, so Replay deletes its dead letter.
var ErrNoRow = errors.New("the record makes no row")

// ErrStopReplay, wrapped in what a ReplayDecoder returns, stops Replay
// instead of keeping the dead letter with that error: the batch's
// transaction is rolled back and Replay returns the error. It is for
// failures that are no fault of the record (a schema registry that does
// not answer), which must not overwrite the stored error.
var ErrStopReplay = errors.New("replay stopped")

// ReplayDecoder appends the fields of d's row to dst (after the seq field
// of a keyed table, which Replay writes) and returns what the row does, or
// returns ErrNoRow (nothing appended), or why d still cannot become a row
// (an error wrapping ErrStopReplay stops the replay). It must not retain
// d's slices.
type ReplayDecoder func(dst []byte, d *StoredDeadLetter) ([]byte, RowChange, error)

// Replay moves the dead letters of f back into t, which must be the table
// f.Target names, in transactions of up to batchSize dead letters. Each
// transaction locks its dead letters (FOR UPDATE SKIP LOCKED, so two
// replays never take the same one), decodes them with decode, writes the
// rows that decode into t as the appliance would (the merge and on_conflict
// policy of keyed tables, their deletes and kept columns through the ops
// stage, the guard; a plain COPY into keyless ones; rows PostgreSQL refuses
// found under savepoints: the writer's careful path), deletes the dead
// letters whose rows were written or that make no row and updates the
// error of those that still fail, then commits.
//
// A record thus lands at most once whether Replay runs once, twice or is
// killed: the row and the deletion of its dead letter commit together, and
// a rerun finds only what is left. Dead letters that still fail are skipped
// (keyset order), so Replay ends. progress, when set, sees the running
// totals after each commit.
func (w *Writer) Replay(ctx context.Context, t *Table, f DeadLetterFilter, batchSize int, decode ReplayDecoder, progress func(ReplayResult)) (ReplayResult, error) {
	var res ReplayResult
	if f.Target != t.Name {
		return res, fmt.Errorf("cannot replay dead letters of %q into table %s: set the filter's target to the table", f.Target, t.Name)
	}
	ts, err := w.table(t)
	if err != nil {
		return res, err
	}
	var after *DeadLetterID
	var data []byte
	for {
		n, last, got, err := w.replayBatch(ctx, t, ts, f, after, batchSize, decode, data[:0])
		if err != nil {
			return res, err
		}
		if n == 0 {
			return res, nil
		}
		after = last
		res.Batches++
		res.Landed += got.Landed
		res.Skipped += got.Skipped
		res.Failed += got.Failed
		if progress != nil {
			progress(res)
		}
	}
}

func (w *Writer) replayBatch(ctx context.Context, t *Table, ts *tableState, f DeadLetterFilter, after *DeadLetterID, batchSize int,
	decode ReplayDecoder, data []byte) (n int, last *DeadLetterID, res ReplayResult, err error) {
	conn, err := w.connect(ctx)
	if err != nil {
		return 0, nil, res, err
	}
	if t.Keyed() {
		if err := w.createStage(ctx, conn, t, ts); err != nil {
			return 0, nil, res, w.abort(ctx, err)
		}
		// Whether the batch deletes or keeps columns is known once its
		// dead letters are decoded, inside the transaction: the ops stage
		// of a table that may is made before, as a rollback would drop it.
		if t.Changes {
			if err := w.createOps(ctx, conn, ts); err != nil {
				return 0, nil, res, w.abort(ctx, err)
			}
		}
	}
	if err := execSimple(ctx, conn, "BEGIN; SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
		return 0, nil, res, w.abort(ctx, err)
	}
	dls, err := listDeadLetters(ctx, conn, w.schema, f, after, batchSize, " FOR UPDATE SKIP LOCKED")
	if err != nil || len(dls) == 0 {
		rollback(ctx, conn)
		return 0, nil, res, err
	}
	id := dls[len(dls)-1].ID()
	last = &id

	nFields := len(t.Columns)
	if t.Keyed() {
		nFields++
	}
	errs := make([]string, len(dls)) // "" once the row is written, or when there is none
	b := &Batch{Table: t}
	var ops []RowOp
	var unchanged []uint64
	var rowOf []int // tuple i is the row of dls[rowOf[i]]
	skipped := 0
	for i := range dls {
		mark := len(data)
		data = AppendTupleHeader(data, nFields)
		if t.Keyed() {
			data = AppendInt8Field(data, int64(len(rowOf)))
		}
		fields := len(data)
		var c RowChange
		data, c, err = decode(data, &dls[i])
		if errors.Is(err, ErrNoRow) {
			data = data[:mark]
			skipped++
			continue
		}
		if errors.Is(err, ErrStopReplay) {
			return 0, nil, res, w.abort(ctx, err)
		}
		if err != nil {
			data = data[:mark]
			errs[i] = err.Error()
			continue
		}
		if len(data) == fields {
			return 0, nil, res, w.abort(ctx, fmt.Errorf("cannot replay into %s: the decoder appended no field", t.Name))
		}
		b.Ends = append(b.Ends, len(data))
		ops = append(ops, c.Op)
		unchanged = append(unchanged, c.Unchanged)
		rowOf = append(rowOf, i)
	}
	b.Data = data
	// Set only when some tuple needs them, as the appliance sets them: a
	// batch of plain upserts keeps the plain merge.
	for i := range ops {
		if ops[i] != RowUpsert {
			b.Ops = ops
		}
		if unchanged[i] != 0 {
			b.Unchanged = unchanged
		}
	}
	if err := b.validateOps(); err != nil {
		return 0, nil, res, w.abort(ctx, err)
	}
	b.DeadLetterFor = func(i int, msg string) DeadLetter {
		errs[rowOf[i]] = RejectedPrefix + msg
		return DeadLetter{}
	}
	if len(b.Ends) > 0 {
		tx := &tx{b: b, ts: ts.sql, conn: conn}
		if deletes, keeps := b.changes(); deletes || keeps {
			if !t.Changes {
				return 0, nil, res, w.abort(ctx, fmt.Errorf("cannot replay deletes or kept columns into %s: set Table.Changes", t.Name))
			}
			tx.ops = ts.ops
		}
		err := w.copyRows(ctx, tx, true)
		if err == nil && t.Keyed() {
			err = w.mergeRows(ctx, tx, true)
		}
		if err != nil {
			return 0, nil, res, w.abort(ctx, fmt.Errorf("cannot replay dead letters into %s: %w", t.Name, err))
		}
	}

	var del, upd params
	del.text(f.Group)
	del.text(t.Name)
	upd.text(f.Group)
	upd.text(t.Name)
	var gone, stay []int
	for i := range dls {
		if errs[i] == "" {
			gone = append(gone, i)
		} else {
			stay = append(stay, i)
		}
	}
	del.partitions(len(gone), func(j int) (string, int32) { return dls[gone[j]].Topic, dls[gone[j]].Partition })
	a := del.array(oidInt8)
	for _, i := range gone {
		a.int8(dls[i].Offset)
	}
	del.endArray(oidInt8Arr)
	upd.partitions(len(stay), func(j int) (string, int32) { return dls[stay[j]].Topic, dls[stay[j]].Partition })
	a = upd.array(oidInt8)
	for _, i := range stay {
		a.int8(dls[i].Offset)
	}
	upd.endArray(oidInt8Arr)
	a = upd.array(oidText)
	for _, i := range stay {
		a.str(cleanText(errs[i]))
	}
	upd.endArray(oidTextArr)
	tbl := deadLettersTable(w.schema)
	if len(gone) > 0 {
		r, err := query(ctx, conn, `DELETE FROM `+tbl+` d USING unnest($3::text[], $4::int4[], $5::int8[]) AS v(t, p, o)
WHERE d.group_id = $1 AND d.target = $2 AND d.topic = v.t AND d.partition = v.p AND d."offset" = v.o`, &del)
		if err == nil && r.CommandTag.RowsAffected() != int64(len(gone)) {
			err = fmt.Errorf("deleted %d dead letters, expected the %d locked", r.CommandTag.RowsAffected(), len(gone))
		}
		if err != nil {
			return 0, nil, res, w.abort(ctx, fmt.Errorf("cannot delete the replayed dead letters from %s: %w", tbl, err))
		}
	}
	if len(stay) > 0 {
		if _, err := query(ctx, conn, `UPDATE `+tbl+` d SET error = v.e FROM unnest($3::text[], $4::int4[], $5::int8[], $6::text[]) AS v(t, p, o, e)
WHERE d.group_id = $1 AND d.target = $2 AND d.topic = v.t AND d.partition = v.p AND d."offset" = v.o`, &upd); err != nil {
			return 0, nil, res, w.abort(ctx, fmt.Errorf("cannot update the errors of dead letters in %s: %w", tbl, err))
		}
	}
	fault("replay") // test-only (fault.go)
	if err := execSimple(ctx, conn, "COMMIT"); err != nil {
		var cerr error = fmt.Errorf("cannot commit a replay batch into %s (rerun the replay: what committed is gone from the dead letters): %w", t.Name, err)
		if !errors.Is(err, context.Canceled) {
			w.dropConn()
		}
		return 0, nil, res, cerr
	}
	res.Landed, res.Skipped, res.Failed = len(gone)-skipped, skipped, len(stay)
	return len(dls), last, res, nil
}
