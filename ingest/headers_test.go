package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"
	"unsafe"

	"github.com/sluice-dev/sluice/codec"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A record's headers read the same in dead_letters.headers as in a
// kafka.headers column: both come from codec.AppendHeadersJSON.
func TestDeadLetterHeadersMatchColumn(t *testing.T) {
	dec, err := codec.NewDecoder(codec.FormatRaw, codec.RawColumns(), codec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hcol := len(codec.RawColumns()) - 1 // headers, jsonb
	for _, hs := range [][]kgo.RecordHeader{
		nil,
		{{Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}},
		{{Key: "bin", Value: []byte{0xff, 0x00, 0x80}}, {Key: "nul", Value: []byte("a\x00b")}},
		{{Key: "utf8", Value: []byte("h\xc3\xa9\xe2\x82")}, {Key: "bad\xffkey\x00", Value: []byte("v")}},
		{{Key: "dup", Value: []byte("1")}, {Key: "dup", Value: nil}, {Key: "dup", Value: []byte("\"\\\n")}},
	} {
		r := &kgo.Record{Topic: "t", Partition: 1, Offset: 7, Value: []byte("x"), Headers: hs}
		dl := deadLetter(r, "t", nil)

		var w worker
		w.fill(r)
		fields, err := dec.AppendFields(nil, &w.rec)
		if err != nil {
			t.Fatal(err)
		}
		col := nthField(t, fields, hcol)
		if len(col) == 0 || col[0] != 1 {
			t.Fatalf("headers column %q is not a jsonb field", col)
		}
		if !bytes.Equal(dl.Headers, col[1:]) {
			t.Errorf("headers %q:\ndead letter %s\ncolumn      %s", hs, dl.Headers, col[1:])
		}
		if !json.Valid(dl.Headers) {
			t.Errorf("headers %q: dead letter headers are not JSON: %s", hs, dl.Headers)
		}
	}
}

// nthField returns field n of binary COPY fields (each a length and bytes).
func nthField(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	for i := 0; ; i++ {
		if len(b) < 4 {
			t.Fatalf("no field %d", n)
		}
		l := int(int32(binary.BigEndian.Uint32(b)))
		b = b[4:]
		if l < 0 {
			l = 0
		}
		if i == n {
			return b[:l]
		}
		b = b[l:]
	}
}

// A record's headers count in the in-flight budget by what the client holds
// for them, not by their bytes alone: 100,000 empty headers are 200 KB on
// the wire and 4 MB of kgo.RecordHeader values.
func TestRecordCostCountsHeaders(t *testing.T) {
	const n = 100000
	r := &kgo.Record{Key: []byte("k"), Value: []byte(`{}`), Headers: make([]kgo.RecordHeader, n)}
	held := int64(n) * int64(unsafe.Sizeof(kgo.RecordHeader{}))
	if got := recordCost(r); got < held {
		t.Fatalf("recordCost = %d bytes for a record of %d headers (%d bytes of RecordHeader values alone)", got, n, held)
	}
}
