// Package registry is Sluice's Schema Registry client: it fetches the writer
// schemas that registry-framed records (Avro, Protobuf, JSON Schema) name by
// id or GUID, resolves their references and caches the result.
//
// # Contract
//
//   - Client.Schema returns the schema with every reference resolved
//     transitively: Schema.References lists each referenced schema once,
//     dependencies first, so a compiler can add them in order. A reference
//     names another subject and version; its Named.Name is what the
//     referencing schema calls it (an Avro full name, a .proto import path,
//     a JSON Schema $ref URL). References are looked up including
//     soft-deleted versions, as Confluent's deserializers look them up: a
//     schema id stays served after a soft delete, and so must what it
//     references.
//   - Results are cached by id (and by GUID) in a bounded LRU
//     (Options.CacheSize, default 10,000); referenced subject versions are
//     cached the same way, since a registry never changes a version's text.
//     Concurrent callers asking for one id share one request.
//   - Errors tell the caller what to do. IsPermanent reports the ones that
//     will not change on retry for this record: the registry answered that
//     the schema, subject or version does not exist (ErrNotFound; the record
//     becomes a dead letter), or that a schema is of a type Sluice cannot
//     read or its references are unusable (ErrInvalidSchema). Everything
//     else (unreachable, 5xx, 429, timeouts, authentication refused, a URL
//     that is not a Schema Registry, such as one answering 404, or 200
//     without a schema) is transient: the caller retries with backoff and
//     surfaces the error, which names the URL and the likely fix.
//   - A Client is safe for concurrent use. It does no I/O until asked.
//
// The HTTP work is done by franz-go's pkg/sr; this package adds reference
// resolution, caching, request sharing and the error classification.
package registry

import (
	"fmt"
	"strings"
)

// SchemaType is the kind of a registered schema.
type SchemaType uint8

// Schema types, by the registry's schemaType names AVRO (the default when a
// registry omits the type), PROTOBUF and JSON.
const (
	TypeAvro SchemaType = iota
	TypeProtobuf
	TypeJSON
)

// String returns the configuration name: avro, protobuf or json.
func (t SchemaType) String() string {
	switch t {
	case TypeAvro:
		return "avro"
	case TypeProtobuf:
		return "protobuf"
	case TypeJSON:
		return "json"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseSchemaType accepts avro, protobuf and json (any case; the registry's
// AVRO, PROTOBUF, JSON included).
func ParseSchemaType(s string) (SchemaType, error) {
	switch strings.ToLower(s) {
	case "avro", "":
		return TypeAvro, nil
	case "protobuf":
		return TypeProtobuf, nil
	case "json":
		return TypeJSON, nil
	}
	return 0, fmt.Errorf("cannot use schema type %q; use avro, protobuf or json", s)
}

// Schema is a writer schema as the registry stores it, references resolved.
// It mirrors codec.Schema; Sluice converts one into the other.
type Schema struct {
	Type SchemaType
	// Text is the schema: Avro JSON, .proto source, or a JSON Schema.
	Text string
	// References lists every schema this one references, transitively,
	// each once, dependencies first. The Schemas inside have no References
	// of their own: the list is already flat.
	References []Named

	// ID is the registry's id of the schema (0 for a referenced schema
	// fetched by subject and version when the registry did not say).
	ID int
	// GUID is the registry's GUID of the schema when it reported one.
	GUID string
	// Subject and Version are set when the schema was fetched by subject
	// (LatestSchema, and every entry of References).
	Subject string
	Version int
}

// Named is a referenced schema and the name the referencing schema uses for
// it.
type Named struct {
	Name   string
	Schema Schema
}

// Reference names a registered schema that a schema being registered
// depends on.
type Reference struct {
	// Name is what the schema calls it: an Avro full name, a .proto import
	// path, a JSON Schema $ref.
	Name    string
	Subject string
	Version int
}
