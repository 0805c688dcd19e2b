package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAbortedNeverLandUnderBackpressure: a backlog of transactions, half of
// them aborted, drained under backpressure (a tiny in-flight budget, so the
// poll loop keeps stopping): rows come from committed transactions only, and
// the stored offsets pass every marker.
//
// Fetches are smaller than an aborted transaction, so most end inside one:
// each must still list the transactions it holds aborted records of
// (devenv.TestFetchCutBySizeListsAbortedTxns).
func TestAbortedNeverLandUnderBackpressure(t *testing.T) {
	// Eight partitions: their limits add up to more than a fetch's, so
	// fetches are cut by their total size as well as by a partition's.
	e := newEnv(t, 8)
	txp, err := kgo.NewClient(kgo.SeedBrokers(e.broker.Addrs()...), kgo.DefaultProduceTopic("events"), kgo.TransactionalID("abort-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer txp.Close()
	pad := strings.Repeat("x", 2000)
	good := 0
	for tx := 0; tx < 60; tx++ {
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		v, end := "commit", kgo.TryCommit
		if tx%2 == 1 {
			v, end = "abort"+pad, kgo.TryAbort
		} else {
			good += 100
		}
		var recs []*kgo.Record
		for j := 0; j < 100; j++ {
			recs = append(recs, item(tx*1000+j, v))
		}
		if err := txp.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txp.EndTransaction(e.ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	cfg.Kafka.FetchMaxBytes = 64 << 10
	cfg.Batch.MaxBytes = 64 << 10
	cfg.Batch.MaxInflightBytes = 256 << 10
	r := e.start(cfg)
	e.waitDrained(e.logEnd())
	if n := e.count(`SELECT count(*) FROM public.items WHERE v <> 'commit'`); n != 0 {
		t.Fatalf("%d rows from aborted transactions landed", n)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != int64(good) {
		t.Fatalf("target holds %d rows, want the %d committed", n, good)
	}
	if r.app.m.fetchPauses.Get() == 0 {
		t.Error("the in-flight budget never stopped polling; the test did not exercise backpressure")
	}
}
