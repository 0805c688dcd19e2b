package codec

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Decoder turns records into the binary COPY fields of one target table.
// It owns scratch buffers and decompressors: use it from one goroutine at a
// time. Nothing it returns points into its buffers.
type Decoder struct {
	format    Format
	cols      []column
	opts      Options
	root      *node // nil when no column reads a JSON path
	needParse bool  // the value is parsed: path columns or a json/jsonb kafka.value column
	p         parser
	aux       parser // validates kafka.key documents
	scratch   []byte // unescaped string values
	z         decompressor

	// Registry formats.
	schemas       schemaCache
	plan          valuePlan  // the plan of the record being decoded (Avro, Protobuf)
	needed        SchemaRef  // the schema AppendFields asks for
	neededKey     bool       // needed is a key schema
	neededIndexes []int      // the Protobuf message indexes of the record that needs it
	indexes       []int      // Protobuf message indexes of the record
	rk            *keyFields // reads fields of the record key (regkey.go); nil when no column does
	// Change streams (debezium.go, debezium_keys.go).
	op        Op         // what the last record means
	unchanged ColumnSet  // columns to keep as stored, when dirty
	dirty     bool       // unchanged holds a set bit
	dbz       *debezium  // FormatDebezium state
	dbzAvro   *dbzAvro   // FormatDebezium with ConverterAvro (debezium_avro.go)
	keys      *keyReader // reads record keys into key columns for deletes
}

type column struct {
	Column
	slot  int    // SourcePath: index into parser.slots, or into the plan's path columns (Avro, Protobuf)
	where string // Path or source name, for errors
}

// node is one segment of the configured JSON paths.
type node struct {
	name     string
	plain    bool // no byte of name needs attention inside a JSON string: it can match a key byte for byte
	children []*node
	slot     int    // -1 when no column reads this exact path
	subtree  []int  // slots at and below this node, cleared on a duplicate key
	seen     uint32 // parser.gen of the document it was last met in (each key of an object is met once unless repeated)
}

// lookup finds the child named key, trying index next first: keys of one
// producer usually arrive in the same order as the configured columns.
func (n *node) lookup(key []byte, next int) (*node, int) {
	if next < len(n.children) && string(key) == n.children[next].name {
		return n.children[next], next + 1
	}
	for i, c := range n.children {
		if string(key) == c.name {
			return c, i + 1
		}
	}
	return nil, next
}

// plainKey reports whether no byte of name needs attention inside a JSON
// string (specialBytes): a key holding such a byte is escaped or validated
// in the document, so only a plain name can be matched against its raw
// bytes.
func plainKey(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

func (n *node) child(name string) *node {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	c := &node{name: name, slot: -1, plain: plainKey(name)}
	n.children = append(n.children, c)
	return c
}

// sourceTypes lists, per source, the column types it can fill.
var sourceTypes = map[Source][]Type{
	SourceTopic:     {TypeText},
	SourcePartition: {TypeInt2, TypeInt4, TypeInt8},
	SourceOffset:    {TypeInt8, TypeNumeric},
	SourceTimestamp: {TypeTimestamptz, TypeTimestamp, TypeInt8},
	SourceKey:       {TypeText, TypeBytea, TypeJSON, TypeJSONB},
	SourceHeaders:   {TypeJSONB, TypeJSON},
	SourceValue:     {TypeText, TypeBytea, TypeJSON, TypeJSONB},
	SourceUnmapped:  {TypeJSONB, TypeJSON},
}

// NewDecoder builds a decoder for columns cols of a table whose records
// have the given format. With FormatRaw, cols may be nil for RawColumns, or
// any columns without a JSON path. The error names the column and the fix.
func NewDecoder(format Format, cols []Column, opts Options) (*Decoder, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.EnsureDefaults()
	switch format {
	case FormatJSON:
		if len(cols) == 0 {
			return nil, fmt.Errorf("cannot build a json decoder without columns; configure at least one column")
		}
	case FormatRaw:
		if cols == nil {
			cols = RawColumns()
		}
	case FormatAvro, FormatProtobuf, FormatJSONSchema:
		if len(cols) == 0 {
			return nil, fmt.Errorf("cannot build a %s decoder without columns; configure at least one column", format)
		}
	case FormatDebezium:
		if len(cols) == 0 {
			return nil, fmt.Errorf("cannot build a debezium decoder without columns; configure at least one column")
		}
	default:
		return nil, fmt.Errorf("cannot build a decoder for format %d; use one of %v", format, formatNames[:])
	}
	if opts.Converter != ConverterJSON && format != FormatDebezium {
		return nil, fmt.Errorf("cannot use converter %s with format %s: a converter says how format debezium's change events were written; remove it", opts.Converter, format)
	}
	d := &Decoder{format: format, opts: opts}
	d.schemas.max = opts.MaxSchemas
	binaryPaths := 0 // path columns of Avro and Protobuf, which their plans fill
	d.p.maxDepth = opts.MaxDepth
	d.aux.maxDepth = opts.MaxDepth
	d.z.max = opts.MaxDecompressedBytes
	seen := make(map[string]bool, len(cols))
	var root *node
	for i, c := range cols {
		if err := validateColumn(format, c); err != nil {
			return nil, fmt.Errorf("cannot use column %d (%q): %w", i+1, c.Name, err)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("cannot use column %d: the name %q is used twice; give each column its own name", i+1, c.Name)
		}
		seen[c.Name] = true
		col := column{Column: c, slot: -1, where: c.Source.String()}
		if c.Source == SourceKey && c.Path != "" {
			col.where = "kafka.key." + c.Path
		}
		switch c.Source {
		case SourcePath:
			col.where = c.Path
			if format == FormatAvro || format == FormatProtobuf {
				col.slot = binaryPaths
				binaryPaths++
				break
			}
			if root == nil {
				root = &node{slot: -1}
			}
			n := root
			for seg := range strings.SplitSeq(c.Path, ".") {
				n = n.child(seg)
			}
			if n.slot < 0 {
				n.slot = len(d.p.slots)
				d.p.slots = append(d.p.slots, span{})
			}
			col.slot = n.slot
			d.needParse = true
		case SourceValue:
			if c.Type == TypeJSON || c.Type == TypeJSONB {
				d.needParse = true
			}
		case SourceUnmapped:
			if err := d.p.unmapped.enable(format); err != nil {
				return nil, fmt.Errorf("cannot use column %d (%q): %w", i+1, c.Name, err)
			}
			if root == nil {
				root = &node{slot: -1}
			}
			d.needParse = true
		}
		d.cols = append(d.cols, col)
	}
	if root != nil {
		root.fillSubtree()
	}
	d.root = root
	d.rk = newKeyFields(format, d.cols, opts)
	if err := d.initChanges(); err != nil {
		return nil, err
	}
	return d, nil
}

func (n *node) fillSubtree() []int {
	if n.slot >= 0 {
		n.subtree = append(n.subtree, n.slot)
	}
	for _, c := range n.children {
		n.subtree = append(n.subtree, c.fillSubtree()...)
	}
	return n.subtree
}

func validateColumn(format Format, c Column) error {
	if c.Name == "" {
		return fmt.Errorf("the column has no name; set name")
	}
	if c.Type == TypeInvalid || int(c.Type) >= len(typeNames) {
		return fmt.Errorf("invalid type %d; use one of %v", c.Type, TypeNames())
	}
	if int(c.Source) >= len(sourceNames) {
		return fmt.Errorf("invalid source %d; use a path or one of %v", c.Source, sourceNames[1:])
	}
	if c.Source == SourcePath {
		if format == FormatRaw {
			return fmt.Errorf("format raw does not parse values, so a column cannot read path %q; use format json or a kafka.* source", c.Path)
		}
		if c.Path == "" {
			return fmt.Errorf("the column has neither a path nor a source; set path (e.g. attrs.country) or source (e.g. kafka.offset)")
		}
		if slices.Contains(strings.Split(c.Path, "."), "") {
			return fmt.Errorf("path %q has an empty segment; write dotted object keys like attrs.country", c.Path)
		}
		return nil
	}
	if c.Source == SourceKey && c.Path != "" {
		return validateKeyPath(format, c)
	}
	if c.Path != "" {
		return fmt.Errorf("the column has both source %s and path %q; a column reads one or the other (only kafka.key takes a path: a field of the key)", c.Source, c.Path)
	}
	if c.Source.debezium() {
		return validateDebeziumSource(format, c)
	}
	allowed := sourceTypes[c.Source]
	if c.Source == SourceValue && (format == FormatAvro || format == FormatProtobuf) {
		allowed = []Type{TypeBytea} // binary values: only as received
	}
	if !slices.Contains(allowed, c.Type) {
		return fmt.Errorf("source %s cannot fill a %s column; use type %v", c.Source, c.Type, joinTypes(allowed))
	}
	return nil
}

func joinTypes(ts []Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return strings.Join(s, " or ")
}

// NumFields returns the number of fields AppendFields appends per record.
func (d *Decoder) NumFields() int { return len(d.cols) }

// Columns returns the decoder's columns (RawColumns for FormatRaw with nil
// columns), in field order.
func (d *Decoder) Columns() []Column {
	cols := make([]Column, len(d.cols))
	for i := range d.cols {
		cols[i] = d.cols[i].Column
	}
	return cols
}

// AppendFields appends rec's NumFields() binary COPY fields to dst and
// returns the extended buffer. On a record that cannot become a row it
// returns dst truncated to its length at entry and a *RowError. The
// decoder keeps no reference to rec.
func (d *Decoder) AppendFields(dst []byte, rec *Record) ([]byte, error) {
	entry := len(dst)
	d.beginChange()
	out, rerr := d.appendFields(dst, rec)
	// Keep no reference to the record's memory.
	d.p.doc, d.aux.doc = nil, nil
	d.z.src.Reset(nil)
	if d.plan != nil {
		if r, ok := d.plan.(planReleaser); ok {
			r.release()
		}
		d.plan = nil
	}
	if d.rk != nil {
		d.rk.release()
	}
	d.endChange(rerr != nil)
	if rerr != nil {
		if rerr == errSchemaNeeded {
			return out[:entry], &SchemaNeededError{Ref: d.needed, Key: d.neededKey, Indexes: slices.Clone(d.neededIndexes)}
		}
		return out[:entry], rerr
	}
	return out, nil
}

func (d *Decoder) appendFields(dst []byte, rec *Record) ([]byte, *RowError) {
	if n := len(rec.Key) + len(rec.Value); n > d.opts.MaxRecordBytes {
		return dst, &RowError{Reason: ReasonOversized, Detail: fmt.Sprintf("key and value take %d bytes, more than the limit of %d", n, d.opts.MaxRecordBytes)}
	}
	if d.format == FormatDebezium {
		return d.appendDebezium(dst, rec)
	}
	if rec.Value == nil && d.keys != nil {
		return d.appendDelete(dst, rec)
	}
	value := rec.Value
	if d.format != FormatRaw && value != nil && len(rec.Headers) > 0 {
		var rerr *RowError
		if value, rerr = d.z.decodeValue(rec); rerr != nil {
			return dst, rerr
		}
	}
	framed := value
	if d.format.UsesRegistry() && value != nil {
		plan, payload, rerr := d.resolve(rec, value)
		if rerr != nil {
			return dst, rerr
		}
		if plan != nil {
			d.plan = plan
			if rerr := plan.decode(payload); rerr != nil {
				return dst, rerr
			}
		} else {
			value = payload // JSON Schema: the JSON document after the framing
		}
	}
	if d.rk != nil && d.rk.paths > 0 && rec.Key != nil {
		if rerr := d.decodeKey(rec); rerr != nil {
			return dst, rerr
		}
	}
	var top span
	if d.needParse && value != nil {
		d.p.reset(value)
		var ok bool
		if top, ok = d.p.parseDocument(d.root); !ok {
			return dst, &RowError{Reason: d.p.errReason, Detail: fmt.Sprintf("%s at byte %d", d.p.errDetail, d.p.errPos)}
		}
	} else {
		d.p.reset(nil)
	}
	for i := range d.cols {
		c := &d.cols[i]
		var rerr *RowError
		start := len(dst)
		switch {
		case c.Source == SourcePath:
			switch {
			case d.plan != nil:
				dst, rerr = d.plan.appendPath(dst, c.slot)
			case d.root == nil:
				dst, rerr = c.null(dst) // Avro or Protobuf tombstone
			default:
				dst, rerr = d.appendPath(dst, c, d.p.slots[c.slot])
			}
		case c.Source == SourceKey && c.Path != "":
			dst, rerr = d.appendKeyPath(dst, c, i)
		case c.Source == SourceValue && c.Type == TypeBytea:
			dst, rerr = d.appendValue(dst, c, framed, top) // registry formats: the framing included
		case c.Source == SourceUnmapped:
			dst, rerr = d.appendUnmapped(dst, c)
		default:
			dst, rerr = d.appendSource(dst, c, rec, value, top)
		}
		if rerr != nil {
			return dst, rerr
		}
		if rerr = c.checkField(dst[start:]); rerr != nil {
			return dst, rerr
		}
	}
	return dst, nil
}

// checkField applies what the target adds to c's type (Limit: length,
// precision and scale; NotBefore: a partitioned table's retention) to the
// field just appended, whatever its source or format.
func (c *column) checkField(field []byte) *RowError {
	if c.Limit == (Limit{}) && c.NotBefore == nil {
		return nil // most columns: inlined, no call
	}
	return c.checkTarget(field)
}

func (c *column) checkTarget(field []byte) *RowError {
	if c.Limit != (Limit{}) {
		if rerr := c.checkLimit(field); rerr != nil {
			return rerr
		}
	}
	if c.NotBefore != nil {
		return c.checkNotBefore(field)
	}
	return nil
}

// appendSource appends the field of a kafka.* source column. value is the
// record value after decompression and top its parsed span, if parsed.
func (d *Decoder) appendSource(dst []byte, c *column, rec *Record, value []byte, top span) ([]byte, *RowError) {
	switch c.Source {
	case SourceTopic:
		if reason, detail := checkText(s2b(rec.Topic)); reason != "" {
			return dst, c.fail(reason, detail)
		}
		return appendStringField(dst, rec.Topic), nil
	case SourcePartition:
		return appendIntField(dst, c, int64(rec.Partition))
	case SourceOffset:
		if c.Type == TypeNumeric {
			return appendNumericInt(dst, rec.Offset), nil
		}
		return appendInt8Field(dst, rec.Offset), nil
	case SourceTimestamp:
		return appendKafkaTime(dst, c, rec)
	case SourceKey:
		return d.appendKey(dst, c, rec.Key)
	case SourceHeaders:
		return appendHeadersField(dst, c.Type, rec.Headers), nil
	case SourceValue:
		return d.appendValue(dst, c, value, top)
	}
	return dst, c.fail(ReasonWrongType, "source "+c.Source.String()+" is not a kafka.* source")
}

func (c *column) fail(reason Reason, detail string) *RowError {
	return &RowError{Column: c.Name, Path: c.where, Reason: reason, Detail: detail}
}

func (c *column) null(dst []byte) ([]byte, *RowError) {
	if c.Required {
		return dst, c.fail(ReasonMissingRequired, "required value is missing or null")
	}
	return appendNull(dst), nil
}

// quote shortens b for an error message.
func quote(b []byte) string {
	const max = 64
	if len(b) > max {
		return fmt.Sprintf("%q…", b[:max])
	}
	return fmt.Sprintf("%q", b)
}

func appendIntField(dst []byte, c *column, v int64) ([]byte, *RowError) {
	switch c.Type {
	case TypeInt2:
		if v < math.MinInt16 || v > math.MaxInt16 {
			return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("value %d out of range for int2", v))
		}
		return appendInt2Field(dst, int16(v)), nil
	case TypeInt4:
		if v < math.MinInt32 || v > math.MaxInt32 {
			return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("value %d out of range for int4", v))
		}
		return appendInt4Field(dst, int32(v)), nil
	}
	return appendInt8Field(dst, v), nil
}

func appendKafkaTime(dst []byte, c *column, rec *Record) ([]byte, *RowError) {
	if rec.Timestamp.IsZero() {
		return c.null(dst)
	}
	if c.Type == TypeInt8 {
		return appendInt8Field(dst, rec.Timestamp.UnixMilli()), nil
	}
	us, ok := timeMicros(rec.Timestamp)
	if !ok {
		return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("record timestamp %s out of range for %s", rec.Timestamp, c.Type))
	}
	return appendInt8Field(dst, us), nil
}

func (d *Decoder) appendKey(dst []byte, c *column, key []byte) ([]byte, *RowError) {
	if key == nil {
		return c.null(dst)
	}
	switch c.Type {
	case TypeText:
		if reason, detail := checkText(key); reason != "" {
			return dst, c.fail(reason, detail)
		}
	case TypeJSON, TypeJSONB:
		d.aux.reset(key)
		sp, ok := d.aux.parseDocument(nil)
		if !ok {
			return dst, c.fail(d.aux.errReason, fmt.Sprintf("%s at byte %d", d.aux.errDetail, d.aux.errPos))
		}
		text := sp.raw(key)
		if c.Type == TypeJSONB {
			if q, bad := d.aux.poisoned(0, len(key)); bad {
				return dst, c.fail(ReasonInvalidValue, q.String())
			}
			return appendJSONBField(dst, text), nil
		}
		return appendBytesField(dst, text), nil
	}
	return appendBytesField(dst, key), nil
}

func (d *Decoder) appendValue(dst []byte, c *column, value []byte, top span) ([]byte, *RowError) {
	if value == nil {
		return c.null(dst)
	}
	switch c.Type {
	case TypeText:
		if reason, detail := checkText(value); reason != "" {
			return dst, c.fail(reason, detail)
		}
	case TypeJSON:
		// The whole document is a value, so JSON null is jsonb 'null', not SQL NULL.
		return appendBytesField(dst, top.raw(value)), nil
	case TypeJSONB:
		if q, bad := d.p.poisoned(0, len(value)); bad {
			return dst, c.fail(ReasonInvalidValue, q.String())
		}
		return appendJSONBField(dst, top.raw(value)), nil
	}
	return appendBytesField(dst, value), nil
}

// stringValue returns the decoded content of a string span, in d.scratch
// when it holds escapes.
func (d *Decoder) stringValue(c *column, sp span) ([]byte, *RowError) {
	s := d.p.doc[sp.start:sp.end]
	if sp.flags&spanEscaped == 0 {
		return s, nil
	}
	var ok bool
	if d.scratch, ok = unescapeString(d.scratch[:0], s); !ok {
		return nil, d.badEscape(c, sp)
	}
	return d.scratch, nil
}

// badEscape explains why a validated string cannot be decoded to text.
func (d *Decoder) badEscape(c *column, sp span) *RowError {
	if q, ok := d.p.poisoned(sp.start, sp.end); ok && q.what == poisonNUL {
		return c.fail(ReasonNULInText, `string holds \u0000`)
	}
	return c.fail(ReasonInvalidUTF8, "string holds an unpaired UTF-16 surrogate escape")
}

// appendPath appends the field for a JSON path column from the value the
// parser found.
func (d *Decoder) appendPath(dst []byte, c *column, sp span) ([]byte, *RowError) {
	if sp.kind == kindNone || sp.kind == kindNull {
		return c.null(dst)
	}
	doc := d.p.doc
	switch c.Type {
	case TypeText:
		if sp.kind != kindString {
			// Numbers, booleans, objects and arrays: their JSON text as written.
			return appendBytesField(dst, sp.raw(doc)), nil
		}
		s := doc[sp.start:sp.end]
		if sp.flags&spanEscaped == 0 {
			return appendBytesField(dst, s), nil
		}
		dst, at := beginField(dst)
		dst, ok := unescapeString(dst, s)
		if !ok {
			return dst[:at], d.badEscape(c, sp)
		}
		return endField(dst, at), nil

	case TypeInt2, TypeInt4, TypeInt8:
		if sp.kind == kindNumber && sp.flags&spanFloat == 0 {
			if v, ok := parseSimpleInt(doc[sp.start:sp.end]); ok {
				return appendIntField(dst, c, v)
			}
		}
		text, n, rerr := d.numberValue(c, sp)
		if rerr != nil {
			return dst, rerr
		}
		v, reason, detail := n.integer()
		if reason != "" {
			return dst, c.fail(reason, detail+": "+quote(text))
		}
		return appendIntField(dst, c, v)

	case TypeFloat4, TypeFloat8:
		bits := 64
		if c.Type == TypeFloat4 {
			bits = 32
		}
		var f float64
		if sp.kind == kindString {
			s, rerr := d.stringValue(c, sp)
			if rerr != nil {
				return dst, rerr
			}
			f = specialFloat(s)
		}
		if f == 0 {
			text, n, rerr := d.numberValue(c, sp)
			if rerr != nil {
				return dst, rerr
			}
			var reason Reason
			var detail string
			if f, reason, detail = parseFloat(text, &n, bits); reason != "" {
				return dst, c.fail(reason, detail+": "+quote(text))
			}
		}
		if bits == 32 {
			return appendFloat4Field(dst, float32(f)), nil
		}
		return appendFloat8Field(dst, f), nil

	case TypeNumeric:
		if sp.kind == kindString {
			s, rerr := d.stringValue(c, sp)
			if rerr != nil {
				return dst, rerr
			}
			switch f := specialFloat(s); {
			case math.IsNaN(f):
				return appendNumericSpecial(dst, numericNaN), nil
			case math.IsInf(f, 1):
				return appendNumericSpecial(dst, numericPInf), nil
			case math.IsInf(f, -1):
				return appendNumericSpecial(dst, numericNInf), nil
			}
		}
		text, n, rerr := d.numberValue(c, sp)
		if rerr != nil {
			return dst, rerr
		}
		if !n.fitsNumeric() {
			return dst, c.fail(ReasonOutOfRange, "number beyond the range of numeric: "+quote(text))
		}
		return appendNumericField(dst, &n), nil

	case TypeBool:
		switch sp.kind {
		case kindTrue:
			return appendBoolField(dst, true), nil
		case kindFalse:
			return appendBoolField(dst, false), nil
		}
		return dst, c.wrongKind(sp.kind, "a JSON boolean")

	case TypeUUID:
		if sp.kind != kindString {
			return dst, c.wrongKind(sp.kind, "a string holding a UUID")
		}
		s, rerr := d.stringValue(c, sp)
		if rerr != nil {
			return dst, rerr
		}
		var u [16]byte
		if !parseUUID(s, &u) {
			return dst, c.fail(ReasonInvalidValue, "invalid UUID "+quote(s))
		}
		dst = append(dst, 0, 0, 0, 16)
		return append(dst, u[:]...), nil

	case TypeTimestamptz, TypeTimestamp:
		switch sp.kind {
		case kindString:
			s, rerr := d.stringValue(c, sp)
			if rerr != nil {
				return dst, rerr
			}
			us, ok := parseTimestamp(s)
			if !ok {
				return dst, c.fail(ReasonInvalidValue, "invalid RFC 3339 timestamp "+quote(s))
			}
			return appendInt8Field(dst, us), nil
		case kindNumber:
			text := doc[sp.start:sp.end]
			n, _ := splitNumber(text)
			us, reason, detail := epochMicros(&n)
			if reason != "" {
				return dst, c.fail(reason, detail+": "+quote(text))
			}
			return appendInt8Field(dst, us), nil
		}
		return dst, c.wrongKind(sp.kind, "an RFC 3339 string or an epoch number")

	case TypeDate:
		if sp.kind != kindString {
			return dst, c.wrongKind(sp.kind, "a YYYY-MM-DD string")
		}
		s, rerr := d.stringValue(c, sp)
		if rerr != nil {
			return dst, rerr
		}
		days, ok := parseDate(s)
		if !ok || len(s) != 10 {
			return dst, c.fail(ReasonInvalidValue, "invalid date "+quote(s)+", want YYYY-MM-DD")
		}
		return appendInt4Field(dst, int32(days-unixToPGDays)), nil

	case TypeJSONB:
		raw := sp.raw(doc)
		if q, bad := d.p.poisoned(sp.start, sp.end); bad {
			return dst, c.fail(ReasonInvalidValue, q.String())
		}
		return appendJSONBField(dst, raw), nil

	case TypeJSON:
		return appendBytesField(dst, sp.raw(doc)), nil

	case TypeBytea:
		if sp.kind != kindString {
			return dst, c.wrongKind(sp.kind, "a base64 string")
		}
		s, rerr := d.stringValue(c, sp)
		if rerr != nil {
			return dst, rerr
		}
		dst, ok := appendBase64Field(dst, s)
		if !ok {
			return dst, c.fail(ReasonInvalidValue, "invalid base64 "+quote(s))
		}
		return dst, nil
	}
	return dst, c.fail(ReasonWrongType, "unsupported column type "+c.Type.String())
}

func (c *column) wrongKind(k kind, want string) *RowError {
	return c.fail(ReasonWrongType, fmt.Sprintf("got a JSON %s, want %s", k, want))
}

// numberValue returns the number text of a JSON number, or of a string
// holding one in JSON number syntax, split into its parts.
func (d *Decoder) numberValue(c *column, sp span) ([]byte, number, *RowError) {
	var text []byte
	switch sp.kind {
	case kindNumber:
		text = d.p.doc[sp.start:sp.end]
	case kindString:
		s, rerr := d.stringValue(c, sp)
		if rerr != nil {
			return nil, number{}, rerr
		}
		text = s
	default:
		return nil, number{}, c.wrongKind(sp.kind, "a number")
	}
	n, ok := splitNumber(text)
	if !ok {
		return nil, number{}, c.fail(ReasonWrongType, "string is not a number: "+quote(text))
	}
	return text, n, nil
}
