package codec

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// avroPlan decodes Avro datums written with one writer schema into the
// decoder's path columns. decode walks the datum once, validating its
// structure everywhere and recording where each mapped value lies;
// appendPath then converts one value per column. A plan is owned by one
// decoder: it keeps its scratch buffers between records.
type avroPlan struct {
	root     *avroNode
	cols     []column // path columns; slot indexes slots
	slots    []avroSlot
	data     []byte // the payload of the last decode, until release
	maxDepth int
	jump     bool // skip array and map blocks by their byte size

	// Error state of a failed decode.
	errPos    int
	errDetail string
	errPath   []string // innermost first

	num    []byte   // decimal text of a number being converted
	words  []uint32 // magnitude of a large decimal
	digits []byte   // its decimal digits, least significant first
}

// avroSlot is where the value of one path was found: data[start:end]
// encodes a value of type t (never a union: the branch taken). t is nil
// when the path was not met in the datum.
type avroSlot struct {
	start, end int
	t          *avroType
}

// avroNode is one value of the writer schema that some path column reads
// or looks into. Values no column needs are skipped without a node.
type avroNode struct {
	t        *avroType
	slot     int         // -1 when no column reads this exact value
	fields   []*avroNode // record: per writer field, nil to skip it
	branches []*avroNode // union: per branch
	keys     []string    // map: the path segments looked up among its keys
	values   []*avroNode // map: the node of each key
	subtrees [][]int     // map: the slots below each key, cleared when the key repeats
	exact    bool        // a column reads this value or one around it: walk every block item
}

// compileAvroPlan parses s and builds the plan that fills cols (the
// decoder's path columns, in order). A column whose path names no field of
// s is NULL (or missing, when Required), since writer schemas evolve; a
// path whose value can never fill its column's type is an error.
func compileAvroPlan(s *Schema, cols []Column, opts Options) (*avroPlan, *RowError) {
	root, err := parseAvroSchema(s)
	if err != nil {
		return nil, &RowError{Reason: ReasonSchemaMismatch, Detail: "cannot parse the Avro schema: " + err.Error()}
	}
	p := &avroPlan{maxDepth: opts.EnsureDefaults().MaxDepth, jump: !opts.checkBlocks}
	tree := &node{slot: -1}
	nslots := 0
	for _, c := range cols {
		n := tree
		for seg := range strings.SplitSeq(c.Path, ".") {
			n = n.child(seg)
		}
		if n.slot < 0 {
			n.slot = nslots
			nslots++
		}
		p.cols = append(p.cols, column{Column: c, slot: n.slot, where: c.Path})
		if rerr := checkAvroPath(root, c); rerr != nil {
			return nil, rerr
		}
	}
	tree.fillSubtree()
	p.slots = make([]avroSlot, nslots)
	p.root = compileAvroNode(root, tree, false)
	return p, nil
}

func compileAvroNode(t *avroType, pn *node, exact bool) *avroNode {
	exact = exact || pn.slot >= 0
	n := &avroNode{t: t, slot: pn.slot, exact: exact}
	switch t.kind {
	case avroUnion:
		n.slot = -1 // the branch records the value
		for _, b := range t.branches {
			n.branches = append(n.branches, compileAvroNode(b, pn, exact))
		}
	case avroRecord:
		if len(pn.children) == 0 {
			break
		}
		n.fields = make([]*avroNode, len(t.fields))
		for i, f := range t.fields {
			for _, c := range pn.children {
				if c.name == f.name {
					n.fields[i] = compileAvroNode(f.t, c, exact)
				}
			}
		}
	case avroMap:
		for _, c := range pn.children {
			n.keys = append(n.keys, c.name)
			n.values = append(n.values, compileAvroNode(t.items, c, exact))
			n.subtrees = append(n.subtrees, c.subtree)
		}
	}
	return n
}

// checkAvroPath reports a column whose path leads, in every branch of the
// writer schema, to a value that cannot fill the column.
func checkAvroPath(root *avroType, c Column) *RowError {
	at := []*avroType{root}
	for seg := range strings.SplitSeq(c.Path, ".") {
		var next []*avroType
		for _, t := range expandUnions(at) {
			switch t.kind {
			case avroRecord:
				for _, f := range t.fields {
					if f.name == seg {
						next = append(next, f.t)
					}
				}
			case avroMap:
				next = append(next, t.items)
			}
		}
		if len(next) == 0 {
			return nil // not in this schema: NULL
		}
		at = next
	}
	var kinds []string
	var fits []Type
	for _, t := range expandUnions(at) {
		if t.kind == avroNull {
			continue
		}
		if slices.Contains(avroColumnTypes(t), c.Type) {
			return nil
		}
		kinds = append(kinds, t.String())
		if fits == nil {
			fits = avroColumnTypes(t)
		}
	}
	if len(kinds) == 0 {
		return nil // only null: always NULL
	}
	return &RowError{Column: c.Name, Path: c.Path, Reason: ReasonWrongType,
		Detail: fmt.Sprintf("the writer schema has %s there, which cannot fill a %s column; use type %s",
			strings.Join(kinds, " or "), c.Type, joinTypes(fits))}
}

func expandUnions(ts []*avroType) []*avroType {
	var out []*avroType
	for _, t := range ts {
		if t.kind == avroUnion {
			out = append(out, t.branches...)
		} else {
			out = append(out, t)
		}
	}
	return out
}

// avroColumnTypes lists the column types a value of t (not a union) can
// fill. The package comment's table says the same.
func avroColumnTypes(t *avroType) []Type {
	switch t.kind {
	case avroNull:
		return allTypes()
	case avroBoolean:
		return []Type{TypeBool, TypeText, TypeJSON, TypeJSONB}
	case avroInt, avroLong:
		switch t.logical {
		case logicalDate:
			return []Type{TypeDate, TypeTimestamptz, TypeTimestamp, TypeText, TypeJSON, TypeJSONB, TypeInt2, TypeInt4, TypeInt8}
		case logicalTimeMillis, logicalTimeMicros:
			return []Type{TypeText, TypeJSON, TypeJSONB, TypeInt2, TypeInt4, TypeInt8}
		case logicalTimestampMillis, logicalTimestampMicros, logicalTimestampNanos,
			logicalLocalTimestampMillis, logicalLocalTimestampMicros, logicalLocalTimestampNanos:
			return []Type{TypeTimestamptz, TypeTimestamp, TypeText, TypeJSON, TypeJSONB, TypeInt2, TypeInt4, TypeInt8}
		}
		return []Type{TypeInt2, TypeInt4, TypeInt8, TypeNumeric, TypeFloat4, TypeFloat8, TypeText, TypeJSON, TypeJSONB, TypeTimestamptz, TypeTimestamp}
	case avroFloat, avroDouble:
		return []Type{TypeFloat4, TypeFloat8, TypeNumeric, TypeInt2, TypeInt4, TypeInt8, TypeText, TypeJSON, TypeJSONB}
	case avroString:
		return []Type{TypeText, TypeUUID, TypeInt2, TypeInt4, TypeInt8, TypeFloat4, TypeFloat8, TypeNumeric,
			TypeTimestamptz, TypeTimestamp, TypeDate, TypeJSON, TypeJSONB, TypeBytea}
	case avroBytes, avroFixed:
		switch t.logical {
		case logicalDecimal:
			return []Type{TypeNumeric, TypeFloat4, TypeFloat8, TypeInt2, TypeInt4, TypeInt8, TypeText, TypeJSON, TypeJSONB}
		case logicalDuration:
			return []Type{TypeText, TypeJSON, TypeJSONB, TypeBytea}
		case logicalUUID:
			return []Type{TypeUUID, TypeText, TypeJSON, TypeJSONB, TypeBytea}
		}
		if t.kind == avroFixed && t.size != 16 {
			return []Type{TypeBytea, TypeText, TypeJSON, TypeJSONB}
		}
		return []Type{TypeBytea, TypeText, TypeJSON, TypeJSONB, TypeUUID}
	case avroEnum:
		return []Type{TypeText, TypeJSON, TypeJSONB}
	}
	return []Type{TypeJSON, TypeJSONB, TypeText} // record, array, map
}

func allTypes() []Type {
	ts := make([]Type, 0, len(typeNames)-1)
	for i := 1; i < len(typeNames); i++ {
		ts = append(ts, Type(i))
	}
	return ts
}

func (p *avroPlan) release() { p.data = nil }

// fail records why the datum does not match the schema; the callers
// unwinding add the field names.
func (p *avroPlan) fail(pos int, detail string) bool {
	p.errPos = pos
	p.errDetail = detail
	p.errPath = p.errPath[:0]
	return false
}

func (p *avroPlan) decode(payload []byte) *RowError {
	p.data = payload
	clear(p.slots)
	pos, ok := p.walk(p.root, 0, 0)
	if ok && pos != len(payload) {
		ok = p.fail(pos, fmt.Sprintf("%d bytes left after the datum", len(payload)-pos))
	}
	if ok {
		return nil
	}
	path := make([]string, len(p.errPath))
	for i, s := range p.errPath {
		path[len(path)-1-i] = s
	}
	return &RowError{Path: strings.Join(path, "."), Reason: ReasonSchemaMismatch,
		Detail: fmt.Sprintf("%s at byte %d of the Avro payload (%d bytes)", p.errDetail, p.errPos, len(payload))}
}

// walk decodes the value of n's type at pos, recording it and the values
// below it that columns read, and returns the position after it.
func (p *avroPlan) walk(n *avroNode, pos, depth int) (int, bool) {
	t := n.t
	if t.kind == avroUnion {
		b, next, ok := p.branch(t, pos)
		if !ok {
			return next, false
		}
		return p.walk(n.branches[b], next, depth)
	}
	start := pos
	var ok bool
	switch {
	case n.fields != nil:
		if depth++; depth > p.maxDepth {
			return pos, p.fail(pos, "nesting deeper than the maximum depth")
		}
		for i := range t.fields {
			f := &t.fields[i]
			if c := n.fields[i]; c != nil {
				pos, ok = p.walk(c, pos, depth)
			} else {
				pos, ok = p.skip(f.t, pos, depth, p.jump && !n.exact)
			}
			if !ok {
				p.errPath = append(p.errPath, f.name)
				return pos, false
			}
		}
	case n.keys != nil:
		if pos, ok = p.walkMap(n, pos, depth); !ok {
			return pos, false
		}
	default:
		if pos, ok = p.skip(t, pos, depth, p.jump && !n.exact); !ok {
			return pos, false
		}
	}
	if n.slot >= 0 {
		p.slots[n.slot] = avroSlot{start: start, end: pos, t: t}
	}
	return pos, true
}

// walkMap walks a map some paths look into: the last entry with a key a
// path names wins, including for the paths below it.
func (p *avroPlan) walkMap(n *avroNode, pos, depth int) (int, bool) {
	if depth++; depth > p.maxDepth {
		return pos, p.fail(pos, "nesting deeper than the maximum depth")
	}
	data := p.data
	for {
		count, blockEnd, next, ok := p.block(n.t, pos)
		if !ok {
			return next, false
		}
		pos = next
		if count == 0 {
			return pos, true
		}
		for range count {
			key, next, ok := p.str(pos)
			if !ok {
				return next, false
			}
			pos = next
			match := -1
			for j, k := range n.keys {
				if k == b2s(data[key.start:key.end]) {
					match = j
				}
			}
			if match >= 0 {
				for _, s := range n.subtrees[match] {
					p.slots[s] = avroSlot{}
				}
				pos, ok = p.walk(n.values[match], pos, depth)
			} else {
				pos, ok = p.skip(n.t.items, pos, depth, p.jump && !n.exact)
			}
			if !ok {
				p.errPath = append(p.errPath, string(data[key.start:key.end]))
				return pos, false
			}
		}
		if blockEnd >= 0 && pos != blockEnd {
			return pos, p.fail(pos, "map block's byte size does not match its entries")
		}
	}
}

type byteRange struct{ start, end int }

// str reads the length-prefixed bytes or string at pos.
func (p *avroPlan) str(pos int) (byteRange, int, bool) {
	n, next, ok := readVarlong(p.data, pos)
	switch {
	case !ok:
		return byteRange{}, pos, p.fail(pos, "truncated or overlong length")
	case n < 0:
		return byteRange{}, pos, p.fail(pos, fmt.Sprintf("negative length %d", n))
	case n > int64(len(p.data)-next):
		return byteRange{}, pos, p.fail(pos, fmt.Sprintf("length %d runs past the end of the payload", n))
	}
	return byteRange{next, next + int(n)}, next + int(n), true
}

// branch reads a union's branch index at pos.
func (p *avroPlan) branch(t *avroType, pos int) (int, int, bool) {
	b, next, ok := readVarlong(p.data, pos)
	if !ok {
		return 0, pos, p.fail(pos, "truncated or overlong union branch index")
	}
	if b < 0 || b >= int64(len(t.branches)) {
		return 0, pos, p.fail(pos, fmt.Sprintf("union branch index %d out of range for %s", b, t))
	}
	return int(b), next, true
}

// block reads the header of an array or map block at pos: the item count
// (0 at the end), and for a negative count the block's byte size, giving
// blockEnd (-1 when the block has no byte size).
func (p *avroPlan) block(t *avroType, pos int) (count int64, blockEnd, next int, ok bool) {
	count, next, ok = readVarlong(p.data, pos)
	if !ok {
		return 0, -1, pos, p.fail(pos, "truncated or overlong block count")
	}
	blockEnd = -1
	if count < 0 {
		if count == math.MinInt64 {
			return 0, -1, pos, p.fail(pos, "invalid block count")
		}
		count = -count
		size, n2, ok := readVarlong(p.data, next)
		if !ok || size < 0 || size > int64(len(p.data)-n2) {
			return 0, -1, next, p.fail(next, "invalid block byte size")
		}
		next = n2
		blockEnd = next + int(size)
	}
	// Each item takes at least minSize bytes; items that may take none
	// (nulls) are bounded by the payload size, so a forged count cannot
	// spin.
	limit := int64(len(p.data) - next)
	if itemMin := p.itemMin(t); itemMin > 0 {
		limit /= int64(itemMin)
	} else {
		limit = int64(len(p.data)) + 1024
	}
	if count > limit {
		return 0, -1, pos, p.fail(pos, fmt.Sprintf("block count %d exceeds what the bytes left can hold", count))
	}
	return count, blockEnd, next, true
}

func (p *avroPlan) itemMin(t *avroType) int {
	if t.kind == avroMap {
		return 1 + t.items.minSize
	}
	return t.items.minSize
}

// skip validates the value of type t at pos and returns the position
// after it. Strings and bytes are skipped by length, their text not
// checked for UTF-8 (no column reads it); with jump, array and map blocks
// with a byte size are skipped in one jump, their items unchecked. A value
// a column reads is walked without jumps: it is converted afterwards on
// the strength of this walk.
func (p *avroPlan) skip(t *avroType, pos, depth int, jump bool) (int, bool) {
	data := p.data
	switch t.kind {
	case avroNull:
		return pos, true
	case avroBoolean:
		if pos >= len(data) {
			return pos, p.fail(pos, "truncated boolean")
		}
		if data[pos] > 1 {
			return pos, p.fail(pos, fmt.Sprintf("boolean byte 0x%02x is neither 0 nor 1", data[pos]))
		}
		return pos + 1, true
	case avroInt:
		v, next, ok := readVarlong(data, pos)
		if !ok {
			return pos, p.fail(pos, "truncated or overlong int")
		}
		if v != int64(int32(v)) {
			return pos, p.fail(pos, fmt.Sprintf("int %d out of the 32-bit range", v))
		}
		return next, true
	case avroLong:
		// Inline varint walk: the common case.
		for i := pos; i < len(data) && i < pos+10; i++ {
			if data[i] < 0x80 {
				if i == pos+9 && data[i] > 1 {
					break
				}
				return i + 1, true
			}
		}
		return pos, p.fail(pos, "truncated or overlong long")
	case avroFloat, avroDouble, avroFixed:
		n := t.size
		switch t.kind {
		case avroFloat:
			n = 4
		case avroDouble:
			n = 8
		}
		if n > len(data)-pos {
			return pos, p.fail(pos, "truncated "+avroKindNames[t.kind])
		}
		return pos + n, true
	case avroBytes, avroString:
		_, next, ok := p.str(pos)
		return next, ok
	case avroEnum:
		v, next, ok := readVarlong(data, pos)
		if !ok {
			return pos, p.fail(pos, "truncated or overlong enum index")
		}
		if v < 0 || v >= int64(len(t.symbols)) {
			return pos, p.fail(pos, fmt.Sprintf("enum index %d out of range for %s (%d symbols)", v, t.name, len(t.symbols)))
		}
		return next, true
	case avroUnion:
		b, next, ok := p.branch(t, pos)
		if !ok {
			return next, false
		}
		return p.skip(t.branches[b], next, depth, jump)
	case avroRecord:
		if depth++; depth > p.maxDepth {
			return pos, p.fail(pos, "nesting deeper than the maximum depth")
		}
		for i := range t.fields {
			var ok bool
			if pos, ok = p.skip(t.fields[i].t, pos, depth, jump); !ok {
				p.errPath = append(p.errPath, t.fields[i].name)
				return pos, false
			}
		}
		return pos, true
	case avroArray, avroMap:
		if depth++; depth > p.maxDepth {
			return pos, p.fail(pos, "nesting deeper than the maximum depth")
		}
		for {
			count, blockEnd, next, ok := p.block(t, pos)
			if !ok {
				return next, false
			}
			if count == 0 {
				return next, true
			}
			if blockEnd >= 0 && jump {
				pos = blockEnd // the byte size lets the block be skipped whole
				continue
			}
			pos = next
			for range count {
				if t.kind == avroMap {
					if _, pos, ok = p.str(pos); !ok {
						return pos, false
					}
				}
				if pos, ok = p.skip(t.items, pos, depth, jump); !ok {
					return pos, false
				}
			}
			if blockEnd >= 0 && pos != blockEnd {
				return pos, p.fail(pos, "block's byte size does not match its items")
			}
		}
	}
	return pos, p.fail(pos, "unknown type")
}

// appendPath appends the field of path column i from the last decode.
func (p *avroPlan) appendPath(dst []byte, i int) ([]byte, *RowError) {
	c := &p.cols[i]
	s := p.slots[c.slot]
	if s.t == nil || s.t.kind == avroNull {
		return c.null(dst)
	}
	return p.appendValue(dst, c, s.t, p.data[s.start:s.end])
}

// avroLongValue decodes the int or long v (validated by decode).
func avroLongValue(v []byte) int64 {
	x, _, _ := readVarlong(v, 0)
	return x
}

// avroBytesValue returns the content of the bytes or string v.
func avroBytesValue(v []byte) []byte {
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

func appendDigits(dst []byte, v int64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte('0'+v/int64(pow10[i])%10))
	}
	return dst
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

// appendTimeText appends HH:MM:SS and, when not zero, the fraction of a
// second without trailing zeros, as PostgreSQL prints a time.
func appendTimeText(dst []byte, us int64) []byte {
	sec := us / usPerSec
	dst = appendDigits(dst, sec/3600, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec/60%60, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec%60, 2)
	if f := us % usPerSec; f != 0 {
		dst = append(dst, '.')
		n := 6
		for f%10 == 0 {
			f /= 10
			n--
		}
		dst = appendDigits(dst, f, n)
	}
	return dst
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

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
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

// appendJSONText appends s as a JSON string. s must be valid UTF-8; a NUL
// becomes \u0000, which jsonb cannot store.
func appendJSONText(dst, s []byte, jsonb bool) ([]byte, Reason, string) {
	const hexDigits = "0123456789abcdef"
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
			n, i, _ := readVarlong(v, pos)
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
		b, next, _ := readVarlong(v, pos)
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
