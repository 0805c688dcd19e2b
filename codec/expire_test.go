package codec

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestNotBefore(t *testing.T) {
	var nb atomic.Int64
	nb.Store(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro())
	cols := []Column{
		{Name: "id", Type: TypeInt8, Path: "id"},
		{Name: "ts", Type: TypeTimestamptz, Path: "ts", Required: true, NotBefore: &nb},
		{Name: "d", Type: TypeDate, Path: "d", NotBefore: &nb},
	}
	dec, err := NewDecoder(FormatJSON, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := func(value string, want Reason, column string) {
		t.Helper()
		_, err := dec.AppendFields(nil, &Record{Value: []byte(value)})
		var re *RowError
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", value, err)
		case want != "" && (!errors.As(err, &re) || re.Reason != want || re.Column != column):
			t.Errorf("%s: got %v, want %s in column %s", value, err, want, column)
		}
	}
	f(`{"id":1,"ts":"2026-11-20T00:00:00Z"}`, "", "")
	f(`{"id":1,"ts":"2026-11-19T23:59:59.999999Z"}`, ReasonExpired, "ts")
	f(`{"id":1,"ts":"2026-11-21T00:00:00+05:00"}`, "", "")
	f(`{"id":1,"ts":"-infinity"}`, ReasonInvalidValue, "ts")
	f(`{"id":1,"ts":"2026-11-25T00:00:00Z","d":"2026-11-19"}`, ReasonExpired, "d")
	f(`{"id":1,"ts":"2026-11-25T00:00:00Z","d":"2026-11-20"}`, "", "")
	f(`{"id":1}`, ReasonMissingRequired, "ts")
	// The caller moves the limit while the decoder lives.
	nb.Store(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC).UnixMicro())
	f(`{"id":1,"ts":"2026-11-25T00:00:00Z"}`, ReasonExpired, "ts")
	nb.Store(-1 << 63)
	f(`{"id":1,"ts":"0001-01-01T00:00:00Z"}`, "", "")

	rec := &Record{Value: []byte(`{"id":1,"ts":"2026-11-25T00:00:00Z"}`)}
	var dst []byte
	if n := testing.AllocsPerRun(100, func() { dst, _ = dec.AppendFields(dst[:0], rec) }); n != 0 {
		t.Errorf("%v allocations per record with NotBefore", n)
	}
}

// TestNotBeforeDebezium: a change event's time older than the retention is
// expired like a JSON record's; a delete of such a row is not.
func TestNotBeforeDebezium(t *testing.T) {
	var nb atomic.Int64
	nb.Store(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro())
	cols := []Column{
		{Name: "id", Type: TypeInt8, Path: "id", Key: true},
		{Name: "ts", Type: TypeTimestamptz, Path: "ts", Key: true, NotBefore: &nb},
	}
	dec, err := NewDecoder(FormatDebezium, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		value string
		want  Reason
	}{
		{`{"op":"c","after":{"id":1,"ts":"2026-11-25T00:00:00Z"}}`, ""},
		{`{"op":"c","after":{"id":2,"ts":"2026-11-01T00:00:00Z"}}`, ReasonExpired},
		{`{"op":"u","before":{"id":2,"ts":"2026-11-01T00:00:00Z"},"after":{"id":2,"ts":"2026-11-02T00:00:00Z"}}`, ReasonExpired},
		{`{"op":"d","before":{"id":2,"ts":"2026-11-01T00:00:00Z"},"after":null}`, ""},
	} {
		_, err := dec.AppendFields(nil, &Record{Value: []byte(c.value)})
		var re *RowError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.value, err)
		case c.want != "" && (!errors.As(err, &re) || re.Reason != c.want):
			t.Errorf("%s: got %v, want %s", c.value, err, c.want)
		}
	}
}

// TestNotBeforeFarDates: a date past the int64 microseconds (year 294,276;
// PostgreSQL's dates reach 5,874,897 AD) and infinity are newer than any
// retention floor, -infinity older. A date's microseconds used to wrap
// there, expiring far-future dates.
func TestNotBeforeFarDates(t *testing.T) {
	var nb atomic.Int64
	nb.Store(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMicro())
	cols := []Column{
		{Name: "id", Type: TypeInt8, Path: "id", Key: true},
		{Name: "d", Type: TypeDate, Path: "d", Key: true, Required: true, NotBefore: &nb},
	}
	dec, err := NewDecoder(FormatDebezium, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// io.debezium.time.Date without the wrapper: days since 1970-01-01.
	for _, c := range []struct {
		d    string
		want Reason
	}{
		{"106751991", ""}, // the last day whose microseconds fit
		{"106752000", ""},
		{"150000000", ""}, // year 412,000
		{"2145031948", ""},
		{`"infinity"`, ""},
		{`"-infinity"`, ReasonExpired},
		{"20776", ReasonExpired}, // 2026-11-19
		{"20777", ""},
	} {
		_, err := dec.AppendFields(nil, &Record{Value: []byte(`{"op":"c","after":{"id":1,"d":` + c.d + `}}`)})
		var re *RowError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("date %s: %v", c.d, err)
		case c.want != "" && (!errors.As(err, &re) || re.Reason != c.want):
			t.Errorf("date %s: got %v, want %s", c.d, err, c.want)
		}
	}
}
