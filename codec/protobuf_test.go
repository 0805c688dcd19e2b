package codec

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Wire builders for hand-made payloads.

func pbVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func pbZigzag(num protowire.Number, v int64) []byte { return pbVarint(num, protowire.EncodeZigZag(v)) }

func pbBytes(num protowire.Number, parts ...[]byte) []byte {
	var v []byte
	for _, p := range parts {
		v = append(v, p...)
	}
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func pbString(num protowire.Number, s string) []byte { return pbBytes(num, []byte(s)) }

func pbFixed32(num protowire.Number, v uint32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), v)
}

func pbFixed64(num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
}

func pbCat(parts ...[]byte) []byte {
	out := []byte{}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func pbPacked(num protowire.Number, vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = protowire.AppendVarint(b, v)
	}
	return pbBytes(num, b)
}

// pbCaseSchema holds every case's field as message M.
const pbCaseSchema = `syntax = "proto3";
package t;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";
import "google/protobuf/struct.proto";
import "google/protobuf/field_mask.proto";
import "google/protobuf/any.proto";
import "confluent/type/decimal.proto";
import "google/type/date.proto";
enum E { E0 = 0; E1 = 1; E2 = 2; }
message Sub { string s = 1; int32 n = 2; repeated int32 r = 3; }
message M { %s }
`

// pbCase decodes payload, a message M with the field decl, into a column
// of type typ reading path (default "v"). want is the column's text in
// PostgreSQL (null for SQL NULL), or the RowError reason.
type pbCase struct {
	decl    string
	path    string
	typ     Type
	payload []byte
	want    string
	reason  Reason
}

func (c pbCase) String() string {
	name := fmt.Sprintf("%s→%s %x", c.decl, c.typ, c.payload)
	if len(name) > 90 {
		name = name[:90]
	}
	return name
}

var (
	ts1730419201234 = pbCat(pbVarint(1, 1730419201), pbVarint(2, 234000000))
	dec1234         = []byte{0x04, 0xD2}
	decNeg1234      = []byte{0xFB, 0x2E}
)

var pbCases = []pbCase{
	// Integers: range checks, implicit and explicit presence.
	{decl: "int32 v = 1;", typ: TypeInt4, payload: pbVarint(1, 42), want: "42"},
	{decl: "int32 v = 1;", typ: TypeInt4, payload: pbVarint(1, uint64(math.MaxUint64)), want: "-1"},
	{decl: "int32 v = 1;", typ: TypeInt4, payload: nil, want: "0"},
	{decl: "int32 v = 1;", typ: TypeInt4, payload: pbCat(pbVarint(1, 1), pbVarint(1, 2)), want: "2"},
	{decl: "optional int32 v = 1;", typ: TypeInt4, payload: nil, want: null},
	{decl: "optional int32 v = 1;", typ: TypeInt4, payload: pbVarint(1, 0), want: "0"},
	{decl: "int32 v = 1;", typ: TypeInt2, payload: pbVarint(1, 70000), reason: ReasonOutOfRange},
	{decl: "int64 v = 1;", typ: TypeInt8, payload: pbVarint(1, math.MaxInt64), want: "9223372036854775807"},
	{decl: "int64 v = 1;", typ: TypeInt4, payload: pbVarint(1, 1<<31), reason: ReasonOutOfRange},
	{decl: "uint64 v = 1;", typ: TypeInt8, payload: pbVarint(1, math.MaxUint64), reason: ReasonOutOfRange},
	{decl: "uint64 v = 1;", typ: TypeNumeric, payload: pbVarint(1, math.MaxUint64), want: "18446744073709551615"},
	{decl: "uint64 v = 1;", typ: TypeText, payload: pbVarint(1, math.MaxUint64), want: "18446744073709551615"},
	{decl: "uint32 v = 1;", typ: TypeInt8, payload: pbVarint(1, math.MaxUint32), want: "4294967295"},
	{decl: "sint32 v = 1;", typ: TypeInt4, payload: pbZigzag(1, -5), want: "-5"},
	{decl: "sint64 v = 1;", typ: TypeInt8, payload: pbZigzag(1, math.MinInt64), want: "-9223372036854775808"},
	{decl: "fixed32 v = 1;", typ: TypeInt8, payload: pbFixed32(1, math.MaxUint32), want: "4294967295"},
	{decl: "sfixed32 v = 1;", typ: TypeInt4, payload: pbFixed32(1, uint32(0xFFFFFFF9)), want: "-7"},
	{decl: "fixed64 v = 1;", typ: TypeNumeric, payload: pbFixed64(1, math.MaxUint64), want: "18446744073709551615"},
	{decl: "sfixed64 v = 1;", typ: TypeInt8, payload: pbFixed64(1, uint64(1<<63)), want: "-9223372036854775808"},
	{decl: "int64 v = 1;", typ: TypeFloat8, payload: pbVarint(1, 1<<53+1), want: "9.007199254740992e+15"},
	{decl: "int64 v = 1;", typ: TypeJSONB, payload: pbVarint(1, 1<<60), want: "1152921504606846976"},
	{decl: "int64 v = 1;", typ: TypeTimestamptz, payload: pbVarint(1, 1730419201234), want: "2024-11-01 00:00:01.234+00"},
	{decl: "int64 v = 1;", typ: TypeTimestamp, payload: pbVarint(1, 1730419201), want: "2024-11-01 00:00:01"},

	// Bool.
	{decl: "bool v = 1;", typ: TypeBool, payload: pbVarint(1, 1), want: "true"},
	{decl: "bool v = 1;", typ: TypeBool, payload: nil, want: "false"},
	{decl: "bool v = 1;", typ: TypeText, payload: pbVarint(1, 1), want: "true"},
	{decl: "bool v = 1;", typ: TypeJSON, payload: pbVarint(1, 0), want: "false"},

	// Strings.
	{decl: "string v = 1;", typ: TypeText, payload: pbString(1, "héllo 😀"), want: "héllo 😀"},
	{decl: "string v = 1;", typ: TypeText, payload: nil, want: ""},
	{decl: "string v = 1;", typ: TypeText, payload: pbString(1, "a\xffb"), reason: ReasonInvalidUTF8},
	{decl: "string v = 1;", typ: TypeText, payload: pbString(1, "a\x00b"), reason: ReasonNULInText},
	{decl: "string v = 1;", typ: TypeUUID, payload: pbString(1, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{decl: "string v = 1;", typ: TypeUUID, payload: pbString(1, "nope"), reason: ReasonInvalidValue},
	{decl: "string v = 1;", typ: TypeInt8, payload: pbString(1, "9007199254740993"), want: "9007199254740993"},
	{decl: "string v = 1;", typ: TypeInt8, payload: pbString(1, "12x"), reason: ReasonWrongType},
	{decl: "string v = 1;", typ: TypeNumeric, payload: pbString(1, "12.50"), want: "12.50"},
	{decl: "string v = 1;", typ: TypeFloat8, payload: pbString(1, "-Infinity"), want: "-Infinity"},
	{decl: "string v = 1;", typ: TypeTimestamptz, payload: pbString(1, "2026-11-01T02:00:01.5+02:00"), want: "2026-11-01 00:00:01.5+00"},
	{decl: "string v = 1;", typ: TypeDate, payload: pbString(1, "2026-11-01"), want: "2026-11-01"},
	{decl: "string v = 1;", typ: TypeBytea, payload: pbString(1, "aGVsbG8="), want: `\x68656c6c6f`},
	{decl: "string v = 1;", typ: TypeJSONB, payload: pbString(1, "a\"b\n"), want: `"a\"b\n"`},
	{decl: "string v = 1;", typ: TypeJSONB, payload: pbString(1, "a\x00"), reason: ReasonInvalidValue},
	{decl: "string v = 1;", typ: TypeJSON, payload: pbString(1, "a\x00"), want: `"a\u0000"`},
	{decl: "string v = 1;", typ: TypeJSON, payload: pbString(1, "\xc3"), reason: ReasonInvalidUTF8},

	// Bytes.
	{decl: "bytes v = 1;", typ: TypeBytea, payload: pbBytes(1, []byte{1, 2, 0xff}), want: `\x0102ff`},
	{decl: "bytes v = 1;", typ: TypeBytea, payload: nil, want: `\x`},
	{decl: "bytes v = 1;", typ: TypeText, payload: pbBytes(1, []byte("hi?")), want: "aGk/"},
	{decl: "bytes v = 1;", typ: TypeJSONB, payload: pbBytes(1, []byte("hi?")), want: `"aGk/"`},
	{decl: "bytes v = 1;", typ: TypeUUID, payload: pbBytes(1, []byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}), want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{decl: "bytes v = 1;", typ: TypeUUID, payload: pbBytes(1, []byte{1, 2, 3}), reason: ReasonInvalidValue},

	// Floats.
	{decl: "double v = 1;", typ: TypeFloat8, payload: pbFixed64(1, math.Float64bits(0.1)), want: "0.1"},
	{decl: "double v = 1;", typ: TypeNumeric, payload: pbFixed64(1, math.Float64bits(12.34)), want: "12.34"},
	{decl: "double v = 1;", typ: TypeNumeric, payload: pbFixed64(1, math.Float64bits(1e21)), want: "1000000000000000000000"},
	{decl: "double v = 1;", typ: TypeNumeric, payload: pbFixed64(1, math.Float64bits(math.NaN())), want: "NaN"},
	{decl: "double v = 1;", typ: TypeNumeric, payload: pbFixed64(1, math.Float64bits(math.Inf(-1))), want: "-Infinity"},
	{decl: "double v = 1;", typ: TypeInt8, payload: pbFixed64(1, math.Float64bits(3)), want: "3"},
	{decl: "double v = 1;", typ: TypeInt8, payload: pbFixed64(1, math.Float64bits(1.5)), reason: ReasonWrongType},
	{decl: "double v = 1;", typ: TypeInt8, payload: pbFixed64(1, math.Float64bits(1e19)), reason: ReasonOutOfRange},
	{decl: "double v = 1;", typ: TypeFloat4, payload: pbFixed64(1, math.Float64bits(1e300)), reason: ReasonOutOfRange},
	{decl: "double v = 1;", typ: TypeFloat4, payload: pbFixed64(1, math.Float64bits(1e-300)), reason: ReasonOutOfRange},
	{decl: "double v = 1;", typ: TypeText, payload: pbFixed64(1, math.Float64bits(1e21)), want: "1e+21"},
	{decl: "double v = 1;", typ: TypeText, payload: pbFixed64(1, math.Float64bits(math.Inf(1))), want: "Infinity"},
	{decl: "double v = 1;", typ: TypeJSONB, payload: pbFixed64(1, math.Float64bits(math.NaN())), want: `"NaN"`},
	{decl: "double v = 1;", typ: TypeJSON, payload: pbFixed64(1, math.Float64bits(math.Copysign(0, -1))), want: "-0"},
	{decl: "double v = 1;", typ: TypeTimestamptz, payload: pbFixed64(1, math.Float64bits(1730419201.5)), want: "2024-11-01 00:00:01.5+00"},
	{decl: "float v = 1;", typ: TypeFloat4, payload: pbFixed32(1, math.Float32bits(0.1)), want: "0.1"},
	{decl: "float v = 1;", typ: TypeFloat8, payload: pbFixed32(1, math.Float32bits(0.1)), want: "0.10000000149011612"},
	{decl: "float v = 1;", typ: TypeNumeric, payload: pbFixed32(1, math.Float32bits(0.1)), want: "0.1"},
	{decl: "float v = 1;", typ: TypeJSON, payload: pbFixed32(1, math.Float32bits(0.1)), want: "0.1"},

	// Enums.
	{decl: "E v = 1;", typ: TypeText, payload: pbVarint(1, 1), want: "E1"},
	{decl: "E v = 1;", typ: TypeText, payload: nil, want: "E0"},
	{decl: "E v = 1;", typ: TypeText, payload: pbVarint(1, 7), want: "7"},
	{decl: "E v = 1;", typ: TypeInt2, payload: pbVarint(1, 2), want: "2"},
	{decl: "E v = 1;", typ: TypeJSONB, payload: pbVarint(1, 2), want: `"E2"`},
	{decl: "E v = 1;", typ: TypeJSONB, payload: pbVarint(1, uint64(math.MaxUint64)), want: `-1`},

	// Timestamp.
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbBytes(1, ts1730419201234), want: "2024-11-01 00:00:01.234+00"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamp, payload: pbBytes(1, ts1730419201234), want: "2024-11-01 00:00:01.234"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: nil, want: null},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbBytes(1), want: "1970-01-01 00:00:00+00"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbBytes(1, pbVarint(2, 1500)), want: "1970-01-01 00:00:00.000002+00"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbBytes(1, pbVarint(2, 2500)), want: "1970-01-01 00:00:00.000002+00"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbBytes(1, pbVarint(2, 999999999)), want: "1970-01-01 00:00:01+00"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbBytes(1, pbVarint(1, uint64(1<<63))), reason: ReasonOutOfRange},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbBytes(1, pbVarint(2, uint64(math.MaxUint64))), reason: ReasonInvalidValue},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeTimestamptz, payload: pbCat(pbBytes(1, pbVarint(1, 1730419201)), pbBytes(1, pbVarint(2, 234000000))), want: "2024-11-01 00:00:01.234+00"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeText, payload: pbBytes(1, ts1730419201234), want: "2024-11-01T00:00:01.234Z"},
	{decl: "google.protobuf.Timestamp v = 1;", typ: TypeJSONB, payload: pbBytes(1, ts1730419201234), want: `"2024-11-01T00:00:01.234Z"`},

	// Duration.
	{decl: "google.protobuf.Duration v = 1;", typ: TypeInt8, payload: pbBytes(1, pbVarint(1, 1), pbVarint(2, 500000500)), want: "1500000"},
	{decl: "google.protobuf.Duration v = 1;", typ: TypeInt8, payload: pbBytes(1, pbVarint(1, uint64(math.MaxUint64)), pbVarint(2, uint64(math.MaxUint64)-499)), want: "-1000000"},
	{decl: "google.protobuf.Duration v = 1;", typ: TypeText, payload: pbBytes(1, pbVarint(1, 1), pbVarint(2, 500000000)), want: "1.500s"},
	{decl: "google.protobuf.Duration v = 1;", typ: TypeJSON, payload: pbBytes(1, pbVarint(1, uint64(math.MaxUint64))), want: `"-1s"`},
	{decl: "google.protobuf.Duration v = 1;", typ: TypeInt8, payload: pbBytes(1, pbVarint(1, 1), pbVarint(2, uint64(math.MaxUint64))), reason: ReasonInvalidValue},

	// Wrappers: NULL when absent, the default when empty.
	{decl: "google.protobuf.Int64Value v = 1;", typ: TypeInt8, payload: pbBytes(1, pbVarint(1, 5)), want: "5"},
	{decl: "google.protobuf.Int64Value v = 1;", typ: TypeInt8, payload: pbBytes(1), want: "0"},
	{decl: "google.protobuf.Int64Value v = 1;", typ: TypeInt8, payload: nil, want: null},
	{decl: "google.protobuf.StringValue v = 1;", typ: TypeText, payload: pbBytes(1, pbString(1, "x")), want: "x"},
	{decl: "google.protobuf.StringValue v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbString(1, "x")), want: `"x"`},
	{decl: "google.protobuf.BoolValue v = 1;", typ: TypeBool, payload: pbBytes(1, pbVarint(1, 1)), want: "true"},
	{decl: "google.protobuf.DoubleValue v = 1;", typ: TypeFloat8, payload: pbBytes(1, pbFixed64(1, math.Float64bits(2.5))), want: "2.5"},

	// Struct, Value, ListValue.
	{decl: "google.protobuf.Struct v = 1;", typ: TypeJSONB, payload: pbBytes(1,
		pbBytes(1, pbString(1, "a"), pbBytes(2, pbFixed64(2, math.Float64bits(1)))),
		pbBytes(1, pbString(1, "b"), pbBytes(2, pbBytes(6, pbBytes(1, pbVarint(4, 1)), pbBytes(1, pbVarint(1, 0)), pbBytes(1, pbString(3, "x")))))),
		want: `{"a": 1, "b": [true, null, "x"]}`},
	{decl: "google.protobuf.Struct v = 1;", typ: TypeJSONB, payload: pbBytes(1), want: `{}`},
	{decl: "google.protobuf.Value v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbString(3, "x"), pbFixed64(2, math.Float64bits(2))), want: `2`},
	{decl: "google.protobuf.ListValue v = 1;", typ: TypeJSON, payload: pbBytes(1, pbBytes(1, pbVarint(4, 0))), want: `[false]`},
	{decl: "google.protobuf.FieldMask v = 1;", typ: TypeText, payload: pbBytes(1, pbString(1, "a.b_c"), pbString(1, "d")), want: `a.bC,d`},
	{decl: "google.protobuf.Any v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbString(1, "type.googleapis.com/t.Sub"), pbBytes(2, pbString(1, "x"))), want: `{"@type": "type.googleapis.com/t.Sub", "value": "CgF4"}`},

	// confluent.type.Decimal and google.type.Date.
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, dec1234), pbVarint(3, 2)), want: "12.34"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, decNeg1234), pbVarint(3, 2)), want: "-12.34"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, decNeg1234), pbVarint(3, 6)), want: "-0.001234"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, dec1234), pbVarint(3, uint64(math.MaxUint64)-1)), want: "123400"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbVarint(3, 2)), want: "0.00"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, []byte{0x80, 0, 0, 0, 0, 0, 0, 0})), want: "-9223372036854775808"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), pbVarint(3, 1)), want: "-0.1"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, []byte{0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), pbVarint(3, 10)),
		want: "17014118346046923173168730371.5884105727"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, []byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), pbVarint(3, 0)),
		want: "-43556142965880123323311949751266331066368"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeText, payload: pbBytes(1, pbBytes(1, dec1234), pbVarint(3, 3)), want: "1.234"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbBytes(1, dec1234), pbVarint(3, 2)), want: "12.34"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeInt8, payload: pbBytes(1, pbBytes(1, dec1234), pbVarint(3, 2)), reason: ReasonWrongType},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeFloat8, payload: pbBytes(1, pbBytes(1, dec1234), pbVarint(3, 2)), want: "12.34"},
	{decl: "confluent.type.Decimal v = 1;", typ: TypeNumeric, payload: pbBytes(1, pbBytes(1, dec1234), pbVarint(3, 20000)), reason: ReasonOutOfRange},
	{decl: "google.type.Date v = 1;", typ: TypeDate, payload: pbBytes(1, pbVarint(1, 2026), pbVarint(2, 11), pbVarint(3, 1)), want: "2026-11-01"},
	{decl: "google.type.Date v = 1;", typ: TypeDate, payload: pbBytes(1, pbVarint(2, 11), pbVarint(3, 1)), reason: ReasonInvalidValue},
	{decl: "google.type.Date v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbVarint(1, 2026), pbVarint(2, 11), pbVarint(3, 1)), want: `{"day": 1, "year": 2026, "month": 11}`},

	// Repeated fields and maps, packed and not.
	{decl: "repeated int32 v = 1;", typ: TypeJSONB, payload: pbPacked(1, 1, 2, 3), want: "[1, 2, 3]"},
	{decl: "repeated int32 v = 1;", typ: TypeJSON, payload: pbCat(pbVarint(1, 1), pbPacked(1, 2, 3), pbVarint(1, 4)), want: "[1,2,3,4]"},
	{decl: "repeated int32 v = 1;", typ: TypeJSONB, payload: nil, want: "[]"},
	{decl: "repeated sint64 v = 1;", typ: TypeText, payload: pbPacked(1, protowire.EncodeZigZag(-3)), want: "[-3]"},
	{decl: "repeated string v = 1;", typ: TypeJSON, payload: pbCat(pbString(1, "a"), pbString(1, "")), want: `["a",""]`},
	{decl: "repeated Sub v = 1;", typ: TypeJSONB, payload: pbCat(pbBytes(1, pbString(1, "x")), pbBytes(1)), want: `[{"s": "x"}, {}]`},
	{decl: "repeated E v = 1;", typ: TypeJSON, payload: pbPacked(1, 1, 9), want: `["E1",9]`},
	{decl: "map<string, int64> v = 1;", typ: TypeJSONB, payload: pbCat(pbBytes(1, pbString(1, "a"), pbVarint(2, 1)), pbBytes(1, pbString(1, "b"), pbVarint(2, 2))), want: `{"a": 1, "b": 2}`},
	{decl: "map<string, int64> v = 1;", typ: TypeJSON, payload: pbCat(pbBytes(1, pbString(1, "a"), pbVarint(2, 1)), pbBytes(1, pbString(1, "b"), pbVarint(2, 2)), pbBytes(1, pbString(1, "a"), pbVarint(2, 3))), want: `{"b":2,"a":3}`},
	{decl: "map<string, int64> v = 1;", typ: TypeJSONB, payload: pbCat(pbBytes(1, pbString(1, "a"), pbVarint(2, 1)), pbBytes(1, pbString(1, "a"), pbVarint(2, 3))), want: `{"a": 3}`},
	{decl: "map<int32, string> v = 1;", typ: TypeJSON, payload: pbCat(pbBytes(1, pbVarint(1, uint64(math.MaxUint64)), pbString(2, "x")), pbBytes(1)), want: `{"-1":"x","0":""}`},
	{decl: "map<bool, Sub> v = 1;", typ: TypeJSON, payload: pbCat(pbBytes(1, pbVarint(1, 1))), want: `{"true":{}}`},
	{decl: "map<string, int64> v = 1;", typ: TypeJSONB, payload: nil, want: `{}`},

	// Messages, paths into them, merging.
	{decl: "Sub v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbString(1, "x"), pbVarint(2, 0)), want: `{"s": "x"}`},
	{decl: "Sub v = 1;", typ: TypeJSONB, payload: pbCat(pbBytes(1, pbString(1, "x"), pbPacked(3, 1)), pbBytes(1, pbVarint(2, 2), pbVarint(3, 2))), want: `{"n": 2, "r": [1, 2], "s": "x"}`},
	{decl: "Sub v = 1;", typ: TypeText, payload: pbBytes(1, pbString(1, "x"), pbVarint(2, 5)), want: `{"s":"x","n":5}`},
	{decl: "Sub v = 1;", typ: TypeJSON, payload: nil, want: null},
	{decl: "Sub v = 1;", path: "v.s", typ: TypeText, payload: pbBytes(1, pbString(1, "x")), want: "x"},
	{decl: "Sub v = 1;", path: "v.s", typ: TypeText, payload: pbBytes(1), want: ""},
	{decl: "Sub v = 1;", path: "v.s", typ: TypeText, payload: nil, want: null},
	{decl: "Sub v = 1;", path: "v.s", typ: TypeText, payload: pbCat(pbBytes(1, pbString(1, "x")), pbBytes(1, pbVarint(2, 2))), want: "x"},
	{decl: "Sub v = 1;", path: "v.n", typ: TypeInt4, payload: pbCat(pbBytes(1, pbString(1, "x")), pbBytes(1, pbVarint(2, 2))), want: "2"},
	{decl: "Sub v = 1;", path: "v.nope", typ: TypeText, payload: pbBytes(1, pbString(1, "x")), want: null},
	{decl: "int32 v = 1;", path: "nope", typ: TypeText, payload: pbVarint(1, 1), want: null},
	{decl: "int32 some_field = 1;", path: "someField", typ: TypeInt4, payload: pbVarint(1, 3), want: "3"},

	// Oneofs: the last member met wins and clears the others.
	{decl: "oneof o { string a = 1; int32 v = 2; }", typ: TypeInt4, payload: pbCat(pbString(1, "x"), pbVarint(2, 0)), want: "0"},
	{decl: "oneof o { string a = 1; int32 v = 2; }", typ: TypeInt4, payload: pbCat(pbVarint(2, 3), pbString(1, "x")), want: null},
	{decl: "oneof o { string a = 1; int32 v = 2; }", path: "a", typ: TypeText, payload: pbCat(pbVarint(2, 3), pbString(1, "x")), want: "x"},
	{decl: "oneof o { Sub a = 1; int32 v = 2; }", path: "a.s", typ: TypeText, payload: pbCat(pbBytes(1, pbString(1, "x")), pbVarint(2, 3)), want: null},
	{decl: "oneof o { Sub a = 1; int32 b = 2; } Sub v = 3;", typ: TypeJSON, payload: pbBytes(3, pbString(1, "x")), want: `{"s":"x"}`},
	{decl: "message N { oneof o { Sub a = 1; int32 b = 2; } } N v = 1;", typ: TypeJSON, payload: pbBytes(1, pbBytes(1, pbString(1, "x")), pbVarint(2, 0), pbBytes(1, pbVarint(2, 4))), want: `{"a":{"n":4}}`},

	// Malformed wire data.
	{decl: "int32 v = 1;", typ: TypeInt4, payload: []byte{0x08, 0x80}, reason: ReasonSchemaMismatch},
	{decl: "int32 v = 1;", typ: TypeInt4, payload: pbString(1, "x"), reason: ReasonSchemaMismatch},
	{decl: "string v = 1;", typ: TypeText, payload: []byte{0x0a, 0x05, 'a'}, reason: ReasonSchemaMismatch},
	{decl: "string v = 1;", typ: TypeText, payload: []byte{0x0b, 0x0c}, reason: ReasonSchemaMismatch},
	{decl: "string v = 1;", typ: TypeText, payload: []byte{0x00, 0x01}, reason: ReasonSchemaMismatch},
	{decl: "string v = 1;", typ: TypeText, payload: []byte{0x16, 0x01}, reason: ReasonSchemaMismatch},
	{decl: "string v = 1;", typ: TypeText, payload: []byte{0x14}, reason: ReasonSchemaMismatch},
	{decl: "string v = 1;", typ: TypeText, payload: pbCat([]byte{0x13, 0x18, 0x01, 0x14}, pbString(1, "ok")), want: "ok"},
	{decl: "string v = 1;", typ: TypeText, payload: pbCat(pbFixed64(9, 1), pbString(1, "ok"), pbFixed32(10, 1)), want: "ok"},
	{decl: "string v = 1;", typ: TypeText, payload: []byte{0x4d, 0x01}, reason: ReasonSchemaMismatch},
	// Field numbers run from 1 to 2^29-1; protobuf parsers reject a larger
	// one even in an unknown field.
	{decl: "string v = 1;", typ: TypeText, payload: pbCat(pbVarint(protowire.MaxValidNumber, 1), pbString(1, "ok")), want: "ok"},
	{decl: "string v = 1;", typ: TypeText, payload: pbCat(pbString(1, "ok"), pbVarint(protowire.MaxValidNumber+1, 1)), reason: ReasonSchemaMismatch},
	{decl: "Sub v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbVarint(2, 5), pbVarint(protowire.MaxValidNumber+1, 1)), reason: ReasonSchemaMismatch},
	{decl: "Sub v = 1;", path: "v.s", typ: TypeText, payload: pbBytes(1, []byte{0x0a, 0x09}), reason: ReasonSchemaMismatch},
	{decl: "Sub v = 1;", typ: TypeJSONB, payload: pbBytes(1, pbVarint(1, 1)), reason: ReasonSchemaMismatch},
	{decl: "repeated int32 v = 1;", typ: TypeJSONB, payload: pbBytes(1, []byte{0x80}), reason: ReasonSchemaMismatch},
	{decl: "repeated string v = 1;", typ: TypeJSONB, payload: pbVarint(1, 1), reason: ReasonSchemaMismatch},
}

// pbPlan compiles schema text for cols, failing the test on error.
func pbPlan(t testing.TB, schema string, idx []int, cols []Column) *protobufPlan {
	t.Helper()
	p, err := compileProtobufPlan(&Schema{Type: SchemaProtobuf, Text: schema}, idx, cols, Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return p.(*protobufPlan)
}

// pbAppendRow decodes payload and appends every column's field.
func pbAppendRow(p *protobufPlan, dst, payload []byte) ([]byte, *RowError) {
	entry := len(dst)
	if rerr := p.decode(payload); rerr != nil {
		return dst, rerr
	}
	for i := range p.cols {
		var rerr *RowError
		if dst, rerr = p.appendPath(dst, i); rerr != nil {
			return dst[:entry], rerr
		}
	}
	return dst, nil
}

// TestProtobufTypes decodes every case and lands the accepted ones in
// PostgreSQL, comparing the stored value's text.
func TestProtobufTypes(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	byType := map[Type][]byte{}
	wants := map[Type][]pbCase{}
	for _, tc := range pbCases {
		path := tc.path
		if path == "" {
			path = "v"
		}
		p := pbPlan(t, fmt.Sprintf(pbCaseSchema, tc.decl), []int{1}, []Column{{Name: "c", Type: tc.typ, Path: path}})
		out, rerr := pbAppendRow(p, []byte("prefix"), tc.payload)
		if tc.reason != "" {
			if rerr == nil || rerr.Reason != tc.reason {
				t.Errorf("%s: got %v, want reason %s", tc, rerr, tc.reason)
			} else if string(out) != "prefix" {
				t.Errorf("%s: buffer not restored: %q", tc, out)
			}
			continue
		}
		if rerr != nil {
			t.Errorf("%s: %v", tc, rerr)
			continue
		}
		if _, err := splitFields(out[6:], 1); err != nil {
			t.Errorf("%s: %v", tc, err)
			continue
		}
		tuple := appendTuple(nil, 2, appendInt4Field(nil, int32(len(wants[tc.typ]))))
		byType[tc.typ] = append(byType[tc.typ], append(tuple, out[6:]...)...)
		wants[tc.typ] = append(wants[tc.typ], tc)
	}
	for typ, tuples := range byType {
		table := "pb_types_" + typ.String()
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
				t.Errorf("%s: PostgreSQL holds %q, want %q", tc, got, tc.want)
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

// TestProtobufRequired: a required column reports a missing value, and the
// record-level errors name the field.
func TestProtobufRequired(t *testing.T) {
	p := pbPlan(t, fmt.Sprintf(pbCaseSchema, "optional string v = 1; Sub sub = 2;"), []int{1}, []Column{
		{Name: "a", Type: TypeText, Path: "v", Required: true},
		{Name: "b", Type: TypeText, Path: "sub.s"},
	})
	_, rerr := pbAppendRow(p, nil, nil)
	if rerr == nil || rerr.Reason != ReasonMissingRequired || rerr.Column != "a" || rerr.Path != "v" {
		t.Errorf("got %v, want missing_required for column a path v", rerr)
	}
	_, rerr = pbAppendRow(p, nil, pbCat(pbString(1, "x"), pbBytes(2, []byte{0x0a, 0x05})))
	if rerr == nil || rerr.Reason != ReasonSchemaMismatch || rerr.Path != "sub.s" {
		t.Errorf("got %v, want schema_mismatch naming sub.s", rerr)
	}
}

// pbMessageJSONB decodes payload, a message R of schema whose field m is
// a message, and returns m as a jsonb column holds it, m as protojson
// writes it (with the .proto names), and the decode's error.
func pbMessageJSONB(t *testing.T, schema string, payload []byte) (got, want string, rerr *RowError) {
	t.Helper()
	fd, err := compileProtobufFile(&Schema{Type: SchemaProtobuf, Text: schema})
	if err != nil {
		t.Fatal(err)
	}
	r := dynamicpb.NewMessage(fd.Messages().ByName("R"))
	if err := proto.Unmarshal(payload, r); err != nil {
		t.Fatalf("protobuf rejects the payload: %v", err)
	}
	m := r.Get(r.Descriptor().Fields().ByName("m")).Message().Interface()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := pbPlan(t, schema, []int{0}, []Column{{Name: "c", Type: TypeJSONB, Path: "m"}})
	out, rerr := pbAppendRow(p, nil, payload)
	if rerr != nil {
		return "", string(b), rerr
	}
	fields, err := splitFields(out, 1)
	if err != nil {
		t.Fatal(err)
	}
	return string(fields[0][1:]), string(b), nil // past jsonb's version byte
}

// pbGroup is a group field of number num holding parts.
func pbGroup(num protowire.Number, parts ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.StartGroupType)
	for _, p := range parts {
		b = append(b, p...)
	}
	return protowire.AppendTag(b, num, protowire.EndGroupType)
}

// TestProtobufGroupsInJSON: a message taken as JSON renders its groups
// (proto2 groups, editions' DELIMITED message fields) as protojson does,
// keyed by the group's name as the .proto writes it.
func TestProtobufGroupsInJSON(t *testing.T) {
	for _, tc := range []struct {
		name, schema string
		payload      []byte
	}{
		{"optional group", `syntax = "proto2"; package t;
message R { optional M m = 1; }
message M { optional group G = 5 { optional int32 a = 6; } optional int32 x = 7; }`,
			pbBytes(1, pbGroup(5, pbVarint(6, 3)), pbVarint(7, 1))},
		{"repeated group", `syntax = "proto2"; package t;
message R { optional M m = 1; }
message M { repeated group G = 4 { optional int32 b = 5; } }`,
			pbBytes(1, pbGroup(4, pbVarint(5, 1)), pbGroup(4, pbVarint(5, 2)))},
		{"group in a group, merged", `syntax = "proto2"; package t;
message R { optional M m = 1; }
message M { optional group G = 1 { optional group H = 2 { optional string s = 3; optional int32 n = 4; } } }`,
			pbBytes(1, pbGroup(1, pbGroup(2, pbString(3, "x"))), pbGroup(1, pbGroup(2, pbVarint(4, 7))))},
		{"editions DELIMITED", `edition = "2023"; package t;
message R { M m = 1; }
message M { Sub s = 1 [features.message_encoding = DELIMITED]; int32 x = 2; }
message Sub { int32 a = 1; }`,
			pbBytes(1, pbGroup(1, pbVarint(1, 3)), pbVarint(2, 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want, rerr := pbMessageJSONB(t, tc.schema, tc.payload)
			if rerr != nil {
				t.Fatalf("%v (protojson: %s)", rerr, want)
			}
			if !pbJSONEqual([]byte(got), []byte(want)) {
				t.Errorf("jsonb %s, protojson %s", got, want)
			}
		})
	}
}

// TestProtobufClosedEnumMapDefault: a map entry without its value takes
// the value's default; a closed enum's is its first value, which need not
// be 0.
func TestProtobufClosedEnumMapDefault(t *testing.T) {
	for _, tc := range []struct{ name, schema string }{
		{"proto2", `syntax = "proto2"; package t;
enum E { E1 = 1; E2 = 2; }
message R { optional M m = 1; }
message M { map<string, E> me = 1; }`},
		{"editions CLOSED", `edition = "2023"; package t;
enum E { option features.enum_type = CLOSED; E_NEG = -1; E1 = 1; }
message R { M m = 1; }
message M { map<string, E> me = 1; }`},
		{"open", `syntax = "proto3"; package t;
enum E { E0 = 0; E1 = 1; }
message R { M m = 1; }
message M { map<string, E> me = 1; }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := pbBytes(1, pbBytes(1, pbString(1, "k")), pbBytes(1, pbString(1, "j"), pbVarint(2, 1)))
			got, want, rerr := pbMessageJSONB(t, tc.schema, payload)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !pbJSONEqual([]byte(got), []byte(want)) {
				t.Errorf("jsonb %s, protojson %s", got, want)
			}
		})
	}
}

// TestProtobufCompileErrors: columns the message cannot fill fail the
// schema, naming the column.
func TestProtobufCompileErrors(t *testing.T) {
	schema := fmt.Sprintf(pbCaseSchema, "bool b = 1; repeated Sub rs = 2; map<string, Sub> m = 3; int32 i = 4; google.protobuf.Timestamp ts = 5;")
	for _, tc := range []struct {
		col  Column
		want string
	}{
		{Column{Name: "c", Type: TypeUUID, Path: "b"}, "cannot fill a uuid column"},
		{Column{Name: "c", Type: TypeText, Path: "rs.s"}, "goes through protobuf field rs"},
		{Column{Name: "c", Type: TypeText, Path: "m.s"}, "goes through protobuf field m"},
		{Column{Name: "c", Type: TypeText, Path: "i.x"}, "goes through protobuf field i"},
		{Column{Name: "c", Type: TypeInt8, Path: "rs"}, "use type text or json or jsonb"},
		{Column{Name: "c", Type: TypeDate, Path: "ts"}, "cannot fill a date column"},
	} {
		_, err := compileProtobufPlan(&Schema{Text: schema}, []int{1}, []Column{tc.col}, Options{})
		var re *RowError
		if !errors.As(err, &re) || re.Column != "c" || re.Path != tc.col.Path || !strings.Contains(re.Detail, tc.want) {
			t.Errorf("%s %s: got %v, want a RowError for column c containing %q", tc.col.Path, tc.col.Type, err, tc.want)
		}
	}
}

// TestProtobufReferenceEvent: the reference event decodes from Protobuf to
// the very fields it decodes to from JSON, in the schema's text and
// descriptor forms, with no allocation per record.
func TestProtobufReferenceEvent(t *testing.T) {
	payload := protobufReferenceEvent(t)
	d := mustDecoder(t, FormatJSON, referenceColumns, Options{})
	want, err := d.AppendFields(nil, &Record{Offset: 42, Value: referenceEvent})
	if err != nil {
		t.Fatal(err)
	}
	want = want[:len(want)-12] // kafka.offset is not a path column

	fd, err := compileProtobufFile(&Schema{Text: ProtobufReferenceSchema})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := proto.Marshal(protodesc.ToFileDescriptorProto(fd))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(desc)
	forms := map[string]string{"text": ProtobufReferenceSchema, "descriptor": b64,
		"wrapped descriptor": b64[:40] + "\n" + b64[40:80] + "\r\n" + b64[80:] + "\n"}
	for name, text := range forms {
		p := pbPlan(t, text, []int{0}, referenceColumns)
		got, rerr := pbAppendRow(p, nil, payload)
		if rerr != nil {
			t.Fatalf("%s: %v", name, rerr)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: fields differ from the JSON reference event's:\n got %q\nwant %q", name, got, want)
		}
		if raceEnabled {
			continue
		}
		dst := make([]byte, 0, 1024)
		if allocs := testing.AllocsPerRun(200, func() { dst, _ = pbAppendRow(p, dst[:0], payload) }); allocs != 0 {
			t.Errorf("%s: %.1f allocations per record, want 0", name, allocs)
		}
	}
}

// TestProtobufZeroAllocsRich: maps, lists, Struct, oneofs, decimals and
// merges allocate nothing once the scratch buffers have grown.
func TestProtobufZeroAllocsRich(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	schema := fmt.Sprintf(pbCaseSchema, `map<string, Sub> m = 1; repeated int64 r = 2; google.protobuf.Struct st = 3;
		oneof o { Sub a = 4; string b = 5; } confluent.type.Decimal d = 6; Sub s = 7; double f = 8; E e = 9;`)
	cols := []Column{
		{Name: "m", Type: TypeJSON, Path: "m"}, {Name: "mb", Type: TypeJSONB, Path: "m"},
		{Name: "r", Type: TypeText, Path: "r"}, {Name: "st", Type: TypeJSONB, Path: "st"},
		{Name: "a", Type: TypeText, Path: "a.s"}, {Name: "b", Type: TypeText, Path: "b"},
		{Name: "d", Type: TypeNumeric, Path: "d"}, {Name: "dt", Type: TypeText, Path: "d"},
		{Name: "s", Type: TypeJSON, Path: "s"}, {Name: "sn", Type: TypeInt4, Path: "s.n"},
		{Name: "f", Type: TypeNumeric, Path: "f"}, {Name: "e", Type: TypeText, Path: "e"},
	}
	p := pbPlan(t, schema, []int{1}, cols)
	payload := pbCat(
		pbBytes(1, pbString(1, "k1"), pbBytes(2, pbString(1, "x\ny"), pbPacked(3, 1, 2))),
		pbBytes(1, pbString(1, "k2"), pbBytes(2, pbVarint(2, 7))),
		pbBytes(1, pbString(1, "k1")),
		pbPacked(2, 1, 2, 3), pbVarint(2, 4),
		pbBytes(3, pbBytes(1, pbString(1, "a"), pbBytes(2, pbBytes(5, pbBytes(1, pbString(1, "b"), pbBytes(2, pbString(3, "c"))))))),
		pbString(5, "gone"), pbBytes(4, pbString(1, "x")),
		pbBytes(6, pbBytes(1, []byte{0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}), pbVarint(3, 7)),
		pbBytes(7, pbString(1, "x")), pbBytes(7, pbVarint(2, 3)),
		pbFixed64(8, math.Float64bits(1.0/3)), pbVarint(9, 2),
	)
	dst, rerr := pbAppendRow(p, nil, payload)
	if rerr != nil {
		t.Fatal(rerr)
	}
	fields, err := splitFields(dst, len(cols))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(fields[0]), `{"k2":{"n":7},"k1":{}}`; got != want {
		t.Errorf("map as json: %s, want %s", got, want)
	}
	if got, want := string(fields[5]), ""; fields[5] != nil {
		t.Errorf("cleared oneof member b: %q, want NULL (%s)", got, want)
	}
	if allocs := testing.AllocsPerRun(200, func() { dst, _ = pbAppendRow(p, dst[:0], payload) }); allocs != 0 {
		t.Errorf("%.1f allocations per record, want 0", allocs)
	}
}

// TestProtobufSchemas: references in both forms, built-in imports, message
// indexes, and schemas that do not compile.
func TestProtobufSchemas(t *testing.T) {
	common := `syntax = "proto3";
package common;
import "confluent/meta.proto";
message Money { string currency = 1 [(confluent.field_meta) = {doc: "ISO 4217"}]; int64 units = 2; }
`
	types := `syntax = "proto2";
package common.types;
message Tag { optional string name = 1 [default = "none"]; }
`
	fdTypes, err := compileProtobufFile(&Schema{Text: types})
	if err != nil {
		t.Fatal(err)
	}
	fdpTypes := protodesc.ToFileDescriptorProto(fdTypes)
	typesDesc, err := proto.Marshal(fdpTypes)
	if err != nil {
		t.Fatal(err)
	}
	main := `syntax = "proto3";
package shop;
import "common/money.proto";
import "common/types/tag.proto";
import "confluent/type/decimal.proto";
import "google/type/date.proto";
import "google/type/money.proto";
import "google/protobuf/wrappers.proto";
message Order {
  message Line { string sku = 1; common.Money price = 2; }
  message Audit { message Entry { string who = 1; } }
  repeated Line lines = 1;
}
message Refund {
  common.Money amount = 1;
  common.types.Tag tag = 2;
  confluent.type.Decimal exact = 3;
  google.type.Date day = 4;
  google.type.Money gmoney = 5;
  google.protobuf.Int32Value n = 6;
}
`
	refs := []NamedSchema{
		{Name: "common/money.proto", Schema: Schema{Type: SchemaProtobuf, Text: common}},
		{Name: "common/types/tag.proto", Schema: Schema{Type: SchemaProtobuf, Text: base64.StdEncoding.EncodeToString(typesDesc)}},
	}
	s := &Schema{Type: SchemaProtobuf, Text: main, References: refs}
	cols := []Column{
		{Name: "units", Type: TypeInt8, Path: "amount.units"},
		{Name: "tag", Type: TypeText, Path: "tag.name"},
		{Name: "exact", Type: TypeNumeric, Path: "exact"},
		{Name: "day", Type: TypeDate, Path: "day"},
		{Name: "gm", Type: TypeJSONB, Path: "gmoney"},
	}
	p, err := compileProtobufPlan(s, []int{1}, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	payload := pbCat(pbBytes(1, pbVarint(2, 5)), pbBytes(2, pbString(1, "vip")), pbBytes(3, pbBytes(1, []byte{1}), pbVarint(3, 1)),
		pbBytes(4, pbVarint(1, 2026), pbVarint(2, 1), pbVarint(3, 31)), pbBytes(5, pbString(1, "EUR"), pbVarint(2, 3)))
	got, rerr := pbAppendRow(p.(*protobufPlan), nil, payload)
	if rerr != nil {
		t.Fatal(rerr)
	}
	var want []byte
	want = appendInt8Field(want, 5)
	want = appendStringField(want, "vip")
	n, _ := splitNumber([]byte("0.1"))
	want = appendNumericField(want, &n)
	want = appendInt4Field(want, int32(daysFromCivil(2026, 1, 31)-unixToPGDays))
	want = appendJSONBField(want, []byte(`{"currency_code":"EUR","units":3}`))
	if !bytes.Equal(got, want) {
		t.Errorf("fields\n got %q\nwant %q", got, want)
	}

	// Message indexes: nested messages, and indexes naming nothing.
	for _, tc := range []struct {
		idx  []int
		path string
		ok   bool
	}{
		{[]int{0}, "lines", true},
		{nil, "lines", true},
		{[]int{0, 0}, "sku", true},
		{[]int{0, 1, 0}, "who", true},
		{[]int{2}, "", false},
		{[]int{0, 2}, "", false},
		{[]int{1, 0}, "", false},
		{[]int{-1}, "", false},
	} {
		p, err := compileProtobufPlan(s, tc.idx, []Column{{Name: "c", Type: TypeText, Path: "x"}}, Options{})
		var re *RowError
		switch {
		case tc.ok && err != nil:
			t.Errorf("index %v: %v", tc.idx, err)
		case !tc.ok && (!errors.As(err, &re) || re.Reason != ReasonSchemaMismatch || !strings.Contains(re.Detail, "names no message")):
			t.Errorf("index %v: got %v, want schema_mismatch naming no message", tc.idx, err)
		case tc.ok:
			pp := p.(*protobufPlan)
			if pp.root.t.fieldByName(tc.path) < 0 {
				t.Errorf("index %v selected %s, which has no field %s", tc.idx, pp.root.t.name, tc.path)
			}
		}
	}

	// Schemas that do not compile.
	for name, s := range map[string]*Schema{
		"syntax error":   {Text: "syntax = \"proto3\"; message {"},
		"missing import": {Text: "syntax = \"proto3\"; import \"nowhere/x.proto\"; message A { x.Y y = 1; }"},
		"empty":          {Text: "  "},
		"unknown type":   {Text: "syntax = \"proto3\"; message A { Nope n = 1; }"},
	} {
		_, err := compileProtobufPlan(s, nil, []Column{{Name: "c", Type: TypeText, Path: "x"}}, Options{})
		var re *RowError
		if !errors.As(err, &re) || re.Reason != ReasonSchemaMismatch {
			t.Errorf("%s: got %v, want schema_mismatch", name, err)
		} else if name == "missing import" && !strings.Contains(re.Detail, "nowhere/x.proto") {
			t.Errorf("%s: %q does not name the import", name, re.Detail)
		}
	}
}
