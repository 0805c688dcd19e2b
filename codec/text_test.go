package codec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestCheckText puts each kind of byte PostgreSQL text refuses, and a
// valid multi-byte rune, at every position of texts of every length up to
// 48, so each of checkText's paths (the sixteen-byte loop, the
// overlapping last word, the byte loop) meets it.
func TestCheckText(t *testing.T) {
	inserts := [][]byte{{0}, {0xff}, {0xc3}, {0xe2, 0x82}, []byte("é"), []byte("€"), []byte("\"\\\n")}
	for n := 0; n <= 48; n++ {
		base := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 2)[:n]
		if reason, _ := checkText(base); reason != "" {
			t.Fatalf("len %d plain ASCII: %s", n, reason)
		}
		for at := 0; at <= n; at++ {
			for _, ins := range inserts {
				b := append(append(append([]byte{}, base[:at]...), ins...), base[at:]...)
				reason, _ := checkText(b)
				if want := textReason(b); reason != want {
					t.Fatalf("checkText(%q) = %q, want %q", b, reason, want)
				}
			}
		}
	}
}

// textReason is what checkText must say of b, from the standard
// library's view of it: NUL first, then invalid UTF-8.
func textReason(b []byte) Reason {
	switch {
	case bytes.IndexByte(b, 0) >= 0:
		return ReasonNULInText
	case !utf8.Valid(b):
		return ReasonInvalidUTF8
	}
	return ""
}

// TestParseUUIDCanonical checks the canonical form against encoding/hex,
// with a bad character at every position.
func TestParseUUIDCanonical(t *testing.T) {
	const text = "0123abcd-4567-89ef-ABCD-0123456789aF"
	want, err := hex.DecodeString(text[0:8] + text[9:13] + text[14:18] + text[19:23] + text[24:])
	if err != nil {
		t.Fatal(err)
	}
	var u [16]byte
	if !parseUUID([]byte(text), &u) || !bytes.Equal(u[:], want) {
		t.Fatalf("parseUUID(%s) = %x, want %x", text, u, want)
	}
	for i := range len(text) {
		for _, c := range []byte{'g', 'G', '-', ' ', 0, 0xff} {
			b := []byte(text)
			if b[i] == c {
				continue
			}
			b[i] = c
			if parseUUID(b, &u) {
				t.Errorf("parseUUID(%q) accepted a bad character at %d", b, i)
			}
		}
	}
}

// TestAppendJSONText round-trips strings of every length up to 40, with a
// byte that needs escaping at every position, through encoding/json.
func TestAppendJSONText(t *testing.T) {
	inserts := []string{"\"", "\\", "\n", "\x01", "\x7f", "é", "€", "\x00"}
	for n := 0; n <= 40; n++ {
		base := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789", 2)[:n]
		for at := 0; at <= n; at++ {
			for _, ins := range inserts {
				s := base[:at] + ins + base[at:]
				out, reason, _ := appendJSONText(nil, []byte(s), false)
				if reason != "" {
					t.Fatalf("appendJSONText(%q): %s", s, reason)
				}
				var got string
				if err := json.Unmarshal(out, &got); err != nil || got != s {
					t.Fatalf("appendJSONText(%q) = %s, which reads back as %q (%v)", s, out, got, err)
				}
			}
		}
	}
}

// TestAppendNumericFloat compares the float fast path with the text path
// it stands in for (the shortest decimal, parsed): decimals of up to six
// fractional digits, their neighbours, random bit patterns and the edges.
func TestAppendNumericFloat(t *testing.T) {
	viaText := func(f float64) []byte {
		n, _ := splitNumber(appendFloatText(nil, f, 64))
		return appendNumericField(nil, &n)
	}
	check := func(f float64) {
		got, ok := appendNumericFloat(nil, f)
		if !ok {
			return
		}
		if want := viaText(f); !bytes.Equal(got, want) {
			t.Fatalf("appendNumericFloat(%v) = %x, want %x (%s)", f, got, want, appendFloatText(nil, f, 64))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	taken := 0
	for range 200000 {
		k := rng.IntN(7)
		n := rng.Int64N(1 << uint(rng.IntN(52)+1))
		f := float64(n) / math.Pow10(k)
		if rng.IntN(2) == 0 {
			f = -f
		}
		for _, g := range []float64{f, math.Nextafter(f, math.Inf(1)), math.Nextafter(f, math.Inf(-1))} {
			check(g)
		}
		if _, ok := appendNumericFloat(nil, f); ok {
			taken++
		}
		check(math.Float64frombits(rng.Uint64()))
	}
	if taken < 50000 {
		t.Errorf("the fast path took only %d of 200000 short decimals", taken)
	}
	for _, f := range []float64{0.1, 0.2, 0.1 + 0.2, 12.34, 1e-4, 1e-5, 99.995, 1 << 49, 1<<50 - 1, 1 << 50, 1e15, 123456.7891, 5e-324} {
		check(f)
		check(-f)
	}
	for _, f := range []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), 1 << 50, 1e300, 1e-7} {
		if _, ok := appendNumericFloat(nil, f); ok {
			t.Errorf("appendNumericFloat(%v) took the fast path", f)
		}
	}
}

// TestAppendNumericFieldShort compares appendNumericField's path for
// numbers of up to 18 digits without an exponent with the general
// base-10000 conversion, which it must match byte for byte.
func TestAppendNumericFieldShort(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	texts := []string{"0", "-0", "0.0", "-0.000", "1", "10000", "100.00", "0.0001", "0.00012", "-12.34",
		"999999999999999999", "0.999999999999999", "123456789012345.678", "100000000.000000001"}
	for range 20000 {
		intLen, fracLen := rng.IntN(12), rng.IntN(8)
		var b []byte
		if rng.IntN(2) == 0 {
			b = append(b, '-')
		}
		if intLen == 0 {
			b = append(b, '0')
		} else {
			b = append(b, byte('1'+rng.IntN(9)))
			for range intLen - 1 {
				b = append(b, byte('0'+rng.IntN(10)))
			}
		}
		if fracLen > 0 {
			b = append(b, '.')
			for range fracLen {
				d := byte('0')
				if rng.IntN(3) > 0 {
					d += byte(rng.IntN(10))
				}
				b = append(b, d)
			}
		}
		texts = append(texts, string(b))
	}
	for _, text := range texts {
		n, ok := splitNumber([]byte(text))
		if !ok {
			t.Fatalf("splitNumber(%s) failed", text)
		}
		if got, want := appendNumericField(nil, &n), appendNumericGeneral(nil, &n); !bytes.Equal(got, want) {
			t.Fatalf("appendNumericField(%s) = %x, want %x", text, got, want)
		}
	}
}

// TestShortTextInLargerBuffer gives checkText and appendJSONText texts
// shorter than eight bytes that sit at the start of a larger buffer, as a
// field of a payload does, followed by bytes either would refuse or
// escape: what lies past the text must not count, and what lies in it
// must.
func TestShortTextInLargerBuffer(t *testing.T) {
	for _, after := range []byte{0, 0xff, '"', '\\', '\n', 'a'} {
		for n := 0; n < 8; n++ {
			for at := -1; at < n; at++ {
				for _, bad := range []byte{0, 0xff, '"', '\n'} {
					buf := bytes.Repeat([]byte{after}, 16)
					copy(buf, "abcdefg"[:n])
					if at >= 0 {
						buf[at] = bad
					}
					s := buf[:n]
					reason, _ := checkText(s)
					want := textReason(s)
					if reason != want {
						t.Fatalf("checkText(%q followed by %q) = %q, want %q", s, after, reason, want)
					}
					if want != "" {
						continue
					}
					out, reason, _ := appendJSONText(nil, s, false)
					var got string
					if err := json.Unmarshal(out, &got); reason != "" || err != nil || got != string(s) {
						t.Fatalf("appendJSONText(%q followed by %q) = %s, %q (%v)", s, after, out, reason, err)
					}
				}
			}
		}
	}
}
