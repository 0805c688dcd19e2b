package codec

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-dev/sluice/internal/devenv"
)

// One private PostgreSQL serves every test of the package. It starts on
// first use (fuzz workers never need it) and TestMain stops it.
var testPG struct {
	once sync.Once
	pg   *devenv.Postgres
	url  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testPG.pg != nil {
		testPG.pg.Stop()
	}
	os.Exit(code)
}

// pgConn returns a new connection to the shared test database, in UTC.
func pgConn(t testing.TB) *pgx.Conn {
	t.Helper()
	testPG.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		testPG.pg, testPG.err = devenv.StartPostgres(ctx, devenv.PostgresOptions{})
		if testPG.err == nil {
			testPG.url, testPG.err = testPG.pg.CreateDatabase(ctx, "codec")
		}
	})
	if testPG.err != nil {
		t.Fatalf("cannot start the test PostgreSQL: %v", testPG.err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testPG.url)
	if err != nil {
		t.Fatalf("cannot connect to the test PostgreSQL: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// copyHeader is the binary COPY signature, flags and header extension length.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// appendTuple frames fields (as AppendFields produces them) as one tuple.
func appendTuple(dst []byte, n int, fields []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	return append(dst, fields...)
}

// copyTuples streams framed tuples into table with binary COPY.
func copyTuples(ctx context.Context, conn *pgx.Conn, table string, tuples []byte) error {
	var buf bytes.Buffer
	buf.Write(copyHeader)
	buf.Write(tuples)
	buf.Write([]byte{0xFF, 0xFF})
	_, err := conn.PgConn().CopyFrom(ctx, &buf, "COPY "+table+" FROM STDIN (FORMAT binary)")
	return err
}

// splitFields checks that b holds exactly n well-formed fields and returns
// them, nil for NULL.
func splitFields(b []byte, n int) ([][]byte, error) {
	var out [][]byte
	for i := 0; i < n; i++ {
		if len(b) < 4 {
			return nil, fmt.Errorf("field %d: %d bytes left, want a length word", i, len(b))
		}
		l := int32(binary.BigEndian.Uint32(b))
		b = b[4:]
		if l == -1 {
			out = append(out, nil)
			continue
		}
		if l < 0 || int(l) > len(b) {
			return nil, fmt.Errorf("field %d: length %d with %d bytes left", i, l, len(b))
		}
		out = append(out, b[:l:l])
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d bytes after %d fields", len(b), n)
	}
	return out, nil
}

func mustExec(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
