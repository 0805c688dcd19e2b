package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/registry"
)

// TestRegistryKeys: Avro keys and values written by a registry serializer
// land in keyed tables whose key column comes from the key (source
// kafka.key with a path, or, for the deletes of a table keyed by a value
// path, the same path in the key record); tombstones with deletes: true
// delete by the Avro key, framed in the key or in a __key_schema_id
// header; keys that are not framed, or name a schema the registry lacks,
// are dead letters naming the key.
func TestRegistryKeys(t *testing.T) {
	e := newEnv(t, 1)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	cl, err := registry.New(registry.Options{URLs: []string{reg.URL()}})
	if err != nil {
		t.Fatal(err)
	}
	register := func(subject, schema string) int {
		t.Helper()
		id, err := cl.Register(e.ctx, subject, registry.TypeAvro, schema)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	keyID := register("events-key", `{"type":"record","name":"Key","fields":[{"name":"id","type":"long"},{"name":"region","type":"string"}]}`)
	valueID := register("events-value", `{"type":"record","name":"Item","fields":[{"name":"name","type":"string"}]}`)
	key2ID := register("events2-key", `{"type":"record","name":"Key2","fields":[{"name":"id","type":"long"}]}`)
	value2ID := register("events2-value", `{"type":"record","name":"Item2","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}`)

	zz, str, frame := avroLong, avroString, regFrame
	key := func(id int64, region string) []byte { return str(zz(frame(keyID), id), region) }
	item := func(id int64, region, name string) *kgo.Record {
		return &kgo.Record{Key: key(id, region), Value: str(frame(valueID), name)}
	}
	key2 := func(id int64) []byte { return zz(frame(key2ID), id) }
	item2 := func(id int64, name string) *kgo.Record {
		return &kgo.Record{Topic: "events2", Key: key2(id), Value: str(zz(frame(value2ID), id), name)}
	}

	cfg := e.configRegistry(reg.URL(), `
  - name: public.by_key
    topics: [events]
    format: avro
    key: [id]
    on_conflict: update
    deletes: true
    columns:
      - {name: id, type: int8, source: kafka.key, path: id}
      - {name: region, type: text, source: kafka.key, path: region}
      - {name: name, type: text, path: name}
      - {name: raw_key, type: bytea, source: kafka.key}
  - name: public.by_value
    topics: [events2]
    format: avro
    key: [id]
    on_conflict: update
    deletes: true
    columns:
      - {name: id, type: int8, path: id}
      - {name: name, type: text, path: name}
`)
	e.start(cfg)
	e.produce(item(1, "eu", "a"), item(2, "us", "b"), item(3, "eu", "c"), item(4, "ap", "d"),
		item2(1, "a"), item2(2, "b"), item2(3, "c"))
	e.waitDrained(7)
	rows := func(q string) string {
		t.Helper()
		rs, err := e.db.Query(e.ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var s string
			if err := rs.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}
	const byKey = `SELECT id || ':' || region || ':' || name FROM public.by_key ORDER BY id`
	const byValue = `SELECT id || ':' || name FROM public.by_value ORDER BY id`
	if got, want := rows(byKey), "1:eu:a 2:us:b 3:eu:c 4:ap:d"; got != want {
		t.Errorf("by_key: %s, want %s", got, want)
	}
	if n := e.count(`SELECT count(*) FROM public.by_key WHERE raw_key = $1`, key(1, "eu")); n != 1 {
		t.Errorf("raw_key does not hold the key as received")
	}

	e.produce(
		&kgo.Record{Key: key(2, "us")}, // a tombstone: delete by the framed key
		item(3, "eu", "c2"),
		// The key id in a header and a bare key.
		&kgo.Record{Key: key(4, "ap")[5:], Headers: []kgo.RecordHeader{{Key: "__key_schema_id", Value: frame(keyID)}}},
		&kgo.Record{Key: []byte(`{"id":9}`), Value: str(frame(valueID), "unframed")},    // bad_framing
		&kgo.Record{Key: zz(frame(9999), 9), Value: str(frame(valueID), "unknown key")}, // unknown_schema
		&kgo.Record{Topic: "events2", Key: key2(1)},                                     // delete by the key record's id
		&kgo.Record{Topic: "events2", Key: key2(3)[5:], Headers: []kgo.RecordHeader{{Key: "__key_schema_id", Value: frame(key2ID)}}},
		item2(2, "b2"),
	)
	e.waitDrained(15)
	if got, want := rows(byKey), "1:eu:a 3:eu:c2"; got != want {
		t.Errorf("by_key after tombstones: %s, want %s", got, want)
	}
	if got, want := rows(byValue), "2:b2"; got != want {
		t.Errorf("by_value after tombstones: %s, want %s", got, want)
	}
	for _, want := range []string{"kafka.key: bad_framing", fmt.Sprintf("kafka.key: unknown_schema: the schema registry has no key schema with id %d", 9999)} {
		if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE position($1 in error) > 0`, want); n != 1 {
			t.Errorf("%d dead letters with %q, want 1", n, want)
		}
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 2 {
		t.Errorf("%d dead letters, want 2", n)
	}
}
