package ingest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/codec"
)

const validYAML = `
kafka:
  brokers: ["127.0.0.1:9092"]
  group: sluice
postgres:
  url: postgres://postgres@127.0.0.1:5432/postgres
batch:
  max_rows: 1000
  max_bytes: 4MiB
  max_age: 100ms
tables:
  - name: public.events
    topics: [events]
    key: [event_id]
    columns:
      - {name: event_id, type: uuid, path: event_id, required: true}
      - {name: country, type: text, path: attrs.country}
      - {name: src_offset, type: int8, source: kafka.offset}
`

func noEnv(string) string { return "" }

func TestParseValidAndDefaults(t *testing.T) {
	c, err := Parse([]byte(validYAML), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Batch.MaxBytes != 4<<20 || c.Batch.MaxAge.D() != 100*time.Millisecond || c.Batch.MaxRows != 1000 {
		t.Fatalf("batch = %+v", c.Batch)
	}
	if c.Batch.MaxInflightBytes != 256<<20 || c.Postgres.Schema != "sluice" || c.Postgres.MaxConns != DefaultMaxConns() || DefaultMaxConns() < 2 || DefaultMaxConns() > 4 {
		t.Fatalf("defaults not applied: %+v %+v", c.Batch, c.Postgres)
	}
	if c.Batch.HugePages {
		t.Fatal("batch.huge_pages is on by default; it pays only with a roomy memory limit")
	}
	on, err := Parse([]byte(strings.Replace(validYAML, "batch:\n", "batch:\n  huge_pages: true\n", 1)), noEnv)
	if err != nil || !on.Batch.HugePages {
		t.Fatalf("batch.huge_pages: true parsed as %v (err %v)", on != nil && on.Batch.HugePages, err)
	}
	tb := c.Tables[0]
	if tb.Format != "json" || tb.OnConflict != "ignore" || !tb.CreateTarget() || tb.MaxRecordBytes != 1<<20 {
		t.Fatalf("table defaults: %+v", tb)
	}
	pt, err := tb.pgTable()
	if err != nil {
		t.Fatal(err)
	}
	if pt.OffsetColumn != "src_offset" || !pt.Keyed() || len(pt.Columns) != 3 {
		t.Fatalf("pgTable = %+v", pt)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{
		"SLUICE_KAFKA_BROKERS":  "a:1, b:2",
		"SLUICE_POSTGRES_URL":   "postgres://u@h:5/db",
		"SLUICE_KAFKA_GROUP":    "g2",
		"SLUICE_METRICS_LISTEN": "127.0.0.1:0",
	}
	c, err := Parse([]byte(validYAML), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Kafka.Brokers, ",") != "a:1,b:2" || c.Postgres.URL != "postgres://u@h:5/db" ||
		c.Kafka.Group != "g2" || c.Metrics.Listen != "127.0.0.1:0" {
		t.Fatalf("overrides not applied: %+v %+v %+v", c.Kafka, c.Postgres, c.Metrics)
	}
}

func TestParseSizes(t *testing.T) {
	for in, want := range map[string]int64{"32MiB": 32 << 20, "512KiB": 512 << 10, "1GB": 1e9, "4096": 4096, "1.5GiB": 3 << 29, "10 MB": 1e7} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "12XB", "-1", "1e3"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded, want error", in)
		}
	}
}

// TestConfigErrors checks that each mistake fails with a message naming the
// key and the fix.
func TestConfigErrors(t *testing.T) {
	f := func(name, edit, wantKey, wantFix string) {
		t.Helper()
		y := validYAML
		if old, new, ok := strings.Cut(edit, "=>"); ok {
			if !strings.Contains(y, old) {
				t.Fatalf("%s: %q not in the base YAML", name, old)
			}
			y = strings.Replace(y, old, new, 1)
		} else {
			y += edit
		}
		_, err := Parse([]byte(y), noEnv)
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		msg := err.Error()
		if !strings.Contains(msg, wantKey) || !strings.Contains(msg, wantFix) {
			t.Errorf("%s: error %q should name %q and say %q", name, msg, wantKey, wantFix)
		}
	}
	f("unknown top key", "kafak:\n  group: x\n", "kafak", "valid keys here")
	f("unknown nested key", "  group: sluice=>  group: sluice\n  grup: x", "kafka.grup", "valid keys here: brokers")
	f("unknown column key", "path: event_id, required: true}=>path: event_id, requird: true}", "tables[0].columns[0].requird", "valid keys")
	f("bad type", "type: uuid=>type: uuuid", "tables[0].columns[0].type", "use one of")
	f("no columns", `    columns:
      - {name: event_id, type: uuid, path: event_id, required: true}
      - {name: country, type: text, path: attrs.country}
      - {name: src_offset, type: int8, source: kafka.offset}
=>    columns: []
`, "tables[0].columns", "no columns")
	f("bad size", "max_bytes: 4MiB=>max_bytes: 4MiBs", "batch.max_bytes", "MiB")
	f("bad duration", "max_age: 100ms=>max_age: soon", "batch.max_age", "250ms")
	f("bad isolation", "group: sluice=>group: sluice\n  isolation: dirty", "kafka.isolation", "read_committed or read_uncommitted")
	f("bad start offset", "group: sluice=>group: sluice\n  start_offset: middle", "kafka.start_offset", "earliest or latest")
	f("key not a column", "key: [event_id]=>key: [id]", "tables[0].key", "add it to columns")
	f("bad on_conflict", "key: [event_id]=>key: [event_id]\n    on_conflict: replace", "tables[0].on_conflict", "ignore")
	// Without a key, update replaced nothing: every record became a row.
	f("update without key", "key: [event_id]=>on_conflict: update", "tables[0].on_conflict", "has no key; set key")
	f("bad source", "source: kafka.offset=>source: kafka.ofset", "tables[0].columns[2].source", "kafka.offset")
	// source unmapped is the column unmapped: makes, not a source to
	// configure; the list of sources does not offer it.
	f("source unmapped", "source: kafka.offset=>source: unmapped", "tables[0].columns[2].source", "unmapped: src_offset")
	if _, err := Parse([]byte(strings.Replace(validYAML, "source: kafka.offset", "source: kafka.ofset", 1)), noEnv); err == nil || strings.Contains(err.Error(), "unmapped") {
		t.Errorf("an unknown source: %v; want the error to list the sources without unmapped", err)
	}
	f("path and source", "source: kafka.offset=>source: kafka.offset, path: x", "tables[0].columns[2]", "keep one")
	f("broker without port", `brokers: ["127.0.0.1:9092"]=>brokers: ["kafka"]`, "kafka.brokers[0]", "host:port")
	f("inflight below batch", "max_age: 100ms=>max_age: 100ms\n  max_inflight_bytes: 1MiB", "batch.max_inflight_bytes", "raise it")
	// The protocol's fetch size is an int32: 4GiB would reach the client as 0.
	f("fetch too large", "group: sluice=>group: sluice\n  fetch_max_bytes: 4GiB", "kafka.fetch_max_bytes", "at most 2147483647")
	f("bad sasl", "group: sluice=>group: sluice\n  sasl: {mechanism: GSSAPI}", "kafka.sasl.mechanism", "SCRAM-SHA-256")
	f("wrong yaml type", "max_rows: 1000=>max_rows: many", "batch.max_rows", "many")
	f("bad table name", "name: public.events=>name: public.ev-ents", "tables[0].name", "identifier")
	// `events` is `public.events`: two entries would land each record twice.
	f("table twice", "  - name: events\n    topics: [events]\n    columns:\n      - {name: id, type: int8, path: id}\n",
		"tables[1].name", "table public.events is configured twice (as public.events and events); merge the two entries")
	f("template twice", "  - name: \"{topic.0}\"\n    topics: [a.b]\n    columns:\n      - {name: id, type: int8, path: id}\n"+
		"  - name: public.{topic.0}\n    topics: [a.c]\n    columns:\n      - {name: id, type: int8, path: id}\n",
		"tables[2].name", "table public.{topic.0} is configured twice")
	f("guard not a column", "key: [event_id]=>key: [event_id]\n    guard: ver", "tables[0].guard", "not among the columns")
	// A scalar where a list belongs: yaml.v3 alone said only "cannot
	// unmarshal !!str `event_id` into []string", naming no key.
	f("key not a list", "key: [event_id]=>key: event_id", "tables[0].key", "expected a list, e.g. [event_id]")
	f("brokers not a list", `brokers: ["127.0.0.1:9092"]=>brokers: 127.0.0.1:9092`, "kafka.brokers", "expected a list, e.g. [127.0.0.1:9092]")
	f("topics item not a name", "topics: [events]=>topics: [{name: events}]", "tables[0].topics[0]", "cannot unmarshal")
}

// TestGuardTypes: the guard must order as a version, exactly; any other
// type is refused at start, naming the column, its type and the types
// that guard. Under a text guard "10" lost to "9", and the newer record
// was dropped without a word; json has no <, so every batch with a delete
// failed for ever.
func TestGuardTypes(t *testing.T) {
	guards := []string{"int2", "int4", "int8", "numeric", "timestamp", "timestamptz", "date"}
	for _, typ := range codec.TypeNames() {
		y := strings.Replace(validYAML, "key: [event_id]", "key: [event_id]\n    on_conflict: update\n    deletes: true\n    guard: ver", 1)
		y = strings.Replace(y, "source: kafka.offset}", "source: kafka.offset}\n      - {name: ver, type: "+typ+", path: ver}", 1)
		_, err := Parse([]byte(y), noEnv)
		switch {
		case slices.Contains(guards, typ) && err != nil:
			t.Errorf("guard of type %s: %v", typ, err)
		case !slices.Contains(guards, typ) && (err == nil || !strings.Contains(err.Error(), "tables[0].guard: column ver is "+typ+", which does not order as a version") ||
			!strings.Contains(err.Error(), "type int2, int4, int8, numeric, timestamp, timestamptz, date")):
			t.Errorf("guard of type %s: %v, want it refused naming ver, %s and the guard types", typ, err, typ)
		}
	}
}

func TestNoTablesMessage(t *testing.T) {
	_, err := Parse([]byte("kafka: {group: x}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "tables") {
		t.Fatalf("want a tables error, got %v", err)
	}
}

// TestKeyPathColumns: source kafka.key takes a path (a field of the key)
// in the formats that decode keys, and only there.
func TestKeyPathColumns(t *testing.T) {
	withKeyPath := func(format string) string {
		y := strings.Replace(validYAML, "- {name: src_offset, type: int8, source: kafka.offset}",
			"- {name: src_offset, type: int8, source: kafka.offset}\n      - {name: k, type: int8, source: kafka.key, path: id}", 1)
		return strings.Replace(y, "topics: [events]", "topics: [events]\n    format: "+format, 1)
	}
	c, err := Parse([]byte(withKeyPath("json")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := c.Tables[0].codecColumns()
	if err != nil || cols[3].Source != codec.SourceKey || cols[3].Path != "id" {
		t.Fatalf("kafka.key column with a path: %+v, %v", cols, err)
	}
	_, err = Parse([]byte(withKeyPath("debezium")), noEnv)
	if err == nil || !strings.Contains(err.Error(), "tables[0].columns[3]") || !strings.Contains(err.Error(), "format debezium does not decode") {
		t.Errorf("kafka.key path in format debezium: %v", err)
	}
}

// TestMemoryLimit: the soft limit sits 80 MiB below the in-flight budget,
// and never below five eighths of a small one.
func TestMemoryLimit(t *testing.T) {
	cfg := Defaults()
	if got := MemoryLimit(&cfg); got != 176<<20 {
		t.Errorf("default budget: limit %d MiB, want 176", got>>20)
	}
	cfg.Batch.MaxInflightBytes = 128 << 20
	if got := MemoryLimit(&cfg); got != 80<<20 {
		t.Errorf("128 MiB budget: limit %d MiB, want 80 (five eighths)", got>>20)
	}
}

// TestDerivedTableValidation: a table whose columns are derived from the
// registry at start has its partition: and evolve: checked at Parse as a
// table with listed columns has: a misspelt retention_action made expired
// partitions be dropped instead of detached, a misspelt evolve never added
// a column. The defaults are filled as for listed columns.
func TestDerivedTableValidation(t *testing.T) {
	derived := func(extra string) string {
		return strings.Replace(validYAML, "tables:\n", "schema_registry:\n  urls: [\"http://127.0.0.1:1\"]\ntables:\n", 1) + `
  - name: public.derived
    topics: [derived]
    format: avro
` + extra
	}
	for extra, want := range map[string]string{
		"    key: [id, ts]\n    partition: {column: ts, interval: day, retention: 30d, retention_action: detatch}\n": `tables[1].partition.retention_action: "detatch" is not valid`,
		"    evolve: add_column\n": `tables[1].evolve: "add_column" is not valid`,
		"    key: [id, ts]\n    partition: {column: ts, interval: month, retention: 1d}\n": "tables[1].partition.retention: 24h0m0s is shorter than one month",
		"    key: [id]\n    partition: {column: ts}\n":                                     "tables[1].key: PostgreSQL requires the partition column in every unique key",
	} {
		if _, err := Parse([]byte(derived(extra)), noEnv); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("derived table with\n%s: %v, want %q", extra, err, want)
		}
	}
	c, err := Parse([]byte(derived("    key: [id, ts]\n    partition: {column: ts}\n")), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Tables[1].Partition; p.Interval != "day" || *p.Premake != 3 || p.RetentionAction != "drop" {
		t.Errorf("derived table's partition defaults: %+v", p)
	}
}

// TestUnmappedFormats: unmapped: keeps the members of JSON records, which
// format json_schema's records are too (docs/partitions.md directs its
// new members there); a format of binary records refuses it.
func TestUnmappedFormats(t *testing.T) {
	withFormat := func(format string) string {
		y := strings.Replace(validYAML, "tables:\n", "schema_registry:\n  urls: [\"http://127.0.0.1:1\"]\ntables:\n", 1)
		return strings.Replace(y, "topics: [events]", "topics: [events]\n    unmapped: extra\n    format: "+format, 1)
	}
	for _, format := range []string{"json", "json_schema"} {
		c, err := Parse([]byte(withFormat(format)), noEnv)
		if err != nil {
			t.Errorf("unmapped: with format %s: %v", format, err)
			continue
		}
		if cols, err := c.Tables[0].codecColumns(); err != nil || cols[len(cols)-1].Source != codec.SourceUnmapped {
			t.Errorf("format %s: columns %v, %v; want the unmapped column last", format, cols, err)
		}
	}
	if _, err := Parse([]byte(withFormat("avro")), noEnv); err == nil || !strings.Contains(err.Error(), "tables[0].unmapped") {
		t.Errorf("unmapped: with format avro: %v, want it refused", err)
	}
}
