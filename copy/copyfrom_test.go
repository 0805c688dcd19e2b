package pgcopy

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// endlessRows is a COPY source that never ends: each Read yields one text
// row, slowly, and busy tells whether a Read is under way.
type endlessRows struct {
	busy atomic.Bool
}

func (r *endlessRows) Read(p []byte) (int, error) {
	r.busy.Store(true)
	defer r.busy.Store(false)
	time.Sleep(20 * time.Millisecond)
	return copy(p, "1\n"), nil
}

// When PostgreSQL ends the connection in the middle of a COPY, pgconn's
// CopyFrom returns without waiting for the goroutine that reads the source;
// copyFrom must still guarantee that the source is not read after it
// returns, since the writer reuses the rows at once (found by
// internal/chaos as a panic in tupleReader.Read).
func TestCopyFromStopsReadingWhenTheConnectionDies(t *testing.T) {
	url := newDB(t)
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE TABLE sink (v int)"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	pid := conn.PID()

	src := &endlessRows{}
	done := make(chan error, 1)
	var readingAtReturn atomic.Bool
	go func() {
		_, err := copyFrom(ctx, conn, src, "COPY sink (v) FROM STDIN")
		readingAtReturn.Store(src.busy.Load())
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("copyFrom succeeded on a terminated connection")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("copyFrom did not return after its connection was terminated")
	}
	if readingAtReturn.Load() {
		t.Fatal("copyFrom returned while its source was still being read")
	}
}
