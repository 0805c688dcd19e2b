package pgcopy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// it in that key's queue have ended their transactions:
//
//  1. The keys whose queue is empty are the batch's at once. The others
//     are set aside (Result.Deferred): neither probed nor copied.
//  2. Its transaction takes its flight's advisory lock (flightLockClass,
//     its id) as it begins; its own keys are probed and copied as usual.
//  3. Before COMMIT, it waits for the transactions of the batches before
//     it in the set-aside keys' queues to end, by taking their locks
//     shared, then merges those keys' tuples through the staging table
//     (ON CONFLICT: whichever way those transactions ended, the merge finds
//     the key stored or inserts it). They are few: the keys the batches in
//     flight share.
//
// So batches sharing keys copy at the same time, and a later one waits
// only for the earlier's commit, at its own. The wait is a lock wait in
// PostgreSQL, not in this process, so PostgreSQL's deadlock detector sees
// it: a cycle through another process's transactions (which hold keys
// this process's batches want, and want theirs) ends in a deadlock error
// and a rerun, never a hang. In this process a batch waits only for
// batches that claimed before it, so the waits of its batches cannot form
// a cycle by themselves. Before its own transaction begins the batch
// waits, in this process, for the other batch's transaction to hold its
// lock (Writer.awaitBegun); that transaction is beginning and waits for
// nothing this batch holds, and the wait, up to deferWait, holds no
// offsets row and cannot meet idle_in_transaction_session_timeout. Hash collisions
// only set a key aside needlessly. Other processes' keys still collide,
// and the rerun handles them.

// flightLockClass is the first key of the two-key advisory lock a direct
// batch's transaction holds while it claims keys (the second is the
// flight's id); it differs from every other lock Sluice takes.
const flightLockClass = 0x736c7566 // "sluf"

// flight is one batch's claim.
type flight struct {
	id    int32
	hs    []keyEnt // its keys' hashes, sorted (claimBufs); unchanged until release
	once  sync.Once
	begun chan struct{} // closed once its transaction holds its lock, or it ended
	done  chan struct{} // closed when the claim ends
}

// began marks fl's transaction as holding its lock.
func (fl *flight) began() { fl.once.Do(func() { close(fl.begun) }) }

// flightIDs numbers flights; it starts at a random point so that two
// processes' flights rarely share an id (a shared id only makes one batch
// wait for an unrelated transaction).
var flightIDs atomic.Int32

func init() { flightIDs.Store(rand.Int32()) }

// inFlight lists the flights of a table, in claim order. A key's queue
// is the flights whose hashes hold its hash: a sorted array per flight,
// which a new claim merge-joins with its own (a map from hash to flight
// cost several times more, in cache misses, per key).
type inFlight struct {
	mu      sync.Mutex
	flights []*flight
}

// errDeferTimeout ends a direct attempt that waited too long for the
// transactions of the batches holding its set-aside keys to begin; Write
// reruns the batch.
var errDeferTimeout = errors.New("keys set aside for another batch of this process")

// deferWait bounds the wait for those transactions to begin.
const deferWait = 30 * time.Second

// claimBufs are a claimer's buffers: the flight keeps its hashes,
// radix-sorted as keyEnts (pre the hash, i its position in hs), in ents or
// tmp until it is released; owner is scratch, by position in hs.
type claimBufs struct {
	ents, tmp []keyEnt
	owner     []*flight
}

// claim queues a new flight on every hash of hs, and returns it with the
// positions in hs of the hashes another flight holds (appended to
// contested, ascending) and, for each, the last flight before it holding
// the hash, each flight once (appended to owners, in the order of the
// positions). b must stay unchanged until the flight is released.
func (f *KeyFilter) claim(hs []uint64, b *claimBufs, contested []int32, owners []*flight) (*flight, []int32, []*flight) {
	b.ents = slices.Grow(b.ents[:0], len(hs))
	for j, h := range hs {
		b.ents = append(b.ents, keyEnt{pre: h, i: int32(j)})
	}
	b.tmp = slices.Grow(b.tmp[:0], len(hs))[:len(hs)]
	srt := radixSort(b.ents, b.tmp)
	b.owner = slices.Grow(b.owner[:0], len(hs))[:len(hs)]
	fl := &flight{id: flightIDs.Add(1), hs: srt, begun: make(chan struct{}), done: make(chan struct{})}
	first := len(contested)
	k := &f.flying
	k.mu.Lock()
	for i := len(k.flights) - 1; i >= 0; i-- { // newest first: the last holder wins
		o := k.flights[i]
		x, y := srt, o.hs
		for len(x) > 0 && len(y) > 0 {
			switch {
			case x[0].pre < y[0].pre:
				x = x[1:]
			case x[0].pre > y[0].pre:
				y = y[1:]
			default:
				if j := x[0].i; b.owner[j] == nil {
					b.owner[j] = o
					contested = append(contested, j)
				}
				x = x[1:]
			}
		}
	}
	k.flights = append(k.flights, fl)
	k.mu.Unlock()
	slices.Sort(contested[first:])
	for _, j := range contested[first:] {
		if o := b.owner[j]; !slices.Contains(owners, o) {
			owners = append(owners, o)
		}
		b.owner[j] = nil
	}
	return fl, contested, owners
}

// release ends fl's claim.
func (f *KeyFilter) release(fl *flight) {
	k := &f.flying
	k.mu.Lock()
	if i := slices.Index(k.flights, fl); i >= 0 {
		k.flights = slices.Delete(k.flights, i, i+1)
	}
	k.mu.Unlock()
	fl.began()
	close(fl.done)
}

// awaitBegun waits until every flight of owners has begun its transaction
// (or ended), or wait has passed (errDeferTimeout), and appends to ids
// the ids of those still in flight, whose locks the caller then takes.
func awaitBegun(ctx context.Context, owners []*flight, wait time.Duration, ids []int32) ([]int32, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for _, o := range owners {
		select {
		case <-o.begun:
		case <-t.C:
			return ids, fmt.Errorf("%w had not begun their transactions after %v", errDeferTimeout, wait)
		case <-ctx.Done():
			return ids, fmt.Errorf("cannot write batch: %w (waiting for another writer's batch holding the same keys)", ctx.Err())
		}
		select {
		case <-o.done:
		default:
			ids = append(ids, o.id)
		}
	}
	return ids, nil
}

// allBegun reports whether every flight of owners has begun (or ended).
func allBegun(owners []*flight) bool {
	for _, o := range owners {
		select {
		case <-o.begun:
		default:
			return false
		}
	}
	return true
}

// waitSQL returns the statement that takes the locks of the flights ids,
// shared: it returns once their transactions have ended.
func waitSQL(ids []int32) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT pg_advisory_xact_lock_shared(%d, x) FROM unnest('{", flightLockClass)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(id)))
	}
	b.WriteString("}'::int4[]) AS x")
	return b.String()
}

// lockSQL returns the statement with which fl's transaction takes its
// lock.
func (fl *flight) lockSQL() string {
	return fmt.Sprintf("SELECT pg_advisory_xact_lock(%d, %d)", flightLockClass, fl.id)
}
