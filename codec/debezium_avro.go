package codec

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The text below documents ConverterAvro for the package comment.
//
// # Debezium change events in Avro
//
// With Options.Converter ConverterAvro, FormatDebezium reads change
// events written by Confluent's AvroConverter: values (and keys) framed
// for a Schema Registry (magic byte 0 or 1 and the schema id or GUID, or
// the __value_schema_id and __key_schema_id headers), whose writer schema
// is Debezium's Envelope record. The decoder asks for writer schemas as
// the registry formats do (SchemaNeededError, AddSchema, AddKeySchema),
// and converts each datum to the event Kafka Connect's JsonConverter
// writes for it, {"schema": <Connect schema>, "payload": <envelope>},
// which it then reads exactly as a JsonConverter event: every op, guard,
// delete, placeholder and encoding rule is the same. Unless a kafka.value
// column reads the event, only the payload is written, and read with the
// plan compiled from the writer schema's Connect schema: the schema text
// is neither copied nor compared per record. Unless a kafka.value or
// kafka.unmapped column reads them, the payload holds only the fields the
// columns' paths reach (connectRecord); the others are validated against
// the writer schema, strings but for their UTF-8, as FormatAvro does.
//
// The Connect schema is derived once per writer schema from the Avro
// types and the Connect properties AvroConverter puts on them
// (connect.name, connect.parameters, connect.type): a record is a struct,
// a union of null and one type that type (optional), int an int32 (or the
// connect.type int8 or int16), long int64, double float64, bytes and fixed
// bytes, an enum a string, a map with string keys a map, and an array of
// the key/value records AvroConverter writes other Connect maps as
// (io.confluent.connect.avro.MapEntry) a map again. Where an Avro
// type has no connect.name its logical type names the Connect type:
// decimal (Decimal with its scale), date (Date), time-millis (Time),
// timestamp-millis (Timestamp), time-micros (io.debezium.time.MicroTime),
// timestamp-micros and local-timestamp-micros (MicroTimestamp),
// timestamp-nanos and local-timestamp-nanos (NanoTimestamp). The payload
// is the datum as JsonConverter writes it: unions unwrapped, bytes, fixed
// and Decimals in base64, enums by symbol, NaN and the infinities as the
// strings "NaN", "Infinity" and "-Infinity", maps of MapEntry records
// as an object when the keys are strings (a null key "null"), else as
// [key, value] pairs. A union of several non-null
// types becomes the value of its branch, with a schema that names no
// encoding. The conversion reuses its buffer: the steady state allocates
// nothing.
//
// A delete whose before lacks a key column reads the record key: a framed
// key is decoded with its own writer schema (Debezium's Key record of the
// primary key columns) and converted the same way; an unframed key is
// read as JSON. A value whose datum does not match its writer schema is
// ReasonSchemaMismatch, an unknown schema ReasonUnknownSchema, bad
// framing ReasonBadFraming, as in the registry formats. kafka.value
// columns (of any type) read the converted event.
//
// DebeziumAvroFields lists the columns a table of an Envelope's rows
// needs, typed by the fields' Connect types (a field of type null types
// none), and DebeziumAvroKey the primary key a Key schema names: the
// table created from the registry, and the columns evolution adds for a
// new Envelope version.

// Converter names the Kafka Connect converter that wrote FormatDebezium
// records.
type Converter uint8

// Converters.
const (
	ConverterJSON Converter = iota // org.apache.kafka.connect.json.JsonConverter
	ConverterAvro                  // io.confluent.connect.avro.AvroConverter with a Schema Registry
)

var converterNames = [...]string{ConverterJSON: "json", ConverterAvro: "avro"}

// String returns the configuration name of c.
func (c Converter) String() string {
	if int(c) < len(converterNames) {
		return converterNames[c]
	}
	return "Converter(" + strconv.Itoa(int(c)) + ")"
}

// ParseConverter returns the Converter for a configuration name: json
// (also the empty string) or avro.
func ParseConverter(name string) (Converter, error) {
	switch name {
	case "", "json":
		return ConverterJSON, nil
	case "avro":
		return ConverterAvro, nil
	}
	return 0, fmt.Errorf("unknown converter %q; use json (JsonConverter) or avro (Confluent's AvroConverter with a Schema Registry)", name)
}

// maxConnectDepth bounds the nesting of a Connect schema derived from an
// Avro schema.
const maxConnectDepth = 64

// dbzAvro is the state of a FormatDebezium decoder with ConverterAvro.
type dbzAvro struct {
	keySchemas schemaCache // key writer schemas, apart from d.schemas
	keyIndexes []int
	value      connectWriter
	key        connectWriter
	// event says a kafka.value column reads the converted event, which
	// is then written whole; otherwise values are converted to their
	// payload alone, read with the plan of their writer schema.
	event bool
	// prune says the payload is written with only the fields the
	// columns' paths reach (connectRecord): no kafka.value or
	// kafka.unmapped column reads the rest.
	prune bool
}

// connectRecord converts a record with only the fields a decoder's
// paths reach: the others are skipped (validated, not written).
type connectRecord struct {
	fields []connectField // in the record's order
}

type connectField struct {
	t      *avroType
	name   string
	key    string         // `,"name":`, or `"name":` for the first field written
	skip   bool           // no path reaches the field
	rec    *connectRecord // non-nil: the field is a record (or a union of null and a record) written pruned
	branch int            // the record's branch in a union; -1 for a record
}

// pruneRecord returns the conversion of record t below node n. A field is
// skipped when n has no child of its name, written pruned when it is a
// record whose child node has children but no slot (or only an
// envelope's before or after slot, which reads nothing but whether it is
// an object), and written whole otherwise.
func pruneRecord(t *avroType, n *node, z *debezium) *connectRecord {
	r := &connectRecord{fields: make([]connectField, len(t.fields))}
	first := true
	for i := range t.fields {
		f := &t.fields[i]
		cf := connectField{t: f.t, name: f.name, branch: -1}
		var c *node
		for _, ch := range n.children {
			if ch.name == f.name {
				c = ch
			}
		}
		switch {
		case c == nil:
			cf.skip = true
		case len(c.children) > 0 && (c.slot < 0 || c.slot == z.wrapped.before || c.slot == z.wrapped.after):
			rt, b := f.t, -1
			if rt.kind == avroUnion && len(rt.branches) == 2 {
				for j, br := range rt.branches {
					if br.kind != avroNull {
						rt, b = br, j
					}
				}
			}
			if rt.kind == avroRecord {
				cf.rec, cf.branch = pruneRecord(rt, c, z), b
			}
		}
		if !cf.skip {
			cf.key = f.key
			if first {
				cf.key, first = f.key[1:], false
			}
		}
		r.fields[i] = cf
	}
	return r
}

// connectPlan converts the datums of one Avro writer schema.
type connectPlan struct {
	root   *avroType
	head   []byte         // `{"schema":` + the Connect schema + `,"payload":`
	dbz    *dbzPlan       // what the Connect schema says about the columns (value schemas)
	pruned *connectRecord // the payload's conversion with dbzAvro.prune
}

// connectSchemaText returns the Connect schema in p.head.
func (p *connectPlan) connectSchemaText() []byte {
	return p.head[len(wrapperHead) : len(p.head)-len(payloadHead)]
}

// compileConnectPlan derives the Connect schema of an Avro writer schema.
func compileConnectPlan(s *Schema) (*connectPlan, error) {
	t, err := parseAvroSchema(s)
	if err != nil {
		return nil, err
	}
	head := []byte(`{"schema":`)
	head, err = appendConnectSchema(head, t, "", false, make(map[*avroType]bool))
	if err != nil {
		return nil, err
	}
	return &connectPlan{root: t, head: append(head, `,"payload":`...)}, nil
}

// connectLogicalNames names the Connect type of an Avro logical type, for
// types without connect.name.
var connectLogicalNames = map[avroLogical]string{
	logicalDecimal:              "org.apache.kafka.connect.data.Decimal",
	logicalDate:                 "org.apache.kafka.connect.data.Date",
	logicalTimeMillis:           "org.apache.kafka.connect.data.Time",
	logicalTimestampMillis:      "org.apache.kafka.connect.data.Timestamp",
	logicalTimeMicros:           "io.debezium.time.MicroTime",
	logicalTimestampMicros:      "io.debezium.time.MicroTimestamp",
	logicalTimestampNanos:       "io.debezium.time.NanoTimestamp",
	logicalLocalTimestampMillis: "org.apache.kafka.connect.data.Timestamp",
	logicalLocalTimestampMicros: "io.debezium.time.MicroTimestamp",
	logicalLocalTimestampNanos:  "io.debezium.time.NanoTimestamp",
}

// connectTypeName is the name of t's Connect type: its connect.name, or
// the name its logical type gives it; "" for neither.
func (t *avroType) connectTypeName() string {
	if t.connectName != "" {
		return t.connectName
	}
	return connectLogicalNames[t.logical]
}

// appendConnectSchema appends the Connect schema of t as JsonConverter
// writes it; field names the field it describes ("" for the root), and
// open holds the records being written (Connect schemas cannot recurse).
func appendConnectSchema(dst []byte, t *avroType, field string, optional bool, open map[*avroType]bool) ([]byte, error) {
	if len(open) > maxConnectDepth {
		return dst, fmt.Errorf("the schema nests records more than %d deep", maxConnectDepth)
	}
	if t.kind == avroUnion {
		var nonNull []*avroType
		for _, b := range t.branches {
			if b.kind == avroNull {
				optional = true
			} else {
				nonNull = append(nonNull, b)
			}
		}
		switch len(nonNull) {
		case 0:
			t = &avroType{kind: avroNull}
		case 1:
			t = nonNull[0]
		default:
			// Several types: the payload is the branch's value, whose
			// schema says nothing to decode it by.
			dst = append(dst, `{"type":"struct","fields":[],"optional":`...)
			dst = strconv.AppendBool(dst, optional)
			dst = append(dst, `,"name":"io.confluent.connect.avro.Union"`...)
			return appendConnectField(dst, field), nil
		}
	}
	dst = append(dst, `{"type":`...)
	var err error
	switch t.kind {
	case avroNull:
		dst = append(dst, `"string"`...) // only ever null
		optional = true
	case avroBoolean:
		dst = append(dst, `"boolean"`...)
	case avroInt:
		if t.connectType == "int8" || t.connectType == "int16" {
			dst = appendJSONString(dst, t.connectType)
		} else {
			dst = append(dst, `"int32"`...)
		}
	case avroLong:
		dst = append(dst, `"int64"`...)
	case avroFloat:
		dst = append(dst, `"float"`...)
	case avroDouble:
		dst = append(dst, `"double"`...)
	case avroString, avroEnum:
		dst = append(dst, `"string"`...)
	case avroBytes, avroFixed:
		dst = append(dst, `"bytes"`...)
	case avroArray:
		if e := t.items; e.mapEntry != entryNone {
			// A Connect map AvroConverter writes as key/value records.
			dst = append(dst, `"map","keys":`...)
			if dst, err = appendConnectSchema(dst, e.fields[0].t, "", false, open); err != nil {
				return dst, err
			}
			dst = append(dst, `,"values":`...)
			if dst, err = appendConnectSchema(dst, e.fields[1].t, "", false, open); err != nil {
				return dst, err
			}
			break
		}
		dst = append(dst, `"array","items":`...)
		if dst, err = appendConnectSchema(dst, t.items, "", false, open); err != nil {
			return dst, err
		}
	case avroMap:
		dst = append(dst, `"map","keys":{"type":"string","optional":false},"values":`...)
		if dst, err = appendConnectSchema(dst, t.items, "", false, open); err != nil {
			return dst, err
		}
	case avroRecord:
		if open[t] {
			return dst, fmt.Errorf("record %s refers to itself, which a Kafka Connect schema cannot", t.name)
		}
		open[t] = true
		dst = append(dst, `"struct","fields":[`...)
		for i := range t.fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = appendConnectSchema(dst, t.fields[i].t, t.fields[i].name, false, open); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
		delete(open, t)
	}
	dst = append(dst, `,"optional":`...)
	dst = strconv.AppendBool(dst, optional)
	name, params := t.connectTypeName(), t.connectParams
	if name == "" && t.kind == avroRecord {
		name = t.name
	}
	if t.logical == logicalDecimal && name == "org.apache.kafka.connect.data.Decimal" {
		if _, ok := params["scale"]; !ok {
			params = map[string]string{"scale": strconv.Itoa(t.scale)}
			for k, v := range t.connectParams {
				params[k] = v
			}
		}
	}
	if name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendJSONString(dst, name)
	}
	if len(params) > 0 {
		dst = append(dst, `,"parameters":{`...)
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONString(dst, params[k])
		}
		dst = append(dst, '}')
	}
	return appendConnectField(dst, field), nil
}

func appendConnectField(dst []byte, field string) []byte {
	if field != "" {
		dst = append(dst, `,"field":`...)
		dst = appendJSONString(dst, field)
	}
	return append(dst, '}')
}

// connectWriter writes datums as JsonConverter payloads into a buffer it
// reuses.
type connectWriter struct {
	out       []byte
	data      []byte
	max       int // bound of the converted event
	limit     int // bound of out in this conversion
	maxDepth  int
	zeroItems int64 // array and map items that take no bytes, left for the datum
	errPos    int
	errDetail string
	errReason Reason
	errPath   []string // innermost first
}

func (w *connectWriter) fail(pos int, detail string) bool {
	return w.failWith(ReasonSchemaMismatch, pos, detail)
}

func (w *connectWriter) failWith(reason Reason, pos int, detail string) bool {
	w.errReason, w.errPos, w.errDetail = reason, pos, detail
	w.errPath = w.errPath[:0]
	return false
}

// convert writes payload, a datum of plan's schema, as the JsonConverter
// event {"schema": ..., "payload": ...} (with head) or as its payload
// alone, and returns it; the result is valid until the next convert.
// The bound on the event is the same either way.
func (w *connectWriter) convert(plan *connectPlan, payload []byte, what string, head bool) ([]byte, *RowError) {
	w.data = payload
	w.zeroItems = int64(len(payload)) + 1024
	if head {
		w.limit = w.max
		w.out = append(w.out[:0], plan.head...)
	} else {
		w.limit = w.max - len(plan.head) - 1
		w.out = w.out[:0]
	}
	var pos int
	var ok bool
	if plan.pruned != nil && !head {
		pos, ok = w.writePruned(plan.pruned, 0, 0)
	} else {
		pos, ok = w.write(plan.root, 0, 0)
	}
	if ok && pos != len(payload) {
		ok = w.fail(pos, fmt.Sprintf("%d bytes left after the datum", len(payload)-pos))
	}
	w.data = nil
	if !ok {
		path := make([]string, len(w.errPath))
		for i, s := range w.errPath {
			path[len(path)-1-i] = s
		}
		return nil, &RowError{Path: strings.Join(path, "."), Reason: w.errReason,
			Detail: fmt.Sprintf("%s at byte %d of the Avro %s (%d bytes)", w.errDetail, w.errPos, what, len(payload))}
	}
	if head {
		w.out = append(w.out, '}')
	}
	return w.out, nil
}

// branch reads the branch index of union t at pos and returns the
// branch's type and where its value starts.
func (w *connectWriter) branch(t *avroType, pos int) (*avroType, int, bool) {
	b, next, ok := readVarlong(w.data, pos)
	if !ok {
		return nil, pos, w.fail(pos, "truncated or overlong union branch index")
	}
	if b < 0 || b >= int64(len(t.branches)) {
		return nil, pos, w.fail(pos, fmt.Sprintf("union branch index %d out of range for %s", b, t))
	}
	return t.branches[b], next, true
}

// bytes reads the length-prefixed bytes or string at pos and returns
// where they start and end.
func (w *connectWriter) bytes(pos int) (int, int, bool) {
	n, next, ok := readVarlong(w.data, pos)
	switch {
	case !ok:
		return 0, pos, w.fail(pos, "truncated or overlong length")
	case n < 0:
		return 0, pos, w.fail(pos, fmt.Sprintf("negative length %d", n))
	case n > int64(len(w.data)-next):
		return 0, pos, w.fail(pos, fmt.Sprintf("length %d runs past the end of the payload", n))
	}
	return next, next + int(n), true
}

// write appends the JSON of the value of type t at pos and returns the
// position after it.
func (w *connectWriter) write(t *avroType, pos, depth int) (int, bool) {
	if len(w.out) > w.limit {
		return pos, w.failWith(ReasonOversized, pos, fmt.Sprintf("the event converted to JSON takes more than %d bytes", w.max))
	}
	d := w.data
	switch t.kind {
	case avroNull:
		w.out = append(w.out, "null"...)
		return pos, true
	case avroBoolean:
		if pos >= len(d) || d[pos] > 1 {
			return pos, w.fail(pos, "truncated or invalid boolean")
		}
		if d[pos] == 1 {
			w.out = append(w.out, "true"...)
		} else {
			w.out = append(w.out, "false"...)
		}
		return pos + 1, true
	case avroInt, avroLong, avroEnum:
		x, next, ok := readVarlong(d, pos)
		if !ok {
			return pos, w.fail(pos, "truncated or overlong "+avroKindNames[t.kind])
		}
		switch t.kind {
		case avroInt:
			if x < math.MinInt32 || x > math.MaxInt32 {
				return pos, w.fail(pos, fmt.Sprintf("int %d out of range", x))
			}
		case avroEnum:
			if x < 0 || x >= int64(len(t.symbols)) {
				return pos, w.fail(pos, fmt.Sprintf("enum index %d out of range for %s", x, t.name))
			}
			w.out = append(w.out, '"')
			w.out = append(w.out, t.symbols[x]...)
			w.out = append(w.out, '"')
			return next, true
		}
		w.out = appendInt(w.out, x)
		return next, true
	case avroFloat:
		if len(d)-pos < 4 {
			return pos, w.fail(pos, "truncated float")
		}
		w.out = appendJSONFloat(w.out, float64(math.Float32frombits(binary.LittleEndian.Uint32(d[pos:]))), 32)
		return pos + 4, true
	case avroDouble:
		if len(d)-pos < 8 {
			return pos, w.fail(pos, "truncated double")
		}
		w.out = appendJSONFloat(w.out, math.Float64frombits(binary.LittleEndian.Uint64(d[pos:])), 64)
		return pos + 8, true
	case avroString, avroBytes, avroFixed:
		start, end := pos, pos+t.size
		if t.kind != avroFixed {
			var ok bool
			if start, end, ok = w.bytes(pos); !ok {
				return pos, false
			}
		} else if end > len(d) {
			return pos, w.fail(pos, fmt.Sprintf("fixed %s of %d bytes runs past the end of the payload", t.name, t.size))
		}
		if t.kind == avroString {
			var reason Reason
			var detail string
			if w.out, reason, detail = appendJSONText(w.out, d[start:end], false); reason != "" {
				return pos, w.failWith(reason, pos, detail)
			}
			return end, true
		}
		w.out = append(w.out, '"')
		w.out = base64.StdEncoding.AppendEncode(w.out, d[start:end])
		w.out = append(w.out, '"')
		return end, true
	case avroUnion:
		bt, next, ok := w.branch(t, pos)
		if !ok {
			return pos, false
		}
		return w.write(bt, next, depth)
	case avroRecord:
		if depth >= w.maxDepth {
			return pos, w.failWith(ReasonMalformedJSON, pos, fmt.Sprintf("nested deeper than %d levels", w.maxDepth))
		}
		w.out = append(w.out, '{')
		for i := range t.fields {
			f := &t.fields[i]
			if i > 0 {
				w.out = append(w.out, f.key...)
			} else {
				w.out = append(w.out, f.key[1:]...)
			}
			var ok bool
			if pos, ok = w.write(f.t, pos, depth+1); !ok {
				w.errPath = append(w.errPath, f.name)
				return pos, false
			}
		}
		w.out = append(w.out, '}')
		return pos, true
	case avroArray, avroMap:
		if depth >= w.maxDepth {
			return pos, w.failWith(ReasonMalformedJSON, pos, fmt.Sprintf("nested deeper than %d levels", w.maxDepth))
		}
		isMap := t.kind == avroMap
		entries := entryNone
		if !isMap {
			entries = t.items.mapEntry
		}
		if isMap || entries == entryObject {
			w.out = append(w.out, '{')
		} else {
			w.out = append(w.out, '[')
		}
		first := true
		for {
			count, next, ok := readVarlong(d, pos)
			if !ok {
				return pos, w.fail(pos, "truncated or overlong block count")
			}
			if count == 0 {
				pos = next
				break
			}
			if count < 0 {
				if count == math.MinInt64 {
					return pos, w.fail(pos, "invalid block count")
				}
				count = -count
				size, n2, ok := readVarlong(d, next)
				if !ok || size < 0 || size > int64(len(d)-n2) {
					return pos, w.fail(next, "invalid block byte size")
				}
				next = n2
			}
			itemMin := t.items.minSize
			if isMap {
				itemMin++
			}
			if itemMin > 0 {
				if count > int64(len(d)-next)/int64(itemMin) {
					return pos, w.fail(pos, fmt.Sprintf("block count %d exceeds what the bytes left can hold", count))
				}
			} else {
				if count > w.zeroItems {
					return pos, w.fail(pos, fmt.Sprintf("block count %d takes the datum past %d items that take no bytes", count, int64(len(d))+1024))
				}
				w.zeroItems -= count
			}
			pos = next
			for range count {
				if !first {
					w.out = append(w.out, ',')
				}
				first = false
				if isMap {
					n, next, ok := readVarlong(d, pos)
					if !ok || n < 0 || n > int64(len(d)-next) {
						return pos, w.fail(pos, "invalid map key length")
					}
					var reason Reason
					var detail string
					if w.out, reason, detail = appendJSONText(w.out, d[next:next+int(n)], false); reason != "" {
						return pos, w.failWith(reason, pos, "map key: "+detail)
					}
					w.out = append(w.out, ':')
					pos = next + int(n)
				}
				if entries != entryNone {
					if pos, ok = w.writeEntry(t.items, entries, pos, depth+1); !ok {
						return pos, false
					}
					continue
				}
				if pos, ok = w.write(t.items, pos, depth+1); !ok {
					return pos, false
				}
			}
		}
		if isMap || entries == entryObject {
			w.out = append(w.out, '}')
		} else {
			w.out = append(w.out, ']')
		}
		return pos, true
	}
	return pos, w.fail(pos, "unsupported type "+t.String())
}

// writePruned appends the JSON of the record at pos with r's fields.
func (w *connectWriter) writePruned(r *connectRecord, pos, depth int) (int, bool) {
	if depth >= w.maxDepth {
		return pos, w.failWith(ReasonMalformedJSON, pos, fmt.Sprintf("nested deeper than %d levels", w.maxDepth))
	}
	w.out = append(w.out, '{')
	for i := range r.fields {
		f := &r.fields[i]
		var ok bool
		switch {
		case f.skip:
			pos, ok = w.skip(f.t, pos, depth+1)
		case f.rec == nil:
			w.out = append(w.out, f.key...)
			pos, ok = w.write(f.t, pos, depth+1)
		case f.branch < 0:
			w.out = append(w.out, f.key...)
			pos, ok = w.writePruned(f.rec, pos, depth+1)
		default:
			w.out = append(w.out, f.key...)
			var b int64
			var next int
			if b, next, ok = readVarlong(w.data, pos); !ok || b < 0 || b > 1 {
				ok = w.fail(pos, fmt.Sprintf("invalid union branch index for %s", f.t))
			} else if int(b) == f.branch {
				pos, ok = w.writePruned(f.rec, next, depth+1)
			} else {
				pos, ok = w.write(f.t.branches[b], next, depth+1)
			}
		}
		if !ok {
			w.errPath = append(w.errPath, f.name)
			return pos, false
		}
	}
	if len(w.out) > w.limit {
		return pos, w.failWith(ReasonOversized, pos, fmt.Sprintf("the event converted to JSON takes more than %d bytes", w.max))
	}
	w.out = append(w.out, '}')
	return pos, true
}

// skip validates the value of type t at pos, as write does but for the
// text of strings (no column reads it), and returns the position after
// it without writing it.
func (w *connectWriter) skip(t *avroType, pos, depth int) (int, bool) {
	d := w.data
	switch t.kind {
	case avroNull:
		return pos, true
	case avroBoolean:
		if pos >= len(d) || d[pos] > 1 {
			return pos, w.fail(pos, "truncated or invalid boolean")
		}
		return pos + 1, true
	case avroInt, avroLong, avroEnum:
		x, next, ok := readVarlong(d, pos)
		switch {
		case !ok:
			return pos, w.fail(pos, "truncated or overlong "+avroKindNames[t.kind])
		case t.kind == avroInt && (x < math.MinInt32 || x > math.MaxInt32):
			return pos, w.fail(pos, fmt.Sprintf("int %d out of range", x))
		case t.kind == avroEnum && (x < 0 || x >= int64(len(t.symbols))):
			return pos, w.fail(pos, fmt.Sprintf("enum index %d out of range for %s", x, t.name))
		}
		return next, true
	case avroFloat, avroDouble, avroFixed:
		n := t.size
		if t.kind == avroFloat {
			n = 4
		} else if t.kind == avroDouble {
			n = 8
		}
		if len(d)-pos < n {
			return pos, w.fail(pos, "truncated "+avroKindNames[t.kind])
		}
		return pos + n, true
	case avroString, avroBytes:
		_, end, ok := w.bytes(pos)
		if !ok {
			return pos, false
		}
		return end, true
	case avroUnion:
		bt, next, ok := w.branch(t, pos)
		if !ok {
			return pos, false
		}
		return w.skip(bt, next, depth)
	case avroRecord:
		if depth >= w.maxDepth {
			return pos, w.failWith(ReasonMalformedJSON, pos, fmt.Sprintf("nested deeper than %d levels", w.maxDepth))
		}
		for i := range t.fields {
			var ok bool
			if pos, ok = w.skip(t.fields[i].t, pos, depth+1); !ok {
				w.errPath = append(w.errPath, t.fields[i].name)
				return pos, false
			}
		}
		return pos, true
	}
	// Arrays and maps (rare where no path reaches): written and dropped.
	mark := len(w.out)
	pos, ok := w.write(t, pos, depth)
	w.out = w.out[:mark]
	return pos, ok
}

// writeEntry appends an entry of a Connect map written as key/value
// records (see avroType.mapEntry) as JsonConverter writes it: "key":value
// in an object (a null key as "null"), or [key,value].
func (w *connectWriter) writeEntry(e *avroType, mode uint8, pos, depth int) (int, bool) {
	if depth >= w.maxDepth {
		return pos, w.failWith(ReasonMalformedJSON, pos, fmt.Sprintf("nested deeper than %d levels", w.maxDepth))
	}
	if mode == entryPairs {
		w.out = append(w.out, '[')
	}
	start := len(w.out)
	pos, ok := w.write(e.fields[0].t, pos, depth+1)
	if !ok {
		w.errPath = append(w.errPath, "key")
		return pos, false
	}
	if mode == entryObject {
		if string(w.out[start:]) == "null" {
			w.out = append(w.out[:start], `"null"`...)
		}
		w.out = append(w.out, ':')
	} else {
		w.out = append(w.out, ',')
	}
	if pos, ok = w.write(e.fields[1].t, pos, depth+1); !ok {
		w.errPath = append(w.errPath, "value")
		return pos, false
	}
	if mode == entryPairs {
		w.out = append(w.out, ']')
	}
	return pos, true
}

// connectValue returns rec's value (value, decompressed) converted to a
// JsonConverter event, or to its payload alone with the plan of the
// event's schema when no column reads the event, or the error that stops
// it: errSchemaNeeded when the decoder lacks the writer schema.
func (d *Decoder) connectValue(rec *Record, value []byte) ([]byte, *dbzPlan, *RowError) {
	var f framing
	if len(rec.Headers) == 0 && len(value) >= 5 && value[0] == magicID {
		f.ref.ID = int32(binary.BigEndian.Uint32(value[1:]))
		f.payload = value[5:]
	} else {
		var rerr *RowError
		if f, rerr = parseFraming(rec, value, false, nil); rerr != nil {
			return nil, nil, rerr
		}
	}
	e, rerr := d.entry(&d.schemas, &f, false)
	if rerr != nil {
		return nil, nil, rerr
	}
	z := d.dbzAvro
	if z.event {
		out, rerr := z.value.convert(e.connect, f.payload, "payload", true)
		return out, nil, rerr
	}
	out, rerr := z.value.convert(e.connect, f.payload, "payload", false)
	return out, e.connect.dbz, rerr
}

// connectKey returns rec's framed key converted to a JsonConverter key
// ({"schema": ..., "payload": {<key columns>}}).
func (d *Decoder) connectKey(rec *Record) ([]byte, *RowError) {
	z := d.dbzAvro
	key := rec.Key
	var f framing
	if len(rec.Headers) == 0 && len(key) >= 5 && key[0] == magicID {
		f.ref.ID = int32(binary.BigEndian.Uint32(key[1:]))
		f.payload = key[5:]
	} else {
		var rerr *RowError
		if f, rerr = parseFramingOf(rec, key, &keySide, false, z.keyIndexes); rerr != nil {
			keyPathError(rerr)
			return nil, rerr
		}
		z.keyIndexes = f.indexes
	}
	e, rerr := d.entry(&z.keySchemas, &f, true)
	if rerr != nil {
		return nil, rerr
	}
	out, rerr := z.key.convert(e.connect, f.payload, "key", true)
	if rerr != nil {
		keyPathError(rerr)
	}
	return out, rerr
}
