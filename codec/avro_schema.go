package codec

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// avroKind is the type of an Avro schema node.
type avroKind uint8

const (
	avroNull avroKind = iota
	avroBoolean
	avroInt
	avroLong
	avroFloat
	avroDouble
	avroBytes
	avroString
	avroRecord
	avroEnum
	avroArray
	avroMap
	avroUnion
	avroFixed
)

var avroKindNames = [...]string{
	avroNull: "null", avroBoolean: "boolean", avroInt: "int", avroLong: "long", avroFloat: "float",
	avroDouble: "double", avroBytes: "bytes", avroString: "string", avroRecord: "record", avroEnum: "enum",
	avroArray: "array", avroMap: "map", avroUnion: "union", avroFixed: "fixed",
}

// avroLogical is the logical type annotating an Avro type; logicalNone when
// there is none or the annotation is invalid (the specification says to
// ignore an invalid one and use the underlying type).
type avroLogical uint8

const (
	logicalNone avroLogical = iota
	logicalDecimal
	logicalUUID
	logicalDate
	logicalTimeMillis
	logicalTimeMicros
	logicalTimestampMillis
	logicalTimestampMicros
	logicalTimestampNanos
	logicalLocalTimestampMillis
	logicalLocalTimestampMicros
	logicalLocalTimestampNanos
	logicalDuration
)

var avroLogicalNames = [...]string{
	logicalDecimal: "decimal", logicalUUID: "uuid", logicalDate: "date",
	logicalTimeMillis: "time-millis", logicalTimeMicros: "time-micros",
	logicalTimestampMillis: "timestamp-millis", logicalTimestampMicros: "timestamp-micros",
	logicalTimestampNanos:       "timestamp-nanos",
	logicalLocalTimestampMillis: "local-timestamp-millis", logicalLocalTimestampMicros: "local-timestamp-micros",
	logicalLocalTimestampNanos: "local-timestamp-nanos", logicalDuration: "duration",
}

// avroType is one node of a parsed Avro schema. Named types are shared:
// every reference to a name points at the same node, so recursive types
// form cycles.
type avroType struct {
	kind      avroKind
	logical   avroLogical
	name      string // full name of a record, enum or fixed
	precision int    // decimal
	scale     int    // decimal
	size      int    // fixed
	fields    []avroField
	symbols   []string    // enum
	items     *avroType   // array items, map values
	branches  []*avroType // union
	minSize   int         // fewest bytes an encoded value takes (a lower bound for recursive records)
	sizing    bool        // minSize is being computed (a recursive reference)
	sized     bool        // minSize is computed (it may be 0: computed once all the same)

	// Kafka Connect's properties (AvroConverter): connect.name,
	// connect.type and connect.parameters (string values only).
	connectName   string
	connectType   string
	connectParams map[string]string
	// mapEntry marks a record AvroConverter writes the entries of a
	// Connect map as (an array of them is the map): a record named
	// io.confluent.connect.avro.MapEntry or with connect.internal.type
	// MapEntry, of the fields key and value. It is entryObject when the
	// keys are strings (JsonConverter writes the map as an object), else
	// entryPairs (an array of [key, value] arrays).
	mapEntry uint8
}

// avroType.mapEntry values.
const (
	entryNone uint8 = iota
	entryObject
	entryPairs
)

type avroField struct {
	name string
	t    *avroType
	key  string // ,"name": for JSON objects (names need no escaping)
}

// String names t for error messages: "string", "record com.acme.Order",
// "long (timestamp-millis)", "union [null, string]".
func (t *avroType) String() string {
	var b strings.Builder
	t.describe(&b)
	return b.String()
}

func (t *avroType) describe(b *strings.Builder) {
	b.WriteString(avroKindNames[t.kind])
	if t.name != "" {
		b.WriteString(" " + t.name)
	}
	if t.logical != logicalNone {
		b.WriteString(" (" + avroLogicalNames[t.logical] + ")")
	}
	if t.kind == avroUnion {
		b.WriteString(" [")
		for i, br := range t.branches {
			if i > 0 {
				b.WriteString(", ")
			}
			if br.name != "" {
				b.WriteString(br.name)
			} else {
				br.describe(b)
			}
		}
		b.WriteString("]")
	}
}

// avroParser turns Avro schema JSON into avroType nodes.
type avroParser struct {
	names map[string]*avroType // full name → named type
}

var avroPrimitives = map[string]avroKind{
	"null": avroNull, "boolean": avroBoolean, "int": avroInt, "long": avroLong,
	"float": avroFloat, "double": avroDouble, "bytes": avroBytes, "string": avroString,
}

// parseAvroSchema parses s, its references first, and returns the root
// type.
func parseAvroSchema(s *Schema) (*avroType, error) {
	p := &avroParser{names: make(map[string]*avroType)}
	for _, ref := range s.References {
		if ref.Schema.Type != SchemaAvro {
			return nil, fmt.Errorf("reference %q is a %s schema, an Avro schema can only refer to Avro schemas", ref.Name, ref.Schema.Type)
		}
		if _, err := p.parseText(ref.Schema.Text); err != nil {
			return nil, fmt.Errorf("cannot parse referenced schema %q: %w", ref.Name, err)
		}
	}
	t, err := p.parseText(s.Text)
	if err != nil {
		return nil, err
	}
	t.computeMinSize()
	return t, nil
}

func (p *avroParser) parseText(text string) (*avroType, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("schema is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("schema has data after its JSON value")
	}
	return p.parse(v, "")
}

// parse builds the type v describes; ns is the enclosing namespace.
func (p *avroParser) parse(v any, ns string) (*avroType, error) {
	switch v := v.(type) {
	case string:
		return p.lookup(v, ns)
	case []any:
		return p.parseUnion(v, ns)
	case map[string]any:
		return p.parseObject(v, ns)
	}
	return nil, fmt.Errorf("a type must be a name, an object or an array, not %s", jsonKindOf(v))
}

func jsonKindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return fmt.Sprintf("%T", v)
}

func (p *avroParser) lookup(name, ns string) (*avroType, error) {
	if k, ok := avroPrimitives[name]; ok {
		return &avroType{kind: k}, nil
	}
	if !strings.Contains(name, ".") && ns != "" {
		if t, ok := p.names[ns+"."+name]; ok {
			return t, nil
		}
	}
	if t, ok := p.names[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("unknown type name %q; define it before using it or list its schema in the references", name)
}

func (p *avroParser) parseUnion(v []any, ns string) (*avroType, error) {
	t := &avroType{kind: avroUnion}
	seen := make(map[string]bool)
	for _, b := range v {
		bt, err := p.parse(b, ns)
		if err != nil {
			return nil, err
		}
		if bt.kind == avroUnion {
			return nil, fmt.Errorf("a union cannot hold a union directly")
		}
		key := avroKindNames[bt.kind]
		if bt.name != "" {
			key = bt.name
		}
		if seen[key] {
			return nil, fmt.Errorf("union holds %s twice", key)
		}
		seen[key] = true
		t.branches = append(t.branches, bt)
	}
	return t, nil
}

func (p *avroParser) parseObject(m map[string]any, ns string) (*avroType, error) {
	typ, ok := m["type"]
	if !ok {
		return nil, fmt.Errorf(`a type object needs a "type" attribute`)
	}
	name, isName := typ.(string)
	if !isName {
		// {"type": {...}} or {"type": [...]}: the attribute holds the type.
		return p.parse(typ, ns)
	}
	var t *avroType
	switch name {
	case "record", "error":
		return p.parseRecord(m, ns)
	case "enum":
		return p.parseEnum(m, ns)
	case "fixed":
		var err error
		if t, err = p.parseFixed(m, ns); err != nil {
			return nil, err
		}
	case "array":
		items, ok := m["items"]
		if !ok {
			return nil, fmt.Errorf(`an array needs "items"`)
		}
		it, err := p.parse(items, ns)
		if err != nil {
			return nil, err
		}
		t = &avroType{kind: avroArray, items: it}
	case "map":
		values, ok := m["values"]
		if !ok {
			return nil, fmt.Errorf(`a map needs "values"`)
		}
		vt, err := p.parse(values, ns)
		if err != nil {
			return nil, err
		}
		t = &avroType{kind: avroMap, items: vt}
	default:
		k, ok := avroPrimitives[name]
		if !ok {
			// A named type referenced in object form: {"type": "com.acme.Money"}.
			return p.lookup(name, ns)
		}
		t = &avroType{kind: k}
	}
	p.annotate(t, m)
	return t, nil
}

// fullName resolves a definition's name and namespace and registers t.
func (p *avroParser) define(t *avroType, m map[string]any, ns string) (string, error) {
	name, _ := m["name"].(string)
	if name == "" {
		return "", fmt.Errorf("a %s needs a name", avroKindNames[t.kind])
	}
	full := name
	switch {
	case strings.Contains(name, "."):
		ns = name[:strings.LastIndexByte(name, '.')]
	default:
		if n, ok := m["namespace"].(string); ok {
			ns = n
		}
		if ns != "" {
			full = ns + "." + name
		}
	}
	for _, part := range strings.Split(full, ".") {
		if !validAvroName(part) {
			return "", fmt.Errorf("invalid name %q: each part must match [A-Za-z_][A-Za-z0-9_]*", full)
		}
	}
	if _, ok := avroPrimitives[full]; ok {
		return "", fmt.Errorf("cannot name a type %q, a primitive type name", full)
	}
	if _, ok := p.names[full]; ok {
		return "", fmt.Errorf("type %q is defined twice", full)
	}
	t.name = full
	p.names[full] = t
	return ns, nil
}

func validAvroName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (p *avroParser) parseRecord(m map[string]any, ns string) (*avroType, error) {
	t := &avroType{kind: avroRecord}
	ns, err := p.define(t, m, ns)
	if err != nil {
		return nil, err
	}
	connectProps(t, m)
	fields, ok := m["fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("record %s needs a fields array", t.name)
	}
	seen := make(map[string]bool, len(fields))
	for _, f := range fields {
		fm, ok := f.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %s: a field must be an object", t.name)
		}
		name, _ := fm["name"].(string)
		if !validAvroName(name) {
			return nil, fmt.Errorf("record %s: invalid field name %q", t.name, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("record %s: field %q is defined twice", t.name, name)
		}
		seen[name] = true
		ft, ok := fm["type"]
		if !ok {
			return nil, fmt.Errorf("record %s: field %q has no type", t.name, name)
		}
		typ, err := p.parse(ft, ns)
		if err != nil {
			return nil, fmt.Errorf("record %s, field %s: %w", t.name, name, err)
		}
		t.fields = append(t.fields, avroField{name: name, t: typ, key: `,"` + name + `":`})
	}
	if (t.name == "io.confluent.connect.avro.MapEntry" || m["connect.internal.type"] == "MapEntry") &&
		len(t.fields) == 2 && t.fields[0].name == "key" && t.fields[1].name == "value" {
		t.mapEntry = entryPairs
		k := t.fields[0].t
		if k.kind == avroUnion && len(k.branches) == 2 {
			for _, b := range k.branches {
				if b.kind != avroNull {
					k = b
				}
			}
		}
		if k.kind == avroString || k.kind == avroEnum {
			t.mapEntry = entryObject
		}
	}
	return t, nil
}

func (p *avroParser) parseEnum(m map[string]any, ns string) (*avroType, error) {
	t := &avroType{kind: avroEnum}
	if _, err := p.define(t, m, ns); err != nil {
		return nil, err
	}
	connectProps(t, m)
	syms, ok := m["symbols"].([]any)
	if !ok {
		return nil, fmt.Errorf("enum %s needs a symbols array", t.name)
	}
	seen := make(map[string]bool, len(syms))
	for _, s := range syms {
		sym, _ := s.(string)
		if !validAvroName(sym) || seen[sym] {
			return nil, fmt.Errorf("enum %s: invalid or repeated symbol %v", t.name, s)
		}
		seen[sym] = true
		t.symbols = append(t.symbols, sym)
	}
	return t, nil
}

func (p *avroParser) parseFixed(m map[string]any, ns string) (*avroType, error) {
	t := &avroType{kind: avroFixed}
	if _, err := p.define(t, m, ns); err != nil {
		return nil, err
	}
	size, ok := intAttr(m, "size")
	if !ok || size < 0 || size > 1<<24 {
		return nil, fmt.Errorf("fixed %s needs a size between 0 and 16777216", t.name)
	}
	t.size = size
	return t, nil
}

func intAttr(m map[string]any, key string) (int, bool) {
	n, ok := m[key].(json.Number)
	if !ok {
		return 0, false
	}
	v, err := n.Int64()
	if err != nil || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, false
	}
	return int(v), true
}

// annotate sets t's logical type from m when the annotation is valid for
// t; an invalid one is ignored, as the specification requires.
func (p *avroParser) annotate(t *avroType, m map[string]any) {
	connectProps(t, m)
	lt, _ := m["logicalType"].(string)
	switch lt {
	case "decimal":
		if t.kind != avroBytes && t.kind != avroFixed {
			return
		}
		prec, ok := intAttr(m, "precision")
		if !ok || prec <= 0 {
			return
		}
		scale := 0
		if _, has := m["scale"]; has {
			if scale, ok = intAttr(m, "scale"); !ok {
				return
			}
		}
		if scale < 0 || scale > prec {
			return
		}
		if t.kind == avroFixed && float64(prec) > math.Floor(math.Log10(2)*float64(8*t.size-1)) {
			return
		}
		t.logical, t.precision, t.scale = logicalDecimal, prec, scale
	case "uuid":
		if t.kind == avroString || t.kind == avroFixed && t.size == 16 {
			t.logical = logicalUUID
		}
	case "date", "time-millis":
		if t.kind == avroInt {
			t.logical = map[string]avroLogical{"date": logicalDate, "time-millis": logicalTimeMillis}[lt]
		}
	case "time-micros", "timestamp-millis", "timestamp-micros", "timestamp-nanos",
		"local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos":
		if t.kind == avroLong {
			for l, n := range avroLogicalNames {
				if n == lt {
					t.logical = avroLogical(l)
				}
			}
		}
	case "duration":
		if t.kind == avroFixed && t.size == 12 {
			t.logical = logicalDuration
		}
	}
}

// connectProps keeps the Kafka Connect properties of m on t.
func connectProps(t *avroType, m map[string]any) {
	t.connectName, _ = m["connect.name"].(string)
	t.connectType, _ = m["connect.type"].(string)
	if ps, ok := m["connect.parameters"].(map[string]any); ok {
		for k, v := range ps {
			if s, ok := v.(string); ok {
				if t.connectParams == nil {
					t.connectParams = make(map[string]string, len(ps))
				}
				t.connectParams[k] = s
			}
		}
	}
}

// computeMinSize fills minSize below t.
func (t *avroType) computeMinSize() int {
	if t.sizing || t.sized {
		return t.minSize
	}
	defer func() { t.sized = true }()
	switch t.kind {
	case avroNull:
		t.minSize = 0
	case avroFloat:
		t.minSize = 4
	case avroDouble:
		t.minSize = 8
	case avroFixed:
		t.minSize = t.size
	case avroRecord:
		t.sizing = true
		n := 0
		for _, f := range t.fields {
			n += f.t.computeMinSize()
		}
		t.sizing = false
		t.minSize = n
	case avroArray, avroMap:
		t.items.computeMinSize()
		t.minSize = 1
	case avroUnion:
		for _, b := range t.branches {
			b.computeMinSize()
		}
		t.minSize = 1
	default:
		t.minSize = 1
	}
	return t.minSize
}
