package codec

// Shared registry types as the codec contract names them. The registry
// framing, the plan cache and the Decoder integration define the same
// types; this file stands in for them on branches that do not have them
// and goes away when they meet.

// SchemaType is the kind of schema a Schema Registry stores.
type SchemaType uint8

// Schema types.
const (
	SchemaAvro SchemaType = iota
	SchemaProtobuf
	SchemaJSON
)

// Schema is a writer schema as a Schema Registry stores it, references resolved.
type Schema struct {
	Type       SchemaType
	Text       string        // Avro JSON, .proto text (or base64 FileDescriptorProto), JSON Schema
	References []NamedSchema // every transitive reference, dependencies first
}

// NamedSchema is a referenced schema under the name it is imported by.
type NamedSchema struct {
	Name   string // Avro full name or proto import path
	Schema Schema
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

// Reasons of the registry formats.
const (
	ReasonBadFraming     Reason = "bad_framing"
	ReasonUnknownSchema  Reason = "unknown_schema"
	ReasonSchemaMismatch Reason = "schema_mismatch"
)
