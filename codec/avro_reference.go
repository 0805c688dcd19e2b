package codec

// AvroReferenceSchema is the Avro schema of the reference event used in
// benchmarks and load generation: the JSON reference event's fields with
// their natural Avro types (a UUID string, nullable longs, a
// timestamp-millis, a decimal amount, an attrs record).
const AvroReferenceSchema = `{
  "type": "record", "name": "Event", "namespace": "dev.sluice.bench",
  "fields": [
    {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "tenant_id", "type": "long"},
    {"name": "user_id", "type": ["null", "long"], "default": null},
    {"name": "type", "type": "string"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}},
    {"name": "url", "type": ["null", "string"], "default": null},
    {"name": "user_agent", "type": ["null", "string"], "default": null},
    {"name": "attrs", "type": {"type": "record", "name": "Attrs", "fields": [
      {"name": "country", "type": "string"},
      {"name": "device", "type": "string"},
      {"name": "session", "type": "string"},
      {"name": "experiment", "type": ["null", "string"], "default": null}
    ]}}
  ]
}`

// AvroReferenceEvent is the reference event in Avro.
type AvroReferenceEvent struct {
	EventID    string // canonical UUID text
	TenantID   int64
	UserID     *int64
	Type       string
	TSMillis   int64 // Unix milliseconds
	AmountCent int64 // amount × 100 (decimal scale 2)
	URL        *string
	UserAgent  *string
	Country    string
	Device     string
	Session    string
	Experiment *string
}

// AppendAvroReferenceEvent appends e's Avro binary encoding under
// AvroReferenceSchema (no registry framing) to dst.
func AppendAvroReferenceEvent(dst []byte, e *AvroReferenceEvent) []byte {
	dst = appendAvroString(dst, e.EventID)
	dst = appendAvroLong(dst, e.TenantID)
	dst = appendAvroOptionalLong(dst, e.UserID)
	dst = appendAvroString(dst, e.Type)
	dst = appendAvroLong(dst, e.TSMillis)
	dst = appendAvroDecimal(dst, e.AmountCent)
	dst = appendAvroOptionalString(dst, e.URL)
	dst = appendAvroOptionalString(dst, e.UserAgent)
	dst = appendAvroString(dst, e.Country)
	dst = appendAvroString(dst, e.Device)
	dst = appendAvroString(dst, e.Session)
	return appendAvroOptionalString(dst, e.Experiment)
}

// AppendRegistryFraming appends Confluent's wire-format prefix for schema
// id: magic byte 0 and the id, big-endian.
func AppendRegistryFraming(dst []byte, id int32) []byte {
	return append(dst, magicID, byte(uint32(id)>>24), byte(uint32(id)>>16), byte(uint32(id)>>8), byte(id))
}

func appendAvroLong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func appendAvroString(dst []byte, s string) []byte {
	return append(appendAvroLong(dst, int64(len(s))), s...)
}

func appendAvroOptionalLong(dst []byte, v *int64) []byte {
	if v == nil {
		return append(dst, 0)
	}
	return appendAvroLong(append(dst, 2), *v)
}

func appendAvroOptionalString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, 0)
	}
	return appendAvroString(append(dst, 2), *s)
}

// appendAvroDecimal appends an unscaled value as a bytes decimal: the
// shortest big-endian two's complement.
func appendAvroDecimal(dst []byte, v int64) []byte {
	n := 8
	for n > 1 {
		b := byte(v >> (8 * (n - 1)))
		next := byte(v >> (8 * (n - 2)))
		if (b == 0 && next < 0x80) || (b == 0xFF && next >= 0x80) {
			n--
			continue
		}
		break
	}
	dst = appendAvroLong(dst, int64(n))
	for i := n - 1; i >= 0; i-- {
		dst = append(dst, byte(v>>(8*i)))
	}
	return dst
}
