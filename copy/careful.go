package pgcopy

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

const (
	savepoint        = "SAVEPOINT sluice_bisect"
	releaseSavepoint = "RELEASE SAVEPOINT sluice_bisect"
	undoSavepoint    = "ROLLBACK TO SAVEPOINT sluice_bisect; RELEASE SAVEPOINT sluice_bisect"
)

// underSavepoint runs f in a savepoint. A row-level error rolls the
// savepoint back and is returned for the caller to narrow down; any other
// error is returned with the transaction left as it is.
func (w *Writer) underSavepoint(ctx context.Context, conn *pgconn.PgConn, f func() error) error {
	w.roundTrip()
	if err := execSimple(ctx, conn, savepoint); err != nil {
		return err
	}
	ferr := f()
	w.roundTrip()
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
			_, err := w.copyRange(ctx, t.conn, sql, t.b, lo, hi, t.ops != nil)
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

// copyPrepared copies t's tuples but those an earlier attempt rejected
// (Writer.dls), which it rejects again with their prepared dead letters:
// the runs between them in one savepoint, or, if PostgreSQL now refuses
// another tuple, each run under copyCareful.
func (w *Writer) copyPrepared(ctx context.Context, t *tx, sql string) error {
	b := t.b
	var runs [][2]int
	var rejects []DeadLetter
	lo := 0
	for i := range len(b.Ends) {
		if d, ok := w.dls[dlKey{b, i}]; ok {
			if lo < i {
				runs = append(runs, [2]int{lo, i})
			}
			rejects = append(rejects, d)
			lo = i + 1
		}
	}
	if lo < len(b.Ends) {
		runs = append(runs, [2]int{lo, len(b.Ends)})
	}
	t.rejects = append(t.rejects, rejects...)
	err := w.underSavepoint(ctx, t.conn, func() error {
		for _, r := range runs {
			if _, err := w.copyRange(ctx, t.conn, sql, b, r[0], r[1], t.ops != nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, r := range runs {
			t.staged = appendRange(t.staged, r[0], r[1])
		}
		return nil
	}
	if !isRowLevel(err) {
		return err
	}
	for _, r := range runs {
		if _, err := w.copyCareful(ctx, t, sql, r[0], r[1], false); err != nil {
			return err
		}
	}
	return nil
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
		var sql string
		if t.ops != nil {
			sql = savepoint + "; " + t.ops.applySQL(false, lo, hi, false, false) + "; " + releaseSavepoint
		} else {
			sql = savepoint + "; " + t.ts.mergeRange[0] + strconv.FormatInt(lo, 10) + " AND " + strconv.FormatInt(hi, 10) +
				t.ts.mergeRange[1] + "; " + releaseSavepoint
		}
		w.roundTrip()
		results, err := t.conn.Exec(ctx, sql).ReadAll()
		if err == nil {
			switch {
			case len(results) < 2:
			case t.ops != nil:
				if err := t.countApplied(results[1]); err != nil {
					return false, err
				}
			default:
				t.affected += results[1].CommandTag.RowsAffected()
			}
			return true, nil
		}
		if !isRowLevel(err) {
			return false, err
		}
		w.roundTrip()
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

// reject makes tuple i a dead letter. Under Write its dead letter is the
// one an earlier attempt prepared (prepareDeadLetters), or, the first time,
// the tuple is noted and the attempt rolled back once its bisection ends:
// Batch.DeadLetterFor is never called inside the batch's transaction,
// which would hold the offsets rows and keys locked for as long as it
// takes (the appliance re-reads the record from Kafka) and is ended by
// PostgreSQL after idle_in_transaction_session_timeout.
func (w *Writer) reject(t *tx, i int, err error) {
	if !t.prepare {
		t.rejects = append(t.rejects, t.b.DeadLetterFor(i, rejectMessage(err)))
		return
	}
	if d, ok := w.dls[dlKey{t.b, i}]; ok {
		t.rejects = append(t.rejects, d)
		return
	}
	w.missing = append(w.missing, missingDL{dlKey{t.b, i}, rejectMessage(err)})
}

// dlKey names tuple i of batch b (Write's batch or one of its Also).
type dlKey struct {
	b *Batch
	i int
}

// missingDL is a tuple rejected by an attempt that has no dead letter yet.
type missingDL struct {
	key dlKey
	msg string
}

// errPrepareDeadLetters ends a careful attempt that rejected tuples whose
// dead letters Write has yet to make.
var errPrepareDeadLetters = errors.New("rejected rows need their dead letters")

// prepareDeadLetters makes the dead letters of the last attempt's new
// rejections, outside any transaction.
func (w *Writer) prepareDeadLetters() {
	if w.dls == nil {
		w.dls = make(map[dlKey]DeadLetter)
	}
	for _, m := range w.missing {
		w.dls[m.key] = m.key.b.DeadLetterFor(m.key.i, m.msg)
	}
	w.missing = w.missing[:0]
}

// forgetDeadLetters drops the prepared dead letters at the end of a Write,
// which keeps no reference to its batch.
func (w *Writer) forgetDeadLetters() {
	clear(w.dls)
	clear(w.missing)
	w.missing = w.missing[:0]
}

var copyLineRE = regexp.MustCompile(`(?m)^COPY [^\n]*, line ([0-9]+)(?:, column ([^:\n]+))?`)

// copyLine extracts the 1-based tuple number (and the column, if named) of a
// COPY error from its context.
func copyLine(err error) (line int, column string, ok bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return 0, "", false
	}
	m := copyLineRE.FindStringSubmatch(pe.Where)
	if m == nil {
		return 0, "", false
	}
	n, perr := strconv.Atoi(m[1])
	if perr != nil || n < 1 {
		return 0, "", false
	}
	return n, m[2], true
}

// maxDetail bounds the part of a rejection message that echoes row values.
const maxDetail = 512

// rejectMessage describes why PostgreSQL refused a row: the message, the
// SQLSTATE, and the column, constraint and detail when the server names
// them. The tuple position in the COPY context is left out: it is relative
// to the statement that failed, not to the batch.
func rejectMessage(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	var b strings.Builder
	b.WriteString(pe.Message)
	b.WriteString(" (SQLSTATE ")
	b.WriteString(pe.Code)
	b.WriteString(")")
	col := pe.ColumnName
	if col == "" {
		_, col, _ = copyLine(err)
	}
	if col != "" {
		b.WriteString("; column ")
		b.WriteString(col)
	}
	if pe.ConstraintName != "" {
		b.WriteString("; constraint ")
		b.WriteString(pe.ConstraintName)
	}
	if pe.Detail != "" {
		d := pe.Detail
		if len(d) > maxDetail {
			d = strings.ToValidUTF8(d[:maxDetail], "") + "…"
		}
		b.WriteString("; ")
		b.WriteString(d)
	}
	return b.String()
}
