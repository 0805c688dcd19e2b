package loadgen

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// expectedCounts replays the stream and counts records by kind, split by
// whether their transaction commits.
func expectedCounts(o Options, n int64) (com, abo KindCounts, txnsAborted int64) {
	o.Records = n
	g := NewGenerator(o)
	var r Rec
	lastTxn := int64(-1)
	for g.Next(&r) {
		if g.TxnAborted(r.Txn) {
			abo[r.Kind]++
			if r.Txn != lastTxn {
				txnsAborted++
			}
		} else {
			com[r.Kind]++
		}
		lastTxn = r.Txn
	}
	return com, abo, txnsAborted
}

func TestProduceConsumeBack(t *testing.T) {
	addrs := testBroker(t)
	o := Options{Seed: 11, Records: 5000, DupRatio: 0.05, Bad: allBad(0.01), MaxValueBytes: 16 << 10,
		Compression: "zstd", ValueCompression: "gzip"}
	var progress bytes.Buffer
	stats, err := Produce(context.Background(), addrs, o, &progress)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := expectedCounts(o, 5000)
	if stats.Records != 5000 || stats.Committed != want || stats.Failed.Total() != 0 || stats.Aborted.Total() != 0 {
		t.Fatalf("stats %+v, want committed %v", stats, want)
	}
	if want[KindOversized] == 0 || want[KindDup] == 0 {
		t.Fatalf("test needs oversized and dup records, got %v", want)
	}
	if !strings.Contains(progress.String(), "loadgen: done: 5000 records") || strings.Contains(progress.String(), "\r") {
		t.Fatalf("progress to a non-terminal should be plain lines ending in a summary:\n%s", progress.String())
	}
	got := consume(t, addrs, "events", false, 5000)
	checkConsumed(t, o, 5000, got, func(*Generator, *Rec) bool { return true })
}

func TestProduceTransactionalAborts(t *testing.T) {
	addrs := testBroker(t)
	o := Options{Seed: 12, Records: 3000, Transactional: true, AbortRatio: 0.3, TxnRecords: 100, DupRatio: 0.05, Compression: "lz4"}
	o.SpreadBad(0.02)
	stats, err := Produce(context.Background(), addrs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	com, abo, txnsAborted := expectedCounts(o, 3000)
	if stats.Committed != com || stats.Aborted != abo || stats.TxnsAborted != txnsAborted || stats.TxnsCommitted != 30-txnsAborted {
		t.Fatalf("stats committed %v aborted %v txns %d/%d; want %v, %v, %d aborted",
			stats.Committed, stats.Aborted, stats.TxnsCommitted, stats.TxnsAborted, com, abo, txnsAborted)
	}
	if abo.Total() == 0 || com.Total() == 0 || len(stats.ForcedAborts) != 0 {
		t.Fatalf("want both committed and aborted records and no forced aborts: %+v", stats)
	}
	// read_committed never sees aborted records...
	got := consume(t, addrs, "events", true, int(com.Total()))
	checkConsumed(t, o, 3000, got, committed)
	// ...though they are in the log.
	all := consume(t, addrs, "events", false, 3000)
	checkConsumed(t, o, 3000, all, func(*Generator, *Rec) bool { return true })
}

func TestProduceRateAndDuration(t *testing.T) {
	addrs := testBroker(t)
	// A rate is a lower bound on the run time (a slow machine only makes it
	// longer), so this cannot flake.
	o := Options{Seed: 13, Records: 600, Rate: 2000, Schema: SchemaNarrow}
	stats, err := Produce(context.Background(), addrs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Elapsed < 250*time.Millisecond {
		t.Fatalf("600 records at 2000/s took %v, want at least 250ms", stats.Elapsed)
	}

	// A duration-bounded run stops by itself, mid-stream, and its stats say
	// exactly which records were sent.
	o = Options{Seed: 14, Duration: 300 * time.Millisecond, Rate: 1000, Transactional: true, TxnRecords: 64, AbortRatio: 0.5, Topic: "timed"}
	stats, err = Produce(context.Background(), addrs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Records == 0 || stats.Records > 600 {
		t.Fatalf("a 300ms run at 1000/s sent %d records", stats.Records)
	}
	com, _, _ := expectedCounts(o, stats.Records)
	if stats.Committed != com {
		t.Fatalf("committed %v, want %v", stats.Committed, com)
	}
	got := consume(t, addrs, "timed", true, int(com.Total()))
	checkConsumed(t, o, stats.Records, got, committed)

	// A cancelled context ends the run cleanly, with everything accounted.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o = Options{Seed: 15, Records: 1000, Topic: "cancelled"}
	stats, err = Produce(ctx, addrs, o, nil)
	if err != nil || !stats.Interrupted || stats.Records != 0 {
		t.Fatalf("cancelled run: %v, %+v", err, stats)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	o := Options{Seed: 99, Records: 10, Bad: map[Kind]float64{KindNUL: 0.1, KindOversized: 0.2}, Transactional: true, AbortRatio: 0.5}
	st := Stats{Records: 10, FailedIndices: []int64{3}, ForcedAborts: []int64{0}}
	st.Committed[KindGood] = 7
	st.Committed[KindNUL] = 1
	path := filepath.Join(t.TempDir(), "m.json")
	if err := WriteManifest(path, NewManifest(o, st, nil)); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	o.EnsureDefaults()
	if m.Options.Seed != 99 || m.Options.Bad[KindNUL] != 0.1 || m.Options.Bad[KindOversized] != 0.2 || !m.Options.Transactional ||
		m.Options.TxnRecords != o.TxnRecords || m.Stats.Committed != st.Committed || m.Stats.FailedIndices[0] != 3 {
		t.Fatalf("manifest round trip: %+v", m)
	}
	// The manifest's generator is the original's.
	var a, b Rec
	ga, gb := NewGenerator(o), NewGenerator(m.Options)
	for ga.Next(&a) {
		gb.Next(&b)
		if !bytes.Equal(a.Value, b.Value) {
			t.Fatalf("record %d differs after the manifest round trip", a.Index)
		}
	}
}

// TestLoadgenMissingTopic: records for a topic the brokers do not have
// (and do not create on write) all fail; sluice loadgen exited 0 after
// "failed 100", and sluice verify then passed an empty table. It now
// fails, naming the topic and --partitions, and still writes the manifest.
func TestLoadgenMissingTopic(t *testing.T) {
	addrs := testBroker(t)
	manifest := filepath.Join(t.TempDir(), "m.json")
	var stdout, stderr bytes.Buffer
	err := LoadgenMain(context.Background(), []string{"--brokers", strings.Join(addrs, ","), "--topic", "nosuch",
		"--records", "20", "--quiet", "--manifest", manifest}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("no error for a topic that does not exist; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	for _, want := range []string{"no record was written to topic nosuch", "all 20 failed", "UNKNOWN_TOPIC_OR_PARTITION", "--partitions N"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	m, rerr := ReadManifest(manifest)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if m.Stats.Failed.Total() != 20 || !strings.Contains(m.Stats.FirstFailure, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("manifest stats: failed %d, first failure %q", m.Stats.Failed.Total(), m.Stats.FirstFailure)
	}
	// The topic the broker has: no error, nothing said of failures.
	stderr.Reset()
	if err := LoadgenMain(context.Background(), []string{"--brokers", strings.Join(addrs, ","), "--topic", "events",
		"--records", "20", "--quiet"}, &stdout, &stderr); err != nil || strings.Contains(stderr.String(), "failed") {
		t.Errorf("existing topic: error %v, stderr %q", err, stderr.String())
	}
}
