package codec

import (
	"encoding/base64"
	"encoding/binary"
	"math"
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
		j := 0
		for i := 0; i < 36; i += 2 {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				i++
			}
			a, b := hexVal[s[i]], hexVal[s[i+1]]
			if a|b < 0 {
				return false
			}
			out[j] = byte(a)<<4 | byte(b)
			j++
		}
		return true
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
// or not. Alphabets do not mix.
func appendBase64Field(dst []byte, s []byte) ([]byte, bool) {
	enc := base64.StdEncoding
	for _, c := range s {
		if c == '-' || c == '_' {
			enc = base64.URLEncoding
			if len(s)%4 != 0 {
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
