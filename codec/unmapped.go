package codec

import "fmt"

// The unmapped column (SourceUnmapped): every top-level member of a JSON
// record that no path column reads, kept as one object in a json or jsonb
// column, so that fields a producer adds are stored before a column maps
// them. A member counts as mapped when a column's path starts with its
// key (attrs is mapped by a column reading attrs.country, and the other
// keys inside attrs are not kept). Members keep their text and order;
// duplicate keys are kept as written, and jsonb keeps the last one. A
// record with no unmapped member, and a tombstone, is NULL.
//
// The parser records where each unmapped member lies while it validates
// the document; the column is then appended from those spans, with no
// allocation once the span list has grown to the widest record.

// unmapped is the parser's record of the unmapped top-level members.
type unmapped struct {
	on      bool
	members []span // key's opening quote to the value's end
}

// enable turns gathering on for a decoder of format f.
func (u *unmapped) enable(f Format) error {
	if f != FormatJSON && f != FormatJSONSchema {
		return fmt.Errorf("source unmapped gathers members of JSON records, and format %s is not JSON; use format json", f)
	}
	if u.on {
		return fmt.Errorf("a second unmapped column; one column keeps every unmapped member")
	}
	u.on = true
	return nil
}

func (u *unmapped) add(start, end int) {
	u.members = append(u.members, span{start: start, end: end})
}

// appendUnmapped appends the unmapped members of the parsed document as
// one object.
func (d *Decoder) appendUnmapped(dst []byte, c *column) ([]byte, *RowError) {
	ms := d.p.unmapped.members
	if len(ms) == 0 || d.p.doc == nil {
		return c.null(dst)
	}
	if c.Type == TypeJSONB {
		for _, m := range ms {
			if q, bad := d.p.poisoned(m.start, m.end); bad {
				return dst, c.fail(ReasonInvalidValue, q.String())
			}
		}
	}
	dst, at := beginField(dst)
	if c.Type == TypeJSONB {
		dst = append(dst, 1) // jsonb version
	}
	dst = append(dst, '{')
	for i, m := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, d.p.doc[m.start:m.end]...)
	}
	dst = append(dst, '}')
	return endField(dst, at), nil
}
