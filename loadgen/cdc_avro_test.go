package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/codec"
	"github.com/sluice-dev/sluice/internal/devenv"
)

// cdcDecoder is a Debezium decoder for the cdc workload's table; for
// converter avro it holds the Envelope as id 7 and the Key as id 8.
func cdcDecoder(t *testing.T, conv codec.Converter) *codec.Decoder {
	t.Helper()
	var cols []codec.Column
	for _, c := range cdcColumns {
		col, err := codec.ParseColumn(c.Name, c.Type, c.Source, c.Path, c.Required)
		if err != nil {
			t.Fatal(err)
		}
		col.Key = c.Name == "id"
		cols = append(cols, col)
	}
	d, err := codec.NewDecoder(codec.FormatDebezium, cols, codec.Options{MaxRecordBytes: 1 << 20, Converter: conv})
	if err != nil {
		t.Fatal(err)
	}
	if conv == codec.ConverterAvro {
		if err := d.AddSchema(codec.SchemaRef{ID: 7}, &codec.Schema{Text: CDCAvroValueSchema}); err != nil {
			t.Fatal(err)
		}
		if err := d.AddKeySchema(codec.SchemaRef{ID: 8}, &codec.Schema{Text: CDCAvroKeySchema}); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// TestCDCAvroMatchesJSON: the cdc workload in format avro is the JSON
// workload's stream, record for record: the same kinds, rows and LSNs;
// each framed value decodes, with codec's Debezium decoder for
// AvroConverter, to the fields the JSON event (with its Connect schema)
// decodes to; keys are framed Avro keys of the row id; tombstones stay
// null.
func TestCDCAvroMatchesJSON(t *testing.T) {
	base := Options{Workload: WorkloadCDC, Seed: 5, Records: 3000, DupRatio: 0.03, CDCUpdates: 0.5, CDCDeletes: 0.1, CDCReplays: 0.03, CDCToast: 0.5}
	jo := base
	jo.CDCSchema = true
	ao := base
	ao.Format, ao.SchemaID, ao.KeySchemaID = FormatAvro, 7, 8
	jg, ag := NewGenerator(jo), NewGenerator(ao)
	jd, ad := cdcDecoder(t, codec.ConverterJSON), cdcDecoder(t, codec.ConverterAvro)
	ks := avro.MustParse(CDCAvroKeySchema)
	var jr, ar Rec
	var jf, af []byte
	kinds := map[Kind]int{}
	now := time.Now()
	for jg.Next(&jr) {
		if !ag.Next(&ar) {
			t.Fatal("the avro stream ended early")
		}
		i := jr.Index
		if ar.Kind != jr.Kind || ar.ID != jr.ID || ar.Version != jr.Version {
			t.Fatalf("record %d: avro %s id %d version %d, json %s id %d version %d", i, ar.Kind, ar.ID, ar.Version, jr.Kind, jr.ID, jr.Version)
		}
		kinds[ar.Kind]++
		if len(ar.Key) < 5 || ar.Key[0] != 0 || binary.BigEndian.Uint32(ar.Key[1:]) != 8 {
			t.Fatalf("record %d: key %x is not framed with id 8", i, ar.Key)
		}
		var k struct {
			ID int64 `avro:"id"`
		}
		if err := avro.Unmarshal(ks, ar.Key[5:], &k); err != nil || k.ID != ar.ID {
			t.Fatalf("record %d: key %x decodes to %d (%v), want %d", i, ar.Key, k.ID, err, ar.ID)
		}
		if ar.Kind == KindTombstone {
			if ar.Value != nil || jr.Value != nil {
				t.Fatalf("record %d: a tombstone's value is %x, want null", i, ar.Value)
			}
			continue
		}
		if ar.Value[0] != 0 || binary.BigEndian.Uint32(ar.Value[1:]) != 7 {
			t.Fatalf("record %d: value %x is not framed with id 7", i, ar.Value[:8])
		}
		var err error
		jf, err = jd.AppendFields(jf[:0], &codec.Record{Offset: i, Timestamp: now, Key: jr.Key, Value: jr.Value})
		if err != nil {
			t.Fatalf("record %d: json: %v", i, err)
		}
		af, err = ad.AppendFields(af[:0], &codec.Record{Offset: i, Timestamp: now, Key: ar.Key, Value: ar.Value})
		if err != nil {
			t.Fatalf("record %d: avro: %v", i, err)
		}
		if !bytes.Equal(af, jf) {
			t.Fatalf("record %d (%s): avro decodes to\n%q\njson to\n%q", i, ar.Kind, af, jf)
		}
	}
	for _, k := range []Kind{KindGood, KindUpdate, KindDelete, KindTombstone, KindDup, KindReplay} {
		if kinds[k] == 0 {
			t.Errorf("no %s records in %v", k, kinds)
		}
	}
}

// TestCDCAvroBad: bad records of the framing kinds are dead letters with
// their kind's reason, the source table is left as it was, and the JSON
// cdc workload or other kinds refuse them.
func TestCDCAvroBad(t *testing.T) {
	o := Options{Workload: WorkloadCDC, Seed: 2, Records: 2000, Format: FormatAvro, SchemaID: 7, KeySchemaID: 8, CDCUpdates: 0.4, CDCDeletes: 0.1}
	o.SpreadBad(0.06)
	if len(o.Bad) != 3 || o.Bad[KindTruncated] != 0.02 {
		t.Fatalf("SpreadBad: %v, want the three framing kinds", o.Bad)
	}
	d := cdcDecoder(t, codec.ConverterAvro)
	g := NewGenerator(o)
	var r Rec
	bad := map[Kind]int{}
	for g.Next(&r) {
		_, err := d.AppendFields(nil, &codec.Record{Offset: r.Index, Key: r.Key, Value: r.Value})
		if !r.Kind.Bad() {
			if err != nil {
				t.Fatalf("record %d (%s): %v", r.Index, r.Kind, err)
			}
			continue
		}
		bad[r.Kind]++
		var re *codec.RowError
		var need *codec.SchemaNeededError
		switch {
		case r.Kind == KindUnknownSchema && errors.As(err, &need):
			if need.Ref.ID < unknownSchemaID {
				t.Fatalf("record %d: asks for schema %d", r.Index, need.Ref.ID)
			}
		case !errors.As(err, &re) || string(re.Reason) != reasonFor(r.Kind, o.Format):
			t.Fatalf("record %d (%s): got %v, want reason %s", r.Index, r.Kind, err, reasonFor(r.Kind, o.Format))
		}
	}
	if len(bad) != 3 {
		t.Errorf("bad kinds %v, want all three", bad)
	}
	// Bad records take the place of fresh changes and change no row.
	clean := o
	clean.Bad = nil
	if got, want := CDCRows(o, o.Records), CDCRows(clean, o.Records); got == 0 || got > want+want/10 {
		t.Errorf("rows %d with bad records, %d without", got, want)
	}

	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Workload: WorkloadCDC, Bad: map[Kind]float64{KindTruncated: 0.1}}, "cannot generate bad records in the cdc workload's JSON"},
		{Options{Workload: WorkloadCDC, Format: FormatAvro, Bad: map[Kind]float64{KindNUL: 0.1}}, "use wrong_magic, truncated or unknown_schema"},
		{Options{Workload: WorkloadCDC, Format: FormatAvro, CDCSchema: true}, "drop --cdc-schema"},
		{Options{Workload: WorkloadCDC, Format: FormatProtobuf}, "use --format json or avro"},
	} {
		if err := c.o.EnsureDefaults().Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.o, err, c.want)
		}
	}
}

// TestCDCAvroTableConfig: the printed table of format avro reads the
// events through converter avro.
func TestCDCAvroTableConfig(t *testing.T) {
	y := TableSpec{Workload: WorkloadCDC, Format: FormatAvro, Table: "public.orders", Topic: "shop.public.orders"}.YAML()
	if !strings.Contains(y, "  format: debezium\n  converter: avro\n") {
		t.Errorf("table:\n%s", y)
	}
	if y := (TableSpec{Workload: WorkloadCDC, Table: "t", Topic: "t"}).YAML(); strings.Contains(y, "converter") {
		t.Errorf("json table:\n%s", y)
	}
}

// TestCDCAvroEndToEnd: sluice loadgen --workload cdc --format avro
// registers the Envelope and Key and produces the stream with bad records;
// the appliance, configured with the table --print-table-config prints,
// lands it; sluice verify finds the source's final state and a dead
// letter for every bad record, exactly once.
func TestCDCAvroEndToEnd(t *testing.T) {
	addrs := testBroker(t)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	url := testDB(t, "cdc_avro")
	ctx := context.Background()
	const topic = "shop.public.orders"
	gen := []string{"--workload", "cdc", "--format", "avro", "--topic", topic, "--seed", "4", "--dup-ratio", "0.03",
		"--cdc-replays", "0.03", "--bad-ratio", "0.03"}
	var cfg, out, errOut bytes.Buffer
	if err := LoadgenMain(ctx, append(gen, "--registry", reg.URL(), "--print-table-config", "public.orders"), &cfg, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.String(), "schema_registry:") || !strings.Contains(cfg.String(), "converter: avro") {
		t.Fatalf("table config:\n%s", cfg.String())
	}
	manifest := filepath.Join(t.TempDir(), "run.json")
	args := append(gen, "--brokers", strings.Join(addrs, ","), "--registry", reg.URL(), "--partitions", "3",
		"--records", "3000", "--manifest", manifest, "--quiet")
	if err := LoadgenMain(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("loadgen: %v\n%s", err, errOut.String())
	}
	m, err := ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if m.Options.SchemaID == 0 || m.Options.KeySchemaID == 0 || m.Options.SchemaID == m.Options.KeySchemaID ||
		!strings.Contains(out.String(), fmt.Sprintf("its Key under %s: id %d", KeySubject(topic), m.Options.KeySchemaID)) {
		t.Fatalf("manifest options %+v, output %q: want both registered ids", m.Options, out.String())
	}
	drainCDCConfig(t, url, addrs, topic, 200, cfg.String())

	rep := mustVerify(t, url, VerifyOptions{Gen: m.Options, Stats: &m.Stats, Table: "public.orders", AllowStaleToast: true})
	if !rep.OK() || rep.Rows == 0 || rep.Rows != rep.ExpectedRows || rep.Committed[KindDelete] == 0 || rep.Committed[KindReplay] == 0 {
		t.Fatalf("\n%s", summary(rep))
	}
	for k := KindWrongMagic; k <= KindUnknownSchema; k++ {
		if rep.Committed[k] == 0 || rep.DeadLettersByKind[k] != rep.Committed[k] {
			t.Fatalf("kind %s: %d dead letters for %d committed:\n%s", k, rep.DeadLettersByKind[k], rep.Committed[k], summary(rep))
		}
	}
	// The command, from the manifest and from the flags with the registry.
	out.Reset()
	if err := VerifyMain(ctx, []string{"--postgres", url, "--table", "public.orders", "--allow-stale-toast", "--manifest", manifest}, &out, &errOut); err != nil ||
		!strings.Contains(out.String(), "OK: exactly once") {
		t.Fatalf("verify --manifest: %v\n%s", err, out.String())
	}
	out.Reset()
	err = VerifyMain(ctx, append(gen, "--postgres", url, "--table", "public.orders", "--allow-stale-toast", "--registry", reg.URL(),
		"--records", strconv.FormatInt(m.Stats.Records, 10)), &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "OK: exactly once") {
		t.Fatalf("verify --registry: %v\n%s", err, out.String())
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	// A dead letter moved to another record of its kind, or to a good
	// change, is caught though each kind keeps its count.
	type deadLetter struct {
		partition  int32
		offset     int64
		key, value []byte
	}
	var dls []deadLetter
	rows, err := db.Query(ctx, `SELECT partition, "offset", key, value FROM sluice.dead_letters WHERE strpos(error, $1) > 0 ORDER BY partition, "offset"`,
		reasonFor(KindUnknownSchema, FormatAvro))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d deadLetter
		if err := rows.Scan(&d.partition, &d.offset, &d.key, &d.value); err != nil {
			t.Fatal(err)
		}
		dls = append(dls, d)
	}
	if rows.Close(); rows.Err() != nil || len(dls) < 2 {
		t.Fatalf("unknown_schema dead letters: %d, %v", len(dls), rows.Err())
	}
	x, y := dls[0], dls[1]
	for _, d := range dls[1:] {
		if !bytes.Equal(d.key, x.key) && !bytes.Equal(d.value, x.value) {
			y = d
			break
		}
	}
	var good Rec
	NewGenerator(m.Options).At(0, &good) // the first insert
	if good.Kind != KindGood {
		t.Fatalf("record 0 is %s", good.Kind)
	}
	for _, tc := range []struct {
		name       string
		key, value []byte
		ok         func(Report) bool
	}{
		{"another record's bytes", y.key, y.value, func(r Report) bool { return r.DeadLetterDuplicated == 1 && r.DeadLetterMissing.Total() == 1 }},
		{"another record's key", y.key, x.value, func(r Report) bool { return r.DeadLetterWrongValue == 1 }},
		{"a good change's bytes", good.Key, good.Value, func(r Report) bool { return r.GoodDeadLettered == 1 && r.DeadLetterMissing.Total() == 1 }},
	} {
		move := func(key, value []byte) {
			t.Helper()
			if _, err := db.Exec(ctx, `UPDATE sluice.dead_letters SET key = $1, value = $2 WHERE partition = $3 AND "offset" = $4`, key, value, x.partition, x.offset); err != nil {
				t.Fatal(err)
			}
		}
		move(tc.key, tc.value)
		rep = mustVerify(t, url, VerifyOptions{Gen: m.Options, Stats: &m.Stats, Table: "public.orders", AllowStaleToast: true})
		if rep.OK() || !tc.ok(rep) {
			t.Errorf("a dead letter with %s:\n%s", tc.name, summary(rep))
		}
		move(x.key, x.value)
	}
	// A missing dead letter is caught.
	if _, err := db.Exec(ctx, `DELETE FROM sluice.dead_letters WHERE ctid = (SELECT ctid FROM sluice.dead_letters LIMIT 1)`); err != nil {
		t.Fatal(err)
	}
	if rep = mustVerify(t, url, VerifyOptions{Gen: m.Options, Stats: &m.Stats, Table: "public.orders", AllowStaleToast: true}); rep.OK() || rep.DeadLetterMissing.Total() != 1 {
		t.Fatalf("a dead letter removed:\n%s", summary(rep))
	}
}
