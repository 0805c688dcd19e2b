package codec

import (
	"encoding/binary"
	"fmt"
	"math"
)

// appendJSON appends the JSON text of the value of type t at v[pos:] and
// returns the position after it. The structure was validated by decode;
// strings are checked here.
func (p *avroPlan) appendJSON(dst []byte, t *avroType, v []byte, pos int, jsonb bool) ([]byte, int, Reason, string) {
	switch t.kind {
	case avroNull:
		return append(dst, "null"...), pos, "", ""
	case avroBoolean:
		if v[pos] == 1 {
			return append(dst, "true"...), pos + 1, "", ""
		}
		return append(dst, "false"...), pos + 1, "", ""
	case avroInt, avroLong:
		x, next, _ := readVarlong(v, pos)
		var buf [40]byte
		var s []byte
		ok := true
		switch t.logical {
		case logicalDate:
			s, ok = appendDateText(buf[:0], x)
		case logicalTimeMillis, logicalTimeMicros:
			us := x
			if t.logical == logicalTimeMillis {
				us *= 1000
			}
			ok = us >= 0 && us <= usPerDay
			if ok {
				s = appendTimeText(buf[:0], us)
			}
		case logicalNone:
			return appendInt(dst, x), next, "", ""
		default:
			var us int64
			if us, ok = avroTimestampMicros(x, t.logical); ok {
				s, ok = appendTimestampText(buf[:0], us, t.logical < logicalLocalTimestampMillis)
			}
		}
		if !ok {
			return dst, pos, ReasonOutOfRange, fmt.Sprintf("%s %d cannot be written as text", t, x)
		}
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"'), next, "", ""
	case avroFloat:
		f := math.Float32frombits(binary.LittleEndian.Uint32(v[pos:]))
		return appendJSONFloat(dst, float64(f), 32), pos + 4, "", ""
	case avroDouble:
		f := math.Float64frombits(binary.LittleEndian.Uint64(v[pos:]))
		return appendJSONFloat(dst, f, 64), pos + 8, "", ""
	case avroString, avroBytes, avroFixed:
		var b []byte
		next := pos + t.size
		if t.kind == avroFixed {
			b = v[pos:next]
		} else {
			n, i := int64(v[pos]>>1), pos+1 // lengths below 64: one byte
			if v[pos] >= 0x80 {
				n, i, _ = readVarlong(v, pos)
			}
			next = i + int(n)
			b = v[i:next]
		}
		switch {
		case t.kind == avroString:
			dst, reason, detail := appendJSONText(dst, b, jsonb)
			return dst, next, reason, detail
		case t.logical == logicalDecimal:
			if len(b) > maxDecimalBytes {
				return dst, pos, ReasonOutOfRange, fmt.Sprintf("decimal of %d bytes is longer than the %d supported", len(b), maxDecimalBytes)
			}
			at := len(dst)
			dst = p.appendDecimalText(dst, b, t.scale)
			if jsonb {
				if n, _ := splitNumber(dst[at:]); !n.fitsNumeric() {
					return dst, pos, ReasonInvalidValue, "decimal beyond the range of numeric, which jsonb cannot store"
				}
			}
			return dst, next, "", ""
		case t.logical == logicalDuration:
			return appendDurationJSON(dst, b), next, "", ""
		}
		return appendBytesJSON(dst, t, b), next, "", ""
	case avroEnum:
		x, next, _ := readVarlong(v, pos)
		dst = append(dst, '"')
		dst = append(dst, t.symbols[x]...)
		return append(dst, '"'), next, "", ""
	case avroUnion:
		b, next := int64(v[pos]>>1), pos+1 // fewer than 64 branches: one byte
		if v[pos] >= 0x80 {
			b, next, _ = readVarlong(v, pos)
		}
		return p.appendJSON(dst, t.branches[b], v, next, jsonb)
	case avroRecord:
		dst = append(dst, '{')
		for i := range t.fields {
			f := &t.fields[i]
			if i > 0 {
				dst = append(dst, f.key...)
			} else {
				dst = append(dst, f.key[1:]...)
			}
			var reason Reason
			var detail string
			if dst, pos, reason, detail = p.appendJSON(dst, f.t, v, pos, jsonb); reason != "" {
				return dst, pos, reason, detail
			}
		}
		return append(dst, '}'), pos, "", ""
	case avroArray, avroMap:
		open, close := byte('['), byte(']')
		if t.kind == avroMap {
			open, close = '{', '}'
		}
		dst = append(dst, open)
		first := true
		for {
			count, next, _ := readVarlong(v, pos)
			pos = next
			if count == 0 {
				return append(dst, close), pos, "", ""
			}
			if count < 0 {
				count = -count
				_, pos, _ = readVarlong(v, pos) // byte size
			}
			for range count {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				var reason Reason
				var detail string
				if t.kind == avroMap {
					n, i, _ := readVarlong(v, pos)
					pos = i + int(n)
					if dst, reason, detail = appendJSONText(dst, v[i:pos], jsonb); reason != "" {
						return dst, pos, reason, detail
					}
					dst = append(dst, ':')
				}
				if dst, pos, reason, detail = p.appendJSON(dst, t.items, v, pos, jsonb); reason != "" {
					return dst, pos, reason, detail
				}
			}
		}
	}
	return dst, pos, ReasonSchemaMismatch, "unknown Avro type"
}
