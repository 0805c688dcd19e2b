package ingest

import (
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/codec"
)

// keyChangeTable is table public.orders of topic events (converter avro)
// with a region column, keyed by key.
func keyChangeTable(key string) string {
	return `
  - name: public.orders
    topics: [events]
    format: debezium
    converter: avro
    key: ` + key + `
    columns:
      - {name: id, type: int8, path: id}
      - {name: region, type: text, path: region}
      - {name: name, type: text, path: name}
      - {name: qty, type: int4, path: qty}
`
}

// stuckOf returns the stuck state of app's table name, nil when it is
// not stuck (what sluice_stuck and the status page read).
func stuckOf(app *App, name string) *StuckStatus {
	for _, t := range app.tableList() {
		if t.cfg.Name == name {
			return app.stuckStatus(t)
		}
	}
	return nil
}

// TestDebeziumAvroKeyChanged: when the source table's primary key
// changes from (id) to (id, region), Debezium keys the records that
// follow with a new Key record under events-key. The table, keyed by
// (id), would merge source rows (1, eu) and (1, us) into one: the
// partition stops at the first record of the new key schema, writing the
// rows before it and nothing from it on (no dead letter), /readyz and the
// log say why and what to do, and sluice_stuck's state is set; another
// partition whose records keep the old key schema goes on. After a
// restart with the target's key altered and key set to the new fields,
// the records land.
func TestDebeziumAvroKeyChanged(t *testing.T) {
	e := newEnv(t, 2)
	d := newDbzAvroTopic(t)
	d.addFields(`{"name":"region","type":["null","string"],"default":null}`)
	row := func(id int64, region, name string, qty int32) *avroOrder {
		r := d.row(id, name, qty)
		r.Region = &region
		return r
	}
	oldKey, oldKS := d.keyID, d.ks
	e.produceTo(0,
		d.event("c", nil, row(1, "eu", "apple", 1)),
		d.event("c", nil, row(2, "eu", "pear", 2)),
	)
	var logs syncBuffer
	r := e.start(e.configRegistry(d.url, keyChangeTable("[id]")), func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	e.waitDrained(2)
	if !r.app.Ready() {
		t.Fatalf("not ready before the key changed: %s", r.app.notReady())
	}

	// The events after the change, keyed below by the new Key record.
	plum, fig := d.event("c", nil, row(1, "us", "plum", 3)), d.event("c", nil, row(3, "eu", "fig", 4))
	d.setKey(`{"type":"record","name":"Key","namespace":"shop.public.orders","fields":[{"name":"id","type":"long"},{"name":"region","type":"string"}],"connect.name":"shop.public.orders.Key"}`)
	plum.Key = d.keyOf(map[string]any{"id": int64(1), "region": "us"})
	fig.Key = d.keyOf(map[string]any{"id": int64(3), "region": "eu"})
	e.produceTo(0, plum, fig)
	e.waitFor("the table to be stuck", func() bool { return !r.app.Ready() })
	why := r.app.notReady()
	for _, want := range []string{"public.orders stuck", "keyed by (id, region)", "merges rows by (id)", "events/0",
		fmt.Sprintf("key schema id %d", d.keyID), "alter the target's primary key to (id, region), set key: [id, region]"} {
		if !strings.Contains(why, want) {
			t.Errorf("/readyz says %q, which lacks %q", why, want)
		}
	}
	if st := stuckOf(r.app, "public.orders"); st == nil {
		t.Error("the table is not stuck for sluice_stuck and the status page")
	}
	// Records of the old key schema in another partition land.
	d.keyID, d.ks = oldKey, oldKS
	e.produceTo(1, d.event("c", nil, row(4, "eu", "kiwi", 5)))
	e.waitFor("partition 1 to land", func() bool { return e.count(`SELECT count(*) FROM public.orders WHERE id = 4`) == 1 })
	time.Sleep(500 * time.Millisecond) // room for a wrong write
	if got, want := e.query(`SELECT id, region, name FROM public.orders ORDER BY id, region`), "1:eu:apple 2:eu:pear 4:eu:kiwi"; got != want {
		t.Errorf("target holds %q, want %q: nothing from the first record of the new key on", got, want)
	}
	if n := e.storedSum(); n != 3 {
		t.Errorf("stored offsets sum to %d, want 3 (partition 0 stopped before offset 2)", n)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	lines := logLines(logs.String(), "level=ERROR", "TABLE STUCK", "table=public.orders", "key=[id]", `new_key="[id region]"`, "alter the target's primary key")
	if len(lines) != 1 {
		t.Errorf("%d ERROR lines naming the table, the old and the new key and the fix, want 1:\n%s", len(lines), logs.String())
	}
	// Partition 0 claimed again (after a rebalance): its new state meets
	// the cached mismatch and stops again, without another ERROR.
	var tbl *tableRT
	for _, x := range r.app.tableList() {
		if x.cfg.Name == "public.orders" {
			tbl = x
		}
	}
	again := &partState{topic: "events", partition: 0}
	if res := (&worker{a: r.app}).checkKey(again, tbl, &codec.Record{Topic: "events", Key: plum.Key, Offset: 2}); res != encAbort || again.stopWhy.Load() == nil {
		t.Errorf("partition 0 claimed again: checkKey = %v, stopped %v; want it stopped again", res, again.stopWhy.Load() != nil)
	}
	if n := len(logLines(logs.String(), "level=ERROR", "TABLE STUCK")); n != 1 {
		t.Errorf("%d TABLE STUCK lines after partition 0 was claimed again, want 1:\n%s", n, logs.String())
	}
	if r.app.Ready() {
		t.Error("ready after partition 0 was claimed again")
	}
	r.stop()

	// The operator's fix: the target's key, then key: [id, region].
	if _, err := e.db.Exec(e.ctx, `ALTER TABLE public.orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, region)`); err != nil {
		t.Fatal(err)
	}
	r = e.start(e.configRegistry(d.url, keyChangeTable("[id, region]")))
	e.waitDrained(5)
	if got, want := e.query(`SELECT id, region, name FROM public.orders ORDER BY id, region`), "1:eu:apple 1:us:plum 2:eu:pear 3:eu:fig 4:eu:kiwi"; got != want {
		t.Errorf("after the restart the target holds %q, want %q", got, want)
	}
	if !r.app.Ready() {
		t.Errorf("not ready after the restart: %s", r.app.notReady())
	}
}

// TestDebeziumAvroKeySameFields: a new version of the Key record that
// keeps its fields (a doc added) is checked once and its records keep
// landing.
func TestDebeziumAvroKeySameFields(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzAvroTopic(t)
	var logs syncBuffer
	r := e.start(e.configRegistry(d.url, keyChangeTable("[id]")), func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	e.produce(d.event("c", nil, d.row(1, "apple", 1)))
	e.waitDrained(1)
	oldKey := d.keyID
	d.setKey(`{"type":"record","name":"Key","namespace":"shop.public.orders","doc":"the primary key","fields":[{"name":"id","type":"long","doc":"order number"}],"connect.name":"shop.public.orders.Key"}`)
	if d.keyID == oldKey {
		t.Fatalf("the registry gave the changed Key record the same id %d", oldKey)
	}
	e.produce(
		d.event("c", nil, d.row(2, "pear", 2)),
		d.event("u", d.row(1, "apple", 1), d.row(1, "apple", 10)),
	)
	e.waitDrained(3)
	if got, want := e.query(`SELECT id, name, qty FROM public.orders ORDER BY id`), "1:apple:10 2:pear:2"; got != want {
		t.Errorf("target holds %q, want %q", got, want)
	}
	if !r.app.Ready() {
		t.Errorf("not ready: %s", r.app.notReady())
	}
	for _, id := range []int{oldKey, d.keyID} {
		if n := len(logLines(logs.String(), "key writer schema checked", "table=public.orders", fmt.Sprintf("schema=%d ", id), "key=[id]")); n != 1 {
			t.Errorf("key schema %d checked %d times, want once:\n%s", id, n, logs.String())
		}
	}
}

// TestKeyCheckFields: the key fields a table's records must name are the
// paths its key columns read; a key of a column that reads no top-level
// field (the Kafka offset, a nested path) is the table's own, and its
// records' keys are not checked.
func TestKeyCheckFields(t *testing.T) {
	cols := func(specs ...[3]string) []codec.Column {
		var out []codec.Column
		for _, s := range specs {
			c, err := codec.ParseColumn(s[0], "int8", s[1], s[2], false)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return out
	}
	tc := func(key ...string) TableConfig {
		return TableConfig{Format: "debezium", Converter: "avro", Key: key}
	}
	k := newKeyCheck(tc("order_id", "region"), cols([3]string{"order_id", "", "id"}, [3]string{"region", "", "region"}))
	if k == nil || fmt.Sprint(k.fields) != "[id region]" {
		t.Fatalf("key fields %v, want [id region]", k)
	}
	if !sameKey([]string{"region", "id"}, k.fields) || sameKey([]string{"id"}, k.fields) || sameKey([]string{"id", "zone"}, k.fields) {
		t.Error("sameKey compares other than the sets of fields")
	}
	for _, c := range []struct {
		tc   TableConfig
		cols []codec.Column
	}{
		{tc("off"), cols([3]string{"off", "kafka.offset", ""})},
		{tc("id"), cols([3]string{"id", "", "order.id"})},
		{TableConfig{Format: "debezium", Converter: "json", Key: []string{"id"}}, cols([3]string{"id", "", "id"})},
	} {
		if k := newKeyCheck(c.tc, c.cols); k != nil {
			t.Errorf("key %v of columns %v is checked against key schemas", c.tc.Key, c.cols)
		}
	}
}

// TestDebeziumAvroKeyChangedGUIDAndHeader: a key schema named by its GUID
// (magic byte 1) or by a __key_schema_id header (the key then the bare
// datum) is checked as one named by its id: records keyed by a new Key
// record with other fields stop their partition, each before that record,
// while records of the old key, framed either way, land.
func TestDebeziumAvroKeyChangedGUIDAndHeader(t *testing.T) {
	e := newEnv(t, 2)
	d := newDbzAvroTopic(t)
	d.addFields(`{"name":"region","type":["null","string"],"default":null}`)
	row := func(id int64, region, name string) *avroOrder {
		r := d.row(id, name, 1)
		r.Region = &region
		return r
	}
	guidOf := func(id int) []byte {
		t.Helper()
		s, err := d.reg.LatestSchema(t.Context(), "events-key")
		if err == nil && s.ID != id {
			s, err = d.reg.SubjectVersion(t.Context(), "events-key", 1)
		}
		if err != nil {
			t.Fatal(err)
		}
		g, err := hex.DecodeString(strings.ReplaceAll(s.GUID, "-", ""))
		if err != nil || len(g) != 16 || s.ID != id {
			t.Fatalf("schema %d has GUID %q", s.ID, s.GUID)
		}
		return append([]byte{1}, g...)
	}
	// byGUID frames rec's key, framed with schema id id, by the schema's
	// GUID instead; byHeader moves its framing into a __key_schema_id
	// header.
	byGUID := func(rec *kgo.Record, id int) *kgo.Record {
		rec.Key = append(guidOf(id), rec.Key[5:]...)
		return rec
	}
	byHeader := func(rec *kgo.Record) *kgo.Record {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "__key_schema_id", Value: rec.Key[:5]})
		rec.Key = rec.Key[5:]
		return rec
	}
	oldKey := d.keyID
	e.produceTo(0, byGUID(d.event("c", nil, row(1, "eu", "apple")), oldKey))
	e.produceTo(1, byHeader(d.event("c", nil, row(2, "eu", "pear"))))
	var logs syncBuffer
	r := e.start(e.configRegistry(d.url, keyChangeTable("[id]")), func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	e.waitDrained(2)
	if !r.app.Ready() {
		t.Fatalf("not ready before the key changed: %s", r.app.notReady())
	}

	// The events after the change (built with the old key, then keyed by
	// the new Key record), each followed by a record of the old key: the
	// partition stopped before the new key's record writes neither.
	plum, fig := d.event("c", nil, row(1, "us", "plum")), d.event("c", nil, row(2, "us", "fig"))
	late0, late1 := d.event("c", nil, row(5, "eu", "late")), d.event("c", nil, row(6, "eu", "late"))
	d.setKey(`{"type":"record","name":"Key","namespace":"shop.public.orders","fields":[{"name":"id","type":"long"},{"name":"region","type":"string"}],"connect.name":"shop.public.orders.Key"}`)
	plum.Key = d.keyOf(map[string]any{"id": int64(1), "region": "us"})
	fig.Key = d.keyOf(map[string]any{"id": int64(2), "region": "us"})
	e.produceTo(0, byGUID(plum, d.keyID), byGUID(late0, oldKey))
	e.produceTo(1, byHeader(fig), byHeader(late1))
	stopped := func() (n int) {
		for _, p := range r.app.snapshotParts() {
			if p.stopWhy.Load() != nil {
				n++
			}
		}
		return n
	}
	e.waitFor("both partitions to stop", func() bool { return stopped() == 2 })
	time.Sleep(500 * time.Millisecond) // room for a wrong write
	if got, want := e.query(`SELECT id, region, name FROM public.orders ORDER BY id, region`), "1:eu:apple 2:eu:pear"; got != want {
		t.Errorf("target holds %q, want %q: nothing from the first record of the new key on", got, want)
	}
	if n := e.storedSum(); n != 2 {
		t.Errorf("stored offsets sum to %d, want 2 (each partition stopped before offset 1)", n)
	}
	if r.app.Ready() {
		t.Error("ready with the key changed")
	}
	why := r.app.notReady()
	for _, want := range []string{"keyed by (id, region)", "merges rows by (id)"} {
		if !strings.Contains(why, want) {
			t.Errorf("/readyz says %q, which lacks %q", why, want)
		}
	}
	if n := len(logLines(logs.String(), "level=ERROR", "TABLE STUCK", "table=public.orders", `new_key="[id region]"`)); n != 2 {
		t.Errorf("%d TABLE STUCK lines, want 2 (the key schema by its GUID, and by its id in a header):\n%s", n, logs.String())
	}
}

// TestReplayDebeziumAvroKeyChanged: sluice dead-letters replay checks the
// key schema of each record it replays as the appliance does. A dead
// letter keyed by a Key record of other fields than the table's key (the
// source's primary key changed since) is not merged by the old key: it
// stays, its error naming both keys and the fix (reason bad_key); one of
// the table's key lands, whether its key schema is in the key or in a
// __key_schema_id header.
func TestReplayDebeziumAvroKeyChanged(t *testing.T) {
	e := newEnv(t, 1)
	d := newDbzAvroTopic(t)
	d.addFields(`{"name":"region","type":["null","string"],"default":null}`)
	row := func(id int64, region, name string) *avroOrder {
		r := d.row(id, name, 1)
		r.Region = &region
		return r
	}
	cfg := e.configRegistry(d.url, keyChangeTable("[id]"))
	r := e.start(cfg)
	e.produce(d.event("c", nil, row(1, "eu", "apple")))
	e.waitDrained(1)
	r.stop()

	// Dead letters as an earlier run stored them: two of the table's key
	// (one framed by a header), two of a Key record with region.
	pear, kiwi := d.event("c", nil, row(2, "eu", "pear")), d.event("c", nil, row(4, "eu", "kiwi"))
	kiwi.Headers = []kgo.RecordHeader{{Key: "__key_schema_id", Value: kiwi.Key[:5]}}
	kiwi.Key = kiwi.Key[5:]
	plum, fig := d.event("c", nil, row(1, "us", "plum")), d.event("c", nil, row(3, "eu", "fig"))
	d.setKey(`{"type":"record","name":"Key","namespace":"shop.public.orders","fields":[{"name":"id","type":"long"},{"name":"region","type":"string"}],"connect.name":"shop.public.orders.Key"}`)
	plum.Key = d.keyOf(map[string]any{"id": int64(1), "region": "us"})
	fig.Key = d.keyOf(map[string]any{"id": int64(3), "region": "eu"})
	fig.Headers = []kgo.RecordHeader{{Key: "__key_schema_id", Value: fig.Key[:5]}}
	fig.Key = fig.Key[5:]
	for i, rec := range []*kgo.Record{pear, plum, fig, kiwi} {
		var hs []codec.Header
		for _, h := range rec.Headers {
			hs = append(hs, codec.Header{Key: h.Key, Value: h.Value})
		}
		if _, err := e.db.Exec(e.ctx, `INSERT INTO sluice.dead_letters (group_id, target, topic, partition, "offset", key, value, headers, error)
VALUES ('g', 'public.orders', 'events', 0, $1, $2, $3, $4, 'column qty (path qty): out_of_range: an earlier column type')`,
			10+i, rec.Key, rec.Value, string(codec.AppendHeadersJSON(nil, hs))); err != nil {
			t.Fatal(err)
		}
	}
	out := runDL(t, e, "replay", "--config", writeConfig(t, cfg))
	if !strings.Contains(out, "public.orders: 2 dead letter(s) landed, 0 skipped, 2 still fail") &&
		!strings.Contains(out, "public.orders: 2 dead letter(s) landed, 2 still fail") {
		t.Errorf("replay said:\n%s", out)
	}
	if got, want := e.query(`SELECT id, region, name FROM public.orders ORDER BY id, region`), "1:eu:apple 2:eu:pear 4:eu:kiwi"; got != want {
		t.Errorf("target holds %q, want %q: the dead letters of the new key merged by the old one", got, want)
	}
	got := e.query(`SELECT "offset", error FROM sluice.dead_letters ORDER BY "offset"`)
	for _, want := range []string{"11:", "12:", "kafka.key: bad_key:", "keyed by (id, region)", "merges rows by (id)",
		"alter the target's primary key to (id, region), set key: [id, region]"} {
		if !strings.Contains(got, want) {
			t.Errorf("dead letters left: %q, which lacks %q", got, want)
		}
	}
	if strings.Contains(got, "10:") || strings.Contains(got, "13:") {
		t.Errorf("dead letters left: %q; the records of the table's key should have landed", got)
	}
	if n := strings.Count(runDL(t, e, "list", "--config", writeConfig(t, cfg), "--reason", "bad_key"), "\n"); n != 2 {
		t.Errorf("--reason bad_key lists %d dead letters, want 2", n)
	}
}
