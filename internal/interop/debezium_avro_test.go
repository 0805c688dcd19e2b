package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/devenv"
)

// TestDebeziumAvroPython: Debezium change events framed by Confluent's
// Python AvroProducer (the serializer AvroConverter's framing matches:
// magic byte, schema id, Avro datum; key and value schemas registered
// under TOPIC-key and TOPIC-value) land in a converter: avro table as the
// source's final state: creates, updates with the TOAST placeholder,
// deletes by before and by the record key, tombstones and a message.
func TestDebeziumAvroPython(t *testing.T) {
	if out, err := exec.Command(python, "-c", "import confluent_kafka, avro").CombinedOutput(); err != nil {
		t.Skipf("Confluent's Python client is not installed (%v: %s); install it with: %s", err, bytes.TrimSpace(out), installHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	const topic = "shop.public.orders"
	url, broker, reg := embedded(t, ctx, pg, "dbz_avro", topic, 1)

	dir := t.TempDir()
	var s struct{ Produced int64 }
	runScript(t, ctx, &s, "debezium_avro.py", strings.Join(broker.Addrs(), ","), reg.URL(), topic, dir)
	ends, err := devenv.LogEnds(ctx, broker.Addrs(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if ends[0] != s.Produced {
		t.Fatalf("the log holds %d records, the script produced %d", ends[0], s.Produced)
	}

	bs, _ := json.Marshal(broker.Addrs())
	y := fmt.Sprintf(`kafka:
  brokers: %s
  group: sluice-interop
schema_registry:
  urls: [%q]
postgres:
  url: %q
  max_conns: 2
batch:
  max_rows: 16
  max_age: 50ms
metrics:
  listen: 127.0.0.1:0
tables:
  - name: replica.orders
    topics: [%s]
    format: debezium
    converter: avro
    create: true
    key: [id]
    guard: lsn
    columns:
      - {name: id, type: int8, path: id}
      - {name: name, type: text, path: name}
      - {name: qty, type: int2, path: qty}
      - {name: price, type: numeric, path: price}
      - {name: updated_at, type: timestamp, path: updated_at}
      - {name: ship_date, type: date, path: ship_date}
      - {name: created_tz, type: timestamptz, path: created_tz}
      - {name: lsn, type: int8, source: debezium.source.lsn}
`, bs, reg.URL(), url, topic)
	cfg, err := ingest.Parse([]byte(y), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if _, err := db.Exec(ctx, `CREATE SCHEMA replica`); err != nil {
		t.Fatal(err)
	}
	land(t, ctx, cfg, db, topic, ends)

	var want []string
	readLines(t, filepath.Join(dir, "expected.jsonl"), func(b []byte) {
		var r map[string]string
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		want = append(want, strings.Join([]string{r["id"], r["name"], r["qty"], r["price"], r["updated_at"], r["ship_date"], r["created_tz"]}, "|"))
	})
	rows, err := db.Query(ctx, `SELECT concat_ws('|', id, name, qty, price,
		(extract(epoch FROM updated_at) * 1000000)::int8, ship_date - date '1970-01-01',
		(extract(epoch FROM created_tz) * 1000000)::int8) FROM replica.orders ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	rows.Close()
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("replica.orders holds\n%s\nwant\n%s", g, w)
	}
	var dead int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM sluice.dead_letters`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if dead != 0 {
		t.Errorf("%d dead letters", dead)
	}
	t.Logf("%d events, %d rows", s.Produced, len(got))
}
