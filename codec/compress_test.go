package codec

import (
	"bytes"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func zstdCompress(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func streamCompress(t testing.TB, b []byte, wrap func(*bytes.Buffer) writeCloser) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := wrap(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type writeCloser interface {
	Write([]byte) (int, error)
	Close() error
}

func compressed(t testing.TB, enc string, b []byte) []byte {
	t.Helper()
	switch enc {
	case "zstd":
		return zstdCompress(t, b)
	case "gzip":
		return streamCompress(t, b, func(w *bytes.Buffer) writeCloser {
			return gzip.NewWriter(w)
		})
	case "snappy":
		return snappy.Encode(nil, b)
	case "snappy-framed":
		return streamCompress(t, b, func(w *bytes.Buffer) writeCloser {
			return snappy.NewBufferedWriter(w)
		})
	case "s2":
		return s2.Encode(nil, b)
	case "s2-framed":
		return streamCompress(t, b, func(w *bytes.Buffer) writeCloser {
			return s2.NewWriter(w)
		})
	case "lz4":
		return streamCompress(t, b, func(w *bytes.Buffer) writeCloser {
			return lz4.NewWriter(w)
		})
	}
	t.Fatalf("unknown encoding %s", enc)
	return nil
}

func TestCompression(t *testing.T) {
	d := mustDecoder(t, FormatJSON, []Column{
		{Name: "a", Type: TypeText, Path: "a"},
		{Name: "v", Type: TypeBytea, Source: SourceValue},
	}, Options{MaxDecompressedBytes: 4096})
	doc := []byte(`{"a":"` + strings.Repeat("compressible ", 100) + `"}`)
	for _, enc := range []string{"zstd", "gzip", "snappy", "snappy-framed", "s2", "s2-framed", "lz4"} {
		name := strings.TrimSuffix(enc, "-framed")
		for _, key := range []string{"content-encoding", "Content-Encoding"} {
			value := strings.ToUpper(name[:1]) + name[1:]
			rec := &Record{Value: compressed(t, enc, doc), Headers: []Header{{Key: "x", Value: []byte("y")}, {Key: key, Value: []byte(value)}}}
			// Twice: the second call reuses the decoder's state.
			for range 2 {
				fields, rerr := decode(t, d, rec)
				if rerr != nil {
					t.Fatalf("%s: %v", enc, rerr)
				}
				if !bytes.Equal(fields[1], doc) || string(fields[0]) != strings.Repeat("compressible ", 100) {
					t.Fatalf("%s: decompressed value differs", enc)
				}
			}
		}
		// Corrupt frames.
		bad := compressed(t, enc, doc)
		bad = bad[:len(bad)/2]
		_, rerr := decode(t, d, &Record{Value: bad, Headers: []Header{{Key: "content-encoding", Value: []byte(name)}}})
		if rerr == nil || rerr.Reason != ReasonBadCompression {
			t.Errorf("%s truncated frame: got %v, want %s", enc, rerr, ReasonBadCompression)
		}
		_, rerr = decode(t, d, &Record{Value: []byte("definitely not compressed"), Headers: []Header{{Key: "content-encoding", Value: []byte(name)}}})
		if rerr == nil || rerr.Reason != ReasonBadCompression {
			t.Errorf("%s garbage: got %v, want %s", enc, rerr, ReasonBadCompression)
		}
		// A bomb: a small frame inflating past MaxDecompressedBytes.
		bomb := compressed(t, enc, []byte(`{"a":"`+strings.Repeat("x", 100000)+`"}`))
		_, rerr = decode(t, d, &Record{Value: bomb, Headers: []Header{{Key: "content-encoding", Value: []byte(name)}}})
		if rerr == nil || rerr.Reason != ReasonOversized {
			t.Errorf("%s bomb: got %v, want %s", enc, rerr, ReasonOversized)
		}
		if cap(d.z.buf) > 2*4096 {
			t.Errorf("%s bomb: decompression buffer grew to %d bytes", enc, cap(d.z.buf))
		}
	}
	for _, enc := range []string{"identity", ""} {
		fields, rerr := decode(t, d, &Record{Value: doc, Headers: []Header{{Key: "content-encoding", Value: []byte(enc)}}})
		if rerr != nil || !bytes.Equal(fields[1], doc) {
			t.Errorf("%q: %v", enc, rerr)
		}
	}
	_, rerr := decode(t, d, &Record{Value: doc, Headers: []Header{{Key: "content-encoding", Value: []byte("brotli")}}})
	if rerr == nil || rerr.Reason != ReasonBadCompression || !strings.Contains(rerr.Detail, "brotli") {
		t.Errorf("unknown encoding: got %v", rerr)
	}
	// FormatRaw keeps values as received.
	raw := mustDecoder(t, FormatRaw, nil, Options{})
	z := compressed(t, "zstd", doc)
	fields, rerr := decode(t, raw, &Record{Value: z, Headers: []Header{{Key: "content-encoding", Value: []byte("zstd")}}})
	if rerr != nil || !bytes.Equal(fields[5], z) {
		t.Errorf("raw value changed: %v", rerr)
	}
}
