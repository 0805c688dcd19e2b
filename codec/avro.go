package codec

import (
	"fmt"
	"math"
	"slices"
	"strings"
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
	types    []*avroType // what avroSlot.ti and avroNode.ti index
	data     []byte      // the payload of the last decode, until release
	maxDepth int
	jump     bool // skip array and map blocks by their byte size

	// zeroItems is how many more items that may take no bytes (nulls,
	// empty records) the datum being decoded may hold: its size plus
	// 1024, over all its arrays and blocks.
	zeroItems int64

	// Error state of a failed decode.
	errPos    int
	errDetail string
	errPath   []string // innermost first

	num    []byte   // decimal text of a number being converted
	words  []uint32 // magnitude of a large decimal
	digits []byte   // its decimal digits, least significant first
}

// avroSlot is where the value of one path was found: data[start:end]
// encodes a value of type types[ti-1] (never a union: the branch taken).
// ti is 0 when the path was not met in the datum. Holding no pointer, the
// slots are written and cleared without the garbage collector's write
// barriers.
type avroSlot struct {
	start, end int
	ti         int32
}

// avroNode is one value of the writer schema that some path column reads
// or looks into. Values no column needs are skipped without a node.
type avroNode struct {
	t        *avroType
	ti       int32       // 1 + the index of t in the plan's types
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
	p.root = p.compileNode(root, tree, false)
	return p, nil
}

func (p *avroPlan) compileNode(t *avroType, pn *node, exact bool) *avroNode {
	exact = exact || pn.slot >= 0
	n := &avroNode{t: t, slot: pn.slot, exact: exact}
	if pn.slot >= 0 {
		p.types = append(p.types, t)
		n.ti = int32(len(p.types))
	}
	switch t.kind {
	case avroUnion:
		n.slot = -1 // the branch records the value
		for _, b := range t.branches {
			n.branches = append(n.branches, p.compileNode(b, pn, exact))
		}
	case avroRecord:
		if len(pn.children) == 0 {
			break
		}
		n.fields = make([]*avroNode, len(t.fields))
		for i, f := range t.fields {
			for _, c := range pn.children {
				if c.name == f.name {
					n.fields[i] = p.compileNode(f.t, c, exact)
				}
			}
		}
	case avroMap:
		for _, c := range pn.children {
			n.keys = append(n.keys, c.name)
			n.values = append(n.values, p.compileNode(t.items, c, exact))
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
	p.zeroItems = int64(len(payload)) + 1024
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
		p.slots[n.slot] = avroSlot{start: start, end: pos, ti: n.ti}
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
	// (nulls, empty records) share one bound over the whole datum, so
	// forged counts cannot spin, block after block.
	if itemMin := p.itemMin(t); itemMin > 0 {
		if count > int64(len(p.data)-next)/int64(itemMin) {
			return 0, -1, pos, p.fail(pos, fmt.Sprintf("block count %d exceeds what the bytes left can hold", count))
		}
	} else {
		if count > p.zeroItems {
			return 0, -1, pos, p.fail(pos, fmt.Sprintf("block count %d takes the datum past %d items that take no bytes", count, int64(len(p.data))+1024))
		}
		p.zeroItems -= count
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
		if pos < len(data) {
			// A length below 64 is one even byte.
			if c := data[pos]; c&0x81 == 0 && int(c>>1) < len(data)-pos {
				return pos + 1 + int(c>>1), true
			}
		}
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
