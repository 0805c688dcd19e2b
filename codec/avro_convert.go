package codec

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// appendPath appends the field of path column i from the last decode.
func (p *avroPlan) appendPath(dst []byte, i int) ([]byte, *RowError) {
	c := &p.cols[i]
	s := p.slots[c.slot]
	if s.ti == 0 {
		return c.null(dst)
	}
	t := p.types[s.ti-1]
	if t.kind == avroNull {
		return c.null(dst)
	}
	return p.appendValue(dst, c, t, p.data[s.start:s.end])
}

// avroLongValue decodes the int or long v (validated by decode).
func avroLongValue(v []byte) int64 {
	if len(v) == 1 {
		c := int64(v[0])
		return c>>1 ^ -(c & 1)
	}
	x, _, _ := readVarlong(v, 0)
	return x
}

// avroBytesValue returns the content of the bytes or string v.
func avroBytesValue(v []byte) []byte {
	if len(v) > 0 && v[0] < 0x80 {
		return v[1:] // a one-byte length
	}
	_, i, _ := readVarlong(v, 0)
	return v[i:]
}

func (c *column) wrongAvro(t *avroType) *RowError {
	return c.fail(ReasonWrongType, fmt.Sprintf("got an Avro %s, want a value for a %s column", t, c.Type))
}

// appendValue appends the field for column c from the encoded value v of
// type t.
func (p *avroPlan) appendValue(dst []byte, c *column, t *avroType, v []byte) ([]byte, *RowError) {
	switch t.kind {
	case avroBoolean:
		b := v[0] == 1
		switch c.Type {
		case TypeBool:
			return appendBoolField(dst, b), nil
		case TypeText, TypeJSON, TypeJSONB:
			s := "false"
			if b {
				s = "true"
			}
			return appendJSONLike(dst, c.Type, s2b(s)), nil
		}
	case avroInt, avroLong:
		return p.appendLong(dst, c, t, avroLongValue(v))
	case avroFloat:
		return p.appendFloat(dst, c, t, float64(math.Float32frombits(binary.LittleEndian.Uint32(v))), 32)
	case avroDouble:
		return p.appendFloat(dst, c, t, math.Float64frombits(binary.LittleEndian.Uint64(v)), 64)
	case avroString:
		return p.appendString(dst, c, t, avroBytesValue(v))
	case avroBytes:
		if t.logical == logicalDecimal {
			return p.appendDecimal(dst, c, t, avroBytesValue(v))
		}
		return p.appendBytes(dst, c, t, avroBytesValue(v))
	case avroFixed:
		switch t.logical {
		case logicalDecimal:
			return p.appendDecimal(dst, c, t, v)
		case logicalDuration:
			switch c.Type {
			case TypeText:
				dst, at := beginField(dst)
				return endField(appendISODuration(dst, v), at), nil
			case TypeJSON, TypeJSONB:
				dst, at := beginJSONField(dst, c.Type)
				return endField(appendDurationJSON(dst, v), at), nil
			case TypeBytea:
				return appendBytesField(dst, v), nil
			}
			return dst, c.wrongAvro(t)
		}
		return p.appendBytes(dst, c, t, v)
	case avroEnum:
		sym := t.symbols[avroLongValue(v)]
		switch c.Type {
		case TypeText:
			return appendStringField(dst, sym), nil
		case TypeJSON, TypeJSONB:
			dst, at := beginJSONField(dst, c.Type)
			dst = append(dst, '"')
			dst = append(dst, sym...) // symbols are [A-Za-z0-9_]
			return endField(append(dst, '"'), at), nil
		}
	case avroRecord, avroArray, avroMap:
		switch c.Type {
		case TypeText, TypeJSON, TypeJSONB:
			dst, at := beginJSONField(dst, c.Type)
			var reason Reason
			var detail string
			dst, _, reason, detail = p.appendJSON(dst, t, v, 0, c.Type == TypeJSONB)
			if reason != "" {
				return dst[:at], c.fail(reason, detail)
			}
			return endField(dst, at), nil
		}
	}
	return dst, c.wrongAvro(t)
}

// beginJSONField reserves a field's length word and, for jsonb, writes the
// version byte; endField completes it.
func beginJSONField(dst []byte, typ Type) ([]byte, int) {
	dst, at := beginField(dst)
	if typ == TypeJSONB {
		dst = append(dst, 1)
	}
	return dst, at
}

// appendJSONLike appends text that is both valid text and a valid JSON
// value (a number or a literal) as a text, json or jsonb field.
func appendJSONLike(dst []byte, typ Type, text []byte) []byte {
	if typ == TypeJSONB {
		return appendJSONBField(dst, text)
	}
	return appendBytesField(dst, text)
}

func (p *avroPlan) appendLong(dst []byte, c *column, t *avroType, x int64) ([]byte, *RowError) {
	switch t.logical {
	case logicalDate:
		switch c.Type {
		case TypeDate:
			pg := x - unixToPGDays
			if pg < pgMinDate || pg > pgMaxDate {
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("date %d days from 1970-01-01 out of range for date", x))
			}
			return appendInt4Field(dst, int32(pg)), nil
		case TypeTimestamptz, TypeTimestamp:
			pg := x - unixToPGDays
			if pg < pgMinTimestamp/usPerDay || pg >= pgEndTimestamp/usPerDay || pg*usPerDay < pgMinTimestamp {
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("date %d days from 1970-01-01 out of range for %s", x, c.Type))
			}
			return appendInt8Field(dst, pg*usPerDay), nil
		case TypeText, TypeJSON, TypeJSONB:
			var buf [16]byte
			s, ok := appendDateText(buf[:0], x)
			if !ok {
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("date %d days from 1970-01-01 is outside the years 0001 to 9999 of ISO 8601 text", x))
			}
			return appendTextOrJSONString(dst, c.Type, s), nil
		}
	case logicalTimeMillis, logicalTimeMicros:
		switch c.Type {
		case TypeText, TypeJSON, TypeJSONB:
			us := x
			if t.logical == logicalTimeMillis {
				us *= 1000
			}
			if us < 0 || us > usPerDay {
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("time of day %d %s out of range", x, avroLogicalNames[t.logical]))
			}
			var buf [24]byte
			return appendTextOrJSONString(dst, c.Type, appendTimeText(buf[:0], us)), nil
		}
	case logicalTimestampMillis, logicalTimestampMicros, logicalTimestampNanos,
		logicalLocalTimestampMillis, logicalLocalTimestampMicros, logicalLocalTimestampNanos:
		switch c.Type {
		case TypeTimestamptz, TypeTimestamp, TypeText, TypeJSON, TypeJSONB:
			us, ok := avroTimestampMicros(x, t.logical)
			if !ok {
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("%s %d out of range for timestamp", avroLogicalNames[t.logical], x))
			}
			if c.Type == TypeTimestamptz || c.Type == TypeTimestamp {
				return appendInt8Field(dst, us), nil
			}
			var buf [40]byte
			local := t.logical >= logicalLocalTimestampMillis
			s, ok := appendTimestampText(buf[:0], us, !local)
			if !ok {
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("%s %d is outside the years 0001 to 9999 of RFC 3339 text", avroLogicalNames[t.logical], x))
			}
			return appendTextOrJSONString(dst, c.Type, s), nil
		}
	default:
		switch c.Type {
		case TypeNumeric:
			return appendNumericInt(dst, x), nil
		case TypeFloat4:
			return appendFloat4Field(dst, float32(x)), nil
		case TypeFloat8:
			return appendFloat8Field(dst, float64(x)), nil
		case TypeText, TypeJSON, TypeJSONB:
			var buf [24]byte
			return appendJSONLike(dst, c.Type, appendInt(buf[:0], x)), nil
		case TypeTimestamptz, TypeTimestamp:
			var buf [24]byte
			n, _ := splitNumber(appendInt(buf[:0], x))
			us, reason, detail := epochMicros(&n)
			if reason != "" {
				return dst, c.fail(reason, fmt.Sprintf("%s: %d", detail, x))
			}
			return appendInt8Field(dst, us), nil
		}
	}
	switch c.Type {
	case TypeInt2, TypeInt4, TypeInt8:
		return appendIntField(dst, c, x)
	}
	return dst, c.wrongAvro(t)
}

// PostgreSQL's date range in days since 2000-01-01: 4714-11-24 BC to
// 5874897-12-31.
const (
	pgMinDate = -2451545
	pgMaxDate = 2145031948
)

// avroTimestampMicros converts an Avro timestamp to µs since 2000-01-01,
// rounding nanoseconds as PostgreSQL rounds a fraction of more than six
// digits, and checks PostgreSQL's timestamp range.
func avroTimestampMicros(x int64, l avroLogical) (int64, bool) {
	var us int64
	switch l {
	case logicalTimestampMillis, logicalLocalTimestampMillis:
		if x > math.MaxInt64/1000 || x < math.MinInt64/1000 {
			return 0, false
		}
		us = x * 1000
	case logicalTimestampMicros, logicalLocalTimestampMicros:
		us = x
	default:
		sec := x / 1e9
		ns := x % 1e9
		if ns < 0 {
			sec--
			ns += 1e9
		}
		// PostgreSQL: rint(strtod(".fraction") * 1e6); float64(ns)/1e9 is
		// the same correctly rounded double as strtod's.
		us = sec*1e6 + int64(math.RoundToEven(float64(ns)/1e9*1e6))
	}
	if us < pgMinTimestamp+unixToPGUs {
		return 0, false
	}
	pg := us - unixToPGUs
	return pg, pg < pgEndTimestamp
}

// appendTextOrJSONString appends text s (ASCII, nothing to escape) as a
// text field, or as a JSON string in a json or jsonb field.
func appendTextOrJSONString(dst []byte, typ Type, s []byte) []byte {
	if typ == TypeText {
		return appendBytesField(dst, s)
	}
	dst, at := beginJSONField(dst, typ)
	dst = append(dst, '"')
	dst = append(dst, s...)
	return endField(append(dst, '"'), at)
}

func appendInt(dst []byte, x int64) []byte {
	if x < 0 {
		dst = append(dst, '-')
		return appendUint(dst, uint64(-x)) // -MinInt64 wraps to itself, whose uint64 is right
	}
	return appendUint(dst, uint64(x))
}

func appendUint(dst []byte, u uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for u >= 10 {
		i--
		buf[i] = byte('0' + u%10)
		u /= 10
	}
	i--
	buf[i] = byte('0' + u)
	return append(dst, buf[i:]...)
}

// civilFromDays returns the proleptic Gregorian date days after 1970-01-01
// (H. Hinnant's algorithm).
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := z
	if era < 0 {
		era -= 146096
	}
	era /= 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// appendDateText appends YYYY-MM-DD for days since 1970-01-01, for years
// 0001 to 9999.
func appendDateText(dst []byte, days int64) ([]byte, bool) {
	if days < -719162 || days > 2932896 {
		return dst, false
	}
	y, m, d := civilFromDays(days)
	dst = appendDigits(dst, y, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, m, 2)
	dst = append(dst, '-')
	return appendDigits(dst, d, 2), true
}

// appendTimestampText appends an RFC 3339 timestamp for µs since
// 2000-01-01, with a Z when utc, for years 0001 to 9999.
func appendTimestampText(dst []byte, us int64, utc bool) ([]byte, bool) {
	days := floorDiv(us, usPerDay)
	dst, ok := appendDateText(dst, days+unixToPGDays)
	if !ok {
		return dst, false
	}
	dst = append(dst, 'T')
	dst = appendTimeText(dst, us-days*usPerDay)
	if utc {
		dst = append(dst, 'Z')
	}
	return dst, true
}

// appendISODuration appends an Avro duration (months, days and
// milliseconds, little-endian uint32 each) in ISO 8601 form, which
// PostgreSQL's interval input accepts: P1M2DT3.004S.
func appendISODuration(dst []byte, v []byte) []byte {
	months := binary.LittleEndian.Uint32(v)
	days := binary.LittleEndian.Uint32(v[4:])
	ms := binary.LittleEndian.Uint32(v[8:])
	dst = append(dst, 'P')
	dst = appendUint(dst, uint64(months))
	dst = append(dst, 'M')
	dst = appendUint(dst, uint64(days))
	dst = append(dst, 'D', 'T')
	dst = appendUint(dst, uint64(ms/1000))
	if f := ms % 1000; f != 0 {
		dst = append(dst, '.')
		dst = appendDigits(dst, int64(f), 3)
	}
	return append(dst, 'S')
}

func appendDurationJSON(dst []byte, v []byte) []byte {
	dst = append(dst, `{"months":`...)
	dst = appendUint(dst, uint64(binary.LittleEndian.Uint32(v)))
	dst = append(dst, `,"days":`...)
	dst = appendUint(dst, uint64(binary.LittleEndian.Uint32(v[4:])))
	dst = append(dst, `,"milliseconds":`...)
	dst = appendUint(dst, uint64(binary.LittleEndian.Uint32(v[8:])))
	return append(dst, '}')
}

func (p *avroPlan) appendFloat(dst []byte, c *column, t *avroType, f float64, bits int) ([]byte, *RowError) {
	switch c.Type {
	case TypeFloat8:
		return appendFloat8Field(dst, f), nil
	case TypeFloat4:
		f32 := float32(f)
		switch {
		case math.IsInf(float64(f32), 0) && !math.IsInf(f, 0):
			return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("%g overflows float4", f))
		case f32 == 0 && f != 0:
			return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("%g underflows float4", f))
		}
		return appendFloat4Field(dst, f32), nil
	case TypeNumeric:
		switch {
		case math.IsNaN(f):
			return appendNumericSpecial(dst, numericNaN), nil
		case math.IsInf(f, 1):
			return appendNumericSpecial(dst, numericPInf), nil
		case math.IsInf(f, -1):
			return appendNumericSpecial(dst, numericNInf), nil
		}
		if bits == 64 {
			if out, ok := appendNumericFloat(dst, f); ok {
				return out, nil
			}
		}
		p.num = appendFloatText(p.num[:0], f, bits)
		n, _ := splitNumber(p.num)
		return appendNumericField(dst, &n), nil
	case TypeInt2, TypeInt4, TypeInt8:
		switch {
		case math.IsNaN(f) || f != math.Trunc(f):
			return dst, c.fail(ReasonWrongType, fmt.Sprintf("%g is not an integer", f))
		case f < -(1<<63) || f >= 1<<63:
			return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("%g out of range for a 64-bit integer", f))
		}
		return appendIntField(dst, c, int64(f))
	case TypeText:
		dst, at := beginField(dst)
		return endField(appendPGFloat(dst, f, bits), at), nil
	case TypeJSON, TypeJSONB:
		dst, at := beginJSONField(dst, c.Type)
		return endField(appendJSONFloat(dst, f, bits), at), nil
	}
	return dst, c.wrongAvro(t)
}

// appendFloatText appends the shortest decimal that reads back as f, in
// exponent form (a JSON number).
func appendFloatText(dst []byte, f float64, bits int) []byte {
	return strconv.AppendFloat(dst, f, 'e', -1, bits)
}

// appendPGFloat appends f as PostgreSQL prints a float8 (bits 64) or
// float4 (bits 32): the shortest exact digits, in exponent form below
// 1e-4 and from 1e15 (float4: 1e6) up.
func appendPGFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, bits)
	exp := 0
	if i := strings.LastIndexByte(b2s(e), 'e'); i >= 0 {
		x, _ := parseSimpleInt(e[i+2:])
		if e[i+1] == '-' {
			x = -x
		}
		exp = int(x)
	}
	limit := 15
	if bits == 32 {
		limit = 6
	}
	if exp < -4 || exp >= limit {
		return append(dst, e...)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, bits)
}

// appendJSONFloat appends f as a JSON number, or NaN and the infinities as
// the strings "NaN", "Infinity" and "-Infinity", which JSON has no numbers
// for.
func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		dst = append(dst, '"')
		return append(appendPGFloat(dst, f, bits), '"')
	}
	return appendPGFloat(dst, f, bits)
}

func (p *avroPlan) appendString(dst []byte, c *column, t *avroType, s []byte) ([]byte, *RowError) {
	switch c.Type {
	case TypeText:
		if reason, detail := checkText(s); reason != "" {
			return dst, c.fail(reason, detail)
		}
		return appendBytesField(dst, s), nil
	case TypeBytea:
		return appendBytesField(dst, s), nil
	case TypeUUID:
		var u [16]byte
		if !parseUUID(s, &u) {
			return dst, c.fail(ReasonInvalidValue, "invalid UUID "+quote(s))
		}
		dst = append(dst, 0, 0, 0, 16)
		return append(dst, u[:]...), nil
	case TypeJSON, TypeJSONB:
		dst, at := beginJSONField(dst, c.Type)
		dst, reason, detail := appendJSONText(dst, s, c.Type == TypeJSONB)
		if reason != "" {
			return dst[:at], c.fail(reason, detail)
		}
		return endField(dst, at), nil
	case TypeTimestamptz, TypeTimestamp:
		us, ok := parseTimestamp(s)
		if !ok {
			return dst, c.fail(ReasonInvalidValue, "invalid RFC 3339 timestamp "+quote(s))
		}
		return appendInt8Field(dst, us), nil
	case TypeDate:
		days, ok := parseDate(s)
		if !ok || len(s) != 10 {
			return dst, c.fail(ReasonInvalidValue, "invalid date "+quote(s)+", want YYYY-MM-DD")
		}
		return appendInt4Field(dst, int32(days-unixToPGDays)), nil
	}
	// Numbers written as strings, as in JSON.
	special := specialFloat(s)
	n, ok := splitNumber(s)
	if !ok && special == 0 {
		return dst, c.fail(ReasonWrongType, "string is not a number: "+quote(s))
	}
	switch c.Type {
	case TypeInt2, TypeInt4, TypeInt8:
		if !ok {
			return dst, c.fail(ReasonWrongType, "string is not an integer: "+quote(s))
		}
		v, reason, detail := n.integer()
		if reason != "" {
			return dst, c.fail(reason, detail+": "+quote(s))
		}
		return appendIntField(dst, c, v)
	case TypeFloat4, TypeFloat8:
		bits := 64
		if c.Type == TypeFloat4 {
			bits = 32
		}
		f := special
		if f == 0 {
			var reason Reason
			var detail string
			if f, reason, detail = parseFloat(s, &n, bits); reason != "" {
				return dst, c.fail(reason, detail+": "+quote(s))
			}
		}
		if bits == 32 {
			return appendFloat4Field(dst, float32(f)), nil
		}
		return appendFloat8Field(dst, f), nil
	case TypeNumeric:
		switch {
		case math.IsNaN(special):
			return appendNumericSpecial(dst, numericNaN), nil
		case math.IsInf(special, 1):
			return appendNumericSpecial(dst, numericPInf), nil
		case math.IsInf(special, -1):
			return appendNumericSpecial(dst, numericNInf), nil
		}
		if !n.fitsNumeric() {
			return dst, c.fail(ReasonOutOfRange, "number beyond the range of numeric: "+quote(s))
		}
		return appendNumericField(dst, &n), nil
	}
	return dst, c.wrongAvro(t)
}

// appendBytes converts bytes or a fixed (not a decimal or duration).
func (p *avroPlan) appendBytes(dst []byte, c *column, t *avroType, b []byte) ([]byte, *RowError) {
	switch c.Type {
	case TypeBytea:
		return appendBytesField(dst, b), nil
	case TypeText:
		if t.logical == logicalUUID {
			dst = append(dst, 0, 0, 0, 36)
			return appendUUIDText(dst, b), nil
		}
		if reason, detail := checkText(b); reason != "" {
			return dst, c.fail(reason, detail)
		}
		return appendBytesField(dst, b), nil
	case TypeUUID:
		if len(b) != 16 {
			return dst, c.fail(ReasonInvalidValue, fmt.Sprintf("%d bytes cannot be a UUID, which takes 16", len(b)))
		}
		dst = append(dst, 0, 0, 0, 16)
		return append(dst, b...), nil
	case TypeJSON, TypeJSONB:
		dst, at := beginJSONField(dst, c.Type)
		return endField(appendBytesJSON(dst, t, b), at), nil
	}
	return dst, c.wrongAvro(t)
}

// appendBytesJSON appends bytes or a fixed as a JSON string: a fixed UUID
// in canonical form, anything else in padded standard base64.
func appendBytesJSON(dst []byte, t *avroType, b []byte) []byte {
	dst = append(dst, '"')
	if t.logical == logicalUUID {
		dst = appendUUIDText(dst, b)
	} else {
		dst = base64.StdEncoding.AppendEncode(dst, b)
	}
	return append(dst, '"')
}

func appendUUIDText(dst []byte, u []byte) []byte {
	const hexDigits = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[c>>4], hexDigits[c&15])
	}
	return dst
}

// maxDecimalBytes bounds the unscaled value of a decimal (9864 digits);
// converting it to decimal digits is quadratic in its length.
const maxDecimalBytes = 4096

func (p *avroPlan) appendDecimal(dst []byte, c *column, t *avroType, b []byte) ([]byte, *RowError) {
	if len(b) > maxDecimalBytes {
		return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("decimal of %d bytes is longer than the %d supported", len(b), maxDecimalBytes))
	}
	if c.Type == TypeNumeric && len(b) <= 8 && t.scale <= 15 {
		neg, mag := smallDecimal(b)
		return appendNumericScaled(dst, neg, mag, t.scale), nil
	}
	p.num = p.appendDecimalText(p.num[:0], b, t.scale)
	text := p.num
	n, _ := splitNumber(text)
	switch c.Type {
	case TypeNumeric, TypeJSONB:
		if !n.fitsNumeric() {
			return dst, c.fail(ReasonOutOfRange, "decimal beyond the range of numeric: "+quote(text))
		}
		if c.Type == TypeJSONB {
			return appendJSONBField(dst, text), nil
		}
		return appendNumericField(dst, &n), nil
	case TypeText, TypeJSON:
		return appendBytesField(dst, text), nil
	case TypeFloat4, TypeFloat8:
		bits := 64
		if c.Type == TypeFloat4 {
			bits = 32
		}
		f, reason, detail := parseFloat(text, &n, bits)
		if reason != "" {
			return dst, c.fail(reason, detail+": "+quote(text))
		}
		if bits == 32 {
			return appendFloat4Field(dst, float32(f)), nil
		}
		return appendFloat8Field(dst, f), nil
	case TypeInt2, TypeInt4, TypeInt8:
		v, reason, detail := n.integer()
		if reason != "" {
			return dst, c.fail(reason, detail+": "+quote(text))
		}
		return appendIntField(dst, c, v)
	}
	return dst, c.wrongAvro(t)
}

// appendDecimalText appends the decimal text (a JSON number) of the
// big-endian two's complement unscaled value b at the given scale: scale
// digits after the point, a 0 before it when nothing else is.
func (p *avroPlan) appendDecimalText(dst, b []byte, scale int) []byte {
	neg := len(b) > 0 && b[0]&0x80 != 0 // a negative magnitude is never 0: no "-0"
	if neg {
		dst = append(dst, '-')
	}
	digitsAt := len(dst)
	if len(b) <= 8 {
		_, mag := smallDecimal(b)
		dst = appendUint(dst, mag)
	} else {
		dst = append(dst, p.bigDigits(b, neg)...)
	}
	nd := len(dst) - digitsAt
	if scale > 0 {
		if nd <= scale {
			// 0.00ddd: shift the digits right to make room.
			pad := scale - nd + 2
			dst = append(dst, make([]byte, pad)...)
			copy(dst[digitsAt+pad:], dst[digitsAt:digitsAt+nd])
			dst[digitsAt] = '0'
			dst[digitsAt+1] = '.'
			for i := digitsAt + 2; i < digitsAt+pad; i++ {
				dst[i] = '0'
			}
		} else {
			dst = append(dst, 0)
			at := len(dst) - 1 - scale
			copy(dst[at+1:], dst[at:len(dst)-1])
			dst[at] = '.'
		}
	}
	return dst
}

// smallDecimal returns the sign and magnitude of a two's complement
// integer of at most 8 bytes.
func smallDecimal(b []byte) (neg bool, mag uint64) {
	neg = len(b) > 0 && b[0]&0x80 != 0
	var x int64
	if neg {
		x = -1
	}
	for _, c := range b {
		x = x<<8 | int64(c)
	}
	mag = uint64(x)
	if neg {
		mag = -mag
	}
	return neg, mag
}

// appendNumericScaled appends ±mag × 10^-scale as a binary numeric field
// with that scale, straight to base-10000 digits. scale must be at most
// 15, so that the fraction padded to whole digits fits a uint64.
func appendNumericScaled(dst []byte, neg bool, mag uint64, scale int) []byte {
	ip, fp := mag/pow10[scale], mag%pow10[scale]
	fracGroups := (scale + 3) / 4
	fp *= pow10[4*fracGroups-scale]
	var g [10]uint16 // at most 5 integer and 4 fraction groups
	var ig [5]uint16
	ni := 0
	for x := ip; x > 0; x /= 10000 {
		ig[ni] = uint16(x % 10000)
		ni++
	}
	n := 0
	for j := ni - 1; j >= 0; j-- {
		g[n] = ig[j]
		n++
	}
	for j := fracGroups - 1; j >= 0; j-- {
		g[n] = uint16(fp / pow10[4*j] % 10000)
		n++
	}
	weight := ni - 1
	start := 0
	for start < n && g[start] == 0 {
		start++
		weight--
	}
	end := n
	for end > start && g[end-1] == 0 {
		end--
	}
	sign := uint16(numericPos)
	if start == end {
		weight = 0
	} else if neg {
		sign = numericNeg
	}
	nd := end - start
	dst = binary.BigEndian.AppendUint32(dst, uint32(8+2*nd))
	dst = binary.BigEndian.AppendUint16(dst, uint16(nd))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
	dst = binary.BigEndian.AppendUint16(dst, sign)
	dst = binary.BigEndian.AppendUint16(dst, uint16(scale))
	for _, d := range g[start:end] {
		dst = binary.BigEndian.AppendUint16(dst, d)
	}
	return dst
}

// bigDigits returns the decimal digits of the magnitude of a long two's
// complement integer, in p.digits.
func (p *avroPlan) bigDigits(b []byte, neg bool) []byte {
	// Magnitude as big-endian 32-bit words.
	nw := (len(b) + 3) / 4
	p.words = slices.Grow(p.words[:0], nw)[:nw]
	w := p.words
	clear(w)
	for i := range b {
		c := b[len(b)-1-i]
		w[nw-1-i/4] |= uint32(c) << (8 * (i % 4))
	}
	if pad := nw*4 - len(b); neg && pad > 0 {
		w[0] |= ^uint32(0) << (8 * (4 - pad))
	}
	if neg {
		carry := uint64(1)
		for i := nw - 1; i >= 0; i-- {
			s := uint64(^w[i]) + carry
			w[i] = uint32(s)
			carry = s >> 32
		}
	}
	// Repeated division by 1e9, least significant chunk first.
	d := p.digits[:0]
	top := 0
	for top < nw && w[top] == 0 {
		top++
	}
	for top < nw {
		var rem uint64
		for i := top; i < nw; i++ {
			cur := rem<<32 | uint64(w[i])
			w[i] = uint32(cur / 1e9)
			rem = cur % 1e9
		}
		for top < nw && w[top] == 0 {
			top++
		}
		for k := 0; k < 9; k++ {
			if top == nw && rem == 0 {
				break
			}
			d = append(d, byte('0'+rem%10))
			rem /= 10
		}
	}
	if len(d) == 0 {
		d = append(d, '0')
	}
	slices.Reverse(d)
	p.digits = d
	return d
}
