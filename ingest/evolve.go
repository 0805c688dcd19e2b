package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
)

// Schema evolution (evolve: add_columns, docs/partitions.md). When a
// writer schema brings a top-level field that no column maps (for format
// debezium with converter avro, a field of the Envelope's row record,
// docs/change-streams.md), evolve adds a nullable column for it to the
// target (pgcopy.AddColumns: one short transaction under a per-table
// advisory lock) and gives the table a new shape: the columns it writes,
// and the pgcopy.Table and tuple layout that go with them. Batches are
// encoded and committed with one shape each: a worker that finds the
// shape changed commits its open batch first, then decodes with a decoder
// of the new shape. Columns added so are marked in the catalog; a
// restarted instance finds them (loadEvolved) and writes them from the
// start. A column is never retyped: a field whose type changed so that
// its column cannot hold it makes each record a dead letter naming the
// column (the decoder's wrong_type).

// evolveLockTimeout bounds how long adding columns waits for its locks
// (ALTER TABLE needs a moment of ACCESS EXCLUSIVE).
const evolveLockTimeout = 5 * time.Second

// tableShape is what a table writes: its columns, the pgcopy.Table built
// from them, and the tuple layout. A shape never changes; evolution
// publishes a new one.
type tableShape struct {
	pg        *pgcopy.Table
	cols      []codec.Column
	nFields   int   // fields per tuple, including the seq field of keyed tables
	keyFields []int // the key's field positions in a tuple (keyed tables)
}

// evolution is a table's evolving state.
type evolution struct {
	mu    sync.Mutex // serialises evolve calls of one table
	shape atomic.Pointer[tableShape]
	// warned (under warnMu) holds the warnings logged for the table
	// (once): every decoder of every worker meets each writer schema, and
	// a new shape's decoders meet them again.
	warnMu sync.Mutex
	warned map[string]bool
}

// once reports whether the warning key has not been logged for the table
// yet, and marks it logged: a field given no column (by name and why), a
// column its field cannot be written into, a writer schema evolve cannot
// follow (by schema id), a key schema naming another primary key
// (keychange.go, by key schema id or GUID).
func (ev *evolution) once(key string) bool {
	ev.warnMu.Lock()
	defer ev.warnMu.Unlock()
	if ev.warned[key] {
		return false
	}
	if ev.warned == nil {
		ev.warned = map[string]bool{}
	}
	ev.warned[key] = true
	return true
}

// cur returns the table's current shape; New sets the first from the
// configured columns.
func (t *tableRT) cur() *tableShape { return t.ev.shape.Load() }

// initShape publishes t's configured columns as its first shape. The
// shape shares t.pg and t.cols, so what Run learns of the target before
// the workers start (limits, evolved columns) reaches it.
func (t *tableRT) initShape() {
	t.ev.shape.Store(&tableShape{pg: t.pg, cols: t.cols, nFields: t.nFields, keyFields: t.keyFields})
}

// withColumns returns a shape of sh with cols appended (paths named after
// the columns).
func (sh *tableShape) withColumns(cols []codec.Column) *tableShape {
	pg := *sh.pg
	pg.Columns = slices.Clone(sh.pg.Columns)
	ns := &tableShape{pg: &pg, cols: slices.Clone(sh.cols), nFields: sh.nFields + len(cols)}
	for _, c := range cols {
		pg.Columns = append(pg.Columns, pgcopy.Column{Name: c.Name, SQLType: c.Type.String()})
		ns.cols = append(ns.cols, c)
	}
	if pg.Keyed() {
		ns.keyFields = pg.KeyFields()
	}
	return ns
}

// mapped reports whether a column of sh is named name or reads a path
// starting at the top-level field name; kept, whether the field's values
// are stored: a column reads such a path, or keeps the whole value or the
// members no path column reads (a column named like the field may read
// something else).
func (sh *tableShape) mapped(name string) (mapped, kept bool) {
	for _, c := range sh.cols {
		switch c.Source {
		case codec.SourcePath:
			if top, _, _ := strings.Cut(c.Path, "."); top == name {
				return true, true
			}
		case codec.SourceValue, codec.SourceUnmapped:
			kept = true
		}
		mapped = mapped || c.Name == name
	}
	return mapped, mapped && kept
}

// evolve gives t a nullable column for every field of a writer schema
// (t.schemaFields) that no column maps, when t has evolve: add_columns;
// otherwise it does nothing. Call it when a writer schema reaches a
// decoder of t (before Decoder.AddSchema): when it returns, t's shape
// (t.cur()) holds the columns, and a worker must commit the batch it has
// open for t before decoding another record of t with a decoder of the
// new shape. An error (PostgreSQL unreachable, a lock not granted in
// time) leaves t as it was; retry it like a failed schema fetch. A field
// whose name is taken by a column of another type, that is not a plain
// identifier of at most 63 bytes, or that a staging column has
// (pgcopy.ReservedColumn: a target column of that name fails every batch)
// is logged and skipped: its values are not stored. So is a field without
// a column type (TypeInvalid: a field of type null, nullField), and, for
// format debezium, a field that would take the table past
// pgcopy.MaxUnchangedColumns (its TOAST placeholders could not keep the
// stored values).
func (a *App) evolve(ctx context.Context, t *tableRT, fields []codec.SchemaField) error {
	if t.cfg.Evolve != "add_columns" || len(fields) == 0 {
		return nil
	}
	t.ev.mu.Lock()
	defer t.ev.mu.Unlock()
	sh := t.cur()
	var add []pgcopy.Column
	const other = "map it with a column of its own, of another name"
	skip := func(name, why, fix string) {
		if t.ev.once("skip\x00" + name + "\x00" + why) {
			a.log.Warn("cannot add a column for a new field: "+why+"; its values are not stored; "+fix,
				"table", t.cfg.Name, "field", name)
		}
	}
	for _, f := range fields {
		if mapped, kept := sh.mapped(f.Name); kept {
			continue
		} else if mapped {
			skip(f.Name, "a column of its name reads something else", other)
			continue
		}
		why, fix := unusableFieldName(f.Name), other
		switch {
		case why != "":
		case f.Type == codec.TypeInvalid:
			why, fix = nullField(true)
		case t.format == codec.FormatDebezium && len(sh.pg.Columns)+len(add) >= pgcopy.MaxUnchangedColumns:
			why = fmt.Sprintf("the table has %d columns, and format debezium keeps the stored value of a TOASTed column for at most %d",
				len(sh.pg.Columns)+len(add), pgcopy.MaxUnchangedColumns)
			fix = "split the table"
		}
		if why != "" {
			skip(f.Name, why, fix)
			continue
		}
		add = append(add, pgcopy.Column{Name: f.Name, SQLType: f.Type.String()})
	}
	if len(add) == 0 {
		return nil
	}
	var got []pgcopy.Column
	err := a.withCtl(ctx, func(conn *pgconn.PgConn) error {
		var err error
		got, err = pgcopy.AddColumns(ctx, conn, sh.pg, add, evolveLockTimeout)
		return err
	})
	if err != nil {
		return fmt.Errorf("cannot evolve table %s: %w", t.cfg.Name, err)
	}
	cols := a.evolvedColumns(t, add, got)
	if len(cols) == 0 {
		return nil
	}
	t.ev.shape.Store(sh.withColumns(cols))
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name + " " + c.Type.String()
	}
	a.log.Info("table evolved: columns added for new writer-schema fields", "table", t.cfg.Name, "columns", names)
	return nil
}

// logUnstored names, once per field, the fields of a writer schema that
// no column of t stores (none the start warned about already:
// derivation.unstoredAtStart), for a table whose columns come from the registry
// without evolve: add_columns: its user left the columns to the registry,
// and a field of another topic's subject, or of a version registered since
// the start, is otherwise stored nowhere without a word.
func (a *App) logUnstored(t *tableRT, topic, schema string, fields []codec.SchemaField) {
	t.ev.mu.Lock()
	defer t.ev.mu.Unlock()
	sh := t.cur()
	if slices.ContainsFunc(sh.cols, func(c codec.Column) bool { return c.Source == codec.SourceValue || c.Source == codec.SourceUnmapped }) {
		return // the members no column reads are kept there
	}
	var names []string
	for _, f := range fields {
		if _, kept := sh.mapped(f.Name); kept || !t.ev.once("unstored\x00"+f.Name) {
			continue
		}
		names = append(names, f.Name)
	}
	if len(names) > 0 {
		a.log.Warn("fields of a writer schema have no column in a table derived from the schema registry; their values are not stored; set evolve: add_columns to add them, or list the columns",
			"table", t.cfg.Name, "topic", topic, "schema", schema, "fields", names)
	}
}

// schemaFields lists the fields of writer schema s that t's columns read
// and evolution follows: the top-level fields of a registry format's
// record (codec.SchemaFields; for Protobuf those of the message indexes
// names), or, for format debezium (converter avro), the fields of the row
// record of the connector's Envelope (codec.DebeziumAvroFields), which
// its paths name.
func (t *tableRT) schemaFields(s *codec.Schema, indexes []int) ([]codec.SchemaField, error) {
	if t.format == codec.FormatDebezium {
		return codec.DebeziumAvroFields(s)
	}
	return codec.SchemaFields(s, indexes)
}

// nullField says why a writer-schema field of type null gets no column
// and what gives it one, for derivation and evolve alike: such a field
// (codec.TypeInvalid, from codec.SchemaFields or codec.DebeziumAvroFields)
// holds no value to type a column by, and a guessed type would stay when
// a later writer schema gives the field a real one, since a column is
// never retyped. evolve says whether the table has evolve: add_columns,
// under which that later schema adds the column.
func nullField(evolve bool) (why, fix string) {
	why = "its type is null, which types no column (a column is never retyped)"
	if evolve {
		return why, "a later writer schema that gives it a type adds its column"
	}
	return why, "with evolve: add_columns a later writer schema that gives it a type adds its column; or list the columns"
}

// unusableFieldName says why a column cannot be named like the
// writer-schema field name, "" when it can: PostgreSQL would truncate a
// name longer than 63 bytes (the column then has another name), and a
// staging column's name in a target fails every batch.
func unusableFieldName(name string) string {
	switch {
	case !identRe.MatchString(name):
		return "its name is not a plain identifier"
	case len(name) > 63:
		return "its name is longer than PostgreSQL's 63 bytes"
	case pgcopy.ReservedColumn(name):
		return "its name is reserved for Sluice's staging tables"
	}
	return ""
}

// evolvedColumns turns the columns the target has for the requested ones
// into decoder columns, skipping those of a type Sluice does not write
// (logged once per table and column: the column stays out of the shape,
// so every decoder meeting a writer schema with the field asks again) or
// that differ from the field's.
func (a *App) evolvedColumns(t *tableRT, want, got []pgcopy.Column) []codec.Column {
	var cols []codec.Column
	for i, c := range got {
		typ, err := codec.ParseType(c.SQLType)
		if err != nil {
			if !t.ev.once("unwritable\x00" + c.Name) {
				continue
			}
			a.log.Warn("cannot write a new field into its column: the table has a column of that name of a type Sluice does not write; rename the column or map the field with a column of its own",
				"table", t.cfg.Name, "column", c.Name)
			continue
		}
		if want != nil && c.SQLType != want[i].SQLType {
			// An existing column of another type: the field is written
			// into it, and a value it cannot hold is a dead letter.
			a.log.Warn("a new field goes into an existing column of another type; values the column cannot hold become dead letters",
				"table", t.cfg.Name, "column", c.Name, "column_type", c.SQLType, "field_type", want[i].SQLType)
		}
		cols = append(cols, codec.Column{Name: c.Name, Type: typ, Path: c.Name})
	}
	return cols
}

// loadEvolved gives every table with evolve: add_columns the columns an
// earlier run added to its target. Run calls it after migrating, before
// the workers start.
func (a *App) loadEvolved(ctx context.Context) error {
	for _, t := range a.tableList() {
		if t.cfg.Evolve != "add_columns" {
			continue
		}
		var got []pgcopy.Column
		err := a.withCtl(ctx, func(conn *pgconn.PgConn) error {
			var err error
			got, err = pgcopy.EvolvedColumns(ctx, conn, t.pg)
			return err
		})
		if err != nil {
			return err
		}
		cols := a.evolvedColumns(t, nil, got)
		if n := len(t.cur().pg.Columns); t.format == codec.FormatDebezium && n+len(cols) > pgcopy.MaxUnchangedColumns {
			// Columns listed since they were added: as evolve, stop at
			// what keeps TOAST placeholders working.
			keep := max(pgcopy.MaxUnchangedColumns-n, 0)
			left := make([]string, 0, len(cols)-keep)
			for _, c := range cols[keep:] {
				left = append(left, c.Name)
			}
			a.log.Warn(fmt.Sprintf("columns added by evolution are not written: the table would have more than %d columns, and format debezium keeps the stored value of a TOASTed column for at most %d; split the table",
				pgcopy.MaxUnchangedColumns, pgcopy.MaxUnchangedColumns), "table", t.cfg.Name, "columns", left)
			cols = cols[:keep]
		}
		if len(cols) > 0 {
			t.ev.shape.Store(t.cur().withColumns(cols))
			a.log.Info("evolved columns found", "table", t.cfg.Name, "columns", len(cols))
		}
	}
	return nil
}
