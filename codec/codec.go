// Package codec turns Kafka record bytes into PostgreSQL binary COPY fields.
//
// Contract:
//
//   - A Decoder is built once per target table from its column specs and is
//     then used by one goroutine at a time (it owns scratch buffers).
//   - Decoder.AppendFields appends exactly NumFields() binary COPY fields
//     (int32 big-endian length followed by the bytes, or length -1 for NULL)
//     to the caller's buffer. It does not write the int16 field count of the
//     tuple: the caller frames tuples (see package pgcopy).
//   - A record that cannot become a row (malformed JSON, wrong type, out of
//     range, missing required field, invalid UTF-8 or NUL in text, bad
//     compression frame, oversized) yields a *RowError and the buffer is
//     returned truncated to its length at entry, so the caller's batch is
//     never left with half a tuple.
//   - Every field the decoder emits is one PostgreSQL accepts for the
//     column's type: the decoder validates instead of letting COPY fail.
//   - Pure functions, no I/O, no goroutines, and no allocations per record in
//     steady state.
package codec

import (
	"fmt"
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
	return 0, fmt.Errorf("unknown column source %q; use one of %v", name, sourceNames[1:])
}

// Column describes one target column.
type Column struct {
	Name     string
	Type     Type
	Source   Source
	Path     string // dotted JSON path for SourcePath, e.g. "attrs.country"
	Required bool   // missing or null becomes a *RowError instead of NULL
}

// Format is how a record value is interpreted.
type Format uint8

// Record formats.
const (
	FormatJSON Format = iota // the value is a JSON object; columns pick paths
	FormatRaw                // key, value, headers and position, unparsed
)

// ParseFormat returns the Format for "json" or "raw".
func ParseFormat(name string) (Format, error) {
	switch name {
	case "json", "":
		return FormatJSON, nil
	case "raw":
		return FormatRaw, nil
	}
	return 0, fmt.Errorf("unknown format %q; use json or raw", name)
}

// String returns the configuration name of f.
func (f Format) String() string {
	if f == FormatRaw {
		return "raw"
	}
	return "json"
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
)

// RowError says why one record could not become a row: which column, which
// JSON path and what was wrong. It is what lands in the dead-letter table.
type RowError struct {
	Column string // target column, empty when the record as a whole is bad
	Path   string // JSON path or source, empty when not applicable
	Reason Reason
	Detail string // human-readable, e.g. `value 70000 out of range for int2`
}

func (e *RowError) Error() string {
	switch {
	case e.Column != "" && e.Path != "":
		return fmt.Sprintf("column %s (path %s): %s: %s", e.Column, e.Path, e.Reason, e.Detail)
	case e.Column != "":
		return fmt.Sprintf("column %s: %s: %s", e.Column, e.Reason, e.Detail)
	}
	return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
}
