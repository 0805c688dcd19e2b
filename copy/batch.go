package pgcopy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Range is the offset advance of one partition in a Batch.
type Range struct {
	Topic     string
	Partition int32
	Epoch     int64 // the owner's fencing token from ClaimPartitions
	From      int64 // next_offset the caller believes is stored (may be -1)
	To        int64 // the new next_offset: last offset in the batch + 1; not below From, above it for one range of a batch at least
}

// Batch is one transaction's worth of work for one table.
//
// The Writer reads Data, Ends and the keys only during Write and keeps no reference
// to them afterwards.
type Batch struct {
	Table *Table
	Data  []byte // tuples back to back, no header/trailer
	Ends  []int  // Ends[i] = end of tuple i in Data
	// Keys and KeyEnds optionally hold each tuple's key as CutKey cuts it
	// (KeyEnds[i] = end of tuple i's key in Keys); with one per tuple the
	// direct path reads them instead of cutting the keys itself.
	Keys    []byte
	KeyEnds []int32
	// Seen, when set, is the target's KeyFilter, shared by the Writers of
	// the table: the direct path then probes only the keys it may hold,
	// and adds the batch's keys once it commits.
	Seen *KeyFilter
	// Ops, when set, holds one RowOp per tuple; nil means every tuple is
	// an upsert. Keyed tables only: a RowDelete on a keyless table is
	// refused. Per key, in seq order, a batch's deletes and upserts resolve
	// in order: if the key has a delete, its stored row is deleted (subject
	// to the OffsetColumn guard, see Table) and the upserts after the last
	// delete compete as usual (the first wins under PolicyIgnore, the last
	// under PolicyUpdate) for a fresh insert; without a delete nothing
	// changes from plain upserts.
	Ops []RowOp
	// Unchanged, when set, holds one mask per tuple: bit i set means
	// column i (Columns order) keeps its stored value, as for a Debezium
	// unavailable-value placeholder. It matters under PolicyUpdate when
	// the tuple updates a stored row; a tuple inserted (a new key, or one
	// deleted earlier in the batch) has the column as sent, usually NULL.
	// Bits of key columns are ignored, and on a keyless table every tuple
	// is inserted as sent. At most MaxUnchangedColumns columns.
	Unchanged []uint64
	// Truncate empties the target first, in the same transaction, after
	// the offsets compare-and-set and before the tuples (a Debezium
	// truncate event: the caller starts a new batch there). TRUNCATE holds
	// an ACCESS EXCLUSIVE lock on the target until the batch commits, and
	// fails on a target that other tables reference by foreign key.
	Truncate bool
	// Also are batches of other tables written in the same transaction,
	// for records of Ranges' partitions that feed several tables (the
	// caller's routing). They carry no Ranges of their own; each has its
	// own Table, tuples, ops, dead letters and DeadLetterFor. They always
	// go through the staging merge (or straight into a keyless target),
	// never the direct path, and take no Truncate.
	Also        []*Batch
	Ranges      []Range      // one per partition in the batch
	DeadLetters []DeadLetter // found by the decoder; inserted in the same transaction
	// DeadLetterFor makes the dead letter of tuple i, which PostgreSQL
	// refused for the reason err. Write calls it at most once per tuple,
	// between its transactions, never inside one: it may take its time.
	DeadLetterFor func(i int, err string) DeadLetter
}

// Result describes a committed Write.
type Result struct {
	// Rows is the number of tuples handed to the target: len(Ends) minus
	// Rejected. In-batch duplicates and conflicts are counted; see Affected.
	Rows int
	// Affected is the number of rows inserted or updated in the target as
	// reported by PostgreSQL, or -1 when the commit was confirmed by
	// re-reading the offsets after a lost connection.
	Affected int64
	// Also holds the results of Batch.Also, in order (Rows, Affected,
	// Deleted and Rejected; Distinct is -1).
	Also []Result
	// Deleted is the number of stored rows deleted by the batch's
	// RowDelete tuples (rows emptied by Truncate are not counted), or -1
	// when unknown, as for Affected.
	Deleted int64
	// Rejected are the tuples PostgreSQL refused, as dead letters committed
	// with the batch.
	Rejected []DeadLetter
	// Direct is set when the tuples were copied straight into the target
	// (direct.go) rather than merged from the staging table.
	Direct bool
	// Replayed is set when the batch had already been committed by an
	// earlier Write whose outcome was lost; this Write changed nothing and
	// Rejected is unknown.
	Replayed bool
	// Attempts is the number of transactions tried (deadlock and
	// serialization retries, the bisecting rerun after a row-level
	// rejection and, when it rejected tuples, the rerun that commits
	// their dead letters, made in between).
	Attempts int
	// CopyTime is the time of the last attempt from its BEGIN to the end
	// of its COPYs, MergeTime that of its merges (on the direct path under
	// on_conflict update: the update of the stored keys, updateStored)
	// and dead letters, CommitTime that of its COMMIT.
	CopyTime, MergeTime, CommitTime time.Duration
	// Distinct is the number of distinct keys among the tuples of a keyed
	// batch (Rows minus the in-batch duplicates), or -1 when not counted
	// (keyless tables, careful reruns).
	Distinct int
	// ProbedKeys is the number of keys the direct path's probe looked up
	// in the target (all distinct keys without Batch.Seen).
	ProbedKeys int
	// Deferred is the number of keys of a direct batch that another batch
	// of the process held when this one claimed its keys: they were
	// merged once that batch had ended (inflight.go).
	Deferred int
	// ChunkRetries is the number of chunks of a direct batch's COPY that
	// met a key committed meanwhile (23505) and were copied again without
	// it (copyNew).
	ChunkRetries int

	optimistic bool // the direct path probed only the keys Seen may hold
	split      bool // an ops batch that claimed its keys (ops.go)
}

// validate checks the shape of b; it does not parse tuples.
func (b *Batch) validate() error {
	if b.Table == nil {
		return errors.New("cannot write a batch without a table: set Batch.Table")
	}
	if len(b.Ranges) == 0 {
		return fmt.Errorf("cannot write a batch for %s without ranges: every batch must advance the offsets of the partitions it came from", b.Table.Name)
	}
	prev := 0
	for i, e := range b.Ends {
		if e <= prev {
			return fmt.Errorf("cannot write a batch for %s: Ends[%d]=%d does not follow %d; every tuple must be non-empty", b.Table.Name, i, e, prev)
		}
		prev = e
	}
	if prev != len(b.Data) {
		return fmt.Errorf("cannot write a batch for %s: the tuples end at %d but Data holds %d bytes", b.Table.Name, prev, len(b.Data))
	}
	// A batch must move some offset: the offsets are how a commit whose
	// answer was lost is told from one that did not happen (resolveCommit)
	// and a replay from a first write (begin).
	advances := false
	for _, r := range b.Ranges {
		if r.To < r.From {
			return fmt.Errorf("cannot write a batch for %s: the range of %s/%d ends at %d, before it starts (%d)", b.Table.Name, r.Topic, r.Partition, r.To, r.From)
		}
		advances = advances || r.To > r.From
	}
	if !advances {
		return fmt.Errorf("cannot write a batch for %s whose ranges all end where they start: every batch must advance the offset of a partition it came from", b.Table.Name)
	}
	for i := range b.Ranges {
		for j := range i {
			if b.Ranges[i].Topic == b.Ranges[j].Topic && b.Ranges[i].Partition == b.Ranges[j].Partition {
				return fmt.Errorf("cannot write a batch for %s: partition %s/%d has two ranges; merge them", b.Table.Name, b.Ranges[i].Topic, b.Ranges[i].Partition)
			}
		}
	}
	if err := b.validateOps(); err != nil {
		return err
	}
	for i, sb := range b.Also {
		if sb == nil || sb.Table == nil {
			return fmt.Errorf("cannot write a batch for %s: Also[%d] has no table", b.Table.Name, i)
		}
		if len(sb.Ranges) > 0 || len(sb.Also) > 0 || sb.Truncate {
			return fmt.Errorf("cannot write a batch for %s: Also[%d] (%s) has ranges, batches or a truncate of its own; only the first batch does", b.Table.Name, i, sb.Table.Name)
		}
		c := *sb
		c.Ranges = b.Ranges
		if err := c.validate(); err != nil {
			return err
		}
	}
	return nil
}

// canReject reports whether rows PostgreSQL refuses can become dead
// letters: b and each batch of b.Also have a DeadLetterFor.
func (b *Batch) canReject() bool {
	if b.DeadLetterFor == nil {
		return false
	}
	for _, sb := range b.Also {
		if sb.DeadLetterFor == nil {
			return false
		}
	}
	return true
}

func (b *Batch) start(i int) int {
	if i == 0 {
		return 0
	}
	return b.Ends[i-1]
}

// seq returns the seq field of tuple i of a keyed batch.
func (b *Batch) seq(i int) (int64, error) {
	s := b.start(i)
	if b.Ends[i]-s < 14 || binary.BigEndian.Uint32(b.Data[s+2:]) != 8 {
		return 0, fmt.Errorf("cannot read the seq field of tuple %d for %s: a keyed tuple must start with an int8 seq field", i, b.Table.Name)
	}
	return int64(binary.BigEndian.Uint64(b.Data[s+6:])), nil
}
