package pgcopy

import (
	"context"
	"encoding/binary"
	"fmt"
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
// unchanged mask and has no NOT NULL constraints (a delete tuple holds only
// its key and offset columns; a domain type with NOT NULL still refuses
// it). Per batch, after the offsets compare-and-set (and TRUNCATE, for
// Batch.Truncate):
//
//  1. COPY every tuple, with two fields added after seq (op int2,
//     unchanged int8), into the ops stage.
//  2. One call of the session's apply function (a PL/pgSQL function in
//     pg_temp, created with the stage) resolves each key in one query
//     (its last delete, and its winner: the first upsert after that delete
//     under PolicyIgnore, the last under PolicyUpdate), applies the plain
//     keys and the keys only deleted by a statement each when the batch
//     claimed its keys ("Plain keys first", below), and walks the other
//     keys in key order, the order of the merge's DISTINCT ON (see
//     compile). For each key it deletes the stored row if the key has a
//     delete (guarded by the last delete's OffsetColumn, so a replayed
//     older delete cannot remove a newer row), then inserts the winner
//     with the usual ON CONFLICT: under PolicyUpdate its marked columns
//     keep the stored value (CASE on the mask, which EXCLUDED could not
//     carry in a set-based merge). A key deleted and upserted thus ends
//     up as the winner inserted afresh, its marked columns as sent.
//     Under PolicyUpdate a winner with marked columns first updates the
//     stored row under the guard; when that UPDATE finds none, the row
//     as it is now is locked (FOR KEY SHARE) and, if there is one, the
//     UPDATE runs again: a row another process committed after the first
//     UPDATE's snapshot, with a lower guard, was otherwise kept as if the
//     guard had refused the change (TestOpsKeptColumnsRowCommittedAfterUpdate).
//
// Under PolicyUpdate a winner with marked columns keeps values that an
// earlier upsert of its key in the same batch may have set, or, when that
// upsert is a replayed older change, may not have: only the stored row's
// guard tells. So for such a key the query returns every upsert after its
// last delete, oldest first, and the loop applies each as it applies the
// winner, under the guard: the key ends as the source's changes applied
// one by one would leave it (TestOpsModel's model). Keys whose winner
// marks nothing cost one row as before; the window functions that find
// the other keys' upserts cost the merge 0-12% (BenchmarkWriteOps/
// unchanged, three alternating runs: 150, 198, 184 ms of merge per batch
// before, 168, 210, 184 after).
//
// Why a loop: a set-based DELETE and INSERT are two passes over the keys,
// each in key order but the second starting over, so two batches could
// each hold a key of the other's first pass while waiting in its second;
// locking every stored key first (SELECT … ORDER BY key FOR UPDATE) does
// not cover keys inserted after that lock's snapshot, which deadlocked
// about one batch in five when four writers churned 300 keys. Walking the
// keys once, finishing each before the next, takes every row lock in the
// one global key order, new keys included, as the plain merge does. The
// per-key statements are planned once per session; the loop costs about a
// quarter more than the set-based statements did (10k tuples against a
// 100k-row target, by hand: ~130 ms against ~105 ms, ~55 ms for a plain
// merge of the same rows). See BenchmarkWriteOps in writer.go's numbers.
// Gathering runs of plain upserts into arrays inserted by one statement
// each did not pay: iterating the keys' records alone costs about as much
// as the plain merge (10k keys, best of 15: loop ~127 ms, with runs ~127
// ms, an empty loop over the same query ~75 ms, the query ~35 ms).
//
// Plain keys first. Most keys of a change batch have no delete and, under
// PolicyUpdate, a winner that marks nothing (about three in four in the
// bench's cdc workload). For such a key the loop runs the plain merge's
// statement one key at a time, which costs about twice the set-based
// statement. So the loop's query is a WITH whose data-modifying parts
// insert the plain keys' winners by one INSERT … ON CONFLICT and delete
// the keys that have a delete and no upsert after it by one DELETE (each
// in key order, joined by index lookups), before the loop walks the other
// keys, in key order. Several passes are not one key order: batches
// sharing keys could deadlock as above. Within the process a claim
// prevents it. A change-stream table's merged
// batches (ops batches and plain ones alike) claim their keys on the
// table's KeyFilter, as direct batches do (inflight.go), and, once their
// transaction has begun, wait for the transactions of the batches that
// claimed any of the same keys first: no two of the process's
// transactions then hold keys in common. Only a batch that claimed passes
// split to the apply function; the others (the careful rerun, a batch
// that fell back to the merge, a fan-out table's batch) walk every key in
// the loop, in the one key order. Instances of a group that share keys
// (a keyed change topic does not) may deadlock; PostgreSQL ends one of
// the transactions and Write retries it, and that Writer leaves its next
// change batches of the table to the loop alone for a while (splitOff in
// writer.go). A claimed batch whose key columns compare by their bytes
// (resolve.go) is resolved by the writer, and the key query reads the
// rows it staged and their roles instead of finding them. Measured with
// `sluice bench --workload cdc` (1,000,000 change records, three runs of
// each build, alternating): PostgreSQL's CPU during the drain 8.1-9.7 s
// with the loop alone, 6.3-6.7 s with both statements; the drain 5.2-6.3
// s, then 4.3-4.5 s (bench/README.md, "Change streams", has the
// resolved batches' figures). A third pair of
// statements for the keys with one upsert that marks columns (an UPDATE
// of the stored ones, an INSERT of the others) did not pay: about 1,500
// of 36,000 keys per batch in that workload, and each statement's scan of
// the resolved keys (~7 ms) cost what the loop saved.
//
// Applying a batch in seq ranges one after another (the careful rerun,
// careful.go) gives the same rows as applying it whole: a later range's
// delete removes what an earlier one inserted, and its upserts meet the
// earlier ones through ON CONFLICT. So the careful rerun bisects calls of
// the apply function over seq ranges like the plain merge.

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
	// A batch whose keys the writer resolved (resolve.go) stages only
	// the rows the apply function uses, each with its role (roleDel …),
	// the guard of its key's last delete and its rank among its key's
	// rows; NULL in batches the function resolves.
	roleColumn   = "sluice_role"
	delOffColumn = "sluice_del_off"
	rankColumn   = "sluice_key_rank"
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
	stage  string // quoted pg_temp name
	create string // CREATE TEMP TABLE and CREATE FUNCTION … of the stage
	copy   string // COPY into the stage: seq, op, unchanged, role, del_off, rank, columns
	apply  string // the quoted pg_temp name of the apply function
	// resolvable says the apply function can take batches the writer
	// resolved (not when a column name holds the key query's quote).
	resolvable bool
	// update: PolicyUpdate with columns outside the key.
	update bool
}

// newOpsSQL builds the ops stage for t staged as stageName, its columns of
// stageTypes (the main stage's, see createStage, without NOT NULL), each
// compared with the target's column after casts[i] ("" when the stage has
// the target's type).
func newOpsSQL(t *Table, stageName string, stageTypes, casts []string) *opsSQL {
	o := &opsSQL{
		stage: pgx.Identifier{"pg_temp", stageName}.Sanitize(),
		apply: pgx.Identifier{"pg_temp", stageName + "_apply"}.Sanitize(),
	}
	seq := pgx.Identifier{seqColumn}.Sanitize()
	op := pgx.Identifier{opColumn}.Sanitize()
	unch := pgx.Identifier{unchangedColumn}.Sanitize()
	var b strings.Builder
	b.WriteString("CREATE TEMP TABLE IF NOT EXISTS " + pgx.Identifier{stageName}.Sanitize() + " (" +
		seq + " int8 NOT NULL, " + op + " int2 NOT NULL, " + unch + " int8 NOT NULL, " +
		pgx.Identifier{roleColumn}.Sanitize() + " int2, " + pgx.Identifier{delOffColumn}.Sanitize() + " int8, " + pgx.Identifier{rankColumn}.Sanitize() + " int8")
	for i, c := range t.Columns {
		b.WriteString(", " + pgx.Identifier{c.Name}.Sanitize() + " " + stageTypes[i])
	}
	b.WriteString(") ON COMMIT DELETE ROWS; ")
	o.copy = "COPY " + o.stage + " (" + quoteList(append([]string{seqColumn, opColumn, unchangedColumn, roleColumn, delOffColumn, rankColumn}, t.columnNames()...)) + ") FROM STDIN (FORMAT binary)"

	cols := t.columnNames()
	keys := quoteList(t.Key)
	sKeys := qualified("s", t.Key)
	off := ""
	if t.OffsetColumn != "" {
		off = pgx.Identifier{t.OffsetColumn}.Sanitize()
	}
	// The record's fields are named here (c0, c1, … for the columns, in
	// Columns order), never after the columns, so no column name can
	// clash with them.
	field := func(i int) string { return "r.c" + strconv.Itoa(i) }
	// Under use_column a name is a column wherever one is in scope, so no
	// column name can capture a variable; the parameters are referred to
	// by position.
	inRange := " AND ($1 IS NULL OR s." + seq + " BETWEEN $1 AND $2)"
	order := ", s." + seq
	// Under on_conflict update with a guard, a key's changes in the batch
	// are ordered by the guard, then by arrival: a replayed older change
	// (a lower guard) arriving after a newer one in the same batch loses
	// to it, as it does against a stored row.
	byGuard, after := "", "x."+seq+" > s."+seq
	if t.OnConflict == PolicyUpdate {
		if off != "" {
			byGuard = ", s." + off + " DESC NULLS LAST"
			after = "(x." + off + " > s." + off + " OR ((x." + off + " = s." + off + " OR x." + off + " IS NULL OR s." + off + " IS NULL) AND x." + seq + " > s." + seq + "))"
		}
		order = byGuard + order + " DESC"
	}
	stageDDL := b.String()
	b.Reset()

	// Under PolicyUpdate a key whose winner marks a column has its other
	// upserts after its last delete applied first, oldest first (see
	// above); they are not counted as affected rows.
	update := t.OnConflict == PolicyUpdate && len(t.Columns) > len(t.Key)
	o.update = update
	rank, oldest, wmask := freeName(cols, "sluice_rank"), freeName(cols, "sluice_oldest"), freeName(cols, "sluice_winner_mask")
	// A resolved batch's rows are a plain scan of the stage, whose size
	// the planner then sees: the DELETE of the keys only deleted would
	// hash the whole target rather than look its keys up. Hash and merge
	// joins are off while such a batch is applied (nothing in it wants
	// them), and restored after.
	b.WriteString("#variable_conflict use_column\nDECLARE r record; n int8; counted bool := false; hj text := current_setting('enable_hashjoin'); mj text := current_setting('enable_mergejoin');\nBEGIN\ndeleted := 0; affected := 0;\n" +
		"IF resolved THEN PERFORM set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true); END IF;\nFOR r IN EXECUTE ")
	mark := b.Len()
	b.WriteString("WITH k AS MATERIALIZED (SELECT d." + seq + " IS NOT NULL AS del, ")
	if off != "" {
		b.WriteString("d.sluice_off AS del_off, ")
	}
	b.WriteString("w." + seq + " IS NOT NULL AS win, w." + unch + " AS mask")
	if update {
		// first: the key's first row (its delete goes there); last: the
		// winner's.
		b.WriteString(", (w." + rank + " IS NULL OR w." + oldest + " OR w." + wmask + " = 0) AS first, coalesce(w." + rank + " = 1, true) AS last")
	} else {
		b.WriteString(", true AS first, true AS last")
	}
	// plain: the key has no delete and its winner marks nothing (under
	// PolicyIgnore a mark changes nothing: a stored row is kept whole);
	// delonly: the key has a delete and no upsert after it.
	b.WriteString(", ($3 AND d." + seq + " IS NULL")
	if update {
		b.WriteString(" AND w." + wmask + " = 0) AS plain, w." + rank + " AS wrank")
	} else {
		b.WriteString(") AS plain")
	}
	b.WriteString(", ($3 AND d." + seq + " IS NOT NULL AND w." + seq + " IS NULL) AS delonly")
	for i, c := range cols {
		n := pgx.Identifier{c}.Sanitize()
		if isKeyColumn(t, c) {
			b.WriteString(", " + n + " AS c" + strconv.Itoa(i)) // merged by USING
		} else {
			b.WriteString(", w." + n + " AS c" + strconv.Itoa(i))
		}
	}
	// d: each key's last delete; w: each key's winner among the upserts
	// after its last delete, and under PolicyUpdate, when the winner
	// marks a column, the key's other upserts after its last delete.
	b.WriteString("\nFROM (SELECT DISTINCT ON (" + sKeys + ") " + sKeys + ", s." + seq)
	if off != "" {
		b.WriteString(", s." + off + " AS sluice_off")
	}
	notDeleted := " AND NOT EXISTS (SELECT FROM " + o.stage + " AS x WHERE x." + op + " = " + strconv.Itoa(int(RowDelete))
	for _, k := range t.Key {
		n := pgx.Identifier{k}.Sanitize()
		notDeleted += " AND x." + n + " = s." + n
	}
	notDeleted += " AND " + after + " AND ($1 IS NULL OR x." + seq + " BETWEEN $1 AND $2))"
	upserts := " FROM " + o.stage + " AS s WHERE s." + op + " = " + strconv.Itoa(int(RowUpsert)) + inRange + notDeleted
	b.WriteString(" FROM " + o.stage + " AS s WHERE s." + op + " = " + strconv.Itoa(int(RowDelete)) + inRange +
		" ORDER BY " + sKeys + byGuard + ", s." + seq + " DESC) AS d\nFULL JOIN ")
	if update {
		b.WriteString("(SELECT * FROM (SELECT s.*, row_number() OVER k AS " + rank + ", lead(s." + seq + ") OVER k IS NULL AS " + oldest +
			", first_value(s." + unch + ") OVER k AS " + wmask + upserts + " WINDOW k AS (PARTITION BY " + sKeys + " ORDER BY " + strings.TrimPrefix(order, ", ") + ")) AS s" +
			" WHERE s." + rank + " = 1 OR s." + wmask + " <> 0) AS w USING (" + keys + "))")
	} else {
		b.WriteString("(SELECT DISTINCT ON (" + sKeys + ") s.*" + upserts + " ORDER BY " + sKeys + order + ") AS w USING (" + keys + "))")
	}
	// The plain keys' winners are inserted by one statement, in key
	// order, before the loop walks the other keys (see above).
	restStart := b.Len()
	var kOrder, xOrder []string
	for _, k := range t.Key {
		f := "c" + strconv.Itoa(slices.Index(cols, k))
		kOrder = append(kOrder, "k."+f)
		xOrder = append(xOrder, "x."+f)
	}
	b.WriteString(",\np AS (INSERT INTO " + t.ident() + " AS t (" + quoteList(cols) + ") SELECT ")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("k.c" + strconv.Itoa(i))
	}
	b.WriteString(" FROM k WHERE k.plain ORDER BY " + strings.Join(kOrder, ", ") + " ON CONFLICT (" + keys + ") ")
	if !update {
		b.WriteString("DO NOTHING")
	} else {
		var set []string
		for _, c := range cols {
			if !isKeyColumn(t, c) {
				n := pgx.Identifier{c}.Sanitize()
				set = append(set, n+" = EXCLUDED."+n)
			}
		}
		b.WriteString("DO UPDATE SET " + strings.Join(set, ", "))
		if off != "" {
			b.WriteString(" WHERE t." + off + " < EXCLUDED." + off + " OR t." + off + " IS NULL")
		}
	}
	// keyMatch matches the target row t with the key of record rec (r,
	// the loop's, or k, the query's).
	keyMatch := func(rec string) string {
		var m strings.Builder
		for j, k := range t.Key {
			if j > 0 {
				m.WriteString(" AND ")
			}
			i := slices.Index(cols, k)
			m.WriteString("t." + pgx.Identifier{k}.Sanitize() + " = " + rec + ".c" + strconv.Itoa(i) + casts[i])
		}
		return m.String()
	}
	// The keys that are only deleted, by one statement.
	b.WriteString(" RETURNING 1),\nmd AS (DELETE FROM " + t.ident() + " AS t USING k WHERE k.delonly AND " + keyMatch("k"))
	if off != "" {
		b.WriteString(" AND (t." + off + " < k.del_off OR t." + off + " IS NULL OR k.del_off IS NULL)")
	}
	// One row at least, so that the loop reads the counts even when every
	// key is plain or only deleted.
	b.WriteString(" RETURNING 1)\nSELECT (SELECT count(*) FROM p) AS plain_n, (SELECT count(*) FROM md) AS del_n, x.* FROM (VALUES (1)) AS one (v) LEFT JOIN (SELECT * FROM k WHERE NOT k.plain AND NOT k.delonly) AS x ON true\nORDER BY " + strings.Join(xOrder, ", "))
	if update {
		b.WriteString(", x.wrank DESC")
	}
	// The same statements over a batch the writer resolved: its rows and
	// their roles are staged as the key query would return them.
	role := "s." + pgx.Identifier{roleColumn}.Sanitize()
	var kr strings.Builder
	kr.WriteString("WITH k AS MATERIALIZED (SELECT (" + role + " & " + strconv.Itoa(roleDel) + ") <> 0 AS del, ")
	if off != "" {
		kr.WriteString("s." + pgx.Identifier{delOffColumn}.Sanitize() + " AS del_off, ")
	}
	kr.WriteString("(" + role + " & " + strconv.Itoa(roleWin) + ") <> 0 AS win, s." + unch + " AS mask, (" + role + " & " + strconv.Itoa(roleFirst) + ") <> 0 AS first, (" +
		role + " & " + strconv.Itoa(roleLast) + ") <> 0 AS last, (" + role + " & " + strconv.Itoa(rolePlain) + ") <> 0 AS plain")
	if update {
		kr.WriteString(", s." + pgx.Identifier{rankColumn}.Sanitize() + " AS wrank")
	}
	kr.WriteString(", (" + role + " & " + strconv.Itoa(roleDelOnly) + ") <> 0 AS delonly")
	for i, c := range cols {
		kr.WriteString(", s." + pgx.Identifier{c}.Sanitize() + " AS c" + strconv.Itoa(i))
	}
	kr.WriteString(" FROM " + o.stage + " AS s)")
	all := b.String()
	head, q, rest := all[:mark], all[mark:], all[restStart:]
	execute := "CASE WHEN resolved THEN " + queryTag + kr.String() + rest + queryTag + " ELSE " + queryTag + q + queryTag + " END USING $1, $2, $3"
	b.Reset()
	b.WriteString(head + execute)
	b.WriteString("\nLOOP\nIF NOT counted THEN affected := affected + r.plain_n; deleted := deleted + r.del_n; counted := true; END IF;\nIF r.del IS NULL THEN CONTINUE; END IF;\n")

	// The key's delete.
	b.WriteString("IF r.del AND r.first THEN\nDELETE FROM " + t.ident() + " AS t WHERE ")
	b.WriteString(keyMatch("r"))
	if off != "" {
		b.WriteString(" AND (t." + off + " < r.del_off OR t." + off + " IS NULL OR r.del_off IS NULL)")
	}
	b.WriteString(";\nGET DIAGNOSTICS n = ROW_COUNT; deleted := deleted + n;\nEND IF;\n")

	// The key's winner (or an upsert before it). With marked columns it
	// updates a stored row rather than offering a row to INSERT: a marked
	// column's NULL must not meet a NOT NULL constraint, which INSERT
	// checks before ON CONFLICT.
	var set []string
	for i, c := range cols {
		if !isKeyColumn(t, c) {
			n := pgx.Identifier{c}.Sanitize()
			set = append(set, n+" = CASE WHEN (r.mask >> "+strconv.Itoa(i)+") & 1 = 1 THEN t."+n+" ELSE EXCLUDED."+n+" END")
		}
	}
	b.WriteString("IF r.win THEN\nIF r.mask <> 0 THEN\n")
	if update {
		var u strings.Builder
		u.WriteString("UPDATE " + t.ident() + " AS t SET ")
		j := 0
		for i, c := range cols {
			if isKeyColumn(t, c) {
				continue
			}
			if j > 0 {
				u.WriteString(", ")
			}
			j++
			n := pgx.Identifier{c}.Sanitize()
			u.WriteString(n + " = CASE WHEN (r.mask >> " + strconv.Itoa(i) + ") & 1 = 1 THEN t." + n + " ELSE " + field(i) + " END")
		}
		u.WriteString(" WHERE ")
		u.WriteString(keyMatch("r"))
		if off != "" {
			u.WriteString(" AND (t." + off + " < " + field(slices.Index(cols, t.OffsetColumn)) + casts[slices.Index(cols, t.OffsetColumn)] + " OR t." + off + " IS NULL)")
		}
		u.WriteString(";\nGET DIAGNOSTICS n = ROW_COUNT;\n")
		b.WriteString(u.String())
		b.WriteString("IF n > 0 THEN IF r.last THEN affected := affected + n; END IF; CONTINUE; END IF;\n")
		// The UPDATE found no row it may replace in its snapshot. A row
		// another transaction committed since would be taken for one the
		// guard keeps, whatever its guard: the row as it is now is
		// locked against deletes (FOR KEY SHARE) and, if there is one,
		// updated under the guard again, which now sees it.
		b.WriteString("PERFORM FROM " + t.ident() + " AS t WHERE " + keyMatch("r") + " FOR KEY SHARE;\nIF FOUND THEN\n")
		b.WriteString(u.String())
		b.WriteString("IF r.last THEN affected := affected + n; END IF;\nCONTINUE;\nEND IF;\nEND IF;\n")
	} else {
		// Stored and kept (PolicyIgnore).
		b.WriteString("IF EXISTS (SELECT FROM " + t.ident() + " AS t WHERE ")
		b.WriteString(keyMatch("r"))
		b.WriteString(") THEN CONTINUE; END IF;\nEND IF;\n")
	}
	b.WriteString("INSERT INTO " + t.ident() + " AS t (" + quoteList(cols) + ") VALUES (")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(field(i))
	}
	// The CASE covers a row inserted by another transaction since EXISTS.
	b.WriteString(") ON CONFLICT (" + keys + ") ")
	if !update {
		b.WriteString("DO NOTHING")
	} else {
		b.WriteString("DO UPDATE SET " + strings.Join(set, ", "))
		if off != "" {
			b.WriteString(" WHERE t." + off + " < EXCLUDED." + off + " OR t." + off + " IS NULL")
		}
	}
	b.WriteString(";\nGET DIAGNOSTICS n = ROW_COUNT; IF r.last THEN affected := affected + n; END IF;\nEND IF;\nEND LOOP;\n" +
		"IF resolved THEN PERFORM set_config('enable_hashjoin', hj, true), set_config('enable_mergejoin', mj, true); END IF;\nEND\n")
	body := b.String()
	o.resolvable = strings.Count(body, queryTag) == 4
	if !o.resolvable {
		// A column name holds the query's quote: plan the function's
		// own key query with the function instead (the same query,
		// planned once per session).
		body = strings.TrimSuffix(head, "EXECUTE ") + q + body[len(head)+len(execute):]
	}
	// The dollar quote must not occur in the body (a column name may hold
	// anything).
	tag := "$sluice_apply$"
	for i := 0; strings.Contains(body, tag); i++ {
		tag = "$sluice_apply" + strconv.Itoa(i) + "$"
	}
	o.create = stageDDL + "CREATE OR REPLACE FUNCTION " + o.apply + "(lo int8, hi int8, split bool, resolved bool, OUT deleted int8, OUT affected int8) LANGUAGE plpgsql AS " +
		tag + "\n" + body + tag
	return o
}

// queryTag quotes the apply function's key query, which runs through
// EXECUTE: planned on each call for the stage as it is then. Planned once
// per session (PL/pgSQL caches a static query's plan), it kept the plan
// made for the first, small batch: a nested loop over the unindexed stage
// whose cost grew with the square of the batch (a 200,000-change drain in
// batches of 50,000: 11 s, 19.6 s of PostgreSQL CPU).
const queryTag = "$sluice_q$"

// qualified returns names qualified by alias, comma-separated.
func qualified(alias string, names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(alias + "." + pgx.Identifier{n}.Sanitize())
	}
	return b.String()
}

// freeName returns name, or name with underscores appended, so that it is
// none of cols.
func freeName(cols []string, name string) string {
	for slices.Contains(cols, name) {
		name += "_"
	}
	return name
}

func isKeyColumn(t *Table, name string) bool {
	return slices.Contains(t.Key, name)
}

// applySQL returns the call of the apply function for the staged tuples
// with seq in [lo, hi], or all of them when whole; split applies the plain
// keys and the keys only deleted first, by a statement each (only for a
// batch that claimed its keys); resolved says the writer resolved the
// whole batch's keys and staged their rows with their roles (resolve.go).
func (o *opsSQL) applySQL(whole bool, lo, hi int64, split, resolved bool) string {
	args := "NULL, NULL"
	if !whole {
		args = strconv.FormatInt(lo, 10) + ", " + strconv.FormatInt(hi, 10)
	}
	return "SELECT deleted, affected FROM " + o.apply + "(" + args + ", " + strconv.FormatBool(split) + ", " + strconv.FormatBool(resolved) + ")"
}

// countApplied adds the counts an apply call returned to t.
func (t *tx) countApplied(r *pgconn.Result) error {
	if len(r.Rows) != 1 || len(r.Rows[0]) != 2 {
		return fmt.Errorf("cannot read the counts of the ops merge: expected one row of two values, got %d rows", len(r.Rows))
	}
	d, err := atoi64(r.Rows[0][0])
	if err != nil {
		return err
	}
	a, err := atoi64(r.Rows[0][1])
	if err != nil {
		return err
	}
	t.deleted += d
	t.affected += a
	return nil
}

// createOps creates the connection's ops stage and apply function for a
// keyed table once per session, after createStage.
func (w *Writer) createOps(ctx context.Context, conn *pgconn.PgConn, st *tableState) error {
	if st.opsOn == conn {
		return nil
	}
	if st.ops == nil {
		st.ops = newOpsSQL(st.sql.table, st.sql.stageName+"_ops", st.opsTypes, st.opsCasts)
	}
	w.roundTrip()
	if err := execSimple(ctx, conn, st.ops.create); err != nil {
		return fmt.Errorf("cannot create the ops staging table and apply function for %s (they need the TEMP privilege and PL/pgSQL): %w", st.sql.table.Name, err)
	}
	st.opsOn = conn
	return nil
}

// mergeOps applies the staged tuples of an ops batch: one call of the
// apply function.
func (w *Writer) mergeOps(ctx context.Context, t *tx) error {
	w.roundTrip()
	r := t.conn.ExecParams(ctx, t.ops.applySQL(true, 0, 0, t.split, t.resolved), nil, nil, nil, nil).Read()
	if r.Err != nil {
		return r.Err
	}
	return t.countApplied(r)
}

// opsReader streams tuples [lo, hi) of a keyed batch into the ops stage,
// framed by the binary COPY header and trailer: each tuple's field count
// plus five, its seq field, its op (int2), unchanged mask (int8), role
// (int2), its key's last delete's guard (int8) and rank (int8) fields,
// then the rest of the tuple; the last three are NULL unless the reader
// streams the rows of a resolved batch (resetRows). It holds no copy of
// the tuples: the caller must keep them unchanged until copyFrom returns.
// A tuple without a seq field is sent as it is, for COPY to reject by its
// line.
type opsReader struct {
	b      *Batch
	i, hi  int
	rows   []opsRow // when set, the tuples streamed, i and hi index it
	phase  int      // 0 header, 1 tuples, 2 trailer, 3 done
	inRow  bool
	prefix [2 + seqFieldBytes + 4 + 2 + 4 + 8 + 4 + 2 + 4 + 8 + 4 + 8]byte
	cur    []byte
}

func (r *opsReader) reset(b *Batch, lo, hi int) {
	*r = opsReader{b: b, i: lo, hi: hi}
}

// resetRows streams rows, in their order, with their roles.
func (r *opsReader) resetRows(b *Batch, rows []opsRow) {
	*r = opsReader{b: b, hi: len(rows), rows: rows}
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
		ti := r.i
		if r.rows != nil {
			ti = int(r.rows[r.i].i)
		}
		s, e := b.start(ti), b.Ends[ti]
		const rest = 2 + seqFieldBytes
		if e-s < rest || binary.BigEndian.Uint32(b.Data[s+2:]) != 8 {
			r.cur = b.Data[s:e]
			r.i++
			return true
		}
		if !r.inRow {
			p := r.prefix[:0]
			p = binary.BigEndian.AppendUint16(p, binary.BigEndian.Uint16(b.Data[s:])+5)
			p = append(p, b.Data[s+2:s+rest]...)
			var op RowOp
			if b.Ops != nil {
				op = b.Ops[ti]
			}
			p = binary.BigEndian.AppendUint32(p, 2)
			p = binary.BigEndian.AppendUint16(p, uint16(op))
			var u uint64
			if b.Unchanged != nil {
				u = b.Unchanged[ti]
			}
			p = binary.BigEndian.AppendUint32(p, 8)
			p = binary.BigEndian.AppendUint64(p, u)
			const null = 0xFFFFFFFF
			if r.rows == nil {
				p = binary.BigEndian.AppendUint32(p, null)
				p = binary.BigEndian.AppendUint32(p, null)
				p = binary.BigEndian.AppendUint32(p, null)
			} else {
				o := &r.rows[r.i]
				p = binary.BigEndian.AppendUint32(p, 2)
				p = binary.BigEndian.AppendUint16(p, o.role)
				if o.delOffOK {
					p = binary.BigEndian.AppendUint32(p, 8)
					p = binary.BigEndian.AppendUint64(p, uint64(o.delOff))
				} else {
					p = binary.BigEndian.AppendUint32(p, null)
				}
				if o.rank > 0 {
					p = binary.BigEndian.AppendUint32(p, 8)
					p = binary.BigEndian.AppendUint64(p, uint64(o.rank))
				} else {
					p = binary.BigEndian.AppendUint32(p, null)
				}
			}
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
	return readPieces(p, &r.cur, r.advance)
}
