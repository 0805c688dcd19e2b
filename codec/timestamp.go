package codec

import (
	"math"
	"strconv"
	"time"
)

const (
	usPerSec = 1_000_000
	usPerDay = 86_400 * usPerSec

	// unixToPGDays is the number of days from 1970-01-01 to 2000-01-01,
	// the PostgreSQL epoch.
	unixToPGDays = 10_957
	unixToPGUs   = unixToPGDays * usPerDay

	// PostgreSQL's timestamp range in µs since 2000-01-01: from
	// 4714-11-24 00:00 BC (MIN_TIMESTAMP) up to, excluding,
	// 294277-01-01 00:00 (END_TIMESTAMP).
	pgMinTimestamp = -211813488000000000
	pgEndTimestamp = 9223371331200000000
)

// daysFromCivil returns the number of days from 1970-01-01 to the given
// proleptic Gregorian date (H. Hinnant's algorithm).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func digits(s []byte, i, n int) (int64, bool) {
	if i+n > len(s) {
		return 0, false
	}
	var v int64
	for _, c := range s[i : i+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// parseDate parses YYYY-MM-DD (years 0001 to 9999) and returns the days
// since 1970-01-01.
func parseDate(s []byte) (int64, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(s, 0, 4)
	m, ok2 := digits(s, 5, 2)
	d, ok3 := digits(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || y < 1 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	return daysFromCivil(y, m, d), true
}

// parseTimestamp parses an RFC 3339 timestamp and returns microseconds
// since 2000-01-01 00:00 UTC. Accepted, as PostgreSQL accepts them: 'T',
// 't' or ' ' between date and time; seconds optional; a fraction of 1 to 9
// digits rounded to microseconds exactly as PostgreSQL rounds it
// (rint(strtod(fraction) * 1e6)); offset Z, z, ±HH, ±HHMM or ±HH:MM up to
// ±15:59, none meaning UTC; a date alone meaning midnight UTC; 24:00:00
// and a leap second :60 (both carried into the next minute or day).
func parseTimestamp(s []byte) (int64, bool) {
	days, ok := parseDate(s)
	if !ok {
		return 0, false
	}
	if len(s) == 10 {
		return (days - unixToPGDays) * usPerDay, true
	}
	if s[10] != 'T' && s[10] != 't' && s[10] != ' ' {
		return 0, false
	}
	h, ok1 := digits(s, 11, 2)
	if !ok1 || len(s) < 16 || s[13] != ':' {
		return 0, false
	}
	mi, ok2 := digits(s, 14, 2)
	if !ok2 {
		return 0, false
	}
	i := 16
	var sec, us int64
	if i < len(s) && s[i] == ':' {
		var ok bool
		if sec, ok = digits(s, i+1, 2); !ok {
			return 0, false
		}
		i += 3
		if i < len(s) && s[i] == '.' {
			f := i + 1
			j := f
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			nd := j - f
			if nd == 0 || nd > 9 {
				return 0, false
			}
			if nd <= 6 {
				v, _ := digits(s, f, nd)
				us = v * int64(pow10[6-nd])
			} else {
				// PostgreSQL: rint(strtod(".fraction") * 1e6), in doubles.
				x, err := strconv.ParseFloat(b2s(s[i:j]), 64)
				if err != nil {
					return 0, false
				}
				us = int64(math.RoundToEven(x * 1e6))
			}
			i = j
		}
	}
	if h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi != 0 || sec != 0 || us != 0)) || (sec == 60 && us != 0) {
		return 0, false
	}
	var off int64 // seconds east of UTC
	if i < len(s) {
		switch s[i] {
		case 'Z', 'z':
			i++
		case '+', '-':
			oh, ok := digits(s, i+1, 2)
			if !ok {
				return 0, false
			}
			j := i + 3
			var om int64
			if j < len(s) {
				if s[j] == ':' {
					j++
				}
				if om, ok = digits(s, j, 2); !ok {
					return 0, false
				}
				j += 2
			}
			if oh > 15 || om > 59 {
				return 0, false
			}
			off = oh*3600 + om*60
			if s[i] == '-' {
				off = -off
			}
			i = j
		default:
			return 0, false
		}
	}
	if i != len(s) {
		return 0, false
	}
	return (days-unixToPGDays)*usPerDay + ((h*60+mi)*60+sec-off)*usPerSec + us, true
}

// Epoch units, chosen by magnitude: |v| < 1e11 is seconds (up to year
// 5138), < 1e14 milliseconds, < 1e17 microseconds, anything larger
// nanoseconds.
func epochShift(leadExp int64) int64 {
	switch {
	case leadExp <= 10:
		return 6 // seconds → µs
	case leadExp <= 13:
		return 3
	case leadExp <= 16:
		return 0
	}
	return -3
}

// epochMicros converts a JSON epoch number to µs since 2000-01-01,
// rounding half to even at the microsecond.
func epochMicros(n *number) (int64, Reason, string) {
	first, last := n.bounds()
	if first < 0 {
		return -unixToPGUs, "", ""
	}
	lead := n.digitExp(first)
	shift := epochShift(lead)
	if lead+shift > 17 {
		return 0, ReasonOutOfRange, "epoch number out of range for timestamp"
	}
	var v uint64
	round := false
	for j := first; j <= last; j++ {
		c := n.mant[j]
		if c == '.' {
			continue
		}
		x := n.digitExp(j) + shift
		switch {
		case x >= 0:
			v += uint64(c-'0') * pow10[x]
		case x == -1:
			// Half to even: above half, or exactly half with an odd value.
			if c > '5' || (c == '5' && (j < last || v&1 == 1)) {
				round = true
			}
		default:
			// Digits beyond the rounding digit only matter through it.
		}
		if x < -1 {
			break
		}
	}
	if round {
		v++
	}
	us := int64(v)
	if n.neg {
		us = -us
	}
	us -= unixToPGUs
	if us < pgMinTimestamp || us >= pgEndTimestamp {
		return 0, ReasonOutOfRange, "epoch number out of range for timestamp"
	}
	return us, "", ""
}

// timeMicros returns t as µs since 2000-01-01 UTC, truncated to the
// microsecond.
func timeMicros(t time.Time) (int64, bool) {
	sec := t.Unix() - unixToPGDays*86400
	if sec < pgMinTimestamp/usPerSec || sec >= pgEndTimestamp/usPerSec {
		return 0, false
	}
	return sec*usPerSec + int64(t.Nanosecond()/1000), true
}
