package ingest

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestOffsetsReachLogEnd is a regression test for two stalls found by the
// chaos tests (internal/chaos): a partition whose last records were dead
// letters, and a partition whose last entry was a transaction marker, never
// stored the log end offset: the first waited for a good record to age its
// batch, the second never saw the marker. Lag stayed above 0 for good.
func TestOffsetsReachLogEnd(t *testing.T) {
	e := newEnv(t, 2)
	e.start(e.config(fmt.Sprintf(tableYAML, "ignore")))

	// Good records, then bad ones at the tail of the stream.
	e.produce(item(1, "a"), item(2, "b"), item(3, "c"))
	e.waitDrained(3)
	e.produce(&kgo.Record{Key: []byte("bad-1"), Value: []byte(`{"id":`)},
		&kgo.Record{Key: []byte("bad-2"), Value: []byte(`{"n":1}`)})
	e.waitDrained(e.logEnd())

	// A committed and an aborted transaction: each ends in a marker.
	txp, err := kgo.NewClient(kgo.SeedBrokers(e.broker.Addrs()...), kgo.DefaultProduceTopic("events"),
		kgo.TransactionalID("tail-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer txp.Close()
	for i, commit := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort} {
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			if err := txp.ProduceSync(e.ctx, item(100+10*i+j, "txn")).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := txp.EndTransaction(e.ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	end := e.logEnd()
	if end < 5+3+3+2 {
		t.Fatalf("log end offsets sum to %d, want at least 13 (5 plain records, 6 in transactions, a marker per transaction and partition)", end)
	}
	e.waitDrained(end)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 6 {
		t.Fatalf("target holds %d rows, want 6 (3 plain, 3 committed in a transaction)", n)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 2 {
		t.Fatalf("dead_letters holds %d rows, want 2", n)
	}
}
