package loadgen

import (
	"bytes"
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	pgOnce sync.Once
	pg     *devenv.Postgres
	pgErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pg != nil {
		pg.Stop()
	}
	os.Exit(code)
}

// testDB returns the URL of a fresh database on the package's private
// Postgres, started on first use.
func testDB(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Postgres")
	}
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pg, pgErr = devenv.StartPostgres(ctx, devenv.PostgresOptions{})
	})
	if pgErr != nil {
		t.Fatalf("cannot start Postgres: %v", pgErr)
	}
	url, err := pg.CreateDatabase(context.Background(), name)
	if err != nil {
		t.Fatalf("cannot create database %s: %v", name, err)
	}
	return url
}

// testBroker starts a kfake broker with topic "events" (4 partitions) that
// accepts batches up to 4 MiB.
func testBroker(t *testing.T) []string {
	t.Helper()
	b, err := devenv.StartBroker(devenv.BrokerOptions{
		Topics:     []string{"events"},
		Partitions: 4,
		Extra:      []kfake.Opt{kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4194304"})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}

// consume reads topic from the start until it has want records, then makes
// sure no more arrive within a short grace period.
func consume(t *testing.T, addrs []string, topic string, committedOnly bool, want int) []*kgo.Record {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committedOnly {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso),
		kgo.FetchMaxPartitionBytes(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(out), want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	// Nothing beyond want: a short poll must come back empty.
	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if extra := cl.PollFetches(short).Records(); len(extra) > 0 || len(out) > want {
		t.Fatalf("consumed %d records, want exactly %d", len(out)+len(extra), want)
	}
	slices.SortFunc(out, func(a, b *kgo.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out
}

// checkConsumed compares consumed records with the generator's stream,
// keeping only the records keep accepts: per partition, the same records in
// the same order, and every key always in one partition.
func checkConsumed(t *testing.T, o Options, n int64, got []*kgo.Record, keep func(*Generator, *Rec) bool) {
	t.Helper()
	part := map[string]int32{}
	byPart := map[int32][]*kgo.Record{}
	for _, r := range got {
		if p, ok := part[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", r.Key, p, r.Partition)
		}
		part[string(r.Key)] = r.Partition
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	o.Records = n
	g := NewGenerator(o)
	var rec Rec
	pos := map[int32]int{}
	for g.Next(&rec) {
		if !keep(g, &rec) {
			continue
		}
		p, ok := part[string(rec.Key)]
		if !ok {
			t.Fatalf("record %d (%s, key %s) was not consumed", rec.Index, rec.Kind, rec.Key)
		}
		list := byPart[p]
		if pos[p] >= len(list) {
			t.Fatalf("partition %d ends before record %d", p, rec.Index)
		}
		c := list[pos[p]]
		pos[p]++
		if !bytes.Equal(c.Key, rec.Key) || !bytes.Equal(c.Value, rec.Value) || len(c.Headers) != len(rec.Headers) {
			t.Fatalf("partition %d offset %d: got key %s (%d bytes), want record %d key %s (%d bytes)",
				p, c.Offset, c.Key, len(c.Value), rec.Index, rec.Key, len(rec.Value))
		}
		for k, h := range rec.Headers {
			if c.Headers[k].Key != h.Key || !bytes.Equal(c.Headers[k].Value, h.Value) {
				t.Fatalf("record %d: header %v, want %v", rec.Index, c.Headers[k], h)
			}
		}
	}
	for p, list := range byPart {
		if pos[p] != len(list) {
			t.Fatalf("partition %d has %d records beyond the generator's", p, len(list)-pos[p])
		}
	}
}

func committed(g *Generator, r *Rec) bool { return !g.TxnAborted(r.Txn) }
