package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/devenv"
)

// python is Debian's interpreter: another python3 earlier on PATH would not
// see Debian's python3-* modules.
const python = "/usr/bin/python3"

const installHint = "apt-get install python3-confluent-kafka python3-avro python3-protobuf python3-jsonschema python3-requests"

// recordsPerFormat is how many good records (new or re-sent) the script
// produces per format, before its bad records.
const recordsPerFormat = 500

type col struct {
	name, typ, path string
}

// cols builds columns from "name type [path]" lines; the path defaults to
// the name.
func cols(specs ...string) []col {
	var cs []col
	for _, s := range specs {
		f := strings.Fields(s)
		c := col{name: f[0], typ: f[1], path: f[0]}
		if len(f) > 2 {
			c.path = f[2]
		}
		cs = append(cs, c)
	}
	return cs
}

var interopFormats = []struct {
	format string
	seed   int
	cols   []col
}{
	{"avro", 1, cols(
		"id int8", "name text", "qty int4", "big int8", "ratio float8", "score float4", "active bool",
		"payload bytea", "checksum bytea", "color text", "tags jsonb", "counts jsonb",
		"counts_a int8 counts.a", "note text", "maybe int8", "address jsonb", "city text address.city",
		"ts timestamptz", "day date", "price numeric", "uid uuid", "items jsonb", "mixed text",
		"ts_us timestamptz", "tod text", "amount8 numeric",
	)},
	{"protobuf", 2, cols(
		"id int8", "name text", "qty int4", "big int8", "counter numeric", "ratio float8", "score float4",
		"active bool", "payload bytea", "color text", "tags jsonb", "nums jsonb", "counts jsonb",
		"address jsonb", "city text address.city", "ts timestamptz", "label text", "code int8",
		"note text", "maybe int8", "flag bool", "opt int4", "ratio32 float4", "items jsonb",
		"wait text", "wait_us int8 wait", "meta jsonb",
	)},
	{"json_schema", 3, cols(
		"id int8", "name text", "qty int4", "big int8", "ratio float8", "active bool", "payload bytea",
		"color text", "tags jsonb", "counts jsonb", "counts_a int8 counts.a", "note text",
		"address jsonb", "city text address.city", "ts timestamptz", "day date", "price numeric",
		"uid uuid",
	)},
}

// TestConfluentPython: records written by Confluent's Python serializers
// (python3-confluent-kafka) land exactly once and value for value; see the
// package comment.
func TestConfluentPython(t *testing.T) {
	if out, err := exec.Command(python, "-c", "import confluent_kafka, avro, google.protobuf, jsonschema").CombinedOutput(); err != nil {
		t.Skipf("Confluent's Python client is not installed (%v: %s); install it with: %s", err, bytes.TrimSpace(out), installHint)
	}
	ctx := context.Background()
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	for _, f := range interopFormats {
		t.Run(f.format, func(t *testing.T) {
			start := time.Now()
			s := runFormat(t, pg, f.format, f.seed, f.cols)
			t.Logf("%s: %d records (%d rows, %d re-sends, %d bad) produced by Python in %.1fs, landed in %.1fs; %.1fs in all",
				f.format, s.Produced, s.Unique, s.Duplicates, s.Bad, s.produceTime.Seconds(), s.drainTime.Seconds(), time.Since(start).Seconds())
		})
	}
}

// summary is the last line produce.py prints.
type summary struct {
	Produced, Unique, Duplicates, Bad int64
	SchemaID                          int `json:"schema_id"`

	produceTime, drainTime time.Duration
}

type badRecord struct {
	Kind, Reason string
	Partition    int32
	Offset       int64
	Value        *string // hex; nil for a tombstone
}

func runFormat(t *testing.T, pg *devenv.Postgres, format string, seed int, cs []col) summary {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	topic := "interop_" + format
	table := "public." + topic
	url, broker, reg := embedded(t, ctx, pg, topic, topic, 4)

	// Produce with Python.
	dir := t.TempDir()
	began := time.Now()
	var s summary
	runScript(t, ctx, &s, "produce.py", format,
		strings.Join(broker.Addrs(), ","), reg.URL(), topic, strconv.Itoa(recordsPerFormat), strconv.Itoa(seed), dir)
	s.produceTime = time.Since(began)
	expected := readExpected(t, filepath.Join(dir, "expected.jsonl"))
	bad := readBad(t, filepath.Join(dir, "bad.jsonl"))
	if int64(len(expected)) != s.Unique || int64(len(bad)) != s.Bad {
		t.Fatalf("produce.py wrote %d expected rows and %d bad records, its summary says %d and %d", len(expected), len(bad), s.Unique, s.Bad)
	}
	if s.Duplicates == 0 || s.Bad < 7 {
		t.Fatalf("the workload lacks re-sends or bad records: %+v", s)
	}
	checkRegistered(t, reg.URL(), topic+"-value", format, s.SchemaID)
	brokers := broker.Addrs()
	ends, err := devenv.LogEnds(ctx, brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	var inLog int64
	for _, n := range ends {
		inLog += n
	}
	if inLog != s.Produced || s.Unique+s.Duplicates+s.Bad != s.Produced {
		t.Fatalf("the log holds %d records; produce.py says %d produced = %d rows + %d re-sends + %d bad", inLog, s.Produced, s.Unique, s.Duplicates, s.Bad)
	}

	// Land them with the appliance.
	began = time.Now()
	cfg, err := ingest.Parse(configYAML(brokers, reg.URL(), url, format, table, topic, cs), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	s.drainTime = land(t, ctx, cfg, db, topic, ends).Sub(began)

	checkRows(t, ctx, db, table, cs, expected)
	checkDeadLetters(t, ctx, db, table, bad)
	return s
}

// embedded creates database db in pg and starts the embedded broker, with
// topic of partitions partitions, and the embedded Schema Registry, all
// stopped when the test ends. It returns the database's URL.
func embedded(t *testing.T, ctx context.Context, pg *devenv.Postgres, db, topic string, partitions int) (string, *devenv.Broker, *devenv.Registry) {
	t.Helper()
	url, err := pg.CreateDatabase(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	broker, err := devenv.StartBroker(devenv.BrokerOptions{Topics: []string{topic}, Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return url, broker, reg
}

// runScript runs the Python script testdata/name with args and reads the
// JSON summary it prints last into summary.
func runScript(t *testing.T, ctx context.Context, summary any, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join("testdata", name)}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v (a missing module? %s)\n%s", name, strings.Join(args, " "), err, installHint, stderr.String())
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], summary); err != nil {
		t.Fatalf("cannot parse the summary of %s: %v\nstdout:\n%s\nstderr:\n%s", name, err, out, stderr.String())
	}
}

// land runs the appliance with cfg until the offsets stored in db reach
// ends, the log ends of topic, then stops it, failing the test when it
// fails. It returns when the offsets reached ends.
func land(t *testing.T, ctx context.Context, cfg *ingest.Config, db *pgx.Conn, topic string, ends map[int32]int64) time.Time {
	t.Helper()
	app, err := ingest.New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	appCtx, stopApp := context.WithCancel(ctx)
	appDone := make(chan error, 1) // for WaitStored
	finished := make(chan struct{})
	var runErr error
	go func() {
		runErr = app.Run(appCtx)
		appDone <- runErr
		close(finished)
	}()
	stop := func() error {
		stopApp()
		<-finished
		return runErr
	}
	defer stop()
	if err := devenv.WaitStored(ctx, db, cfg.Postgres.Schema, cfg.Kafka.Group, topic, ends, appDone, 50*time.Millisecond, nil); err != nil {
		t.Fatalf("waiting for the appliance to commit every record: %v", err)
	}
	stored := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("the appliance failed: %v", err)
	}
	return stored
}

// checkRegistered checks that the serializer registered its schema itself
// (auto.register.schemas), with the well-known Protobuf imports as
// references under their own subjects.
func checkRegistered(t *testing.T, registryURL, subject, format string, id int) {
	t.Helper()
	resp, err := http.Get(registryURL + "/subjects/" + subject + "/versions/latest")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		ID         int    `json:"id"`
		SchemaType string `json:"schemaType"`
		References []struct {
			Name, Subject string
		} `json:"references"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("cannot read %s from the registry: %s %v", subject, resp.Status, err)
	}
	want := map[string]string{"avro": "", "protobuf": "PROTOBUF", "json_schema": "JSON"}[format]
	if got.ID != id || got.SchemaType != want && !(want == "" && got.SchemaType == "AVRO") {
		t.Errorf("%s holds schema id %d of type %q; the records name id %d, want type %q", subject, got.ID, got.SchemaType, id, want)
	}
	if format == "protobuf" {
		var refs []string
		for _, r := range got.References {
			refs = append(refs, r.Name+"="+r.Subject)
		}
		slices.Sort(refs)
		if w := []string{
			"google/protobuf/duration.proto=google/protobuf/duration.proto",
			"google/protobuf/struct.proto=google/protobuf/struct.proto",
			"google/protobuf/timestamp.proto=google/protobuf/timestamp.proto",
			"google/protobuf/wrappers.proto=google/protobuf/wrappers.proto",
		}; !slices.Equal(refs, w) {
			t.Errorf("%s references %v, want %v", subject, refs, w)
		}
	}
}

func configYAML(brokers []string, registryURL, pgURL, format, table, topic string, cs []col) []byte {
	bs, _ := json.Marshal(brokers) // JSON is YAML
	var b strings.Builder
	fmt.Fprintf(&b, `kafka:
  brokers: %s
  group: sluice-interop
schema_registry:
  urls: [%q]
postgres:
  url: %q
  max_conns: 2
batch:
  max_rows: 200
  max_age: 50ms
metrics:
  listen: 127.0.0.1:0
tables:
  - name: %s
    topics: [%s]
    format: %s
    create: true
    key: [id]
    on_conflict: ignore
    columns:
`, bs, registryURL, pgURL, table, topic, format)
	for _, c := range cs {
		fmt.Fprintf(&b, "      - {name: %s, type: %s, path: %s", c.name, c.typ, c.path)
		if c.name == "id" {
			b.WriteString(", required: true")
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

// testWriter sends the appliance's warnings to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// readExpected reads the expected rows by id; numbers stay json.Number.
func readExpected(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	rows := map[string]map[string]any{}
	readLines(t, path, func(line []byte) {
		var row map[string]any
		d := json.NewDecoder(bytes.NewReader(line))
		d.UseNumber()
		if err := d.Decode(&row); err != nil {
			t.Fatalf("cannot parse expected row %s: %v", line, err)
		}
		id := fmt.Sprint(row["id"])
		if _, dup := rows[id]; dup {
			t.Fatalf("expected id %s twice", id)
		}
		rows[id] = row
	})
	return rows
}

func readBad(t *testing.T, path string) []badRecord {
	t.Helper()
	var bad []badRecord
	readLines(t, path, func(line []byte) {
		var b badRecord
		if err := json.Unmarshal(line, &b); err != nil {
			t.Fatalf("cannot parse bad record %s: %v", line, err)
		}
		bad = append(bad, b)
	})
	return bad
}

func readLines(t *testing.T, path string, f func([]byte)) {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// checkRows compares every column of every row with the expected rows.
func checkRows(t *testing.T, ctx context.Context, db *pgx.Conn, table string, cs []col, expected map[string]map[string]any) {
	t.Helper()
	for _, set := range []string{"SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET bytea_output = 'hex'"} {
		if _, err := db.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	var sel []string
	for _, c := range cs {
		sel = append(sel, pgx.Identifier{c.name}.Sanitize()+"::text")
	}
	rows, err := db.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	mismatches := 0
	for rows.Next() {
		vals := make([]*string, len(cs))
		dst := make([]any, len(cs))
		for i := range vals {
			dst[i] = &vals[i]
		}
		if err := rows.Scan(dst...); err != nil {
			t.Fatal(err)
		}
		id := *vals[0]
		if seen[id] {
			t.Errorf("id %s landed twice", id)
			continue
		}
		seen[id] = true
		want, ok := expected[id]
		if !ok {
			t.Errorf("id %s landed but was never produced as a good record", id)
			continue
		}
		for i, c := range cs {
			if msg := compare(c.typ, vals[i], want[c.name]); msg != "" {
				mismatches++
				if mismatches <= 20 {
					t.Errorf("id %s column %s (%s, path %s): %s", id, c.name, c.typ, c.path, msg)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if mismatches > 20 {
		t.Errorf("... %d mismatched values in all", mismatches)
	}
	var missing []string
	for id := range expected {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d expected rows missing, e.g. ids %v", len(missing), len(expected), missing[:min(5, len(missing))])
	}
}

// compare returns "" when PostgreSQL's text got matches the expected value
// want for a column of type typ, normalised as the package comment says,
// or what differs.
func compare(typ string, got *string, want any) string {
	if want == nil || got == nil {
		if want == nil && got == nil {
			return ""
		}
		return fmt.Sprintf("got %s, want %s", show(got), showAny(want))
	}
	g := *got
	var w string
	switch typ {
	case "float4", "float8":
		bits := 64
		if typ == "float4" {
			bits = 32
		}
		n, ok := want.(json.Number)
		if !ok {
			return fmt.Sprintf("expected value %v is not a number", want)
		}
		wf, err1 := strconv.ParseFloat(string(n), 64)
		gf, err2 := strconv.ParseFloat(g, bits)
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("got %q, want %s: %v %v", g, n, err1, err2)
		}
		if bits == 32 {
			wf = float64(float32(wf))
		}
		if math.Float64bits(gf) != math.Float64bits(wf) {
			return fmt.Sprintf("got %q, want %s", g, n)
		}
		return ""
	case "jsonb":
		var gv any
		d := json.NewDecoder(strings.NewReader(g))
		d.UseNumber()
		if err := d.Decode(&gv); err != nil {
			return fmt.Sprintf("got %q, which is not JSON: %v", g, err)
		}
		if !jsonEqual(gv, want) {
			wj, _ := json.Marshal(want)
			return fmt.Sprintf("got %s, want %s", g, wj)
		}
		return ""
	case "bool":
		b, ok := want.(bool)
		if !ok {
			return fmt.Sprintf("expected value %v is not a boolean", want)
		}
		w = strconv.FormatBool(b)
	case "bytea":
		h, ok := want.(string)
		if _, err := hex.DecodeString(h); !ok || err != nil {
			return fmt.Sprintf("expected value %v is not hex", want)
		}
		w = `\x` + strings.ToLower(h)
	case "uuid":
		w = strings.ToLower(fmt.Sprint(want))
	case "timestamptz":
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(want))
		if err != nil {
			return fmt.Sprintf("expected value %v is not RFC 3339: %v", want, err)
		}
		w = ts.UTC().Format("2006-01-02 15:04:05.999999-07")
	default: // text, int*, numeric, date: the same text
		w = fmt.Sprint(want)
	}
	if g != w {
		return fmt.Sprintf("got %q, want %q", g, w)
	}
	return ""
}

func show(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strconv.Quote(*s)
}

func showAny(v any) string {
	if v == nil {
		return "NULL"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonEqual compares two JSON values decoded with UseNumber: objects by
// key, arrays in order, numbers by exact decimal value.
func jsonEqual(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || !jsonEqual(av, bv) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !jsonEqual(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, oka := new(big.Rat).SetString(string(a))
		rb, okb := new(big.Rat).SetString(string(b))
		return oka && okb && ra.Cmp(rb) == 0
	default: // string, bool, nil
		return a == b
	}
}

// checkDeadLetters checks that every bad record is a dead letter exactly
// once, with its reason and exact bytes, and that nothing else is.
func checkDeadLetters(t *testing.T, ctx context.Context, db *pgx.Conn, table string, bad []badRecord) {
	t.Helper()
	type where struct {
		p int32
		o int64
	}
	rows, err := db.Query(ctx, `SELECT partition, "offset", value, coalesce(error, '') FROM sluice.dead_letters WHERE target = $1`, table)
	if err != nil {
		t.Fatal(err)
	}
	type letter struct {
		value []byte
		err   string
	}
	got := map[where][]letter{}
	n := 0
	for rows.Next() {
		var w where
		var l letter
		if err := rows.Scan(&w.p, &w.o, &l.value, &l.err); err != nil {
			t.Fatal(err)
		}
		got[w] = append(got[w], l)
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		ls := got[where{b.Partition, b.Offset}]
		if len(ls) != 1 {
			t.Errorf("bad record %s (partition %d offset %d) is %d times in dead_letters, want once", b.Kind, b.Partition, b.Offset, len(ls))
			continue
		}
		l := ls[0]
		if !strings.Contains(l.err, b.Reason) {
			t.Errorf("bad record %s: dead letter error %q, want reason %s", b.Kind, l.err, b.Reason)
		}
		var want []byte
		if b.Value != nil {
			want, _ = hex.DecodeString(*b.Value)
		}
		if (b.Value == nil) != (l.value == nil) || !bytes.Equal(l.value, want) {
			t.Errorf("bad record %s: dead letter value %x, want %x (nil %v)", b.Kind, l.value, want, b.Value == nil)
		}
		t.Logf("dead letter %-22s %s", b.Kind, l.err)
	}
	if n != len(bad) {
		t.Errorf("%d dead letters, want %d (one per bad record)", n, len(bad))
		known := map[where]bool{}
		for _, b := range bad {
			known[where{b.Partition, b.Offset}] = true
		}
		for w, ls := range got {
			if !known[w] {
				t.Errorf("unexpected dead letter at partition %d offset %d: %s\nvalue: %s", w.p, w.o, ls[0].err, ls[0].value)
			}
		}
	}
}
