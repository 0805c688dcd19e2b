// Package pgcopy writes batches of pre-encoded binary COPY tuples into
// PostgreSQL exactly once.
//
// The package name is pgcopy (a package named copy would shadow the
// builtin); import it as pgcopy.
//
// Contract:
//
//   - Tuples arrive already encoded (int16 field count, then fields) in one
//     byte slice; the package frames them with the binary COPY header and
//     trailer and streams them through pgconn.PgConn.CopyFrom. No row is ever
//     boxed into []any. Keyed tables' tuples start with an int8 seq field
//     (strictly increasing within the batch); see Table.
//   - Migrate creates <schema>.offsets, <schema>.dead_letters and the targets
//     marked Create, and checks every target (columns, types, a unique index
//     on exactly the key) with errors that name the fix.
//   - ClaimPartitions bumps owner_epoch; the epoch is the fencing token that
//     every Range carries.
//   - One Batch is one transaction: the offsets rows of its partitions are
//     compare-and-set first in one statement (epoch and expected
//     next_offset, which also locks them against a new owner), then the
//     tuples are copied to a per-connection temporary staging table and
//     merged into the target in key order (DISTINCT ON key, ON CONFLICT per
//     Policy), or copied straight into a keyless target; dead letters are
//     inserted and the transaction commits. Either all of that happens or
//     none of it does. Under PolicyIgnore the keyed merge is replaced by
//     the direct path (direct.go): duplicates dropped in Go, existing keys
//     probed, the rest copied straight into the target, with a fallback to
//     the merge on a concurrent unique violation or deadlock. With a
//     KeyFilter (Batch.Seen, keyfilter.go) only the keys it may hold are
//     probed; a unique violation then reruns the batch probing every key.
//     The filter never decides correctness, only how many keys are probed.
//   - Change streams (ops.go): a keyed Batch may carry one RowOp per tuple
//     (Batch.Ops: RowUpsert, RowDelete) and one mask per tuple of columns
//     that keep their stored value (Batch.Unchanged, at most 64 columns).
//     Per key, in seq order: if the key has a delete, its stored row is
//     deleted, unless Table.OffsetColumn is set and the stored row's value
//     is not lower than the last delete's (both non-NULL); then the upserts
//     after the last delete compete as usual (first wins under
//     PolicyIgnore, last under PolicyUpdate) and the winner is inserted,
//     or merged per Policy if the row was kept. Under PolicyUpdate a
//     winner updating a stored row keeps its marked columns; inserted, it
//     has them as sent. Such batches are copied to a second staging table
//     (op and mask as columns, no NOT NULL) and applied by a per-session
//     PL/pgSQL function that walks the keys in key order, deleting and
//     then upserting each, so they lock keys in the same order as the
//     merge; with a KeyFilter the batch claims its keys (inflight.go) and
//     the function first inserts the keys that have no delete and keep
//     no column, and deletes the keys only deleted, by a statement each.
//     They never take the direct path, and neither does a
//     Batch.Truncate, which TRUNCATEs the target after the
//     compare-and-set and before the tuples. A delete on a keyless table
//     is refused; Result.Deleted counts the rows deleted.
//   - A stale owner (epoch or next_offset mismatch) gets *FencedError and
//     nothing is written, dead letters included. A batch already committed
//     by an earlier Write whose answer was lost is recognised (every range
//     stored at To under the same epoch) and reported as Result.Replayed.
//   - A row-level rejection by PostgreSQL (data exception, class 22;
//     integrity violation, class 23) reruns the transaction under
//     savepoints: COPY errors name their tuple and it is rejected directly,
//     other failures are bisected, O(k log n) statements for k bad tuples.
//     That transaction is rolled back, the rejected tuples become dead
//     letters through Batch.DeadLetterFor, called with no transaction open,
//     and one more transaction commits the rest with them.
//   - Connection and server failures are returned as errors for which
//     IsRetryable reports true; the next Write reconnects and the caller
//     retries the same Batch. A lost connection during COMMIT is resolved by
//     re-reading the offsets rows.
//   - Deadlocks and serialization failures (40P01, 40001) are retried inside
//     Write with jittered backoff. Merges and unclaimed ops batches lock
//     keys in one global order and do not deadlock on each other's keys;
//     a direct batch (keys sorted by their bytes in Go) may, where that
//     order differs from PostgreSQL's, and then falls back to the merge.
//     A claimed ops batch applies its plain keys first: within a process
//     claims keep batches that share keys apart, and across instances a
//     deadlock is retried.
//
// A Writer owns one connection and is not safe for concurrent use.
//
// The package imports no other part of Sluice.
package pgcopy
