package codec

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// appendPath appends the field of path column i from the last decode.
func (p *protobufPlan) appendPath(dst []byte, i int) ([]byte, *RowError) {
	c := &p.cols[i]
	if c.absent || (c.parent >= 0 && !p.slots[c.parent].present()) {
		return c.null(dst)
	}
	s := &p.slots[c.slot]
	f := c.f
	if !s.present() && f.presence {
		return c.null(dst)
	}
	if !f.list && !f.isMap && f.msg == nil {
		var v []byte
		var u uint64
		if s.set {
			v = p.payload[s.start:s.end]
			u = scalarOf(f, v)
		}
		return p.appendScalar(dst, c, f, u, v)
	}
	p.scan = p.scan[:0]
	p.segs = p.segs[:0]
	for o := s.head; o >= 0; o = p.occ[o].next {
		oc := &p.occ[o]
		p.scan = append(p.scan, pbScan{field: 0, start: oc.start, end: oc.end, wt: oc.wt})
	}
	if f.msg != nil && !f.isMap && !f.list {
		if out, rerr, done := p.appendMessage(dst, c, f.msg); done {
			return out, rerr
		}
	}
	return p.appendJSONColumn(dst, c, func(dst []byte) ([]byte, bool) {
		return p.renderField(dst, f, 0, 0, len(p.scan), 0)
	})
}

// appendJSONColumn appends a json, jsonb or text field whose JSON text
// render appends. A text column of a JSON string holds the string's
// content, as for JSON records.
func (p *protobufPlan) appendJSONColumn(dst []byte, c *pbCol, render func([]byte) ([]byte, bool)) ([]byte, *RowError) {
	p.jsonb = c.Type == TypeJSONB
	p.dedupe = !p.jsonb
	dst, at := beginField(dst)
	if p.jsonb {
		dst = append(dst, 1)
	}
	body := len(dst)
	dst, ok := render(dst)
	if !ok {
		return dst[:at], c.fail(p.errReason, p.errDetail)
	}
	if c.Type == TypeText && len(dst)-body >= 2 && dst[body] == '"' {
		// The JSON strings the renderer writes for text columns carry no
		// escapes worth keeping: unquote them in place.
		s := dst[body+1 : len(dst)-1]
		var unq []byte
		if unq, ok = unescapeString(p.num[:0], s); !ok {
			return dst[:at], c.fail(ReasonNULInText, "string holds NUL")
		}
		p.num = unq
		dst = append(dst[:body], unq...)
	}
	return endField(dst, at), nil
}

// fail records why a rendering failed; it returns false for the caller
// to pass on.
func (p *protobufPlan) fail(reason Reason, detail string) bool {
	p.errReason, p.errDetail = reason, detail
	return false
}

// pbInt returns the integer a scalar of an integer kind holds: in i, or,
// for a uint64 or fixed64 above math.MaxInt64, in u with big set.
func pbInt(f *pbField, u uint64) (i int64, big bool) {
	switch f.kind {
	case protoreflect.Int32Kind, protoreflect.EnumKind:
		return int64(int32(u)), false
	case protoreflect.Sint32Kind:
		return int64(int32(protowire.DecodeZigZag(u & math.MaxUint32))), false
	case protoreflect.Sint64Kind:
		return protowire.DecodeZigZag(u), false
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return int64(uint32(u)), false
	case protoreflect.Sfixed32Kind:
		return int64(int32(uint32(u))), false
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return int64(u), u > math.MaxInt64
	case protoreflect.BoolKind:
		if u != 0 {
			return 1, false
		}
		return 0, false
	}
	return int64(u), false // int64, sfixed64
}

func pbIsFloat(k protoreflect.Kind) bool {
	return k == protoreflect.FloatKind || k == protoreflect.DoubleKind
}

func pbFloat(f *pbField, u uint64) float64 {
	if f.kind == protoreflect.FloatKind {
		return float64(math.Float32frombits(uint32(u)))
	}
	return math.Float64frombits(u)
}

func pbFloatBits(k protoreflect.Kind) int {
	if k == protoreflect.FloatKind {
		return 32
	}
	return 64
}

// numberText writes the decimal text of an integer or float scalar to
// p.num and splits it.
func (p *protobufPlan) numberText(f *pbField, u uint64) ([]byte, number) {
	b := p.num[:0]
	if pbIsFloat(f.kind) {
		b = strconv.AppendFloat(b, pbFloat(f, u), 'g', -1, pbFloatBits(f.kind))
	} else if i, big := pbInt(f, u); big {
		b = strconv.AppendUint(b, u, 10)
	} else {
		b = strconv.AppendInt(b, i, 10)
	}
	p.num = b
	n, _ := splitNumber(b)
	return b, n
}

// appendScalar converts a scalar field value (u its integer bits, v its
// bytes; both zero for the default) for column c.
func (p *protobufPlan) appendScalar(dst []byte, c *pbCol, f *pbField, u uint64, v []byte) ([]byte, *RowError) {
	k := f.kind
	switch c.Type {
	case TypeJSON, TypeJSONB:
		p.jsonb = c.Type == TypeJSONB
		dst, at := beginField(dst)
		if p.jsonb {
			dst = append(dst, 1)
		}
		dst, ok := p.appendScalarJSON(dst, f, u, v)
		if !ok {
			return dst[:at], c.fail(p.errReason, p.errDetail)
		}
		return endField(dst, at), nil

	case TypeText:
		switch k {
		case protoreflect.StringKind:
			if reason, detail := checkText(v); reason != "" {
				return dst, c.fail(reason, detail)
			}
			return appendBytesField(dst, v), nil
		case protoreflect.BytesKind:
			dst, at := beginField(dst)
			dst = base64.StdEncoding.AppendEncode(dst, v)
			return endField(dst, at), nil
		case protoreflect.BoolKind:
			if u != 0 {
				return appendStringField(dst, "true"), nil
			}
			return appendStringField(dst, "false"), nil
		case protoreflect.EnumKind:
			if name, ok := f.enum.name(int32(u)); ok {
				return appendStringField(dst, name), nil
			}
		}
		dst, at := beginField(dst)
		if pbIsFloat(k) {
			dst = appendPBFloat(dst, pbFloat(f, u), pbFloatBits(k), false)
		} else if i, big := pbInt(f, u); big {
			dst = strconv.AppendUint(dst, u, 10)
		} else {
			dst = strconv.AppendInt(dst, i, 10)
		}
		return endField(dst, at), nil

	case TypeInt2, TypeInt4, TypeInt8:
		switch {
		case k == protoreflect.StringKind:
			n, ok := splitNumber(v)
			if !ok {
				return dst, c.fail(ReasonWrongType, "string is not a number: "+quote(v))
			}
			i, reason, detail := n.integer()
			if reason != "" {
				return dst, c.fail(reason, detail+": "+quote(v))
			}
			return appendIntField(dst, &c.column, i)
		case pbIsFloat(k):
			x := pbFloat(f, u)
			switch {
			case math.IsNaN(x):
				return dst, c.fail(ReasonWrongType, "NaN is not an integer")
			case x != math.Trunc(x):
				return dst, c.fail(ReasonWrongType, fmt.Sprintf("number %v is not an integer", x))
			case x < -(1<<63) || x >= 1<<63:
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("number %v out of range for a 64-bit integer", x))
			}
			return appendIntField(dst, &c.column, int64(x))
		}
		i, big := pbInt(f, u)
		if big {
			return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("value %d out of range for %s", u, c.Type))
		}
		return appendIntField(dst, &c.column, i)

	case TypeFloat4, TypeFloat8:
		bits := 64
		if c.Type == TypeFloat4 {
			bits = 32
		}
		var x float64
		switch {
		case k == protoreflect.StringKind:
			if x = specialFloat(v); x == 0 {
				n, ok := splitNumber(v)
				if !ok {
					return dst, c.fail(ReasonWrongType, "string is not a number: "+quote(v))
				}
				var reason Reason
				var detail string
				if x, reason, detail = parseFloat(v, &n, bits); reason != "" {
					return dst, c.fail(reason, detail+": "+quote(v))
				}
			}
		case pbIsFloat(k):
			x = pbFloat(f, u)
			if bits == 32 && k == protoreflect.DoubleKind && !math.IsInf(x, 0) && !math.IsNaN(x) {
				y := float32(x)
				if math.IsInf(float64(y), 0) {
					return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("value %v overflows float4", x))
				}
				if y == 0 && x != 0 {
					return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("value %v underflows float4", x))
				}
			}
		default:
			if i, big := pbInt(f, u); big {
				x = float64(u)
			} else if bits == 32 {
				x = float64(float32(i)) // rounded once, to float4
			} else {
				x = float64(i)
			}
		}
		if bits == 32 {
			return appendFloat4Field(dst, float32(x)), nil
		}
		return appendFloat8Field(dst, x), nil

	case TypeNumeric:
		var text []byte
		var n number
		switch {
		case k == protoreflect.StringKind:
			switch x := specialFloat(v); {
			case math.IsNaN(x):
				return appendNumericSpecial(dst, numericNaN), nil
			case math.IsInf(x, 1):
				return appendNumericSpecial(dst, numericPInf), nil
			case math.IsInf(x, -1):
				return appendNumericSpecial(dst, numericNInf), nil
			}
			var ok bool
			if n, ok = splitNumber(v); !ok {
				return dst, c.fail(ReasonWrongType, "string is not a number: "+quote(v))
			}
			text = v
		case pbIsFloat(k):
			switch x := pbFloat(f, u); {
			case math.IsNaN(x):
				return appendNumericSpecial(dst, numericNaN), nil
			case math.IsInf(x, 1):
				return appendNumericSpecial(dst, numericPInf), nil
			case math.IsInf(x, -1):
				return appendNumericSpecial(dst, numericNInf), nil
			}
			if pbFloatBits(k) == 64 {
				if out, ok := appendNumericFloat(dst, pbFloat(f, u)); ok {
					return out, nil
				}
			}
			text, n = p.numberText(f, u)
		default:
			if i, big := pbInt(f, u); !big {
				return appendNumericInt(dst, i), nil
			}
			text, n = p.numberText(f, u)
		}
		if !n.fitsNumeric() {
			return dst, c.fail(ReasonOutOfRange, "number beyond the range of numeric: "+quote(text))
		}
		return appendNumericField(dst, &n), nil

	case TypeBool:
		return appendBoolField(dst, u != 0), nil

	case TypeUUID:
		var uid [16]byte
		if k == protoreflect.BytesKind {
			if len(v) != 16 {
				return dst, c.fail(ReasonInvalidValue, fmt.Sprintf("a UUID takes 16 bytes, got %d", len(v)))
			}
			copy(uid[:], v)
		} else if !parseUUID(v, &uid) {
			return dst, c.fail(ReasonInvalidValue, "invalid UUID "+quote(v))
		}
		dst = append(dst, 0, 0, 0, 16)
		return append(dst, uid[:]...), nil

	case TypeTimestamptz, TypeTimestamp:
		if k == protoreflect.StringKind {
			us, ok := parseTimestamp(v)
			if !ok {
				return dst, c.fail(ReasonInvalidValue, "invalid RFC 3339 timestamp "+quote(v))
			}
			return appendInt8Field(dst, us), nil
		}
		if pbIsFloat(k) {
			if x := pbFloat(f, u); math.IsNaN(x) || math.IsInf(x, 0) {
				return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("epoch %v out of range for timestamp", x))
			}
		}
		text, n := p.numberText(f, u)
		us, reason, detail := epochMicros(&n)
		if reason != "" {
			return dst, c.fail(reason, detail+": "+quote(text))
		}
		return appendInt8Field(dst, us), nil

	case TypeDate:
		days, ok := parseDate(v)
		if !ok || len(v) != 10 {
			return dst, c.fail(ReasonInvalidValue, "invalid date "+quote(v)+", want YYYY-MM-DD")
		}
		return appendInt4Field(dst, int32(days-unixToPGDays)), nil

	case TypeBytea:
		if k == protoreflect.BytesKind {
			return appendBytesField(dst, v), nil
		}
		dst, ok := appendBase64Field(dst, v)
		if !ok {
			return dst, c.fail(ReasonInvalidValue, "invalid base64 "+quote(v))
		}
		return dst, nil
	}
	return dst, c.fail(ReasonWrongType, "unsupported column type "+c.Type.String())
}

// appendMessage converts a message column whose type has a conversion of
// its own for c.Type; done is false when the column takes the message's
// JSON instead. p.scan holds the message's occurrences.
func (p *protobufPlan) appendMessage(dst []byte, c *pbCol, t *pbType) (out []byte, rerr *RowError, done bool) {
	switch t.wkt {
	case wktTimestamp, wktDuration, wktWrapper, wktDecimal, wktDate:
	default:
		return dst, nil, false
	}
	for _, sc := range p.scan {
		p.segs = append(p.segs, pbSeg{sc.start, sc.end})
	}
	lo, hi, ok := p.scanMessage(t, 0, len(p.segs))
	if !ok {
		return dst, c.fail(p.errReason, p.errDetail), true
	}
	switch t.wkt {
	case wktWrapper:
		f := &t.fields[0]
		var u uint64
		var v []byte
		if j := p.lastOcc(lo, hi, 0); j >= 0 {
			v = p.payload[p.scan[j].start:p.scan[j].end]
			u = scalarOf(f, v)
		}
		out, rerr = p.appendScalar(dst, c, f, u, v)
		return out, rerr, true

	case wktTimestamp:
		if c.Type != TypeTimestamptz && c.Type != TypeTimestamp {
			break
		}
		sec, nanos := p.secondsNanos(t, lo, hi)
		us, reason, detail := pbTimestampMicros(sec, nanos)
		if reason != "" {
			return dst, c.fail(reason, detail), true
		}
		return appendInt8Field(dst, us), nil, true

	case wktDuration:
		if c.Type != TypeInt8 {
			break
		}
		sec, nanos := p.secondsNanos(t, lo, hi)
		if reason, detail := checkDuration(sec, nanos); reason != "" {
			return dst, c.fail(reason, detail), true
		}
		q, r := int64(nanos)/1000, int64(nanos)%1000
		if r > 500 || r == 500 && q&1 == 1 {
			q++
		} else if r < -500 || r == -500 && q&1 == 1 {
			q--
		}
		return appendInt8Field(dst, sec*usPerSec+q), nil, true

	case wktDate:
		if c.Type != TypeDate {
			break
		}
		y, m, d := p.int32Field(t, lo, hi, 1), p.int32Field(t, lo, hi, 2), p.int32Field(t, lo, hi, 3)
		if y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || int64(d) > daysIn(int64(y), int64(m)) {
			return dst, c.fail(ReasonInvalidValue, fmt.Sprintf("invalid google.type.Date %04d-%02d-%02d (year 1 to 9999, month and day set)", y, m, d)), true
		}
		return appendInt4Field(dst, int32(daysFromCivil(int64(y), int64(m), int64(d))-unixToPGDays)), nil, true

	case wktDecimal:
		if c.Type == TypeJSON || c.Type == TypeJSONB {
			break
		}
		text, ok := p.decimalText(p.num[:0], t, lo, hi)
		p.num = text
		if !ok {
			return dst, c.fail(p.errReason, p.errDetail), true
		}
		if c.Type == TypeText {
			return appendBytesField(dst, text), nil, true
		}
		n, _ := splitNumber(text)
		switch c.Type {
		case TypeNumeric:
			return appendNumericField(dst, &n), nil, true
		case TypeFloat4, TypeFloat8:
			bits := 64
			if c.Type == TypeFloat4 {
				bits = 32
			}
			x, reason, detail := parseFloat(text, &n, bits)
			if reason != "" {
				return dst, c.fail(reason, detail+": "+quote(text)), true
			}
			if bits == 32 {
				return appendFloat4Field(dst, float32(x)), nil, true
			}
			return appendFloat8Field(dst, x), nil, true
		}
		i, reason, detail := n.integer()
		if reason != "" {
			return dst, c.fail(reason, detail+": "+quote(text)), true
		}
		out, rerr = appendIntField(dst, &c.column, i)
		return out, rerr, true
	}
	// The message's JSON: rendered from the scan already made.
	out, rerr = p.appendJSONColumn(dst, c, func(dst []byte) ([]byte, bool) {
		return p.renderScanned(dst, t, lo, hi, 1)
	})
	return out, rerr, true
}

// lastOcc returns the index in p.scan[lo:hi] of the last occurrence of
// field fi, or -1.
func (p *protobufPlan) lastOcc(lo, hi int, fi int32) int {
	for j := hi - 1; j >= lo; j-- {
		if p.scan[j].field == fi {
			return j
		}
	}
	return -1
}

// fieldValue returns the last value of field number num of t in the scan
// region, zero when absent.
func (p *protobufPlan) fieldValue(t *pbType, lo, hi int, num protowire.Number) (*pbField, uint64, []byte) {
	fi := t.byNum.get(num)
	if fi < 0 {
		return nil, 0, nil
	}
	f := &t.fields[fi]
	j := p.lastOcc(lo, hi, int32(fi))
	if j < 0 {
		return f, 0, nil
	}
	v := p.payload[p.scan[j].start:p.scan[j].end]
	return f, scalarOf(f, v), v
}

func (p *protobufPlan) int32Field(t *pbType, lo, hi int, num protowire.Number) int32 {
	f, u, _ := p.fieldValue(t, lo, hi, num)
	if f == nil {
		return 0
	}
	i, _ := pbInt(f, u)
	return int32(i)
}

// secondsNanos reads a Timestamp or Duration.
func (p *protobufPlan) secondsNanos(t *pbType, lo, hi int) (int64, int32) {
	f, u, _ := p.fieldValue(t, lo, hi, 1)
	var sec int64
	if f != nil {
		sec, _ = pbInt(f, u)
	}
	return sec, p.int32Field(t, lo, hi, 2)
}

// Timestamp's range in protobuf: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
const (
	pbMinTimestampSec = -62135596800
	pbMaxTimestampSec = 253402300799
	pbMaxDurationSec  = 315576000000
)

// pbTimestampMicros returns a Timestamp in µs since 2000-01-01, the
// fraction rounded as PostgreSQL rounds the RFC 3339 text of it:
// rint(strtod(".nnnnnnnnn") * 1e6) in doubles.
func pbTimestampMicros(sec int64, nanos int32) (int64, Reason, string) {
	if nanos < 0 || nanos > 999_999_999 {
		return 0, ReasonInvalidValue, fmt.Sprintf("timestamp nanos %d outside 0 to 999999999", nanos)
	}
	const pgSecMin, pgSecEnd = pgMinTimestamp / usPerSec, pgEndTimestamp / usPerSec
	if sec < pgSecMin+unixToPGDays*86400 || sec >= pgSecEnd+unixToPGDays*86400 {
		return 0, ReasonOutOfRange, fmt.Sprintf("timestamp seconds %d out of range for timestamp", sec)
	}
	us := (sec-unixToPGDays*86400)*usPerSec + int64(math.RoundToEven(float64(nanos)/1e9*1e6))
	if us < pgMinTimestamp || us >= pgEndTimestamp {
		return 0, ReasonOutOfRange, fmt.Sprintf("timestamp seconds %d out of range for timestamp", sec)
	}
	return us, "", ""
}

func checkDuration(sec int64, nanos int32) (Reason, string) {
	if sec < -pbMaxDurationSec || sec > pbMaxDurationSec || nanos <= -1e9 || nanos >= 1e9 || (sec > 0 && nanos < 0) || (sec < 0 && nanos > 0) {
		return ReasonInvalidValue, fmt.Sprintf("invalid google.protobuf.Duration of %d seconds and %d nanos", sec, nanos)
	}
	return "", ""
}

// maxProtoDecimalBytes bounds the unscaled value of a confluent.type.Decimal
// (about 19700 digits, beyond any use; numeric takes 131072).
const maxProtoDecimalBytes = 8192

// decimalText appends the plain decimal text of a confluent.type.Decimal
// (value: big-endian two's complement, scale).
func (p *protobufPlan) decimalText(dst []byte, t *pbType, lo, hi int) ([]byte, bool) {
	_, _, v := p.fieldValue(t, lo, hi, 1)
	scale := int64(p.int32Field(t, lo, hi, 3))
	if len(v) > maxProtoDecimalBytes {
		return dst, p.fail(ReasonOutOfRange, fmt.Sprintf("decimal value of %d bytes, more than %d", len(v), maxProtoDecimalBytes))
	}
	start := len(dst)
	neg := len(v) > 0 && v[0]&0x80 != 0
	if neg {
		dst = append(dst, '-')
	}
	digits := len(dst)
	dst = p.appendMagnitude(dst, v, neg)
	nd := int64(len(dst) - digits)
	if nd == 1 && dst[digits] == '0' && neg {
		dst = append(dst[:start], '0') // cannot happen with two's complement, kept for safety
		digits = start
	}
	if scale > numericMaxDscale || nd-scale-1 > numericMaxLeadExp {
		return dst[:start], p.fail(ReasonOutOfRange, fmt.Sprintf("decimal of %d digits with scale %d beyond the range of numeric", nd, scale))
	}
	switch {
	case scale < 0:
		if nd != 1 || dst[digits] != '0' {
			for k := int64(0); k < -scale; k++ {
				dst = append(dst, '0')
			}
		}
	case scale > 0:
		if nd <= scale {
			// 0.000ddd: shift the digits right to make room.
			pad := int(scale - nd + 2)
			for k := 0; k < pad; k++ {
				dst = append(dst, 0)
			}
			copy(dst[digits+pad:], dst[digits:digits+int(nd)])
			dst[digits], dst[digits+1] = '0', '.'
			for k := 2; k < pad; k++ {
				dst[digits+k] = '0'
			}
		} else {
			dst = append(dst, 0)
			point := digits + int(nd-scale)
			copy(dst[point+1:], dst[point:])
			dst[point] = '.'
		}
	}
	return dst, true
}

// appendMagnitude appends the decimal digits of the absolute value of
// the big-endian two's-complement integer v.
func (p *protobufPlan) appendMagnitude(dst []byte, v []byte, neg bool) []byte {
	for len(v) > 1 && ((v[0] == 0 && v[1]&0x80 == 0) || (v[0] == 0xFF && v[1]&0x80 != 0)) {
		v = v[1:] // redundant sign bytes
	}
	if len(v) <= 8 {
		var x int64
		for k, c := range v {
			if k == 0 {
				x = int64(int8(c)) // sign-extend
			} else {
				x = x<<8 | int64(c)
			}
		}
		if x < 0 {
			return strconv.AppendUint(dst, uint64(-x), 10) // -MinInt64 wraps to 1<<63, its magnitude
		}
		return strconv.AppendUint(dst, uint64(x), 10)
	}
	// Base 2^32 limbs, most significant first, of the magnitude.
	limbs := p.limbs[:0]
	n := (len(v) + 3) / 4
	for k := 0; k < n; k++ {
		limbs = append(limbs, 0)
	}
	for k, c := range v {
		bit := (len(v) - 1 - k) * 8
		limbs[n-1-bit/32] |= uint32(c) << (bit % 32)
	}
	if neg {
		// Sign-extend the top limb, then negate: invert and add one.
		if r := len(v) % 4; r != 0 {
			limbs[0] |= ^uint32(0) << (8 * r)
		}
		carry := uint64(1)
		for k := n - 1; k >= 0; k-- {
			x := uint64(^limbs[k]) + carry
			limbs[k], carry = uint32(x), x>>32
		}
	}
	// Repeated division by 1e9; the remainders are 9-digit groups, least
	// significant first.
	groups := len(limbs)
	first := 0
	for first < len(limbs) && limbs[first] == 0 {
		first++
	}
	for first < n {
		var r uint64
		for k := first; k < n; k++ {
			x := r<<32 | uint64(limbs[k])
			limbs[k], r = uint32(x/1e9), x%1e9
		}
		limbs = append(limbs, uint32(r))
		for first < n && limbs[first] == 0 {
			first++
		}
	}
	p.limbs = limbs
	if len(limbs) == groups {
		return append(dst, '0')
	}
	dst = strconv.AppendUint(dst, uint64(limbs[len(limbs)-1]), 10)
	for k := len(limbs) - 2; k >= groups; k-- {
		var g [9]byte
		x := limbs[k]
		for j := 8; j >= 0; j-- {
			g[j] = byte('0' + x%10)
			x /= 10
		}
		dst = append(dst, g[:]...)
	}
	return dst
}

// scanMessage lists the fields of the message made of p.segs[segLo:segHi]
// (several ranges merge) onto p.scan and returns their region.
func (p *protobufPlan) scanMessage(t *pbType, segLo, segHi int) (lo, hi int, ok bool) {
	lo = len(p.scan)
	b := p.payload
	for s := segLo; s < segHi; s++ {
		i, end := int(p.segs[s].start), int(p.segs[s].end)
		for i < end {
			at := i
			num, wt, next := readTag(b, i, end)
			if next < 0 || !num.IsValid() {
				return lo, lo, p.fail(ReasonSchemaMismatch, fmt.Sprintf("%s: malformed tag at byte %d", t.name, at))
			}
			fi := t.byNum.get(num)
			vs, ve, next := consumeValue(b, next, end, num, wt)
			if next < 0 {
				return lo, lo, p.fail(ReasonSchemaMismatch, fmt.Sprintf("%s field number %d: %s at byte %d", t.name, num, malformed(wt), at))
			}
			i = next
			if fi < 0 {
				continue
			}
			if f := &t.fields[fi]; !wireFits(f, wt) {
				return lo, lo, p.fail(ReasonSchemaMismatch, fmt.Sprintf("%s field %s: %s value for a field of type %s at byte %d", t.name, f.name, wireName(wt), f.typeName(), at))
			}
			p.scan = append(p.scan, pbScan{field: int32(fi), start: int32(vs), end: int32(ve), wt: wt})
		}
	}
	return lo, len(p.scan), true
}

// renderMessage appends the JSON of the message made of
// p.segs[segLo:segHi].
func (p *protobufPlan) renderMessage(dst []byte, t *pbType, segLo, segHi, depth int) ([]byte, bool) {
	if depth > p.maxDepth {
		return dst, p.fail(ReasonSchemaMismatch, fmt.Sprintf("messages nested deeper than %d", p.maxDepth))
	}
	lo, hi, ok := p.scanMessage(t, segLo, segHi)
	if !ok {
		return dst, false
	}
	dst, ok = p.renderScanned(dst, t, lo, hi, depth)
	p.scan = p.scan[:lo]
	return dst, ok
}

// renderScanned appends the JSON of a message whose fields are
// p.scan[lo:hi].
func (p *protobufPlan) renderScanned(dst []byte, t *pbType, lo, hi, depth int) ([]byte, bool) {
	ok := true
	switch t.wkt {
	case wktTimestamp:
		sec, nanos := p.secondsNanos(t, lo, hi)
		if sec < pbMinTimestampSec || sec > pbMaxTimestampSec || nanos < 0 || nanos > 999_999_999 {
			return dst, p.fail(ReasonInvalidValue, fmt.Sprintf("google.protobuf.Timestamp of %d seconds and %d nanos out of range", sec, nanos))
		}
		dst = append(dst, '"')
		dst = time.Unix(sec, 0).UTC().AppendFormat(dst, "2006-01-02T15:04:05")
		dst = appendNanos(dst, nanos)
		return append(dst, 'Z', '"'), true

	case wktDuration:
		sec, nanos := p.secondsNanos(t, lo, hi)
		if reason, detail := checkDuration(sec, nanos); reason != "" {
			return dst, p.fail(reason, detail)
		}
		dst = append(dst, '"')
		if sec < 0 || nanos < 0 {
			dst = append(dst, '-')
			sec, nanos = -sec, -nanos
		}
		dst = strconv.AppendInt(dst, sec, 10)
		dst = appendNanos(dst, nanos)
		return append(dst, 's', '"'), true

	case wktWrapper:
		f, u, v := p.fieldValue(t, lo, hi, 1)
		return p.appendScalarJSON(dst, f, u, v)

	case wktStruct:
		if fi := t.byNum.get(1); fi >= 0 {
			return p.renderMap(dst, &t.fields[fi], int32(fi), lo, hi, depth)
		}
		return append(dst, '{', '}'), true

	case wktListValue:
		if fi := t.byNum.get(1); fi >= 0 {
			return p.renderList(dst, &t.fields[fi], int32(fi), lo, hi, depth)
		}
		return append(dst, '[', ']'), true

	case wktValue:
		j := hi - 1
		for j >= lo && t.fields[p.scan[j].field].oneof < 0 {
			j--
		}
		if j < lo {
			return append(dst, "null"...), true
		}
		fi := p.scan[j].field
		cut := p.lastOther(t, lo, hi, fi)
		return p.renderField(dst, &t.fields[fi], fi, cut+1, hi, depth)

	case wktFieldMask:
		dst = append(dst, '"')
		for j, n := lo, 0; j < hi; j++ {
			if t.fields[p.scan[j].field].num != 1 {
				continue
			}
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			up := false
			for _, ch := range p.payload[p.scan[j].start:p.scan[j].end] {
				switch {
				case ch == '_':
					up = true
					continue
				case up && ch >= 'a' && ch <= 'z':
					ch -= 'a' - 'A'
				case ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x80:
					return dst, p.fail(ReasonInvalidValue, "google.protobuf.FieldMask path is not a field path")
				}
				up = false
				dst = append(dst, ch)
			}
		}
		return append(dst, '"'), true

	case wktAny:
		_, _, url := p.fieldValue(t, lo, hi, 1)
		_, _, val := p.fieldValue(t, lo, hi, 2)
		dst = append(dst, `{"@type":`...)
		if dst, ok = p.appendJSONString(dst, url); !ok {
			return dst, false
		}
		dst = append(dst, `,"value":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, val)
		return append(dst, '"', '}'), true

	case wktDecimal:
		return p.decimalText(dst, t, lo, hi)
	}

	dst = append(dst, '{')
	n := 0
	for fi := range t.fields {
		f := &t.fields[fi]
		last := p.lastOcc(lo, hi, int32(fi))
		if last < 0 {
			continue
		}
		from := lo
		if f.oneof >= 0 {
			if p.lastOfOneof(t, lo, hi, f.oneof) != last {
				continue // another member came later and cleared this one
			}
			from = p.lastOther(t, lo, hi, int32(fi)) + 1
		}
		if !f.presence && !f.list && !f.isMap && f.msg == nil && p.isDefault(f, last) {
			continue // implicit presence at its default: left out, as protojson does
		}
		if (f.list || f.isMap) && p.emptyList(f, lo, hi, int32(fi)) {
			continue
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, '"')
		dst = append(dst, f.key...)
		dst = append(dst, '"', ':')
		if !f.list && !f.isMap && f.msg == nil {
			// A scalar: its last occurrence, found above, is its value
			// (renderField would look for it again).
			v := p.payload[p.scan[last].start:p.scan[last].end]
			if dst, ok = p.appendScalarJSON(dst, f, scalarOf(f, v), v); !ok {
				return dst, false
			}
			continue
		}
		if dst, ok = p.renderField(dst, f, int32(fi), from, hi, depth); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// isDefault reports whether the scalar at p.scan[j] is its field's default.
func (p *protobufPlan) isDefault(f *pbField, j int) bool {
	v := p.payload[p.scan[j].start:p.scan[j].end]
	switch {
	case f.wire == protowire.BytesType:
		return len(v) == 0
	case pbIsFloat(f.kind):
		return scalarOf(f, v) == 0 // -0.0 is not the default
	}
	i, big := pbInt(f, scalarOf(f, v))
	return i == 0 && !big
}

// appendNanos appends the fraction of a second as protojson writes it: 0,
// 3, 6 or 9 digits.
func appendNanos(dst []byte, nanos int32) []byte {
	if nanos == 0 {
		return dst
	}
	var g [10]byte
	g[0] = '.'
	x := nanos
	for j := 9; j >= 1; j-- {
		g[j] = byte('0' + x%10)
		x /= 10
	}
	switch {
	case nanos%1_000_000 == 0:
		return append(dst, g[:4]...)
	case nanos%1000 == 0:
		return append(dst, g[:7]...)
	}
	return append(dst, g[:]...)
}

// lastOfOneof returns the index of the last occurrence of any member of
// oneof o.
func (p *protobufPlan) lastOfOneof(t *pbType, lo, hi, o int) int {
	for j := hi - 1; j >= lo; j-- {
		if t.fields[p.scan[j].field].oneof == o {
			return j
		}
	}
	return -1
}

// lastOther returns the index of the last occurrence of another member of
// fi's oneof, lo-1 when none.
func (p *protobufPlan) lastOther(t *pbType, lo, hi int, fi int32) int {
	o := t.fields[fi].oneof
	for j := hi - 1; j >= lo; j-- {
		if g := p.scan[j].field; g != fi && t.fields[g].oneof == o {
			return j
		}
	}
	return lo - 1
}

// emptyList reports whether repeated field f (index fi) has no element:
// no occurrence but empty packed runs.
func (p *protobufPlan) emptyList(f *pbField, lo, hi int, fi int32) bool {
	for j := lo; j < hi; j++ {
		if sc := &p.scan[j]; sc.field == fi && !(f.packable && sc.wt == protowire.BytesType && sc.end == sc.start) {
			return false
		}
	}
	return true
}

// renderField appends the JSON of field f from its occurrences in
// p.scan[lo:hi] (those whose field is fi).
func (p *protobufPlan) renderField(dst []byte, f *pbField, fi int32, lo, hi, depth int) ([]byte, bool) {
	switch {
	case f.isMap:
		return p.renderMap(dst, f, fi, lo, hi, depth)
	case f.list:
		return p.renderList(dst, f, fi, lo, hi, depth)
	case f.msg != nil:
		segLo := len(p.segs)
		for j := lo; j < hi; j++ {
			if sc := p.scan[j]; sc.field == fi {
				p.segs = append(p.segs, pbSeg{sc.start, sc.end})
			}
		}
		dst, ok := p.renderMessage(dst, f.msg, segLo, len(p.segs), depth+1)
		p.segs = p.segs[:segLo]
		return dst, ok
	}
	j := p.lastOcc(lo, hi, fi)
	if j < 0 {
		// A map entry without its value (other fields are rendered only
		// when present) takes the value field's default.
		var u uint64
		if f.enum != nil {
			u = uint64(f.enum.def)
		}
		return p.appendScalarJSON(dst, f, u, nil)
	}
	v := p.payload[p.scan[j].start:p.scan[j].end]
	return p.appendScalarJSON(dst, f, scalarOf(f, v), v)
}

// renderList appends the JSON array of repeated field f.
func (p *protobufPlan) renderList(dst []byte, f *pbField, fi int32, lo, hi, depth int) ([]byte, bool) {
	dst = append(dst, '[')
	n := 0
	ok := true
	for j := lo; j < hi; j++ {
		sc := p.scan[j]
		if sc.field != fi {
			continue
		}
		if f.msg != nil {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			segLo := len(p.segs)
			p.segs = append(p.segs, pbSeg{sc.start, sc.end})
			dst, ok = p.renderMessage(dst, f.msg, segLo, segLo+1, depth+1)
			p.segs = p.segs[:segLo]
			if !ok {
				return dst, false
			}
			continue
		}
		if sc.wt != protowire.BytesType || !f.packable {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			v := p.payload[sc.start:sc.end]
			if dst, ok = p.appendScalarJSON(dst, f, scalarOf(f, v), v); !ok {
				return dst, false
			}
			continue
		}
		// A packed run: values of f.wire back to back.
		for i, end := int(sc.start), int(sc.end); i < end; {
			vs, ve, next := consumeValue(p.payload, i, end, f.num, f.wire)
			if next < 0 {
				return dst, p.fail(ReasonSchemaMismatch, fmt.Sprintf("packed field %s: %s at byte %d", f.name, malformed(f.wire), i))
			}
			i = next
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			v := p.payload[vs:ve]
			if dst, ok = p.appendScalarJSON(dst, f, scalarOf(f, v), v); !ok {
				return dst, false
			}
		}
	}
	return append(dst, ']'), true
}

// renderMap appends the JSON object of map field f. Keys are strings, as
// JSON wants. A key repeated on the wire keeps its last value: json and
// text columns write only that entry; jsonb keeps the last of duplicate
// keys itself, so it is spared the quadratic check.
func (p *protobufPlan) renderMap(dst []byte, f *pbField, fi int32, lo, hi, depth int) ([]byte, bool) {
	et := f.msg
	kf, vf := et.byNum.get(1), et.byNum.get(2)
	if kf < 0 || vf < 0 {
		return dst, p.fail(ReasonSchemaMismatch, fmt.Sprintf("map entry %s without key or value field", et.name))
	}
	keysAt, textAt := len(p.keys), len(p.keyText)
	if p.dedupe {
		for j := lo; j < hi; j++ {
			if p.scan[j].field != fi {
				continue
			}
			elo, ehi, ok := p.scanEntry(et, j)
			if !ok {
				return dst, false
			}
			start := len(p.keyText)
			p.keyText, ok = p.appendMapKey(p.keyText, et, int32(kf), elo, ehi)
			p.scan = p.scan[:elo]
			if !ok {
				return dst, false
			}
			p.keys = append(p.keys, pbSeg{int32(start), int32(len(p.keyText))})
		}
	}
	dst = append(dst, '{')
	n, e := 0, keysAt
	ok := true
	for j := lo; j < hi; j++ {
		if p.scan[j].field != fi {
			continue
		}
		if p.dedupe {
			k := p.keys[e]
			e++
			if p.laterKey(e, k) {
				continue
			}
		}
		var elo, ehi int
		if elo, ehi, ok = p.scanEntry(et, j); !ok {
			return dst, false
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		if dst, ok = p.appendMapKey(dst, et, int32(kf), elo, ehi); !ok {
			return dst, false
		}
		dst = append(dst, ':')
		valField := &et.fields[vf]
		if valField.msg != nil && p.lastOcc(elo, ehi, int32(vf)) < 0 {
			dst, ok = p.renderMessage(dst, valField.msg, len(p.segs), len(p.segs), depth+1) // missing value: the empty message
		} else {
			dst, ok = p.renderField(dst, valField, int32(vf), elo, ehi, depth)
		}
		p.scan = p.scan[:elo]
		if !ok {
			return dst, false
		}
	}
	p.keys, p.keyText = p.keys[:keysAt], p.keyText[:textAt]
	return append(dst, '}'), true
}

// laterKey reports whether a key at p.keys[from:] equals k.
func (p *protobufPlan) laterKey(from int, k pbSeg) bool {
	key := p.keyText[k.start:k.end]
	for _, o := range p.keys[from:] {
		if string(p.keyText[o.start:o.end]) == string(key) {
			return true
		}
	}
	return false
}

// scanEntry scans the map entry at p.scan[j].
func (p *protobufPlan) scanEntry(et *pbType, j int) (lo, hi int, ok bool) {
	segLo := len(p.segs)
	p.segs = append(p.segs, pbSeg{p.scan[j].start, p.scan[j].end})
	lo, hi, ok = p.scanMessage(et, segLo, segLo+1)
	p.segs = p.segs[:segLo]
	return lo, hi, ok
}

// appendMapKey appends the JSON string of an entry's key.
func (p *protobufPlan) appendMapKey(dst []byte, et *pbType, kf int32, lo, hi int) ([]byte, bool) {
	f := &et.fields[kf]
	var u uint64
	var v []byte
	if k := p.lastOcc(lo, hi, kf); k >= 0 {
		v = p.payload[p.scan[k].start:p.scan[k].end]
		u = scalarOf(f, v)
	}
	if f.kind == protoreflect.StringKind {
		return p.appendJSONString(dst, v)
	}
	dst = append(dst, '"')
	dst, ok := p.appendScalarJSON(dst, f, u, v)
	return append(dst, '"'), ok
}

// appendScalarJSON appends the JSON of a scalar field value. f may be nil
// (a wrapper without its field): JSON null.
func (p *protobufPlan) appendScalarJSON(dst []byte, f *pbField, u uint64, v []byte) ([]byte, bool) {
	if f == nil {
		return append(dst, "null"...), true
	}
	switch f.kind {
	case protoreflect.BoolKind:
		if u != 0 {
			return append(dst, "true"...), true
		}
		return append(dst, "false"...), true
	case protoreflect.EnumKind:
		if f.enum.nullValue {
			return append(dst, "null"...), true
		}
		if name, ok := f.enum.name(int32(u)); ok {
			dst = append(dst, '"')
			dst = append(dst, name...)
			return append(dst, '"'), true
		}
		return strconv.AppendInt(dst, int64(int32(u)), 10), true
	case protoreflect.StringKind:
		return p.appendJSONString(dst, v)
	case protoreflect.BytesKind:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v)
		return append(dst, '"'), true
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return appendPBFloat(dst, pbFloat(f, u), pbFloatBits(f.kind), true), true
	}
	if i, big := pbInt(f, u); !big {
		return strconv.AppendInt(dst, i, 10), true
	}
	return strconv.AppendUint(dst, u, 10), true
}

// appendPBFloat writes a float as protojson does: the shortest text that
// reads back as the same value, an exponent outside [1e-6, 1e21), and
// NaN and the infinities as strings (quoted when quote is set).
func appendPBFloat(dst []byte, x float64, bits int, quote bool) []byte {
	var special string
	switch {
	case math.IsNaN(x):
		special = "NaN"
	case math.IsInf(x, 1):
		special = "Infinity"
	case math.IsInf(x, -1):
		special = "-Infinity"
	}
	if special != "" {
		if quote {
			dst = append(dst, '"')
			dst = append(dst, special...)
			return append(dst, '"')
		}
		return append(dst, special...)
	}
	format := byte('f')
	if abs := math.Abs(x); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	n := len(dst)
	dst = strconv.AppendFloat(dst, x, format, -1, bits)
	if format == 'e' {
		// 1e-07 → 1e-7
		if m := len(dst); m-n >= 4 && dst[m-4] == 'e' && dst[m-3] == '-' && dst[m-2] == '0' {
			dst[m-2] = dst[m-1]
			dst = dst[:m-1]
		}
	}
	return dst
}

// appendJSONString appends s as a JSON string. It fails on invalid UTF-8,
// and on NUL for a jsonb column (jsonb rejects \u0000; json keeps it).
func (p *protobufPlan) appendJSONString(dst []byte, s []byte) ([]byte, bool) {
	dst, reason, detail := appendJSONText(dst, s, p.jsonb)
	if reason != "" {
		return dst, p.fail(reason, detail)
	}
	return dst, true
}
