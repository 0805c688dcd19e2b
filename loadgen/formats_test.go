package loadgen

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bufbuild/protocompile"
	"github.com/hamba/avro/v2"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/sluice-dev/sluice/internal/devenv"
)

var registryFormats = []string{FormatAvro, FormatProtobuf, FormatJSONSchema}

// oracle decodes registry-format records with the reference libraries,
// independently of the generator's encoder: hamba/avro from the schema
// text, dynamicpb from the .proto compiled here, encoding/json.
type oracle struct {
	avro avro.Schema
	md   protoreflect.MessageDescriptor
	// The second schema version's (Options.EvolveAt).
	avro2 avro.Schema
	md2   protoreflect.MessageDescriptor
}

var testOracle = sync.OnceValue(func() *oracle {
	o := &oracle{}
	_, avro2, err := EvolvedReferenceSchema(FormatAvro)
	if err != nil {
		panic(err)
	}
	_, proto2, err := EvolvedReferenceSchema(FormatProtobuf)
	if err != nil {
		panic(err)
	}
	for _, v := range []struct {
		avro, proto string
		as          *avro.Schema
		md          *protoreflect.MessageDescriptor
	}{{AvroReferenceSchema, ProtobufReferenceSchema, &o.avro, &o.md}, {avro2, proto2, &o.avro2, &o.md2}} {
		if *v.as, err = avro.Parse(v.avro); err != nil {
			panic(err)
		}
		c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(map[string]string{"ref.proto": v.proto}),
		})}
		files, err := c.Compile(context.Background(), "ref.proto")
		if err != nil {
			panic(err)
		}
		*v.md = files[0].Messages().ByName("Event")
	}
	return o
})

// formatReason decodes a record of o's registry format the way the
// appliance must and returns the event as JSON, or why it cannot become a
// row: bad_compression, oversized, bad_framing, unknown_schema,
// schema_mismatch, invalid_utf8, nul_in_text, or a JSON kind's reason.
func formatReason(t *testing.T, o Options, cols []Column, r *Rec) (js []byte, reason string) {
	t.Helper()
	v := r.Value
	for _, h := range r.Headers {
		if h.Key == "content-encoding" {
			if string(h.Value) != "zstd" {
				t.Fatalf("unexpected content-encoding %q in this test", h.Value)
			}
			d, _ := zstd.NewReader(nil)
			out, err := d.DecodeAll(v, nil)
			d.Close()
			if err != nil {
				return nil, "bad_compression"
			}
			v = out
		}
	}
	if len(v) > o.MaxValueBytes {
		return nil, "oversized"
	}
	prefix := 5
	if o.Format == FormatProtobuf {
		prefix = 6
	}
	if len(v) < prefix || v[0] != 0 || o.Format == FormatProtobuf && v[5] != 0 {
		return nil, "bad_framing"
	}
	as, md, evolved := testOracle().avro, testOracle().md, false
	switch id := int(binary.BigEndian.Uint32(v[1:5])); {
	case o.EvolveAt > 0 && id == o.EvolvedSchemaID:
		as, md, evolved = testOracle().avro2, testOracle().md2, true
	case id != o.SchemaID:
		return nil, "unknown_schema"
	}
	payload := v[prefix:]
	var ev map[string]any
	switch o.Format {
	case FormatJSONSchema:
		return payload, rowReason(t, cols, &Rec{Value: payload}, o.MaxValueBytes)
	case FormatAvro:
		var m map[string]any
		if err := avro.Unmarshal(as, payload, &m); err != nil {
			return nil, "schema_mismatch"
		}
		// hamba/avro's Unmarshal leaves the fields past the end of a
		// truncated payload unset without an error: the value must encode
		// back to exactly the payload.
		if again, err := avro.Marshal(as, m); err != nil || !bytes.Equal(again, payload) {
			return nil, "schema_mismatch"
		}
		attrs := m["attrs"].(map[string]any)
		ev = map[string]any{
			"event_id": m["event_id"], "tenant_id": m["tenant_id"], "user_id": m["user_id"], "type": m["type"],
			"ts": m["ts"].(time.Time), "amount": json.Number(m["amount"].(*big.Rat).FloatString(2)),
			"version": m["version"], "url": m["url"], "user_agent": m["user_agent"], "attrs": attrs,
		}
		if ch, ok := m[EvolvedField]; evolved && ok && ch != nil {
			ev[EvolvedField] = ch
		}
	case FormatProtobuf:
		msg := dynamicpb.NewMessage(md)
		if err := proto.Unmarshal(payload, msg); err != nil {
			if strings.Contains(err.Error(), "UTF-8") {
				return nil, "invalid_utf8"
			}
			return nil, "schema_mismatch"
		}
		get := func(m protoreflect.Message, name string) protoreflect.Value {
			return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name)))
		}
		ts := get(msg, "ts").Message()
		attrs := map[string]any{}
		am := get(msg, "attrs").Message()
		for _, n := range []string{"country", "device", "session", "experiment"} {
			attrs[n] = get(am, n).String()
		}
		ev = map[string]any{
			"event_id": get(msg, "event_id").String(), "tenant_id": get(msg, "tenant_id").Int(), "user_id": get(msg, "user_id").Int(),
			"type": get(msg, "type").String(), "ts": time.Unix(get(ts, "seconds").Int(), get(ts, "nanos").Int()),
			"amount": json.Number(get(msg, "amount").String()), "version": get(msg, "version").Int(), "url": get(msg, "url").String(),
			"user_agent": get(msg, "user_agent").String(), "attrs": attrs,
		}
		if evolved && msg.Has(md.Fields().ByName(EvolvedField)) {
			ev[EvolvedField] = get(msg, EvolvedField).String()
		}
	default:
		t.Fatalf("format %s is not a registry format", o.Format)
	}
	// Text must be valid UTF-8 without NUL, as for JSON.
	var text []string
	for k, x := range ev {
		switch x := x.(type) {
		case string:
			text = append(text, x)
		case time.Time:
			ev[k] = x.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		}
	}
	for _, x := range ev["attrs"].(map[string]any) {
		text = append(text, x.(string))
	}
	for _, s := range text {
		if !utf8.ValidString(s) {
			return nil, "invalid_utf8"
		}
		if strings.IndexByte(s, 0) >= 0 {
			return nil, "nul_in_text"
		}
	}
	js, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return js, rowReason(t, cols, &Rec{Value: js}, o.MaxValueBytes)
}

// TestFormatsDecodeToEvent: in every registry format, good and dup records
// decode with the reference libraries to exactly the JSON event verify
// compares with; dups re-send the same bytes; each bad kind is rejected
// for its own reason; oversized records are exactly one byte too long.
func TestFormatsDecodeToEvent(t *testing.T) {
	for _, format := range registryFormats {
		t.Run(format, func(t *testing.T) {
			o := Options{Seed: 9, Format: format, SchemaID: 7, Records: 4000, DupRatio: 0.1, UpdateRatio: 0.1,
				Bad: allBadFor(format, 0.02), MaxValueBytes: 4096}
			g, plain := NewGenerator(o), NewGenerator(o)
			plain.plain = true
			var r, p Rec
			var seen KindCounts
			sent := map[[24]byte][]byte{} // by event id and version
			for g.Next(&r) {
				plain.At(r.Index, &p)
				seen[r.Kind]++
				js, reason := formatReason(t, g.Options(), g.Columns(), &r)
				want := ""
				if r.Kind.Bad() {
					want = reasonFor(r.Kind, format)
				}
				if reason != want {
					t.Fatalf("record %d of kind %s: decodes as %q, want %q:\n%q", r.Index, r.Kind, reason, want, r.Value)
				}
				switch {
				case r.Kind == KindOversized:
					if len(r.Value) != o.MaxValueBytes+1 {
						t.Fatalf("oversized record %d has %d bytes, want %d", r.Index, len(r.Value), o.MaxValueBytes+1)
					}
				case !r.Kind.Bad():
					if !equalJSON(js, p.Value) {
						t.Fatalf("record %d decodes to\n%s\nwant the event\n%s", r.Index, js, p.Value)
					}
					ver := [24]byte(append(r.EventID[:], binary.BigEndian.AppendUint64(nil, uint64(r.Version))...))
					if r.Kind == KindDup {
						if !bytes.Equal(sent[ver], r.Value) {
							t.Fatalf("dup record %d does not re-send the bytes of its event's version %d", r.Index, r.Version)
						}
					} else {
						sent[ver] = bytes.Clone(r.Value)
					}
				}
			}
			for k := KindGood; k < numKinds; k++ {
				if (seen[k] == 0) == k.appliesTo(format) {
					t.Errorf("%d records of kind %s (applies to %s: %v)", seen[k], k, format, k.appliesTo(format))
				}
			}
		})
	}
}

// TestFormatsDeterministicAndCompressed: equal options give equal bytes,
// and value compression wraps the framed record.
func TestFormatsDeterministicAndCompressed(t *testing.T) {
	for _, format := range registryFormats {
		o := Options{Seed: 3, Format: format, SchemaID: 12, Records: 500, DupRatio: 0.1,
			Bad: allBadFor(format, 0.02), MaxValueBytes: 4096, ValueCompression: "zstd"}
		a, b := NewGenerator(o), NewGenerator(o)
		var ra, rb Rec
		for a.Next(&ra) {
			b.At(ra.Index, &rb)
			if !bytes.Equal(ra.Value, rb.Value) {
				t.Fatalf("%s: record %d differs between equal generators", format, ra.Index)
			}
			if ra.Kind == KindGood {
				_, reason := formatReason(t, a.Options(), a.Columns(), &ra)
				if reason != "" || len(ra.Headers) != 1 {
					t.Fatalf("%s: compressed good record %d: %q, headers %v", format, ra.Index, reason, ra.Headers)
				}
			}
		}
	}
}

func TestFormatOptions(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Format: "xml"}, "cannot use format"},
		{Options{Format: FormatAvro, Schema: SchemaWide}, "reference schema only"},
		{Options{Format: FormatAvro, Bad: map[Kind]float64{KindWrongType: 0.1}}, "cannot generate wrong_type records in format avro"},
		{Options{Format: FormatJSON, Bad: map[Kind]float64{KindWrongMagic: 0.1}}, "cannot generate wrong_magic records in format json"},
		{Options{Format: FormatProtobuf, SchemaID: -1}, "schema id"},
		{Options{Format: FormatJSONSchema, Bad: allBadFor(FormatJSONSchema, 0.05)}, ""},
		{Options{Format: FormatJSON, EvolveAt: 10}, "needs a registry format"},
		{Options{Format: FormatAvro, EvolveAt: -1}, "cannot evolve the schema at record -1"},
		{Options{Format: FormatAvro, EvolveAt: 10, EvolvedSchemaID: -2}, "evolved schema id"},
		{Options{Format: FormatProtobuf, EvolveAt: 10, EvolvedSchemaID: 3}, ""},
	} {
		err := tc.o.EnsureDefaults().Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
	}
	// A bad ratio spreads over the format's own kinds.
	o := Options{Format: FormatAvro}
	o.SpreadBad(0.06)
	if len(o.Bad) != 6 || o.Bad[KindWrongMagic] != 0.01 || o.Bad[KindWrongType] != 0 {
		t.Fatalf("avro spread: %v", o.Bad)
	}
	o = Options{}
	o.SpreadBad(0.07)
	if len(o.Bad) != 7 || o.Bad[KindWrongMagic] != 0 {
		t.Fatalf("json spread: %v", o.Bad)
	}
	var out bytes.Buffer
	if err := LoadgenMain(context.Background(), []string{"--format", "protobuf", "--registry", "http://127.0.0.1:8081",
		"--print-table-config", "public.events"}, &out, &out); err != nil ||
		!strings.Contains(out.String(), "schema_registry:\n  urls: [http://127.0.0.1:8081]\ntables:\n") ||
		!strings.Contains(out.String(), "  format: protobuf\n") {
		t.Fatalf("table config for protobuf: %v\n%s", err, out.String())
	}
	if _, err := Produce(context.Background(), []string{"127.0.0.1:1"}, Options{Format: FormatAvro, Records: 1}, nil); err == nil ||
		!strings.Contains(err.Error(), "without a schema id") {
		t.Fatalf("producing avro without a schema id: %v", err)
	}
	if _, err := Produce(context.Background(), []string{"127.0.0.1:1"}, Options{Format: FormatAvro, SchemaID: 1, EvolveAt: 5, Records: 10}, nil); err == nil ||
		!strings.Contains(err.Error(), "without the second schema version's id") {
		t.Fatalf("producing avro with EvolveAt without the evolved id: %v", err)
	}
}

// TestVerifyRegistryFormats runs loadgen in each registry format against
// the embedded broker and registry, lands what a read_committed consumer
// sees the way the appliance must (decoding each format), and verifies:
// exactly once, every committed bad record dead-lettered for its reason,
// and a changed value caught.
func TestVerifyRegistryFormats(t *testing.T) {
	addrs := testBroker(t)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	for n, format := range registryFormats {
		t.Run(format, func(t *testing.T) {
			topic := "events_" + format
			url := testDB(t, "verify_"+format)
			manifest := filepath.Join(t.TempDir(), "run.json")
			var out, errOut bytes.Buffer
			err := LoadgenMain(ctx, []string{"--brokers", strings.Join(addrs, ","), "--topic", topic, "--partitions", "2",
				"--records", "2000", "--seed", strconv.Itoa(30 + n), "--format", format, "--registry", reg.URL(),
				"--dup-ratio", "0.05", "--bad-ratio", "0.06", "--bad", "oversized=0.005", "--max-value-bytes", "8192",
				"--transactional", "--abort-ratio", "0.2", "--txn-records", "100", "--value-compression", "zstd",
				"--manifest", manifest, "--quiet"}, &out, &errOut)
			if err != nil {
				t.Fatalf("loadgen: %v\n%s", err, errOut.String())
			}
			m, err := ReadManifest(manifest)
			if err != nil {
				t.Fatal(err)
			}
			if m.Options.Format != format || m.Options.SchemaID == 0 ||
				!strings.Contains(out.String(), fmt.Sprintf("under subject %s: id %d", Subject(topic), m.Options.SchemaID)) {
				t.Fatalf("manifest options %+v, output %q: want the format and the registered id", m.Options, out.String())
			}
			recs := consume(t, addrs, topic, true, int(m.Stats.Committed.Total()))
			app := newAppliance(t, url, m.Options, "public.events")
			app.land(recs)
			rep := mustVerify(t, url, VerifyOptions{Gen: m.Options, Stats: &m.Stats})
			if !rep.OK() || rep.Rows != rep.ExpectedRows || rep.Rows == 0 || rep.ReasonMismatch != 0 {
				t.Fatalf("clean landing should verify:\n%s", summary(rep))
			}
			for k := KindMalformedJSON; k < numKinds; k++ {
				if k.appliesTo(format) && (rep.Committed[k] == 0 || rep.DeadLettersByKind[k] != rep.Committed[k]) {
					t.Fatalf("kind %s: %d dead letters for %d committed:\n%s", k, rep.DeadLettersByKind[k], rep.Committed[k], summary(rep))
				}
			}
			// Verify without the manifest finds the schema id in the registry.
			out.Reset()
			err = VerifyMain(ctx, []string{"--postgres", url, "--topic", topic, "--records", strconv.FormatInt(m.Stats.Records, 10),
				"--seed", strconv.Itoa(30 + n), "--format", format, "--registry", reg.URL(), "--dup-ratio", "0.05", "--bad-ratio", "0.06",
				"--bad", "oversized=0.005", "--max-value-bytes", "8192", "--transactional", "--abort-ratio", "0.2",
				"--txn-records", "100", "--value-compression", "zstd"}, &out, &errOut)
			if err != nil || !strings.Contains(out.String(), "OK: exactly once") {
				t.Fatalf("verify command with --registry: %v\n%s", err, out.String())
			}
			app.exec(`UPDATE public.events SET amount = amount + 0.01 WHERE event_id = (SELECT event_id FROM public.events ORDER BY event_id LIMIT 1)`)
			rep = mustVerify(t, url, VerifyOptions{Gen: m.Options, Stats: &m.Stats})
			if rep.WrongValue != 1 || rep.OK() {
				t.Fatalf("a changed amount should be one wrong value:\n%s", summary(rep))
			}
		})
	}
}

// TestWrongMagicIsNoFraming: a wrong_magic record's first byte is neither
// 0 (an id follows) nor 1 (a GUID follows), so a reader takes it for bad
// framing, never for a framing it accepts (magic 1 read as an unknown GUID
// made it an unknown_schema dead letter, which verify counts as a wrong
// reason).
func TestWrongMagicIsNoFraming(t *testing.T) {
	g := NewGenerator(Options{Seed: 3, Format: FormatAvro, SchemaID: 7, Records: 3000, Bad: map[Kind]float64{KindWrongMagic: 0.9}})
	var r Rec
	n := 0
	for g.Next(&r) {
		if r.Kind != KindWrongMagic {
			continue
		}
		n++
		if r.Value[0] <= 1 {
			t.Fatalf("wrong_magic record %d starts with magic byte %d, a framing readers accept", r.Index, r.Value[0])
		}
	}
	if n < 2000 {
		t.Fatalf("%d wrong_magic records, want most of 3000", n)
	}
}

// TestEvolveAt: with EvolveAt, records from that index on are framed with
// the second schema version's id and decode with it; an event version
// written from EvolveAt on carries a channel drawn by the seed, one
// written before (and its re-sends, wherever they fall) none; every other
// field, and every record before EvolveAt, is what the stream without
// EvolveAt has.
func TestEvolveAt(t *testing.T) {
	const at = 1500
	for _, format := range registryFormats {
		t.Run(format, func(t *testing.T) {
			base := Options{Seed: 19, Format: format, SchemaID: 7, Records: 4000, DupRatio: 0.1, UpdateRatio: 0.1,
				KeyCardinality: 800, Bad: allBadFor(format, 0.02), MaxValueBytes: 4096}
			o := base
			o.EvolveAt, o.EvolvedSchemaID = at, 8
			g, again, plain, plain0 := NewGenerator(o), NewGenerator(o), NewGenerator(o), NewGenerator(base)
			plain.plain, plain0.plain = true, true
			g0 := NewGenerator(base)
			var r, r2, p, p0, r0 Rec
			var withChannel, nullAfter, dupsOfOld int
			for g.Next(&r) {
				again.At(r.Index, &r2)
				if !bytes.Equal(r.Value, r2.Value) {
					t.Fatalf("record %d differs between equal generators", r.Index)
				}
				if r.Index < at {
					g0.At(r.Index, &r0)
					if !bytes.Equal(r.Value, r0.Value) {
						t.Fatalf("record %d, before EvolveAt, differs from the stream without it", r.Index)
					}
				}
				wantID := uint32(o.SchemaID)
				if r.Index >= at {
					wantID = uint32(o.EvolvedSchemaID)
				}
				if r.Kind != KindWrongMagic && r.Kind != KindUnknownSchema && r.Kind != KindBadCompression &&
					len(r.Value) >= 5 && binary.BigEndian.Uint32(r.Value[1:5]) != wantID {
					t.Fatalf("record %d (%s) is framed with schema id %d, want %d", r.Index, r.Kind, binary.BigEndian.Uint32(r.Value[1:5]), wantID)
				}
				js, reason := formatReason(t, o, append(slices.Clip(g.Columns()), Column{Name: EvolvedField, Type: "text", Path: EvolvedField}), &r)
				want := ""
				if r.Kind.Bad() {
					want = reasonFor(r.Kind, format)
				}
				if reason != want {
					t.Fatalf("record %d of kind %s: decodes as %q, want %q", r.Index, r.Kind, reason, want)
				}
				if r.Kind.Bad() {
					continue
				}
				plain.At(r.Index, &p)
				plain0.At(r.Index, &p0)
				if !equalJSON(js, p.Value) {
					t.Fatalf("record %d decodes to\n%s\nwant the event\n%s", r.Index, js, p.Value)
				}
				var ev, ev0 map[string]any
				if err := json.Unmarshal(p.Value, &ev); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(p0.Value, &ev0); err != nil {
					t.Fatal(err)
				}
				ch, has := ev[EvolvedField]
				delete(ev, EvolvedField)
				if !reflect.DeepEqual(ev, ev0) {
					t.Fatalf("record %d: the fields besides %s differ from the stream without EvolveAt:\n%s\n%s", r.Index, EvolvedField, p.Value, p0.Value)
				}
				src := r.Version - 1
				switch {
				case src >= at && (!has || !slices.Contains(channels, ch.(string))):
					t.Fatalf("record %d (%s) writes version %d, from EvolveAt on, without a channel: %s", r.Index, r.Kind, r.Version, p.Value)
				case src < at && has:
					t.Fatalf("record %d (%s) writes version %d, from before EvolveAt, with a channel: %s", r.Index, r.Kind, r.Version, p.Value)
				case has:
					withChannel++
				case r.Index >= at:
					nullAfter++
					if r.Kind == KindDup {
						dupsOfOld++
					}
				}
			}
			if withChannel == 0 || dupsOfOld == 0 {
				t.Fatalf("%d records with a channel, %d re-sends of older versions after EvolveAt: want some of each", withChannel, dupsOfOld)
			}
		})
	}
}

// TestVerifyEvolveAt: a stream that moves to the second schema version
// partway (--evolve-at) registers both versions, lands with the channel
// column NULL for the versions written before and set after, and verifies
// under on_conflict update guarded by the version (the newest version's
// channel) and without the manifest (both ids from the registry); a
// channel lost, or one where NULL belongs, is a wrong value.
func TestVerifyEvolveAt(t *testing.T) {
	addrs := testBroker(t)
	reg, err := devenv.StartRegistry(devenv.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	ctx := context.Background()
	for n, format := range registryFormats {
		t.Run(format, func(t *testing.T) {
			topic := "evolve_" + format
			url := testDB(t, "evolve_"+format)
			manifest := filepath.Join(t.TempDir(), "run.json")
			flags := []string{"--topic", topic, "--records", "3000", "--seed", strconv.Itoa(50 + n), "--format", format,
				"--registry", reg.URL(), "--keys", "null", "--key-cardinality", "400", "--update-ratio", "0.2", "--dup-ratio", "0.1",
				"--bad-ratio", "0.03", "--evolve-at", "1200"}
			var out, errOut bytes.Buffer
			err := LoadgenMain(ctx, append([]string{"--brokers", strings.Join(addrs, ","), "--partitions", "3",
				"--manifest", manifest, "--quiet"}, flags...), &out, &errOut)
			if err != nil {
				t.Fatalf("loadgen: %v\n%s", err, errOut.String())
			}
			m, err := ReadManifest(manifest)
			if err != nil {
				t.Fatal(err)
			}
			if m.Options.EvolveAt != 1200 || m.Options.EvolvedSchemaID == 0 || m.Options.EvolvedSchemaID == m.Options.SchemaID ||
				!strings.Contains(out.String(), fmt.Sprintf("second version (field channel added) under subject %s: id %d", Subject(topic), m.Options.EvolvedSchemaID)) {
				t.Fatalf("manifest options %+v, output %q: want both registered ids", m.Options, out.String())
			}
			recs := consume(t, addrs, topic, true, int(m.Stats.Committed.Total()))
			app := newAppliance(t, url, m.Options, "public.events")
			app.guard = "version"
			app.land(recs)
			vo := VerifyOptions{Gen: m.Options, Stats: &m.Stats, OnConflict: "update", Guard: "version"}
			rep := mustVerify(t, url, vo)
			if !rep.OK() || rep.Rows != rep.ExpectedRows || rep.Rows == 0 {
				t.Fatalf("clean landing should verify:\n%s", summary(rep))
			}
			var set, null int64
			if err := app.conn.QueryRow(ctx, `SELECT count(channel), count(*) - count(channel) FROM public.events`).Scan(&set, &null); err != nil {
				t.Fatal(err)
			}
			if set == 0 || null == 0 {
				t.Fatalf("%d rows with a channel, %d without: want both", set, null)
			}
			out.Reset()
			err = VerifyMain(ctx, append([]string{"--postgres", url, "--on-conflict", "update", "--guard", "version"}, flags...), &out, &errOut)
			if err != nil || !strings.Contains(out.String(), "OK: exactly once") {
				t.Fatalf("verify command with --registry: %v\n%s%s", err, out.String(), errOut.String())
			}
			app.exec(`UPDATE public.events SET channel = 'web' WHERE event_id = (SELECT event_id FROM public.events WHERE channel IS NULL ORDER BY event_id LIMIT 1)`)
			mustCatch(t, url, vo, "wrong-valued rows", `column channel is "web", want NULL`)
			app.exec(`UPDATE public.events SET channel = NULL WHERE event_id = (SELECT event_id FROM public.events WHERE channel <> 'web' ORDER BY event_id LIMIT 1)`)
			rep = mustCatch(t, url, vo, "wrong-valued rows", "column channel is NULL")
			if rep.WrongValue != 2 {
				t.Fatalf("want 2 wrong values:\n%s", summary(rep))
			}
		})
	}
}
