package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// SchemaField is a top-level field of a writer schema and the column type
// its values map to: the type a new column for it gets when the table
// evolves (docs/partitions.md, "Schema evolution").
type SchemaField struct {
	Name string // the field's name, usable as the column's path
	Type Type   // TypeInvalid when no type fits: a field of type null
}

// SchemaFields lists the top-level fields of the writer schema s in
// declaration order, each with the column type that holds every value of
// it unchanged. For Protobuf the fields are those of the message that
// indexes names (Confluent's message-index list of a record's framing;
// nil or empty is [0], the file's first message):
//
//	Avro                                   column
//	boolean                                bool
//	int, long                              int4, int8
//	float, double                          float4, float8
//	string                                 text (uuid with logicalType uuid)
//	bytes, fixed                           bytea (numeric with logicalType decimal)
//	int date                               date
//	long timestamp-millis|micros|nanos     timestamptz
//	long local-timestamp-*                 timestamp
//	int/long time-*, duration, enum        text
//	record, array, map, other unions       jsonb
//	union of null and one type             that type's column (null is NULL)
//	null (alone, or a union of null only)  none: TypeInvalid
//
//	Protobuf
//	bool                                   bool
//	int32, sint32, sfixed32                int4
//	uint32, fixed32, int64, sint64, sfixed64  int8
//	uint64, fixed64                        numeric
//	float, double                          float4, float8
//	string, enum                           text
//	bytes                                  bytea
//	google.protobuf.Timestamp              timestamptz
//	google.protobuf.*Value wrappers        their value's column
//	confluent.type.Decimal                 numeric
//	google.type.Date                       date
//	repeated, map, other messages          jsonb
//	google.protobuf.NullValue              none: TypeInvalid
//
//	JSON Schema (the root's properties)
//	integer                                int8
//	number                                 numeric
//	boolean                                bool
//	string                                 text
//	string format date-time, date, uuid    timestamptz, date, uuid
//	object, array, several types, none     jsonb
//	type [T, "null"]                       T's column (null is NULL)
//	type "null" (or ["null"]), const null,
//	enum [null]                            none: TypeInvalid
//
// A field of type null holds no value to type a column by: its Type is
// TypeInvalid, and the caller gives it no column, as for
// DebeziumAvroFields (a column is never retyped, so a guessed type would
// stay when a later writer schema gives the field a real one). So is a
// Protobuf field of type google.protobuf.NullValue, an enum whose only
// value stands for null (a repeated one is jsonb, as any list).
//
// A JSON Schema's number is numeric, not float8: JSON numbers are decimal
// text, which numeric keeps exactly at any size (12.50 stays 12.50, and
// 1e400 is no overflow). A $ref into the root's $defs or definitions is
// followed; any other $ref, and every keyword the table does not list
// (enum, oneOf, allOf …), is jsonb. A schema that does not parse, and a
// JSON Schema whose root has no properties, is an error.
func SchemaFields(s *Schema, indexes []int) ([]SchemaField, error) {
	switch s.Type {
	case SchemaAvro:
		return avroFields(s)
	case SchemaProtobuf:
		return protobufFields(s, indexes)
	}
	return jsonSchemaFields(s)
}

func avroFields(s *Schema) ([]SchemaField, error) {
	root, err := parseAvroSchema(s)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the Avro schema: %w", err)
	}
	if root.kind != avroRecord {
		return nil, fmt.Errorf("cannot list the fields of an Avro %s: the writer schema of a table's records must be a record", root)
	}
	out := make([]SchemaField, 0, len(root.fields))
	for _, f := range root.fields {
		out = append(out, SchemaField{Name: f.name, Type: avroFieldType(f.t)})
	}
	return out, nil
}

// nonNull returns t, or the one type a union of null and it holds; nil
// for a union of several types other than null, or of null alone.
func nonNull(t *avroType) *avroType {
	if t.kind != avroUnion {
		return t
	}
	var one *avroType
	for _, b := range t.branches {
		if b.kind == avroNull {
			continue
		}
		if one != nil {
			return nil
		}
		one = b
	}
	return one
}

// onlyNull reports whether t holds nothing but null: null itself, or a
// union of null branches only.
func onlyNull(t *avroType) bool {
	if t.kind != avroUnion {
		return t.kind == avroNull
	}
	for _, b := range t.branches {
		if b.kind != avroNull {
			return false
		}
	}
	return true
}

// unionColumnType is the column type of a field of Avro type t, as
// SchemaFields and DebeziumAvroFields list it: TypeInvalid when t holds
// nothing but null (onlyNull: no value to type a column by, and a column
// is never retyped, so a guess would stay when a later writer schema
// gives the field a type), jsonb for a union of several types other than
// null, and otherwise what of reads from the one type t holds besides
// null.
func unionColumnType(t *avroType, of func(*avroType) Type) Type {
	if onlyNull(t) {
		return TypeInvalid
	}
	if t = nonNull(t); t == nil {
		return TypeJSONB
	}
	return of(t)
}

// avroFieldType is the column type of a field of Avro type t
// (SchemaFields).
func avroFieldType(t *avroType) Type { return unionColumnType(t, avroColumnType) }

// avroColumnType is the column type of a value of Avro type t, which is
// no union.
func avroColumnType(t *avroType) Type {
	switch t.kind {
	case avroBoolean:
		return TypeBool
	case avroInt, avroLong:
		switch t.logical {
		case logicalDate:
			return TypeDate
		case logicalTimestampMillis, logicalTimestampMicros, logicalTimestampNanos:
			return TypeTimestamptz
		case logicalLocalTimestampMillis, logicalLocalTimestampMicros, logicalLocalTimestampNanos:
			return TypeTimestamp
		case logicalTimeMillis, logicalTimeMicros:
			return TypeText
		}
		if t.kind == avroInt {
			return TypeInt4
		}
		return TypeInt8
	case avroFloat:
		return TypeFloat4
	case avroDouble:
		return TypeFloat8
	case avroString:
		if t.logical == logicalUUID {
			return TypeUUID
		}
		return TypeText
	case avroBytes, avroFixed:
		switch t.logical {
		case logicalDecimal:
			return TypeNumeric
		case logicalDuration:
			return TypeText
		case logicalUUID:
			return TypeUUID
		}
		return TypeBytea
	case avroEnum:
		return TypeText
	}
	return TypeJSONB
}

// DebeziumAvroFields lists the columns of the source table whose change
// events envelope describes: Debezium's Envelope record as Confluent's
// AvroConverter registers it (subject TOPIC-value). The columns are the
// fields of the row record of after (of before when there is no after),
// in declaration order, each with the column type that holds every value
// FormatDebezium with ConverterAvro reads from it. The type follows the
// field's Kafka Connect type, as the decoder derives the Connect schema
// (connect.name, else the name of its Avro logical type; connect.type),
// and Debezium's encodings:
//
//	Connect type                                        column
//	org.apache.kafka.connect.data.Decimal,
//	io.debezium.data.VariableScaleDecimal               numeric
//	io.debezium.time.Date, connect Date                 date
//	io.debezium.time.Timestamp, MicroTimestamp,
//	NanoTimestamp, connect Timestamp                    timestamp (the database's wall clock)
//	io.debezium.time.ZonedTimestamp                     timestamptz
//	io.debezium.time.Time, MicroTime, NanoTime,
//	connect Time                                        text
//	io.debezium.data.Json                               jsonb
//	io.debezium.data.Uuid, string with logicalType uuid uuid
//	boolean                                             bool
//	int8, int16 (connect.type)                          int2
//	int32, int64 (Year, MicroDuration, …)               int4, int8
//	float32, float64                                    float4, float8
//	string, enum (Enum, ZonedTime, Xml, …)              text
//	bytes, fixed (Bits, …)                              bytea
//	struct, array, map (Geometry, hstore, …),
//	a union of several types                            jsonb
//	a union of null and one type                        that type's column
//	null (alone, or a union of null only)               none: TypeInvalid
//
// A field of type null holds no value to type a column by: its Type is
// TypeInvalid, and the caller gives it no column (a column is never
// retyped, so a guessed type would stay when the field gets a real one).
// A schema that does not parse, or is not a record with an after or
// before field of a record type (or of a union of null and one), is an
// error.
func DebeziumAvroFields(envelope *Schema) ([]SchemaField, error) {
	root, err := parseDebeziumAvro(envelope, "value")
	if err != nil {
		return nil, err
	}
	var row *avroType
	for _, name := range []string{"after", "before"} {
		i := slices.IndexFunc(root.fields, func(f avroField) bool { return f.name == name })
		if i >= 0 && row == nil {
			if t := nonNull(root.fields[i].t); t != nil && t.kind == avroRecord {
				row = t
			}
		}
	}
	if row == nil {
		return nil, fmt.Errorf("record %s is no Debezium Envelope: it has no after or before field of a record type (the row); a format debezium value schema is the connector's Envelope", root.name)
	}
	out := make([]SchemaField, 0, len(row.fields))
	for _, f := range row.fields {
		out = append(out, SchemaField{Name: f.name, Type: debeziumColumnType(f.t)})
	}
	return out, nil
}

// DebeziumAvroKey lists the fields of key, the record key's writer schema
// Debezium registers with AvroConverter (subject TOPIC-key): the source
// table's primary key columns, in order. A schema that does not parse, or
// is not a record of at least one field, is an error.
func DebeziumAvroKey(key *Schema) ([]string, error) {
	root, err := parseDebeziumAvro(key, "key")
	if err != nil {
		return nil, err
	}
	if len(root.fields) == 0 {
		return nil, fmt.Errorf("key record %s has no fields", root.name)
	}
	names := make([]string, len(root.fields))
	for i, f := range root.fields {
		names[i] = f.name
	}
	return names, nil
}

// parseDebeziumAvro parses s, which must be an Avro record: the writer
// schema of Debezium's values or keys (what).
func parseDebeziumAvro(s *Schema, what string) (*avroType, error) {
	if s.Type != SchemaAvro {
		return nil, fmt.Errorf("the %s schema is a %s schema, and converter avro reads Avro", what, s.Type)
	}
	root, err := parseAvroSchema(s)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the Avro %s schema: %w", what, err)
	}
	if root.kind != avroRecord {
		return nil, fmt.Errorf("the Avro %s schema is a %s, not the record Debezium writes", what, root)
	}
	return root, nil
}

// connectColumnTypes are the column types of the Connect types that name
// an encoding of Debezium's (schemaEncodings) or a string with a column
// type of its own.
var connectColumnTypes = map[string]Type{
	"org.apache.kafka.connect.data.Decimal":   TypeNumeric,
	"io.debezium.data.VariableScaleDecimal":   TypeNumeric,
	"io.debezium.time.Date":                   TypeDate,
	"org.apache.kafka.connect.data.Date":      TypeDate,
	"io.debezium.time.Timestamp":              TypeTimestamp,
	"io.debezium.time.MicroTimestamp":         TypeTimestamp,
	"io.debezium.time.NanoTimestamp":          TypeTimestamp,
	"org.apache.kafka.connect.data.Timestamp": TypeTimestamp,
	"io.debezium.time.ZonedTimestamp":         TypeTimestamptz,
	"io.debezium.time.Time":                   TypeText,
	"io.debezium.time.MicroTime":              TypeText,
	"io.debezium.time.NanoTime":               TypeText,
	"org.apache.kafka.connect.data.Time":      TypeText,
	"io.debezium.data.Json":                   TypeJSONB,
	"io.debezium.data.Uuid":                   TypeUUID,
}

// debeziumColumnType is the column type of a row field of type t (see
// DebeziumAvroFields): TypeInvalid for a type that holds only null.
func debeziumColumnType(t *avroType) Type { return unionColumnType(t, connectColumnType) }

// connectColumnType is the column type of a value of Avro type t, which
// is no union, by its Kafka Connect type.
func connectColumnType(t *avroType) Type {
	if typ, ok := connectColumnTypes[t.connectTypeName()]; ok {
		return typ
	}
	switch t.kind {
	case avroBoolean:
		return TypeBool
	case avroInt:
		if t.connectType == "int8" || t.connectType == "int16" {
			return TypeInt2
		}
		return TypeInt4
	case avroLong:
		return TypeInt8
	case avroFloat:
		return TypeFloat4
	case avroDouble:
		return TypeFloat8
	case avroString:
		if t.logical == logicalUUID {
			return TypeUUID
		}
		return TypeText
	case avroEnum:
		return TypeText
	case avroBytes, avroFixed:
		return TypeBytea
	}
	return TypeJSONB
}

func protobufFields(s *Schema, indexes []int) ([]SchemaField, error) {
	fd, err := compileProtobufFile(s)
	if err != nil {
		return nil, err
	}
	md, err := protobufMessage(fd, indexes)
	if err != nil {
		return nil, err
	}
	t := pbTypes{}.get(md)
	out := make([]SchemaField, 0, len(t.fields))
	for i := range t.fields {
		out = append(out, SchemaField{Name: t.fields[i].name, Type: pbFieldType(&t.fields[i])})
	}
	return out, nil
}

func pbFieldType(f *pbField) Type {
	if f.list || f.isMap {
		return TypeJSONB
	}
	if f.enum != nil && f.enum.nullValue {
		return TypeInvalid // google.protobuf.NullValue: null, whatever is written
	}
	if f.msg != nil {
		switch f.msg.wkt {
		case wktTimestamp:
			return TypeTimestamptz
		case wktWrapper:
			return pbFieldType(&f.msg.fields[0])
		case wktDecimal:
			return TypeNumeric
		case wktDate:
			return TypeDate
		}
		return TypeJSONB
	}
	switch f.kind {
	case protoreflect.BoolKind:
		return TypeBool
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return TypeInt4
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return TypeInt8
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return TypeNumeric
	case protoreflect.FloatKind:
		return TypeFloat4
	case protoreflect.DoubleKind:
		return TypeFloat8
	case protoreflect.BytesKind:
		return TypeBytea
	}
	return TypeText // string, enum
}

// jsonNode is a JSON Schema (sub)schema by keyword.
type jsonNode map[string]json.RawMessage

func jsonSchemaFields(s *Schema) ([]SchemaField, error) {
	var root jsonNode
	if err := json.Unmarshal([]byte(s.Text), &root); err != nil {
		return nil, fmt.Errorf("cannot parse the JSON Schema: %w", err)
	}
	node := root.resolve(root)
	if node == nil || len(node["properties"]) == 0 {
		return nil, fmt.Errorf("cannot list the fields of a JSON Schema whose root has no properties: the writer schema of a table's records must describe an object")
	}
	// The properties in declaration order, which a map would lose.
	dec := json.NewDecoder(bytes.NewReader(node["properties"]))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("cannot list the fields of a JSON Schema whose properties are not an object")
	}
	var out []SchemaField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("cannot parse the JSON Schema's properties: %w", err)
		}
		var prop jsonNode
		if err := dec.Decode(&prop); err != nil {
			// A boolean schema (true: anything) names no type: jsonb.
			if _, ok := err.(*json.UnmarshalTypeError); !ok {
				return nil, fmt.Errorf("cannot parse the JSON Schema's properties: %w", err)
			}
		}
		out = append(out, SchemaField{Name: tok.(string), Type: root.resolve(prop).columnType()})
	}
	return out, nil
}

// resolve follows n's $ref into the root's $defs or definitions; it
// returns nil for a $ref elsewhere (another schema, a deeper pointer) or
// one that loops.
func (root jsonNode) resolve(n jsonNode) jsonNode {
	for range 32 {
		raw, ok := n["$ref"]
		if !ok {
			return n
		}
		var ref string
		if json.Unmarshal(raw, &ref) != nil {
			return nil
		}
		var defs json.RawMessage
		var name string
		for _, kw := range []string{"$defs", "definitions"} {
			if rest, ok := strings.CutPrefix(ref, "#/"+kw+"/"); ok && !strings.Contains(rest, "/") {
				defs, name = root[kw], strings.NewReplacer("~1", "/", "~0", "~").Replace(rest)
			}
		}
		var byName map[string]jsonNode
		if defs == nil || json.Unmarshal(defs, &byName) != nil || byName[name] == nil {
			return nil
		}
		n = byName[name]
	}
	return nil
}

// columnType maps a property's schema to its column (SchemaFields):
// TypeInvalid for a property that holds null alone (type "null" or
// ["null"], const null, an enum of null only), which, as an Avro field of
// type null, types no column.
func (n jsonNode) columnType() Type {
	if n.onlyNull() {
		return TypeInvalid
	}
	var types []string
	if raw := n["type"]; raw != nil {
		var one string
		if json.Unmarshal(raw, &one) == nil {
			types = []string{one}
		} else if json.Unmarshal(raw, &types) != nil {
			return TypeJSONB
		}
	}
	t := ""
	for _, x := range types {
		if x == "null" {
			continue
		}
		if t != "" {
			return TypeJSONB
		}
		t = x
	}
	if t == "" && len(types) > 0 {
		return TypeInvalid
	}
	switch t {
	case "integer":
		return TypeInt8
	case "number":
		return TypeNumeric
	case "boolean":
		return TypeBool
	case "string":
		var format string // none, or not a string: text
		json.Unmarshal(n["format"], &format)
		switch format {
		case "date-time":
			return TypeTimestamptz
		case "date":
			return TypeDate
		case "uuid":
			return TypeUUID
		}
		return TypeText
	}
	return TypeJSONB
}

// onlyNull reports whether n's const is null, or its enum lists null
// alone: whatever its type says, the property holds null only.
func (n jsonNode) onlyNull() bool {
	if raw, ok := n["const"]; ok {
		return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
	}
	var enum []json.RawMessage
	if json.Unmarshal(n["enum"], &enum) != nil || len(enum) == 0 {
		return false
	}
	for _, v := range enum {
		if !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return false
		}
	}
	return true
}

// UnmatchedPaths returns the names of the path columns of cols whose
// path's first segment names no top-level field of the writer schema s:
// by the field's name in Avro, by its name or JSON name in Protobuf (of
// the message indexes names, as SchemaFields). Such a column is NULL in
// every record written with s (ReasonMissingRequired when Required),
// which is right for a field a newer writer schema added and silent for
// a misspelt path; the caller warns. JSON Schema, whose properties are
// open, and a schema that does not parse give nil.
func UnmatchedPaths(s *Schema, indexes []int, cols []Column) []string {
	var has func(string) bool
	switch s.Type {
	case SchemaAvro:
		root, err := parseAvroSchema(s)
		if err != nil || root.kind != avroRecord {
			return nil
		}
		has = root.hasField
	case SchemaProtobuf:
		fd, err := compileProtobufFile(s)
		if err != nil {
			return nil
		}
		md, err := protobufMessage(fd, indexes)
		if err != nil {
			return nil
		}
		t := pbTypes{}.get(md)
		has = func(name string) bool { return t.fieldByName(name) >= 0 }
	default:
		return nil
	}
	return unmatched(cols, has)
}

// unmatched returns the names of the path columns of cols whose path's
// first segment has does not know.
func unmatched(cols []Column, has func(string) bool) []string {
	var out []string
	for _, c := range cols {
		if c.Source != SourcePath || c.Path == "" {
			continue
		}
		if first, _, _ := strings.Cut(c.Path, "."); !has(first) {
			out = append(out, c.Name)
		}
	}
	return out
}

// hasField reports whether record t has a field of that name.
func (t *avroType) hasField(name string) bool {
	for _, f := range t.fields {
		if f.name == name {
			return true
		}
	}
	return false
}

// UnmatchedRowPaths is UnmatchedPaths for FormatDebezium with
// ConverterAvro, whose paths name fields of the row: of the record the
// writer schema's after field holds (or before, where after is missing).
// A schema that is no such envelope gives nil.
func UnmatchedRowPaths(s *Schema, cols []Column) []string {
	if s.Type != SchemaAvro {
		return nil
	}
	root, err := parseAvroSchema(s)
	if err != nil || root.kind != avroRecord {
		return nil
	}
	var row *avroType
	for _, name := range []string{"after", "before"} {
		for _, f := range root.fields {
			if f.name != name {
				continue
			}
			t := f.t
			if t.kind == avroUnion {
				for _, b := range t.branches {
					if b.kind == avroRecord {
						t = b
					}
				}
			}
			if t.kind == avroRecord && row == nil {
				row = t
			}
		}
	}
	if row == nil {
		return nil
	}
	return unmatched(cols, row.hasField)
}
