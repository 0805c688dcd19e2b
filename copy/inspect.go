package pgcopy

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// This file reads what the appliance stored, for the operator's commands
// (sluice status, sluice dead-letters): offsets rows with their age, and
// dead letters by table, reason and filters. Cold paths.

// OffsetRow is one stored offsets row.
type OffsetRow struct {
	Topic      string
	Partition  int32
	NextOffset int64 // -1: claimed, nothing committed yet
	Epoch      int64
	UpdatedAt  time.Time // last claim or commit
}

// ReadOffsetRows returns the offsets rows of group, by topic and partition.
func ReadOffsetRows(ctx context.Context, conn *pgconn.PgConn, schema, group string) ([]OffsetRow, error) {
	var p params
	p.text(group)
	r, err := query(ctx, conn, `SELECT topic, partition, next_offset, owner_epoch, (extract(epoch FROM updated_at) * 1e6)::int8
FROM `+offsetsTable(schema)+` WHERE group_id = $1 ORDER BY topic, partition`, &p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the offsets of group %s from %s: %w", group, offsetsTable(schema), err)
	}
	out := make([]OffsetRow, 0, len(r.Rows))
	for _, row := range r.Rows {
		var n [4]int64
		for i := range n {
			if n[i], err = atoi64(row[i+1]); err != nil {
				return nil, err
			}
		}
		out = append(out, OffsetRow{Topic: string(row[0]), Partition: int32(n[0]), NextOffset: n[1], Epoch: n[2], UpdatedAt: time.UnixMicro(n[3])})
	}
	return out, nil
}

// ReasonRejected is the reason of a dead letter PostgreSQL refused: its
// stored error starts with RejectedPrefix.
const (
	ReasonRejected = "rejected_by_postgres"
	RejectedPrefix = "rejected by PostgreSQL: "
)

// DeadLetterFilter selects dead letters of one group. Zero values select
// everything, except Partition, FromOffset and ToOffset, which are -1 for
// any.
type DeadLetterFilter struct {
	Group  string
	Target string // the target table, e.g. public.items (a template's as it expanded it)
	// Reason is a codec reason (malformed_json, wrong_type, …) or
	// rejected_by_postgres, matched against the stored error's text (a
	// reason is not stored on its own): errors start with it, or name it
	// after "column …: " or a path.
	Reason               string
	Topic                string
	Partition            int32
	FromOffset, ToOffset int64 // inclusive
	Since, Until         time.Time
}

// AnyDeadLetter returns a filter of group that selects every dead letter.
func AnyDeadLetter(group string) DeadLetterFilter {
	return DeadLetterFilter{Group: group, Partition: -1, FromOffset: -1, ToOffset: -1}
}

var reasonNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// where appends the filter's conditions to p and returns them as SQL.
func (f *DeadLetterFilter) where(p *params) (string, error) {
	var c []string
	arg := func() string { return "$" + strconv.Itoa(len(p.oids)) }
	p.text(f.Group)
	c = append(c, "group_id = "+arg())
	if f.Target != "" {
		p.text(f.Target)
		c = append(c, "target = "+arg())
	}
	switch {
	case f.Reason == "":
	case f.Reason == ReasonRejected:
		c = append(c, "starts_with(error, '"+strings.TrimSpace(RejectedPrefix)+"')")
	case reasonNameRE.MatchString(f.Reason):
		p.text(`(^|: )` + f.Reason + `: `)
		c = append(c, "error ~ "+arg())
	default:
		return "", fmt.Errorf("cannot filter by reason %q: a reason is a lower-case word such as malformed_json, wrong_type or rejected_by_postgres", f.Reason)
	}
	if f.Topic != "" {
		p.text(f.Topic)
		c = append(c, "topic = "+arg())
	}
	if f.Partition >= 0 {
		p.int4(f.Partition)
		c = append(c, "partition = "+arg())
	}
	if f.FromOffset >= 0 {
		p.int8(f.FromOffset)
		c = append(c, `"offset" >= `+arg())
	}
	if f.ToOffset >= 0 {
		p.int8(f.ToOffset)
		c = append(c, `"offset" <= `+arg())
	}
	if !f.Since.IsZero() {
		p.int8(f.Since.UnixMicro())
		c = append(c, "received_at >= 'epoch'::timestamptz + "+arg()+" * interval '1 microsecond'")
	}
	if !f.Until.IsZero() {
		p.int8(f.Until.UnixMicro())
		c = append(c, "received_at < 'epoch'::timestamptz + "+arg()+" * interval '1 microsecond'")
	}
	return strings.Join(c, " AND "), nil
}

// StoredDeadLetter is a row of the dead-letter table.
type StoredDeadLetter struct {
	Group, Target, Topic string
	Partition            int32
	Offset               int64
	Key, Value           []byte // nil: NULL
	Headers              []byte // JSON text (codec.AppendHeadersJSON's shape), nil: NULL
	Error                string
	ReceivedAt           time.Time
}

// DeadLetterID names a dead letter within its group.
type DeadLetterID struct {
	Target, Topic string
	Partition     int32
	Offset        int64
}

// ID returns d's identity.
func (d *StoredDeadLetter) ID() DeadLetterID {
	return DeadLetterID{Target: d.Target, Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}
}

const deadLetterColumns = `group_id, target, topic, partition, "offset", key, value, headers::text, error, (extract(epoch FROM received_at) * 1e6)::int8`

// ListDeadLetters returns up to limit dead letters that match f and come
// after after (nil: from the start), ordered by target, topic, partition
// and offset: pass the last one returned to read the next page.
func ListDeadLetters(ctx context.Context, conn *pgconn.PgConn, schema string, f DeadLetterFilter, after *DeadLetterID, limit int) ([]StoredDeadLetter, error) {
	return listDeadLetters(ctx, conn, schema, f, after, limit, "")
}

func listDeadLetters(ctx context.Context, conn *pgconn.PgConn, schema string, f DeadLetterFilter, after *DeadLetterID, limit int, lock string) ([]StoredDeadLetter, error) {
	var p params
	where, err := f.where(&p)
	if err != nil {
		return nil, err
	}
	if after != nil {
		p.text(after.Target)
		p.text(after.Topic)
		p.int4(after.Partition)
		p.int8(after.Offset)
		n := len(p.oids)
		where += fmt.Sprintf(` AND (target, topic, partition, "offset") > ($%d, $%d, $%d, $%d)`, n-3, n-2, n-1, n)
	}
	sql := "SELECT " + deadLetterColumns + " FROM " + deadLettersTable(schema) + " WHERE " + where +
		` ORDER BY target, topic, partition, "offset" LIMIT ` + strconv.Itoa(max(limit, 1)) + lock
	// Key and value come back in binary (raw bytes), the rest as text.
	formats := []int16{0, 0, 0, 0, 0, 1, 1, 0, 0, 0}
	r := conn.ExecParams(ctx, sql, p.args(), p.oids, p.formats, formats).Read()
	if r.Err != nil {
		return nil, fmt.Errorf("cannot read dead letters of group %s from %s: %w", f.Group, deadLettersTable(schema), r.Err)
	}
	out := make([]StoredDeadLetter, 0, len(r.Rows))
	for _, row := range r.Rows {
		part, err := atoi64(row[3])
		if err != nil {
			return nil, err
		}
		off, err := atoi64(row[4])
		if err != nil {
			return nil, err
		}
		us, err := atoi64(row[9])
		if err != nil {
			return nil, err
		}
		out = append(out, StoredDeadLetter{
			Group: string(row[0]), Target: string(row[1]), Topic: string(row[2]), Partition: int32(part), Offset: off,
			Key: clone(row[5]), Value: clone(row[6]), Headers: clone(row[7]), Error: string(row[8]), ReceivedAt: time.UnixMicro(us),
		})
	}
	return out, nil
}

// DeadLetterSource is a target and a topic that dead letters are stored
// for.
type DeadLetterSource struct{ Target, Topic string }

// DeadLetterSources returns the targets and topics of the dead letters f
// selects, ordered by target and topic.
func DeadLetterSources(ctx context.Context, conn *pgconn.PgConn, schema string, f DeadLetterFilter) ([]DeadLetterSource, error) {
	var p params
	where, err := f.where(&p)
	if err != nil {
		return nil, err
	}
	r, err := query(ctx, conn, "SELECT DISTINCT target, topic FROM "+deadLettersTable(schema)+" WHERE "+where+" ORDER BY target, topic", &p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the targets of the dead letters of group %s from %s: %w", f.Group, deadLettersTable(schema), err)
	}
	out := make([]DeadLetterSource, len(r.Rows))
	for i, row := range r.Rows {
		out[i] = DeadLetterSource{Target: string(row[0]), Topic: string(row[1])}
	}
	return out, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func deadLettersTable(schema string) string {
	return pgx.Identifier{schema, "dead_letters"}.Sanitize()
}

// DeadLetterCount is the number of dead letters of one target and reason.
type DeadLetterCount struct {
	Target, Reason string
	Count          int64
	Newest         time.Time
}

// CountDeadLetters counts group's dead letters by target and reason.
// reasons are the reasons to recognise in the stored errors (besides
// rejected_by_postgres); an error naming none of them counts as "other".
func CountDeadLetters(ctx context.Context, conn *pgconn.PgConn, schema, group string, reasons []string) ([]DeadLetterCount, error) {
	for _, r := range reasons {
		if !reasonNameRE.MatchString(r) {
			return nil, fmt.Errorf("cannot count by reason %q: not a reason name", r)
		}
	}
	var p params
	p.text(group)
	p.text(`(?:^|: )(` + strings.Join(reasons, "|") + `): `)
	r, err := query(ctx, conn, `SELECT target, reason, count(*), (extract(epoch FROM max(received_at)) * 1e6)::int8 FROM (
	SELECT target, received_at, CASE WHEN starts_with(error, '`+strings.TrimSpace(RejectedPrefix)+`') THEN '`+ReasonRejected+`'
		ELSE coalesce(substring(error FROM $2), 'other') END AS reason
	FROM `+deadLettersTable(schema)+` WHERE group_id = $1) d
GROUP BY target, reason ORDER BY target, reason`, &p)
	if err != nil {
		return nil, fmt.Errorf("cannot count the dead letters of group %s in %s: %w", group, deadLettersTable(schema), err)
	}
	out := make([]DeadLetterCount, 0, len(r.Rows))
	for _, row := range r.Rows {
		n, err := atoi64(row[2])
		if err != nil {
			return nil, err
		}
		us, err := atoi64(row[3])
		if err != nil {
			return nil, err
		}
		out = append(out, DeadLetterCount{Target: string(row[0]), Reason: string(row[1]), Count: n, Newest: time.UnixMicro(us)})
	}
	return out, nil
}

// DeleteDeadLettersBefore deletes up to limit dead letters received before
// cutoff, of every group, and returns how many it deleted. Retention calls
// it until it deletes fewer than limit: small transactions never hold many
// row locks or much WAL at once.
func DeleteDeadLettersBefore(ctx context.Context, conn *pgconn.PgConn, schema string, cutoff time.Time, limit int) (int64, error) {
	var p params
	p.int8(cutoff.UnixMicro())
	t := deadLettersTable(schema)
	r, err := query(ctx, conn, `DELETE FROM `+t+` WHERE ctid = ANY (ARRAY(
	SELECT ctid FROM `+t+` WHERE received_at < 'epoch'::timestamptz + $1 * interval '1 microsecond' LIMIT `+strconv.Itoa(max(limit, 1))+` FOR UPDATE SKIP LOCKED))`, &p)
	if err != nil {
		return 0, fmt.Errorf("cannot delete dead letters older than %s from %s: %w", cutoff.Format(time.RFC3339), t, err)
	}
	return r.CommandTag.RowsAffected(), nil
}
