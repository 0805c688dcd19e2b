package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Keys in flight: two Writers of one process that insert the same new
// key at once collide in the unique index: the second COPY waits for the
// first transaction, then fails with a unique violation and its whole
// batch is rerun (a null-keyed topic puts a key's duplicates on partitions
// that other workers own, so this is common). A direct batch therefore
// claims its keys' hashes on the table's KeyFilter before its transaction
// begins. Each hash has a queue of the batches that claimed it, in claim
// order; a batch touches a key in PostgreSQL only once the batches before
// it in that key's queue have ended:
//
//  1. The keys whose queue is empty are the batch's at once. The others
//     are set aside (Result.Deferred): neither probed nor copied.
//  2. Its own keys are probed and copied as usual.
//  3. Before COMMIT, it waits for the batches before it in the set-aside
//     keys' queues to end, then merges those keys' tuples through the
//     staging table (ON CONFLICT: whichever way those batches ended, the
//     merge finds the key stored or inserts it). They are few: the keys
//     the batches in flight share.
//
// So batches sharing keys copy at the same time, and a later one waits
// only for the earlier's commit, at its own. A batch waits only for
// batches that claimed before it, so waits cannot form a cycle; and a
// batch ends (releases its claim, waking those after it) only once the
// batches it waited for have ended, even when it failed, so a batch that
// wakes finds every earlier holder of its keys gone. Should the wait
// outlast deferWait (a wait cycle through PostgreSQL, which only tables
// written outside the claims, Batch.Also, could make), the attempt ends
// with errDeferTimeout, releasing its locks, and is rerun. Hash collisions
// only set a key aside needlessly. Other processes' keys still collide,
// and the rerun handles them.

// flight is one batch's claim.
type flight struct {
	done chan struct{}
}

// inFlight maps key hashes to the last batch in their queue.
type inFlight struct {
	mu   sync.Mutex
	last map[uint64]*flight
}

// errDeferTimeout ends a direct attempt that waited too long for the
// batches holding its set-aside keys; Write reruns the batch.
var errDeferTimeout = errors.New("keys set aside for another batch of this process")

// deferWait bounds the wait for the batches holding a batch's set-aside
// keys; past it the attempt ends (errDeferTimeout), releasing its locks.
const deferWait = 30 * time.Second

// claim queues a new flight on every hash of hs, and returns it with the
// positions in hs of the hashes whose queue was not empty (appended to
// contested) and the flights before it in those queues, each once
// (appended to owners).
func (f *KeyFilter) claim(hs []uint64, contested []int32, owners []*flight) (*flight, []int32, []*flight) {
	k := &f.flying
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.last == nil {
		k.last = map[uint64]*flight{}
	}
	fl := &flight{done: make(chan struct{})}
	for j, h := range hs {
		switch o := k.last[h]; o {
		case nil:
			k.last[h] = fl
		case fl:
		default:
			k.last[h] = fl
			contested = append(contested, int32(j))
			if !slices.Contains(owners, o) {
				owners = append(owners, o)
			}
		}
	}
	return fl, contested, owners
}

// release ends fl's claim on the hashes of each of hss and wakes the
// flights queued after it. The caller must have seen the flights before
// it end (awaitOwners), unless ctx ended.
func (f *KeyFilter) release(fl *flight, hss ...[]uint64) {
	k := &f.flying
	k.mu.Lock()
	for _, hs := range hss {
		for _, h := range hs {
			if k.last[h] == fl {
				delete(k.last, h)
			}
		}
	}
	k.mu.Unlock()
	close(fl.done)
}

// awaitOwners waits until every flight of owners has ended, or wait (when
// positive) has passed (errDeferTimeout).
func awaitOwners(ctx context.Context, owners []*flight, wait time.Duration) error {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for _, o := range owners {
		select {
		case <-o.done:
		case <-timeout:
			return fmt.Errorf("%w were still in flight after %v", errDeferTimeout, wait)
		case <-ctx.Done():
			return fmt.Errorf("cannot write batch: %w (waiting for another writer's batch holding the same keys)", ctx.Err())
		}
	}
	return nil
}
