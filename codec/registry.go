package codec

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// SchemaType is the kind of a Schema Registry schema.
type SchemaType uint8

// Schema types, as the registry's schemaType field names them. SchemaAvro is
// the zero value: the registry omits schemaType for Avro schemas.
const (
	SchemaAvro     SchemaType = iota // "AVRO"
	SchemaProtobuf                   // "PROTOBUF"
	SchemaJSON                       // "JSON" (JSON Schema)
)

var schemaTypeNames = [...]string{SchemaAvro: "AVRO", SchemaProtobuf: "PROTOBUF", SchemaJSON: "JSON"}

// String returns the registry's name of t.
func (t SchemaType) String() string {
	if int(t) < len(schemaTypeNames) {
		return schemaTypeNames[t]
	}
	return "SchemaType(" + strconv.Itoa(int(t)) + ")"
}

// ParseSchemaType returns the SchemaType for the registry's schemaType
// field: AVRO, PROTOBUF or JSON; the empty string means AVRO.
func ParseSchemaType(name string) (SchemaType, error) {
	if name == "" {
		return SchemaAvro, nil
	}
	for i, n := range schemaTypeNames {
		if n == name {
			return SchemaType(i), nil
		}
	}
	return 0, fmt.Errorf("unknown schema type %q; the registry knows AVRO, PROTOBUF and JSON", name)
}

// schemaTypeOf is the schema type a registry format reads.
func schemaTypeOf(f Format) SchemaType {
	switch f {
	case FormatProtobuf:
		return SchemaProtobuf
	case FormatJSONSchema:
		return SchemaJSON
	}
	return SchemaAvro
}

// Schema is a writer schema as a Schema Registry stores it, references
// resolved.
type Schema struct {
	Type       SchemaType
	Text       string        // Avro JSON, .proto text (or base64 FileDescriptorProto), JSON Schema
	References []NamedSchema // every transitive reference, dependencies first
}

// NamedSchema is a schema another schema refers to by name.
type NamedSchema struct {
	Name   string // Avro full name or Protobuf import path
	Schema Schema
}

// SchemaRef identifies a writer schema: by the registry's 32-bit id, or by
// the 16-byte GUID newer serializers put in record headers.
type SchemaRef struct {
	ID     int32
	GUID   [16]byte // RFC 4122 byte order, as in the header
	IsGUID bool
}

// String returns "id 42" or "guid 3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01".
func (r SchemaRef) String() string {
	if !r.IsGUID {
		return "id " + strconv.FormatInt(int64(r.ID), 10)
	}
	var b [36]byte
	hex.Encode(b[0:8], r.GUID[0:4])
	hex.Encode(b[9:13], r.GUID[4:6])
	hex.Encode(b[14:18], r.GUID[6:8])
	hex.Encode(b[19:23], r.GUID[8:10])
	hex.Encode(b[24:], r.GUID[10:])
	b[8], b[13], b[18], b[23] = '-', '-', '-', '-'
	return "guid " + string(b[:])
}

// SchemaNeededError is what Decoder.AppendFields returns for a record whose
// writer schema the decoder does not have, or was told 30 seconds ago or
// more that the registry does not have. The caller fetches it from the
// registry, hands it to Decoder.AddSchema, or to Decoder.AddKeySchema when
// Key is set (nil when the registry does not know Ref), and decodes the
// same record again. It is not a *RowError: the record is fine, the
// decoder lacks a schema.
type SchemaNeededError struct {
	Ref SchemaRef
	// Key says the schema is the record key's (registered under the
	// subject TOPIC-key), not the value's. Key and value schemas are cached
	// apart: the same ref may be needed for both.
	Key bool
	// Indexes are the Protobuf message indexes of the record (nil for
	// other formats): the message whose fields a table following the
	// writer schema (evolve) must have.
	Indexes []int
}

func (e *SchemaNeededError) Error() string {
	if e.Key {
		return "codec needs the writer schema of the record key with " + e.Ref.String() + " from the schema registry"
	}
	return "codec needs the writer schema with " + e.Ref.String() + " from the schema registry"
}

// Registry framing (Confluent's wire format).
const (
	magicID   = 0 // magic byte, then the 4-byte big-endian schema id
	magicGUID = 1 // magic byte, then the 16-byte schema GUID

	// valueSchemaIDHeader carries the value's schema id (magic byte 0 and
	// id) or GUID (magic byte 1 and GUID), and for Protobuf the message
	// indexes after it; the value then has no prefix.
	valueSchemaIDHeader = "__value_schema_id"
	// keySchemaIDHeader is the same for the record key.
	keySchemaIDHeader = "__key_schema_id"

	// maxMessageIndexes bounds the Protobuf message index list (the
	// nesting depth of the message in its file).
	maxMessageIndexes = 64
)

// framing is the parsed registry framing of one record.
type framing struct {
	ref     SchemaRef
	payload []byte // the encoded datum, after any prefix
	indexes []int  // Protobuf message indexes, decoder-owned
}

func badFraming(detail string) *RowError {
	return &RowError{Reason: ReasonBadFraming, Detail: detail}
}

// parseFraming reads the schema reference of rec, whose value (possibly
// decompressed) is value. The last __value_schema_id header wins, as in
// Confluent's deserializers; without one, or when its value is null, the
// value carries the prefix. indexes is reused for the Protobuf message
// indexes.
func parseFraming(rec *Record, value []byte, protobuf bool, indexes []int) (framing, *RowError) {
	return parseFramingOf(rec, value, &valueSide, protobuf, indexes)
}

// framingSide names the half of a record that framing is read from.
type framingSide struct {
	header     string // the record header that may hold the schema reference
	headerWhat string // header + " header", for errors
	what       string // "value" or "key", for errors
}

var (
	valueSide = framingSide{valueSchemaIDHeader, valueSchemaIDHeader + " header", "value"}
	keySide   = framingSide{keySchemaIDHeader, keySchemaIDHeader + " header", "key"}
)

// parseFramingOf reads the framing of b, the record's value or key as
// side says, whose schema reference may instead be in side's header.
func parseFramingOf(rec *Record, b []byte, side *framingSide, protobuf bool, indexes []int) (framing, *RowError) {
	hv, found := schemaIDHeader(rec, side.header)
	f := framing{indexes: indexes[:0]}
	var rest []byte
	var rerr *RowError
	if found {
		if f.ref, rest, rerr = parseSchemaID(hv, side.headerWhat); rerr != nil {
			return f, rerr
		}
		f.payload = b
	} else {
		if f.ref, rest, rerr = parseSchemaID(b, side.what); rerr != nil {
			return f, rerr
		}
	}
	if protobuf {
		if f.indexes, rest, rerr = parseMessageIndexes(rest, f.indexes); rerr != nil {
			return f, rerr
		}
	}
	if found {
		if len(rest) != 0 {
			return f, badFraming(fmt.Sprintf("%d bytes after the schema reference in the %s header", len(rest), side.header))
		}
	} else {
		f.payload = rest
	}
	return f, nil
}

// schemaIDHeader returns the value of rec's last header named name, and
// whether it is there with a value. A null value counts as no header, as
// Confluent's DualSchemaIdDeserializer counts it: the schema reference is
// then in the prefix. An empty value is there, and bad framing.
func schemaIDHeader(rec *Record, name string) ([]byte, bool) {
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		if h := &rec.Headers[i]; h.Key == name {
			return h.Value, h.Value != nil
		}
	}
	return nil, false
}

// parseSchemaID reads a magic byte and the id or GUID it announces.
func parseSchemaID(b []byte, where string) (SchemaRef, []byte, *RowError) {
	if len(b) == 0 {
		return SchemaRef{}, nil, badFraming("empty " + where + ", want a magic byte and a schema id")
	}
	switch b[0] {
	case magicID:
		if len(b) < 5 {
			return SchemaRef{}, nil, badFraming(fmt.Sprintf("%s of %d bytes is too short for magic byte 0 and a 4-byte schema id", where, len(b)))
		}
		return SchemaRef{ID: int32(binary.BigEndian.Uint32(b[1:]))}, b[5:], nil
	case magicGUID:
		if len(b) < 17 {
			return SchemaRef{}, nil, badFraming(fmt.Sprintf("%s of %d bytes is too short for magic byte 1 and a 16-byte schema GUID", where, len(b)))
		}
		ref := SchemaRef{IsGUID: true}
		copy(ref.GUID[:], b[1:17])
		return ref, b[17:], nil
	}
	return SchemaRef{}, nil, badFraming(fmt.Sprintf("%s starts with byte 0x%02x, not a schema registry magic byte (0 or 1); is the topic written by a schema registry serializer?", where, b[0]))
}

// parseMessageIndexes reads Protobuf message indexes: a zigzag varint
// count, then as many zigzag varint indexes; a count of 0 means [0].
func parseMessageIndexes(b []byte, dst []int) ([]int, []byte, *RowError) {
	n, i, ok := readVarlong(b, 0)
	if !ok || n < 0 || n > maxMessageIndexes {
		return dst, nil, badFraming("invalid Protobuf message index count")
	}
	if n == 0 {
		return append(dst, 0), b[i:], nil
	}
	for range n {
		var v int64
		if v, i, ok = readVarlong(b, i); !ok || v < 0 || v > 1<<30 {
			return dst, nil, badFraming("invalid Protobuf message index")
		}
		dst = append(dst, int(v))
	}
	return dst, b[i:], nil
}

// readVarlong reads a zigzag-encoded varint of at most 10 bytes (Avro's
// long, Kafka's varlong) at b[i:].
func readVarlong(b []byte, i int) (int64, int, bool) {
	var u uint64
	for shift := uint(0); shift < 70; shift += 7 {
		if i >= len(b) {
			return 0, i, false
		}
		c := b[i]
		i++
		if shift == 63 && c > 1 {
			return 0, i, false
		}
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u>>1) ^ -int64(u&1), i, true
		}
	}
	return 0, i, false
}

// valuePlan decodes payloads written with one writer schema.
type valuePlan interface {
	// decode walks payload (after the framing), remembering where each path
	// column's value is. It allocates nothing in steady state.
	decode(payload []byte) *RowError
	// appendPath appends the binary COPY field of path column i (i indexes
	// the decoder's path columns in column order) from the last decode.
	appendPath(dst []byte, i int) ([]byte, *RowError)
}

// planReleaser is implemented by plans that hold on to the last payload:
// release drops the reference, so the decoder keeps none of the record.
type planReleaser interface {
	release()
}

// unknownSchemaRetry is how long a decoder takes the registry's word that
// it has no schema for a ref (AddSchema with nil) before the next record
// naming the ref asks again. A registry replica that lags behind a new
// registration answers 40403 for an id a producer has just used; holding
// that answer until eviction or a restart would make every later record
// with the id a dead letter. Asking at most once an interval keeps records
// naming an id that truly does not exist from each sending a request. A
// variable so that tests can shorten it.
var unknownSchemaRetry = 30 * time.Second

// schemaEntry is one cached writer schema and what it compiled to.
type schemaEntry struct {
	ref       SchemaRef
	schema    *Schema      // nil when the registry does not know ref
	unknownAt time.Time    // when schema is nil: when the registry said so
	plan      valuePlan    // Avro; nil for JSON Schema and Protobuf
	connect   *connectPlan // FormatDebezium with ConverterAvro
	err       *RowError    // every record with this schema fails so (unknown, wrong type, does not compile)
	protos    []protoPlan
}

// protoPlan is a Protobuf plan for one message index path.
type protoPlan struct {
	indexes []int
	plan    valuePlan
	err     *RowError
}

// schemaCache holds the writer schemas a decoder has been given, up to max,
// evicting the oldest first.
type schemaCache struct {
	entries map[SchemaRef]*schemaEntry
	order   []SchemaRef // insertion ring once full
	next    int         // ring position of the oldest entry
	max     int
	last    *schemaEntry // the entry the previous record used
}

func (c *schemaCache) get(ref SchemaRef) *schemaEntry {
	if e := c.last; e != nil && e.ref == ref {
		return e
	}
	e := c.entries[ref]
	if e != nil {
		c.last = e
	}
	return e
}

func (c *schemaCache) put(e *schemaEntry) {
	if c.entries == nil {
		c.entries = make(map[SchemaRef]*schemaEntry)
	}
	if _, ok := c.entries[e.ref]; ok {
		c.entries[e.ref] = e
		c.last = nil
		return
	}
	if len(c.order) < c.max {
		c.order = append(c.order, e.ref)
	} else {
		old := c.order[c.next]
		delete(c.entries, old)
		c.order[c.next] = e.ref
		c.next = (c.next + 1) % len(c.order)
	}
	c.entries[e.ref] = e
	c.last = nil
}

// AddSchema gives d the writer schema s for ref, after AppendFields
// returned a *SchemaNeededError for it. s is nil when the registry says
// the schema does not exist: records using ref are then a *RowError with
// ReasonUnknownSchema for 30 seconds, after which the next record naming
// ref asks for the schema again (a registry replica may not know a schema
// registered moments ago). An Avro schema is compiled for d's columns at
// once, a Protobuf schema per message on the first record naming it. A
// schema that cannot be parsed, is of the wrong type for d's format, or
// whose fields cannot fill d's columns is cached as well, and every
// record using it is a *RowError naming the column and why (the pipeline
// never stalls on a schema). The returned error says the same for
// logging; it is nil when the schema compiled. The cache holds up to
// Options.MaxSchemas schemas and evicts the oldest. AddSchema for a ref
// already cached replaces it.
func (d *Decoder) AddSchema(ref SchemaRef, s *Schema) error {
	if !d.usesRegistry() {
		return fmt.Errorf("cannot add a schema to a decoder for format %s, which reads no schema registry framing", d.format)
	}
	return d.addSchema(&d.schemas, ref, s, d.pathColumns(), false)
}

// addSchema compiles s for the path columns cols and caches it in c; key
// says c holds record key schemas, which changes what errors name.
func (d *Decoder) addSchema(c *schemaCache, ref SchemaRef, s *Schema, cols []Column, key bool) error {
	what, subject := "schema", "TOPIC-value"
	if key {
		what, subject = "key schema", "TOPIC-key"
	}
	e := &schemaEntry{ref: ref}
	if s != nil {
		sc := *s
		sc.References = slices.Clone(s.References)
		e.schema = &sc
	}
	switch {
	case s == nil:
		e.unknownAt = time.Now()
		e.err = &RowError{Reason: ReasonUnknownSchema,
			Detail: fmt.Sprintf("the schema registry has no %s with %s; register it (subject %s) or route the producer to the right registry", what, ref, subject)}
	case s.Type != schemaTypeOf(d.format):
		e.err = &RowError{Reason: ReasonSchemaMismatch,
			Detail: fmt.Sprintf("%s %s is a %s schema, format %s reads %s schemas", what, ref, s.Type, d.format, schemaTypeOf(d.format))}
	case d.dbzAvro != nil:
		var err error
		if e.connect, err = compileConnectPlan(e.schema); err != nil {
			e.err = &RowError{Reason: ReasonSchemaMismatch,
				Detail: fmt.Sprintf("%s %s cannot be read as a Kafka Connect schema: %v", what, ref, err)}
		} else if !key {
			e.connect.dbz = compilePlan(e.connect.connectSchemaText(), d.cols)
			if d.dbzAvro.prune && e.connect.root.kind == avroRecord {
				e.connect.pruned = pruneRecord(e.connect.root, d.dbz.payloadNode, d.dbz)
			}
		}
	case d.format == FormatAvro:
		var plan *avroPlan
		if plan, e.err = compileAvroPlan(e.schema, cols, d.opts); plan != nil {
			e.plan = plan
		}
		if e.err != nil {
			e.err.Detail = fmt.Sprintf("%s %s: %s", what, ref, e.err.Detail)
		}
	}
	if key && e.err != nil {
		keyPathError(e.err)
	}
	c.put(e)
	if e.err != nil {
		return e.err
	}
	return nil
}

// usesRegistry reports whether d reads records framed for a Schema
// Registry.
func (d *Decoder) usesRegistry() bool {
	return d.format.UsesRegistry() || d.dbzAvro != nil
}

// pathColumns returns the path columns, in column order.
func (d *Decoder) pathColumns() []Column {
	var cols []Column
	for i := range d.cols {
		if d.cols[i].Source == SourcePath {
			cols = append(cols, d.cols[i].Column)
		}
	}
	return cols
}

// errSchemaNeeded marks, inside the decoder, that d.needed holds the
// reference of a schema the caller must fetch.
var errSchemaNeeded = &RowError{Reason: "schema_needed"}

// resolve parses the framing of rec and finds the plan for its schema. For
// FormatJSONSchema it returns a nil plan and the payload to parse as JSON.
func (d *Decoder) resolve(rec *Record, value []byte) (valuePlan, []byte, *RowError) {
	var f framing
	switch {
	case len(rec.Headers) == 0 && len(value) >= 5 && value[0] == magicID && d.format != FormatProtobuf:
		// The common case, without a loop over headers.
		f.ref.ID = int32(binary.BigEndian.Uint32(value[1:]))
		f.payload = value[5:]
	case len(rec.Headers) == 0 && len(value) >= 6 && value[0] == magicID && value[5] == 0 && d.format == FormatProtobuf:
		// Protobuf's common case: the file's first message, whose index
		// list is the single byte 0 (a count of zero means [0]).
		f.ref.ID = int32(binary.BigEndian.Uint32(value[1:]))
		f.payload = value[6:]
		f.indexes = append(d.indexes[:0], 0)
		d.indexes = f.indexes
	default:
		var rerr *RowError
		f, rerr = parseFraming(rec, value, d.format == FormatProtobuf, d.indexes)
		d.indexes = f.indexes
		if rerr != nil {
			return nil, nil, rerr
		}
	}
	plan, rerr := d.lookup(&d.schemas, &f, false)
	return plan, f.payload, rerr
}

// lookup finds the plan for the schema f names in cache c; key says c
// holds key schemas, whose plans fill d.rk.cols, not the path columns. A
// schema c lacks, or that the registry did not know unknownSchemaRetry
// ago, is errSchemaNeeded, with d.needed set.
func (d *Decoder) lookup(c *schemaCache, f *framing, key bool) (valuePlan, *RowError) {
	e, rerr := d.entry(c, f, key)
	if rerr != nil {
		return nil, rerr
	}
	if d.format != FormatProtobuf {
		return e.plan, nil
	}
	for i := range e.protos {
		if pp := &e.protos[i]; slices.Equal(pp.indexes, f.indexes) {
			if pp.err != nil {
				re := *pp.err
				return nil, &re
			}
			return pp.plan, nil
		}
	}
	// First record with this message: compile its plan (once).
	pp := protoPlan{indexes: slices.Clone(f.indexes)}
	var cols []Column
	if key {
		cols = d.rk.cols
	} else {
		cols = d.pathColumns()
	}
	plan, err := compileProtobufPlan(e.schema, pp.indexes, cols, d.opts)
	if err != nil {
		what := "schema"
		if key {
			what = "key schema"
		}
		pp.err = &RowError{Reason: ReasonSchemaMismatch, Detail: fmt.Sprintf("%s %s, message indexes %v: %v", what, f.ref, pp.indexes, err)}
		var re *RowError
		if asRowError(err, &re) {
			pp.err = re
		}
		if key {
			keyPathError(pp.err)
		}
	} else {
		pp.plan = plan
	}
	e.protos = append(e.protos, pp)
	if pp.err != nil {
		re := *pp.err
		return nil, &re
	}
	return plan, nil
}

// entry finds the cache entry of the schema f names in cache c, as lookup
// describes, and returns the error of a schema that failed.
func (d *Decoder) entry(c *schemaCache, f *framing, key bool) (*schemaEntry, *RowError) {
	e := c.get(f.ref)
	if e == nil || e.schema == nil && time.Since(e.unknownAt) >= unknownSchemaRetry {
		d.needed, d.neededKey = f.ref, key
		d.neededIndexes = append(d.neededIndexes[:0], f.indexes...)
		return nil, errSchemaNeeded
	}
	if e.err != nil {
		re := *e.err
		return nil, &re
	}
	return e, nil
}

func asRowError(err error, re **RowError) bool {
	r, ok := err.(*RowError)
	if ok {
		*re = r
	}
	return ok
}
