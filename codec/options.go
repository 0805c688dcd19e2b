package codec

import "fmt"

// Default limits.
const (
	DefaultMaxRecordBytes       = 1 << 20
	DefaultMaxDecompressedBytes = 16 << 20
	DefaultMaxDepth             = 1000
	DefaultMaxSchemas           = 1000
)

// Options tunes a Decoder. The zero value means every default.
type Options struct {
	// MaxRecordBytes bounds len(Key)+len(Value) of a record as received
	// (before decompression); a larger record is a *RowError with
	// ReasonOversized. Default DefaultMaxRecordBytes (1 MiB, Kafka's own
	// default message size limit).
	MaxRecordBytes int

	// MaxDecompressedBytes bounds a value after content-encoding
	// decompression; a value that would inflate past it is a *RowError
	// with ReasonOversized, found without inflating more than this many
	// bytes. Default DefaultMaxDecompressedBytes (16 MiB). It also bounds
	// the decoder's decompression buffer, which it keeps between records.
	MaxDecompressedBytes int

	// MaxDepth bounds the nesting of JSON objects and arrays; a deeper
	// document is ReasonMalformedJSON. PostgreSQL's own limit depends on
	// max_stack_depth (thousands of levels with the default 2MB); the
	// default, DefaultMaxDepth (1000), stays well inside it and bounds the
	// decoder's stack.
	MaxDepth int

	// MaxSchemas bounds the writer schemas a decoder of a registry format
	// (avro, protobuf, json_schema) keeps with their compiled plans; past
	// it the oldest is evicted and fetched again when a record needs it.
	// Default DefaultMaxSchemas (1000): a topic rarely sees more than a
	// few dozen schema versions, and each costs a few kilobytes.
	MaxSchemas int
	// Deletes makes a tombstone (nil value) a delete (OpDelete) of the
	// row named by the record key, read into the key columns (Column.Key)
	// as described at Decoder.Op; in the registry formats a framed key is
	// decoded with its writer schema first. Without it a
	// tombstone is a row of NULL path columns. FormatDebezium carries its
	// own deletes and ignores this option.
	Deletes bool

	// Converter names the Kafka Connect converter that wrote the change
	// events of FormatDebezium: ConverterJSON (the zero value) or
	// ConverterAvro (registry-framed Avro, see "Debezium change events in
	// Avro" in the package comment). Other formats refuse ConverterAvro.
	Converter Converter

	// checkBlocks makes Avro plans walk the items of array and map blocks
	// that carry a byte size instead of jumping over them: tests compare
	// the walk with other decoders, which read every item.
	checkBlocks bool
}

// EnsureDefaults returns a copy of o with zero fields set to their defaults.
func (o Options) EnsureDefaults() Options {
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxDecompressedBytes == 0 {
		o.MaxDecompressedBytes = DefaultMaxDecompressedBytes
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxSchemas == 0 {
		o.MaxSchemas = DefaultMaxSchemas
	}
	return o
}

// Validate reports an option that cannot work.
func (o Options) Validate() error {
	switch {
	case o.MaxRecordBytes < 0:
		return fmt.Errorf("cannot use MaxRecordBytes %d: it must be positive (0 means the default %d)", o.MaxRecordBytes, DefaultMaxRecordBytes)
	case o.MaxDecompressedBytes < 0:
		return fmt.Errorf("cannot use MaxDecompressedBytes %d: it must be positive (0 means the default %d)", o.MaxDecompressedBytes, DefaultMaxDecompressedBytes)
	case o.MaxDepth < 0 || o.MaxDepth > 100_000:
		return fmt.Errorf("cannot use MaxDepth %d: it must be between 1 and 100000 (0 means the default %d)", o.MaxDepth, DefaultMaxDepth)
	case o.Converter > ConverterAvro:
		return fmt.Errorf("cannot use %s: use ConverterJSON or ConverterAvro", o.Converter)
	case o.MaxSchemas < 0:
		return fmt.Errorf("cannot use MaxSchemas %d: it must be positive (0 means the default %d)", o.MaxSchemas, DefaultMaxSchemas)
	}
	return nil
}
