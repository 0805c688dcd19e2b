package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/codec"
)

// Evolution mid-stream, through the workers, with a restart in the middle:
// rows before the new field have NULL in its column, rows after it have
// the value, each exactly once. The records are JSON, and the test calls
// evolve itself where a registry format's new writer schema would.
func TestEvolveMidStreamRestart(t *testing.T) {
	e := newEnv(t, 3)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	cfg.Tables[0].Evolve = "add_columns" // registry formats only in a config file
	r1 := e.start(cfg)
	withCountry := func(i int) *kgo.Record {
		rec := item(i, "x")
		rec.Value = fmt.Appendf(nil, `{"id":%q,"n":%d,"v":"x","country":"c%d"}`, uuidFor(i), i, i)
		return rec
	}
	var total int64
	for i := range 600 {
		e.produce(item(i, "x"))
		total++
	}
	e.waitFor("a first commit", func() bool { return e.storedSum() > 0 })
	fields := []codec.SchemaField{{Name: "id", Type: codec.TypeUUID}, {Name: "n", Type: codec.TypeInt8},
		{Name: "country", Type: codec.TypeText}, {Name: "v", Type: codec.TypeText}}
	// Two workers meeting the new schema at once.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := r1.app.evolve(e.ctx, r1.app.tables[0], fields); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if cols := r1.app.tables[0].cur().cols; len(cols) != 5 || cols[4].Name != "country" {
		t.Fatalf("shape after evolve: %v", cols)
	}
	for i := 600; i < 1200; i++ {
		e.produce(withCountry(i))
		total++
		if i == 800 {
			e.waitFor("a commit with the new column", func() bool {
				return e.count(`SELECT count(*) FROM public.items WHERE country IS NOT NULL`) > 0
			})
			r1.stop()
		}
	}
	if e.storedSum() >= total {
		t.Fatal("everything was committed before the restart; the test proves nothing")
	}
	r2 := e.start(cfg)
	if cols := r2.app.tables[0].cur().cols; len(cols) != 5 || cols[4].Name != "country" || cols[4].Path != "country" {
		t.Fatalf("shape after the restart: %v", cols)
	}
	e.waitDrained(total)
	if n := e.count(`SELECT count(*) FROM public.items`); n != 1200 {
		t.Fatalf("target holds %d rows, want 1200", n)
	}
	if n := e.count(`SELECT count(*) FROM public.items WHERE n >= 600 AND country = 'c' || n`); n != 600 {
		t.Errorf("%d rows after the new field hold it, want 600", n)
	}
	if n := e.count(`SELECT count(*) FROM public.items WHERE n < 600 AND country IS NULL`); n != 600 {
		t.Errorf("%d rows before the new field have NULL, want 600", n)
	}
}

// A new field named like a staging column (sluice_op, sluice_seq …), or
// longer than PostgreSQL's 63 bytes (it would truncate the name), gets
// no column: such a column failed every batch of the table, for good (the
// next start found it again), and sluice_seq failed the evolution, which
// was retried for ever. The other new fields get theirs and every record
// lands.
func TestEvolveReservedNames(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(fmt.Sprintf(tableYAML, "update"))
	cfg.Tables[0].Evolve = "add_columns" // registry formats only in a config file
	r := e.start(cfg)
	fields := []codec.SchemaField{{Name: "id", Type: codec.TypeUUID}, {Name: "sluice_op", Type: codec.TypeText},
		{Name: "sluice_seq", Type: codec.TypeInt8}, {Name: "country", Type: codec.TypeText}, {Name: "sluice_key_rank", Type: codec.TypeInt8},
		{Name: strings.Repeat("a", 64), Type: codec.TypeText}}
	for range 2 { // a second schema with the fields changes nothing
		if err := r.app.evolve(e.ctx, r.app.tables[0], fields); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(columnTypes(r.app.tables[0].cur().cols)); got != "[id uuid n int8 v text src_offset int8 country text]" {
		t.Fatalf("shape after evolve: %s", got)
	}
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name LIKE 'sluice%'`); n != 0 {
		t.Fatalf("%d columns named like staging columns added to the target", n)
	}
	for i := range 20 {
		rec := item(i, "x")
		rec.Value = fmt.Appendf(nil, `{"id":%q,"n":%d,"v":"x","country":"c%d","sluice_op":"u","sluice_seq":%d}`, uuidFor(i), i, i, i)
		e.produce(rec)
	}
	e.waitDrained(20)
	if n := e.count(`SELECT count(*) FROM public.items WHERE country = 'c' || n`); n != 20 {
		t.Errorf("%d rows hold the new field, want 20", n)
	}
}

// evolve from a real Avro writer schema: the new fields become columns,
// the decoder of the new shape fills them, and a field whose type changed
// so that its column cannot hold it makes records dead letters.
func TestEvolveAvro(t *testing.T) {
	e := newEnv(t, 1)
	// The test hands the schema over itself: the registry is never asked.
	cfg := e.configRegistry("http://127.0.0.1:1", `
  - name: public.ev
    topics: [events]
    format: avro
    evolve: add_columns
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: name, type: text, path: name}
`)
	ctx := context.Background()
	if err := Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeCtl()
	v2 := &codec.Schema{Type: codec.SchemaAvro, Text: `{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},
{"name":"country","type":["null","string"],"default":null},{"name":"score","type":"double"},{"name":"tags","type":{"type":"array","items":"string"}}]}`}
	fields, err := codec.SchemaFields(v2, nil)
	if err != nil {
		t.Fatal(err)
	}
	tb := a.tables[0]
	if err := a.evolve(ctx, tb, fields); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(columnTypes(tb.cur().cols)); got != "[id int8 name text country text score float8 tags jsonb]" {
		t.Fatalf("shape: %s", got)
	}
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'ev' AND is_nullable = 'YES' AND column_name IN ('country', 'score', 'tags')`); n != 3 {
		t.Fatalf("%d nullable new columns in the target, want 3", n)
	}
	dec, err := codec.NewDecoder(codec.FormatAvro, tb.cur().cols, codec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.AddSchema(codec.SchemaRef{ID: 2}, v2); err != nil {
		t.Fatal(err)
	}
	rec := &codec.Record{Value: avroV2(7, "seven", "NZ", 1.5)}
	if _, err := dec.AppendFields(nil, rec); err != nil {
		t.Fatalf("decoding a v2 record with the evolved shape: %v", err)
	}

	// A restart finds the columns; a writer schema that turns score into
	// a record cannot fill its float8 column: its records are dead letters
	// naming the column.
	a2, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.closeCtl()
	if err := a2.loadEvolved(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(columnTypes(a2.tables[0].cur().cols)); got != "[id int8 name text country text score float8 tags jsonb]" {
		t.Fatalf("shape after a restart: %s", got)
	}
	v3 := &codec.Schema{Type: codec.SchemaAvro, Text: `{"type":"record","name":"E","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},
{"name":"score","type":{"type":"record","name":"S","fields":[{"name":"x","type":"int"}]}}]}`}
	f3, _ := codec.SchemaFields(v3, nil)
	if err := a2.evolve(ctx, a2.tables[0], f3); err != nil {
		t.Fatal(err)
	}
	dec3, _ := codec.NewDecoder(codec.FormatAvro, a2.tables[0].cur().cols, codec.Options{})
	dec3.AddSchema(codec.SchemaRef{ID: 3}, v3)
	_, err = dec3.AppendFields(nil, &codec.Record{Value: append(codec.AppendRegistryFraming(nil, 3), 2, 2, 'x', 2)})
	var re *codec.RowError
	if !errors.As(err, &re) || re.Reason != codec.ReasonWrongType || re.Column != "score" {
		t.Errorf("a record whose field changed type: %v, want wrong_type in column score", err)
	}
}

// A format debezium table keeps the stored value of a TOASTed column for
// at most pgcopy.MaxUnchangedColumns columns, and refuses a configuration
// with more at start: evolution stops adding columns at that many, with a
// warning per field left out, rather than give the table a 65th column
// that a batch with a placeholder could not be written with.
func TestEvolveDebeziumColumnLimit(t *testing.T) {
	e := newEnv(t, 1)
	// The test hands the fields over itself: the registry is never asked.
	cfg := e.configRegistry("http://127.0.0.1:1", `
  - name: public.wide
    topics: [events]
    format: debezium
    converter: avro
    evolve: add_columns
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: name, type: text, path: name}
      - {name: lsn, type: int8, source: debezium.source.lsn}
`)
	ctx := context.Background()
	if err := Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeCtl()
	fields := []codec.SchemaField{{Name: "id", Type: codec.TypeInt8}, {Name: "name", Type: codec.TypeText}}
	for i := range 70 {
		fields = append(fields, codec.SchemaField{Name: fmt.Sprintf("f%02d", i), Type: codec.TypeText})
	}
	tb := a.tables[0]
	for range 2 { // the second schema adds nothing and warns no more
		if err := a.evolve(ctx, tb, fields); err != nil {
			t.Fatal(err)
		}
	}
	cols := tb.cur().cols
	if len(cols) != 64 || cols[63].Name != "f60" {
		t.Fatalf("shape after evolve: %d columns, want 64 ending with f60: %v", len(cols), columnTypes(cols))
	}
	if n := e.count(`SELECT count(*) FROM information_schema.columns WHERE table_name = 'wide'`); n != 64 {
		t.Fatalf("the target has %d columns, want 64", n)
	}
	var warned []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "cannot add a column for a new field: the table has 64 columns, and format debezium keeps the stored value of a TOASTed column for at most 64") {
			_, f, _ := strings.Cut(line, "field=")
			warned = append(warned, strings.TrimSpace(f))
		}
	}
	if got := fmt.Sprint(warned); got != "[f61 f62 f63 f64 f65 f66 f67 f68 f69]" {
		t.Errorf("warnings for the fields left out: %s", got)
	}

	// A column listed since: a restart writes the evolved columns up to
	// the limit, and names the one left out.
	if _, err := e.db.Exec(ctx, `ALTER TABLE public.wide ADD COLUMN extra text`); err != nil {
		t.Fatal(err)
	}
	cfg.Tables[0].Columns = append(cfg.Tables[0].Columns, ColumnConfig{Name: "extra", Type: "text", Path: "extra"})
	var logs2 syncBuffer
	a2, err := New(cfg, slog.New(slog.NewTextHandler(io.MultiWriter(&logs2, testWriter{t}), nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a2.closeCtl()
	if err := a2.loadEvolved(ctx); err != nil {
		t.Fatal(err)
	}
	if cols := a2.tables[0].cur().cols; len(cols) != 64 || cols[3].Name != "extra" || cols[63].Name != "f59" {
		t.Fatalf("shape after a restart: %d columns, want 64 (extra, then f00 to f59): %v", len(cols), columnTypes(cols))
	}
	if !strings.Contains(logs2.String(), "columns added by evolution are not written") || !strings.Contains(logs2.String(), "columns=[f60]") {
		t.Errorf("no warning names the evolved column left out:\n%s", logs2.String())
	}
}

func columnTypes(cols []codec.Column) []string {
	var out []string
	for _, c := range cols {
		out = append(out, c.Name+" "+c.Type.String())
	}
	return out
}

// avroV2 encodes a record of TestEvolveAvro's v2 schema with id 2.
func avroV2(id int64, name, country string, score float64) []byte {
	b := codec.AppendRegistryFraming(nil, 2)
	zz := func(v int64) {
		u := uint64(v<<1) ^ uint64(v>>63)
		for u >= 0x80 {
			b = append(b, byte(u)|0x80)
			u >>= 7
		}
		b = append(b, byte(u))
	}
	str := func(s string) { zz(int64(len(s))); b = append(b, s...) }
	zz(id)
	str(name)
	zz(1)
	str(country)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(score))
	zz(0) // an empty array
	return b
}

func (a *App) closeCtl() {
	a.ctlMu.Lock()
	defer a.ctlMu.Unlock()
	if a.ctl != nil {
		a.ctl.Close(context.Background())
		a.ctl = nil
	}
}

// unmapped: keeps what no column maps, through the pipeline into jsonb.
func TestUnmappedColumn(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(`
  - name: public.um
    topics: [events]
    key: [id]
    unmapped: extra
    columns:
      - {name: id, type: int8, path: id}
      - {name: country, type: text, path: attrs.country}
`)
	e.start(cfg)
	e.produce(
		&kgo.Record{Value: []byte(`{"id":1,"attrs":{"country":"NZ"}}`)},
		&kgo.Record{Value: []byte(`{"id":2,"attrs":{"country":"FR","x":1},"plan":"pro","seats":12,"flags":{"beta":true}}`)},
		&kgo.Record{Value: []byte(`{"id":3,"plan":"a\u0000b"}`)},
	)
	e.waitDrained(3)
	if n := e.count(`SELECT count(*) FROM public.um WHERE id = 1 AND extra IS NULL`); n != 1 {
		t.Error("a record without unmapped members has a non-NULL extra")
	}
	if n := e.count(`SELECT count(*) FROM public.um WHERE id = 2 AND extra = '{"plan":"pro","seats":12,"flags":{"beta":true}}'::jsonb`); n != 1 {
		var got string
		e.db.QueryRow(e.ctx, `SELECT extra::text FROM public.um WHERE id = 2`).Scan(&got)
		t.Errorf("extra of record 2 = %s", got)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE error LIKE '%column extra%invalid_value%'`); n != 1 {
		t.Error("a member jsonb cannot store is not a dead letter naming the column")
	}
}

// TestEvolveFieldNamedLikeOtherColumn: a new field whose name a column has
// that reads something else (a kafka.* source, another path) gets no
// column and its values are not stored: that is logged, once, as for the
// other fields given no column. One an unmapped column keeps is not.
func TestEvolveFieldNamedLikeOtherColumn(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.configRegistry("http://127.0.0.1:1", `
  - name: public.ev
    topics: [events]
    format: avro
    evolve: add_columns
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: ts, type: timestamptz, source: kafka.timestamp}
      - {name: country, type: text, path: attrs.country}
      - {name: attrs, type: jsonb, path: attrs}
  - name: public.ev2
    topics: [events2]
    format: json_schema
    evolve: add_columns
    unmapped: extra
    columns:
      - {name: id, type: int8, path: id}
`)
	ctx := context.Background()
	if err := Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder // New starts nothing that logs meanwhile
	a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.closeCtl()
	fields := []codec.SchemaField{{Name: "id", Type: codec.TypeInt8}, {Name: "ts", Type: codec.TypeInt8},
		{Name: "country", Type: codec.TypeText}, {Name: "attrs", Type: codec.TypeJSONB}, {Name: "plan", Type: codec.TypeText}}
	for range 2 {
		if err := a.evolve(ctx, a.tables[0], fields); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(columnTypes(a.tables[0].cur().cols)); got != "[id int8 ts timestamptz country text attrs jsonb plan text]" {
		t.Fatalf("shape: %s", got)
	}
	// A field named like the unmapped column is kept in it.
	if err := a.evolve(ctx, a.tables[1], []codec.SchemaField{{Name: "id", Type: codec.TypeInt8}, {Name: "extra", Type: codec.TypeText}}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, f := range []string{"field=ts", "field=country"} {
		if n := strings.Count(out, f); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", f, n, out)
		}
	}
	if strings.Contains(out, "field=attrs") || strings.Contains(out, "field=id") || strings.Contains(out, "field=extra") {
		t.Errorf("a field its column reads is logged:\n%s", out)
	}
}

// TestEvolveUnwritableColumnWarnsOnce: a new field whose name the target
// has a column of, of a type Sluice does not write (varchar(10)), is not
// stored, and that is logged once for the table and column. Each decoder
// meeting the writer schema asked again and logged it again: its records
// are on four partitions, spread over two workers (postgres.max_conns:
// 2), each with a decoder of its own.
func TestEvolveUnwritableColumnWarnsOnce(t *testing.T) {
	e := newEnv(t, 4)
	reg, _, id2 := itemSchemas(t, e)
	if _, err := e.db.Exec(e.ctx, `CREATE TABLE public.evolving (id int8 PRIMARY KEY, name text, country varchar(10))`); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	r := e.start(e.configRegistry(reg.URL(), evolvingTable), func(a *App) {
		a.log = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testWriter{t}), nil))
	})
	zz, str := avroLong, avroString
	for p := range int32(4) {
		// id, name, country (union branch 1)
		v := str(zz(str(zz(regFrame(id2), int64(p)), fmt.Sprint("n", p)), 1), "NZ")
		e.produceTo(p, &kgo.Record{Value: v})
	}
	e.waitDrained(4)
	if n := workersOf(r.app, "events"); n != 2 {
		t.Fatalf("the partitions are on %d workers, want 2", n)
	}
	if n := e.count(`SELECT count(*) FROM public.evolving WHERE country IS NULL`); n != 4 {
		t.Errorf("%d rows without the field's value, want 4", n)
	}
	warned := 0
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "cannot write a new field into its column") && strings.Contains(line, "column=country") {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("the column of a type Sluice does not write is logged %d times, want once:\n%s", warned, logs.String())
	}
}
