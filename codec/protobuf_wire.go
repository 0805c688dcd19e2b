package codec

import (
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// decode walks payload, a serialized message of the plan's type, and
// records where the columns' fields are. The plan keeps payload until the
// next decode.
func (p *protobufPlan) decode(payload []byte) *RowError {
	p.payload = payload
	p.occ = p.occ[:0]
	for i := range p.slots {
		p.slots[i].reset()
	}
	return p.walk(&p.root, 0, len(payload))
}

// wireErr is a malformed payload at byte at.
func (p *protobufPlan) wireErr(path string, num protowire.Number, at int, what string) *RowError {
	detail := fmt.Sprintf("%s at byte %d", what, at)
	if num > 0 {
		detail = fmt.Sprintf("field number %d: %s", num, detail)
	}
	if path == "" {
		path = "(message)"
	}
	return &RowError{Path: path, Reason: ReasonSchemaMismatch, Detail: detail}
}

// consumeValue reads the value of wire type wt at b[i:end]. Its content
// is b[start:stop] (past the length of a length-delimited value, short of
// a group's end-group tag) and the value ends at next, negative on
// malformed data.
func consumeValue(b []byte, i, end int, num protowire.Number, wt protowire.Type) (start, stop, next int) {
	switch wt {
	case protowire.VarintType:
		if i < end && b[i] < 0x80 {
			return i, i + 1, i + 1
		}
		_, n := protowire.ConsumeVarint(b[i:end])
		if n < 0 {
			return i, i, -1
		}
		return i, i + n, i + n
	case protowire.Fixed32Type:
		if end-i < 4 {
			return i, i, -1
		}
		return i, i + 4, i + 4
	case protowire.Fixed64Type:
		if end-i < 8 {
			return i, i, -1
		}
		return i, i + 8, i + 8
	case protowire.BytesType:
		var l uint64
		if i < end && b[i] < 0x80 {
			l = uint64(b[i])
			i++
		} else {
			v, n := protowire.ConsumeVarint(b[i:end])
			if n < 0 {
				return i, i, -1
			}
			l = v
			i += n
		}
		if l > uint64(end-i) {
			return i, i, -1
		}
		return i, i + int(l), i + int(l)
	case protowire.StartGroupType:
		// The content stops before the end-group tag: scanned as a
		// message, it must not meet that tag.
		v, n := protowire.ConsumeGroup(num, b[i:end])
		if n < 0 {
			return i, i, -1
		}
		return i, i + len(v), i + n
	}
	return i, i, -1
}

func wireName(wt protowire.Type) string {
	switch wt {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "start-group"
	case protowire.EndGroupType:
		return "end-group"
	}
	return fmt.Sprintf("reserved wire type %d", wt)
}

func malformed(wt protowire.Type) string {
	switch wt {
	case protowire.EndGroupType:
		return "end-group without a start"
	case protowire.VarintType, protowire.Fixed32Type, protowire.Fixed64Type, protowire.BytesType, protowire.StartGroupType:
		return "truncated " + wireName(wt) + " value"
	}
	return wireName(wt)
}

// readTag reads the tag at b[i:end]. The number may be out of range:
// callers check it with IsValid.
func readTag(b []byte, i, end int) (protowire.Number, protowire.Type, int) {
	if c := b[i]; c < 0x80 {
		return protowire.Number(c >> 3), protowire.Type(c & 7), i + 1
	}
	v, n := protowire.ConsumeVarint(b[i:end])
	if n < 0 {
		return 0, 0, -1
	}
	num, wt := protowire.DecodeTag(v)
	return num, wt, i + n
}

// wireFits reports whether a value of wire type wt may hold field f.
func wireFits(f *pbField, wt protowire.Type) bool {
	return wt == f.wire || (f.packable && wt == protowire.BytesType)
}

// walk records the fields of the message at payload[i:end] that n's
// edges name, and walks into the messages columns read below.
func (p *protobufPlan) walk(n *pbNode, i, end int) *RowError {
	b := p.payload
	for i < end {
		at := i
		num, wt, next := readTag(b, i, end)
		if next < 0 {
			return p.wireErr(n.path, 0, at, "truncated tag")
		}
		if !num.IsValid() {
			// 0, or above 2^29-1: protobuf parsers reject the message.
			return p.wireErr(n.path, 0, at, "invalid field number")
		}
		i = next
		ei := n.byNum.get(num)
		if ei < 0 {
			if _, _, i = consumeValue(b, i, end, num, wt); i < 0 {
				return p.wireErr(n.path, num, at, malformed(wt))
			}
			continue
		}
		e := &n.edges[ei]
		if !wireFits(e.f, wt) {
			return p.wireErr(e.path, 0, at, fmt.Sprintf("%s value for a field of type %s", wireName(wt), e.f.typeName()))
		}
		vs, ve, next := consumeValue(b, i, end, num, wt)
		if next < 0 {
			return p.wireErr(e.path, 0, at, malformed(wt))
		}
		i = next
		for _, s := range e.clears {
			p.slots[s].reset()
		}
		if e.slot < 0 {
			continue
		}
		s := &p.slots[e.slot]
		if !s.multi {
			s.set, s.wt, s.start, s.end = true, wt, int32(vs), int32(ve)
			continue
		}
		p.occ = append(p.occ, pbOcc{start: int32(vs), end: int32(ve), next: -1, wt: wt})
		o := int32(len(p.occ) - 1)
		if s.head < 0 {
			s.head = o
		} else {
			p.occ[s.tail].next = o
		}
		s.tail = o
		if e.sub != nil {
			if rerr := p.walk(e.sub, vs, ve); rerr != nil {
				return rerr
			}
		}
	}
	return nil
}

// scalarOf decodes a scalar value of kind f.kind from its bytes: the
// integer bits in u, the content of a string or bytes in b.
func scalarOf(f *pbField, v []byte) (u uint64) {
	switch f.wire {
	case protowire.VarintType:
		if len(v) == 1 {
			return uint64(v[0])
		}
		u, _ = protowire.ConsumeVarint(v)
		return u
	case protowire.Fixed32Type:
		return uint64(binary.LittleEndian.Uint32(v))
	case protowire.Fixed64Type:
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}
