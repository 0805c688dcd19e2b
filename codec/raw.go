package codec

// RawColumns returns the fixed columns FormatRaw writes, in order:
//
//	topic     text         the record's topic
//	partition int4
//	offset    int8
//	timestamp timestamptz  NULL when the record has none (zero time.Time)
//	key       bytea        NULL for a null key
//	value     bytea        the value exactly as received: not decompressed, not parsed; NULL for a tombstone
//	headers   jsonb        [{"key": "...", "value": "..."}, ...] in record order, [] when none
//
// The headers' shape is AppendHeadersJSON's: a text value under "value",
// a binary one base64-encoded under "value_base64", null for a null value.
func RawColumns() []Column {
	return []Column{
		{Name: "topic", Type: TypeText, Source: SourceTopic},
		{Name: "partition", Type: TypeInt4, Source: SourcePartition},
		{Name: "offset", Type: TypeInt8, Source: SourceOffset},
		{Name: "timestamp", Type: TypeTimestamptz, Source: SourceTimestamp},
		{Name: "key", Type: TypeBytea, Source: SourceKey},
		{Name: "value", Type: TypeBytea, Source: SourceValue},
		{Name: "headers", Type: TypeJSONB, Source: SourceHeaders},
	}
}
