package pgcopy

import "sync"

// Keys in flight: two Writers of one process that insert the same new
// key at once collide in the unique index: the second COPY waits for the
// first transaction, then fails with a unique violation and its whole
// batch is rerun (a null-keyed topic puts a key's duplicates on partitions
// that other workers own, so this is common). A direct batch therefore
// claims its keys' hashes on the table's KeyFilter before its transaction
// begins: when another batch of the process holds one of them, it waits
// for that batch to end first, and its probe then finds the key stored.
// A batch claims all its keys at once or none, and waits holding none, so
// claims cannot deadlock; hash collisions only cost a needless wait.
// Other processes' keys still collide, and the rerun handles them.

// flight is one batch's claim.
type flight struct {
	done chan struct{}
}

// inFlight maps key hashes to the batch holding them.
type inFlight struct {
	mu     sync.Mutex
	owners map[uint64]*flight
}

// claim registers hs for a new flight and returns it, or returns nil and
// the channel of a flight holding one of hs, to wait on before trying
// again.
func (f *KeyFilter) claim(hs []uint64) (*flight, <-chan struct{}) {
	k := &f.flying
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, h := range hs {
		if o := k.owners[h]; o != nil {
			return nil, o.done
		}
	}
	if k.owners == nil {
		k.owners = map[uint64]*flight{}
	}
	fl := &flight{done: make(chan struct{})}
	for _, h := range hs {
		k.owners[h] = fl
	}
	return fl, nil
}

// release ends fl's claim on hs and wakes its waiters.
func (f *KeyFilter) release(fl *flight, hs []uint64) {
	k := &f.flying
	k.mu.Lock()
	for _, h := range hs {
		if k.owners[h] == fl {
			delete(k.owners, h)
		}
	}
	k.mu.Unlock()
	close(fl.done)
}
