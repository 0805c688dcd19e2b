package codec

import (
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"
)

// PostgreSQL numeric limits (src/backend/utils/adt/numeric.c). A value
// whose text form breaks one of them is rejected by numeric input and by
// jsonb, whose numbers are numerics.
const (
	numericMaxDscale  = 0x3FFF      // digits after the decimal point
	numericMaxLeadExp = 4*32767 + 3 // decimal exponent of the leading digit: int16 base-10000 weight
	numericMaxExp     = 1073741823  // |exponent| must stay below INT_MAX/2
)

// Numeric sign words of the binary format.
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// number is a JSON number split into its parts. Its value is
// ±mant × 10^exp, where mant holds the integer digits, then '.' and the
// fraction digits when there is a fraction.
type number struct {
	mant    []byte
	intLen  int
	fracLen int
	exp     int64 // clamped to ±(numericMaxExp+1)
	neg     bool
}

// splitNumber validates s against the JSON number grammar and splits it.
func splitNumber(s []byte) (number, bool) {
	var n number
	i := 0
	if i < len(s) && s[i] == '-' {
		n.neg = true
		i++
	}
	m := i
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return n, false
	}
	n.intLen = i - m
	if i < len(s) && s[i] == '.' {
		i++
		f := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == f {
			return n, false
		}
		n.fracLen = i - f
	}
	n.mant = s[m:i]
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		e := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if n.exp <= numericMaxExp {
				n.exp = n.exp*10 + int64(s[i]-'0')
			}
		}
		if i == e {
			return n, false
		}
		if n.exp > numericMaxExp {
			n.exp = numericMaxExp + 1
		}
		if eneg {
			n.exp = -n.exp
		}
	}
	return n, i == len(s)
}

// digitExp returns the decimal exponent of the digit at mant[j].
func (n *number) digitExp(j int) int64 {
	if j < n.intLen {
		return int64(n.intLen-1-j) + n.exp
	}
	return int64(n.intLen-j) + n.exp // j-1 fraction digits precede, '.' is at intLen
}

// bounds returns the indexes in mant of the first and last non-zero digits;
// first is -1 when the value is zero.
func (n *number) bounds() (first, last int) {
	first = -1
	for j, c := range n.mant {
		if c > '0' && c <= '9' {
			if first < 0 {
				first = j
			}
			last = j
		}
	}
	return first, last
}

func (n *number) dscale() int64 {
	return max(0, int64(n.fracLen)-n.exp)
}

// fitsNumeric reports whether PostgreSQL numeric input accepts n.
func (n *number) fitsNumeric() bool {
	if n.exp >= numericMaxExp || n.exp <= -numericMaxExp || n.dscale() > numericMaxDscale {
		return false
	}
	first, _ := n.bounds()
	return first < 0 || n.digitExp(first) <= numericMaxLeadExp
}

func floorDiv4(x int64) int64 {
	if x >= 0 {
		return x / 4
	}
	return -((-x + 3) / 4)
}

var pow10 = [...]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
	100000000, 1000000000, 10000000000, 100000000000, 1000000000000,
	10000000000000, 100000000000000, 1000000000000000, 10000000000000000,
	100000000000000000, 1000000000000000000, 10000000000000000000}

// appendNumericFloat appends the float64 f as a binary numeric field of
// its shortest decimal (the digits strconv.FormatFloat(f, 'e', -1, 64)
// writes, and that scale), without going through text, when that decimal
// has at most four fractional digits and f is below 2^50 in magnitude: as
// most amounts, prices and measures are. Otherwise, and for zero (-0 has
// no numeric), NaN and infinities, it appends nothing and reports false.
//
// A decimal with k fractional digits that reads back as f lies within
// half an ulp of f; scaled by 10^k that is under 1/8, so the only
// candidate is f×10^k rounded (the product is off by at most 1/16), and
// it reads back as f exactly when it divided by 10^k, correctly rounded,
// is f. The first k that passes is the shortest decimal's scale.
func appendNumericFloat(dst []byte, f float64) ([]byte, bool) {
	a := math.Abs(f)
	if !(a > 0 && a < 1<<50) {
		return dst, false
	}
	for k := range 5 {
		m := a * pow10f[k]
		if m >= 1<<50 {
			break
		}
		if n := math.Round(m); n/pow10f[k] == a {
			return appendNumericScaled(dst, f < 0, uint64(n), k), true
		}
	}
	return dst, false
}

var pow10f = [...]float64{1, 10, 100, 1000, 10000}

// appendNumericField appends n as a binary numeric field: ndigits, weight,
// sign and dscale (int16 each), then base-10000 digits, most significant
// first. The caller must have checked n.fitsNumeric.
func appendNumericField(dst []byte, n *number) []byte {
	if n.exp == 0 && n.intLen+n.fracLen <= 18 && n.fracLen <= 15 {
		// Most numbers: the digits make a uint64 and the scale is
		// the fraction's length.
		var mag uint64
		for _, c := range n.mant {
			if c != '.' {
				mag = mag*10 + uint64(c-'0')
			}
		}
		return appendNumericScaled(dst, n.neg, mag, n.fracLen)
	}
	return appendNumericGeneral(dst, n)
}

// appendNumericGeneral is appendNumericField for any number numeric
// accepts: digit by digit into base-10000 groups.
func appendNumericGeneral(dst []byte, n *number) []byte {
	lenAt := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	dscale := uint16(n.dscale())
	first, last := n.bounds()
	var ndigits int
	var weight int64
	sign := uint16(numericPos)
	if first >= 0 {
		if n.neg {
			sign = numericNeg
		}
		weight = floorDiv4(n.digitExp(first))
		group := weight
		var acc uint64
		for j := first; j <= last; j++ {
			c := n.mant[j]
			if c == '.' {
				continue
			}
			x := n.digitExp(j)
			g := floorDiv4(x)
			for group > g {
				dst = binary.BigEndian.AppendUint16(dst, uint16(acc))
				ndigits++
				acc = 0
				group--
			}
			acc += uint64(c-'0') * pow10[x-4*g]
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(acc))
		ndigits++
	}
	binary.BigEndian.PutUint32(dst[lenAt:], uint32(len(dst)-lenAt-4))
	binary.BigEndian.PutUint16(dst[lenAt+4:], uint16(ndigits))
	binary.BigEndian.PutUint16(dst[lenAt+6:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(dst[lenAt+8:], sign)
	binary.BigEndian.PutUint16(dst[lenAt+10:], dscale)
	return dst
}

// appendNumericSpecial appends NaN or ±Infinity as a binary numeric field.
func appendNumericSpecial(dst []byte, sign uint16) []byte {
	dst = append(dst, 0, 0, 0, 8, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, sign)
	return append(dst, 0, 0)
}

// appendNumericInt appends v as a binary numeric field with scale 0.
func appendNumericInt(dst []byte, v int64) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], v, 10)
	n, _ := splitNumber(s)
	return appendNumericField(dst, &n)
}

// integer returns the value of n when it is integral and fits int64.
// Integral values written with a fraction or exponent (12.0, 1e3) count.
func (n *number) integer() (int64, Reason, string) {
	first, last := n.bounds()
	if first < 0 {
		return 0, "", ""
	}
	if n.digitExp(last) < 0 {
		return 0, ReasonWrongType, "number is not an integer"
	}
	lead := n.digitExp(first)
	if lead > 18 {
		return 0, ReasonOutOfRange, "number out of range for a 64-bit integer"
	}
	var v uint64
	for j := first; j <= last; j++ {
		if c := n.mant[j]; c != '.' {
			v += uint64(c-'0') * pow10[n.digitExp(j)]
		}
	}
	if v > math.MaxInt64 && !(n.neg && v == 1<<63) {
		return 0, ReasonOutOfRange, "number out of range for a 64-bit integer"
	}
	if n.neg {
		return int64(-v), "", ""
	}
	return int64(v), "", ""
}

// parseSimpleInt parses an optional '-' and 1 to 18 digits, the common
// case, without splitting.
func parseSimpleInt(s []byte) (int64, bool) {
	neg := false
	if len(s) > 0 && s[0] == '-' {
		neg = true
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// b2s returns b as a string without copying. The string must not outlive b.
func b2s(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// s2b returns s as a byte slice without copying. The slice must not be
// written to.
func s2b(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// parseFloat parses n's text as a float of the given bit size. It rejects
// overflow and, like PostgreSQL's float input, underflow of a non-zero
// value to zero.
func parseFloat(text []byte, n *number, bits int) (float64, Reason, string) {
	f, err := strconv.ParseFloat(b2s(text), bits)
	if err != nil {
		if math.IsInf(f, 0) {
			return 0, ReasonOutOfRange, "number overflows " + floatName(bits)
		}
		return 0, ReasonInvalidValue, "cannot parse number"
	}
	if f == 0 {
		if first, _ := n.bounds(); first >= 0 {
			return 0, ReasonOutOfRange, "number underflows " + floatName(bits)
		}
		f = math.Copysign(0, f)
	}
	return f, "", ""
}

func floatName(bits int) string {
	if bits == 32 {
		return "float4"
	}
	return "float8"
}

// specialFloat recognises the strings PostgreSQL float and numeric input
// accept for NaN and the infinities, case-insensitively: NaN, Infinity,
// +Infinity, -Infinity, inf, +inf, -inf. It returns 0 when s is none.
func specialFloat(s []byte) float64 {
	if len(s) < 3 || len(s) > 9 {
		return 0
	}
	var buf [9]byte
	for i, c := range s {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(s)]) {
	case "nan":
		return math.NaN()
	case "infinity", "+infinity", "inf", "+inf":
		return math.Inf(1)
	case "-infinity", "-inf":
		return math.Inf(-1)
	}
	return 0
}
