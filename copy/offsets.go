package pgcopy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Claim is the stored state of one partition for a consumer group.
type Claim struct {
	Topic      string
	Partition  int32
	Epoch      int64 // owner_epoch; 0 when no row exists
	NextOffset int64 // -1: nothing stored yet
	// ResetFrom is the owner epoch that ResetOffset took the partition
	// from, when no claim came after it (0: none). An owner fenced under
	// that epoch lost the partition to a reset, not to another owner, and
	// may claim it again (ReclaimReset).
	ResetFrom int64
}

func offsetsTable(schema string) string {
	return pgx.Identifier{schema, "offsets"}.Sanitize()
}

// ClaimPartitions makes the caller the owner of the given partitions: it
// upserts each offsets row, incrementing owner_epoch (new rows start at
// epoch 1 with next_offset -1), in one statement that locks the rows in
// (topic, partition) order so concurrent claims cannot deadlock. The
// returned epoch is the caller's fencing token for Range.Epoch; a Write
// still in flight for an older epoch either commits before the claim (and
// the claim returns its next_offset) or is fenced.
func ClaimPartitions(ctx context.Context, conn *pgconn.PgConn, schema, group string, tps map[string][]int32) ([]Claim, error) {
	type tp struct {
		topic string
		part  int32
	}
	var all []tp
	for t, ps := range tps {
		for _, p := range ps {
			all = append(all, tp{t, p})
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	slices.SortFunc(all, func(a, b tp) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.part, b.part))
	})
	all = slices.Compact(all)
	var p params
	p.text(group)
	p.partitions(len(all), func(i int) (string, int32) { return all[i].topic, all[i].part })
	sql := `INSERT INTO ` + offsetsTable(schema) + ` AS o (group_id, topic, partition, next_offset, owner_epoch, updated_at)
SELECT $1, v.t, v.p, -1, 1, now() FROM unnest($2::text[], $3::int4[]) AS v(t, p) ORDER BY v.t, v.p
ON CONFLICT (group_id, topic, partition) DO UPDATE SET owner_epoch = o.owner_epoch + 1, reset_from = NULL, updated_at = now()
RETURNING o.topic, o.partition, o.owner_epoch, o.next_offset, 0`
	r, err := query(ctx, conn, sql, &p)
	if err != nil {
		return nil, fmt.Errorf("cannot claim %d partitions for group %s in %s: %w", len(all), group, offsetsTable(schema), err)
	}
	claims, err := parseClaims(r.Rows)
	if err != nil {
		return nil, err
	}
	sortClaims(claims)
	return claims, nil
}

// ReadOffsets returns every stored partition of group, sorted by topic and
// partition.
func ReadOffsets(ctx context.Context, conn *pgconn.PgConn, schema, group string) ([]Claim, error) {
	var p params
	p.text(group)
	r, err := query(ctx, conn, "SELECT topic, partition, owner_epoch, next_offset, coalesce(reset_from, 0) FROM "+offsetsTable(schema)+
		" WHERE group_id = $1 ORDER BY topic, partition", &p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the offsets of group %s from %s: %w", group, offsetsTable(schema), err)
	}
	return parseClaims(r.Rows)
}

// ResetOffset is the operator's command for a halted partition: it stores
// next (>= 0) as the partition's next offset and bumps owner_epoch, so a
// running owner is fenced and the next claim starts at next. It keeps the
// epoch it took the partition from in reset_from (Claim.ResetFrom), so the
// fenced owner can tell the reset from another owner's claim. It returns
// what was stored before (Epoch 0, NextOffset -1: no row), so that the
// change can be reported and undone, and the new owner epoch.
func ResetOffset(ctx context.Context, conn *pgconn.PgConn, schema, group, topic string, partition int32, next int64) (old Claim, epoch int64, err error) {
	old = Claim{Topic: topic, Partition: partition, NextOffset: -1}
	if next < 0 {
		return old, 0, fmt.Errorf("cannot reset %s/%d to offset %d: use an offset >= 0", topic, partition, next)
	}
	// The old row is read under the same lock as the update, so that what
	// is reported is what the reset replaced, not a commit earlier.
	if err := execSimple(ctx, conn, "BEGIN"); err != nil {
		return old, 0, fmt.Errorf("cannot reset the offset of %s/%d for group %s: %w", topic, partition, group, err)
	}
	old, epoch, err = resetOffset(ctx, conn, schema, group, topic, partition, next)
	if err == nil {
		err = execSimple(ctx, conn, "COMMIT")
	}
	if err != nil {
		rollback(ctx, conn)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42703" {
			err = fmt.Errorf("%w; %s predates this version: run sluice migrate first", err, offsetsTable(schema))
		}
		return old, 0, fmt.Errorf("cannot reset the offset of %s/%d for group %s: %w", topic, partition, group, err)
	}
	return old, epoch, nil
}

// resetOffset is ResetOffset's work inside its transaction.
func resetOffset(ctx context.Context, conn *pgconn.PgConn, schema, group, topic string, partition int32, next int64) (old Claim, epoch int64, err error) {
	old = Claim{Topic: topic, Partition: partition, NextOffset: -1}
	var p params
	p.text(group)
	p.text(topic)
	p.int4(partition)
	r, err := query(ctx, conn, "SELECT topic, partition, owner_epoch, next_offset, coalesce(reset_from, 0) FROM "+offsetsTable(schema)+
		" WHERE group_id = $1 AND topic = $2 AND partition = $3 FOR UPDATE", &p)
	if err != nil {
		return old, 0, err
	}
	rows, err := parseClaims(r.Rows)
	if err != nil {
		return old, 0, err
	}
	if len(rows) == 1 {
		old = rows[0]
	}
	p.int8(next)
	r, err = query(ctx, conn, `INSERT INTO `+offsetsTable(schema)+` AS o (group_id, topic, partition, next_offset, owner_epoch, updated_at)
VALUES ($1, $2, $3, $4, 1, now())
ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, owner_epoch = o.owner_epoch + 1,
	reset_from = coalesce(o.reset_from, o.owner_epoch), updated_at = now()
RETURNING o.owner_epoch`, &p)
	if err != nil {
		return old, 0, err
	}
	if len(r.Rows) != 1 || len(r.Rows[0]) != 1 {
		return old, 0, errors.New("cannot parse the reset offsets row: expected one epoch")
	}
	epoch, err = atoi64(r.Rows[0][0])
	return old, epoch, err
}

// ReclaimReset claims again a partition that ResetOffset took from its
// owner under epoch: it bumps owner_epoch, and returns the new claim (at
// the offset the reset stored) and true, only if no claim came after the
// reset. Otherwise another owner holds the partition, nothing changes and
// it returns false: the caller is a zombie, as for any fenced commit.
func ReclaimReset(ctx context.Context, conn *pgconn.PgConn, schema, group, topic string, partition int32, epoch int64) (Claim, bool, error) {
	var p params
	p.text(group)
	p.text(topic)
	p.int4(partition)
	p.int8(epoch)
	r, err := query(ctx, conn, `UPDATE `+offsetsTable(schema)+` AS o SET owner_epoch = o.owner_epoch + 1, reset_from = NULL, updated_at = now()
WHERE o.group_id = $1 AND o.topic = $2 AND o.partition = $3 AND o.reset_from = $4
RETURNING o.topic, o.partition, o.owner_epoch, o.next_offset, 0`, &p)
	if err != nil {
		return Claim{}, false, fmt.Errorf("cannot claim %s/%d again after its reset for group %s: %w", topic, partition, group, err)
	}
	claims, err := parseClaims(r.Rows)
	if err != nil || len(claims) == 0 {
		return Claim{}, false, err
	}
	return claims[0], true, nil
}

// readClaims returns what is stored for the partitions of ranges, in the
// order of ranges; a partition without a row gets Epoch 0, NextOffset -1.
func readClaims(ctx context.Context, conn *pgconn.PgConn, schema, group string, ranges []Range) ([]Claim, error) {
	var p params
	p.text(group)
	p.partitions(len(ranges), func(i int) (string, int32) { return ranges[i].Topic, ranges[i].Partition })
	res, err := query(ctx, conn, `SELECT v.t, v.p, coalesce(o.owner_epoch, 0), coalesce(o.next_offset, -1), coalesce(o.reset_from, 0)
FROM unnest($2::text[], $3::int4[]) WITH ORDINALITY AS v(t, p, n)
LEFT JOIN `+offsetsTable(schema)+` o ON o.group_id = $1 AND o.topic = v.t AND o.partition = v.p
ORDER BY v.n`, &p)
	if err != nil {
		return nil, fmt.Errorf("cannot read the offsets of %d partitions of group %s: %w", len(ranges), group, err)
	}
	return parseClaims(res.Rows)
}

func parseClaims(rows [][][]byte) ([]Claim, error) {
	claims := make([]Claim, 0, len(rows))
	for _, row := range rows {
		if len(row) != 5 {
			return nil, errors.New("cannot parse an offsets row: expected 5 columns")
		}
		part, err := atoi64(row[1])
		if err != nil {
			return nil, err
		}
		epoch, err := atoi64(row[2])
		if err != nil {
			return nil, err
		}
		next, err := atoi64(row[3])
		if err != nil {
			return nil, err
		}
		from, err := atoi64(row[4])
		if err != nil {
			return nil, err
		}
		claims = append(claims, Claim{Topic: string(row[0]), Partition: int32(part), Epoch: epoch, NextOffset: next, ResetFrom: from})
	}
	return claims, nil
}

func sortClaims(c []Claim) {
	slices.SortFunc(c, func(a, b Claim) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
}
