package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Time partitioning.
//
// A Table with Partitioning is a native PostgreSQL table partitioned BY
// RANGE on a time column, one partition per Interval, named
// <table>_p<yyyymmdd> (<table>_p<yyyymmddhh> for hourly ones) after the
// partition's first instant in UTC, plus a DEFAULT partition <table>_default
// that catches rows no partition holds. Migrate creates it (Create) and
// MaintainPartitions keeps it: partitions premade ahead of now and of the
// newest row, rows found in the default partition moved into partitions
// made for them, partitions wholly older than the retention dropped or
// detached.
//
// Every maintenance step is its own short transaction under
// pg_try_advisory_xact_lock on the table (another instance maintaining the
// same table makes this one skip the round, never wait) and a lock_timeout,
// so a step that would queue behind (and in front of) ingestion gives up
// quickly and is retried next round. Lock levels: a new partition is
// created as a plain table and ATTACHed (SHARE UPDATE EXCLUSIVE on the
// parent, which inserts do not conflict with; ACCESS EXCLUSIVE on the
// default partition, which is scanned); dropping detaches first (ACCESS
// EXCLUSIVE on the parent, for at most the lock_timeout, plus the moment
// the detach takes).

// Interval is the time span of one partition.
type Interval uint8

// Partition intervals, by their configuration names.
const (
	IntervalHour  Interval = iota + 1 // hour
	IntervalDay                       // day
	IntervalWeek                      // week, starting on Monday (as date_trunc)
	IntervalMonth                     // month
)

var intervalNames = [...]string{IntervalHour: "hour", IntervalDay: "day", IntervalWeek: "week", IntervalMonth: "month"}

// ParseInterval parses hour, day, week or month.
func ParseInterval(s string) (Interval, error) {
	for i := IntervalHour; i <= IntervalMonth; i++ {
		if intervalNames[i] == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("cannot use partition interval %q: use hour, day, week or month", s)
}

// String returns the configuration name of iv.
func (iv Interval) String() string {
	if iv >= IntervalHour && iv <= IntervalMonth {
		return intervalNames[iv]
	}
	return fmt.Sprintf("Interval(%d)", uint8(iv))
}

// Floor returns the start of the interval holding t, in UTC.
func (iv Interval) Floor(t time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch iv {
	case IntervalHour:
		return t.Truncate(time.Hour)
	case IntervalWeek:
		wd := (int(t.Weekday()) + 6) % 7 // Monday 0
		return time.Date(y, m, d-wd, 0, 0, 0, 0, time.UTC)
	case IntervalMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Next returns the start of the interval after the one starting at start.
func (iv Interval) Next(start time.Time) time.Time {
	switch iv {
	case IntervalHour:
		return start.Add(time.Hour)
	case IntervalWeek:
		return start.AddDate(0, 0, 7)
	case IntervalMonth:
		return start.AddDate(0, 1, 0)
	}
	return start.AddDate(0, 0, 1)
}

// Max is the longest an interval lasts.
func (iv Interval) Max() time.Duration {
	switch iv {
	case IntervalHour:
		return time.Hour
	case IntervalWeek:
		return 7 * 24 * time.Hour
	case IntervalMonth:
		return 31 * 24 * time.Hour
	}
	return 24 * time.Hour
}

// Partitioning says how a target is partitioned by time and how long its
// rows are kept.
type Partitioning struct {
	Column    string   // a timestamptz, timestamp or date column among Table.Columns
	Interval  Interval // one partition per interval
	Premake   int      // partitions kept ahead of now and of the newest row (besides the current one); the next is made PremakeLead ahead whatever it says
	Retention time.Duration
	// Detach keeps expired partitions as plain tables (detached) instead
	// of dropping them.
	Detach bool
}

// PremakeLead is how long before an interval starts a maintenance round
// makes its partition even with Premake 0: five rounds of a minute, so
// that a round skipped or a step that timed out still leaves it made in
// time.
const PremakeLead = 5 * time.Minute

// PartitionSuffixLen returns the length of "_p" and the longest partition
// date of interval iv on a column of SQL type colType: a table name plus
// this must fit PostgreSQL's 63 bytes, or the names of far partitions
// would be truncated (with a NOTICE only) into one another's. Years past
// 9999 take more than four digits: timestamp and timestamptz reach year
// 294276 (yyyyyymmdd, yyyyyymmddhh by the hour: 12 and 14 bytes with
// "_p"), date reaches year 5874897 (yyyyyyymmdd: 13). Years BC (-4712)
// are no longer.
func PartitionSuffixLen(iv Interval, colType string) int {
	switch {
	case iv == IntervalHour:
		return 2 + 6 + 6
	case colType == "date":
		return 2 + 7 + 4
	}
	return 2 + 6 + 4
}

// NotBefore returns the oldest partition time that is not expired at now:
// partitions wholly before it are dropped, and a row before it would
// re-create dropped data. The zero time when nothing expires.
func (p *Partitioning) NotBefore(now time.Time) time.Time {
	if p == nil || p.Retention <= 0 {
		return time.Time{}
	}
	return p.Interval.Floor(now.Add(-p.Retention))
}

func (p *Partitioning) validate(t *Table) error {
	if p.Interval < IntervalHour || p.Interval > IntervalMonth {
		return fmt.Errorf("cannot partition table %s by interval %d: use IntervalHour, IntervalDay, IntervalWeek or IntervalMonth", t.Name, p.Interval)
	}
	i := slices.IndexFunc(t.Columns, func(c Column) bool { return c.Name == p.Column })
	if i < 0 {
		return fmt.Errorf("cannot partition table %s by column %q: it is not among the configured columns; add it to columns or fix partition.column", t.Name, p.Column)
	}
	switch typ := t.Columns[i].SQLType; typ {
	case "timestamptz", "timestamp":
	case "date":
		if p.Interval == IntervalHour {
			return fmt.Errorf("cannot partition table %s by the hour on date column %s; use interval day, week or month", t.Name, p.Column)
		}
	default:
		return fmt.Errorf("cannot partition table %s by column %s of type %s: use a timestamptz, timestamp or date column", t.Name, p.Column, typ)
	}
	if t.Keyed() && !slices.Contains(t.Key, p.Column) {
		return fmt.Errorf("cannot partition table %s by %s: PostgreSQL requires the partition column in every unique key, and the key is (%s); add %s to key",
			t.Name, p.Column, strings.Join(t.Key, ", "), p.Column)
	}
	if _, n := t.schemaTable(); len(n)+PartitionSuffixLen(p.Interval, t.Columns[i].SQLType) > 63 {
		return fmt.Errorf("cannot partition table %s by the %s on its %s column: its partitions' names (%s) can be longer than PostgreSQL's 63 bytes, which would truncate them; use a table name of at most %d bytes",
			t.Name, p.Interval, t.Columns[i].SQLType, PartitionNamePattern(n, p.Interval, t.Columns[i].SQLType), 63-PartitionSuffixLen(p.Interval, t.Columns[i].SQLType))
	}
	if p.Premake < 0 {
		return fmt.Errorf("cannot premake %d partitions of table %s: use 0 or more", p.Premake, t.Name)
	}
	if p.Retention < 0 {
		return fmt.Errorf("cannot keep table %s's rows for a negative retention %v", t.Name, p.Retention)
	}
	return nil
}

// PartitionNamePattern shows the longest name of table n's partitions
// (without schema): n_pyyyyyymmddhh by the hour, for instance.
func PartitionNamePattern(n string, iv Interval, colType string) string {
	date := "mmdd"
	if iv == IntervalHour {
		date = "mmddhh"
	}
	return n + "_p" + strings.Repeat("y", PartitionSuffixLen(iv, colType)-2-len(date)) + date
}

// PartitionName returns the name (without schema) of t's partition that
// starts at start: <table>_p<yyyymmdd>, or <table>_p<yyyymmddhh> by the
// hour.
func (t *Table) PartitionName(start time.Time) string {
	_, n := t.schemaTable()
	layout := "20060102"
	if t.Partition != nil && t.Partition.Interval == IntervalHour {
		layout = "2006010215"
	}
	return n + "_p" + start.UTC().Format(layout)
}

// defaultPartition returns the name (without schema) of t's default
// partition.
func (t *Table) defaultPartition() string {
	_, n := t.schemaTable()
	return n + "_default"
}

func (t *Table) partColumnType() string {
	for _, c := range t.Columns {
		if c.Name == t.Partition.Column {
			return c.SQLType
		}
	}
	return "timestamptz"
}

// boundLiteral is the SQL literal of a partition bound at instant b (UTC).
func (t *Table) boundLiteral(b time.Time) string {
	b = b.UTC()
	y, m, d := b.Date()
	era := ""
	if y <= 0 {
		// PostgreSQL counts years before 1 as BC and has no year 0:
		// Go's year 0 is 1 BC (a leap year in both).
		y, era = 1-y, " BC"
	}
	date := fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	switch t.partColumnType() {
	case "date":
		return "'" + date + era + "'"
	case "timestamp":
		return "'" + date + b.Format(" 15:04:05") + era + "'"
	}
	return "'" + date + b.Format(" 15:04:05") + "+00" + era + "'"
}

// defaultPartitionSQL returns the statement that gives t a default
// partition when it is partitioned as configured and has none.
func (t *Table) defaultPartitionSQL() string {
	s, _ := t.schemaTable()
	return fmt.Sprintf(`DO $part$ BEGIN
IF %s THEN
	EXECUTE %s;
END IF;
END $part$;
`, t.lacksDefaultSQL(), quoteLiteral(fmt.Sprintf("CREATE TABLE %s PARTITION OF %s DEFAULT", pgx.Identifier{s, t.defaultPartition()}.Sanitize(), t.ident())))
}

// lacksDefaultSQL is the SQL condition under which Migrate gives t a
// default partition: t is partitioned BY RANGE on its partition column
// alone and has none. A table partitioned otherwise is left alone (a
// default partition would take rows its list or range refused, and a hash
// table cannot have one); CheckPartitioned names the fix.
func (t *Table) lacksDefaultSQL() string {
	return fmt.Sprintf(`EXISTS (SELECT FROM pg_partitioned_table pt JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
	WHERE pt.partrelid = to_regclass(%s) AND pt.partdefid = 0 AND pt.partstrat = 'r' AND pt.partnatts = 1 AND a.attname = %s)`,
		quoteLiteral(t.ident()), quoteLiteral(t.Partition.Column))
}

// partitionLockClass is the first key of the two-key advisory lock that
// serialises the maintenance of one table (the second is hashtext of its
// name); it differs from every single-key lock Sluice takes.
const partitionLockClass = 0x736c7563 // "sluc"

// Maintenance is what one MaintainPartitions round did.
type Maintenance struct {
	Created  []string // partitions created (and attached)
	Moved    int64    // rows moved from the default partition into created partitions
	Dropped  []string // partitions dropped by retention
	Detached []string // partitions detached by retention (retention_action detach)
	// Expired counts the rows older than the retention floor deleted from
	// the default partition: rows of a batch that committed after a round
	// had dropped their interval's partition (decoded before the floor
	// moved, written after). Retention removes them as it removed the
	// partition; without it they would stay for good.
	Expired int64
	// DefaultRows counts the rows in the default partition when the round
	// ended (up to a million): rows that had no partition, and that could
	// not be moved into one (before the retention, or no partition time).
	DefaultRows int64
	// Renamed lists the partitions made under another name than
	// PartitionName because a relation that is no partition of the table
	// had that name (see choosePartitionName).
	Renamed []PartitionRename
	// Skipped is set when another session held the table's maintenance
	// lock: this round changed nothing.
	Skipped bool
	// Failed holds the steps that failed (a lock_timeout, an overlapping
	// partition made by someone else), each with its error. They are
	// retried next round; the others went ahead.
	Failed []error
	// A dry run (CheckMigration) changes nothing: Created, Dropped and
	// Detached list what the round would do, Moved and Expired count the
	// rows it would move and delete, DefaultRows those it would leave.
}

// PartitionRename is a partition made as Name because Taken, its
// PartitionName, belongs to a relation that is no partition of the table.
type PartitionRename struct {
	Taken, Name string
}

// PartitionNameTakenError is a partition that cannot be made: its name,
// and every alternative name, belongs to a relation that is no partition
// of the table (or would be longer than PostgreSQL's 63 bytes). The rows
// of its interval stay in the default partition until the name is freed.
type PartitionNameTakenError struct {
	Table    string // the table as configured
	Name     string // the partition's name (PartitionName), without schema
	Schema   string
	From, To time.Time
	Kind     string // what holds the name: "a table", "a partition of another table", "an index", …
}

func (e *PartitionNameTakenError) Error() string {
	return fmt.Sprintf("cannot create the partition of table %s for [%s, %s): its name %s.%s is taken by %s that is no partition of %s, and no alternative name (%s_1 … %s_9) is free and within 63 bytes; "+
		"its rows stay in the default partition until you rename or drop %s.%s (ALTER TABLE %s RENAME TO …), or attach it if it holds exactly this interval (ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s))",
		e.Table, e.From.Format(time.RFC3339), e.To.Format(time.RFC3339), e.Schema, e.Name, e.Kind, e.Table, e.Name, e.Name,
		e.Schema, e.Name, pgx.Identifier{e.Schema, e.Name}.Sanitize(), e.Table, pgx.Identifier{e.Schema, e.Name}.Sanitize(),
		"'"+e.From.Format(time.RFC3339)+"'", "'"+e.To.Format(time.RFC3339)+"'")
}

// choosePartitionName returns the name the partition of t for [from, to)
// gets: PartitionName(from), or, when a relation that is no partition of
// t has that name (a partition detached by hand, a table or index of its
// own), the first of name_1 … name_9 that no relation has and that fits
// PostgreSQL's 63 bytes; taken is then PartitionName(from). attached
// reports that a partition of t has the name already (another instance
// made it since this round listed the partitions). When no name is free
// it returns a *PartitionNameTakenError.
func (t *Table) choosePartitionName(ctx context.Context, conn *pgconn.PgConn, from, to time.Time) (name, taken string, attached bool, err error) {
	s, _ := t.schemaTable()
	base := t.PartitionName(from)
	look := func(n string) (kind string, child bool, err error) {
		var p params
		p.text(pgx.Identifier{s, n}.Sanitize())
		p.text(t.ident())
		r, err := query(ctx, conn, `SELECT CASE WHEN c.relkind = 'i' OR c.relkind = 'I' THEN 'an index'
	WHEN c.relispartition AND EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid AND i.inhparent = to_regclass($2)) THEN 'self'
	WHEN c.relispartition THEN 'a partition of another table'
	WHEN c.relkind = 'v' OR c.relkind = 'm' THEN 'a view'
	WHEN c.relkind = 'S' THEN 'a sequence'
	ELSE 'a table' END
FROM pg_class c WHERE c.oid = to_regclass($1)`, &p)
		if err != nil {
			return "", false, fmt.Errorf("cannot look up partition name %s of table %s: %w", n, t.Name, err)
		}
		if len(r.Rows) == 0 {
			return "", false, nil
		}
		k := string(r.Rows[0][0])
		return k, k == "self", nil
	}
	kind, child, err := look(base)
	switch {
	case err != nil:
		return "", "", false, err
	case child:
		return base, "", true, nil
	case kind == "":
		return base, "", false, nil
	}
	for i := 1; i <= 9; i++ {
		n := fmt.Sprintf("%s_%d", base, i)
		if len(n) > 63 {
			break
		}
		k, c, err := look(n)
		switch {
		case err != nil:
			return "", "", false, err
		case c:
			return n, base, true, nil
		case k == "":
			return n, base, false, nil
		}
	}
	return "", "", false, &PartitionNameTakenError{Table: t.Name, Name: base, Schema: s, From: from, To: to, Kind: kind}
}

// stepDone records a maintenance step's outcome in m. A failed step is
// retried next round, unless the connection is gone (fatal); a skipped one
// (another session maintains the table) ends the round, as does a fatal
// error: end reports both.
func (m *Maintenance) stepDone(conn *pgconn.PgConn, skipped bool, err error) (end bool, fatal error) {
	switch {
	case err != nil:
		if conn.IsClosed() {
			return true, err
		}
		m.Failed = append(m.Failed, err)
	case skipped:
		m.Skipped = true
		return true, nil
	}
	return false, nil
}

// partInfo is one partition of a table, bounds in Unix seconds.
type partInfo struct {
	name           string // without schema
	from, to       int64
	hasFrom, hasTo bool // false for MINVALUE/MAXVALUE bounds
	isDefault      bool
}

// MaintainPartitions runs one maintenance round of t (with Partitioning)
// as of now, on conn (outside any transaction): it premakes partitions,
// moves rows out of the default partition into partitions made for them,
// drops or detaches expired partitions and, unless it detaches, deletes
// the default partition's rows older than the retention. Each step takes at most
// about lockTimeout to get its locks; a step that cannot is reported in
// Maintenance.Failed and retried next round. It returns an error when t
// cannot be maintained at all (not partitioned as configured, PostgreSQL
// unreachable).
func MaintainPartitions(ctx context.Context, conn *pgconn.PgConn, t *Table, now time.Time, lockTimeout time.Duration) (Maintenance, error) {
	return maintain(ctx, conn, t, now, lockTimeout, false)
}

// maintain is MaintainPartitions; with dryRun it changes nothing and
// reports the partitions it would create and expire (conn may then be
// inside a transaction).
func maintain(ctx context.Context, conn *pgconn.PgConn, t *Table, now time.Time, lockTimeout time.Duration, dryRun bool) (Maintenance, error) {
	var m Maintenance
	if t.Partition == nil {
		return m, fmt.Errorf("cannot maintain the partitions of table %s: it has no partitioning configured", t.Name)
	}
	if err := t.validate(); err != nil {
		return m, err
	}
	p := t.Partition
	parts, err := t.listPartitions(ctx, conn)
	if err != nil {
		return m, err
	}
	iv := p.Interval
	notBefore := p.NotBefore(now)

	// Wanted partitions: premade from now and from the newest row, and one
	// for every interval the default partition holds rows of.
	want := map[time.Time]bool{}
	ahead := func(from time.Time) {
		s := iv.Floor(from)
		for k := 0; k <= p.Premake; k++ {
			want[s] = true
			s = iv.Next(s)
		}
	}
	ahead(now)
	// The next interval's partition is made PremakeLead before it starts
	// whatever premake says: with premake 0 the rows of an interval's
	// first minute would otherwise go to the default partition until the
	// next round moved them.
	want[iv.Floor(now.Add(PremakeLead))] = true
	if newest, ok, err := t.newestPartitionWithRows(ctx, conn, parts); err != nil {
		return m, err
	} else if ok {
		ahead(newest)
	}
	var defName string
	var hours []hourRows
	for _, pi := range parts {
		if pi.isDefault {
			defName = pi.name
		}
	}
	if defName != "" {
		hours, err = t.defaultHours(ctx, conn, defName, notBefore)
		if err != nil {
			return m, err
		}
		for _, h := range hours {
			want[iv.Floor(h.at)] = true
		}
		if n := len(hours); n > 0 {
			ahead(hours[n-1].at) // the newest row is in the default partition
		}
	}
	starts := make([]time.Time, 0, len(want))
	for s := range want {
		if !notBefore.IsZero() && s.Before(notBefore) {
			continue // expired: its rows would be dropped at once
		}
		if t.covered(parts, s, iv.Next(s)) {
			continue
		}
		starts = append(starts, s)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	if dryRun {
		// The rows of the default partition the created partitions take.
		for _, h := range hours {
			if _, ok := slices.BinarySearchFunc(starts, iv.Floor(h.at), func(a, b time.Time) int { return a.Compare(b) }); ok {
				m.Moved += h.rows
			}
		}
	}
	for _, s := range starts {
		if dryRun {
			name, taken, _, err := t.choosePartitionName(ctx, conn, s, iv.Next(s))
			var nt *PartitionNameTakenError
			switch {
			case errors.As(err, &nt):
				m.Failed = append(m.Failed, err)
			case err != nil:
				return m, err
			default:
				m.Created = append(m.Created, name)
				if taken != "" {
					m.Renamed = append(m.Renamed, PartitionRename{Taken: taken, Name: name})
				}
			}
			continue
		}
		name, taken, moved, skipped, err := t.createPartition(ctx, conn, s, iv.Next(s), defName, lockTimeout)
		if end, fatal := m.stepDone(conn, skipped, err); end {
			return m, fatal
		}
		if err == nil && name != "" {
			m.Created = append(m.Created, name)
			m.Moved += moved
			if taken != "" {
				m.Renamed = append(m.Renamed, PartitionRename{Taken: taken, Name: name})
			}
		}
	}

	if !notBefore.IsZero() {
		cutoff := notBefore.Unix()
		for _, pi := range parts {
			if pi.isDefault || !pi.hasTo || pi.to > cutoff {
				continue
			}
			if dryRun {
				if p.Detach {
					m.Detached = append(m.Detached, pi.name)
				} else {
					m.Dropped = append(m.Dropped, pi.name)
				}
				continue
			}
			skipped, err := t.expirePartition(ctx, conn, pi.name, lockTimeout)
			if end, fatal := m.stepDone(conn, skipped, err); end {
				return m, fatal
			}
			switch {
			case err != nil:
			case p.Detach:
				m.Detached = append(m.Detached, pi.name)
			default:
				m.Dropped = append(m.Dropped, pi.name)
			}
		}
	}
	if defName != "" && !notBefore.IsZero() && !p.Detach {
		if dryRun {
			s, _ := t.schemaTable()
			r, err := query(ctx, conn, "SELECT count(*) FROM "+pgx.Identifier{s, defName}.Sanitize()+t.expiredWhere(notBefore), nil)
			if err != nil {
				return m, fmt.Errorf("cannot count the expired rows of %s's default partition: %w", t.Name, err)
			}
			m.Expired, _ = atoi64(r.Rows[0][0])
		} else {
			n, skipped, err := t.expireDefaultRows(ctx, conn, defName, notBefore, lockTimeout)
			if end, fatal := m.stepDone(conn, skipped, err); end {
				return m, fatal
			}
			m.Expired = n
		}
	}
	if defName != "" {
		s, _ := t.schemaTable()
		r, err := query(ctx, conn, "SELECT count(*) FROM (SELECT FROM "+pgx.Identifier{s, defName}.Sanitize()+" LIMIT 1000000) d", nil)
		if err != nil {
			return m, fmt.Errorf("cannot count the rows of %s's default partition: %w", t.Name, err)
		}
		m.DefaultRows, _ = atoi64(r.Rows[0][0])
		if dryRun {
			m.DefaultRows = max(m.DefaultRows-m.Moved-m.Expired, 0) // what the round would leave
		}
	}
	return m, nil
}

// CheckPartitioned verifies that t's target is partitioned by range on
// its Partitioning column, naming the fix otherwise.
func CheckPartitioned(ctx context.Context, conn *pgconn.PgConn, t *Table) error {
	var p params
	p.text(t.ident())
	r, err := query(ctx, conn, `SELECT pt.partstrat, pt.partnatts, coalesce(a.attname::text, '')
FROM pg_partitioned_table pt LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
WHERE pt.partrelid = to_regclass($1)`, &p)
	if err != nil {
		return fmt.Errorf("cannot read how table %s is partitioned: %w", t.Name, err)
	}
	col := t.Partition.Column
	if len(r.Rows) == 0 {
		return fmt.Errorf("cannot maintain partitions of table %s: it is not a partitioned table; remove partition: from its configuration, or recreate it partitioned (PARTITION BY RANGE (%s), or drop it and let create: true make it)",
			t.Name, col)
	}
	row := r.Rows[0]
	if string(row[0]) != "r" || string(row[1]) != "1" || string(row[2]) != col {
		return fmt.Errorf("cannot maintain partitions of table %s: it is not partitioned BY RANGE (%s) alone; set partition.column to its partition column, or remove partition: to write into it without maintenance",
			t.Name, col)
	}
	return nil
}

// listPartitions returns t's partitions with their bounds.
func (t *Table) listPartitions(ctx context.Context, conn *pgconn.PgConn) ([]partInfo, error) {
	if err := CheckPartitioned(ctx, conn, t); err != nil {
		return nil, err
	}
	typ := t.partColumnType()
	bound := func(which string) string {
		return fmt.Sprintf("floor(extract(epoch from ((regexp_match(pg_get_expr(c.relpartbound, c.oid), '%s \\(''([^'']+)''\\)'))[1])::%s))::int8", which, typ)
	}
	var p params
	p.text(t.ident())
	r, err := query(ctx, conn, `SELECT c.relname, c.oid = pt.partdefid, `+bound("FROM")+`, `+bound("TO")+`
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
WHERE i.inhparent = to_regclass($1) ORDER BY 1`, &p)
	if err != nil {
		return nil, fmt.Errorf("cannot list the partitions of table %s: %w", t.Name, err)
	}
	out := make([]partInfo, 0, len(r.Rows))
	for _, row := range r.Rows {
		pi := partInfo{name: string(row[0]), isDefault: string(row[1]) == "t"}
		if row[2] != nil {
			pi.from, _ = atoi64(row[2])
			pi.hasFrom = true
		}
		if row[3] != nil {
			pi.to, _ = atoi64(row[3])
			pi.hasTo = true
		}
		out = append(out, pi)
	}
	return out, nil
}

// covered reports whether a partition of parts overlaps [from, to).
func (t *Table) covered(parts []partInfo, from, to time.Time) bool {
	f, e := from.Unix(), to.Unix()
	for _, pi := range parts {
		if pi.isDefault {
			continue
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if pi.hasFrom {
			lo = pi.from
		}
		if pi.hasTo {
			hi = pi.to
		}
		if lo < e && f < hi {
			return true
		}
	}
	return false
}

// newestPartitionWithRows returns the lower bound of the newest partition
// holding a row: the newest row lies in it. It looks at the partitions
// from the newest down, one cheap EXISTS each, instead of scanning the
// table for max(column).
func (t *Table) newestPartitionWithRows(ctx context.Context, conn *pgconn.PgConn, parts []partInfo) (time.Time, bool, error) {
	var bounded []partInfo
	for _, pi := range parts {
		if !pi.isDefault && pi.hasFrom {
			bounded = append(bounded, pi)
		}
	}
	slices.SortFunc(bounded, func(a, b partInfo) int { return int(b.from - a.from) })
	s, _ := t.schemaTable()
	for _, pi := range bounded {
		r, err := query(ctx, conn, "SELECT EXISTS (SELECT FROM "+pgx.Identifier{s, pi.name}.Sanitize()+")", nil)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("cannot look into partition %s of table %s: %w", pi.name, t.Name, err)
		}
		if string(r.Rows[0][0]) == "t" {
			return time.Unix(pi.from, 0).UTC(), true, nil
		}
	}
	return time.Time{}, false, nil
}

// hourRows is an hour (UTC) the default partition holds rows of, and how
// many.
type hourRows struct {
	at   time.Time
	rows int64
}

// defaultHours returns the hours (UTC) the default partition holds rows
// of, at most 10,000 of them, oldest first, from notBefore on (unless
// zero): rows older than the retention that stay there (detach) must not
// fill the list.
func (t *Table) defaultHours(ctx context.Context, conn *pgconn.PgConn, def string, notBefore time.Time) ([]hourRows, error) {
	s, _ := t.schemaTable()
	col := pgx.Identifier{t.Partition.Column}.Sanitize()
	utc := col
	switch t.partColumnType() {
	case "timestamptz":
		utc = col + " AT TIME ZONE 'UTC'"
	case "date":
		utc = col + "::timestamp"
	}
	since := ""
	if !notBefore.IsZero() {
		since = " AND " + col + " >= " + t.boundLiteral(notBefore)
	}
	r, err := query(ctx, conn, "SELECT floor(extract(epoch from date_trunc('hour', "+utc+")))::int8, count(*) FROM "+
		pgx.Identifier{s, def}.Sanitize()+" WHERE "+col+" IS NOT NULL AND "+col+" > '-infinity' AND "+col+" < 'infinity'"+since+" GROUP BY 1 ORDER BY 1 LIMIT 10000", nil)
	if err != nil {
		return nil, fmt.Errorf("cannot read the rows of %s's default partition: %w", t.Name, err)
	}
	out := make([]hourRows, 0, len(r.Rows))
	for _, row := range r.Rows {
		v, err := atoi64(row[0])
		if err != nil {
			return nil, err
		}
		n, err := atoi64(row[1])
		if err != nil {
			return nil, err
		}
		out = append(out, hourRows{time.Unix(v, 0).UTC(), n})
	}
	return out, nil
}

// beginStep starts a maintenance step's transaction: lock_timeout set and
// the table's maintenance lock tried. It reports false (transaction rolled
// back) when another session holds the lock.
func (t *Table) beginStep(ctx context.Context, conn *pgconn.PgConn, lockTimeout time.Duration) (bool, error) {
	ms := max(lockTimeout.Milliseconds(), 1)
	if err := execSimple(ctx, conn, fmt.Sprintf("BEGIN; SET LOCAL lock_timeout = %d", ms)); err != nil {
		rollback(ctx, conn)
		return false, err
	}
	var p params
	p.text(t.ident())
	r, err := query(ctx, conn, fmt.Sprintf("SELECT pg_try_advisory_xact_lock(%d, hashtext($1))", partitionLockClass), &p)
	if err != nil {
		rollback(ctx, conn)
		return false, err
	}
	if string(r.Rows[0][0]) != "t" {
		rollback(ctx, conn)
		return false, nil
	}
	return true, nil
}

// createPartition creates the partition [from, to) of t, moving into it
// the rows of the default partition def (if any) that belong there. It
// returns the name, or "" when it exists already, and skipped when
// another session maintains t. taken is set when the partition got
// another name because a relation that is no partition of t has
// PartitionName (choosePartitionName); when no name is free the error is
// a *PartitionNameTakenError.
func (t *Table) createPartition(ctx context.Context, conn *pgconn.PgConn, from, to time.Time, def string, lockTimeout time.Duration) (name, taken string, moved int64, skipped bool, err error) {
	ok, err := t.beginStep(ctx, conn, lockTimeout)
	if err != nil {
		return "", "", 0, false, fmt.Errorf("cannot start creating a partition of table %s: %w", t.Name, err)
	}
	if !ok {
		return "", "", 0, true, nil
	}
	fail := func(err error) (string, string, int64, bool, error) {
		rollback(ctx, conn)
		return "", "", 0, false, err
	}
	s, _ := t.schemaTable()
	name, taken, attached, err := t.choosePartitionName(ctx, conn, from, to)
	if err != nil {
		return fail(err)
	}
	if attached {
		// Made by another instance since this round listed the partitions.
		rollback(ctx, conn)
		return "", "", 0, false, nil
	}
	part := pgx.Identifier{s, name}.Sanitize()
	col := pgx.Identifier{t.Partition.Column}.Sanitize()
	lo, hi := t.boundLiteral(from), t.boundLiteral(to)
	check := pgx.Identifier{name + "_bounds"}.Sanitize()
	var b strings.Builder
	// A plain table attached below: CREATE TABLE ... PARTITION OF would
	// take an ACCESS EXCLUSIVE lock on the parent, ATTACH takes SHARE
	// UPDATE EXCLUSIVE. The CHECK constraint proves the bounds, so ATTACH
	// does not scan the new partition.
	fmt.Fprintf(&b, "CREATE TABLE %s (LIKE %s INCLUDING ALL);\n", part, t.ident())
	fmt.Fprintf(&b, "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL AND %s >= %s AND %s < %s);\n", part, check, col, col, lo, col, hi)
	if def != "" {
		d := pgx.Identifier{s, def}.Sanitize()
		fmt.Fprintf(&b, "WITH moved AS (DELETE FROM %s WHERE %s >= %s AND %s < %s RETURNING *) INSERT INTO %s SELECT * FROM moved;\n", d, col, lo, col, hi, part)
	}
	fmt.Fprintf(&b, "ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s);\n", t.ident(), part, lo, hi)
	fmt.Fprintf(&b, "ALTER TABLE %s DROP CONSTRAINT %s", part, check)
	res, err := conn.Exec(ctx, b.String()).ReadAll()
	if err != nil {
		return fail(fmt.Errorf("cannot create partition %s of table %s for [%s, %s): %w", name, t.Name, from.Format(time.RFC3339), to.Format(time.RFC3339), err))
	}
	if def != "" && len(res) >= 3 {
		moved = res[2].CommandTag.RowsAffected()
	}
	if err := execSimple(ctx, conn, "COMMIT"); err != nil {
		return fail(fmt.Errorf("cannot commit partition %s of table %s: %w", name, t.Name, err))
	}
	return name, taken, moved, false, nil
}

// expirePartition detaches partition name from t and, unless t keeps
// detached partitions, drops it.
func (t *Table) expirePartition(ctx context.Context, conn *pgconn.PgConn, name string, lockTimeout time.Duration) (skipped bool, err error) {
	ok, err := t.beginStep(ctx, conn, lockTimeout)
	if err != nil {
		return false, fmt.Errorf("cannot start expiring partition %s of table %s: %w", name, t.Name, err)
	}
	if !ok {
		return true, nil
	}
	s, _ := t.schemaTable()
	part := pgx.Identifier{s, name}.Sanitize()
	var p params
	p.text(part)
	p.text(t.ident())
	r, err := query(ctx, conn, "SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = to_regclass($2)", &p)
	if err != nil {
		rollback(ctx, conn)
		return false, fmt.Errorf("cannot look up partition %s of table %s: %w", name, t.Name, err)
	}
	if string(r.Rows[0][0]) == "0" {
		rollback(ctx, conn) // expired by another instance meanwhile
		return false, nil
	}
	sql := "ALTER TABLE " + t.ident() + " DETACH PARTITION " + part
	if !t.Partition.Detach {
		sql += "; DROP TABLE " + part
	}
	if err := execSimple(ctx, conn, sql+"; COMMIT"); err != nil {
		rollback(ctx, conn)
		return false, fmt.Errorf("cannot expire partition %s of table %s: %w", name, t.Name, err)
	}
	return false, nil
}

// expireDefaultRows deletes the rows of t's default partition def that
// are older than notBefore and returns how many; skipped when another
// session maintains t. A batch decoded while its rows' interval was kept
// can commit after a round dropped that interval's partition: its rows
// then land in the default partition, which no later round makes a
// partition for (the interval is expired).
func (t *Table) expireDefaultRows(ctx context.Context, conn *pgconn.PgConn, def string, notBefore time.Time, lockTimeout time.Duration) (n int64, skipped bool, err error) {
	ok, err := t.beginStep(ctx, conn, lockTimeout)
	if err != nil {
		return 0, false, fmt.Errorf("cannot start expiring rows of table %s's default partition: %w", t.Name, err)
	}
	if !ok {
		return 0, true, nil
	}
	s, _ := t.schemaTable()
	res, err := conn.Exec(ctx, "DELETE FROM "+pgx.Identifier{s, def}.Sanitize()+t.expiredWhere(notBefore)).ReadAll()
	if err != nil {
		rollback(ctx, conn)
		return 0, false, fmt.Errorf("cannot expire rows of table %s's default partition: %w", t.Name, err)
	}
	if err := execSimple(ctx, conn, "COMMIT"); err != nil {
		rollback(ctx, conn)
		return 0, false, fmt.Errorf("cannot commit expiring rows of table %s's default partition: %w", t.Name, err)
	}
	return res[0].CommandTag.RowsAffected(), false, nil
}

// expiredWhere is the WHERE clause of the rows older than notBefore.
func (t *Table) expiredWhere(notBefore time.Time) string {
	return " WHERE " + pgx.Identifier{t.Partition.Column}.Sanitize() + " < " + t.boundLiteral(notBefore)
}

// IsLockTimeout reports whether err is PostgreSQL giving up on a lock
// (lock_timeout): a maintenance step that will be retried.
func IsLockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}
