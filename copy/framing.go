package pgcopy

import (
	"encoding/binary"
	"io"
)

// binaryHeader is the signature of a binary COPY stream followed by the flags
// field (no OIDs) and the header extension length (none).
const binaryHeader = "PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00"

// binaryTrailer is the int16 -1 that ends a binary COPY stream.
const binaryTrailer = "\xff\xff"

// headerBytes and trailerBytes are read-only: copyReader only reslices them.
var (
	headerBytes  = []byte(binaryHeader)
	trailerBytes = []byte(binaryTrailer)
)

// AppendHeader appends the binary COPY header: the 11-byte signature, int32
// flags 0 and int32 header extension length 0.
func AppendHeader(dst []byte) []byte {
	return append(dst, binaryHeader...)
}

// AppendTrailer appends the binary COPY trailer, int16 -1.
func AppendTrailer(dst []byte) []byte {
	return append(dst, binaryTrailer...)
}

// AppendTupleHeader appends the int16 field count that starts a tuple.
func AppendTupleHeader(dst []byte, fields int) []byte {
	return binary.BigEndian.AppendUint16(dst, uint16(fields))
}

// AppendInt8Field appends v as a length-prefixed int8 field.
func AppendInt8Field(dst []byte, v int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 8)
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

// copyReader streams header, tuples and trailer to pgconn.PgConn.CopyFrom
// without concatenating them. It holds no copy of the tuples: the caller
// must keep them unchanged until CopyFrom returns.
type copyReader struct {
	parts [3][]byte
	i     int
}

// reset points r at data framed by the binary header and trailer.
func (r *copyReader) reset(data []byte) {
	r.parts[0] = headerBytes
	r.parts[1] = data
	r.parts[2] = trailerBytes
	r.i = 0
}

func (r *copyReader) Read(p []byte) (int, error) {
	n := 0
	for r.i < len(r.parts) && n < len(p) {
		c := copy(p[n:], r.parts[r.i])
		n += c
		r.parts[r.i] = r.parts[r.i][c:]
		if len(r.parts[r.i]) == 0 {
			r.i++
		}
	}
	if n == 0 && r.i == len(r.parts) {
		return 0, io.EOF
	}
	return n, nil
}

// readPieces fills p from *cur, calling next to move *cur to the following
// piece of the stream whenever it is used up, until p is full or next has
// none left; io.EOF once nothing is left at all. The streaming readers of
// the direct path and the ops stage (tupleReader, opsReader) are built on
// it.
func readPieces(p []byte, cur *[]byte, next func() bool) (int, error) {
	n := 0
	for n < len(p) {
		if len(*cur) == 0 {
			if !next() {
				break
			}
			continue
		}
		c := copy(p[n:], *cur)
		n += c
		*cur = (*cur)[c:]
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}
