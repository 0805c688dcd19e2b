package codec

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/bits"
	"unicode/utf8"
)

// Appending encoders for binary COPY fields: each appends the int32 length
// and the value bytes in PostgreSQL's binary send format.

func appendNull(dst []byte) []byte {
	return append(dst, 0xFF, 0xFF, 0xFF, 0xFF)
}

func appendInt2Field(dst []byte, v int16) []byte {
	dst = append(dst, 0, 0, 0, 2)
	return binary.BigEndian.AppendUint16(dst, uint16(v))
}

func appendInt4Field(dst []byte, v int32) []byte {
	dst = append(dst, 0, 0, 0, 4)
	return binary.BigEndian.AppendUint32(dst, uint32(v))
}

func appendInt8Field(dst []byte, v int64) []byte {
	dst = append(dst, 0, 0, 0, 8)
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

func appendFloat4Field(dst []byte, v float32) []byte {
	dst = append(dst, 0, 0, 0, 4)
	return binary.BigEndian.AppendUint32(dst, math.Float32bits(v))
}

func appendFloat8Field(dst []byte, v float64) []byte {
	dst = append(dst, 0, 0, 0, 8)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendBoolField(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0, 0, 0, 1, 1)
	}
	return append(dst, 0, 0, 0, 1, 0)
}

// appendBytesField appends b as a field (text, bytea, json all send their
// bytes as they are).
func appendBytesField(dst []byte, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

func appendStringField(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// appendJSONBField appends JSON text as a jsonb field: version byte 1, then
// the text.
func appendJSONBField(dst []byte, text []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(text)+1))
	dst = append(dst, 1)
	return append(dst, text...)
}

// beginField reserves the length word of a field whose size is not yet
// known; endField fills it in.
func beginField(dst []byte) ([]byte, int) {
	return append(dst, 0, 0, 0, 0), len(dst)
}

func endField(dst []byte, at int) []byte {
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-4))
	return dst
}

// parseUUID decodes the forms PostgreSQL's uuid input accepts: 32 hex
// digits in either case, optionally wrapped in braces, with an optional
// single hyphen after any group of four digits (so canonical 8-4-4-4-12
// and hyphenless both work).
func parseUUID(s []byte, out *[16]byte) bool {
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		c := (*[36]byte)(s)
		var bad int8 // negative once any digit is not hex
		pair := func(i int) byte {
			a, b := hexVal[c[i]], hexVal[c[i+1]]
			bad |= a | b
			return byte(a)<<4 | byte(b)
		}
		out[0], out[1], out[2], out[3] = pair(0), pair(2), pair(4), pair(6)
		out[4], out[5], out[6], out[7] = pair(9), pair(11), pair(14), pair(16)
		out[8], out[9], out[10], out[11] = pair(19), pair(21), pair(24), pair(26)
		out[12], out[13], out[14], out[15] = pair(28), pair(30), pair(32), pair(34)
		return bad >= 0
	}
	braces := len(s) > 0 && s[0] == '{'
	if braces {
		if s[len(s)-1] != '}' {
			return false
		}
		s = s[1 : len(s)-1]
	}
	i := 0
	for j := 0; j < 16; j++ {
		if i+2 > len(s) {
			return false
		}
		a, b := hexVal[s[i]], hexVal[s[i+1]]
		if a|b < 0 {
			return false
		}
		out[j] = byte(a)<<4 | byte(b)
		i += 2
		if i < len(s) && s[i] == '-' && j%2 == 1 && j < 15 {
			i++
		}
	}
	return i == len(s)
}

// appendBase64Field decodes base64 text into a bytea field. The standard
// alphabet (+/) must be padded; the URL-safe alphabet (-_) may be padded
// or not. Alphabets do not mix; CR and LF are ignored.
func appendBase64Field(dst []byte, s []byte) ([]byte, bool) {
	enc := base64.StdEncoding
	for _, c := range s {
		if c == '-' || c == '_' {
			enc = base64.URLEncoding
			// Padded or not by the length of the text without the CR
			// and LF the decoder skips.
			n := len(s)
			for _, c := range s {
				if c == '\r' || c == '\n' {
					n--
				}
			}
			if n%4 != 0 {
				enc = base64.RawURLEncoding
			}
			break
		}
	}
	n := enc.DecodedLen(len(s))
	dst = binary.BigEndian.AppendUint32(dst, 0)
	at := len(dst) - 4
	start := len(dst)
	if cap(dst)-start < n {
		dst = append(dst[:start], make([]byte, n)...)
	}
	m, err := enc.Decode(dst[start:start+n], s)
	if err != nil {
		return dst[:at], false
	}
	dst = dst[:start+m]
	binary.BigEndian.PutUint32(dst[at:], uint32(m))
	return dst, true
}

// appendJSONText appends s as a JSON string. s must be valid UTF-8; a NUL
// becomes \u0000, which jsonb cannot store.
func appendJSONText(dst, s []byte, jsonb bool) ([]byte, Reason, string) {
	const hexDigits = "0123456789abcdef"
	if x, ok := shortWord(s); ok && specialBytes(x) == 0 {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"'), "", ""
	}
	dst = append(dst, '"')
	i := 0
	for i < len(s) {
		j := i
		for j+8 <= len(s) {
			if m := specialBytes(binary.LittleEndian.Uint64(s[j:])); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j+8 > len(s) && len(s) >= 8 && specialBytes(binary.LittleEndian.Uint64(s[len(s)-8:])) == 0 {
			j = len(s) // the last eight bytes, overlapping those checked, are plain
		}
		for j < len(s) && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\' {
			j++
		}
		dst = append(dst, s[i:j]...)
		if j == len(s) {
			break
		}
		c := s[j]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			i = j + 1
		case c == '\n':
			dst = append(dst, '\\', 'n')
			i = j + 1
		case c == '\r':
			dst = append(dst, '\\', 'r')
			i = j + 1
		case c == '\t':
			dst = append(dst, '\\', 't')
			i = j + 1
		case c == 0 && jsonb:
			return dst, ReasonInvalidValue, "NUL character in a string, which jsonb cannot store"
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			i = j + 1
		default:
			r, size := utf8.DecodeRune(s[j:])
			if r == utf8.RuneError && size <= 1 {
				return dst, ReasonInvalidUTF8, "invalid UTF-8 in string"
			}
			dst = append(dst, s[j:j+size]...)
			i = j + size
		}
	}
	return append(dst, '"'), "", ""
}

// shortWord returns the bytes of s, shorter than eight, as one
// little-endian word padded with spaces (plain in text and in JSON
// strings), when s's capacity lets eight bytes be read from its start: a
// field of a record payload usually does. The bytes past len(s) are read
// but never used.
func shortWord(s []byte) (uint64, bool) {
	if len(s) >= 8 || cap(s) < 8 {
		return 0, false
	}
	keep := uint64(1)<<(8*len(s)) - 1
	return binary.LittleEndian.Uint64(s[:8])&keep | lsb*' '&^keep, true
}
