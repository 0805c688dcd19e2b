package codec

import "encoding/base64"

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
// A header value is a JSON string holding the value itself when it is
// valid UTF-8 without NUL bytes, otherwise its standard padded base64
// encoding (so a reader cannot tell which from the JSON alone: binary
// header values that happen to be valid UTF-8 stay text), and null for a
// null value. Header keys that are not valid UTF-8 or hold NUL have those
// bytes replaced by U+FFFD.
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

// appendHeadersField appends headers as a json or jsonb field; see
// RawColumns for the shape.
func appendHeadersField(dst []byte, t Type, headers []Header) []byte {
	dst, at := beginField(dst)
	if t == TypeJSONB {
		dst = append(dst, 1)
	}
	dst = append(dst, '[')
	for i, h := range headers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = appendJSONString(dst, h.Key)
		dst = append(dst, `,"value":`...)
		switch {
		case h.Value == nil:
			dst = append(dst, "null"...)
		case isTextValue(h.Value):
			dst = appendJSONString(dst, b2s(h.Value))
		default:
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, h.Value)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	return endField(dst, at)
}

func isTextValue(b []byte) bool {
	reason, _ := checkText(b)
	return reason == ""
}
