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
//     boxed into []any.
//   - One Batch is one transaction: the offsets rows of its partitions are
//     compare-and-set first (epoch and expected next_offset, which also locks
//     them against a new owner), then the tuples are copied to a staging
//     table and merged into the target (or copied straight into a keyless
//     target), dead letters are inserted, and the transaction commits.
//     Either all of that happens or none of it does.
//   - A stale owner (epoch or next_offset mismatch) gets *FencedError and
//     nothing is written.
//   - A row-level rejection by PostgreSQL (data exception, constraint
//     violation) is bisected under savepoints to find the offending rows;
//     they become dead letters through Batch.DeadLetterFor and the rest commits.
//   - Connection and server failures are returned as errors for which
//     IsRetryable reports true; the caller retries the same Batch. A lost
//     connection during COMMIT is resolved by re-reading the offsets rows.
//   - Deadlocks and serialization failures (40P01, 40001) are retried inside.
//
// The package imports no other part of Sluice.
package pgcopy
