package loadgen

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
	"gopkg.in/yaml.v3"
)

// allBad gives every bad kind of the JSON format the same ratio.
func allBad(ratio float64) map[Kind]float64 { return allBadFor(FormatJSON, ratio) }

func allBadFor(format string, ratio float64) map[Kind]float64 {
	m := make(map[Kind]float64)
	for k := KindMalformedJSON; k < numKinds; k++ {
		if k.appliesTo(format) {
			m[k] = ratio
		}
	}
	return m
}

func TestGeneratorDeterministic(t *testing.T) {
	for _, schema := range []string{SchemaReference, SchemaNarrow, SchemaWide} {
		for _, vc := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
			o := Options{Seed: 42, Schema: schema, Records: 2000, DupRatio: 0.1, KeyCardinality: 500,
				Bad: allBad(0.01), MaxValueBytes: 4096, ValueCompression: vc, Transactional: true, AbortRatio: 0.3, TxnRecords: 100}
			a, b := NewGenerator(o), NewGenerator(o)
			other := o
			other.Seed = 43
			c := NewGenerator(other)
			var ra, rb, rc, rr Rec
			same := 0
			for a.Next(&ra) {
				if !b.Next(&rb) || !c.Next(&rc) {
					t.Fatalf("%s/%s: streams of equal length ended at different records", schema, vc)
				}
				if ra.Kind != rb.Kind || ra.EventID != rb.EventID || !bytes.Equal(ra.Key, rb.Key) ||
					!bytes.Equal(ra.Value, rb.Value) || len(ra.Headers) != len(rb.Headers) {
					t.Fatalf("%s/%s: record %d differs between two generators with the same seed", schema, vc, ra.Index)
				}
				if bytes.Equal(ra.Value, rc.Value) {
					same++
				}
				// Random access gives the same record as the stream.
				if ra.Index%97 == 0 {
					a2 := NewGenerator(o)
					a2.At(ra.Index, &rr)
					if !bytes.Equal(rr.Value, ra.Value) || rr.Kind != ra.Kind {
						t.Fatalf("%s/%s: At(%d) differs from the streamed record", schema, vc, ra.Index)
					}
				}
			}
			if b.Next(&rb) {
				t.Fatalf("%s/%s: second generator has more records", schema, vc)
			}
			if same > 0 {
				t.Fatalf("%s/%s: %d records identical across seeds 42 and 43", schema, vc, same)
			}
		}
	}
}

func TestGeneratorDupsAreVerbatim(t *testing.T) {
	o := Options{Seed: 7, Records: 5000, DupRatio: 0.2, ValueCompression: "zstd"}
	g := NewGenerator(o)
	seen := map[[16]byte][]byte{}
	var r Rec
	dups := 0
	for g.Next(&r) {
		prev, ok := seen[r.EventID]
		switch r.Kind {
		case KindDup:
			dups++
			if !ok {
				t.Fatalf("dup record %d re-sends event %s that was never sent", r.Index, r.Key)
			}
			if !bytes.Equal(prev, r.Value) {
				t.Fatalf("dup record %d differs from the original bytes", r.Index)
			}
		case KindGood:
			if ok {
				t.Fatalf("good record %d reuses event id %s without key cardinality", r.Index, r.Key)
			}
			seen[r.EventID] = bytes.Clone(r.Value)
		}
	}
	if dups < 800 {
		t.Fatalf("only %d dups in 5000 records at ratio 0.2", dups)
	}
}

func TestGeneratorRatios(t *testing.T) {
	const n = 10000
	o := Options{Seed: 1, Records: n, DupRatio: 0.1, Bad: map[Kind]float64{}, MaxValueBytes: 2048}
	for k := KindMalformedJSON; k < numKinds; k++ {
		if k.appliesTo(FormatJSON) {
			o.Bad[k] = 0.01 * float64(k-KindMalformedJSON+1) // 1%..8%
		}
	}
	g := NewGenerator(o)
	var counts KindCounts
	var r Rec
	for g.Next(&r) {
		counts[r.Kind]++
	}
	check := func(k Kind, want float64) {
		t.Helper()
		got := float64(counts[k]) / n
		// Four binomial standard deviations.
		tol := 4 * math.Sqrt(want*(1-want)/n)
		if math.Abs(got-want) > tol {
			t.Errorf("kind %s: ratio %.4f, want %.4f ± %.4f", k, got, want, tol)
		}
	}
	check(KindDup, 0.1)
	for k := KindMalformedJSON; k < numKinds; k++ {
		check(k, o.Bad[k])
	}

	// Aborted transactions.
	o = Options{Seed: 3, Records: 1, Transactional: true, AbortRatio: 0.25}
	g = NewGenerator(o)
	aborted := 0
	for txn := int64(0); txn < n; txn++ {
		if g.TxnAborted(txn) {
			aborted++
		}
	}
	if got := float64(aborted) / n; math.Abs(got-0.25) > 4*math.Sqrt(0.25*0.75/n) {
		t.Errorf("abort ratio %.4f, want 0.25", got)
	}

	// Key cardinality bounds the distinct ids of good records.
	o = Options{Seed: 3, Records: n, KeyCardinality: 100}
	g = NewGenerator(o)
	ids := map[[16]byte]bool{}
	for g.Next(&r) {
		ids[r.EventID] = true
	}
	if len(ids) != 100 {
		t.Errorf("key cardinality 100 gave %d distinct ids over %d records", len(ids), n)
	}
}

func TestGeneratorSizes(t *testing.T) {
	for _, tc := range []struct {
		schema string
		size   int
		want   int
	}{
		{SchemaReference, 0, 480}, {SchemaNarrow, 0, 120}, {SchemaWide, 0, 2000},
		{SchemaReference, 1000, 1000}, {SchemaReference, 10000, 10000},
	} {
		g := NewGenerator(Options{Seed: 9, Schema: tc.schema, Records: 2000, ValueSize: tc.size})
		var r Rec
		total, lo, hi := 0, math.MaxInt, 0
		for g.Next(&r) {
			total += len(r.Value)
			lo, hi = min(lo, len(r.Value)), max(hi, len(r.Value))
		}
		mean := total / 2000
		if mean < tc.want*95/100 || mean > tc.want*105/100 {
			t.Errorf("%s with value size %d: mean %d bytes, want about %d", tc.schema, tc.size, mean, tc.want)
		}
		if tc.size >= 1000 && (hi-lo) < tc.size/2 {
			t.Errorf("%s with value size %d: sizes span only %d..%d, want a spread", tc.schema, tc.size, lo, hi)
		}
	}
}

// rowReason checks a value against a schema's columns the way the appliance
// must, and returns why it cannot become a row ("" when it can).
func rowReason(t *testing.T, cols []Column, r *Rec, maxBytes int) string {
	t.Helper()
	v := r.Value
	for _, h := range r.Headers {
		if h.Key == "content-encoding" {
			d, _ := zstd.NewReader(nil)
			defer d.Close()
			if string(h.Value) != "zstd" {
				t.Fatalf("unexpected content-encoding %q in this test", h.Value)
			}
			out, err := d.DecodeAll(v, nil)
			if err != nil {
				return "bad_compression"
			}
			v = out
		}
	}
	if len(v) > maxBytes {
		return "oversized"
	}
	if !utf8.Valid(v) {
		return "invalid_utf8"
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || dec.More() {
		return "malformed_json"
	}
	for _, c := range cols {
		if c.Path == "" {
			continue
		}
		var x any = m
		for _, p := range strings.Split(c.Path, ".") {
			if o, ok := x.(map[string]any); ok {
				x = o[p]
			} else {
				x = nil
			}
		}
		if x == nil {
			if c.Required {
				return "missing_required"
			}
			continue
		}
		switch c.Type {
		case "uuid", "text", "timestamptz":
			s, ok := x.(string)
			if !ok {
				return "wrong_type"
			}
			if strings.ContainsRune(s, 0) {
				return "nul_in_text"
			}
			if c.Type == "uuid" {
				if _, ok := parseUUID([]byte(s)); !ok {
					return "wrong_type"
				}
			}
			if c.Type == "timestamptz" {
				if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					return "wrong_type"
				}
			}
		case "int8", "int4", "numeric", "float8":
			num, ok := x.(json.Number)
			if !ok {
				return "wrong_type"
			}
			switch c.Type {
			case "int8":
				if _, err := strconv.ParseInt(string(num), 10, 64); err != nil {
					return "out_of_range"
				}
			case "float8", "numeric":
				if f, err := strconv.ParseFloat(string(num), 64); err != nil || math.IsInf(f, 0) {
					return "out_of_range"
				}
			}
		case "bool":
			if _, ok := x.(bool); !ok {
				return "wrong_type"
			}
		case "jsonb":
			if _, ok := x.(map[string]any); !ok {
				return "wrong_type"
			}
		default:
			t.Fatalf("column %s: type %s not handled by the test", c.Name, c.Type)
		}
	}
	return ""
}

func TestBadKindsAreInvalid(t *testing.T) {
	for _, schema := range []string{SchemaReference, SchemaNarrow, SchemaWide} {
		o := Options{Seed: 5, Schema: schema, Records: 4000, DupRatio: 0.1, Bad: allBad(0.05), MaxValueBytes: 4096}
		if schema != SchemaWide {
			o.UpdateRatio = 0.1
		}
		g := NewGenerator(o)
		var r Rec
		var seen KindCounts
		for g.Next(&r) {
			seen[r.Kind]++
			got := rowReason(t, g.Columns(), &r, o.MaxValueBytes)
			want := ""
			if r.Kind.Bad() {
				want = reasons[r.Kind]
			}
			if got != want {
				t.Fatalf("%s: record %d of kind %s: the appliance would see %q, want %q:\n%q", schema, r.Index, r.Kind, got, want, r.Value)
			}
			if id, ok := parseUUID(r.Key); !ok || id != r.EventID {
				t.Fatalf("%s: record %d has key %q, want its event id", schema, r.Index, r.Key)
			}
		}
		for k := KindGood; k < numKinds; k++ {
			if seen[k] == 0 && k.appliesTo(FormatJSON) && (k != KindUpdate || o.UpdateRatio > 0) {
				t.Errorf("%s: no record of kind %s in 4000", schema, k)
			}
		}
	}
}

func TestTableConfigYAML(t *testing.T) {
	for _, schema := range []string{SchemaReference, SchemaNarrow, SchemaWide} {
		doc := "tables:\n" + TableConfigYAML(schema, "public.events_"+schema, "events")
		var cfg struct {
			Tables []map[string]any `yaml:"tables"`
		}
		if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
			t.Fatalf("%s: %v\n%s", schema, err, doc)
		}
		if len(cfg.Tables) != 1 {
			t.Fatalf("%s: %d tables", schema, len(cfg.Tables))
		}
		tb := cfg.Tables[0]
		want := []string{"name", "topics", "format", "create", "columns"}
		keyed := schema != SchemaWide
		if keyed {
			want = append(want, "key", "on_conflict")
		}
		if len(tb) != len(want) {
			t.Errorf("%s: keys %v, want %v", schema, tb, want)
		}
		for _, k := range want {
			if _, ok := tb[k]; !ok {
				t.Errorf("%s: key %s missing", schema, k)
			}
		}
		if tb["name"] != "public.events_"+schema || tb["format"] != "json" || tb["create"] != true {
			t.Errorf("%s: name/format/create = %v/%v/%v", schema, tb["name"], tb["format"], tb["create"])
		}
		if tp, _ := tb["topics"].([]any); len(tp) != 1 || tp[0] != "events" {
			t.Errorf("%s: topics %v", schema, tb["topics"])
		}
		if keyed {
			if k, _ := tb["key"].([]any); len(k) != 1 || tb["on_conflict"] != "ignore" {
				t.Errorf("%s: key %v on_conflict %v", schema, tb["key"], tb["on_conflict"])
			}
		}
		cols, _ := tb["columns"].([]any)
		g := NewGenerator(Options{Schema: schema})
		if len(cols) != len(g.Columns()) {
			t.Fatalf("%s: %d columns, want %d", schema, len(cols), len(g.Columns()))
		}
		for i, c := range cols {
			m := c.(map[string]any)
			wc := g.Columns()[i]
			for k := range m {
				switch k {
				case "name", "type", "path", "source", "required":
				default:
					t.Errorf("%s: column %d has unknown key %s", schema, i, k)
				}
			}
			if m["name"] != wc.Name || m["type"] != wc.Type {
				t.Errorf("%s: column %d is %v, want %+v", schema, i, m, wc)
			}
			if wc.Path != "" && m["path"] != wc.Path || wc.Source != "" && m["source"] != wc.Source {
				t.Errorf("%s: column %d is %v, want %+v", schema, i, m, wc)
			}
			if (m["required"] == true) != wc.Required {
				t.Errorf("%s: column %s required=%v", schema, wc.Name, m["required"])
			}
		}
	}
	// The reference table is the documented one.
	ref := TableConfigYAML(SchemaReference, "public.events", "events")
	for _, line := range []string{
		"key: [event_id]",
		"{name: event_id, type: uuid, path: event_id, required: true}",
		"{name: country, type: text, path: attrs.country}",
		"{name: src_offset, type: int8, source: kafka.offset}",
		"{name: attrs, type: jsonb, path: attrs}",
	} {
		if !strings.Contains(ref, line) {
			t.Errorf("reference table config lacks %q:\n%s", line, ref)
		}
	}
}

func TestGeneratorAllocs(t *testing.T) {
	g := NewGenerator(Options{Seed: 1, DupRatio: 0.05, Bad: map[Kind]float64{KindWrongType: 0.01, KindNUL: 0.01}})
	var r Rec
	for range 100 {
		g.Next(&r) // grow buffers
	}
	if a := testing.AllocsPerRun(1000, func() { g.Next(&r) }); a != 0 {
		t.Fatalf("Next allocates %.1f times per record, want 0", a)
	}
}

func TestTimestampFormat(t *testing.T) {
	for _, ms := range []int64{0, baseMs, baseMs + 86399999, 951782400000 /* 2000-02-29 */, 4102444799999} {
		got := string(appendTimestampMs(nil, ms))
		want := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
		if got != want {
			t.Errorf("%d: %s, want %s", ms, got, want)
		}
	}
}
