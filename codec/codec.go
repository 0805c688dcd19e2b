// Package codec turns Kafka record bytes into PostgreSQL binary COPY fields.
//
// # Contract
//
//   - A Decoder is built once per target table from its column specs and is
//     then used by one goroutine at a time (it owns scratch buffers and
//     decompressors).
//   - Decoder.AppendFields appends exactly NumFields() binary COPY fields
//     (int32 big-endian length followed by the bytes, or length -1 for NULL)
//     to the caller's buffer, in column order. It does not write the int16
//     field count of the tuple: the caller frames tuples (see package pgcopy).
//     Decoder.Op then says what the tuple means (an upsert, a delete); for
//     records that change no row (OpSkip) or truncate the table
//     (OpTruncate) nothing is appended and the caller frames no tuple.
//   - A record that cannot become a row (malformed JSON, wrong type, out of
//     range, missing required field, invalid UTF-8 or NUL in text, bad
//     compression frame, oversized) yields a *RowError naming the column,
//     the path or source, the Reason and a detail, and the buffer is
//     returned truncated to its length at entry, so the caller's batch is
//     never left with half a tuple.
//   - Every field the decoder emits is one PostgreSQL (14 or later) accepts
//     for the column's type: the decoder validates instead of letting COPY
//     fail. The tests hold this against a real server.
//   - Pure functions, no I/O, no goroutines, and no allocations per record in
//     steady state (asserted for the reference event, plain and under every
//     content-encoding).
//
// # Formats
//
// FormatJSON: the record value is one JSON document. When any column reads
// a JSON path the document must be an object (anything else is
// ReasonMalformedJSON); without path columns a json/jsonb kafka.value
// column takes any JSON value. The whole document is validated in one
// pass even where no column looks, so a record is either valid JSON or
// dead-lettered. A tombstone (nil value) is not parsed: every path column
// and kafka.value is NULL (ReasonMissingRequired where Required); with
// Options.Deletes it is instead a delete of the row the record key names
// (see Decoder.Op). An empty, non-nil value is ReasonMalformedJSON.
//
// FormatRaw: no parsing and no decompression; the default columns are
// RawColumns (topic, partition, offset, timestamp, key, value as received,
// headers as jsonb). Custom raw columns may use any kafka.* source.
//
// FormatAvro, FormatProtobuf, FormatJSONSchema: values written by a Schema
// Registry serializer (see Schema Registry framing below). FormatAvro
// decodes the Avro binary datum with its writer schema (see Avro below);
// FormatJSONSchema decodes the JSON document after the framing exactly as
// FormatJSON decodes a value. The JSON Schema itself is fetched, so that a
// record naming an unknown schema is a dead letter, but values are not
// validated against it: the columns' own checks apply. For FormatAvro and
// FormatProtobuf a kafka.value column must be bytea; for FormatJSONSchema
// kafka.value text, json and jsonb hold the JSON document after the
// framing. In every registry format a bytea kafka.value holds the value
// with its framing.
//
// # Schema Registry framing
//
// Confluent's wire format: the value starts with magic byte 0 and the
// schema id (4 bytes, big-endian), or magic byte 1 and the schema's
// 16-byte GUID; for Protobuf the message indexes follow (a zigzag varint
// count, then as many zigzag varint indexes; the single byte 0 means
// [0]). Newer serializers may instead put the same bytes (magic byte, id
// or GUID, Protobuf message indexes) in a __value_schema_id record
// header (matched exactly; the last one wins), and the value is then the
// bare datum. A last header whose value is null counts as none, as in
// Confluent's deserializers: the value carries the prefix. Any other first
// byte, a truncated prefix or a malformed (or empty) header is
// ReasonBadFraming. Record keys may be framed too (Record keys
// below).
//
// The decoder never does I/O. A record whose schema it does not have
// makes AppendFields return a *SchemaNeededError naming the SchemaRef;
// the caller fetches the schema, calls Decoder.AddSchema (with nil when
// the registry does not know the id) and decodes the record again. Each
// schema is compiled once for the table's columns and cached
// (Options.MaxSchemas, oldest evicted first). Records naming a schema the
// registry does not know are ReasonUnknownSchema; after 30 seconds the
// next such record asks for the schema again, since a registry replica
// may lag behind a new registration. A schema of another type than the
// format, or one that does not parse, makes its records
// ReasonSchemaMismatch; a schema whose value at a column's path can never
// fill the column's type makes its records ReasonWrongType for that
// column. A column whose path names no field of the writer schema is NULL
// (ReasonMissingRequired when Required): writer schemas evolve, and one
// table takes records of every version. A tombstone has no framing: its
// path columns are NULL, as in FormatJSON.
//
// # Record keys
//
// A kafka.key column without a path holds the key as received. With a
// path (source kafka.key, path id) it reads a field of the key, converted
// as a value's field is, NULL for a null key (ReasonMissingRequired when
// Required); errors name the path kafka.key.PATH. Formats json, avro,
// protobuf and json_schema only. In FormatJSON the key must then be a JSON
// object (anything else is ReasonMalformedJSON at kafka.key). In the
// registry formats the key is framed like a value (magic byte and id or
// GUID, Protobuf message indexes, or the same bytes in a __key_schema_id
// header with a bare key) and decoded with its own writer schema, of the
// format's schema type, registered under the subject TOPIC-key: a key
// that is not framed is ReasonBadFraming. Key schemas are cached apart
// from value schemas (the same id may be in both): AppendFields returns a
// *SchemaNeededError with Key set, and the caller hands the schema to
// Decoder.AddKeySchema. Errors of the key schema and key datum are those
// of a value's, at kafka.key. A decoder without such columns never reads
// the key, framed or not.
//
// Deletes (Options.Deletes) of a registry format read a tombstone's key
// columns from a framed key (a __key_schema_id header that is not null,
// or a first byte 0 or 1): a key column reading kafka.key with a path
// takes that path, one reading a value path the same path in the key
// record, which is how Debezium and Confluent keys carry the primary key
// fields. A key column of kafka.key without a path takes the key as
// received. A missing field or one that does not convert is ReasonBadKey.
// An unframed key is read as for FormatJSON (see Decoder.Op), unless a
// column reads kafka.key with a path: then it is ReasonBadFraming. Upserts
// read the key only for kafka.key columns with a path.
//
// # Avro
//
// Paths name record fields (attrs.country) and, through a map, its keys;
// a path goes through unions into whichever branch the datum takes (a
// null branch, or a branch without the field, gives NULL). Arrays cannot
// be indexed. Named types, namespaces, references (Schema.References) and
// recursive types are supported; aliases and defaults are ignored (the
// datum is read with its writer schema, no resolution against a reader
// schema). An invalid logical type annotation is ignored, as the
// specification says.
//
// The datum is walked once: every value is checked against the schema
// (lengths within the payload and not negative, ints within 32 bits,
// booleans 0 or 1, union branches and enum symbols in range, array and
// map blocks consistent with their byte sizes, nesting within
// Options.MaxDepth, no bytes after the datum) and a mismatch is
// ReasonSchemaMismatch naming the field path. Values no column reads are
// skipped by length; blocks with a byte size are skipped in one jump and
// their items are not checked; strings no column reads are not checked
// for UTF-8.
//
// Avro type (logical type) → column types, converted as for JSON unless
// said otherwise; a union takes the conversions of the branch the datum
// holds:
//
//	null                    any column, always NULL
//	boolean                 bool, text, json, jsonb
//	int, long               int2, int4, int8 (range-checked), numeric, float4, float8
//	                        (rounded to nearest), text, json, jsonb, timestamptz and
//	                        timestamp (an epoch number, its unit by magnitude as in JSON)
//	float, double           float4 (overflow and underflow to zero are ReasonOutOfRange),
//	                        float8, numeric (the shortest decimal that reads back as the
//	                        value; NaN and ±Infinity kept), int2/4/8 (integral values
//	                        only), text (as PostgreSQL prints a float), json and jsonb
//	                        (NaN and infinities as the strings "NaN", "Infinity",
//	                        "-Infinity")
//	string                  text (valid UTF-8 without NUL), uuid, int2/4/8, float4/8,
//	                        numeric, timestamptz, timestamp, date (parsed as JSON
//	                        strings are), json and jsonb (a JSON string), bytea (its
//	                        UTF-8 bytes)
//	bytes, fixed            bytea, text (valid UTF-8 without NUL), json and jsonb (a
//	                        standard padded base64 string), uuid (exactly 16 bytes)
//	enum                    text, json, jsonb: the symbol
//	record, array, map      json, jsonb, text: the value as JSON (below)
//	decimal (bytes, fixed)  numeric (exact, scale kept), text, json and jsonb (a
//	                        number), float4/8 (correctly rounded), int2/4/8 (integral
//	                        values only); unscaled values past 4096 bytes are
//	                        ReasonOutOfRange
//	uuid (string, fixed 16) uuid, text, json, jsonb (canonical text for fixed), bytea
//	date                    date, timestamptz and timestamp (midnight UTC), text, json,
//	                        jsonb (YYYY-MM-DD, years 0001 to 9999), int2/4/8 (days)
//	time-millis,            text, json, jsonb (HH:MM:SS with the fraction's trailing
//	time-micros             zeros dropped, as PostgreSQL prints a time), int2/4/8 (the
//	                        raw count); the codec has no time column type
//	timestamp-millis,       timestamptz, timestamp (nanoseconds rounded to the
//	timestamp-micros,       microsecond exactly as PostgreSQL rounds nine fraction
//	timestamp-nanos         digits), text, json, jsonb (RFC 3339 with Z, years 0001 to
//	                        9999), int2/4/8 (the raw count)
//	local-timestamp-millis, timestamp (the wall clock), timestamptz (the wall clock
//	-micros, -nanos         taken as UTC), text, json, jsonb (RFC 3339 without offset),
//	                        int2/4/8
//	duration (fixed 12)     text (ISO 8601, P1M2DT3.004S, which PostgreSQL's interval
//	                        input reads), json and jsonb ({"months":1,"days":2,
//	                        "milliseconds":3004}), bytea
//
// Values taken whole as JSON are built without a library: records as
// objects in field order, maps as objects in datum order, arrays as
// arrays, unions as the branch's value (not Avro's {"type": value} JSON
// encoding), and the logical types as above (decimals as JSON numbers,
// bytes and fixed as base64 strings). Strings must be valid UTF-8; a NUL
// is written as \u0000 in json and text, and is ReasonInvalidValue in
// jsonb, as are decimals beyond numeric's range.
//
// # Paths
//
// Column.Path is a dotted list of object keys ("attrs.country"); keys with
// dots and array indexes cannot be addressed. Keys match after their
// escapes are decoded ("\u0061" matches "a"). Keys may come in any order.
// With duplicate keys the last one wins, as in jsonb, including for paths
// below it: {"a":{"b":1},"a":{}} has no a.b. A path through a non-object
// finds nothing. Missing and JSON null are both NULL, or
// ReasonMissingRequired when Column.Required. One path may feed several
// columns, and a column may read an object that other columns look into.
//
// # Conversions from JSON
//
//   - text: a string, its escapes decoded (surrogate pairs included); it
//     must be valid UTF-8 without NUL, so \u0000 is ReasonNULInText and an
//     unpaired surrogate escape ReasonInvalidUTF8. Numbers, booleans,
//     objects and arrays store their JSON text exactly as written in the
//     record.
//   - int2, int4, int8: a number whose value is integral, also when written
//     with a fraction or exponent (12.0, 1e3, 100e-2); 1.5 is
//     ReasonWrongType. A string holding a JSON number is accepted too
//     ("9007199254740993", as producers write 64-bit ids). Range-checked
//     exactly, without floats: ReasonOutOfRange.
//   - float4, float8: a number or a numeric string, correctly rounded;
//     overflow and, as in PostgreSQL's input, underflow of a non-zero value
//     to zero are ReasonOutOfRange. The strings NaN, Infinity, -Infinity,
//     inf, -inf (any case) give the special values.
//   - numeric: exact, from the number's text to base-10000 digits with no
//     float in between; the scale is the written one (1.50 stays 1.50, 1e3
//     is 1000). Numeric strings and NaN/Infinity/-Infinity are accepted.
//     Values beyond numeric's limits (leading digit past 10^131071, more
//     than 16383 fraction digits) are ReasonOutOfRange.
//   - bool: JSON true or false only.
//   - uuid: a string in any form PostgreSQL accepts: canonical, upper case,
//     without hyphens, in braces, a hyphen after any group of four digits.
//   - timestamptz, timestamp: an RFC 3339 string (T, t or space; seconds
//     optional; 1 to 9 fraction digits rounded to the microsecond exactly
//     as PostgreSQL rounds them; Z or an offset up to ±15:59; no offset
//     means UTC; a date alone means midnight; 24:00:00 and second 60 carry
//     over as in PostgreSQL) or an epoch number whose unit follows its
//     magnitude: |v| < 1e11 seconds, < 1e14 milliseconds, < 1e17
//     microseconds, else nanoseconds; fractions are allowed and rounded
//     half to even at the microsecond. For timestamp (without time zone)
//     the offset is applied and the UTC wall clock stored, unlike
//     PostgreSQL's text input, which would drop the offset.
//   - date: a YYYY-MM-DD string, years 0001 to 9999.
//   - jsonb: any JSON value, stored from its text. jsonb rejects what the
//     json type tolerates: \u0000, unpaired surrogate escapes and numbers
//     beyond numeric's range are ReasonInvalidValue in a jsonb column.
//   - json: any JSON value, its text verbatim.
//   - bytea: a base64 string: the standard alphabet with padding, or the
//     URL-safe alphabet with or without padding; CR and LF are ignored.
//     (PostgreSQL's hex form \x... is not recognised: it is not base64.)
//
// Any other JSON kind for a type is ReasonWrongType.
//
// # Kafka sources
//
// kafka.topic → text; kafka.partition → int2, int4, int8; kafka.offset →
// int8, numeric; kafka.timestamp → timestamptz, timestamp (µs precision),
// int8 (Unix milliseconds), NULL when the record has none; kafka.key →
// text (validated), bytea, json, jsonb (validated as a whole document),
// NULL for a null key; kafka.key with a path → any type, from a field of
// the key (Record keys above); kafka.headers → json, jsonb in the shape described
// at AppendHeadersJSON; kafka.value → text, bytea, json, jsonb, after
// decompression. For json/jsonb kafka.value the document JSON null is a
// JSON null, not SQL NULL.
//
// # JSON grammar
//
// RFC 8259 as PostgreSQL's parser reads it: whitespace is space, tab, CR
// and LF only; no byte order mark, no comments, no leading zeros, no
// NaN/Infinity literals, nothing after the value; strings must be valid
// UTF-8 (overlong forms and encoded surrogates are ReasonInvalidUTF8) with
// no raw control characters. Nesting deeper than Options.MaxDepth (default
// 1000) is ReasonMalformedJSON, stricter than PostgreSQL, whose limit
// depends on its stack. testdata/json holds the conformance corpus.
//
// # Compression
//
// A record header content-encoding (key matched case-insensitively, the
// last one wins; value case-insensitive) names how the value is
// compressed: zstd, gzip, snappy, s2, lz4 (frame format), or identity.
// snappy and s2 take both the block format and the framed stream format
// (told apart by the stream identifier). An unknown name or a corrupt
// frame is ReasonBadCompression; output past Options.MaxDecompressedBytes
// is ReasonOversized, detected without inflating further. FormatRaw never
// decompresses; the registry formats decompress before reading the
// framing.
package codec

import (
	"fmt"
	"iter"
	"math/bits"
	"sync/atomic"
	"time"
)

// Type is the PostgreSQL type of a target column.
type Type uint8

// Column types supported by the decoder, by their configuration names.
const (
	TypeInvalid Type = iota
	TypeText
	TypeInt2
	TypeInt4
	TypeInt8
	TypeFloat4
	TypeFloat8
	TypeNumeric
	TypeBool
	TypeUUID
	TypeTimestamptz
	TypeTimestamp
	TypeDate
	TypeJSONB
	TypeJSON
	TypeBytea
)

var typeNames = [...]string{
	TypeInvalid:     "invalid",
	TypeText:        "text",
	TypeInt2:        "int2",
	TypeInt4:        "int4",
	TypeInt8:        "int8",
	TypeFloat4:      "float4",
	TypeFloat8:      "float8",
	TypeNumeric:     "numeric",
	TypeBool:        "bool",
	TypeUUID:        "uuid",
	TypeTimestamptz: "timestamptz",
	TypeTimestamp:   "timestamp",
	TypeDate:        "date",
	TypeJSONB:       "jsonb",
	TypeJSON:        "json",
	TypeBytea:       "bytea",
}

// String returns the configuration name of t, which is also a valid
// PostgreSQL type name.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "invalid"
}

// TypeNames lists the accepted configuration names, for error messages.
func TypeNames() []string {
	return append([]string(nil), typeNames[1:]...)
}

// ParseType returns the Type for a configuration name such as "int8".
func ParseType(name string) (Type, error) {
	for i := 1; i < len(typeNames); i++ {
		if typeNames[i] == name {
			return Type(i), nil
		}
	}
	return TypeInvalid, fmt.Errorf("unknown column type %q; use one of %v", name, TypeNames())
}

// Source says where a column's value comes from.
type Source uint8

// Column sources. SourcePath (the zero value) reads Column.Path from the JSON
// record value; the others read the Kafka record's metadata.
const (
	SourcePath Source = iota
	SourceTopic
	SourcePartition
	SourceOffset
	SourceTimestamp
	SourceKey
	SourceHeaders
	SourceValue

	// Debezium envelope fields (FormatDebezium only), see debezium.go.
	SourceDebeziumOp            // debezium.op
	SourceDebeziumTsMs          // debezium.ts_ms
	SourceDebeziumSourceTsMs    // debezium.source.ts_ms
	SourceDebeziumSourceLSN     // debezium.source.lsn
	SourceDebeziumSourceDB      // debezium.source.db
	SourceDebeziumSourceSchema  // debezium.source.schema
	SourceDebeziumSourceTable   // debezium.source.table
	SourceDebeziumTransactionID // debezium.transaction.id
	// SourceUnmapped gathers the top-level members of a JSON record that
	// no path column reads into one json or jsonb object (unmapped.go).
	SourceUnmapped
)

var sourceNames = [...]string{
	SourcePath:      "",
	SourceTopic:     "kafka.topic",
	SourcePartition: "kafka.partition",
	SourceOffset:    "kafka.offset",
	SourceTimestamp: "kafka.timestamp",
	SourceKey:       "kafka.key",
	SourceHeaders:   "kafka.headers",
	SourceValue:     "kafka.value",

	SourceDebeziumOp:            "debezium.op",
	SourceDebeziumTsMs:          "debezium.ts_ms",
	SourceDebeziumSourceTsMs:    "debezium.source.ts_ms",
	SourceDebeziumSourceLSN:     "debezium.source.lsn",
	SourceDebeziumSourceDB:      "debezium.source.db",
	SourceDebeziumSourceSchema:  "debezium.source.schema",
	SourceDebeziumSourceTable:   "debezium.source.table",
	SourceDebeziumTransactionID: "debezium.transaction.id",
	SourceUnmapped:              "unmapped",
}

// String returns the configuration name of s ("" for SourcePath).
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "invalid"
}

// ParseSource returns the Source for a configuration name such as
// "kafka.offset". The empty string means SourcePath.
func ParseSource(name string) (Source, error) {
	for i := range sourceNames {
		if sourceNames[i] == name {
			return Source(i), nil
		}
	}
	// SourceUnmapped, the last, is the table's unmapped column, set by
	// the caller rather than configured: it is not offered.
	return 0, fmt.Errorf("unknown column source %q; use one of %v", name, sourceNames[1:SourceUnmapped])
}

// Column describes one target column.
type Column struct {
	Name     string
	Type     Type
	Source   Source
	Path     string // dotted JSON path for SourcePath, e.g. "attrs.country"; for SourceKey a field of the key
	Required bool   // missing or null becomes a *RowError instead of NULL
	Limit    Limit  // the target column's length, precision and scale; checked after any source
	Key      bool   // part of the table's conflict key: what a delete matches on
	// NotBefore, when set, holds the oldest time, in Unix microseconds, a
	// timestamptz, timestamp (UTC wall clock) or date value of the column
	// may have: an older one is ReasonExpired (a partitioned table's
	// retention). The caller may move it at any time; it is read once per
	// record. Checked after any source.
	NotBefore *atomic.Int64
}

// ParseColumn builds a Column from its configuration names (see ParseType
// and ParseSource).
func ParseColumn(name, typ, source, path string, required bool) (Column, error) {
	t, err := ParseType(typ)
	if err != nil {
		return Column{}, err
	}
	src, err := ParseSource(source)
	if err != nil {
		return Column{}, err
	}
	return Column{Name: name, Type: t, Source: src, Path: path, Required: required}, nil
}

// Format is how a record value is interpreted.
type Format uint8

// Record formats.
const (
	FormatJSON       Format = iota // the value is a JSON object; columns pick paths
	FormatRaw                      // key, value, headers and position, unparsed
	FormatAvro                     // registry-framed Avro
	FormatProtobuf                 // registry-framed Protobuf
	FormatJSONSchema               // registry-framed JSON (JSON Schema)
	FormatDebezium                 // Debezium change events in JSON; columns pick paths in the row
)

var formatNames = [...]string{
	FormatJSON:       "json",
	FormatRaw:        "raw",
	FormatAvro:       "avro",
	FormatProtobuf:   "protobuf",
	FormatJSONSchema: "json_schema",
	FormatDebezium:   "debezium",
}

// ParseFormat returns the Format for a configuration name such as "json"
// or "avro" ("" means json).
func ParseFormat(name string) (Format, error) {
	if name == "" {
		return FormatJSON, nil
	}
	for i, n := range formatNames {
		if n == name {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("unknown format %q; use one of %v", name, formatNames[:])
}

// String returns the configuration name of f.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// UsesRegistry reports whether records of format f are framed with a
// Schema Registry schema id, so their decoder needs AddSchema.
func (f Format) UsesRegistry() bool {
	return f == FormatAvro || f == FormatProtobuf || f == FormatJSONSchema
}

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is the decoder's view of one Kafka record. The decoder does not
// retain it or any of its slices after AppendFields returns.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte // nil for a null key
	Value     []byte // nil for a tombstone
	Headers   []Header
}

// Op is what a decoded record means for its row. Every record of FormatJSON
// and FormatRaw is an upsert, except tombstones under Options.Deletes;
// FormatDebezium records carry their own operation.
type Op uint8

// Operations reported by Decoder.Op.
const (
	// OpUpsert: insert the tuple, or resolve the conflict on its key as the
	// table says.
	OpUpsert Op = iota
	// OpDelete: delete the row whose key columns equal the tuple's; only
	// the key columns (and kafka.*/debezium.* source columns) are filled,
	// the other path columns are NULL.
	OpDelete
	// OpTruncate: the source table was truncated. Nothing was appended.
	OpTruncate
	// OpSkip: the record changes no row (a tombstone after a Debezium
	// delete, a logical decoding message). Nothing was appended.
	OpSkip
)

var opNames = [...]string{OpUpsert: "upsert", OpDelete: "delete", OpTruncate: "truncate", OpSkip: "skip"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "invalid"
}

// ColumnSet is a set of column indexes (positions in Decoder.Columns).
// The zero value is empty.
type ColumnSet []uint64

// Has reports whether column i is in s.
func (s ColumnSet) Has(i int) bool {
	return i >= 0 && i>>6 < len(s) && s[i>>6]&(1<<(i&63)) != 0
}

// Len returns the number of columns in s.
func (s ColumnSet) Len() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}

// All yields the columns in s in increasing order.
func (s ColumnSet) All() iter.Seq[int] {
	return func(yield func(int) bool) {
		for wi, w := range s {
			for w != 0 {
				b := bits.TrailingZeros64(w)
				if !yield(wi<<6 + b) {
					return
				}
				w &= w - 1
			}
		}
	}
}

// Reason classifies why a record could not become a row. It is a metric
// label, so the set is small and fixed.
type Reason string

// Reasons for a *RowError.
const (
	ReasonMalformedJSON   Reason = "malformed_json"
	ReasonWrongType       Reason = "wrong_type"
	ReasonOutOfRange      Reason = "out_of_range"
	ReasonMissingRequired Reason = "missing_required"
	ReasonInvalidUTF8     Reason = "invalid_utf8"
	ReasonNULInText       Reason = "nul_in_text"
	ReasonBadCompression  Reason = "bad_compression"
	ReasonOversized       Reason = "oversized"
	ReasonInvalidValue    Reason = "invalid_value"
	ReasonBadFraming      Reason = "bad_framing"     // registry framing: wrong magic byte, truncated prefix or header
	ReasonUnknownSchema   Reason = "unknown_schema"  // the registry has no schema with the record's id
	ReasonSchemaMismatch  Reason = "schema_mismatch" // the payload does not match its writer schema, or the schema cannot be used
	ReasonBadEnvelope     Reason = "bad_envelope"    // not a Debezium change event: no op, unknown op, no after
	ReasonBadKey          Reason = "bad_key"         // a delete whose record key does not name the row
	ReasonExpired         Reason = "expired"         // the value is older than Column.NotBefore (the table's retention)
)

// RowError says why one record could not become a row: which column, which
// JSON path and what was wrong. It is what lands in the dead-letter table.
type RowError struct {
	Column string // target column, empty when the record as a whole is bad
	Path   string // JSON path, kafka.* source or "content-encoding"; empty when the record as a whole is bad
	Reason Reason
	Detail string // human-readable, e.g. `value 70000 out of range for int2`
}

func (e *RowError) Error() string {
	switch {
	case e.Column != "" && e.Path != "":
		return fmt.Sprintf("column %s (path %s): %s: %s", e.Column, e.Path, e.Reason, e.Detail)
	case e.Column != "":
		return fmt.Sprintf("column %s: %s: %s", e.Column, e.Reason, e.Detail)
	case e.Path != "":
		return fmt.Sprintf("%s: %s: %s", e.Path, e.Reason, e.Detail)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
}
