package codec

import (
	"strings"
	"testing"
	"time"
)

// TestZeroAllocs asserts the steady state allocates nothing per record,
// plain, with escapes, and under every content-encoding.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	d := mustDecoder(t, FormatJSON, referenceColumns, Options{})
	rec := &Record{Topic: "events", Partition: 1, Offset: 42, Timestamp: time.Now(), Value: referenceEvent}
	zrec := &Record{Topic: "events", Partition: 1, Offset: 43, Timestamp: time.Now(),
		Value: compressed(t, "zstd", referenceEvent), Headers: []Header{{Key: "content-encoding", Value: []byte("zstd")}}}
	escaped := &Record{Value: []byte(`{"event_id":"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01","type":"caf\u00e9 \ud83d\ude00",` +
		`"amount":"-12345678901234.5678e-3","ts":1730419201234,"attrs":{"country":"D\u0045"}}`)}
	dst := make([]byte, 0, 4096)
	for name, r := range map[string]*Record{"plain": rec, "zstd": zrec, "escaped": escaped} {
		if _, err := d.AppendFields(dst[:0], r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			var err error
			if dst, err = d.AppendFields(dst[:0], r); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per record, want 0", name, allocs)
		}
	}
	for _, enc := range []string{"gzip", "snappy", "snappy-framed", "s2", "s2-framed", "lz4"} {
		name, _, _ := strings.Cut(enc, "-")
		r := &Record{Value: compressed(t, enc, referenceEvent), Headers: []Header{{Key: "Content-Encoding", Value: []byte(name)}}}
		if _, err := d.AppendFields(dst[:0], r); err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if allocs := testing.AllocsPerRun(100, func() { dst, _ = d.AppendFields(dst[:0], r) }); allocs != 0 {
			t.Errorf("%s: %.1f allocations per record, want 0", enc, allocs)
		}
	}
	raw := mustDecoder(t, FormatRaw, nil, Options{})
	hrec := &Record{Topic: "events", Key: []byte("k"), Value: referenceEvent, Timestamp: time.Now(),
		Headers: []Header{{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0xff}}}}
	if allocs := testing.AllocsPerRun(200, func() { dst, _ = raw.AppendFields(dst[:0], hrec) }); allocs != 0 {
		t.Errorf("raw: %.1f allocations per record, want 0", allocs)
	}
}
