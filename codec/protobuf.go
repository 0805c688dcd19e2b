package codec

// # Protobuf
//
// FormatProtobuf: the record value is a Confluent-framed Protobuf message.
// The writer schema comes from the registry as .proto text or as a
// base64-encoded serialized FileDescriptorProto (both are accepted; a
// text that decodes as base64 into a descriptor is one). References are
// resolved by their import path; the google/protobuf well-known types,
// confluent/meta.proto, confluent/type/decimal.proto and the google/type
// files the Confluent serializers carry built in need no reference. The
// message-index list of the framing picks the message: [0] is the first
// message of the file, [1,0] the first nested message of the second; an
// index naming no message is ReasonSchemaMismatch for every record that
// uses it.
//
// Paths name fields by their .proto names (the lowerCamelCase JSON name is
// accepted as well), dotted through singular message fields:
// customer.address.city.
// Each member of a oneof is addressed by its own name. A path naming no
// field of the writer schema is NULL for every record (so a column may
// name a field that older or newer schema versions lack); a path through
// a scalar, repeated or map field, or a column type the field cannot fill,
// fails the schema: every record written with it is a *RowError naming
// the column.
//
// Presence: a missing field with explicit presence (proto2 optional and
// required, proto3 optional, oneof members, message fields, wrappers,
// editions' EXPLICIT) is NULL, or ReasonMissingRequired when
// Column.Required. A missing proto3 scalar without it (implicit presence)
// decodes as its default — 0, "", false, empty bytes, the zero enum — as
// every protobuf reader sees it, unless a message on its path is missing,
// which makes it NULL. A repeated field or map that is empty reads as []
// or {}. A field repeated on the wire follows protobuf's merge: the last
// value wins for a scalar, messages merge field by field, repeated fields
// and maps keep every element (packed and unpacked alike; a map key seen
// twice keeps its last value), and a oneof member clears the others.
//
// Conversions, by protobuf type:
//
//	string                 text (valid UTF-8 without NUL), uuid (any form PostgreSQL
//	                       accepts), date, timestamptz/timestamp (RFC 3339), int2/4/8,
//	                       float4/8, numeric (a number's text), bytea (base64), json, jsonb
//	bytes                  bytea, uuid (exactly 16 bytes), text (base64), json, jsonb
//	bool                   bool, text, json, jsonb
//	int32/64, sint, sfixed,
//	uint32/64, fixed       int2/4/8 (range-checked; a uint64 above 2^63-1 is
//	                       ReasonOutOfRange there, numeric takes it), numeric, float4/8,
//	                       timestamptz/timestamp (epoch, unit by magnitude as for JSON
//	                       numbers), text, json, jsonb
//	float, double          float4/8 (overflow and underflow to zero are ReasonOutOfRange),
//	                       numeric (the shortest decimal that reads back as the same
//	                       float; NaN and ±Infinity as numeric's), int2/4/8 (integral
//	                       values only), timestamptz/timestamp (epoch), text, json, jsonb
//	enum                   text (the value's name; a number the schema does not name,
//	                       which proto3 keeps, as its decimal digits), int2/4/8 (the
//	                       number), json, jsonb (the name, or the number)
//	repeated, map          json, jsonb, text (the JSON)
//	message                json, jsonb, text (the JSON)
//	google.protobuf.Timestamp
//	                       timestamptz, timestamp (seconds and nanos rounded to the
//	                       microsecond as PostgreSQL rounds them; beyond PostgreSQL's
//	                       range ReasonOutOfRange), text (RFC 3339, as protojson: years
//	                       1 to 9999), json, jsonb; nanos outside 0..999999999 are
//	                       ReasonInvalidValue
//	google.protobuf.Duration
//	                       int8 (microseconds, rounded half to even), text ("1.5s"),
//	                       json, jsonb
//	google.protobuf.*Value wrappers
//	                       as the wrapped scalar; a missing wrapper is NULL
//	google.protobuf.Struct, Value, ListValue
//	                       jsonb, json, text: the JSON value they hold
//	confluent.type.Decimal numeric (exact: unscaled two's-complement value and scale),
//	                       float4/8, int2/4/8 (integral values), text, json, jsonb
//	google.type.Date       date (years 1 to 9999; a partial date is ReasonInvalidValue),
//	                       json, jsonb, text
//
// JSON follows the protojson mapping with two differences chosen for
// PostgreSQL: keys are the .proto field names (as protojson's
// UseProtoNames, so attrs->>'country' matches the path attrs.country), and
// 64-bit integers are JSON numbers, not strings (jsonb stores them exactly
// as numeric). As in protojson, fields at their default without explicit
// presence are left out, bytes are base64, enums are names (numbers when
// unnamed), NaN and ±Infinity are the strings "NaN", "Infinity" and
// "-Infinity", Timestamp and Duration are strings, wrappers are their
// value, Struct/Value/ListValue are the JSON they hold, and
// confluent.type.Decimal is a number. A group (proto2's group, editions'
// message_encoding = DELIMITED) is an object as a message is, keyed as
// protojson keys it: G for "group G", not the field name g; a column
// cannot take a group itself. A map entry without its value holds the
// value's default, for an enum its first value (a closed enum's need not
// be 0). A text column holding a JSON string (Timestamp, Duration,
// FieldMask, a Value holding a string) gets the string's content, as for
// JSON records. google.protobuf.Any stays {"@type": url, "value": base64}
// (its type is not resolved). A string with NUL is ReasonInvalidValue in
// jsonb (json keeps \u0000); invalid UTF-8 in a string is
// ReasonInvalidUTF8 in json, jsonb and text. Nesting deeper than
// Options.MaxDepth is ReasonSchemaMismatch.
//
// Wire errors are ReasonSchemaMismatch naming the field path: a truncated
// tag, varint, fixed value or length, a field number of 0 or above 2^29-1
// (an unknown field's too, as protobuf's parsers have it), the reserved
// wire types 6 and 7, an unmatched end-group, and a wire type that does
// not fit the declared type of a field a column reads (or descends
// through; a repeated scalar may be packed or not). Fields no column reads
// are skipped after a framing check, without looking inside them, and so
// are unknown fields, groups included.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// ProtobufReferenceSchema is the reference event of the benchmarks as a
// Protobuf schema, field for field the JSON one: ts is a
// google.protobuf.Timestamp, amount a double (numeric columns read its
// shortest decimal), attrs a message. Register it as it is; its first
// message, sluice.reference.v1.Event, is the value (message index [0]).
const ProtobufReferenceSchema = `syntax = "proto3";

package sluice.reference.v1;

import "google/protobuf/timestamp.proto";

message Event {
  string event_id = 1;
  int64 tenant_id = 2;
  int64 user_id = 3;
  string type = 4;
  google.protobuf.Timestamp ts = 5;
  double amount = 6;
  string url = 7;
  string user_agent = 8;
  Attrs attrs = 9;
}

message Attrs {
  string country = 1;
  string device = 2;
  string session = 3;
  string experiment = 4;
}
`

// protobufSchemaFile is the import path the writer schema itself gets when
// its text does not name one; it cannot clash with a reference that names
// a real .proto file.
const protobufSchemaFile = "sluice/writer-schema.proto"

// compileProtobufPlan compiles the plan that reads the columns cols from
// messages of type msgIndexes (Confluent's message-index list; nil or
// empty means [0]) in the writer schema s. Only path columns of cols take
// part; the plan's column i is the i-th of them.
//
// Every error is a *RowError: ReasonSchemaMismatch when the schema does not
// compile or the index names no message, and the column, path and reason
// when a column cannot be read from the message (a path through a scalar,
// repeated or map field, or a column type the field cannot fill). The
// caller dead-letters each record written with that schema.
//
// The plan keeps the state of the last decode and scratch buffers: like a
// Decoder, it is used by one goroutine at a time.
func compileProtobufPlan(s *Schema, msgIndexes []int, cols []Column, opts Options) (valuePlan, error) {
	opts = opts.EnsureDefaults()
	fd, err := compileProtobufFile(s)
	if err != nil {
		return nil, &RowError{Reason: ReasonSchemaMismatch, Detail: err.Error()}
	}
	md, err := protobufMessage(fd, msgIndexes)
	if err != nil {
		return nil, &RowError{Reason: ReasonSchemaMismatch, Detail: err.Error()}
	}
	p, rerr := newProtobufPlan(md, cols, opts)
	if rerr != nil {
		return nil, rerr
	}
	return p, nil
}

// compileProtobufFile compiles the writer schema with its references.
func compileProtobufFile(s *Schema) (protoreflect.FileDescriptor, error) {
	srcs := make(map[string]string, len(s.References))
	descs := make(map[string]*descriptorpb.FileDescriptorProto)
	for _, r := range s.References {
		if r.Name == "" {
			return nil, fmt.Errorf("cannot use a schema reference without a name; the registry must give each reference its import path")
		}
		if fdp, ok := protobufDescriptor(r.Schema.Text); ok {
			fdp.Name = proto.String(r.Name)
			descs[r.Name] = fdp
		} else {
			srcs[r.Name] = r.Schema.Text
		}
	}
	name := protobufSchemaFile
	if strings.TrimSpace(s.Text) == "" {
		return nil, fmt.Errorf("cannot compile an empty protobuf schema")
	}
	if fdp, ok := protobufDescriptor(s.Text); ok {
		if n := fdp.GetName(); n != "" && srcs[n] == "" && descs[n] == nil {
			name = n
		}
		fdp.Name = proto.String(name)
		descs[name] = fdp
	} else {
		srcs[name] = s.Text
	}
	sources := &protocompile.SourceResolver{Accessor: func(path string) (io.ReadCloser, error) {
		if text, ok := srcs[path]; ok {
			return io.NopCloser(strings.NewReader(text)), nil
		}
		if text, ok := protobufBuiltinImports[path]; ok {
			return io.NopCloser(strings.NewReader(text)), nil
		}
		return nil, fmt.Errorf("import %q: %w (register it as a schema reference)", path, fs.ErrNotExist)
	}}
	resolver := protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
		if fdp, ok := descs[path]; ok {
			return protocompile.SearchResult{Proto: fdp}, nil
		}
		return sources.FindFileByPath(path)
	})
	c := protocompile.Compiler{Resolver: protocompile.WithStandardImports(resolver), MaxParallelism: 1}
	files, err := c.Compile(context.Background(), name)
	if err != nil {
		return nil, fmt.Errorf("cannot compile protobuf schema: %w", err)
	}
	return files[0], nil
}

// protobufDescriptor decodes text as a base64 serialized
// FileDescriptorProto, the form some serializers register.
func protobufDescriptor(text string) (*descriptorpb.FileDescriptorProto, bool) {
	if strings.ContainsAny(text, ";{\"") {
		return nil, false // .proto text: base64 has none of these
	}
	text = strings.Join(strings.Fields(text), "") // base64 may come wrapped
	if text == "" {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(text); err != nil {
			return nil, false
		}
	}
	fdp := new(descriptorpb.FileDescriptorProto)
	if err := proto.Unmarshal(b, fdp); err != nil {
		return nil, false
	}
	for _, m := range fdp.MessageType {
		fillJSONNames(m)
	}
	return fdp, true
}

// fillJSONNames gives fields without a json_name the default one, as protoc
// writes it: descriptors built by hand often leave it out, and the linker
// takes a missing name for an empty custom one.
func fillJSONNames(m *descriptorpb.DescriptorProto) {
	for _, f := range m.Field {
		if f.JsonName == nil {
			f.JsonName = proto.String(pbJSONName(f.GetName()))
		}
	}
	for _, n := range m.NestedType {
		fillJSONNames(n)
	}
}

// protobufMessage follows Confluent's message-index list.
func protobufMessage(fd protoreflect.FileDescriptor, indexes []int) (protoreflect.MessageDescriptor, error) {
	if len(indexes) == 0 {
		indexes = []int{0}
	}
	msgs := fd.Messages()
	var md protoreflect.MessageDescriptor
	for depth, i := range indexes {
		if i < 0 || i >= msgs.Len() {
			where := "the schema's file"
			if md != nil {
				where = string(md.FullName())
			}
			return nil, fmt.Errorf("message index %v names no message: %s has %d messages at depth %d, index %d asked; the record's framing does not match its schema",
				indexes, where, msgs.Len(), depth, i)
		}
		md = msgs.Get(i)
		msgs = md.Messages()
	}
	return md, nil
}

// pbWKT marks the message types with a conversion of their own.
type pbWKT uint8

const (
	wktNone pbWKT = iota
	wktTimestamp
	wktDuration
	wktWrapper // google.protobuf.*Value: field 1 is the value
	wktStruct
	wktValue
	wktListValue
	wktFieldMask
	wktAny
	wktDecimal // confluent.type.Decimal
	wktDate    // google.type.Date
)

var pbWKTs = map[protoreflect.FullName]pbWKT{
	"google.protobuf.Timestamp":   wktTimestamp,
	"google.protobuf.Duration":    wktDuration,
	"google.protobuf.DoubleValue": wktWrapper,
	"google.protobuf.FloatValue":  wktWrapper,
	"google.protobuf.Int64Value":  wktWrapper,
	"google.protobuf.UInt64Value": wktWrapper,
	"google.protobuf.Int32Value":  wktWrapper,
	"google.protobuf.UInt32Value": wktWrapper,
	"google.protobuf.BoolValue":   wktWrapper,
	"google.protobuf.StringValue": wktWrapper,
	"google.protobuf.BytesValue":  wktWrapper,
	"google.protobuf.Struct":      wktStruct,
	"google.protobuf.Value":       wktValue,
	"google.protobuf.ListValue":   wktListValue,
	"google.protobuf.FieldMask":   wktFieldMask,
	"google.protobuf.Any":         wktAny,
	"confluent.type.Decimal":      wktDecimal,
	"google.type.Date":            wktDate,
}

// pbType is a message type as the plan reads it.
type pbType struct {
	name   protoreflect.FullName
	wkt    pbWKT
	fields []pbField // declaration order, as protojson writes them
	byNum  pbIndex
}

// pbField is one field of a pbType.
type pbField struct {
	name     string
	key      string // JSON key: the name, but a group's as the .proto writes it (G, not g), as protojson's UseProtoNames
	num      protowire.Number
	kind     protoreflect.Kind
	wire     protowire.Type // wire type of one element
	list     bool           // repeated, not a map
	isMap    bool
	presence bool // explicit presence: missing is NULL, not the default
	packable bool
	oneof    int     // index of its oneof among the message's oneofs, -1 when none (or synthetic)
	msg      *pbType // message and group kinds, the entry type of a map
	enum     *pbEnum
}

// pbEnum names the values of an enum.
type pbEnum struct {
	names     map[int32]string
	def       int32 // the default: the first value, 0 in an open enum but any number in a closed one
	nullValue bool  // google.protobuf.NullValue: JSON null
}

func (e *pbEnum) name(v int32) (string, bool) {
	s, ok := e.names[v]
	return s, ok
}

// pbIndex finds a field by number: a dense table for small numbers, a map
// beyond.
type pbIndex struct {
	dense  []int32 // number → index+1, 0 when none
	sparse map[protowire.Number]int32
}

const pbDenseMax = 1024

func (x *pbIndex) add(num protowire.Number, i int) {
	if num < pbDenseMax {
		for int(num) >= len(x.dense) {
			x.dense = append(x.dense, 0)
		}
		x.dense[num] = int32(i) + 1
		return
	}
	if x.sparse == nil {
		x.sparse = make(map[protowire.Number]int32)
	}
	x.sparse[num] = int32(i) + 1
}

// get returns the index for num, -1 when none.
func (x *pbIndex) get(num protowire.Number) int {
	if uint64(num) < uint64(len(x.dense)) {
		return int(x.dense[num]) - 1
	}
	if x.sparse != nil {
		return int(x.sparse[num]) - 1
	}
	return -1
}

func pbWireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Sfixed32Kind, protoreflect.Fixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Sfixed64Kind, protoreflect.Fixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.BytesType
}

// pbTypes builds each message type once, recursive types included.
type pbTypes map[protoreflect.FullName]*pbType

func (ts pbTypes) get(md protoreflect.MessageDescriptor) *pbType {
	if t, ok := ts[md.FullName()]; ok {
		return t
	}
	t := &pbType{name: md.FullName(), wkt: pbWKTs[md.FullName()]}
	ts[md.FullName()] = t
	fds := md.Fields()
	t.fields = make([]pbField, fds.Len())
	oneofIndex := map[protoreflect.FullName]int{}
	for i := 0; i < md.Oneofs().Len(); i++ {
		if od := md.Oneofs().Get(i); !od.IsSynthetic() {
			oneofIndex[od.FullName()] = len(oneofIndex)
		}
	}
	for i := range t.fields {
		fd := fds.Get(i)
		f := &t.fields[i]
		*f = pbField{
			name:     string(fd.Name()),
			key:      fd.TextName(),
			num:      fd.Number(),
			kind:     fd.Kind(),
			wire:     pbWireType(fd.Kind()),
			list:     fd.IsList(),
			isMap:    fd.IsMap(),
			presence: fd.HasPresence(),
			packable: fd.IsList() && pbWireType(fd.Kind()) != protowire.BytesType && fd.Kind() != protoreflect.GroupKind,
			oneof:    -1,
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			f.oneof = oneofIndex[od.FullName()]
		}
		if m := fd.Message(); m != nil {
			f.msg = ts.get(m)
		}
		if ed := fd.Enum(); ed != nil {
			e := &pbEnum{names: make(map[int32]string, ed.Values().Len()), def: int32(ed.Values().Get(0).Number()),
				nullValue: ed.FullName() == "google.protobuf.NullValue"}
			for j := 0; j < ed.Values().Len(); j++ {
				v := ed.Values().Get(j)
				if _, dup := e.names[int32(v.Number())]; !dup {
					e.names[int32(v.Number())] = string(v.Name())
				}
			}
			f.enum = e
		}
		t.byNum.add(f.num, i)
	}
	return t
}

// typeName describes f for error messages.
func (f *pbField) typeName() string {
	switch {
	case f.isMap:
		return "map"
	case f.list && f.msg != nil:
		return "repeated " + string(f.msg.name)
	case f.list:
		return "repeated " + f.kind.String()
	case f.msg != nil:
		return string(f.msg.name)
	}
	return f.kind.String()
}

// pbAllowed lists the column types f can fill.
func pbAllowed(f *pbField) []Type {
	js := []Type{TypeText, TypeJSON, TypeJSONB}
	if f.list || f.isMap {
		return js
	}
	if f.msg != nil {
		switch f.msg.wkt {
		case wktTimestamp:
			return append([]Type{TypeTimestamptz, TypeTimestamp}, js...)
		case wktDuration:
			return append([]Type{TypeInt8}, js...)
		case wktWrapper:
			return pbAllowed(&f.msg.fields[0])
		case wktDecimal:
			return append([]Type{TypeNumeric, TypeFloat4, TypeFloat8, TypeInt2, TypeInt4, TypeInt8}, js...)
		case wktDate:
			return append([]Type{TypeDate}, js...)
		}
		return js
	}
	switch f.kind {
	case protoreflect.BoolKind:
		return append([]Type{TypeBool}, js...)
	case protoreflect.EnumKind:
		return append([]Type{TypeInt2, TypeInt4, TypeInt8}, js...)
	case protoreflect.StringKind:
		return append([]Type{TypeUUID, TypeInt2, TypeInt4, TypeInt8, TypeFloat4, TypeFloat8, TypeNumeric,
			TypeTimestamptz, TypeTimestamp, TypeDate, TypeBytea}, js...)
	case protoreflect.BytesKind:
		return append([]Type{TypeBytea, TypeUUID}, js...)
	}
	// Integers and floats.
	return append([]Type{TypeInt2, TypeInt4, TypeInt8, TypeNumeric, TypeFloat4, TypeFloat8, TypeTimestamptz, TypeTimestamp}, js...)
}

// protobufPlan reads the path columns from messages of one type.
type protobufPlan struct {
	root     pbNode
	cols     []pbCol
	slots    []pbSlot
	maxDepth int

	// State of the last decode.
	payload []byte
	occ     []pbOcc // occurrences recorded in multi slots

	// Scratch of appendPath, kept between records.
	scan      []pbScan // fields met in the messages being rendered
	segs      []pbSeg  // the byte ranges of a message being rendered (several when it merges)
	num       []byte   // number text
	limbs     []uint32 // decimal conversion
	keys      []pbSeg  // map keys in keyText, to drop repeated ones
	keyText   []byte
	errReason Reason
	errDetail string
	dedupe    bool // json and text keep one entry per map key; jsonb does that itself
	jsonb     bool
}

// pbNode is a message some column reads into.
type pbNode struct {
	path  string // dotted path of the message, "" for the record
	t     *pbType
	edges []pbEdge
	byNum pbIndex
}

// pbEdge is a field of a pbNode the walk stops at.
type pbEdge struct {
	f      *pbField
	path   string
	slot   int     // -1 for a oneof member recorded only to clear the others
	sub    *pbNode // columns read below this message field
	clears []int   // slots reset when this field is met: the other members of its oneof and what lies below them
}

// pbSlot remembers where a field's value is. Single slots keep the last
// occurrence (singular scalars); multi slots keep them all (messages, which
// merge, repeated fields and maps).
type pbSlot struct {
	multi      bool
	set        bool
	wt         protowire.Type
	start, end int32
	head, tail int32 // multi: list in plan.occ, -1 when empty
}

func (s *pbSlot) present() bool {
	if s.multi {
		return s.head >= 0
	}
	return s.set
}

func (s *pbSlot) reset() {
	s.set = false
	s.head, s.tail = -1, -1
}

// pbOcc is one occurrence of a field in the payload: its value bytes (the
// content of a length-delimited value).
type pbOcc struct {
	start, end int32
	next       int32
	wt         protowire.Type
}

// pbScan is a field met while scanning a message to render it.
type pbScan struct {
	field      int32 // index in pbType.fields
	start, end int32
	wt         protowire.Type
}

// pbSeg is a byte range of the payload.
type pbSeg struct{ start, end int32 }

// pbCol is a path column of the plan.
type pbCol struct {
	column
	absent bool // the path names no field of the writer schema: always NULL
	slot   int
	parent int // slot of the message holding the field, -1 for the record itself
	f      *pbField
}

func newProtobufPlan(md protoreflect.MessageDescriptor, cols []Column, opts Options) (*protobufPlan, *RowError) {
	types := pbTypes{}
	p := &protobufPlan{maxDepth: opts.MaxDepth}
	p.root.t = types.get(md)
	for _, c := range cols {
		if c.Source != SourcePath {
			continue
		}
		col := pbCol{column: column{Column: c, slot: -1, where: c.Path}, slot: -1, parent: -1}
		if rerr := p.addColumn(&col, types); rerr != nil {
			return nil, rerr
		}
		p.cols = append(p.cols, col)
	}
	p.addOneofs(&p.root)
	return p, nil
}

func (p *protobufPlan) newSlot(f *pbField) int {
	multi := f.msg != nil || f.list || f.isMap
	p.slots = append(p.slots, pbSlot{multi: multi, head: -1, tail: -1})
	return len(p.slots) - 1
}

// edge returns the edge of n for field index fi, adding it.
func (p *protobufPlan) edge(n *pbNode, fi int) *pbEdge {
	f := &n.t.fields[fi]
	if i := n.byNum.get(f.num); i >= 0 {
		return &n.edges[i]
	}
	path := f.name
	if n.path != "" {
		path = n.path + "." + f.name
	}
	n.edges = append(n.edges, pbEdge{f: f, path: path, slot: -1})
	n.byNum.add(f.num, len(n.edges)-1)
	return &n.edges[len(n.edges)-1]
}

func (t *pbType) fieldByName(name string) int {
	for i := range t.fields {
		if t.fields[i].name == name {
			return i
		}
	}
	for i := range t.fields {
		if pbJSONName(t.fields[i].name) == name {
			return i
		}
	}
	return -1
}

// pbJSONName is protobuf's default JSON name: lowerCamelCase.
func pbJSONName(s string) string {
	var b strings.Builder
	up := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			up = true
			continue
		}
		if up && c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		up = false
		b.WriteByte(c)
	}
	return b.String()
}

func (p *protobufPlan) addColumn(c *pbCol, types pbTypes) *RowError {
	segs := strings.Split(c.Path, ".")
	n := &p.root
	for j, seg := range segs {
		fi := n.t.fieldByName(seg)
		if fi < 0 {
			c.absent = true
			return nil
		}
		f := &n.t.fields[fi]
		if j == len(segs)-1 {
			if f.kind == protoreflect.GroupKind {
				return c.fail(ReasonWrongType, fmt.Sprintf("protobuf field %s is a group, which cannot be read; use a message field", c.Path))
			}
			allowed := pbAllowed(f)
			if !containsType(allowed, c.Type) {
				return c.fail(ReasonWrongType, fmt.Sprintf("protobuf field %s (%s) cannot fill a %s column; use type %s", c.Path, f.typeName(), c.Type, joinTypes(allowed)))
			}
			// Edges may move when the node grows: keep indexes, not pointers.
			e := p.edge(n, fi)
			if e.slot < 0 {
				e.slot = p.newSlot(f)
			}
			c.slot, c.f = e.slot, f
			return nil
		}
		if f.list || f.isMap || f.msg == nil || f.kind == protoreflect.GroupKind {
			return c.fail(ReasonWrongType, fmt.Sprintf("path %s goes through protobuf field %s (%s), which has no fields to read; take it whole with a json, jsonb or text column",
				c.Path, strings.Join(segs[:j+1], "."), f.typeName()))
		}
		e := p.edge(n, fi)
		if e.slot < 0 {
			e.slot = p.newSlot(f)
		}
		c.parent = e.slot
		if e.sub == nil {
			e.sub = &pbNode{path: e.path, t: f.msg}
		}
		n = e.sub
	}
	return nil
}

func containsType(ts []Type, t Type) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// addOneofs makes every member of a oneof that has a member in a node
// clear the others, so the last member met wins as in protobuf.
func (p *protobufPlan) addOneofs(n *pbNode) {
	for i := range n.edges {
		if sub := n.edges[i].sub; sub != nil {
			p.addOneofs(sub)
		}
	}
	oneofs := map[int]bool{}
	for i := range n.edges {
		if o := n.edges[i].f.oneof; o >= 0 {
			oneofs[o] = true
		}
	}
	if len(oneofs) == 0 {
		return
	}
	for fi := range n.t.fields {
		if oneofs[n.t.fields[fi].oneof] {
			p.edge(n, fi)
		}
	}
	for i := range n.edges {
		e := &n.edges[i]
		if e.f.oneof < 0 {
			continue
		}
		for j := range n.edges {
			if j != i && n.edges[j].f.oneof == e.f.oneof {
				e.clears = n.edges[j].appendSlots(e.clears)
			}
		}
	}
}

// appendSlots appends the slots at and below e.
func (e *pbEdge) appendSlots(dst []int) []int {
	if e.slot >= 0 {
		dst = append(dst, e.slot)
	}
	if e.sub != nil {
		for i := range e.sub.edges {
			dst = e.sub.edges[i].appendSlots(dst)
		}
	}
	return dst
}
