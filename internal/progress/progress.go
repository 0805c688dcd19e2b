// Package progress shows how far a long command is: on a terminal one
// line rewritten in place (\r) with the count, the rate and the time left;
// anywhere else (a file, a pipe, CI logs) a plain line every few seconds
// and one at the end, so logs stay readable.
//
// A Line is safe for concurrent use: the work updates it with Set or Add,
// and Poll can feed it from a counter on a ticker.
package progress

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a Line's refresh periods.
const (
	TerminalEvery = 200 * time.Millisecond
	PlainEvery    = 5 * time.Second
)

// Line is one task's progress.
type Line struct {
	w     io.Writer
	label string
	unit  string
	total int64 // <0: unknown
	term  bool
	every time.Duration
	start time.Time
	now   func() time.Time

	mu      sync.Mutex
	n       int64
	extra   string
	printed time.Time
	width   int // of the last terminal line, to blank what a shorter one leaves
	done    bool
}

// New returns a Line for label on w counting records; total is the amount
// expected, or negative when unknown (no ETA then).
func New(w io.Writer, label string, total int64) *Line {
	l := &Line{w: w, label: label, unit: "records", total: total, term: IsTerminal(w), start: time.Now(), now: time.Now}
	l.every = PlainEvery
	if l.term {
		l.every = TerminalEvery
	}
	return l
}

// Unit sets the word after the count ("records" by default) and returns l.
func (l *Line) Unit(u string) *Line {
	l.unit = u
	return l
}

// Every sets how often a line is printed at most and returns l.
func (l *Line) Every(d time.Duration) *Line {
	l.every = d
	return l
}

// Set reports n done so far and an optional extra note; it prints when the
// last line is older than the period.
func (l *Line) Set(n int64, extra string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n, l.extra = n, extra
	l.maybePrint(false)
}

// Add adds d to the count.
func (l *Line) Add(d int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += d
	l.maybePrint(false)
}

// Done prints the final line (and the newline that ends a terminal line).
// Calls after the first do nothing.
func (l *Line) Done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.maybePrint(true)
	l.done = true
}

// Poll sets the count from count every period until ctx is done, then
// calls Done. Run it in its own goroutine.
func (l *Line) Poll(ctx context.Context, period time.Duration, count func() (int64, string)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			n, extra := count()
			l.Set(n, extra)
			l.Done()
			return
		case <-t.C:
			n, extra := count()
			l.Set(n, extra)
		}
	}
}

func (l *Line) maybePrint(final bool) {
	if l.done {
		return
	}
	now := l.now()
	if !final && !l.printed.IsZero() && now.Sub(l.printed) < l.every {
		return
	}
	if !final && l.printed.IsZero() && !l.term && now.Sub(l.start) < l.every {
		// Plain output: the first line after a period, not at once.
		return
	}
	l.printed = now
	s := l.format(now, final)
	if l.term {
		pad := ""
		if len(s) < l.width {
			pad = strings.Repeat(" ", l.width-len(s))
		}
		l.width = len(s)
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprint(l.w, "\r"+s+pad+end)
		return
	}
	fmt.Fprintln(l.w, s)
}

// format renders "label: 12,345/100,000 records (12%)  8,123/s  ETA 11s  extra".
func (l *Line) format(now time.Time, final bool) string {
	el := now.Sub(l.start)
	var b strings.Builder
	b.WriteString(l.label)
	b.WriteString(": ")
	b.WriteString(Thousands(l.n))
	if l.total >= 0 {
		b.WriteString("/" + Thousands(l.total))
	}
	b.WriteString(" " + l.unit)
	if l.total > 0 {
		fmt.Fprintf(&b, " (%d%%)", min(l.n*100/l.total, 100))
	}
	rate := 0.0
	if el > 0 {
		rate = float64(l.n) / el.Seconds()
	}
	fmt.Fprintf(&b, "  %s/s", Thousands(int64(rate+0.5)))
	switch {
	case final:
		fmt.Fprintf(&b, "  in %s", round(el))
	case l.total > 0 && rate > 0 && l.n < l.total:
		fmt.Fprintf(&b, "  ETA %s", round(time.Duration(float64(l.total-l.n)/rate*float64(time.Second))))
	}
	if l.extra != "" {
		b.WriteString("  " + l.extra)
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// Thousands formats n with comma separators: 1234567 is 1,234,567.
func Thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
