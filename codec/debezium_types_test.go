package codec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// dbzTypeCase decodes a create event whose row is {"v": json} into a column
// of type typ. schema is the field schema of v (its members, without the
// field name), or "" for an event without the schema wrapper. want is the
// column's text in PostgreSQL after a binary COPY (null for SQL NULL), or
// the RowError reason when reason is set; unchanged says the column must be
// reported by Unchanged.
type dbzTypeCase struct {
	schema    string
	json      string
	typ       Type
	want      string
	reason    Reason
	unchanged bool
}

// Field schemas as Debezium writes them.
const (
	sDecimal0  = `"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"0","connect.decimal.precision":"1000"}`
	sDecimal1  = `"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"1"}`
	sDecimal2  = `"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"}`
	sDecimal10 = `"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"10"}`
	sDecimalM3 = `"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":-3}`
	sDecimalNo = `"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1`
	sVarDec    = `"type":"struct","fields":[{"type":"int32","optional":false,"field":"scale"},{"type":"bytes","optional":false,"field":"value"}],` +
		`"optional":true,"name":"io.debezium.data.VariableScaleDecimal","version":1,"doc":"Variable scaled decimal"`
	sDate        = `"type":"int32","optional":true,"name":"io.debezium.time.Date","version":1`
	sConnDate    = `"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Date","version":1`
	sTimestamp   = `"type":"int64","optional":true,"name":"io.debezium.time.Timestamp","version":1`
	sMicroTS     = `"type":"int64","optional":true,"name":"io.debezium.time.MicroTimestamp","version":1`
	sNanoTS      = `"type":"int64","optional":true,"name":"io.debezium.time.NanoTimestamp","version":1`
	sConnTS      = `"type":"int64","optional":true,"name":"org.apache.kafka.connect.data.Timestamp","version":1`
	sZonedTS     = `"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1`
	sTime        = `"type":"int32","optional":true,"name":"io.debezium.time.Time","version":1`
	sMicroTime   = `"type":"int64","optional":true,"name":"io.debezium.time.MicroTime","version":1`
	sNanoTime    = `"type":"int64","optional":true,"name":"io.debezium.time.NanoTime","version":1`
	sConnTime    = `"type":"int32","optional":true,"name":"org.apache.kafka.connect.data.Time","version":1`
	sJSON        = `"type":"string","optional":true,"name":"io.debezium.data.Json","version":1`
	sUUID        = `"type":"string","optional":true,"name":"io.debezium.data.Uuid","version":1`
	sString      = `"type":"string","optional":true`
	sBytes       = `"type":"bytes","optional":true`
	sInt64       = `"type":"int64","optional":true`
	sArrayText   = `"type":"array","items":{"type":"string","optional":true},"optional":true`
	noSchema     = ""
	placeholder  = `"__debezium_unavailable_value"`
	big40        = "1234567890123456789012345678901234567890"
	nine500Title = "500 nines"
)

var nines500 = strings.Repeat("9", 500)

var dbzTypeCases = []dbzTypeCase{
	// Decimal: base64 of the two's complement unscaled value.
	{schema: sDecimal2, json: `"BNI="`, typ: TypeNumeric, want: "12.34"},
	{schema: sDecimal2, json: q(decimal64("-1234")), typ: TypeNumeric, want: "-12.34"},
	{schema: sDecimal2, json: q(decimal64("5")), typ: TypeNumeric, want: "0.05"},
	{schema: sDecimal2, json: q(decimal64("-5")), typ: TypeNumeric, want: "-0.05"},
	{schema: sDecimal2, json: q(decimal64("0")), typ: TypeNumeric, want: "0.00"},
	{schema: sDecimal2, json: q(decimal64("100")), typ: TypeNumeric, want: "1.00"},
	{schema: sDecimal0, json: q(decimal64("0")), typ: TypeNumeric, want: "0"},
	{schema: sDecimal0, json: q(decimal64("127")), typ: TypeNumeric, want: "127"},
	{schema: sDecimal0, json: q(decimal64("128")), typ: TypeNumeric, want: "128"},
	{schema: sDecimal0, json: q(decimal64("-128")), typ: TypeNumeric, want: "-128"},
	{schema: sDecimal0, json: q(decimal64("-129")), typ: TypeNumeric, want: "-129"},
	{schema: sDecimal0, json: q(decimal64("9223372036854775807")), typ: TypeNumeric, want: "9223372036854775807"},
	{schema: sDecimal0, json: q(decimal64("9223372036854775808")), typ: TypeNumeric, want: "9223372036854775808"},
	{schema: sDecimal0, json: q(decimal64("-9223372036854775808")), typ: TypeNumeric, want: "-9223372036854775808"},
	{schema: sDecimal0, json: q(decimal64("-9223372036854775809")), typ: TypeNumeric, want: "-9223372036854775809"},
	{schema: sDecimal0, json: q(decimal64("18446744073709551616")), typ: TypeNumeric, want: "18446744073709551616"},
	{schema: sDecimal0, json: q(decimal64("10000000000000000000")), typ: TypeNumeric, want: "10000000000000000000"},
	{schema: sDecimal0, json: q(decimal64(big40)), typ: TypeNumeric, want: big40},
	{schema: sDecimal0, json: q(decimal64("-" + big40)), typ: TypeNumeric, want: "-" + big40},
	{schema: sDecimal10, json: q(decimal64("-98765432109876543210987654321")), typ: TypeNumeric, want: "-9876543210987654321.0987654321"},
	{schema: sDecimal10, json: q(decimal64("1")), typ: TypeNumeric, want: "0.0000000001"},
	{schema: sDecimal0, json: q(decimal64(nines500)), typ: TypeNumeric, want: nines500},
	{schema: sDecimal0, json: q(decimal64("-1" + strings.Repeat("0", 400))), typ: TypeNumeric, want: "-1" + strings.Repeat("0", 400)},
	{schema: sDecimalM3, json: q(decimal64("12")), typ: TypeNumeric, want: "12000"},
	{schema: sDecimalM3, json: q(decimal64("0")), typ: TypeNumeric, want: "0"},
	{schema: sDecimal1, json: q(decimal64("1")), typ: TypeFloat8, want: "0.1"},
	{schema: sDecimal2, json: q(decimal64("-1234")), typ: TypeFloat8, want: "-12.34"},
	{schema: sDecimal0, json: q(decimal64("123456789012345678901234567890")), typ: TypeFloat8, want: "1.2345678901234568e+29"},
	{schema: sDecimal0, json: q(decimal64("9007199254740993")), typ: TypeFloat8, want: "9.007199254740992e+15"},
	{schema: sDecimal2, json: `"BNI="`, typ: TypeFloat4, want: "12.34"},
	{schema: sDecimal2, json: q(decimal64("-5")), typ: TypeText, want: "-0.05"},
	{schema: sDecimal10, json: q(decimal64(big40)), typ: TypeText, want: "123456789012345678901234567890.1234567890"},
	{schema: sDecimal2, json: `"BNI="`, typ: TypeJSONB, want: "12.34"},
	{schema: sDecimal2, json: `"BNI="`, typ: TypeJSON, want: "12.34"},
	{schema: sDecimal0, json: q(decimal64("-42")), typ: TypeInt8, want: "-42"},
	{schema: sDecimal2, json: q(decimal64("4200")), typ: TypeInt4, want: "42"},
	{schema: sDecimal2, json: `"BNI="`, typ: TypeInt8, reason: ReasonWrongType},
	{schema: sDecimal0, json: q(decimal64("9223372036854775808")), typ: TypeInt8, reason: ReasonOutOfRange},
	{schema: sDecimal0, json: q(decimal64("40000")), typ: TypeInt2, reason: ReasonOutOfRange},
	{schema: sDecimal2, json: `12.34`, typ: TypeNumeric, want: "12.34"}, // decimal.format=NUMERIC
	{schema: sDecimal2, json: `"@@@@"`, typ: TypeNumeric, reason: ReasonInvalidValue},
	{schema: sDecimal2, json: `"BNI"`, typ: TypeNumeric, reason: ReasonInvalidValue},
	{schema: sDecimal2, json: `true`, typ: TypeNumeric, reason: ReasonWrongType},
	{schema: sDecimal2, json: `null`, typ: TypeNumeric, want: null},
	{schema: sDecimal2, json: `"BNI="`, typ: TypeDate, reason: ReasonWrongType},
	{schema: sDecimalNo, json: `"BNI="`, typ: TypeNumeric, reason: ReasonInvalidValue},
	{schema: sDecimal0, json: q(decimal64("1" + strings.Repeat("0", 131072))), typ: TypeNumeric, reason: ReasonOutOfRange},
	{schema: sDecimal0, json: q(decimal64("1" + strings.Repeat("0", 131072))), typ: TypeFloat8, reason: ReasonOutOfRange},

	// VariableScaleDecimal.
	{schema: sVarDec, json: `{"scale":2,"value":"BNI="}`, typ: TypeNumeric, want: "12.34"},
	{schema: sVarDec, json: `{"value":"BNI=","scale":2}`, typ: TypeFloat8, want: "12.34"},
	{schema: sVarDec, json: `{"scale":2,"value":"BNI="}`, typ: TypeText, want: "12.34"},
	{schema: sVarDec, json: `{"scale":0,"value":` + q(decimal64("-1")) + `}`, typ: TypeNumeric, want: "-1"},
	{schema: sVarDec, json: `{"scale":30,"value":` + q(decimal64("-"+big40)) + `}`, typ: TypeNumeric, want: "-1234567890.123456789012345678901234567890"},
	{schema: sVarDec, json: `{"scale":0,"value":` + q(decimal64("7")) + `}`, typ: TypeInt8, want: "7"},
	{schema: sVarDec, json: `"12.34"`, typ: TypeNumeric, want: "12.34"}, // decimal.handling.mode=string
	{schema: sVarDec, json: `{"scale":"2","value":"BNI="}`, typ: TypeNumeric, reason: ReasonWrongType},
	{schema: sVarDec, json: `{"value":"BNI="}`, typ: TypeNumeric, reason: ReasonWrongType},
	{schema: sVarDec, json: `{"scale":1.5,"value":"BNI="}`, typ: TypeNumeric, reason: ReasonInvalidValue},
	{schema: sVarDec, json: `{"scale":99999,"value":"BNI="}`, typ: TypeNumeric, reason: ReasonOutOfRange},
	{schema: sVarDec, json: `{"scale":2,"value":"B\u004eI="}`, typ: TypeNumeric, want: "12.34"},
	{schema: noSchema, json: `{"scale":3,"value":"BNI="}`, typ: TypeNumeric, want: "1.234"},
	{schema: noSchema, json: `{"scale":3,"value":"BNI="}`, typ: TypeFloat8, want: "1.234"},
	{schema: noSchema, json: `{"scale":3,"value":"BNI="}`, typ: TypeText, want: `{"scale":3,"value":"BNI="}`},
	{schema: noSchema, json: `{"scale":3}`, typ: TypeNumeric, reason: ReasonWrongType},

	// Dates: days since 1970-01-01.
	{schema: sDate, json: `19782`, typ: TypeDate, want: "2024-02-29"},
	{schema: sDate, json: `0`, typ: TypeDate, want: "1970-01-01"},
	{schema: sDate, json: `-1`, typ: TypeDate, want: "1969-12-31"},
	{schema: sDate, json: `-719162`, typ: TypeDate, want: "0001-01-01"},
	{schema: sDate, json: `2932896`, typ: TypeDate, want: "9999-12-31"},
	{schema: sDate, json: `-2440588`, typ: TypeDate, want: "4714-11-24 BC"},
	{schema: sDate, json: `-2440589`, typ: TypeDate, reason: ReasonOutOfRange},
	{schema: sDate, json: `2145042905`, typ: TypeDate, want: "5874897-12-31"},
	{schema: sDate, json: `2145042906`, typ: TypeDate, reason: ReasonOutOfRange},
	{schema: sDate, json: `19782`, typ: TypeText, want: "2024-02-29"},
	{schema: sDate, json: `-719163`, typ: TypeText, reason: ReasonOutOfRange},
	{schema: sDate, json: `19782`, typ: TypeTimestamptz, want: "2024-02-29 00:00:00+00"},
	{schema: sDate, json: `19782`, typ: TypeTimestamp, want: "2024-02-29 00:00:00"},
	{schema: sDate, json: `2145042905`, typ: TypeTimestamp, reason: ReasonOutOfRange},
	{schema: sDate, json: `19782`, typ: TypeInt4, want: "19782"},
	{schema: sDate, json: `19782.5`, typ: TypeDate, reason: ReasonWrongType},
	{schema: sDate, json: `"2024-02-29"`, typ: TypeDate, reason: ReasonWrongType},
	{schema: sDate, json: `true`, typ: TypeDate, reason: ReasonWrongType},
	{schema: sConnDate, json: `19782`, typ: TypeDate, want: "2024-02-29"},
	{schema: noSchema, json: `19782`, typ: TypeDate, want: "2024-02-29"},
	{schema: noSchema, json: `"2024-02-29"`, typ: TypeDate, want: "2024-02-29"},

	// Timestamps: ms, µs, ns since the epoch.
	{schema: sTimestamp, json: `1709214300123`, typ: TypeTimestamp, want: "2024-02-29 13:45:00.123"},
	{schema: sTimestamp, json: `1709214300123`, typ: TypeTimestamptz, want: "2024-02-29 13:45:00.123+00"},
	{schema: sTimestamp, json: `1709214300123`, typ: TypeText, want: "2024-02-29 13:45:00.123"},
	{schema: sTimestamp, json: `1709214300000`, typ: TypeText, want: "2024-02-29 13:45:00"},
	{schema: sTimestamp, json: `1709214300123`, typ: TypeDate, want: "2024-02-29"},
	{schema: sTimestamp, json: `1709214300123`, typ: TypeInt8, want: "1709214300123"},
	{schema: sTimestamp, json: `86400000`, typ: TypeTimestamp, want: "1970-01-02 00:00:00"},
	{schema: sTimestamp, json: `-1`, typ: TypeTimestamp, want: "1969-12-31 23:59:59.999"},
	{schema: sTimestamp, json: `-1`, typ: TypeText, want: "1969-12-31 23:59:59.999"},
	{schema: sTimestamp, json: `-1`, typ: TypeDate, want: "1969-12-31"},
	{schema: sTimestamp, json: `9223372036854775807`, typ: TypeTimestamp, reason: ReasonOutOfRange},
	{schema: sTimestamp, json: `"x"`, typ: TypeTimestamp, reason: ReasonWrongType},
	{schema: sMicroTS, json: `1709214300123456`, typ: TypeTimestamp, want: "2024-02-29 13:45:00.123456"},
	{schema: sMicroTS, json: `1709214300123456`, typ: TypeText, want: "2024-02-29 13:45:00.123456"},
	{schema: sMicroTS, json: `-62135596800000000`, typ: TypeTimestamp, want: "0001-01-01 00:00:00"},
	{schema: sMicroTS, json: `-62135596800000001`, typ: TypeTimestamp, want: "0001-12-31 23:59:59.999999 BC"},
	{schema: sMicroTS, json: `-62135596800000001`, typ: TypeText, reason: ReasonOutOfRange},
	{schema: sMicroTS, json: `-210866803200000000`, typ: TypeTimestamp, want: "4714-11-24 00:00:00 BC"},
	{schema: sMicroTS, json: `-210866803200000001`, typ: TypeTimestamp, reason: ReasonOutOfRange},
	{schema: sMicroTS, json: `9224318015999999999`, typ: TypeTimestamp, reason: ReasonOutOfRange},
	{schema: sMicroTS, json: `9223372036854775807`, typ: TypeTimestamp, want: "294247-01-10 04:00:54.775807"},
	{schema: sMicroTS, json: `9223372036854775807`, typ: TypeText, reason: ReasonOutOfRange},
	{schema: sMicroTS, json: `-9223372036854775808`, typ: TypeTimestamp, reason: ReasonOutOfRange},
	{schema: sNanoTS, json: `1709214300123456500`, typ: TypeTimestamp, want: "2024-02-29 13:45:00.123456"},
	{schema: sNanoTS, json: `1709214300123457500`, typ: TypeTimestamp, want: "2024-02-29 13:45:00.123458"},
	{schema: sNanoTS, json: `1709214300123456501`, typ: TypeTimestamp, want: "2024-02-29 13:45:00.123457"},
	{schema: sNanoTS, json: `-1500`, typ: TypeTimestamp, want: "1969-12-31 23:59:59.999998"},
	{schema: sNanoTS, json: `-2500`, typ: TypeTimestamp, want: "1969-12-31 23:59:59.999998"},
	{schema: sConnTS, json: `1709214300123`, typ: TypeTimestamptz, want: "2024-02-29 13:45:00.123+00"},
	{schema: sZonedTS, json: `"2024-02-29T13:45:00.123456Z"`, typ: TypeTimestamptz, want: "2024-02-29 13:45:00.123456+00"},
	{schema: sZonedTS, json: `"2024-02-29T13:45:00+02:00"`, typ: TypeTimestamptz, want: "2024-02-29 11:45:00+00"},
	{schema: noSchema, json: `1709214300123456`, typ: TypeTimestamptz, want: "2024-02-29 13:45:00.123456+00"},
	// Without the schema an integer is ms, µs or ns by its magnitude, never
	// seconds (Debezium sends none): 1972 in ms is not year 4384.
	{schema: noSchema, json: `76204800000`, typ: TypeTimestamp, want: "1972-06-01 00:00:00"},
	{schema: noSchema, json: `1709214300123`, typ: TypeTimestamptz, want: "2024-02-29 13:45:00.123+00"},
	{schema: noSchema, json: `1709214300123456500`, typ: TypeTimestamp, want: "2024-02-29 13:45:00.123456"},
	{schema: noSchema, json: `-76204800000`, typ: TypeTimestamp, want: "1967-08-03 00:00:00"},

	// PostgreSQL's infinities, as Debezium's PostgreSQL connector sends them.
	{schema: sMicroTS, json: `9223372036825200000`, typ: TypeTimestamp, want: "infinity"},
	{schema: sMicroTS, json: `9223372036825200000`, typ: TypeTimestamptz, want: "infinity"},
	{schema: sMicroTS, json: `-9223372036832400000`, typ: TypeTimestamp, want: "-infinity"},
	{schema: sMicroTS, json: `-9223372036832400000`, typ: TypeDate, want: "-infinity"},
	{schema: sMicroTS, json: `9223372036825200000`, typ: TypeText, want: "infinity"},
	{schema: sTimestamp, json: `9223372036825200000`, typ: TypeTimestamp, want: "infinity"},
	{schema: sNanoTS, json: `9223372036854775807`, typ: TypeTimestamp, want: "infinity"},
	{schema: sNanoTS, json: `-9223372036854775808`, typ: TypeTimestamptz, want: "-infinity"},
	{schema: noSchema, json: `-9223372036832400000`, typ: TypeTimestamptz, want: "-infinity"},
	{schema: sZonedTS, json: `"infinity"`, typ: TypeTimestamptz, want: "infinity"},
	{schema: sZonedTS, json: `"-infinity"`, typ: TypeTimestamptz, want: "-infinity"},
	{schema: noSchema, json: `"-infinity"`, typ: TypeTimestamp, want: "-infinity"},
	{schema: sZonedTS, json: `"infinity"`, typ: TypeText, want: "infinity"},
	{schema: sZonedTS, json: `"Infinity"`, typ: TypeTimestamptz, reason: ReasonInvalidValue},

	// Times of day: ms, µs, ns since midnight.
	{schema: sMicroTime, json: `49500123456`, typ: TypeText, want: "13:45:00.123456"},
	{schema: sMicroTime, json: `49500123456`, typ: TypeInt8, want: "49500123456"},
	{schema: sMicroTime, json: `49500000000`, typ: TypeText, want: "13:45:00"},
	{schema: sMicroTime, json: `49500100000`, typ: TypeText, want: "13:45:00.1"},
	{schema: sMicroTime, json: `0`, typ: TypeText, want: "00:00:00"},
	{schema: sMicroTime, json: `86400000000`, typ: TypeText, want: "24:00:00"},
	{schema: sMicroTime, json: `-3600000000`, typ: TypeText, want: "-01:00:00"},
	{schema: sMicroTime, json: `3020399000000`, typ: TypeText, want: "838:59:59"},
	{schema: sMicroTime, json: `49500123456`, typ: TypeTimestamptz, reason: ReasonWrongType},
	{schema: sMicroTime, json: `"13:45"`, typ: TypeText, reason: ReasonWrongType},
	{schema: sTime, json: `49500123`, typ: TypeText, want: "13:45:00.123"},
	{schema: sTime, json: `49500123`, typ: TypeInt4, want: "49500123"},
	{schema: sConnTime, json: `49500123`, typ: TypeText, want: "13:45:00.123"},
	{schema: sNanoTime, json: `49500123456789`, typ: TypeText, want: "13:45:00.123457"},
	{schema: sNanoTime, json: `49500123456500`, typ: TypeText, want: "13:45:00.123456"},

	// JSON held in strings.
	{schema: sJSON, json: `"{\"a\":1,\"b\":[true,null]}"`, typ: TypeJSONB, want: `{"a": 1, "b": [true, null]}`},
	{schema: sJSON, json: `"{\"a\":1}"`, typ: TypeJSON, want: `{"a":1}`},
	{schema: sJSON, json: `"{\"a\":1}"`, typ: TypeText, want: `{"a":1}`},
	{schema: sJSON, json: `"{\"a\":\"\\u0000\"}"`, typ: TypeJSON, want: `{"a":"\u0000"}`},
	{schema: sJSON, json: `"{\"a\":\"\\u0000\"}"`, typ: TypeJSONB, reason: ReasonInvalidValue},
	{schema: sJSON, json: `"not json"`, typ: TypeJSONB, reason: ReasonInvalidValue},
	{schema: sJSON, json: `"{\"a\":1} x"`, typ: TypeJSON, reason: ReasonInvalidValue},
	{schema: sJSON, json: `"\u0000"`, typ: TypeJSON, reason: ReasonNULInText},
	{schema: noSchema, json: `"[1,2]"`, typ: TypeJSONB, want: `[1, 2]`},
	{schema: noSchema, json: `"\"s\""`, typ: TypeJSONB, want: `"s"`},
	{schema: noSchema, json: `{"a":1}`, typ: TypeJSONB, want: `{"a": 1}`},
	{schema: sString, json: `"x"`, typ: TypeJSONB, want: `"x"`},
	{schema: sString, json: `"[1,2]"`, typ: TypeJSON, want: `"[1,2]"`},

	// Plain values convert as in FormatJSON.
	{schema: sString, json: `"hé"`, typ: TypeText, want: "hé"},
	{schema: sUUID, json: `"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"`, typ: TypeUUID, want: "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"},
	{schema: sInt64, json: `42`, typ: TypeInt8, want: "42"},
	{schema: sInt64, json: `42`, typ: TypeDate, reason: ReasonWrongType},
	{schema: sBytes, json: `"aGk="`, typ: TypeBytea, want: `\x6869`},
	{schema: noSchema, json: `"aGk="`, typ: TypeBytea, want: `\x6869`},

	// TOAST placeholders: NULL, and the column reported unchanged.
	{schema: sString, json: placeholder, typ: TypeText, want: null, unchanged: true},
	{schema: noSchema, json: placeholder, typ: TypeText, want: null, unchanged: true},
	{schema: sJSON, json: placeholder, typ: TypeJSONB, want: null, unchanged: true},
	{schema: noSchema, json: placeholder, typ: TypeJSONB, want: null, unchanged: true},
	{schema: sBytes, json: `"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="`, typ: TypeBytea, want: null, unchanged: true},
	{schema: sDecimal2, json: placeholder, typ: TypeNumeric, want: null, unchanged: true},
	{schema: noSchema, json: `"__debezium_unavailable_value "`, typ: TypeText, want: "__debezium_unavailable_value "},
	// The placeholder of a text[], int[] or bigint[] column, and of an
	// hstore one (a map, or a string of JSON under hstore.handling.mode json).
	{schema: sArrayText, json: `["__debezium_unavailable_value"]`, typ: TypeJSONB, want: null, unchanged: true},
	{schema: noSchema, json: `[ "__debezium_unavailable_value" ]`, typ: TypeText, want: null, unchanged: true},
	{schema: noSchema, json: unavailableIntArray, typ: TypeJSONB, want: null, unchanged: true},
	{schema: noSchema, json: unavailableHstore, typ: TypeJSONB, want: null, unchanged: true},
	{schema: sJSON, json: `"{\"__debezium_unavailable_value\": \"__debezium_unavailable_value\"}"`, typ: TypeJSONB, want: null, unchanged: true},
	{schema: sArrayText, json: `["__debezium_unavailable_value","x"]`, typ: TypeJSONB, want: `["__debezium_unavailable_value", "x"]`},
	{schema: sArrayText, json: `["__debezium_unavailable _value"]`, typ: TypeJSONB, want: `["__debezium_unavailable _value"]`},
	{schema: noSchema, json: `{"__debezium_unavailable_value":"x"}`, typ: TypeJSONB, want: `{"__debezium_unavailable_value": "x"}`},
}

// q quotes s as a JSON string (s holds no characters that need escapes).
func q(s string) string { return `"` + s + `"` }

func dbzCaseEvent(tc dbzTypeCase) []byte {
	payload := envelopeJSON("c", "null", `{"id":1,"v":`+tc.json+`}`)
	if tc.schema == noSchema {
		return []byte(payload)
	}
	fields := `{"type":"int64","optional":false,"field":"id"},{` + tc.schema + `,"field":"v"}`
	return []byte(wrap(envelopeSchema(fields), payload))
}

// TestDebeziumTypes decodes every case and, for the accepted ones, lands
// them in PostgreSQL and compares the stored value's text.
func TestDebeziumTypes(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	mustExec(t, conn, "SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 1")
	byType := map[Type][]byte{}
	wants := map[Type][]dbzTypeCase{}
	for i, tc := range dbzTypeCases {
		dec := mustDecoder(t, FormatDebezium, []Column{{Name: "v", Type: tc.typ, Path: "v"}}, Options{MaxRecordBytes: 1 << 22})
		prefix := []byte("prefix")
		out, err := dec.AppendFields(prefix, &Record{Value: dbzCaseEvent(tc)})
		name := fmt.Sprintf("%d %s %s %.40s", i, tc.typ, tc.json, tc.schema)
		if len(name) > 120 {
			name = name[:120]
		}
		if tc.reason != "" {
			var re *RowError
			if !errors.As(err, &re) || re.Reason != tc.reason {
				t.Errorf("%s: got %v, want reason %s", name, err, tc.reason)
				continue
			}
			if re.Column != "v" || re.Path != "v" || re.Detail == "" {
				t.Errorf("%s: error names column %q path %q detail %q", name, re.Column, re.Path, re.Detail)
			}
			if string(out) != "prefix" {
				t.Errorf("%s: buffer not restored on error: %q", name, out)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: unexpected error %v", name, err)
			continue
		}
		if dec.Op() != OpUpsert {
			t.Errorf("%s: op %s", name, dec.Op())
		}
		if got := dec.Unchanged().Has(0); got != tc.unchanged || dec.Unchanged().Len() != btoi(tc.unchanged) {
			t.Errorf("%s: Unchanged %v, want column 0 %v", name, dec.Unchanged(), tc.unchanged)
		}
		if _, err := splitFields(out[len(prefix):], 1); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		tuple := appendTuple(nil, 2, appendInt4Field(nil, int32(len(wants[tc.typ]))))
		tuple = append(tuple, out[len(prefix):]...)
		byType[tc.typ] = append(byType[tc.typ], tuple...)
		wants[tc.typ] = append(wants[tc.typ], tc)
	}
	for typ, tuples := range byType {
		table := "dbz_types_" + typ.String()
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
			tc := wants[typ][id]
			if got != tc.want {
				g, w := got, tc.want
				if len(g) > 100 {
					g, w = g[:50]+"…"+g[len(g)-50:], w[:min(50, len(w))]+"…"
				}
				t.Errorf("%s %s (%.50s): PostgreSQL holds %q, want %q", typ, tc.json, tc.schema, g, w)
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

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
