package devenv

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestPostgresAndBroker(t *testing.T) {
	ctx := context.Background()
	pg, err := StartPostgres(ctx, PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	url, err := pg.CreateDatabase(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var one int
	if err := c.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("select 1 = %d, %v", one, err)
	}
	c.Close(ctx)
	if err := pg.Restart(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}

	b, err := StartBroker(BrokerOptions{Topics: []string{"t"}, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollFetches(ctx)
	if fs.NumRecords() != 1 {
		t.Fatalf("want 1 record, got %d (%v)", fs.NumRecords(), fs.Errors())
	}
}

// TestBrokerMain runs `sluice broker` with a data directory, produces to it,
// stops it and starts it again: the records survive the restart.
func TestBrokerMain(t *testing.T) {
	dir := t.TempDir()
	port, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	run := func(f func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- BrokerMain(ctx, []string{"--listen", addr, "--data-dir", dir, "--partitions", "2", "--topics", "t"}, io.Discard, io.Discard)
		}()
		f()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	client := func() *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("t"), kgo.DefaultProduceTopic("t"))
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	run(func() {
		cl := client()
		defer cl.Close()
		for i := 0; i < 10; i++ {
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	})
	run(func() {
		cl := client()
		defer cl.Close()
		n := 0
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for n < 10 && ctx.Err() == nil {
			n += cl.PollFetches(ctx).NumRecords()
		}
		if n != 10 {
			t.Fatalf("read %d records after the restart, want 10", n)
		}
	})
}
