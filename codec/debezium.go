package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// The text below documents change streams and FormatDebezium for the
// package comment.
//
// # Change streams
//
// Decoder.Op says what each accepted record means: OpUpsert (every record
// of FormatJSON and FormatRaw), OpDelete, OpTruncate or OpSkip; the last
// two append nothing. A delete's tuple holds the key columns
// (Column.Key), kafka.* and debezium.* source columns; its other path
// columns are NULL. With Options.Deletes a FormatJSON tombstone is a
// delete whose key columns are read from the record key: an object key by
// the key columns' paths, a scalar or non-JSON key into the single key
// column (rules at Decoder.Op); a tombstone without a usable key is
// ReasonBadKey. Decoder.Unchanged names the columns whose stored value the
// writer must keep.
//
// # Debezium change events
//
// FormatDebezium reads the change events Debezium connectors write with
// Kafka Connect's JsonConverter, with the schema wrapper
// ({"schema": ..., "payload": <envelope>}, schemas.enable=true) or
// without it (the envelope alone). The envelope is
// {"before": row|null, "after": row|null, "source": {...}, "op": "c",
// "ts_ms": ..., "transaction": {...}|null}. The value is parsed and
// validated once, like a FormatJSON value (content-encoding included),
// and Decoder.Op says what it means:
//
//   - op c (create), r (snapshot read), u (update): OpUpsert, the row
//     taken from after, which must be an object.
//   - op d: OpDelete. The key columns (Column.Key) are read from before,
//     and, where before is null or lacks them, from the record key, which
//     Debezium writes as a JSON object of the key columns, with or without
//     the schema wrapper (it is read as described at Decoder.Op). Other
//     path columns are NULL. No usable key is ReasonBadKey.
//   - op t (truncate): OpTruncate; op m (logical decoding message) and a
//     tombstone (the null value following each delete, or a payload of
//     null): OpSkip. Nothing is appended for these.
//   - no op, an op that is not one of these, or c/r/u without after is
//     ReasonBadEnvelope; the schema wrapper without a payload too.
//
// Column.Path is relative to the row: path id reads after.id (before.id
// for deletes). Source columns read the envelope: debezium.op (text),
// debezium.ts_ms and debezium.source.ts_ms (milliseconds since the epoch:
// int8, numeric, timestamptz, timestamp), debezium.source.lsn (int8,
// numeric), debezium.source.db, debezium.source.schema,
// debezium.source.table and debezium.transaction.id (text); NULL where the
// connector does not write the field. kafka.* sources work as in any
// format; they and debezium.* sources are filled for deletes too.
//
// Values convert as in FormatJSON, with Debezium's encodings on top. With
// the schema wrapper each field's schema name says how its value is
// encoded (compiled once per distinct schema text, so the steady state
// allocates nothing):
//
//   - org.apache.kafka.connect.data.Decimal (parameters.scale): base64 of
//     the big-endian two's complement unscaled value. numeric gets it
//     exactly, at that scale; float4/float8 correctly rounded; int2, int4,
//     int8 when integral; text, json, jsonb its decimal text. A JSON number
//     (JsonConverter's decimal.format=NUMERIC) converts as a number.
//   - io.debezium.data.VariableScaleDecimal: {"scale": n, "value":
//     base64}, converted the same way.
//   - io.debezium.time.Date, org.apache.kafka.connect.data.Date: days
//     since 1970-01-01, to date, timestamp/timestamptz (midnight UTC) or
//     text (YYYY-MM-DD).
//   - io.debezium.time.Timestamp, MicroTimestamp, NanoTimestamp and
//     org.apache.kafka.connect.data.Timestamp: ms, µs, ns since the epoch
//     (the database's wall clock, taken as UTC) to timestamp/timestamptz
//     (ns rounded half to even), date (the day) or text (YYYY-MM-DD
//     HH:MM:SS[.ffffff]).
//   - io.debezium.time.Time, MicroTime, NanoTime and
//     org.apache.kafka.connect.data.Time: ms, µs, ns since midnight to
//     text HH:MM:SS[.ffffff] (hours may pass 23 and be negative, as MySQL
//     TIME allows).
//   - io.debezium.data.Json: a string holding JSON text, which json and
//     jsonb columns store as that JSON (validated).
//   - io.debezium.time.ZonedTimestamp and other string types convert as
//     strings do in FormatJSON.
//
// Integer, numeric and float columns take every number as written (a
// MicroTime in an int8 column stays microseconds). Without the schema
// wrapper the encodings are inferred where that is safe: a number in a
// date column is days since 1970-01-01, an object {scale, value} in a
// numeric, float or integer column a VariableScaleDecimal, a string in a
// json or jsonb column JSON text; an integer in a timestamp column ms
// below 1e14, µs below 1e17, ns above (Debezium sends no seconds, so a µs
// or ns value before 1973-03-03 is misread), and base64 Decimals cannot
// be told from strings (use the schema wrapper or decimal.handling.mode
// string or double).
//
// PostgreSQL's infinities as Debezium's PostgreSQL connector sends them
// (the epoch numbers 9223372036825200000 and -9223372036832400000, in
// NanoTimestamp the int64 limits, and the strings "infinity" and
// "-infinity") are infinity and -infinity in timestamp, timestamptz,
// date and text columns.
//
// A column whose value is Debezium's unavailable-value placeholder
// __debezium_unavailable_value (or its base64 form, for binary columns;
// a one-element array of it, or the array of its bytes, for array
// columns; a map of it to itself, as an object or a string, for hstore
// columns: a TOASTed value the change did not touch) is NULL in the
// tuple and reported by Decoder.Unchanged, so the writer keeps the
// stored value.

// unavailableValue is Debezium's default unavailable.value.placeholder.
const unavailableValue = "__debezium_unavailable_value"

// unavailableBase64 is the placeholder as binary columns carry it.
var unavailableBase64 = base64.StdEncoding.EncodeToString([]byte(unavailableValue))

// The placeholder in the other shapes Debezium's PostgreSQL connector
// gives it, compact: a text[] column's one-element array, an int[] or
// bigint[] column's array of the placeholder's bytes, and an hstore
// column's map of the placeholder to itself (an object, or under
// hstore.handling.mode json a string holding it).
var (
	unavailableTextArray = `["` + unavailableValue + `"]`
	unavailableIntArray  = func() string {
		b := []byte{'['}
		for i := 0; i < len(unavailableValue); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(unavailableValue[i]), 10)
		}
		return string(append(b, ']'))
	}()
	unavailableHstore = `{"` + unavailableValue + `":"` + unavailableValue + `"}`
)

// PostgreSQL's timestamp infinities as Debezium's PostgreSQL connector
// sends them in epoch encodings (the JDBC driver's
// DATE_POSITIVE_INFINITY and DATE_NEGATIVE_INFINITY; in NanoTimestamp
// also the int64 limits).
const (
	dbzPosInfinity int64 = 9223372036825200000
	dbzNegInfinity int64 = -9223372036832400000
)

// maxPlans bounds the cache of compiled envelope schemas; past it the
// cache starts over.
const maxPlans = 64

// maxDbzDecimalBytes bounds the unscaled value of a decimal: 61,300 bytes hold
// every value numeric can store (131072 digits before the point and 16383
// after), and bound the quadratic base conversion.
const maxDbzDecimalBytes = 61_300

// debezium is the state of a FormatDebezium decoder.
type debezium struct {
	bare, wrapped   envelope // slots of the envelope alone, and below "payload"
	payload, schema int      // slots of the wrapper's fields
	payloadNode     *node    // the path tree below "payload"

	keyPaths int  // key columns read from the row
	keyKafka bool // a key column reads kafka.key

	sub parser // VariableScaleDecimal structs and JSON held in strings
	vsd *node  // sub's paths for a VariableScaleDecimal: scale (slot 0) and value (slot 1)

	seed  maphash.Seed
	plans map[uint64]*dbzPlan // by hash of the schema text
	last  *dbzPlan

	str    []byte   // unescaped strings
	raw    []byte   // decoded base64
	num    []byte   // decimal text
	limbs  []uint64 // unscaled magnitude, most significant first
	chunks []uint64 // its base-10^19 digits, least significant first
}

// envelope holds the parser slots of one envelope shape.
type envelope struct {
	op, before, after int
	row               []int // per column: its path in after, or its envelope field for a debezium.* source; -1 otherwise
	old               []int // per column: its path in before, for key path columns; -1 otherwise
}

// debeziumSourceTypes lists, per debezium.* source, the column types it
// can fill.
var debeziumSourceTypes = map[Source][]Type{
	SourceDebeziumOp:            {TypeText},
	SourceDebeziumTsMs:          {TypeInt8, TypeNumeric, TypeTimestamptz, TypeTimestamp},
	SourceDebeziumSourceTsMs:    {TypeInt8, TypeNumeric, TypeTimestamptz, TypeTimestamp},
	SourceDebeziumSourceLSN:     {TypeInt8, TypeNumeric},
	SourceDebeziumSourceDB:      {TypeText},
	SourceDebeziumSourceSchema:  {TypeText},
	SourceDebeziumSourceTable:   {TypeText},
	SourceDebeziumTransactionID: {TypeText},
}

// debezium reports whether s reads the Debezium envelope.
func (s Source) debezium() bool {
	return s >= SourceDebeziumOp && s <= SourceDebeziumTransactionID
}

func validateDebeziumSource(format Format, c Column) error {
	if format != FormatDebezium {
		return fmt.Errorf("source %s reads the Debezium envelope, which format %s does not have; use format debezium, a path or a kafka.* source", c.Source, format)
	}
	allowed := debeziumSourceTypes[c.Source]
	if !slices.Contains(allowed, c.Type) {
		return fmt.Errorf("source %s cannot fill a %s column; use type %v", c.Source, c.Type, joinTypes(allowed))
	}
	return nil
}

// initDebezium replaces the JSON path tree NewDecoder built with one for
// both envelope shapes.
func (d *Decoder) initDebezium() error {
	z := &debezium{seed: maphash.MakeSeed(), plans: make(map[uint64]*dbzPlan)}
	d.p.slots = nil
	root := &node{slot: -1}
	z.payload = slotAt(root, "payload", &d.p.slots)
	z.schema = slotAt(root, "schema", &d.p.slots)
	z.bare = buildEnvelope(root, d.cols, &d.p.slots)
	z.payloadNode = root.child("payload")
	z.wrapped = buildEnvelope(z.payloadNode, d.cols, &d.p.slots)
	root.fillSubtree()
	d.root = root
	d.needParse = true
	for i := range d.cols {
		if c := &d.cols[i]; c.Key {
			switch c.Source {
			case SourcePath:
				z.keyPaths++
			case SourceKey:
				z.keyKafka = true
			}
		}
	}
	z.sub.maxDepth = d.opts.MaxDepth
	z.vsd = &node{slot: -1}
	slotAt(z.vsd, "scale", &z.sub.slots)
	slotAt(z.vsd, "value", &z.sub.slots)
	z.vsd.fillSubtree()
	d.dbz = z
	return nil
}

func buildEnvelope(n *node, cols []column, slots *[]span) envelope {
	e := envelope{
		op:     slotAt(n, "op", slots),
		before: slotAt(n, "before", slots),
		after:  slotAt(n, "after", slots),
		row:    make([]int, len(cols)),
		old:    make([]int, len(cols)),
	}
	after, before := n.child("after"), n.child("before")
	for i := range cols {
		c := &cols[i]
		e.row[i], e.old[i] = -1, -1
		switch {
		case c.Source == SourcePath:
			e.row[i] = slotAt(after, c.Path, slots)
			if c.Key {
				e.old[i] = slotAt(before, c.Path, slots)
			}
		case c.Source.debezium():
			e.row[i] = slotAt(n, strings.TrimPrefix(c.Source.String(), "debezium."), slots)
		}
	}
	return e
}

func envelopeError(format string, args ...any) *RowError {
	return &RowError{Reason: ReasonBadEnvelope, Detail: fmt.Sprintf(format, args...)}
}

func (d *Decoder) appendDebezium(dst []byte, rec *Record) ([]byte, *RowError) {
	z := d.dbz
	value := rec.Value
	if value == nil {
		d.op = OpSkip
		return dst, nil
	}
	if len(rec.Headers) > 0 {
		var rerr *RowError
		if value, rerr = d.z.decodeValue(rec); rerr != nil {
			return dst, rerr
		}
	}
	var (
		top  span
		plan *dbzPlan
		ok   bool
	)
	if d.dbzAvro != nil {
		var rerr *RowError
		if value, plan, rerr = d.connectValue(rec, value); rerr != nil {
			return dst, rerr
		}
		if plan != nil {
			if top, ok = d.parseConverted(value); !ok {
				return dst, &RowError{Reason: d.p.errReason, Detail: fmt.Sprintf("%s at byte %d of the converted payload", d.p.errDetail, d.p.errPos)}
			}
		}
	}
	if plan == nil {
		top, plan, ok = d.parseKnownSchema(value)
	}
	if !ok {
		d.p.reset(value)
		if top, ok = d.p.parseDocument(d.root); !ok {
			return dst, &RowError{Reason: d.p.errReason, Detail: fmt.Sprintf("%s at byte %d", d.p.errDetail, d.p.errPos)}
		}
	}
	slots := d.p.slots
	env := &z.bare
	switch sp := slots[z.payload]; sp.kind {
	case kindNone:
		if slots[z.schema].kind != kindNone {
			return dst, envelopeError("the value has a schema but no payload")
		}
	case kindNull:
		d.op = OpSkip
		return dst, nil
	case kindObject:
		env = &z.wrapped
		if s := slots[z.schema]; s.kind == kindObject && plan == nil {
			_, poisoned := d.p.poisoned(s.start, s.end)
			plan = z.planFor(s.raw(value), d.cols, !poisoned)
		}
	default:
		return dst, envelopeError("the payload is a JSON %s, not an object", sp.kind)
	}
	op, rerr := d.debeziumOp(slots[env.op])
	if rerr != nil {
		return dst, rerr
	}
	switch op {
	case 'c', 'r', 'u':
		if k := slots[env.after].kind; k != kindObject {
			return dst, envelopeError("op %c without an after object (after is %s)", op, k)
		}
	case 'd':
		d.op = OpDelete
		if z.keyPaths == 0 && !z.keyKafka {
			return dst, badKey("a delete needs key columns read from the row or kafka.key; mark the table's key columns (Column.Key)")
		}
	case 't':
		d.op = OpTruncate
		return dst, nil
	case 'm':
		d.op = OpSkip
		return dst, nil
	}
	hasBefore := slots[env.before].kind == kindObject
	keyRead := false
	for i := range d.cols {
		c := &d.cols[i]
		var rerr *RowError
		start := len(dst)
		switch {
		case c.Source == SourcePath && d.op == OpUpsert:
			dst, rerr = d.appendChangeField(dst, i, c, slots[env.row[i]], plan.rowEnc(i))
		case c.Source == SourcePath && c.Key:
			var sp span
			if hasBefore {
				sp = slots[env.old[i]]
			}
			if sp.kind != kindNone && sp.kind != kindNull && !(sp.kind == kindString && d.unavailable(sp)) {
				dst, rerr = d.appendChangeField(dst, -1, c, sp, plan.oldEnc(i))
				break
			}
			if !keyRead {
				if rec.Key == nil {
					return dst, badKey("a delete whose before does not hold key column %s, and the record has no key", c.Name)
				}
				key := rec.Key
				if d.dbzAvro != nil && keyFramed(rec) {
					if key, rerr = d.connectKey(rec); rerr != nil {
						return dst, rerr
					}
				}
				if rerr = d.keys.parse(key); rerr != nil {
					return dst, rerr
				}
				keyRead = true
			}
			dst, rerr = d.appendKeyField(dst, i, c, plan.oldEnc(i))
		case c.Source == SourcePath:
			dst = appendNull(dst)
		case c.Source.debezium():
			dst, rerr = d.appendChangeField(dst, -1, c, slots[env.row[i]], envelopeEncoding(c.Source))
		default:
			dst, rerr = d.appendSource(dst, c, rec, value, top)
		}
		if rerr != nil {
			return dst, rerr
		}
		if c.Source == SourcePath && d.op != OpUpsert {
			continue // a delete's NULL columns and its key: nothing to check
		}
		if rerr = c.checkField(dst[start:]); rerr != nil {
			return dst, rerr
		}
	}
	return dst, nil
}

// The wrapper as JsonConverter writes it, the schema first.
const (
	wrapperHead = `{"schema":`
	payloadHead = `,"payload":`
)

// parseKnownSchema parses a value that starts with the wrapper and the
// schema of the last plan, byte for byte, without validating the schema
// again: the same bytes were a complete, valid JSON value before, and a
// value's validity does not depend on what surrounds it. It reports false
// when the value has another shape or the rest does not parse; the caller
// then parses the whole value, which also finds the error to report.
func (d *Decoder) parseKnownSchema(value []byte) (span, *dbzPlan, bool) {
	z := d.dbz
	last := z.last
	if last == nil || !last.clean || !bytes.HasPrefix(value, []byte(wrapperHead)) {
		return span{}, nil, false
	}
	rest := value[len(wrapperHead):]
	if !bytes.HasPrefix(rest, last.schema) || !bytes.HasPrefix(rest[len(last.schema):], []byte(payloadHead)) {
		return span{}, nil, false
	}
	p := &d.p
	p.reset(value)
	p.pos = len(wrapperHead) + len(last.schema) + len(payloadHead)
	p.depth = 1 // inside the top-level object, as in parseDocument
	p.skipWS()
	sp, ok := p.parseValue(z.payloadNode)
	if !ok {
		return span{}, nil, false
	}
	p.skipWS()
	if p.pos >= len(value) || value[p.pos] != '}' {
		return span{}, nil, false
	}
	p.pos++
	p.skipWS()
	if p.pos != len(value) {
		return span{}, nil, false
	}
	p.slots[z.schema] = span{start: len(wrapperHead), end: len(wrapperHead) + len(last.schema), kind: kindObject}
	p.slots[z.payload] = sp
	return span{start: 0, end: len(value), kind: kindObject}, last, true
}

// parseConverted parses payload, an Avro value converted to the payload
// of its JsonConverter event, as the payload of the wrapper: the slots
// are those of the whole event, the schema's marked present (its plan
// comes from the writer schema).
func (d *Decoder) parseConverted(payload []byte) (span, bool) {
	z := d.dbz
	p := &d.p
	p.reset(payload)
	p.depth = 1 // below the wrapper, as in parseKnownSchema
	sp, ok := p.parseValue(z.payloadNode)
	if !ok {
		return span{}, false
	}
	if p.pos != len(payload) {
		return span{}, p.fail(ReasonMalformedJSON, "trailing data after the payload")
	}
	p.slots[z.schema] = span{kind: kindObject}
	p.slots[z.payload] = sp
	return sp, true
}

// debeziumOp returns the op code at sp.
func (d *Decoder) debeziumOp(sp span) (byte, *RowError) {
	switch sp.kind {
	case kindString:
	case kindNone:
		return 0, envelopeError("the value has no op, so it is not a Debezium change event; " +
			"use format json for rows flattened by ExtractNewRecordState")
	default:
		return 0, &RowError{Path: "op", Reason: ReasonBadEnvelope, Detail: fmt.Sprintf("op is a JSON %s, want a string such as \"c\"", sp.kind)}
	}
	s := d.p.doc[sp.start:sp.end]
	if sp.flags&spanEscaped != 0 {
		z := d.dbz
		z.str, _ = unescapeString(z.str[:0], s)
		s = z.str
	}
	if len(s) == 1 {
		switch s[0] {
		case 'c', 'r', 'u', 'd', 't', 'm':
			return s[0], nil
		}
	}
	return 0, &RowError{Path: "op", Reason: ReasonBadEnvelope, Detail: "unknown op " + quote(s) + "; want c, r, u, d, t or m"}
}

// unavailable reports whether the value at sp is the unavailable-value
// placeholder, in any of the shapes Debezium gives it.
func (d *Decoder) unavailable(sp span) bool {
	raw := d.p.doc[sp.start:sp.end]
	switch sp.kind {
	case kindString:
		if sp.flags&spanEscaped == 0 {
			s := b2s(raw)
			return s == unavailableValue || s == unavailableBase64
		}
		// Only a short escaped string can hold the hstore form: leave
		// long ones (escaped text) without unescaping them.
		if len(raw) > 2*len(unavailableHstore) || raw[0] != '{' {
			return false
		}
		z := d.dbz
		z.str, _ = unescapeString(z.str[:0], raw)
		return compactEqual(z.str, unavailableHstore)
	case kindArray:
		return compactEqual(raw, unavailableTextArray) || compactEqual(raw, unavailableIntArray)
	case kindObject:
		return compactEqual(raw, unavailableHstore)
	}
	return false
}

// compactEqual reports whether the JSON text doc equals want, a compact
// JSON text without escapes, once the whitespace between doc's tokens is
// left out.
func compactEqual(doc []byte, want string) bool {
	j, inString := 0, false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		if !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			continue
		}
		if j == len(want) || want[j] != c {
			return false
		}
		if c == '"' {
			inString = !inString
		}
		j++
	}
	return j == len(want)
}

// Field encodings, from the field's schema name.
type encoding uint8

const (
	encGuess          encoding = iota // no schema: infer what is safe to infer
	encPlain                          // the schema names no encoding: as FormatJSON
	encInvalid                        // a schema the decoder cannot use (a Decimal without a valid scale)
	encDecimal                        // org.apache.kafka.connect.data.Decimal
	encVarDecimal                     // io.debezium.data.VariableScaleDecimal
	encDate                           // days since 1970-01-01
	encTimeMilli                      // time of day
	encTimeMicro                      //
	encTimeNano                       //
	encTimestampMilli                 // since the epoch
	encTimestampMicro                 //
	encTimestampNano                  //
	encJSON                           // io.debezium.data.Json
)

type fieldEnc struct {
	kind  encoding
	scale int32 // encDecimal
}

var schemaEncodings = map[string]encoding{
	"org.apache.kafka.connect.data.Decimal":   encDecimal,
	"io.debezium.data.VariableScaleDecimal":   encVarDecimal,
	"io.debezium.time.Date":                   encDate,
	"org.apache.kafka.connect.data.Date":      encDate,
	"io.debezium.time.Time":                   encTimeMilli,
	"org.apache.kafka.connect.data.Time":      encTimeMilli,
	"io.debezium.time.MicroTime":              encTimeMicro,
	"io.debezium.time.NanoTime":               encTimeNano,
	"io.debezium.time.Timestamp":              encTimestampMilli,
	"org.apache.kafka.connect.data.Timestamp": encTimestampMilli,
	"io.debezium.time.MicroTimestamp":         encTimestampMicro,
	"io.debezium.time.NanoTimestamp":          encTimestampNano,
	"io.debezium.data.Json":                   encJSON,
}

// envelopeEncoding is how a debezium.* source's field is encoded.
func envelopeEncoding(s Source) fieldEnc {
	if s == SourceDebeziumTsMs || s == SourceDebeziumSourceTsMs {
		return fieldEnc{kind: encTimestampMilli}
	}
	return fieldEnc{kind: encPlain}
}

// dbzPlan is what one envelope schema says about the columns' fields.
type dbzPlan struct {
	schema   []byte
	clean    bool       // schema holds nothing jsonb rejects (see parser.poisons)
	row, old []fieldEnc // per column: encoding of its path in after and in before
}

func (p *dbzPlan) rowEnc(i int) fieldEnc {
	if p == nil {
		return fieldEnc{}
	}
	return p.row[i]
}

func (p *dbzPlan) oldEnc(i int) fieldEnc {
	if p == nil {
		return fieldEnc{}
	}
	return p.old[i]
}

// planFor returns the plan of an envelope schema, compiling it on first
// sight. Lookups allocate nothing.
func (z *debezium) planFor(schema []byte, cols []column, clean bool) *dbzPlan {
	if p := z.last; p != nil && bytes.Equal(p.schema, schema) {
		return p
	}
	h := maphash.Bytes(z.seed, schema)
	if p := z.plans[h]; p != nil && bytes.Equal(p.schema, schema) {
		z.last = p
		return p
	}
	p := compilePlan(schema, cols)
	p.clean = clean
	if len(z.plans) >= maxPlans {
		clear(z.plans)
	}
	z.plans[h] = p
	z.last = p
	return p
}

// connectSchema is a Kafka Connect schema as JsonConverter writes it.
type connectSchema struct {
	Type       string                     `json:"type"`
	Name       string                     `json:"name"`
	Field      string                     `json:"field"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Fields     []connectSchema            `json:"fields"`
}

func (s *connectSchema) field(name string) *connectSchema {
	if s == nil {
		return nil
	}
	for i := range s.Fields {
		if s.Fields[i].Field == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// encodingAt returns the encoding of the field at a dotted path below s;
// encGuess when the schema does not describe it.
func (s *connectSchema) encodingAt(path string) fieldEnc {
	for seg := range strings.SplitSeq(path, ".") {
		if s = s.field(seg); s == nil {
			return fieldEnc{}
		}
	}
	kind, ok := schemaEncodings[s.Name]
	if !ok {
		return fieldEnc{kind: encPlain}
	}
	e := fieldEnc{kind: kind}
	if kind == encDecimal {
		raw := strings.Trim(string(s.Parameters["scale"]), `"`)
		scale, err := strconv.ParseInt(raw, 10, 32)
		if err != nil {
			return fieldEnc{kind: encInvalid}
		}
		e.scale = int32(scale)
	}
	return e
}

// compilePlan reads an envelope schema. A schema it cannot read leaves
// every encoding to be guessed, as without the wrapper.
func compilePlan(schema []byte, cols []column) *dbzPlan {
	p := &dbzPlan{schema: bytes.Clone(schema), row: make([]fieldEnc, len(cols)), old: make([]fieldEnc, len(cols))}
	var s connectSchema
	if json.Unmarshal(schema, &s) != nil {
		return p
	}
	after, before := s.field("after"), s.field("before")
	if before == nil {
		before = after
	}
	for i := range cols {
		if c := &cols[i]; c.Source == SourcePath {
			p.row[i] = after.encodingAt(c.Path)
			p.old[i] = before.encodingAt(c.Path)
		}
	}
	return p
}

// appendChangeField appends column c's field from the value at sp, a
// Debezium row field encoded as enc. i is the column's index for
// Unchanged, or -1 where the placeholder cannot stand (keys, envelope
// fields).
func (d *Decoder) appendChangeField(dst []byte, i int, c *column, sp span, enc fieldEnc) ([]byte, *RowError) {
	switch sp.kind {
	case kindNone, kindNull:
		return c.null(dst)
	case kindString, kindArray, kindObject:
		if i >= 0 && d.unavailable(sp) {
			d.setUnchanged(i)
			return appendNull(dst), nil
		}
		if sp.kind == kindString && sp.flags&spanEscaped == 0 {
			// ZonedTimestamp's infinities.
			switch b2s(d.p.doc[sp.start:sp.end]) {
			case "infinity":
				if dst, ok := appendInfinity(dst, c, 1); ok {
					return dst, nil
				}
			case "-infinity":
				if dst, ok := appendInfinity(dst, c, -1); ok {
					return dst, nil
				}
			}
		}
	}
	switch enc.kind {
	case encGuess:
		switch {
		case sp.kind == kindString && (c.Type == TypeJSON || c.Type == TypeJSONB):
			return d.appendJSONText(dst, c, sp)
		case sp.kind == kindNumber && c.Type == TypeDate:
			return d.appendDays(dst, c, sp)
		case sp.kind == kindNumber && sp.flags&spanFloat == 0 && (c.Type == TypeTimestamp || c.Type == TypeTimestamptz):
			// Debezium sends no epoch seconds: without the schema, an
			// integer is ms, µs or ns by its magnitude.
			return d.appendEpoch(dst, c, sp, encGuess)
		case sp.kind == kindObject && isNumberType(c.Type):
			return d.appendVarDecimal(dst, c, sp)
		}
	case encInvalid:
		return dst, c.fail(ReasonInvalidValue, "the field's schema is a Decimal without a valid scale parameter")
	case encDecimal:
		if sp.kind == kindString {
			return d.appendDecimal(dst, c, sp, int64(enc.scale))
		}
	case encVarDecimal:
		if sp.kind == kindObject {
			return d.appendVarDecimal(dst, c, sp)
		}
	case encDate:
		return d.appendDays(dst, c, sp)
	case encTimeMilli, encTimeMicro, encTimeNano:
		return d.appendTimeOfDay(dst, c, sp, enc.kind)
	case encTimestampMilli, encTimestampMicro, encTimestampNano:
		return d.appendEpoch(dst, c, sp, enc.kind)
	case encJSON:
		return d.appendJSONText(dst, c, sp)
	}
	return d.appendPath(dst, c, sp)
}

func isNumberType(t Type) bool {
	switch t {
	case TypeInt2, TypeInt4, TypeInt8, TypeFloat4, TypeFloat8, TypeNumeric:
		return true
	}
	return false
}

// integral returns the integer at sp: a number, or a string holding one.
func (d *Decoder) integral(c *column, sp span, want string) (int64, *RowError) {
	if sp.kind == kindNumber && sp.flags&spanFloat == 0 {
		if v, ok := parseSimpleInt(d.p.doc[sp.start:sp.end]); ok {
			return v, nil
		}
	}
	if sp.kind != kindNumber && sp.kind != kindString {
		return 0, c.wrongKind(sp.kind, want)
	}
	text, n, rerr := d.numberValue(c, sp)
	if rerr != nil {
		return 0, rerr
	}
	v, reason, detail := n.integer()
	if reason != "" {
		return 0, c.fail(reason, detail+": "+quote(text))
	}
	return v, nil
}

// PostgreSQL's date range in days since 1970-01-01: Julian day 0
// (4714-11-24 BC) up to, excluding, 5874898-01-01.
const (
	pgMinDate1970 = -2_440_588
	pgEndDate     = 2_145_042_906
)

// appendDays appends a date given as days since 1970-01-01.
func (d *Decoder) appendDays(dst []byte, c *column, sp span) ([]byte, *RowError) {
	switch c.Type {
	case TypeDate, TypeTimestamp, TypeTimestamptz, TypeText:
	default:
		return d.appendPath(dst, c, sp)
	}
	days, rerr := d.integral(c, sp, "a number of days since 1970-01-01")
	if rerr != nil {
		return dst, rerr
	}
	if days < pgMinDate1970 || days >= pgEndDate {
		return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("%d days from 1970-01-01 out of range for date", days))
	}
	switch c.Type {
	case TypeDate:
		return appendInt4Field(dst, int32(days-unixToPGDays)), nil
	case TypeText:
		dst, at := beginField(dst)
		dst, ok := appendDateText(dst, days)
		if !ok {
			return dst[:at], c.fail(ReasonOutOfRange, fmt.Sprintf("%d days from 1970-01-01 is outside years 1 to 9999", days))
		}
		return endField(dst, at), nil
	}
	pg := days - unixToPGDays
	if pg < pgMinTimestamp/usPerDay || pg >= pgEndTimestamp/usPerDay {
		return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("%d days from 1970-01-01 out of range for %s", days, c.Type))
	}
	return appendInt8Field(dst, pg*usPerDay), nil
}

// toMicros converts v in the unit of enc (a time or timestamp encoding)
// to microseconds, nanoseconds rounded half to even.
func toMicros(v int64, enc encoding) (int64, bool) {
	switch enc {
	case encTimeMilli, encTimestampMilli:
		if v > math.MaxInt64/1000 || v < math.MinInt64/1000 {
			return 0, false
		}
		return v * 1000, true
	case encTimeNano, encTimestampNano:
		q, r := v/1000, v%1000
		if r < 0 {
			q, r = q-1, r+1000
		}
		if r > 500 || (r == 500 && q&1 == 1) {
			q++
		}
		return q, true
	}
	return v, true
}

// appendEpoch appends a timestamp given as a number of ms, µs or ns since
// the epoch.
func (d *Decoder) appendEpoch(dst []byte, c *column, sp span, enc encoding) ([]byte, *RowError) {
	switch c.Type {
	case TypeTimestamptz, TypeTimestamp, TypeDate, TypeText:
	default:
		return d.appendPath(dst, c, sp)
	}
	v, rerr := d.integral(c, sp, "an epoch number")
	if rerr != nil {
		return dst, rerr
	}
	if enc == encGuess {
		switch a := max(v, -v); {
		case a < 1e14:
			enc = encTimestampMilli
		case a < 1e17:
			enc = encTimestampMicro
		default:
			enc = encTimestampNano
		}
	}
	sign := 0
	switch {
	case v == dbzPosInfinity, v == math.MaxInt64 && enc == encTimestampNano:
		sign = 1
	case v == dbzNegInfinity, v == math.MinInt64 && enc == encTimestampNano:
		sign = -1
	}
	if sign != 0 {
		if dst, ok := appendInfinity(dst, c, sign); ok {
			return dst, nil
		}
	}
	us, ok := toMicros(v, enc)
	if !ok || us < pgMinTimestamp+unixToPGUs || us-unixToPGUs >= pgEndTimestamp {
		return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("epoch value %d out of range for %s", v, c.Type))
	}
	switch c.Type {
	case TypeDate:
		return appendInt4Field(dst, int32(floorDiv(us, usPerDay)-unixToPGDays)), nil
	case TypeText:
		dst, at := beginField(dst)
		dst, ok := appendDbzTimestampText(dst, us)
		if !ok {
			return dst[:at], c.fail(ReasonOutOfRange, fmt.Sprintf("epoch value %d is outside years 1 to 9999", v))
		}
		return endField(dst, at), nil
	}
	return appendInt8Field(dst, us-unixToPGUs), nil
}

// appendInfinity appends PostgreSQL's infinity (sign 1) or -infinity
// (sign -1) to a timestamp, timestamptz, date or text column; false for
// other columns.
func appendInfinity(dst []byte, c *column, sign int) ([]byte, bool) {
	switch c.Type {
	case TypeTimestamp, TypeTimestamptz:
		if sign > 0 {
			return appendInt8Field(dst, math.MaxInt64), true
		}
		return appendInt8Field(dst, math.MinInt64), true
	case TypeDate:
		if sign > 0 {
			return appendInt4Field(dst, math.MaxInt32), true
		}
		return appendInt4Field(dst, math.MinInt32), true
	case TypeText:
		dst, at := beginField(dst)
		if sign < 0 {
			dst = append(dst, '-')
		}
		return endField(append(dst, "infinity"...), at), true
	}
	return dst, false
}

// appendTimeOfDay appends a time of day given as ms, µs or ns since
// midnight.
func (d *Decoder) appendTimeOfDay(dst []byte, c *column, sp span, enc encoding) ([]byte, *RowError) {
	switch c.Type {
	case TypeText:
	case TypeInt2, TypeInt4, TypeInt8, TypeNumeric, TypeFloat4, TypeFloat8, TypeJSON, TypeJSONB:
		return d.appendPath(dst, c, sp)
	default:
		return dst, c.fail(ReasonWrongType, "a time of day fills a text or number column, not "+c.Type.String())
	}
	v, rerr := d.integral(c, sp, "a time of day")
	if rerr != nil {
		return dst, rerr
	}
	us, ok := toMicros(v, enc)
	if !ok {
		return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("time of day %d out of range", v))
	}
	dst, at := beginField(dst)
	return endField(appendTimeText(dst, us), at), nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func appendDigits(dst []byte, v int64, n int) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], v, 10)
	for i := len(s); i < n; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// appendClock appends HH:MM:SS and, when us has a fraction of a second,
// the fraction without trailing zeros, as PostgreSQL prints times.
func appendClock(dst []byte, us int64) []byte {
	sec := us / usPerSec
	frac := us % usPerSec
	dst = appendDigits(dst, sec/3600, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec/60%60, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec%60, 2)
	if frac != 0 {
		n := 6
		for frac%10 == 0 {
			frac /= 10
			n--
		}
		dst = append(dst, '.')
		dst = appendDigits(dst, frac, n)
	}
	return dst
}

// appendDbzTimestampText appends µs since the epoch as YYYY-MM-DD
// HH:MM:SS[.ffffff]; false outside years 1 to 9999.
func appendDbzTimestampText(dst []byte, us int64) ([]byte, bool) {
	days := floorDiv(us, usPerDay)
	dst, ok := appendDateText(dst, days)
	if !ok {
		return dst, false
	}
	dst = append(dst, ' ')
	return appendClock(dst, us-days*usPerDay), true
}

// appendTimeText appends µs since midnight as [-]HH:MM:SS[.ffffff].
func appendTimeText(dst []byte, us int64) []byte {
	if us < 0 {
		dst = append(dst, '-')
		if us == math.MinInt64 {
			// One µs off at the very limit is not worth a special case:
			// no database has such a time.
			us++
		}
		us = -us
	}
	return appendClock(dst, us)
}

// appendJSONText appends a string holding JSON text (io.debezium.data.Json)
// to a json or jsonb column, as that JSON.
func (d *Decoder) appendJSONText(dst []byte, c *column, sp span) ([]byte, *RowError) {
	if sp.kind != kindString || (c.Type != TypeJSON && c.Type != TypeJSONB) {
		return d.appendPath(dst, c, sp)
	}
	s, rerr := d.stringValue(c, sp)
	if rerr != nil {
		return dst, rerr
	}
	p := &d.dbz.sub
	p.reset(s)
	if _, ok := p.parseDocument(nil); !ok {
		return dst, c.fail(ReasonInvalidValue, fmt.Sprintf("the string does not hold JSON text: %s at byte %d of %s", p.errDetail, p.errPos, quote(s)))
	}
	if c.Type == TypeJSONB {
		if q, bad := p.poisoned(0, len(s)); bad {
			return dst, c.fail(ReasonInvalidValue, q.String())
		}
		return appendJSONBField(dst, s), nil
	}
	return appendBytesField(dst, s), nil
}

// appendVarDecimal appends an io.debezium.data.VariableScaleDecimal
// {"scale": n, "value": base64}.
func (d *Decoder) appendVarDecimal(dst []byte, c *column, sp span) ([]byte, *RowError) {
	z := d.dbz
	doc := d.p.doc[sp.start:sp.end]
	z.sub.reset(doc)
	if _, ok := z.sub.parseDocument(z.vsd); !ok {
		return dst, c.fail(z.sub.errReason, z.sub.errDetail)
	}
	scaleSp, valueSp := z.sub.slots[0], z.sub.slots[1]
	if scaleSp.kind != kindNumber || valueSp.kind != kindString {
		return dst, c.fail(ReasonWrongType, "got an object without a number scale and a string value, want a VariableScaleDecimal {scale, value}")
	}
	scale, ok := parseSimpleInt(doc[scaleSp.start:scaleSp.end])
	if !ok || scale < math.MinInt32 || scale > math.MaxInt32 {
		return dst, c.fail(ReasonInvalidValue, "VariableScaleDecimal scale "+quote(doc[scaleSp.start:scaleSp.end])+" is not a 32-bit integer")
	}
	s := doc[valueSp.start:valueSp.end]
	if valueSp.flags&spanEscaped != 0 {
		if z.str, ok = unescapeString(z.str[:0], s); !ok {
			return dst, c.fail(ReasonInvalidValue, "invalid base64 "+quote(s))
		}
		s = z.str
	}
	return d.appendBase64Decimal(dst, c, s, scale)
}

// appendDecimal appends an org.apache.kafka.connect.data.Decimal: base64
// of the unscaled value, at the schema's scale.
func (d *Decoder) appendDecimal(dst []byte, c *column, sp span, scale int64) ([]byte, *RowError) {
	s, rerr := d.stringValue(c, sp)
	if rerr != nil {
		return dst, rerr
	}
	return d.appendBase64Decimal(dst, c, s, scale)
}

func (d *Decoder) appendBase64Decimal(dst []byte, c *column, s []byte, scale int64) ([]byte, *RowError) {
	z := d.dbz
	enc := base64.StdEncoding
	if len(s) > enc.EncodedLen(maxDbzDecimalBytes) {
		return dst, c.fail(ReasonOutOfRange, fmt.Sprintf("a decimal of %d base64 characters is beyond the range of numeric", len(s)))
	}
	z.raw = slices.Grow(z.raw[:0], enc.DecodedLen(len(s)))[:enc.DecodedLen(len(s))]
	n, err := enc.Decode(z.raw, s)
	if err != nil {
		return dst, c.fail(ReasonInvalidValue, "invalid base64 in a decimal: "+quote(s))
	}
	text, reason, detail := z.decimalText(z.raw[:n], scale)
	if reason != "" {
		return dst, c.fail(reason, detail)
	}
	return appendDecimalText(dst, c, text)
}

// appendDecimalText appends a decimal given as JSON number text.
func appendDecimalText(dst []byte, c *column, text []byte) ([]byte, *RowError) {
	n, _ := splitNumber(text)
	switch c.Type {
	case TypeNumeric:
		if !n.fitsNumeric() {
			return dst, c.fail(ReasonOutOfRange, "decimal beyond the range of numeric: "+quote(text))
		}
		return appendNumericField(dst, &n), nil
	case TypeInt2, TypeInt4, TypeInt8:
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
		f, reason, detail := parseFloat(text, &n, bits)
		if reason != "" {
			return dst, c.fail(reason, detail+": "+quote(text))
		}
		if bits == 32 {
			return appendFloat4Field(dst, float32(f)), nil
		}
		return appendFloat8Field(dst, f), nil
	case TypeText, TypeJSON:
		return appendBytesField(dst, text), nil
	case TypeJSONB:
		if !n.fitsNumeric() {
			return dst, c.fail(ReasonInvalidValue, "number beyond the range of numeric, which jsonb cannot store")
		}
		return appendJSONBField(dst, text), nil
	}
	return dst, c.fail(ReasonWrongType, "a decimal cannot fill a "+c.Type.String()+" column")
}

// decimalText returns, in z.num, the decimal text of b (a big-endian two's
// complement integer, as Java's BigInteger.toByteArray writes it) times
// 10^-scale, with exactly scale fraction digits when scale > 0.
func (z *debezium) decimalText(b []byte, scale int64) ([]byte, Reason, string) {
	if scale > numericMaxDscale || scale < -numericMaxLeadExp {
		return nil, ReasonOutOfRange, fmt.Sprintf("decimal scale %d beyond the limits of numeric", scale)
	}
	neg := len(b) > 0 && b[0]&0x80 != 0
	digits := z.num[:0]
	if len(b) <= 8 {
		var v int64
		if neg {
			v = -1
		}
		for _, c := range b {
			v = v<<8 | int64(c)
		}
		var buf [24]byte
		s := strconv.AppendInt(buf[:0], v, 10)
		if neg {
			s = s[1:]
		}
		digits = append(digits, s...)
	} else {
		digits = z.bigDigits(digits, b, neg)
	}
	// digits holds the magnitude; lay out sign, integer part, fraction.
	// The text is built after the digits in the same buffer, then moved.
	nd := int64(len(digits))
	out := len(digits)
	if neg {
		digits = append(digits, '-')
	}
	switch {
	case scale <= 0:
		digits = append(digits, digits[:nd]...)
		if !(nd == 1 && digits[0] == '0') {
			for range -scale {
				digits = append(digits, '0')
			}
		}
	case nd > scale:
		digits = append(digits, digits[:nd-scale]...)
		digits = append(digits, '.')
		digits = append(digits, digits[nd-scale:nd]...)
	default:
		digits = append(digits, '0', '.')
		for range scale - nd {
			digits = append(digits, '0')
		}
		digits = append(digits, digits[:nd]...)
	}
	z.num = digits
	return digits[out:], "", ""
}

// bigDigits appends the decimal digits of the magnitude of b, a big-endian
// two's complement integer longer than 8 bytes.
func (z *debezium) bigDigits(dst, b []byte, neg bool) []byte {
	nw := (len(b) + 7) / 8
	z.limbs = slices.Grow(z.limbs[:0], nw)
	limbs := z.limbs[:nw]
	pad := byte(0)
	if neg {
		pad = 0xFF
	}
	// Sign-extend to whole 64-bit limbs, most significant first.
	lead := nw*8 - len(b)
	for w := range limbs {
		var v uint64
		for j := range 8 {
			k := w*8 + j - lead
			c := pad
			if k >= 0 {
				c = b[k]
			}
			v = v<<8 | uint64(c)
		}
		limbs[w] = v
	}
	if neg {
		carry := uint64(1)
		for w := len(limbs) - 1; w >= 0; w-- {
			limbs[w], carry = bits.Add64(^limbs[w], 0, carry)
		}
	}
	for len(limbs) > 0 && limbs[0] == 0 {
		limbs = limbs[1:]
	}
	const base = 10_000_000_000_000_000_000 // 10^19 < 2^64
	chunks := z.chunks[:0]
	for len(limbs) > 0 {
		var rem uint64
		for w := range limbs {
			limbs[w], rem = bits.Div64(rem, limbs[w], base)
		}
		chunks = append(chunks, rem)
		for len(limbs) > 0 && limbs[0] == 0 {
			limbs = limbs[1:]
		}
	}
	z.chunks = chunks
	if len(chunks) == 0 {
		return append(dst, '0')
	}
	dst = strconv.AppendUint(dst, chunks[len(chunks)-1], 10)
	for i := len(chunks) - 2; i >= 0; i-- {
		var buf [20]byte
		s := strconv.AppendUint(buf[:0], chunks[i], 10)
		for range 19 - len(s) {
			dst = append(dst, '0')
		}
		dst = append(dst, s...)
	}
	return dst
}
