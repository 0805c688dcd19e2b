package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migrateLockKey serialises Migrate across every Sluice instance sharing a
// database, whatever its schema: targets may be shared between schemas.
const migrateLockKey = 0x736c7569636501 // "sluice" + 1

// Migrate creates schema, <schema>.offsets and <schema>.dead_letters, and
// every table with Create set that does not exist yet. It then checks every
// table, created or pre-existing: the configured columns must exist, keyless
// tables must store each configured type unchanged (their tuples are copied
// straight in), and keyed tables must accept the merge (types convertible, a
// non-partial, non-deferrable unique index on exactly Key).
//
// Migrate is idempotent and may run concurrently from several instances: it
// holds a transaction-level advisory lock while creating. It records each
// column's Limit in tables, so concurrent calls must not share a *Table.
// conn must not be inside a transaction.
func Migrate(ctx context.Context, conn *pgconn.PgConn, schema string, tables []*Table) error {
	if schema == "" {
		return errors.New("cannot migrate an empty schema name: set postgres.schema, e.g. sluice")
	}
	for _, t := range tables {
		if err := t.validate(); err != nil {
			return err
		}
	}
	sql := fmt.Sprintf("BEGIN; SELECT pg_advisory_xact_lock(%d);\n", migrateLockKey) + migrateSQL(schema, tables) + "COMMIT"
	if err := execSimple(ctx, conn, sql); err != nil {
		rollback(ctx, conn)
		return fmt.Errorf("cannot create the tables of schema %s (and create: true targets): %w", schema, err)
	}
	for _, t := range tables {
		if err := checkTable(ctx, conn, t); err != nil {
			return err
		}
		if t.Partition != nil {
			if err := CheckPartitioned(ctx, conn, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrateSQL returns Migrate's statements, to run in one transaction.
func migrateSQL(schema string, tables []*Table) string {
	s := pgx.Identifier{schema}.Sanitize()
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n", s)
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %s.offsets (
	group_id text NOT NULL,
	topic text NOT NULL,
	partition int NOT NULL,
	next_offset bigint NOT NULL,
	owner_epoch bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	reset_from bigint,
	PRIMARY KEY (group_id, topic, partition)
);
`, s)
	b.WriteString(upgradeOffsets(s))
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %s.dead_letters (
	group_id text NOT NULL,
	target text NOT NULL,
	topic text NOT NULL,
	partition int NOT NULL,
	"offset" bigint NOT NULL,
	key bytea,
	value bytea,
	headers jsonb,
	error text,
	received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (group_id, target, topic, partition, "offset")
);
`, s)
	b.WriteString(upgradeDeadLetters(s))
	for _, t := range tables {
		if !t.Create {
			continue
		}
		ts, _ := t.schemaTable()
		fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n", pgx.Identifier{ts}.Sanitize())
		b.WriteString("CREATE TABLE IF NOT EXISTS " + t.createSQL() + ";\n")
	}
	for _, t := range tables {
		if t.Partition != nil {
			// Rows no partition holds land there instead of failing the
			// batch. A table that exists unpartitioned is left alone: the
			// check below names the fix.
			b.WriteString(t.defaultPartitionSQL())
		}
	}
	return b.String()
}

// createSQL returns what follows CREATE TABLE for t: its name, columns,
// primary key and partitioning.
func (t *Table) createSQL() string {
	var b strings.Builder
	b.WriteString(t.ident() + " (")
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgx.Identifier{c.Name}.Sanitize() + " " + c.SQLType)
	}
	if t.Keyed() {
		b.WriteString(", PRIMARY KEY (" + quoteList(t.Key) + ")")
	}
	b.WriteString(")")
	if t.Partition != nil {
		b.WriteString(" PARTITION BY RANGE (" + pgx.Identifier{t.Partition.Column}.Sanitize() + ")")
	}
	return b.String()
}

// targetColumn is what the catalog says about a target column.
type targetColumn struct {
	typ     string // format_type, with typmod: usable in DDL
	baseOID uint32 // the type under any domains
	typmod  int32  // the base type's modifier (varchar length, numeric precision and scale), -1 for none
	notNull bool
	// required: NOT NULL (the column's own constraint or a domain's)
	// with no default (neither its own, nor a domain's, nor identity,
	// nor generated): an insert that leaves it out fails.
	required bool
	// deterministic: the column's collation, if it has one, compares
	// strings equal only when their bytes are (every collation but a
	// nondeterministic ICU one).
	deterministic bool
	// collate is " COLLATE schema.name" when the column's collation is
	// not its type's default, so that a staging column compares and
	// groups as the target's does; "" otherwise.
	collate string
}

// describeTarget returns the columns of t's target by name, or an error
// naming the fix when the target does not exist.
func describeTarget(ctx context.Context, conn *pgconn.PgConn, t *Table) (map[string]targetColumn, error) {
	var p params
	p.text(t.ident())
	r, err := query(ctx, conn, "SELECT to_regclass($1) IS NOT NULL", &p)
	if err != nil {
		return nil, fmt.Errorf("cannot look up table %s: %w", t.Name, err)
	}
	if len(r.Rows) != 1 || string(r.Rows[0][0]) != "t" {
		return nil, fmt.Errorf("cannot find table %s: create it, or set create: true for it and run sluice migrate", t.Name)
	}
	return readTargetColumns(ctx, conn, t)
}

// readTargetColumns returns the columns of t's target by name; the target
// exists (describeTarget, TargetColumns).
func readTargetColumns(ctx context.Context, conn *pgconn.PgConn, t *Table) (map[string]targetColumn, error) {
	var p params
	p.text(t.ident())
	r, err := query(ctx, conn, `WITH RECURSIVE c AS (
	SELECT a.attname, a.attnotnull, a.attnotnull AS nn, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '' AS def,
		format_type(a.atttypid, a.atttypmod) AS typ, a.atttypid AS base, a.atttypmod AS mod,
		coalesce((SELECT co.collisdeterministic FROM pg_collation co WHERE co.oid = a.attcollation), true) AS det,
		coalesce((SELECT ' COLLATE ' || quote_ident(n.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace
			JOIN pg_type ty ON ty.oid = a.atttypid WHERE co.oid = a.attcollation AND a.attcollation <> ty.typcollation), '') AS coll
	FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT c.attname, c.attnotnull, c.nn OR t.typnotnull, c.def OR t.typdefaultbin IS NOT NULL,
		c.typ, t.typbasetype, CASE WHEN t.typtypmod >= 0 THEN t.typtypmod ELSE c.mod END, c.det, c.coll
	FROM c JOIN pg_type t ON t.oid = c.base WHERE t.typtype = 'd'
)
SELECT c.attname, c.attnotnull, c.typ, c.base, c.mod, c.det, c.coll, c.nn AND NOT c.def FROM c JOIN pg_type t ON t.oid = c.base WHERE t.typtype <> 'd'`, &p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the columns of table %s: %w", t.Name, err)
	}
	cols := make(map[string]targetColumn, len(r.Rows))
	for _, row := range r.Rows {
		oid, err := atoi64(row[3])
		if err != nil {
			return nil, err
		}
		mod, err := atoi64(row[4])
		if err != nil {
			return nil, err
		}
		cols[string(row[0])] = targetColumn{typ: string(row[2]), baseOID: uint32(oid), typmod: int32(mod), notNull: string(row[1]) == "t",
			deterministic: string(row[5]) == "t", collate: string(row[6]), required: string(row[7]) == "t"}
	}
	return cols, nil
}

// TargetColumns returns the columns of t's target by name, each with the
// type Sluice writes into it ("" for a type it does not write), and
// false when the target does not exist.
func TargetColumns(ctx context.Context, conn *pgconn.PgConn, t *Table) (map[string]string, bool, error) {
	var p params
	p.text(t.ident())
	r, err := query(ctx, conn, "SELECT to_regclass($1) IS NOT NULL", &p)
	if err != nil {
		return nil, false, fmt.Errorf("cannot read the columns of table %s: %w", t.Name, err)
	}
	if len(r.Rows) != 1 || string(r.Rows[0][0]) != "t" {
		return nil, false, nil
	}
	have, err := readTargetColumns(ctx, conn, t)
	if err != nil {
		return nil, false, err
	}
	cols := make(map[string]string, len(have))
	for name, tc := range have {
		cols[name] = typeNames[tc.baseOID]
	}
	return cols, true, nil
}

// resolveTypes returns the OIDs of the configured SQLTypes of t.
func resolveTypes(ctx context.Context, conn *pgconn.PgConn, t *Table) ([]uint32, error) {
	var p params
	a := p.array(oidText)
	for _, c := range t.Columns {
		a.str(c.SQLType)
	}
	p.endArray(oidTextArr)
	r, err := query(ctx, conn, "SELECT n, to_regtype(s)::oid FROM unnest($1::text[]) WITH ORDINALITY AS x(s, n) ORDER BY n", &p)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve the column types of table %s: %w", t.Name, err)
	}
	oids := make([]uint32, len(t.Columns))
	for i, row := range r.Rows {
		if row[1] == nil {
			c := t.Columns[i]
			return nil, fmt.Errorf("cannot use column %s.%s: type %q does not exist; use a PostgreSQL type such as text, int8 or jsonb", t.Name, c.Name, c.SQLType)
		}
		v, err := atoi64(row[1])
		if err != nil {
			return nil, err
		}
		oids[i] = uint32(v)
	}
	return oids, nil
}

// sameWireFormat reports whether a field encoded as type a can be received
// by a column whose base type is b.
func sameWireFormat(a, b uint32) bool {
	if a == b {
		return true
	}
	textLike := func(o uint32) bool { return o == 25 || o == 1043 || o == 1042 } // text, varchar, bpchar
	return textLike(a) && textLike(b)
}

// checkTable verifies that batches for t can be written to its target.
func checkTable(ctx context.Context, conn *pgconn.PgConn, t *Table) error {
	cols, err := describeTarget(ctx, conn, t)
	if err != nil {
		return err
	}
	oids, err := resolveTypes(ctx, conn, t)
	if err != nil {
		return err
	}
	for i, c := range t.Columns {
		tc, ok := cols[c.Name]
		if !ok {
			return fmt.Errorf("cannot find column %q in table %s: add it (ALTER TABLE %s ADD COLUMN %s %s) or remove it from the configuration",
				c.Name, t.Name, t.ident(), pgx.Identifier{c.Name}.Sanitize(), c.SQLType)
		}
		lim, err := checkColumn(t, c, oids[i], tc)
		if err != nil {
			return err
		}
		if !t.Keyed() && !sameWireFormat(oids[i], tc.baseOID) {
			return fmt.Errorf("cannot copy column %s.%s: it is %s but configured as %s, and keyless tables are copied without conversion; configure type %s or change the column",
				t.Name, c.Name, tc.typ, c.SQLType, typeNames[tc.baseOID])
		}
		t.Columns[i].Limit = lim
	}
	if err := checkUnmapped(ctx, conn, t, cols); err != nil {
		return err
	}
	noIndex := func(cause string) error {
		return fmt.Errorf("cannot merge into table %s: no usable unique index covers exactly the key (%s) (%s); add one, e.g. ALTER TABLE %s ADD PRIMARY KEY (%s) or CREATE UNIQUE INDEX ON %s (%s), not partial and not deferrable",
			t.Name, strings.Join(t.Key, ", "), cause, t.ident(), quoteList(t.Key), t.ident(), quoteList(t.Key))
	}
	if _, err := query(ctx, conn, t.checkStatement(), nil); err != nil {
		if pgCode(err) == "42P10" {
			return noIndex(err.Error())
		}
		return fmt.Errorf("cannot insert the configured columns into table %s: %w; make the configured types match the table's columns", t.Name, err)
	}
	if !t.Keyed() {
		return nil
	}
	// Planning accepts a deferrable unique index as arbiter; executing
	// ON CONFLICT then fails on every batch. Require an immediate one.
	var p params
	p.text(t.ident())
	a := p.array(oidText)
	for _, k := range t.Key {
		a.str(k)
	}
	p.endArray(oidTextArr)
	r, err := query(ctx, conn, `SELECT count(*) FROM pg_index i
WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indimmediate AND i.indisvalid
AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($2::text[])
AND NOT EXISTS (
	SELECT 1 FROM unnest(i.indkey[0:i.indnkeyatts-1]) AS k(attnum)
	JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
	WHERE NOT a.attname::text = ANY($2::text[]))`, &p)
	if err != nil {
		return fmt.Errorf("cannot read the unique indexes of table %s: %w", t.Name, err)
	}
	if n, err := atoi64(r.Rows[0][0]); err != nil || n == 0 {
		return noIndex("deferrable, partial or missing")
	}
	return nil
}

// checkUnmapped refuses a target with a column that every insert must give
// a value (required) and the configuration does not map: every record
// would be a dead letter naming it. A BEFORE INSERT row trigger on the
// target (or one of its partitions) may fill such a column, so a target
// with one is let through.
func checkUnmapped(ctx context.Context, conn *pgconn.PgConn, t *Table, cols map[string]targetColumn) error {
	var missing []string
	for name, tc := range cols {
		if tc.required && !slices.ContainsFunc(t.Columns, func(c Column) bool { return c.Name == name }) {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	var p params
	p.text(t.ident())
	// tgtype bits: ROW 1, BEFORE 2, INSERT 4.
	r, err := query(ctx, conn, `SELECT count(*) FROM pg_trigger
WHERE (tgrelid = $1::regclass OR tgrelid IN (SELECT relid FROM pg_partition_tree($1::regclass))) AND tgtype & 7 = 7 AND tgenabled <> 'D'`, &p)
	if err != nil {
		return fmt.Errorf("cannot read the triggers of table %s: %w", t.Name, err)
	}
	if n, err := atoi64(r.Rows[0][0]); err != nil || n > 0 {
		return err
	}
	also := ""
	if len(missing) > 1 {
		also = fmt.Sprintf(" (as are %s)", strings.Join(missing[1:], ", "))
	}
	c := pgx.Identifier{missing[0]}.Sanitize()
	return fmt.Errorf("cannot write table %s: column %q is NOT NULL without a default and the configuration does not map it%s, so every record would be a dead letter; "+
		"map it in columns, give it a default (ALTER TABLE %s ALTER COLUMN %s SET DEFAULT ...), or make it nullable (ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL)",
		t.Name, missing[0], also, t.ident(), c, t.ident(), c)
}

// upgradeOffsets returns the statement that adds reset_from (Claim.ResetFrom)
// to an offsets table made before it existed. It checks the catalog first:
// ALTER TABLE would take the table's exclusive lock at every start, queueing
// the running instances' commits behind it.
func upgradeOffsets(schema string) string {
	off := schema + ".offsets"
	lit := "'" + strings.ReplaceAll(off, "'", "''") + "'"
	return fmt.Sprintf(`DO $upgrade$ BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = %[2]s::regclass AND attname = 'reset_from' AND NOT attisdropped) THEN
	ALTER TABLE %[1]s ADD COLUMN reset_from bigint;
END IF;
END $upgrade$;
`, off, lit)
}

// upgradeDeadLetters returns the statements that bring a dead-letter table
// of the first layout (identity (topic, partition, offset), one row per
// record whatever the group or target) to the current one (identity
// (group_id, target, topic, partition, offset)), keeping every row. It does
// nothing on a table that already has group_id.
//
// The first layout did not record the group. An old row gets the group
// whose offsets row covers its partition when exactly one group reads that
// partition in this schema (the usual deployment), and the empty string
// otherwise: the row is kept, findable by topic, partition and offset. A
// row without a target gets the empty string too.
func upgradeDeadLetters(schema string) string {
	dl := schema + ".dead_letters"
	off := schema + ".offsets"
	lit := "'" + strings.ReplaceAll(dl, "'", "''") + "'"
	return fmt.Sprintf(`DO $upgrade$ DECLARE pk name; BEGIN
IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = %[3]s::regclass AND attname = 'group_id' AND NOT attisdropped) THEN
	ALTER TABLE %[1]s ADD COLUMN group_id text;
	UPDATE %[1]s AS d SET group_id = coalesce((
		SELECT min(o.group_id) FROM %[2]s AS o WHERE o.topic = d.topic AND o.partition = d.partition
		HAVING count(DISTINCT o.group_id) = 1), ''), target = coalesce(d.target, '');
	ALTER TABLE %[1]s ALTER COLUMN group_id SET NOT NULL, ALTER COLUMN target SET NOT NULL;
	SELECT conname INTO pk FROM pg_constraint WHERE conrelid = %[3]s::regclass AND contype = 'p';
	IF pk IS NOT NULL THEN
		EXECUTE format('ALTER TABLE %%s DROP CONSTRAINT %%I', %[3]s, pk);
	END IF;
	ALTER TABLE %[1]s ADD PRIMARY KEY (group_id, target, topic, partition, "offset");
	RAISE NOTICE 'dead letters upgraded to one per group and target in %%', %[3]s;
END IF;
END $upgrade$;
`, dl, off, lit)
}
