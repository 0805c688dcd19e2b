package pgcopy

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Policy says what the merge does when a row's key already exists.
type Policy uint8

const (
	// PolicyIgnore keeps the existing row: the first write of a key wins,
	// and within a batch the first occurrence (lowest seq) is the one merged.
	PolicyIgnore Policy = iota
	// PolicyUpdate overwrites the existing row: within a batch the last
	// occurrence (highest seq) is merged, and across batches the row is
	// overwritten unless Table.OffsetColumn says the stored row is newer.
	PolicyUpdate
)

// ParsePolicy parses the on_conflict configuration value.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "ignore":
		return PolicyIgnore, nil
	case "update":
		return PolicyUpdate, nil
	}
	return 0, fmt.Errorf("cannot parse on_conflict %q: use ignore or update", s)
}

// String returns the configuration spelling of p.
func (p Policy) String() string {
	switch p {
	case PolicyIgnore:
		return "ignore"
	case PolicyUpdate:
		return "update"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Column is one field of every tuple and the target column it lands in.
type Column struct {
	Name    string // target column name, used verbatim (quoted)
	SQLType string // the type the field is encoded as, e.g. "int8", "timestamptz", "jsonb"
	// Limit is set by Migrate from the target column's type modifier: the
	// encoder must dead-letter values past it (see Limit).
	Limit Limit
}

// Table describes a target. The Writer caches what it derives from a Table
// by pointer: pass the same *Table for every batch and do not change it
// after its first Write.
type Table struct {
	Name       string   // target, "schema.table" or "table" (means public)
	Columns    []Column // order of the fields of each tuple (after the seq field when Keyed)
	Key        []string // conflict key columns; empty: keyless
	OnConflict Policy
	// OffsetColumn optionally names a column holding a monotonic position
	// (the Kafka offset, a Debezium LSN). With PolicyUpdate the merge only
	// overwrites a row whose OffsetColumn is lower than the incoming one
	// (or NULL), and within a batch a key's versions are ordered by it
	// first; a RowDelete only removes a row whose OffsetColumn is lower
	// than the delete tuple's (or NULL in either), so a replayed older
	// delete cannot remove a newer row.
	OffsetColumn string
	Create       bool // Migrate creates the target from Columns (PRIMARY KEY Key) if missing
	// Changes says the table receives RowDelete tuples or Unchanged bits
	// (deletes, change events): its on_conflict update batches then stay
	// on the merge path, which locks keys in the one order the ops stage
	// uses, instead of the direct path's updates-then-inserts, and its
	// merged batches claim their keys on Batch.Seen (ops.go, "Plain keys
	// first").
	Changes bool
	// Partition, when set, makes Migrate create the target partitioned
	// by time (with Create) and check that it is; MaintainPartitions keeps
	// its partitions (partition.go).
	Partition *Partitioning
}

// Tuple layout the caller produces:
//
//   - Keyed tables: int16(len(Columns)+1), then an int8 seq field (strictly
//     increasing within the batch, in arrival order), then the Columns
//     fields.
//   - Keyless tables: int16(len(Columns)), then the Columns fields.

// Keyed reports whether t has a conflict key.
func (t *Table) Keyed() bool { return len(t.Key) > 0 }

// seqColumn is the staging column holding the tuple's seq field. No target
// column may have this name.
const seqColumn = "sluice_seq"

// ReservedColumn reports whether name is taken by a staging column (the
// seq field, the ops stage's columns), so that no target column may have
// it.
func ReservedColumn(name string) bool {
	switch name {
	case seqColumn, opColumn, unchangedColumn, roleColumn, delOffColumn, rankColumn:
		return true
	}
	return false
}

// schemaTable splits t.Name into schema and table.
func (t *Table) schemaTable() (string, string) {
	if i := strings.IndexByte(t.Name, '.'); i >= 0 {
		return t.Name[:i], t.Name[i+1:]
	}
	return "public", t.Name
}

// ident returns the quoted target name.
func (t *Table) ident() string {
	s, n := t.schemaTable()
	return pgx.Identifier{s, n}.Sanitize()
}

// validate checks what can be checked without a database.
func (t *Table) validate() error {
	if t == nil {
		return fmt.Errorf("cannot use a nil table: set Batch.Table")
	}
	s, n := t.schemaTable()
	if s == "" || n == "" || strings.Contains(n, ".") {
		return fmt.Errorf("cannot use table name %q: write it as schema.table or table", t.Name)
	}
	if len(t.Columns) == 0 {
		return fmt.Errorf("cannot use table %s without columns: configure at least one column", t.Name)
	}
	if t.OnConflict != PolicyIgnore && t.OnConflict != PolicyUpdate {
		return fmt.Errorf("cannot use table %s with conflict policy %d: use PolicyIgnore or PolicyUpdate", t.Name, t.OnConflict)
	}
	seen := make(map[string]bool, len(t.Columns))
	for _, c := range t.Columns {
		if c.Name == "" {
			return fmt.Errorf("cannot use table %s: a column has no name; name every column", t.Name)
		}
		if ReservedColumn(c.Name) {
			return fmt.Errorf("cannot use table %s: column name %q is reserved by the staging table; rename the column", t.Name, c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("cannot use table %s: column %q is configured twice; remove one", t.Name, c.Name)
		}
		seen[c.Name] = true
		if err := checkSQLType(c.SQLType); err != nil {
			return fmt.Errorf("cannot use column %s.%s: %w", t.Name, c.Name, err)
		}
	}
	keys := make(map[string]bool, len(t.Key))
	for _, k := range t.Key {
		if !seen[k] {
			return fmt.Errorf("cannot use table %s: key column %q is not among the configured columns; add it to columns or remove it from key", t.Name, k)
		}
		if keys[k] {
			return fmt.Errorf("cannot use table %s: key column %q is listed twice; remove one", t.Name, k)
		}
		keys[k] = true
	}
	if t.OffsetColumn != "" && !seen[t.OffsetColumn] {
		return fmt.Errorf("cannot use table %s: offset column %q is not among the configured columns; add it (source: kafka.offset) or unset it", t.Name, t.OffsetColumn)
	}
	if t.Partition != nil {
		return t.Partition.validate(t)
	}
	return nil
}

// checkSQLType rejects type names that could not be a type: they are
// pasted into DDL and casts.
func checkSQLType(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("cannot use an empty type: set the column type, e.g. text or int8")
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune(" _.,()[]\"", r):
		default:
			return fmt.Errorf("cannot use type %q: character %q is not allowed in a type name", s, r)
		}
	}
	return nil
}

// tableSQL holds the statements derived from a Table for one Writer.
type tableSQL struct {
	table      *Table
	stage      string // quoted pg_temp staging table name (keyed tables)
	stageName  string // the same, unqualified and unquoted
	copyStage  string
	copyTarget string
	merge      string    // merges every staged row
	mergeRange [2]string // merges staged rows with seq BETWEEN the two: prefix, suffix
	// update (on_conflict update with a column besides the key) updates
	// the stored rows of the staged keys under the guard and returns the
	// sluice_seq of each staged row it applied: the direct path's update
	// of stored keys (direct.go, updateSQL).
	update string
}

// conflictClause returns the ON CONFLICT clause of the merge; the target is
// aliased t.
func (t *Table) conflictClause() string {
	keys := quoteList(t.Key)
	var set []string
	isKey := make(map[string]bool, len(t.Key))
	for _, k := range t.Key {
		isKey[k] = true
	}
	for _, c := range t.Columns {
		if !isKey[c.Name] {
			n := pgx.Identifier{c.Name}.Sanitize()
			set = append(set, n+" = EXCLUDED."+n)
		}
	}
	if t.OnConflict == PolicyIgnore || len(set) == 0 {
		return "ON CONFLICT (" + keys + ") DO NOTHING"
	}
	c := "ON CONFLICT (" + keys + ") DO UPDATE SET " + strings.Join(set, ", ")
	if t.OffsetColumn != "" {
		o := pgx.Identifier{t.OffsetColumn}.Sanitize()
		// A stored row without an offset is older than anything we bring.
		c += " WHERE t." + o + " < EXCLUDED." + o + " OR t." + o + " IS NULL"
	}
	return c
}

// checkStatement returns an EXPLAIN of an insert shaped like the merge (or
// the COPY of a keyless table): planning it checks that every configured
// type converts to its column and, for keyed tables, that a unique index
// can arbitrate ON CONFLICT, without touching any row.
func (t *Table) checkStatement() string {
	var b strings.Builder
	b.WriteString("EXPLAIN INSERT INTO " + t.ident() + " AS t (" + quoteList(t.columnNames()) + ") SELECT ")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("NULL::" + c.SQLType)
	}
	if t.Keyed() {
		b.WriteString(" " + t.conflictClause())
	}
	return b.String()
}

func quoteList(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgx.Identifier{n}.Sanitize())
	}
	return b.String()
}

func (t *Table) columnNames() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// compile builds the statements of t, staged in pg_temp.<stageName>.
func (t *Table) compile(stageName string) *tableSQL {
	cols := quoteList(t.columnNames())
	q := &tableSQL{
		table:      t,
		stage:      pgx.Identifier{"pg_temp", stageName}.Sanitize(),
		stageName:  stageName,
		copyTarget: "COPY " + t.ident() + " (" + cols + ") FROM STDIN (FORMAT binary)",
	}
	if !t.Keyed() {
		return q
	}
	seq := pgx.Identifier{seqColumn}.Sanitize()
	q.copyStage = "COPY " + q.stage + " (" + seq + ", " + cols + ") FROM STDIN (FORMAT binary)"
	keys := quoteList(t.Key)
	order := seq
	if t.OnConflict == PolicyUpdate {
		order += " DESC"
		if t.OffsetColumn != "" {
			// The guard orders a key's versions within the batch too: a
			// replayed older version arriving after a newer one loses.
			order = pgx.Identifier{t.OffsetColumn}.Sanitize() + " DESC NULLS LAST, " + order
		}
	}
	// DISTINCT ON (key) with ORDER BY key, seq: PostgreSQL implements DISTINCT
	// ON only as Sort + Unique, and INSERT never runs in parallel, so the
	// rows reach the insertion (and take their unique-index and ON CONFLICT
	// locks) in ascending key order. Every Writer sorts the same staging
	// column types with the same collation, so concurrent batches lock their
	// keys in one global order and cannot deadlock on each other's keys.
	head := "INSERT INTO " + t.ident() + " AS t (" + cols + ") SELECT DISTINCT ON (" + keys + ") " + cols + " FROM " + q.stage
	tail := " ORDER BY " + keys + ", " + order + " " + t.conflictClause()
	q.merge = head + tail
	q.mergeRange = [2]string{head + " WHERE " + seq + " BETWEEN ", tail}
	if t.OnConflict == PolicyUpdate {
		q.update = updateSQL(t, q.stage)
	}
	return q
}
