package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// FencedError reports that another owner holds (some of) the partitions of
// a batch, or that their stored offsets differ from Range.From. Nothing of
// the batch was written. The caller must drop its in-memory work for these
// partitions and re-read their offsets.
type FencedError struct {
	Ranges []Range // the mismatched ranges
	Stored []Claim // what is stored for them, in the same order (Epoch 0: no row)
}

func (e *FencedError) Error() string {
	var b strings.Builder
	b.WriteString("cannot commit batch: fenced by a newer owner or a moved offset (")
	for i, r := range e.Ranges {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s/%d: have epoch %d next_offset %d", r.Topic, r.Partition, r.Epoch, r.From)
		if i < len(e.Stored) {
			fmt.Fprintf(&b, ", stored epoch %d next_offset %d", e.Stored[i].Epoch, e.Stored[i].NextOffset)
		}
	}
	b.WriteString("); drop the partitions' work and reclaim them")
	return b.String()
}

// retryableError marks an error the caller resolves by retrying the batch.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// IsRetryable reports whether retrying the same Batch (after a backoff) may
// succeed: lost connections, server shutdown and restart, sessions ended
// by idle_in_transaction_session_timeout or transaction_timeout, too many
// connections, resource exhaustion, I/O errors. It is false for
// *FencedError, for row-level data errors, for configuration errors and
// for a cancelled context.
//
// Retrying is always safe: a batch that did commit is recognised by the
// offsets compare-and-set and reported as Result.Replayed.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var fe *FencedError
	if errors.As(err, &fe) {
		return false
	}
	var re *retryableError
	if errors.As(err, &re) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch c := pe.Code; {
		case strings.HasPrefix(c, "08"), // connection exception
			strings.HasPrefix(c, "53"),  // insufficient resources (too many connections, disk full, out of memory)
			strings.HasPrefix(c, "57P"), // admin/crash shutdown, cannot connect now
			strings.HasPrefix(c, "58"),  // system error (I/O)
			c == "25P03", c == "25P04",  // session ended by idle_in_transaction_session_timeout, transaction_timeout
			c == "40001", c == "40P01", // conflicts that outlived the retries inside Write
			c == "55P03": // lock not available
			return true
		}
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.As(err, &ne), errors.As(err, &ce), pgconn.SafeToRetry(err):
		return true
	}
	return false
}

// errReplayed reports that every range is already at To under the same
// epoch: only this owner can have done that, with this very batch, in an
// earlier Write whose outcome was lost.
var errReplayed = errors.New("batch already committed")

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// isRowLevel reports whether err rejects a row's content: a data exception
// (class 22), an integrity constraint violation (class 23, which includes
// check, not-null, unique, foreign key and exclusion violations) or a
// PL/pgSQL error (class P0: RAISE EXCEPTION without an ERRCODE, ASSERT, a
// STRICT query), which is what a trigger refusing a row raises. Bisection
// can find the rows responsible. A trigger that wants the batch retried
// instead raises an error of another class.
func isRowLevel(err error) bool {
	c := pgCode(err)
	return strings.HasPrefix(c, "22") || strings.HasPrefix(c, "23") || strings.HasPrefix(c, "P0")
}

// isConflict reports a deadlock or serialization failure: the transaction
// did nothing wrong and succeeds when run again.
func isConflict(err error) bool {
	c := pgCode(err)
	return c == "40P01" || c == "40001"
}
