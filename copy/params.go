package pgcopy

import (
	"encoding/binary"
	"strconv"
)

// Type OIDs of the parameters this package sends.
const (
	oidBytea     = 17
	oidInt8      = 20
	oidInt4      = 23
	oidText      = 25
	oidJSONB     = 3802
	oidByteaArr  = 1001
	oidInt4Arr   = 1007
	oidTextArr   = 1009
	oidInt8Arr   = 1016
	oidJSONBArr  = 3807
	formatText   = 0
	formatBinary = 1
)

// arrayWriter appends a one-dimensional binary array parameter. Usage:
// start, then one element call per element, then finish with the count.
type arrayWriter struct {
	buf     []byte
	start   int
	n       int32
	hasNull bool
}

func (a *arrayWriter) begin(dst []byte, elemOID uint32) {
	a.buf = dst
	a.start = len(dst)
	a.n = 0
	a.hasNull = false
	a.buf = binary.BigEndian.AppendUint32(a.buf, 1)       // ndim
	a.buf = binary.BigEndian.AppendUint32(a.buf, 0)       // has nulls, patched by end
	a.buf = binary.BigEndian.AppendUint32(a.buf, elemOID) // element type
	a.buf = binary.BigEndian.AppendUint32(a.buf, 0)       // length, patched by end
	a.buf = binary.BigEndian.AppendUint32(a.buf, 1)       // lower bound
}

func (a *arrayWriter) bytes(b []byte) {
	a.n++
	a.buf = binary.BigEndian.AppendUint32(a.buf, uint32(len(b)))
	a.buf = append(a.buf, b...)
}

func (a *arrayWriter) str(s string) {
	a.n++
	a.buf = binary.BigEndian.AppendUint32(a.buf, uint32(len(s)))
	a.buf = append(a.buf, s...)
}

// jsonb appends a jsonb element: version byte 1 then the JSON text.
func (a *arrayWriter) jsonb(b []byte) {
	a.n++
	a.buf = binary.BigEndian.AppendUint32(a.buf, uint32(len(b)+1))
	a.buf = append(a.buf, 1)
	a.buf = append(a.buf, b...)
}

func (a *arrayWriter) null() {
	a.n++
	a.hasNull = true
	a.buf = binary.BigEndian.AppendUint32(a.buf, 0xffffffff)
}

func (a *arrayWriter) int4(v int32) {
	a.n++
	a.buf = binary.BigEndian.AppendUint32(a.buf, 4)
	a.buf = binary.BigEndian.AppendUint32(a.buf, uint32(v))
}

func (a *arrayWriter) int8(v int64) {
	a.n++
	a.buf = binary.BigEndian.AppendUint32(a.buf, 8)
	a.buf = binary.BigEndian.AppendUint64(a.buf, uint64(v))
}

// end patches the header and returns the whole buffer and the array's
// bounds within it.
func (a *arrayWriter) end() (buf []byte, start, stop int) {
	if a.hasNull {
		binary.BigEndian.PutUint32(a.buf[a.start+4:], 1)
	}
	binary.BigEndian.PutUint32(a.buf[a.start+12:], uint32(a.n))
	return a.buf, a.start, len(a.buf)
}

// params accumulates parameter values in one buffer so a statement's
// parameters cost one allocation at most, amortised to none by reuse.
type params struct {
	buf     []byte
	bounds  [][2]int
	values  [][]byte
	oids    []uint32
	formats []int16
	arr     arrayWriter
}

func (p *params) reset() {
	p.buf = p.buf[:0]
	p.bounds = p.bounds[:0]
	p.oids = p.oids[:0]
	p.formats = p.formats[:0]
}

func (p *params) text(s string) {
	start := len(p.buf)
	p.buf = append(p.buf, s...)
	p.bounds = append(p.bounds, [2]int{start, len(p.buf)})
	p.oids = append(p.oids, oidText)
	p.formats = append(p.formats, formatText)
}

func (p *params) int8(v int64) {
	start := len(p.buf)
	p.buf = strconv.AppendInt(p.buf, v, 10)
	p.bounds = append(p.bounds, [2]int{start, len(p.buf)})
	p.oids = append(p.oids, oidInt8)
	p.formats = append(p.formats, formatText)
}

func (p *params) int4(v int32) {
	start := len(p.buf)
	p.buf = strconv.AppendInt(p.buf, int64(v), 10)
	p.bounds = append(p.bounds, [2]int{start, len(p.buf)})
	p.oids = append(p.oids, oidInt4)
	p.formats = append(p.formats, formatText)
}

// array starts a binary array parameter; add elements through p.arr and
// close it with endArray.
func (p *params) array(elemOID uint32) *arrayWriter {
	p.arr.begin(p.buf, elemOID)
	return &p.arr
}

func (p *params) endArray(arrOID uint32) {
	var start, stop int
	p.buf, start, stop = p.arr.end()
	p.arr.buf = nil
	p.bounds = append(p.bounds, [2]int{start, stop})
	p.oids = append(p.oids, arrOID)
	p.formats = append(p.formats, formatBinary)
}

// partitions appends two array parameters naming n partitions: text[] of
// topics and int4[] of partition numbers, the i-th of each from at(i).
func (p *params) partitions(n int, at func(i int) (string, int32)) {
	a := p.array(oidText)
	for i := range n {
		t, _ := at(i)
		a.str(t)
	}
	p.endArray(oidTextArr)
	a = p.array(oidInt4)
	for i := range n {
		_, part := at(i)
		a.int4(part)
	}
	p.endArray(oidInt4Arr)
}

// args returns the values for ExecParams; valid until the next reset.
func (p *params) args() [][]byte {
	p.values = p.values[:0]
	for _, b := range p.bounds {
		p.values = append(p.values, p.buf[b[0]:b[1]:b[1]])
	}
	return p.values
}
