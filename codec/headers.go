package codec

import "encoding/base64"

// AppendHeadersJSON appends headers as JSON text: the shape of every
// kafka.headers column (json or jsonb) and of dead_letters.headers, so the
// two can be compared and joined. It is an array with one object per header
// in record order, duplicate keys included; [] when there are none:
//
//	[{"key": "trace-id", "value": "abc"},          a value that is valid UTF-8 without NUL
//	 {"key": "sig", "value_base64": "/wA="},       any other value: standard padded base64
//	 {"key": "gone", "value": null}]               a null value
//
// Every value is thus recoverable byte for byte, and a reader tells text
// from binary by the member name. A key (a string in Kafka's clients) that
// is not valid UTF-8 or holds NUL has those bytes replaced by U+FFFD, the
// only lossy case. The result is always accepted by json and jsonb.
func AppendHeadersJSON(dst []byte, headers []Header) []byte {
	dst = append(dst, '[')
	for i, h := range headers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = appendJSONString(dst, h.Key)
		switch {
		case h.Value == nil:
			dst = append(dst, `,"value":null`...)
		case isTextValue(h.Value):
			dst = append(dst, `,"value":`...)
			dst = appendJSONString(dst, b2s(h.Value))
		default:
			dst = append(dst, `,"value_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, h.Value)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendHeadersField appends headers as a json or jsonb field in the shape
// of AppendHeadersJSON.
func appendHeadersField(dst []byte, t Type, headers []Header) []byte {
	dst, at := beginField(dst)
	if t == TypeJSONB {
		dst = append(dst, 1)
	}
	dst = AppendHeadersJSON(dst, headers)
	return endField(dst, at)
}

func isTextValue(b []byte) bool {
	reason, _ := checkText(b)
	return reason == ""
}
