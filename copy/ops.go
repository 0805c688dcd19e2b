package pgcopy

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Change streams (Debezium and the like) bring more than upserts: deletes,
// columns whose value did not change and was left out of the event
// (Debezium's TOAST placeholder), and truncates. A keyed batch carrying any
// of the first two (Batch.Ops, Batch.Unchanged) is written through a second
// staging table, the ops stage, which holds every tuple with its op and
// unchanged bits and has no NOT NULL constraints (a delete tuple holds only
// its key and offset columns). Per batch, after the offsets compare-and-set
// (and TRUNCATE, for Batch.Truncate):
//
//  1. COPY every tuple, with two fields added after seq (op int2,
//     unchanged int8), into the ops stage.
//  2. lock: SELECT … FOR UPDATE the stored rows of every key of the batch,
//     ordered by key like the merge (see compile), so this batch takes its
//     row locks in the one global key order whatever it does to each key
//     next. Without it the DELETE would lock the deleted keys first and the
//     insert the others after, and two batches could each hold a key the
//     other needs.
//  3. delete: per key with a delete, the stored row goes, guarded by the
//     last delete's OffsetColumn (a replayed older delete cannot remove a
//     newer row).
//  4. update (PolicyUpdate, batches with unchanged bits): each winner with
//     unchanged bits updates its stored row, keeping the marked columns,
//     under the usual OffsetColumn guard. ON CONFLICT DO UPDATE cannot see
//     the bits (EXCLUDED holds target columns only), hence a separate
//     statement for these winners.
//  5. insert: the winners (per key, the upserts after its last delete; the
//     first under PolicyIgnore, the last under PolicyUpdate) go through the
//     usual INSERT … ON CONFLICT, in key order; under step 4 the winners it
//     applied to a stored row are left out.
//
// All five go to the server as one multi-statement query, one round trip.
// Each statement sees the effects of the ones before it, so a key deleted
// and upserted in the same batch ends up as the winner inserted afresh
// (its marked columns NULL, as sent).
//
// Applying a batch in seq ranges one after another (the careful rerun,
// careful.go) gives the same rows as applying it whole: a later range's
// delete removes what an earlier one inserted, and its upserts meet the
// earlier ones through ON CONFLICT. So the careful rerun bisects these
// statements over seq ranges like the plain merge, after one lock of every
// staged key.
//
// A key inserted by a concurrent transaction after the lock's snapshot is
// not locked by it; the insert then waits on that transaction as the plain
// merge does, which may deadlock with a writer waiting on a key locked
// here: PostgreSQL detects it and Write retries the batch.

// RowOp is what a tuple does to its key's row.
type RowOp uint8

const (
	// RowUpsert inserts the tuple, or on conflict does what
	// Table.OnConflict says.
	RowUpsert RowOp = iota
	// RowDelete deletes the row with the tuple's key. The tuple holds the
	// key columns (and OffsetColumn, for the guard); the rest are NULL.
	RowDelete
)

func (o RowOp) String() string {
	switch o {
	case RowUpsert:
		return "upsert"
	case RowDelete:
		return "delete"
	}
	return fmt.Sprintf("RowOp(%d)", uint8(o))
}

// Staging columns of the ops stage besides seqColumn; no target column may
// have these names.
const (
	opColumn        = "sluice_op"
	unchangedColumn = "sluice_unchanged"
)

// MaxUnchangedColumns is the number of columns Batch.Unchanged can mark:
// one bit of a uint64 each.
const MaxUnchangedColumns = 64

// validateOps checks Ops, Unchanged and Truncate against the batch and its
// table.
func (b *Batch) validateOps() error {
	t := b.Table
	if b.Ops != nil && len(b.Ops) != len(b.Ends) {
		return fmt.Errorf("cannot write a batch for %s: it has %d ops for %d tuples; give one op per tuple, or none for all upserts", t.Name, len(b.Ops), len(b.Ends))
	}
	if b.Unchanged != nil && len(b.Unchanged) != len(b.Ends) {
		return fmt.Errorf("cannot write a batch for %s: it has %d unchanged masks for %d tuples; give one per tuple, or none", t.Name, len(b.Unchanged), len(b.Ends))
	}
	for i, o := range b.Ops {
		switch {
		case o > RowDelete:
			return fmt.Errorf("cannot write a batch for %s: tuple %d has op %d; use RowUpsert or RowDelete", t.Name, i, o)
		case o == RowDelete && !t.Keyed():
			return fmt.Errorf("cannot delete from keyless table %s (tuple %d is a delete): a delete finds its row by key; configure the table's key, or drop deletes before they reach it", t.Name, i)
		}
	}
	if b.Unchanged == nil {
		return nil
	}
	if len(t.Columns) > MaxUnchangedColumns {
		return fmt.Errorf("cannot keep stored values in table %s: it has %d columns and Batch.Unchanged marks at most %d; configure at most %d columns, or send every value", t.Name, len(t.Columns), MaxUnchangedColumns, MaxUnchangedColumns)
	}
	for i, u := range b.Unchanged {
		if u != 0 && bits.Len64(u) > len(t.Columns) {
			return fmt.Errorf("cannot write a batch for %s: tuple %d marks column %d unchanged but the table has %d columns", t.Name, i, bits.Len64(u)-1, len(t.Columns))
		}
	}
	return nil
}

// changes reports whether a validated b deletes rows and whether it keeps
// stored values. A keyed batch with either is written through the ops
// stage; on a keyless table every tuple is inserted as sent.
func (b *Batch) changes() (deletes, keeps bool) {
	for _, o := range b.Ops {
		if o == RowDelete {
			deletes = true
			break
		}
	}
	for _, u := range b.Unchanged {
		if u != 0 {
			keeps = true
			break
		}
	}
	return deletes, keeps
}

// opsSQL holds the ops stage's statements for one table and connection.
type opsSQL struct {
	t       *Table
	stage   string   // quoted pg_temp name
	create  string   // CREATE TEMP TABLE … of the stage
	copy    string   // COPY into the stage: seq, op, unchanged, columns
	casts   []string // per column: "" or a cast of the stage column to the target's type
	keyCols []int    // per key column: its position in Columns
	lock    string   // locks the stored rows of every staged key, in key order
}

// newOpsSQL builds the ops stage for t staged as stageName, its columns of
// stageTypes (the main stage's, see createStage, without NOT NULL), each
// compared with or assigned to the target's column after casts[i] (""
// when the stage has the target's type).
func newOpsSQL(t *Table, stageName string, stageTypes, casts []string) *opsSQL {
	o := &opsSQL{t: t, stage: pgx.Identifier{"pg_temp", stageName}.Sanitize(), casts: casts}
	for _, k := range t.Key {
		o.keyCols = append(o.keyCols, slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == k }))
	}
	var b strings.Builder
	b.WriteString("CREATE TEMP TABLE IF NOT EXISTS " + pgx.Identifier{stageName}.Sanitize() + " (" +
		pgx.Identifier{seqColumn}.Sanitize() + " int8 NOT NULL, " +
		pgx.Identifier{opColumn}.Sanitize() + " int2 NOT NULL, " +
		pgx.Identifier{unchangedColumn}.Sanitize() + " int8 NOT NULL")
	for i, c := range t.Columns {
		b.WriteString(", " + pgx.Identifier{c.Name}.Sanitize() + " " + stageTypes[i])
	}
	b.WriteString(") ON COMMIT DELETE ROWS")
	o.create = b.String()
	o.copy = "COPY " + o.stage + " (" + quoteList(append([]string{seqColumn, opColumn, unchangedColumn}, t.columnNames()...)) + ") FROM STDIN (FORMAT binary)"

	// FOR UPDATE under ORDER BY: LockRows runs above the Sort, so the rows
	// are locked in the order of the stage's key columns, the order the
	// merge's DISTINCT ON inserts in.
	b.Reset()
	b.WriteString("SELECT count(*) FROM (SELECT FROM " + t.ident() + " AS t JOIN (SELECT DISTINCT " + o.cols("s", t.Key) + " FROM " + o.stage + " AS s) AS s ON ")
	o.keyJoin(&b, "t", "s")
	b.WriteString(" ORDER BY " + o.cols("s", t.Key) + " FOR UPDATE OF t) AS x")
	o.lock = b.String()
	return o
}

// cols returns names qualified by alias, comma-separated.
func (o *opsSQL) cols(alias string, names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(alias + "." + pgx.Identifier{n}.Sanitize())
	}
	return b.String()
}

// keyJoin writes the key equality of target alias ta and stage alias sa.
func (o *opsSQL) keyJoin(b *strings.Builder, ta, sa string) {
	for i, k := range o.t.Key {
		if i > 0 {
			b.WriteString(" AND ")
		}
		n := pgx.Identifier{k}.Sanitize()
		b.WriteString(ta + "." + n + " = " + sa + "." + n + o.casts[o.keyCols[i]])
	}
}

// seqRange returns the condition on alias a's seq restricting a statement
// to seq [lo, hi]; "" for the whole stage.
func seqRange(a string, whole bool, lo, hi int64) string {
	if whole {
		return ""
	}
	return " AND " + a + "." + pgx.Identifier{seqColumn}.Sanitize() + " BETWEEN " + strconv.FormatInt(lo, 10) + " AND " + strconv.FormatInt(hi, 10)
}

// opsStmts are the statements applying the staged tuples with seq in a
// range: at most one delete, at most one update, and an insert.
type opsStmts struct {
	sql       string // the statements, separated by "; "
	hasDelete bool   // the first statement is the delete
}

// statements returns the statements applying the staged tuples with seq in
// [lo, hi] (all of them when whole): the delete when deletes, the update of
// the winners keeping stored values when keeps (PolicyUpdate only), then
// the insert.
func (o *opsSQL) statements(deletes, keeps, whole bool, lo, hi int64) opsStmts {
	t := o.t
	seq := pgx.Identifier{seqColumn}.Sanitize()
	op := pgx.Identifier{opColumn}.Sanitize()
	unch := pgx.Identifier{unchangedColumn}.Sanitize()
	keys := o.cols("s", t.Key)
	off := ""
	if t.OffsetColumn != "" {
		off = pgx.Identifier{t.OffsetColumn}.Sanitize()
	}
	// Under on_conflict update with a guard column, a key's changes in
	// the batch are ordered by the guard, then by arrival: a replayed
	// older change (a lower guard) that arrives after a newer one in the
	// same batch loses to it, as it does against a stored row.
	byGuard, after := "", "d."+seq+" > s."+seq
	if off != "" && t.OnConflict == PolicyUpdate {
		byGuard = "s." + off + " DESC NULLS LAST, "
		after = "(d." + off + " > s." + off + " OR ((d." + off + " = s." + off + " OR d." + off + " IS NULL OR s." + off + " IS NULL) AND d." + seq + " > s." + seq + "))"
	}
	var b strings.Builder
	var st opsStmts
	if deletes {
		st.hasDelete = true
		// The last delete of each key, whose offset guards the delete.
		b.WriteString("DELETE FROM " + t.ident() + " AS t USING (SELECT DISTINCT ON (" + keys + ") " + keys)
		if off != "" && !isKeyColumn(t, t.OffsetColumn) {
			b.WriteString(", s." + off)
		}
		b.WriteString(" FROM " + o.stage + " AS s WHERE s." + op + " = " + strconv.Itoa(int(RowDelete)) + seqRange("s", whole, lo, hi) +
			" ORDER BY " + keys + ", " + byGuard + "s." + seq + " DESC) AS d WHERE ")
		o.keyJoin(&b, "t", "d")
		if off != "" {
			b.WriteString(" AND (t." + off + " < d." + off + " OR t." + off + " IS NULL OR d." + off + " IS NULL)")
		}
		b.WriteString("; ")
	}
	// winners: per key, the upserts after its last delete in the range;
	// the first (PolicyIgnore) or the last (PolicyUpdate).
	order := " ORDER BY " + keys + ", s." + seq
	if t.OnConflict == PolicyUpdate {
		order = " ORDER BY " + keys + ", " + byGuard + "s." + seq + " DESC"
	}
	winners := func(mask bool) string {
		var w strings.Builder
		w.WriteString("(SELECT DISTINCT ON (" + keys + ") " + o.cols("s", t.columnNames()))
		if mask {
			w.WriteString(", s." + unch)
		}
		w.WriteString(" FROM " + o.stage + " AS s WHERE s." + op + " = " + strconv.Itoa(int(RowUpsert)) + seqRange("s", whole, lo, hi))
		if deletes {
			w.WriteString(" AND NOT EXISTS (SELECT FROM " + o.stage + " AS d WHERE d." + op + " = " + strconv.Itoa(int(RowDelete)) + " AND ")
			for i, k := range t.Key {
				if i > 0 {
					w.WriteString(" AND ")
				}
				n := pgx.Identifier{k}.Sanitize()
				w.WriteString("d." + n + " = s." + n)
			}
			w.WriteString(" AND " + after + seqRange("d", whole, lo, hi) + ")")
		}
		w.WriteString(order + ") AS w")
		return w.String()
	}
	var set []string
	for i, c := range t.Columns {
		if isKeyColumn(t, c.Name) {
			continue
		}
		n := pgx.Identifier{c.Name}.Sanitize()
		set = append(set, n+" = CASE WHEN (w."+unch+" >> "+strconv.Itoa(i)+") & 1 = 1 THEN t."+n+" ELSE w."+n+o.casts[i]+" END")
	}
	keeps = keeps && t.OnConflict == PolicyUpdate && len(set) > 0
	if keeps {
		b.WriteString("UPDATE " + t.ident() + " AS t SET " + strings.Join(set, ", ") + " FROM " + winners(true) + " WHERE w." + unch + " <> 0 AND ")
		o.keyJoin(&b, "t", "w")
		if off != "" {
			b.WriteString(" AND (t." + off + " < w." + off + " OR t." + off + " IS NULL)")
		}
		b.WriteString("; ")
	}
	b.WriteString("INSERT INTO " + t.ident() + " AS t (" + quoteList(t.columnNames()) + ") SELECT " + o.cols("w", t.columnNames()) + " FROM " + winners(keeps))
	if keeps {
		// The update applied the winners with unchanged bits whose key is
		// stored (or its guard refused them); the rest are inserted as sent.
		b.WriteString(" WHERE w." + unch + " = 0 OR NOT EXISTS (SELECT FROM " + t.ident() + " AS x WHERE ")
		o.keyJoin(&b, "x", "w")
		b.WriteString(")")
	}
	b.WriteString(" ORDER BY " + o.cols("w", t.Key) + " " + t.conflictClause())
	st.sql = b.String()
	return st
}

func isKeyColumn(t *Table, name string) bool {
	for _, k := range t.Key {
		if k == name {
			return true
		}
	}
	return false
}

// countOps adds the command tags of statements st (results of a
// multi-statement query, from the first of st) to t: the delete's to
// t.deleted, the others' to t.affected.
func (t *tx) countOps(st opsStmts, results []*pgconn.Result) {
	for i, r := range results {
		if i == 0 && st.hasDelete {
			t.deleted += r.CommandTag.RowsAffected()
		} else {
			t.affected += r.CommandTag.RowsAffected()
		}
	}
}

// createOps creates the connection's ops stage for a keyed table once per
// session, after createStage.
func (w *Writer) createOps(ctx context.Context, conn *pgconn.PgConn, st *tableState) error {
	if st.opsOn == conn {
		return nil
	}
	w.roundTrip()
	if err := execSimple(ctx, conn, st.ops.create); err != nil {
		return fmt.Errorf("cannot create the ops staging table for %s: %w", st.sql.table.Name, err)
	}
	st.opsOn = conn
	return nil
}

// mergeOps applies the staged tuples of an ops batch in one round trip:
// lock, delete, update, insert (see the top of this file).
func (w *Writer) mergeOps(ctx context.Context, t *tx, o *opsSQL) error {
	st := o.statements(t.deletes, t.keeps, true, 0, 0)
	w.roundTrip()
	results, err := t.conn.Exec(ctx, o.lock+"; "+st.sql).ReadAll()
	if err != nil {
		return err
	}
	if len(results) > 0 {
		t.countOps(st, results[1:])
	}
	return nil
}

// opsReader streams tuples [lo, hi) of a keyed batch into the ops stage,
// framed by the binary COPY header and trailer: each tuple's field count
// plus two, its seq field, its op (int2) and unchanged mask (int8) fields,
// then the rest of the tuple. It holds no copy of the tuples: the caller
// must keep them unchanged until copyFrom returns. A tuple without a seq
// field is sent as it is, for COPY to reject by its line.
type opsReader struct {
	b      *Batch
	i, hi  int
	phase  int // 0 header, 1 tuples, 2 trailer, 3 done
	inRow  bool
	prefix [2 + seqFieldBytes + 4 + 2 + 4 + 8]byte
	cur    []byte
}

func (r *opsReader) reset(b *Batch, lo, hi int) {
	*r = opsReader{b: b, i: lo, hi: hi}
}

func (r *opsReader) advance() bool {
	switch r.phase {
	case 0:
		r.cur = headerBytes
		r.phase = 1
	case 1:
		if r.i == r.hi {
			r.cur = trailerBytes
			r.phase = 2
			return true
		}
		b := r.b
		s, e := b.start(r.i), b.Ends[r.i]
		const rest = 2 + seqFieldBytes
		if e-s < rest || binary.BigEndian.Uint32(b.Data[s+2:]) != 8 {
			r.cur = b.Data[s:e]
			r.i++
			return true
		}
		if !r.inRow {
			p := r.prefix[:0]
			p = binary.BigEndian.AppendUint16(p, binary.BigEndian.Uint16(b.Data[s:])+2)
			p = append(p, b.Data[s+2:s+rest]...)
			var op RowOp
			if b.Ops != nil {
				op = b.Ops[r.i]
			}
			p = binary.BigEndian.AppendUint32(p, 2)
			p = binary.BigEndian.AppendUint16(p, uint16(op))
			var u uint64
			if b.Unchanged != nil {
				u = b.Unchanged[r.i]
			}
			p = binary.BigEndian.AppendUint32(p, 8)
			p = binary.BigEndian.AppendUint64(p, u)
			r.cur = p
			r.inRow = true
			return true
		}
		r.cur = b.Data[s+rest : e]
		r.inRow = false
		r.i++
	case 2:
		r.phase = 3
		return false
	default:
		return false
	}
	return true
}

func (r *opsReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.cur) == 0 {
			if !r.advance() {
				break
			}
			continue
		}
		c := copy(p[n:], r.cur)
		n += c
		r.cur = r.cur[c:]
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}
