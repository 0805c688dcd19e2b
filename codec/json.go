package codec

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// kind is the JSON kind of a value found by the parser.
type kind uint8

const (
	kindNone kind = iota // not present in the document
	kindNull
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindObject
	kindArray
)

var kindNames = [...]string{
	kindNone:   "missing",
	kindNull:   "null",
	kindFalse:  "boolean",
	kindTrue:   "boolean",
	kindNumber: "number",
	kindString: "string",
	kindObject: "object",
	kindArray:  "array",
}

func (k kind) String() string { return kindNames[k] }

// Span flags.
const (
	spanEscaped uint8 = 1 << iota // string content holds backslash escapes
	spanFloat                     // number has a fraction or an exponent
)

// span locates one JSON value in the document. For strings start and end
// delimit the content between the quotes; for every other kind they delimit
// the value's text.
type span struct {
	start, end int
	kind       kind
	flags      uint8
}

// raw returns the JSON text of the value, quotes included for strings.
func (s span) raw(doc []byte) []byte {
	if s.kind == kindString {
		return doc[s.start-1 : s.end+1]
	}
	return doc[s.start:s.end]
}

// Poison kinds: constructs the json type accepts but jsonb (and text)
// reject. The parser records where they occur instead of failing, so a
// document holding one only fails for the columns that cannot store it.
const (
	poisonNUL       uint8 = iota + 1 // \u0000 escape
	poisonSurrogate                  // \uD800-\uDFFF escape not forming a pair
	poisonNumeric                    // number beyond PostgreSQL numeric limits
)

type poison struct {
	pos  int
	what uint8
}

func (p poison) String() string {
	switch p.what {
	case poisonNUL:
		return `\u0000 escape, which jsonb cannot store`
	case poisonSurrogate:
		return "unpaired UTF-16 surrogate escape, which jsonb cannot store"
	}
	return "number beyond the range of numeric, which jsonb cannot store"
}

// parser is a single-pass JSON parser that validates a whole document and
// records the spans of the values at the configured paths. It keeps no
// pointers into a document past the call that parsed it.
type parser struct {
	doc      []byte
	pos      int
	depth    int
	maxDepth int
	slots    []span
	poisons  []poison
	keyBuf   []byte   // unescaped object key, reused
	gen      uint32   // counts documents, for node.seen
	unmapped unmapped // the top-level members no column reads, when a column wants them

	// Error state, set when a parse function returns false.
	errReason Reason
	errDetail string
	errPos    int
}

// reset prepares p to parse doc, forgetting every earlier span.
func (p *parser) reset(doc []byte) {
	p.doc = doc
	p.pos = 0
	p.depth = 0
	p.gen++
	p.poisons = p.poisons[:0]
	p.unmapped.members = p.unmapped.members[:0]
	p.errReason = ""
	p.errDetail = ""
	for i := range p.slots {
		p.slots[i] = span{}
	}
}

func (p *parser) fail(reason Reason, detail string) bool {
	p.errReason = reason
	p.errDetail = detail
	p.errPos = p.pos
	return false
}

// poisoned reports the first poison inside raw value bytes [start, end).
func (p *parser) poisoned(start, end int) (poison, bool) {
	for _, q := range p.poisons {
		if q.pos >= start && q.pos < end {
			return q, true
		}
	}
	return poison{}, false
}

// parseDocument validates the whole document. When root is non-nil the
// top-level value must be an object and the values at root's paths are
// recorded in p.slots. It returns the span of the top-level value.
func (p *parser) parseDocument(root *node) (span, bool) {
	p.skipWS()
	if p.pos >= len(p.doc) {
		return span{}, p.fail(ReasonMalformedJSON, "empty document")
	}
	if root != nil && p.doc[p.pos] != '{' {
		if p.doc[p.pos] == 0xEF && len(p.doc) >= p.pos+3 && p.doc[p.pos+1] == 0xBB && p.doc[p.pos+2] == 0xBF {
			return span{}, p.fail(ReasonMalformedJSON, "document starts with a UTF-8 byte order mark")
		}
		return span{}, p.fail(ReasonMalformedJSON, "top-level value is not a JSON object")
	}
	sp, ok := p.parseValue(root)
	if !ok {
		return sp, false
	}
	p.skipWS()
	if p.pos != len(p.doc) {
		return sp, p.fail(ReasonMalformedJSON, "unexpected data after the top-level value")
	}
	return sp, true
}

func (p *parser) skipWS() {
	doc := p.doc
	i := p.pos
	// Every whitespace byte is at most ' ': one comparison passes the
	// token that usually follows.
	for i < len(doc) && doc[i] <= ' ' {
		switch doc[i] {
		case ' ', '\n', '\t', '\r':
			i++
			continue
		}
		break
	}
	p.pos = i
}

// parseValue parses the value at p.pos (whitespace already skipped). n is
// the path node the value sits at, nil when no column looks inside it.
func (p *parser) parseValue(n *node) (span, bool) {
	if p.pos >= len(p.doc) {
		return span{}, p.fail(ReasonMalformedJSON, "unexpected end of document, a value was expected")
	}
	switch c := p.doc[p.pos]; c {
	case '"':
		return p.parseString()
	case '{':
		start := p.pos
		if !p.parseObject(n) {
			return span{}, false
		}
		return span{start: start, end: p.pos, kind: kindObject}, true
	case '[':
		start := p.pos
		if !p.parseArray() {
			return span{}, false
		}
		return span{start: start, end: p.pos, kind: kindArray}, true
	case 't':
		return p.literal("true", kindTrue)
	case 'f':
		return p.literal("false", kindFalse)
	case 'n':
		return p.literal("null", kindNull)
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.parseNumber()
		}
		if c == 0xEF && p.pos+2 < len(p.doc) && p.doc[p.pos+1] == 0xBB && p.doc[p.pos+2] == 0xBF {
			return span{}, p.fail(ReasonMalformedJSON, "unexpected UTF-8 byte order mark")
		}
		return span{}, p.fail(ReasonMalformedJSON, "invalid character where a value was expected")
	}
}

func (p *parser) literal(lit string, k kind) (span, bool) {
	start := p.pos
	if len(p.doc)-start < len(lit) || string(p.doc[start:start+len(lit)]) != lit {
		return span{}, p.fail(ReasonMalformedJSON, "invalid literal, expected "+lit)
	}
	p.pos += len(lit)
	return span{start: start, end: p.pos, kind: k}, true
}

func (p *parser) enter() bool {
	p.depth++
	if p.depth > p.maxDepth {
		return p.fail(ReasonMalformedJSON, "nesting deeper than the maximum depth")
	}
	return true
}

// expected returns n's child next when the key at p.pos (its opening
// quote) is that child's plain name, else nil.
func (p *parser) expected(n *node, next int) *node {
	if n == nil || next >= len(n.children) {
		return nil
	}
	c := n.children[next]
	end := p.pos + 1 + len(c.name)
	if !c.plain || end >= len(p.doc) || p.doc[end] != '"' || string(p.doc[p.pos+1:end]) != c.name {
		return nil
	}
	return c
}

func (p *parser) parseObject(n *node) bool {
	if !p.enter() {
		return false
	}
	p.pos++ // '{'
	p.skipWS()
	if p.pos < len(p.doc) && p.doc[p.pos] == '}' {
		p.pos++
		p.depth--
		return true
	}
	next := 0 // index of the child expected next: keys usually come in the same order
	for {
		if p.pos >= len(p.doc) || p.doc[p.pos] != '"' {
			return p.fail(ReasonMalformedJSON, "object key expected")
		}
		// The key expected next, met byte for byte and followed by its
		// closing quote, is that key: a plain name holds no byte that
		// parseString would escape or check.
		var child *node
		var key span
		if c := p.expected(n, next); c != nil {
			child, next = c, next+1
			p.pos += len(c.name) + 2
		} else {
			var ok bool
			if key, ok = p.parseString(); !ok {
				return false
			}
		}
		p.skipWS()
		if p.pos >= len(p.doc) || p.doc[p.pos] != ':' {
			return p.fail(ReasonMalformedJSON, "':' expected after object key")
		}
		p.pos++
		p.skipWS()
		if child == nil && n != nil && len(n.children) > 0 {
			kb := p.doc[key.start:key.end]
			if key.flags&spanEscaped != 0 {
				var ok bool
				p.keyBuf, ok = unescapeString(p.keyBuf[:0], kb)
				kb = p.keyBuf
				if !ok {
					kb = nil // holds \u0000 or a lone surrogate: matches no column
				}
			}
			if kb != nil {
				child, next = n.lookup(kb, next)
			}
		}
		if child == nil {
			if _, ok := p.parseValue(nil); !ok {
				return false
			}
			if p.unmapped.on && p.depth == 1 {
				p.unmapped.add(key.start-1, p.pos)
			}
		} else {
			// Last duplicate key wins, as in jsonb: forget what an earlier
			// occurrence of this key recorded below it. Only a repeated key
			// has anything to forget (node.seen: the document it was last
			// met in).
			if child.seen == p.gen {
				for _, s := range child.subtree {
					p.slots[s] = span{}
				}
			}
			child.seen = p.gen
			sp, ok := p.parseValue(child)
			if !ok {
				return false
			}
			if child.slot >= 0 {
				p.slots[child.slot] = sp
			}
		}
		p.skipWS()
		if p.pos >= len(p.doc) {
			return p.fail(ReasonMalformedJSON, "unterminated object")
		}
		switch p.doc[p.pos] {
		case ',':
			p.pos++
			p.skipWS()
		case '}':
			p.pos++
			p.depth--
			return true
		default:
			return p.fail(ReasonMalformedJSON, "',' or '}' expected in object")
		}
	}
}

func (p *parser) parseArray() bool {
	if !p.enter() {
		return false
	}
	p.pos++ // '['
	p.skipWS()
	if p.pos < len(p.doc) && p.doc[p.pos] == ']' {
		p.pos++
		p.depth--
		return true
	}
	for {
		if _, ok := p.parseValue(nil); !ok {
			return false
		}
		p.skipWS()
		if p.pos >= len(p.doc) {
			return p.fail(ReasonMalformedJSON, "unterminated array")
		}
		switch p.doc[p.pos] {
		case ',':
			p.pos++
			p.skipWS()
		case ']':
			p.pos++
			p.depth--
			return true
		default:
			return p.fail(ReasonMalformedJSON, "',' or ']' expected in array")
		}
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialBytes returns, for the 8 bytes in x (little-endian), a mask whose
// lowest set bit is the high bit of the first byte that needs attention
// inside a JSON string: a quote, a backslash, a control byte or a non-ASCII
// byte; 0 when none does. Bits above the lowest may be false positives (a
// borrow runs on past a matching byte), so only the lowest is meaningful.
func specialBytes(x uint64) uint64 {
	q := x ^ (lsb * '"')
	b := x ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b | (x-lsb*0x20)&^x | x) & msb
}

// parseString parses the string starting at the opening quote at p.pos.
// It validates escapes and UTF-8 and records poisons. Eight bytes at a
// time, it jumps straight to the first byte that needs attention; past
// sixteen plain bytes (a long value: a URL, a user agent, a UUID) it
// continues sixteen at a time (scanSpecial).
func (p *parser) parseString() (span, bool) {
	doc := p.doc
	start := p.pos + 1
	i := start
	var flags uint8
	for {
		for k := 0; i+8 <= len(doc); k++ {
			if m := specialBytes(binary.LittleEndian.Uint64(doc[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
			if k == 1 {
				i += scanSpecial(doc[i:])
			}
		}
		if i >= len(doc) {
			p.pos = i
			return span{}, p.fail(ReasonMalformedJSON, "unterminated string")
		}
		c := doc[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return span{start: start, end: i, kind: kindString, flags: flags}, true
		case c == '\\':
			flags |= spanEscaped
			n, ok := p.escape(i)
			if !ok {
				return span{}, false
			}
			i = n
		case c < 0x20:
			p.pos = i
			return span{}, p.fail(ReasonMalformedJSON, "unescaped control character in string")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(doc[i:])
			if r == utf8.RuneError && size <= 1 {
				p.pos = i
				return span{}, p.fail(ReasonInvalidUTF8, "invalid UTF-8 in string")
			}
			i += size
		}
	}
}

// escape validates the escape sequence at doc[i] == '\\' and returns the
// index after it.
func (p *parser) escape(i int) (int, bool) {
	doc := p.doc
	if i+1 >= len(doc) {
		p.pos = i
		return 0, p.fail(ReasonMalformedJSON, "unterminated escape sequence")
	}
	switch doc[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, true
	case 'u':
	default:
		p.pos = i
		return 0, p.fail(ReasonMalformedJSON, "invalid escape sequence")
	}
	r, ok := hex4(doc, i+2)
	if !ok {
		p.pos = i
		return 0, p.fail(ReasonMalformedJSON, `invalid \u escape, four hex digits expected`)
	}
	switch {
	case r == 0:
		p.poisons = append(p.poisons, poison{pos: i, what: poisonNUL})
	case r >= 0xD800 && r < 0xDC00:
		if i+11 < len(doc) && doc[i+6] == '\\' && doc[i+7] == 'u' {
			if lo, ok := hex4(doc, i+8); ok && lo >= 0xDC00 && lo < 0xE000 {
				return i + 12, true
			}
		}
		p.poisons = append(p.poisons, poison{pos: i, what: poisonSurrogate})
	case r >= 0xDC00 && r < 0xE000:
		p.poisons = append(p.poisons, poison{pos: i, what: poisonSurrogate})
	}
	return i + 6, true
}

var hexVal = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = int8(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = int8(c - 'a' + 10)
		t[c-'a'+'A'] = int8(c - 'a' + 10)
	}
	return t
}()

// hex4 decodes four hex digits at doc[i:].
func hex4(doc []byte, i int) (rune, bool) {
	if i+4 > len(doc) {
		return 0, false
	}
	a, b, c, d := hexVal[doc[i]], hexVal[doc[i+1]], hexVal[doc[i+2]], hexVal[doc[i+3]]
	if a|b|c|d < 0 {
		return 0, false
	}
	return rune(a)<<12 | rune(b)<<8 | rune(c)<<4 | rune(d), true
}

// parseNumber validates a JSON number at p.pos.
func (p *parser) parseNumber() (span, bool) {
	doc := p.doc
	start := p.pos
	i := start
	if doc[i] == '-' {
		i++
	}
	if i >= len(doc) {
		p.pos = i
		return span{}, p.fail(ReasonMalformedJSON, "digit expected after '-'")
	}
	switch c := doc[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(doc) && doc[i] >= '0' && doc[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return span{}, p.fail(ReasonMalformedJSON, "digit expected in number")
	}
	var flags uint8
	hasExp := false
	if i < len(doc) && doc[i] == '.' {
		i++
		flags = spanFloat
		d := i
		for i < len(doc) && doc[i] >= '0' && doc[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return span{}, p.fail(ReasonMalformedJSON, "digit expected after decimal point")
		}
	}
	if i < len(doc) && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		flags = spanFloat
		hasExp = true
		if i < len(doc) && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		d := i
		for i < len(doc) && doc[i] >= '0' && doc[i] <= '9' {
			i++
		}
		if i == d {
			p.pos = i
			return span{}, p.fail(ReasonMalformedJSON, "digit expected in exponent")
		}
	}
	p.pos = i
	if hasExp || i-start > numericMaxDscale {
		if n, ok := splitNumber(doc[start:i]); !ok || !n.fitsNumeric() {
			p.poisons = append(p.poisons, poison{pos: start, what: poisonNumeric})
		}
	}
	return span{start: start, end: i, kind: kindNumber, flags: flags}, true
}

// checkText returns a reason and detail when b is not valid UTF-8 without
// NUL bytes, the condition for PostgreSQL text.
func checkText(b []byte) (Reason, string) {
	if len(b) >= 8 {
		// ASCII without NUL, sixteen bytes at a time, then what is left as
		// at most two words, the last one overlapping what was checked:
		// most text ends here.
		i := 0
		for ; i+16 <= len(b); i += 16 {
			x, y := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
			if ((x-lsb)&^x|x|(y-lsb)&^y|y)&msb != 0 {
				return checkTextFrom(b, i)
			}
		}
		x, y := binary.LittleEndian.Uint64(b[len(b)-8:]), uint64(lsb*0x20) // y: spaces unless read
		if len(b)-i > 8 {
			y = binary.LittleEndian.Uint64(b[i:])
		}
		if ((x-lsb)&^x|x|(y-lsb)&^y|y)&msb != 0 {
			return checkTextFrom(b, i)
		}
		return "", ""
	}
	if x, ok := shortWord(b); ok && ((x-lsb)&^x|x)&msb == 0 {
		return "", ""
	}
	return checkTextFrom(b, 0)
}

// checkTextFrom is checkText from b[i:], knowing b[:i] is plain ASCII.
func checkTextFrom(b []byte, i int) (Reason, string) {
	for i < len(b) {
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			if ((x-lsb)&^x|x)&msb != 0 {
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == 0:
			return ReasonNULInText, "NUL byte in text"
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return ReasonInvalidUTF8, "invalid UTF-8 in text"
			}
			i += size
		}
	}
	return "", ""
}

// unescapeString appends the decoded content of a JSON string (without its
// quotes, already validated by the parser) to dst. It reports false when
// the string holds \u0000 or an unpaired surrogate, which have no place in
// PostgreSQL text.
func unescapeString(dst, s []byte) ([]byte, bool) {
	for {
		i := 0
		for i < len(s) && s[i] != '\\' {
			i++
		}
		dst = append(dst, s[:i]...)
		if i == len(s) {
			return dst, true
		}
		s = s[i:]
		if len(s) < 2 {
			return dst, false
		}
		var c byte
		switch s[1] {
		case '"', '\\', '/':
			c = s[1]
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r, ok := hex4(s, 2)
			if !ok || r == 0 {
				return dst, false
			}
			n := 6
			if r >= 0xD800 && r < 0xE000 {
				if r >= 0xDC00 || len(s) < 12 || s[6] != '\\' || s[7] != 'u' {
					return dst, false
				}
				lo, ok := hex4(s, 8)
				if !ok || lo < 0xDC00 || lo >= 0xE000 {
					return dst, false
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
				n = 12
			}
			dst = utf8.AppendRune(dst, r)
			s = s[n:]
			continue
		default:
			return dst, false
		}
		dst = append(dst, c)
		s = s[2:]
	}
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 and NUL bytes
// become U+FFFD, so the result is always accepted by jsonb.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
		i++
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == 0:
			dst = append(dst, "\uFFFD"...)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
