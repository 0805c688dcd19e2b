package codec

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// SchemaField is a top-level field of a writer schema and the column type
// its values map to: the type a new column for it gets when the table
// evolves (docs/partitions.md, "Schema evolution").
type SchemaField struct {
	Name string // the field's name, usable as the column's path
	Type Type
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
//
// JSON Schema writer schemas are not listed (nil, nil): their records are
// JSON documents, which keep unmapped members through a table's unmapped
// column. A schema that does not parse is an error.
func SchemaFields(s *Schema, indexes []int) ([]SchemaField, error) {
	switch s.Type {
	case SchemaAvro:
		return avroFields(s)
	case SchemaProtobuf:
		return protobufFields(s, indexes)
	}
	return nil, nil
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

func avroFieldType(t *avroType) Type {
	if t.kind == avroUnion {
		var one *avroType
		for _, b := range t.branches {
			if b.kind == avroNull {
				continue
			}
			if one != nil {
				return TypeJSONB
			}
			one = b
		}
		if one == nil {
			return TypeJSONB
		}
		t = one
	}
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
