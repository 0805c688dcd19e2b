package codec

import (
	"encoding/json"
	"testing"
	"time"
)

func BenchmarkDecodeReferenceEvent(b *testing.B) {
	d := mustDecoder(b, FormatJSON, referenceColumns, Options{})
	rec := &Record{Topic: "events", Partition: 1, Offset: 42, Value: referenceEvent}
	b.ReportAllocs()
	b.SetBytes(int64(len(referenceEvent)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var err error
		if dst, err = d.AppendFields(dst[:0], rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeReferenceEventZstd(b *testing.B) {
	d := mustDecoder(b, FormatJSON, referenceColumns, Options{})
	rec := &Record{Topic: "events", Partition: 1, Offset: 42, Value: compressed(b, "zstd", referenceEvent),
		Headers: []Header{{Key: "content-encoding", Value: []byte("zstd")}}}
	b.ReportAllocs()
	b.SetBytes(int64(len(referenceEvent))) // decompressed bytes, to compare with the plain benchmark
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var err error
		if dst, err = d.AppendFields(dst[:0], rec); err != nil {
			b.Fatal(err)
		}
	}
}

// stdlibEvent is the reference event as encoding/json sees it.
type stdlibEvent struct {
	EventID   string          `json:"event_id"`
	TenantID  *int64          `json:"tenant_id"`
	UserID    *int64          `json:"user_id"`
	Type      *string         `json:"type"`
	TS        string          `json:"ts"`
	Amount    json.Number     `json:"amount"`
	URL       *string         `json:"url"`
	UserAgent *string         `json:"user_agent"`
	Attrs     json.RawMessage `json:"attrs"`
}

// BenchmarkDecodeReferenceEventStdlib produces the same fields with
// encoding/json doing the parsing, for comparison.
func BenchmarkDecodeReferenceEventStdlib(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(referenceEvent)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		var ev stdlibEvent
		if err := json.Unmarshal(referenceEvent, &ev); err != nil {
			b.Fatal(err)
		}
		var attrs struct {
			Country *string `json:"country"`
		}
		if err := json.Unmarshal(ev.Attrs, &attrs); err != nil {
			b.Fatal(err)
		}
		dst = dst[:0]
		var u [16]byte
		if !parseUUID([]byte(ev.EventID), &u) {
			b.Fatal("uuid")
		}
		dst = append(dst, 0, 0, 0, 16)
		dst = append(dst, u[:]...)
		dst = appendInt8Field(dst, *ev.TenantID)
		dst = appendInt8Field(dst, *ev.UserID)
		dst = appendStringField(dst, *ev.Type)
		ts, err := time.Parse(time.RFC3339Nano, ev.TS)
		if err != nil {
			b.Fatal(err)
		}
		us, _ := timeMicros(ts)
		dst = appendInt8Field(dst, us)
		n, _ := splitNumber([]byte(ev.Amount))
		dst = appendNumericField(dst, &n)
		dst = appendStringField(dst, *ev.URL)
		dst = appendStringField(dst, *ev.UserAgent)
		dst = appendJSONBField(dst, ev.Attrs)
		dst = appendStringField(dst, *attrs.Country)
		dst = appendInt8Field(dst, 42)
	}
}

func BenchmarkNumeric(b *testing.B) {
	text := []byte("-12345678901234.56789")
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	dst := make([]byte, 0, 64)
	for b.Loop() {
		n, _ := splitNumber(text)
		dst = appendNumericField(dst[:0], &n)
	}
}

func BenchmarkTimestamp(b *testing.B) {
	for _, s := range []string{"2026-11-01T00:00:01.234Z", "2026-11-01T02:00:01.123456789+02:00"} {
		b.Run(s, func(b *testing.B) {
			text := []byte(s)
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, ok := parseTimestamp(text); !ok {
					b.Fatal(s)
				}
			}
		})
	}
}

func BenchmarkUUID(b *testing.B) {
	text := []byte("3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01")
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	var u [16]byte
	for b.Loop() {
		if !parseUUID(text, &u) {
			b.Fatal("uuid")
		}
	}
}

func BenchmarkValidateJSON(b *testing.B) {
	d := mustDecoder(b, FormatJSON, []Column{{Name: "v", Type: TypeJSONB, Source: SourceValue}}, Options{})
	rec := &Record{Value: referenceEvent}
	b.ReportAllocs()
	b.SetBytes(int64(len(referenceEvent)))
	dst := make([]byte, 0, 1024)
	for b.Loop() {
		dst, _ = d.AppendFields(dst[:0], rec)
	}
}

func BenchmarkAppendHeadersJSON(b *testing.B) {
	hs := []Header{{Key: "content-encoding", Value: []byte("zstd")}, {Key: "trace-id", Value: []byte("4bf92f3577b34da6a3ce929d0e0e4736")}}
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		dst = AppendHeadersJSON(dst[:0], hs)
	}
	b.SetBytes(int64(len(dst)))
}
