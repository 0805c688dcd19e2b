package pgcopy

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluice-dev/sluice/internal/devenv"
)

// testPG is the one private PostgreSQL of this package's tests; every test
// gets a fresh database in it.
var testPG *devenv.Postgres

func TestMain(m *testing.M) {
	flag.Parse()
	// Benchmarks run with fsync on so their numbers mean something.
	durable := false
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		durable = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{Durable: durable})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testPG = pg
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newDB creates a database named after the test and returns its URL.
func newDB(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if len(name) > 55 {
		name = name[:55]
	}
	url, err := testPG.CreateDatabase(testCtx(t), "t_"+name)
	if err != nil {
		t.Fatalf("cannot create database: %v", err)
	}
	return url
}

func connect(t testing.TB, url string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(testCtx(t), url)
	if err != nil {
		t.Fatalf("cannot connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func mustExec(t testing.TB, c *pgconn.PgConn, sql string) {
	t.Helper()
	if err := execSimple(testCtx(t), c, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func queryRows(t testing.TB, c *pgconn.PgConn, sql string) [][]string {
	t.Helper()
	r := c.ExecParams(testCtx(t), sql, nil, nil, nil, nil).Read()
	if r.Err != nil {
		t.Fatalf("%s: %v", sql, r.Err)
	}
	out := make([][]string, len(r.Rows))
	for i, row := range r.Rows {
		for _, v := range row {
			if v == nil {
				out[i] = append(out[i], "NULL")
			} else {
				out[i] = append(out[i], string(v))
			}
		}
	}
	return out
}

func queryInt(t testing.TB, c *pgconn.PgConn, sql string) int64 {
	t.Helper()
	rows := queryRows(t, c, sql)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: want one value, got %v", sql, rows)
	}
	v, err := strconv.ParseInt(rows[0][0], 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// Field encoders of the test tuples (the real ones live in codec/).

func fInt8(v int64) []byte  { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
func fText(s string) []byte { return []byte(s) }
func fJSONB(s string) []byte {
	return append([]byte{1}, s...)
}
func fUUID(n uint64) []byte {
	u := make([]byte, 16)
	binary.BigEndian.PutUint64(u[8:], n)
	u[6] = 0x40
	return u
}

// builder assembles a Batch of one partition: tuple i has Kafka offset
// offs[i], and keyed tuples get seq i.
type builder struct {
	table *Table
	topic string
	part  int32
	data  []byte
	ends  []int
	offs  []int64
	dls   []DeadLetter
}

func newBuilder(t *Table, topic string, part int32) *builder {
	return &builder{table: t, topic: topic, part: part}
}

// add appends a tuple; a nil field is NULL.
func (b *builder) add(off int64, fields ...[]byte) {
	n := len(fields)
	if b.table.Keyed() {
		n++
	}
	b.data = AppendTupleHeader(b.data, n)
	if b.table.Keyed() {
		b.data = AppendInt8Field(b.data, int64(len(b.ends)))
	}
	for _, f := range fields {
		if f == nil {
			b.data = binary.BigEndian.AppendUint32(b.data, 0xffffffff)
			continue
		}
		b.data = binary.BigEndian.AppendUint32(b.data, uint32(len(f)))
		b.data = append(b.data, f...)
	}
	b.ends = append(b.ends, len(b.data))
	b.offs = append(b.offs, off)
}

func (b *builder) deadLetter(off int64, value, errText string) {
	b.dls = append(b.dls, DeadLetter{Topic: b.topic, Partition: b.part, Offset: off, Value: []byte(value), Error: errText, Reason: "test"})
}

func (b *builder) batch(epoch, from, to int64) *Batch {
	return &Batch{
		Table:       b.table,
		Data:        b.data,
		Ends:        b.ends,
		Ranges:      []Range{{Topic: b.topic, Partition: b.part, Epoch: epoch, From: from, To: to}},
		DeadLetters: b.dls,
		DeadLetterFor: func(i int, err string) DeadLetter {
			return DeadLetter{Topic: b.topic, Partition: b.part, Offset: b.offs[i], Error: err, Reason: "rejected"}
		},
	}
}

// setup migrates tables into a fresh database and claims partitions 0..n-1
// of topic "t" for group "g".
func setup(t testing.TB, n int32, tables ...*Table) (url string, c *pgconn.PgConn, claims []Claim) {
	t.Helper()
	url = newDB(t)
	c = connect(t, url)
	if err := Migrate(testCtx(t), c, "sluice", tables); err != nil {
		t.Fatal(err)
	}
	var parts []int32
	for i := range n {
		parts = append(parts, i)
	}
	claims, err := ClaimPartitions(testCtx(t), c, "sluice", "g", map[string][]int32{"t": parts})
	if err != nil {
		t.Fatal(err)
	}
	return url, c, claims
}

func newWriter(t testing.TB, url string) *Writer {
	w := NewWriter(url, "sluice", "g")
	w.hooks = &hooks{}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// connectedWriter returns a Writer with its session open and that session's
// backend PID, for tests that watch or terminate it.
func connectedWriter(t testing.TB, url string) (*Writer, uint32) {
	t.Helper()
	w := newWriter(t, url)
	if _, err := w.connect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return w, w.conn.PID()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
