package codec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Avro datum builders for tests.
func aL(v int64) []byte     { return appendAvroLong(nil, v) }
func aS(s string) []byte    { return appendAvroString(nil, s) }
func aF32(f float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(f)) }
func aF64(f float64) []byte { return binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)) }
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// oneField is a record schema whose field v has type ft (schema JSON).
func oneField(ft string) string {
	return `{"type":"record","name":"R","fields":[{"name":"v","type":` + ft + `}]}`
}

// avroCase decodes datum, written with oneField(ft), into a column of type
// typ. want is the column's text in PostgreSQL after a binary COPY (null
// for SQL NULL), or the RowError reason when reason is set.
type avroCase struct {
	ft     string
	datum  []byte
	typ    Type
	want   string
	reason Reason
}

const (
	ftDecimal  = `{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}`
	ftDecimal0 = `{"type":"bytes","logicalType":"decimal","precision":30}`
	ftFixedDec = `{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":18,"scale":3}`
	ftTsMillis = `{"type":"long","logicalType":"timestamp-millis"}`
	ftTsMicros = `{"type":"long","logicalType":"timestamp-micros"}`
	ftTsNanos  = `{"type":"long","logicalType":"timestamp-nanos"}`
	ftLocalMs  = `{"type":"long","logicalType":"local-timestamp-millis"}`
	ftLocalUs  = `{"type":"long","logicalType":"local-timestamp-micros"}`
	ftLocalNs  = `{"type":"long","logicalType":"local-timestamp-nanos"}`
	ftDate     = `{"type":"int","logicalType":"date"}`
	ftTimeMs   = `{"type":"int","logicalType":"time-millis"}`
	ftTimeUs   = `{"type":"long","logicalType":"time-micros"}`
	ftUUID     = `{"type":"string","logicalType":"uuid"}`
	ftFixedID  = `{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}`
	ftDuration = `{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}`
	ftInner    = `{"type":"record","name":"In","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"]},` +
		`{"name":"c","type":{"type":"array","items":"double"}},{"name":"d","type":{"type":"map","values":"boolean"}}]}`
	ftEnum = `{"type":"enum","name":"E","symbols":["RED","GREEN"]}`
)

var (
	tsMillis = int64(1793491201234) // 2026-11-01T00:00:01.234Z
	uuidRaw  = []byte{0x3f, 0x1c, 0x9a, 0x2e, 0x8b, 0x4d, 0x4c, 0x6e, 0x9f, 0x2a, 0x1b, 0x3c, 0x5d, 0x7e, 0x9f, 0x01}
	duration = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 1), 2), 3004)
	inner    = cat(aL(-7), aL(1), aS("x\"y"), aL(2), aF64(0.5), aF64(-2), aL(0), aL(1), aS("k"), []byte{1}, aL(0))
)

var avroCases = []avroCase{
	{ft: `"null"`, datum: nil, typ: TypeText, want: null},
	{ft: `"boolean"`, datum: []byte{1}, typ: TypeBool, want: "true"},
	{ft: `"boolean"`, datum: []byte{0}, typ: TypeBool, want: "false"},
	{ft: `"boolean"`, datum: []byte{1}, typ: TypeText, want: "true"},
	{ft: `"boolean"`, datum: []byte{0}, typ: TypeJSONB, want: "false"},
	{ft: `"boolean"`, datum: []byte{2}, typ: TypeBool, reason: ReasonSchemaMismatch},
	{ft: `"boolean"`, datum: nil, typ: TypeBool, reason: ReasonSchemaMismatch},
	{ft: `"boolean"`, datum: []byte{1}, typ: TypeInt4, reason: ReasonWrongType},

	{ft: `"int"`, datum: aL(42), typ: TypeInt2, want: "42"},
	{ft: `"int"`, datum: aL(-32769), typ: TypeInt2, reason: ReasonOutOfRange},
	{ft: `"int"`, datum: aL(math.MinInt32), typ: TypeInt4, want: "-2147483648"},
	{ft: `"int"`, datum: aL(math.MaxInt32 + 1), typ: TypeInt8, reason: ReasonSchemaMismatch},
	{ft: `"int"`, datum: aL(7), typ: TypeNumeric, want: "7"},
	{ft: `"int"`, datum: aL(16777217), typ: TypeFloat4, want: "1.6777216e+07"},
	{ft: `"int"`, datum: aL(-5), typ: TypeFloat8, want: "-5"},
	{ft: `"int"`, datum: aL(-5), typ: TypeText, want: "-5"},
	{ft: `"int"`, datum: aL(-5), typ: TypeJSON, want: "-5"},
	{ft: `"int"`, datum: aL(1730419201), typ: TypeTimestamptz, want: "2024-11-01 00:00:01+00"},
	{ft: `"int"`, datum: aL(1), typ: TypeBool, reason: ReasonWrongType},
	{ft: `"int"`, datum: aL(1), typ: TypeUUID, reason: ReasonWrongType},
	{ft: `"long"`, datum: aL(math.MaxInt64), typ: TypeInt8, want: "9223372036854775807"},
	{ft: `"long"`, datum: aL(math.MinInt64), typ: TypeNumeric, want: "-9223372036854775808"},
	{ft: `"long"`, datum: aL(math.MinInt64), typ: TypeText, want: "-9223372036854775808"},
	{ft: `"long"`, datum: aL(1 << 40), typ: TypeInt4, reason: ReasonOutOfRange},
	{ft: `"long"`, datum: aL(1793491201234), typ: TypeTimestamp, want: "2026-11-01 00:00:01.234"},
	{ft: `"long"`, datum: []byte{0x80}, typ: TypeInt8, reason: ReasonSchemaMismatch},
	{ft: `"long"`, datum: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, typ: TypeInt8, reason: ReasonSchemaMismatch},
	{ft: `"long"`, datum: cat(aL(1), []byte{0}), typ: TypeInt8, reason: ReasonSchemaMismatch},

	{ft: `"float"`, datum: aF32(1.5), typ: TypeFloat4, want: "1.5"},
	{ft: `"float"`, datum: aF32(0.1), typ: TypeFloat8, want: "0.10000000149011612"},
	{ft: `"float"`, datum: aF32(0.1), typ: TypeNumeric, want: "0.1"},
	{ft: `"float"`, datum: aF32(0.1), typ: TypeText, want: "0.1"},
	{ft: `"float"`, datum: aF32(2), typ: TypeInt4, want: "2"},
	{ft: `"float"`, datum: aF32(2.5), typ: TypeInt4, reason: ReasonWrongType},
	{ft: `"float"`, datum: aF32(float32(math.NaN())), typ: TypeFloat8, want: "NaN"},
	{ft: `"float"`, datum: aF32(float32(math.NaN())), typ: TypeJSONB, want: `"NaN"`},
	{ft: `"float"`, datum: aF32(1)[:3], typ: TypeFloat4, reason: ReasonSchemaMismatch},
	{ft: `"double"`, datum: aF64(0.1), typ: TypeFloat8, want: "0.1"},
	{ft: `"double"`, datum: aF64(0.1), typ: TypeFloat4, want: "0.1"},
	{ft: `"double"`, datum: aF64(1e300), typ: TypeFloat4, reason: ReasonOutOfRange},
	{ft: `"double"`, datum: aF64(1e-300), typ: TypeFloat4, reason: ReasonOutOfRange},
	{ft: `"double"`, datum: aF64(math.Inf(-1)), typ: TypeFloat4, want: "-Infinity"},
	{ft: `"double"`, datum: aF64(math.Inf(1)), typ: TypeNumeric, want: "Infinity"},
	{ft: `"double"`, datum: aF64(math.NaN()), typ: TypeNumeric, want: "NaN"},
	{ft: `"double"`, datum: aF64(1e20), typ: TypeText, want: "1e+20"},
	{ft: `"double"`, datum: aF64(1e14), typ: TypeText, want: "100000000000000"},
	{ft: `"double"`, datum: aF64(0.0001), typ: TypeText, want: "0.0001"},
	{ft: `"double"`, datum: aF64(0.00001), typ: TypeText, want: "1e-05"},
	{ft: `"double"`, datum: aF64(math.Inf(1)), typ: TypeText, want: "Infinity"},
	{ft: `"double"`, datum: aF64(-1.25e-7), typ: TypeNumeric, want: "-0.000000125"},
	{ft: `"double"`, datum: aF64(1.5e-7), typ: TypeJSONB, want: "0.00000015"},
	{ft: `"double"`, datum: aF64(5e-324), typ: TypeText, want: "5e-324"},
	{ft: `"double"`, datum: aF64(1e19), typ: TypeInt8, reason: ReasonOutOfRange},
	{ft: `"double"`, datum: aF64(-9.223372036854775808e18), typ: TypeInt8, want: "-9223372036854775808"},
	{ft: `"double"`, datum: aF64(math.NaN()), typ: TypeInt8, reason: ReasonWrongType},

	{ft: `"bytes"`, datum: aS("\x00\xff"), typ: TypeBytea, want: `\x00ff`},
	{ft: `"bytes"`, datum: aS("hi"), typ: TypeText, want: "hi"},
	{ft: `"bytes"`, datum: aS("\xff"), typ: TypeText, reason: ReasonInvalidUTF8},
	{ft: `"bytes"`, datum: aS("\x00\xff"), typ: TypeJSONB, want: `"AP8="`},
	{ft: `"bytes"`, datum: aS(string(uuidRaw)), typ: TypeUUID, want: "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"},
	{ft: `"bytes"`, datum: aS("abc"), typ: TypeUUID, reason: ReasonInvalidValue},
	{ft: `"bytes"`, datum: aL(-1), typ: TypeBytea, reason: ReasonSchemaMismatch},
	{ft: `"bytes"`, datum: aL(5), typ: TypeBytea, reason: ReasonSchemaMismatch},
	{ft: `"bytes"`, datum: aS("x"), typ: TypeInt4, reason: ReasonWrongType},

	{ft: `"string"`, datum: aS("héllo 😀"), typ: TypeText, want: "héllo 😀"},
	{ft: `"string"`, datum: aS(""), typ: TypeText, want: ""},
	{ft: `"string"`, datum: aS("a\x00b"), typ: TypeText, reason: ReasonNULInText},
	{ft: `"string"`, datum: aS("a\xffb"), typ: TypeText, reason: ReasonInvalidUTF8},
	{ft: `"string"`, datum: aS("{3F1C9A2E8B4D4C6E9F2A1B3C5D7E9F01}"), typ: TypeUUID, want: "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"},
	{ft: `"string"`, datum: aS("nope"), typ: TypeUUID, reason: ReasonInvalidValue},
	{ft: `"string"`, datum: aS("9007199254740993"), typ: TypeInt8, want: "9007199254740993"},
	{ft: `"string"`, datum: aS("1e3"), typ: TypeInt2, want: "1000"},
	{ft: `"string"`, datum: aS("1.5"), typ: TypeInt2, reason: ReasonWrongType},
	{ft: `"string"`, datum: aS("x1"), typ: TypeInt2, reason: ReasonWrongType},
	{ft: `"string"`, datum: aS("-Infinity"), typ: TypeFloat8, want: "-Infinity"},
	{ft: `"string"`, datum: aS("2.5"), typ: TypeFloat4, want: "2.5"},
	{ft: `"string"`, datum: aS("1.50"), typ: TypeNumeric, want: "1.50"},
	{ft: `"string"`, datum: aS("NaN"), typ: TypeNumeric, want: "NaN"},
	{ft: `"string"`, datum: aS("1e200000"), typ: TypeNumeric, reason: ReasonOutOfRange},
	{ft: `"string"`, datum: aS("2026-11-01T02:00:01.5+02:00"), typ: TypeTimestamptz, want: "2026-11-01 00:00:01.5+00"},
	{ft: `"string"`, datum: aS("2026-13-01 00:00"), typ: TypeTimestamp, reason: ReasonInvalidValue},
	{ft: `"string"`, datum: aS("2024-02-29"), typ: TypeDate, want: "2024-02-29"},
	{ft: `"string"`, datum: aS("2023-02-29"), typ: TypeDate, reason: ReasonInvalidValue},
	{ft: `"string"`, datum: aS("a\"b\\\n\x01é"), typ: TypeJSONB, want: `"a\"b\\\n\u0001é"`},
	{ft: `"string"`, datum: aS("a\x00"), typ: TypeJSONB, reason: ReasonInvalidValue},
	{ft: `"string"`, datum: aS("a\x00"), typ: TypeJSON, want: `"a\u0000"`},
	{ft: `"string"`, datum: aS("a\xc3"), typ: TypeJSON, reason: ReasonInvalidUTF8},
	{ft: `"string"`, datum: aS("hi"), typ: TypeBytea, want: `\x6869`},
	{ft: `"string"`, datum: aS("true"), typ: TypeBool, reason: ReasonWrongType},
	{ft: ftUUID, datum: aS("3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"), typ: TypeUUID, want: "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"},

	{ft: ftInner, datum: inner, typ: TypeJSONB, want: `{"a": -7, "b": "x\"y", "c": [0.5, -2], "d": {"k": true}}`},
	{ft: ftInner, datum: inner, typ: TypeJSON, want: `{"a":-7,"b":"x\"y","c":[0.5,-2],"d":{"k":true}}`},
	{ft: ftInner, datum: inner, typ: TypeText, want: `{"a":-7,"b":"x\"y","c":[0.5,-2],"d":{"k":true}}`},
	{ft: ftInner, datum: cat(aL(1), aL(2)), typ: TypeJSONB, reason: ReasonSchemaMismatch},
	{ft: ftInner, datum: inner, typ: TypeInt8, reason: ReasonWrongType},
	{ft: ftInner, datum: cat(aL(1), aL(1), aS("\xff"), aL(0), aL(0)), typ: TypeJSONB, reason: ReasonInvalidUTF8},
	{ft: ftInner, datum: cat(aL(1), aL(0), aL(-2), aL(16), aF64(1), aF64(2), aL(0), aL(0)), typ: TypeJSONB, want: `{"a": 1, "b": null, "c": [1, 2], "d": {}}`},
	{ft: ftInner, datum: cat(aL(1), aL(0), aL(-2), aL(15), aF64(1), aF64(2), aL(0), aL(0)), typ: TypeJSONB, reason: ReasonSchemaMismatch},
	{ft: ftInner, datum: cat(aL(1), aL(0), aL(1<<40), aL(0), aL(0)), typ: TypeJSONB, reason: ReasonSchemaMismatch},
	{ft: `{"type":"array","items":"null"}`, datum: cat(aL(3), aL(0)), typ: TypeJSONB, want: `[null, null, null]`},
	{ft: `{"type":"array","items":"null"}`, datum: cat(aL(1<<50), aL(0)), typ: TypeJSONB, reason: ReasonSchemaMismatch},
	{ft: `{"type":"map","values":"long"}`, datum: cat(aL(2), aS("a"), aL(1), aS("é\n"), aL(2), aL(0)), typ: TypeJSON, want: `{"a":1,"é\n":2}`},
	{ft: `{"type":"map","values":"long"}`, datum: cat(aL(1), aS("a\x00"), aL(1), aL(0)), typ: TypeJSONB, reason: ReasonInvalidValue},

	{ft: ftEnum, datum: aL(1), typ: TypeText, want: "GREEN"},
	{ft: ftEnum, datum: aL(0), typ: TypeJSONB, want: `"RED"`},
	{ft: ftEnum, datum: aL(2), typ: TypeText, reason: ReasonSchemaMismatch},
	{ft: ftEnum, datum: aL(-1), typ: TypeText, reason: ReasonSchemaMismatch},
	{ft: ftEnum, datum: aL(0), typ: TypeInt4, reason: ReasonWrongType},

	{ft: `["null","string"]`, datum: aL(0), typ: TypeText, want: null},
	{ft: `["null","string"]`, datum: cat(aL(1), aS("x")), typ: TypeText, want: "x"},
	{ft: `["null","string"]`, datum: aL(2), typ: TypeText, reason: ReasonSchemaMismatch},
	{ft: `["null","string"]`, datum: aL(-1), typ: TypeText, reason: ReasonSchemaMismatch},
	{ft: `["null","long","string"]`, datum: cat(aL(1), aL(5)), typ: TypeText, want: "5"},
	{ft: `["null","long","string"]`, datum: cat(aL(2), aS("7")), typ: TypeInt8, want: "7"},
	{ft: `["long","boolean"]`, datum: cat(aL(1), []byte{1}), typ: TypeInt8, reason: ReasonWrongType},
	{ft: `["null","boolean"]`, datum: cat(aL(1), []byte{1}), typ: TypeInt8, reason: ReasonWrongType},
	{ft: `["null",` + ftInner + `]`, datum: cat(aL(1), inner), typ: TypeJSONB, want: `{"a": -7, "b": "x\"y", "c": [0.5, -2], "d": {"k": true}}`},
	{ft: `{"type":"array","items":["null","long"]}`, datum: cat(aL(2), aL(0), aL(1), aL(9), aL(0)), typ: TypeJSONB, want: `[null, 9]`},

	{ft: `{"type":"fixed","name":"F","size":4}`, datum: []byte{1, 2, 3, 4}, typ: TypeBytea, want: `\x01020304`},
	{ft: `{"type":"fixed","name":"F","size":4}`, datum: []byte{1, 2, 3}, typ: TypeBytea, reason: ReasonSchemaMismatch},
	{ft: `{"type":"fixed","name":"F","size":4}`, datum: []byte{0, 0xff, 0, 1}, typ: TypeJSONB, want: `"AP8AAQ=="`},
	{ft: `{"type":"fixed","name":"F","size":4}`, datum: []byte{1, 2, 3, 4}, typ: TypeUUID, reason: ReasonWrongType},
	{ft: `{"type":"fixed","name":"F","size":16}`, datum: uuidRaw, typ: TypeUUID, want: "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"},
	{ft: ftFixedID, datum: uuidRaw, typ: TypeUUID, want: "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"},
	{ft: ftFixedID, datum: uuidRaw, typ: TypeText, want: "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"},
	{ft: ftFixedID, datum: uuidRaw, typ: TypeJSONB, want: `"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"`},

	{ft: ftDecimal, datum: aS("\x04\xd2"), typ: TypeNumeric, want: "12.34"},
	{ft: ftDecimal, datum: aS("\xfb\x2e"), typ: TypeNumeric, want: "-12.34"},
	{ft: ftDecimal, datum: aS("\x05"), typ: TypeNumeric, want: "0.05"},
	{ft: ftDecimal, datum: aS("\xfb"), typ: TypeText, want: "-0.05"},
	{ft: ftDecimal, datum: aS(""), typ: TypeNumeric, want: "0.00"},
	{ft: ftDecimal, datum: aS("\x00"), typ: TypeText, want: "0.00"},
	{ft: ftDecimal, datum: aS("\x04\xd2"), typ: TypeFloat8, want: "12.34"},
	{ft: ftDecimal, datum: aS("\x04\xd2"), typ: TypeJSONB, want: "12.34"},
	{ft: ftDecimal, datum: aS("\x04\xd2"), typ: TypeInt4, reason: ReasonWrongType},
	{ft: ftDecimal, datum: aS("\x04\xb0"), typ: TypeInt4, want: "12"},
	{ft: ftDecimal, datum: aS("\x04\xb0"), typ: TypeDate, reason: ReasonWrongType},
	{ft: ftDecimal0, datum: aS("\x80\x00\x00\x00\x00\x00\x00\x00\x00"), typ: TypeNumeric, want: "-2361183241434822606848"},
	{ft: ftDecimal0, datum: aS("\xff\x00\x00\x00\x00\x00\x00\x00\x00"), typ: TypeNumeric, want: "-18446744073709551616"},
	{ft: ftDecimal0, datum: aS("\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff"), typ: TypeNumeric, want: "4722366482869645213695"},
	{ft: ftDecimal0, datum: aS("\x80\x00\x00\x00\x00\x00\x00\x00"), typ: TypeNumeric, want: "-9223372036854775808"},
	{ft: ftDecimal0, datum: aS("\x80\x00\x00\x00\x00\x00\x00\x00"), typ: TypeInt8, want: "-9223372036854775808"},
	{ft: ftDecimal0, datum: aS("\xff\x7f\xff\xff\xff\xff\xff\xff\xff"), typ: TypeInt8, reason: ReasonOutOfRange},
	{ft: ftDecimal0, datum: aS("\x3b\x9a\xca\x00\x00"), typ: TypeText, want: "256000000000"},
	{ft: ftFixedDec, datum: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, typ: TypeNumeric, want: "-0.001"},
	{ft: ftFixedDec, datum: []byte{0, 0, 0, 0, 0, 0, 0x30, 0x39}, typ: TypeFloat4, want: "12.345"},

	{ft: ftDate, datum: aL(19782), typ: TypeDate, want: "2024-02-29"},
	{ft: ftDate, datum: aL(-719162), typ: TypeDate, want: "0001-01-01"},
	{ft: ftDate, datum: aL(-719163), typ: TypeText, reason: ReasonOutOfRange},
	{ft: ftDate, datum: aL(2932896), typ: TypeText, want: "9999-12-31"},
	{ft: ftDate, datum: aL(2145042905), typ: TypeDate, want: "5874897-12-31"},
	{ft: ftDate, datum: aL(2145042906), typ: TypeDate, reason: ReasonOutOfRange},
	{ft: ftDate, datum: aL(-2440588), typ: TypeDate, want: "4714-11-24 BC"},
	{ft: ftDate, datum: aL(-2440589), typ: TypeDate, reason: ReasonOutOfRange},
	{ft: ftDate, datum: aL(19782), typ: TypeTimestamptz, want: "2024-02-29 00:00:00+00"},
	{ft: ftDate, datum: aL(math.MinInt32), typ: TypeTimestamptz, reason: ReasonOutOfRange},
	{ft: ftDate, datum: aL(106751982 + 10957), typ: TypeTimestamp, want: "294276-12-31 00:00:00"},
	{ft: ftDate, datum: aL(106751983 + 10957), typ: TypeTimestamp, reason: ReasonOutOfRange},
	{ft: ftDate, datum: aL(-2440588), typ: TypeTimestamp, want: "4714-11-24 00:00:00 BC"},
	{ft: ftDate, datum: aL(-2440589), typ: TypeTimestamp, reason: ReasonOutOfRange},
	{ft: ftDate, datum: aL(19782), typ: TypeText, want: "2024-02-29"},
	{ft: ftDate, datum: aL(19782), typ: TypeJSONB, want: `"2024-02-29"`},
	{ft: ftDate, datum: aL(19782), typ: TypeInt4, want: "19782"},
	{ft: ftDate, datum: aL(19782), typ: TypeNumeric, reason: ReasonWrongType},

	{ft: ftTimeMs, datum: aL(45296789), typ: TypeText, want: "12:34:56.789"},
	{ft: ftTimeMs, datum: aL(0), typ: TypeText, want: "00:00:00"},
	{ft: ftTimeMs, datum: aL(86400000), typ: TypeText, want: "24:00:00"},
	{ft: ftTimeMs, datum: aL(86400001), typ: TypeText, reason: ReasonOutOfRange},
	{ft: ftTimeMs, datum: aL(-1), typ: TypeJSONB, reason: ReasonOutOfRange},
	{ft: ftTimeMs, datum: aL(45296789), typ: TypeInt4, want: "45296789"},
	{ft: ftTimeUs, datum: aL(45296789012), typ: TypeText, want: "12:34:56.789012"},
	{ft: ftTimeUs, datum: aL(45296000010), typ: TypeJSONB, want: `"12:34:56.00001"`},
	{ft: ftTimeUs, datum: aL(45296789012), typ: TypeInt8, want: "45296789012"},
	{ft: ftTimeUs, datum: aL(1), typ: TypeTimestamp, reason: ReasonWrongType},

	{ft: ftTsMillis, datum: aL(tsMillis), typ: TypeTimestamptz, want: "2026-11-01 00:00:01.234+00"},
	{ft: ftTsMillis, datum: aL(tsMillis), typ: TypeTimestamp, want: "2026-11-01 00:00:01.234"},
	{ft: ftTsMillis, datum: aL(tsMillis), typ: TypeText, want: "2026-11-01T00:00:01.234Z"},
	{ft: ftTsMillis, datum: aL(tsMillis), typ: TypeJSONB, want: `"2026-11-01T00:00:01.234Z"`},
	{ft: ftTsMillis, datum: aL(tsMillis), typ: TypeInt8, want: "1793491201234"},
	{ft: ftTsMillis, datum: aL(-1), typ: TypeTimestamptz, want: "1969-12-31 23:59:59.999+00"},
	{ft: ftTsMillis, datum: aL(-62135596800001), typ: TypeText, reason: ReasonOutOfRange},
	{ft: ftTsMillis, datum: aL(-62135596800001), typ: TypeTimestamp, want: "0001-12-31 23:59:59.999 BC"},
	{ft: ftTsMillis, datum: aL(math.MaxInt64), typ: TypeTimestamptz, reason: ReasonOutOfRange},
	{ft: ftTsMillis, datum: aL(-210866803200000), typ: TypeTimestamptz, want: "4714-11-24 00:00:00+00 BC"},
	{ft: ftTsMillis, datum: aL(-210866803200001), typ: TypeTimestamptz, reason: ReasonOutOfRange},
	{ft: ftTsMillis, datum: aL(tsMillis), typ: TypeDate, reason: ReasonWrongType},
	{ft: ftTsMicros, datum: aL(tsMillis*1000 + 567), typ: TypeTimestamptz, want: "2026-11-01 00:00:01.234567+00"},
	{ft: ftTsMicros, datum: aL(math.MaxInt64), typ: TypeTimestamptz, want: "294247-01-10 04:00:54.775807+00"},
	{ft: ftTsMicros, datum: aL(math.MinInt64), typ: TypeTimestamptz, reason: ReasonOutOfRange},
	{ft: ftTsNanos, datum: aL(tsMillis*1e6 + 567891), typ: TypeTimestamptz, want: "2026-11-01 00:00:01.234568+00"},
	{ft: ftTsNanos, datum: aL(tsMillis*1e6 + 567500), typ: TypeTimestamptz, want: "2026-11-01 00:00:01.234568+00"},
	{ft: ftTsNanos, datum: aL(tsMillis*1e6 + 566500), typ: TypeTimestamptz, want: "2026-11-01 00:00:01.234566+00"},
	{ft: ftTsNanos, datum: aL(-1), typ: TypeTimestamptz, want: "1970-01-01 00:00:00+00"},
	{ft: ftTsNanos, datum: aL(-501), typ: TypeTimestamptz, want: "1969-12-31 23:59:59.999999+00"},
	{ft: ftTsNanos, datum: aL(999999999500), typ: TypeText, want: "1970-01-01T00:16:40Z"},
	{ft: ftLocalMs, datum: aL(tsMillis), typ: TypeTimestamp, want: "2026-11-01 00:00:01.234"},
	{ft: ftLocalMs, datum: aL(tsMillis), typ: TypeTimestamptz, want: "2026-11-01 00:00:01.234+00"},
	{ft: ftLocalMs, datum: aL(tsMillis), typ: TypeText, want: "2026-11-01T00:00:01.234"},
	{ft: ftLocalUs, datum: aL(tsMillis * 1000), typ: TypeJSONB, want: `"2026-11-01T00:00:01.234"`},
	{ft: ftLocalNs, datum: aL(tsMillis * 1e6), typ: TypeTimestamp, want: "2026-11-01 00:00:01.234"},

	{ft: ftDuration, datum: duration, typ: TypeText, want: "P1M2DT3.004S"},
	{ft: ftDuration, datum: duration, typ: TypeJSONB, want: `{"days": 2, "months": 1, "milliseconds": 3004}`},
	{ft: ftDuration, datum: duration, typ: TypeBytea, want: `\x0100000002000000bc0b0000`},
	{ft: ftDuration, datum: duration[:11], typ: TypeText, reason: ReasonSchemaMismatch},
	{ft: ftDuration, datum: duration, typ: TypeInt8, reason: ReasonWrongType},

	// Invalid logical types fall back to the underlying type.
	{ft: `{"type":"string","logicalType":"date"}`, datum: aS("2024-02-29"), typ: TypeDate, want: "2024-02-29"},
	{ft: `{"type":"bytes","logicalType":"decimal","precision":2,"scale":3}`, datum: aS("hi"), typ: TypeText, want: "hi"},
	{ft: `{"type":"long","logicalType":"zebra"}`, datum: aL(3), typ: TypeInt2, want: "3"},
}

// TestAvroTypes decodes every case and lands the accepted ones in
// PostgreSQL, comparing the stored value's text.
func TestAvroTypes(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	byType := map[Type][]byte{}
	wants := map[Type][]avroCase{}
	for i, tc := range avroCases {
		name := fmt.Sprintf("%d %s→%s %x", i, tc.ft, tc.typ, tc.datum)
		if len(name) > 120 {
			name = name[:120]
		}
		d := mustDecoder(t, FormatAvro, []Column{{Name: "v", Type: tc.typ, Path: "v"}}, Options{})
		schemaErr := d.AddSchema(SchemaRef{ID: 9}, &Schema{Text: oneField(tc.ft)})
		out, err := d.AppendFields([]byte("prefix"), &Record{Value: append(AppendRegistryFraming(nil, 9), tc.datum...)})
		if tc.reason != "" {
			var re *RowError
			if !errors.As(err, &re) || re.Reason != tc.reason {
				t.Errorf("%s: got %v, want reason %s", name, err, tc.reason)
				continue
			}
			if string(out) != "prefix" {
				t.Errorf("%s: buffer not restored on error: %q", name, out)
			}
			if tc.reason == ReasonSchemaMismatch {
				if re.Column != "" || (re.Path != "" && re.Path != "v" && !strings.HasPrefix(re.Path, "v.")) {
					t.Errorf("%s: error names column %q path %q, want no column and path v", name, re.Column, re.Path)
				}
			} else if re.Column != "v" || re.Path != "v" {
				t.Errorf("%s: error names column %q path %q, want v and v", name, re.Column, re.Path)
			}
			// A column no branch of the schema can fill fails at AddSchema.
			if compileErr := strings.Contains(re.Detail, "writer schema"); (schemaErr != nil) != compileErr {
				t.Errorf("%s: AddSchema said %v for a record error %v", name, schemaErr, re)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: unexpected error %v", name, err)
			continue
		}
		if _, err := splitFields(out[len("prefix"):], 1); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		tuple := appendTuple(nil, 2, appendInt4Field(nil, int32(len(wants[tc.typ]))))
		byType[tc.typ] = append(byType[tc.typ], append(tuple, out[len("prefix"):]...)...)
		wants[tc.typ] = append(wants[tc.typ], tc)
	}
	for typ, tuples := range byType {
		table := "avro_types_" + typ.String()
		mustExec(t, conn, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int4, v %s)", table, table, typ))
		if err := copyTuples(ctx, conn, table, tuples); err != nil {
			t.Errorf("COPY into %s column rejected: %v", typ, err)
			continue
		}
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT id, coalesce(v::text, '%s') FROM %s ORDER BY id", null, table))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id int
			var got string
			if err := rows.Scan(&id, &got); err != nil {
				t.Fatal(err)
			}
			if tc := wants[typ][id]; got != tc.want {
				t.Errorf("%s from %s %x: PostgreSQL holds %q, want %q", typ, tc.ft, tc.datum, got, tc.want)
			}
			n++
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if n != len(wants[typ]) {
			t.Errorf("%s: %d rows landed, want %d", typ, n, len(wants[typ]))
		}
	}
}

// TestAvroNanosAgainstPostgres: timestamp-nanos values, many of them
// exactly half a microsecond, must land as PostgreSQL reads the same
// instant written in RFC 3339 with nine fraction digits.
func TestAvroNanosAgainstPostgres(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	d := mustDecoder(t, FormatAvro, []Column{{Name: "v", Type: TypeTimestamptz, Path: "v"}}, Options{})
	if err := d.AddSchema(SchemaRef{ID: 1}, &Schema{Text: oneField(ftTsNanos)}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	var tuples []byte
	var texts []string
	for i := range 3000 {
		ns := r.Int64()
		if r.IntN(2) == 0 {
			ns = -ns
		}
		ns = ns/1000*1000 + []int64{500, -500, 499, 501, 0, ns % 1000}[i%6]
		out, err := d.AppendFields(nil, &Record{Value: append(AppendRegistryFraming(nil, 1), aL(ns)...)})
		if err != nil {
			t.Fatalf("%d: %v", ns, err)
		}
		tuples = appendTuple(tuples, 2, append(appendInt4Field(nil, int32(i)), out...))
		texts = append(texts, time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000000000Z"))
	}
	mustExec(t, conn, "DROP TABLE IF EXISTS avro_nanos; CREATE TABLE avro_nanos (id int4, v timestamptz)")
	if err := copyTuples(ctx, conn, "avro_nanos", tuples); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT x.s, t.v::text, x.s::timestamptz::text FROM avro_nanos t
		JOIN unnest($1::text[]) WITH ORDINALITY AS x(s, i) ON t.id = x.i - 1 WHERE t.v <> x.s::timestamptz`, texts)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s, ours, theirs string
		if err := rows.Scan(&s, &ours, &theirs); err != nil {
			t.Fatal(err)
		}
		t.Errorf("%s: we stored %s, PostgreSQL reads %s", s, ours, theirs)
	}
}
