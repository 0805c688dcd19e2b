package progress

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// clock is a fake time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newLine(w *bytes.Buffer, total int64, term bool) (*Line, *clock) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(w, "load", total)
	l.start, l.now, l.term = c.t, c.now, term
	if term {
		l.every = TerminalEvery
	}
	return l, c
}

func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	l, c := newLine(&buf, 100, false)
	c.advance(time.Second)
	l.Set(10, "")
	if buf.Len() != 0 {
		t.Fatalf("printed before a period passed: %q", buf.String())
	}
	c.advance(4 * time.Second)
	l.Set(50, "dup 3")
	want := "load: 50/100 records (50%)  10/s  ETA 5s  dup 3\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
	c.advance(time.Second)
	l.Add(10) // within the period: nothing
	c.advance(time.Second)
	l.Done()
	l.Done()
	want += "load: 60/100 records (60%)  9/s  in 7s  dup 3\n"
	if buf.String() != want {
		t.Fatalf("got %q, want %q", buf.String(), want)
	}
	if strings.Contains(buf.String(), "\r") {
		t.Error("plain output rewrites lines")
	}
}

func TestTerminalLine(t *testing.T) {
	var buf bytes.Buffer
	l, c := newLine(&buf, -1, true)
	l.Unit("rows")
	c.advance(time.Second)
	l.Set(1234567, "long extra note")
	c.advance(time.Second)
	l.Set(2000000, "")
	l.Done()
	got := buf.String()
	lines := strings.Split(got, "\r")
	if len(lines) != 4 || lines[0] != "" || !strings.HasSuffix(got, "\n") || strings.Count(got, "\n") != 1 {
		t.Fatalf("terminal output %q: want three rewrites of one line ending in one newline", got)
	}
	if lines[1] != "load: 1,234,567 rows  1,234,567/s  long extra note" {
		t.Errorf("first line %q", lines[1])
	}
	// A shorter line blanks what the longer one left.
	if len(lines[2]) != len(lines[1]) || !strings.HasPrefix(lines[2], "load: 2,000,000 rows  1,000,000/s") {
		t.Errorf("second line %q (len %d) after %q (len %d)", lines[2], len(lines[2]), lines[1], len(lines[1]))
	}
	if !strings.HasPrefix(lines[3], "load: 2,000,000 rows  1,000,000/s  in 2s") {
		t.Errorf("final line %q", lines[3])
	}
}

func TestPollPrintsFinal(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "poll", 10)
	ctx, cancel := context.WithCancel(context.Background())
	n := int64(0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Poll(ctx, time.Millisecond, func() (int64, string) { n++; return min(n, 10), "" })
	}()
	cancel()
	<-done
	if !strings.HasPrefix(buf.String(), "poll: ") || !strings.Contains(buf.String(), "/10 records") || !strings.Contains(buf.String(), " in ") {
		t.Errorf("Poll printed %q, want a final line", buf.String())
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567", 100000: "100,000"} {
		if got := Thousands(n); got != want {
			t.Errorf("Thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

type wrapper struct{ w io.Writer }

func (w wrapper) Write(p []byte) (int, error) { return w.w.Write(p) }
func (w wrapper) Unwrap() io.Writer           { return w.w }

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) || IsTerminal(&bytes.Buffer{}) || IsTerminal(wrapper{f}) {
		t.Error("a file or a buffer is a terminal")
	}
	// A character device, as a terminal is; seen through a wrapper.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if !IsTerminal(null) || !IsTerminal(wrapper{null}) {
		t.Error("a character device is not taken for a terminal, or the wrapper is not seen through")
	}
}
