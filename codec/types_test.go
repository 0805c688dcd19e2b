package codec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const null = "<NULL>"

// typeCase decodes {"v": json} into a column of type typ. want is the
// column's text in PostgreSQL (null for SQL NULL) after a binary COPY, or
// the RowError reason when reason is set.
type typeCase struct {
	typ    Type
	json   string
	want   string
	reason Reason
}

var typeCases = []typeCase{
	{typ: TypeText, json: `"hello"`, want: "hello"},
	{typ: TypeText, json: `"h\u00e9\ud83d\ude00 ünï"`, want: "hé😀 ünï"},
	{typ: TypeText, json: `"a\"b\\c\/d\n\t\b\f\r"`, want: "a\"b\\c/d\n\t\b\f\r"},
	{typ: TypeText, json: `""`, want: ""},
	{typ: TypeText, json: `"\u0000"`, reason: ReasonNULInText},
	{typ: TypeText, json: `"x\ud800y"`, reason: ReasonInvalidUTF8},
	{typ: TypeText, json: `"\udc00"`, reason: ReasonInvalidUTF8},
	{typ: TypeText, json: `12.50`, want: "12.50"},
	{typ: TypeText, json: `-1e3`, want: "-1e3"},
	{typ: TypeText, json: `true`, want: "true"},
	{typ: TypeText, json: `{"a": [1, 2], "b":"\u0000"}`, want: `{"a": [1, 2], "b":"\u0000"}`},
	{typ: TypeText, json: `null`, want: null},

	{typ: TypeInt2, json: `32767`, want: "32767"},
	{typ: TypeInt2, json: `-32768`, want: "-32768"},
	{typ: TypeInt2, json: `32768`, reason: ReasonOutOfRange},
	{typ: TypeInt2, json: `-0`, want: "0"},
	{typ: TypeInt2, json: `1.0`, want: "1"},
	{typ: TypeInt2, json: `1e3`, want: "1000"},
	{typ: TypeInt2, json: `100e-2`, want: "1"},
	{typ: TypeInt2, json: `1.5`, reason: ReasonWrongType},
	{typ: TypeInt2, json: `1e-2`, reason: ReasonWrongType},
	{typ: TypeInt2, json: `"42"`, want: "42"},
	{typ: TypeInt2, json: `"4x"`, reason: ReasonWrongType},
	{typ: TypeInt2, json: `" 42"`, reason: ReasonWrongType},
	{typ: TypeInt2, json: `true`, reason: ReasonWrongType},
	{typ: TypeInt4, json: `2147483647`, want: "2147483647"},
	{typ: TypeInt4, json: `-2147483648`, want: "-2147483648"},
	{typ: TypeInt4, json: `2147483648`, reason: ReasonOutOfRange},
	{typ: TypeInt8, json: `9223372036854775807`, want: "9223372036854775807"},
	{typ: TypeInt8, json: `-9223372036854775808`, want: "-9223372036854775808"},
	{typ: TypeInt8, json: `9223372036854775808`, reason: ReasonOutOfRange},
	{typ: TypeInt8, json: `-9223372036854775809`, reason: ReasonOutOfRange},
	{typ: TypeInt8, json: `1e19`, reason: ReasonOutOfRange},
	{typ: TypeInt8, json: `1e400`, reason: ReasonOutOfRange},
	{typ: TypeInt8, json: `"9007199254740993"`, want: "9007199254740993"},
	{typ: TypeInt8, json: `123456789012345678`, want: "123456789012345678"},
	{typ: TypeInt8, json: `1234567890123456789`, want: "1234567890123456789"},
	{typ: TypeInt8, json: `0.00`, want: "0"},
	{typ: TypeInt8, json: `[1]`, reason: ReasonWrongType},

	{typ: TypeFloat4, json: `1.5`, want: "1.5"},
	{typ: TypeFloat4, json: `0.1`, want: "0.1"},
	{typ: TypeFloat4, json: `3.4028235e38`, want: "3.4028235e+38"},
	{typ: TypeFloat4, json: `3.5e38`, reason: ReasonOutOfRange},
	{typ: TypeFloat4, json: `1e-46`, reason: ReasonOutOfRange},
	{typ: TypeFloat4, json: `-0.0`, want: "-0"},
	{typ: TypeFloat4, json: `"NaN"`, want: "NaN"},
	{typ: TypeFloat8, json: `0.1`, want: "0.1"},
	{typ: TypeFloat8, json: `1e308`, want: "1e+308"},
	{typ: TypeFloat8, json: `1e309`, reason: ReasonOutOfRange},
	{typ: TypeFloat8, json: `5e-324`, want: "5e-324"},
	{typ: TypeFloat8, json: `1e-400`, reason: ReasonOutOfRange},
	{typ: TypeFloat8, json: `"-Infinity"`, want: "-Infinity"},
	{typ: TypeFloat8, json: `"inf"`, want: "Infinity"},
	{typ: TypeFloat8, json: `"2.5"`, want: "2.5"},
	{typ: TypeFloat8, json: `"abc"`, reason: ReasonWrongType},
	{typ: TypeFloat8, json: `false`, reason: ReasonWrongType},

	{typ: TypeNumeric, json: `12.34`, want: "12.34"},
	{typ: TypeNumeric, json: `-0.0012`, want: "-0.0012"},
	{typ: TypeNumeric, json: `1e3`, want: "1000"},
	{typ: TypeNumeric, json: `1.50e1`, want: "15.0"},
	{typ: TypeNumeric, json: `1.5e-3`, want: "0.0015"},
	{typ: TypeNumeric, json: `12345678901234567890.123456789`, want: "12345678901234567890.123456789"},
	{typ: TypeNumeric, json: `100000000.00000001`, want: "100000000.00000001"},
	{typ: TypeNumeric, json: `99999999`, want: "99999999"},
	{typ: TypeNumeric, json: `100000000`, want: "100000000"},
	{typ: TypeNumeric, json: `0`, want: "0"},
	{typ: TypeNumeric, json: `-0`, want: "0"},
	{typ: TypeNumeric, json: `0.000`, want: "0.000"},
	{typ: TypeNumeric, json: `0e10`, want: "0"},
	{typ: TypeNumeric, json: `1e-5`, want: "0.00001"},
	{typ: TypeNumeric, json: `1e40`, want: "1" + strings.Repeat("0", 40)},
	{typ: TypeNumeric, json: `-123.456e2`, want: "-12345.6"},
	{typ: TypeNumeric, json: `1e-16383`, want: "0." + strings.Repeat("0", 16382) + "1"},
	{typ: TypeNumeric, json: `1e-16384`, reason: ReasonOutOfRange},
	{typ: TypeNumeric, json: `1e131072`, reason: ReasonOutOfRange},
	{typ: TypeNumeric, json: `1e999999999999`, reason: ReasonOutOfRange},
	{typ: TypeNumeric, json: `"NaN"`, want: "NaN"},
	{typ: TypeNumeric, json: `"Infinity"`, want: "Infinity"},
	{typ: TypeNumeric, json: `"-infinity"`, want: "-Infinity"},
	{typ: TypeNumeric, json: `"12.5"`, want: "12.5"},
	{typ: TypeNumeric, json: `"12,5"`, reason: ReasonWrongType},
	{typ: TypeNumeric, json: `{}`, reason: ReasonWrongType},

	{typ: TypeBool, json: `true`, want: "true"},
	{typ: TypeBool, json: `false`, want: "false"},
	{typ: TypeBool, json: `"true"`, reason: ReasonWrongType},
	{typ: TypeBool, json: `1`, reason: ReasonWrongType},

	{typ: TypeUUID, json: `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{typ: TypeUUID, json: `"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"`, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{typ: TypeUUID, json: `"a0eebc999c0b4ef8bb6d6bb9bd380a11"`, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{typ: TypeUUID, json: `"{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}"`, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{typ: TypeUUID, json: `"a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"`, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{typ: TypeUUID, json: `"a0eebc99\u002d9c0b-4ef8-bb6d-6bb9bd380a11"`, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{typ: TypeUUID, json: `"a0eebc99-9c0b4ef8-bb6d6bb9bd380a11-"`, reason: ReasonInvalidValue},
	{typ: TypeUUID, json: `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g"`, reason: ReasonInvalidValue},
	{typ: TypeUUID, json: `"a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11"`, reason: ReasonInvalidValue},
	{typ: TypeUUID, json: `"{a0eebc999c0b4ef8bb6d6bb9bd380a11"`, reason: ReasonInvalidValue},
	{typ: TypeUUID, json: `""`, reason: ReasonInvalidValue},
	{typ: TypeUUID, json: `123`, reason: ReasonWrongType},

	{typ: TypeTimestamptz, json: `"2026-11-01T00:00:01.234Z"`, want: "2026-11-01 00:00:01.234+00"},
	{typ: TypeTimestamptz, json: `"2026-11-01T02:00:01.5+02:00"`, want: "2026-11-01 00:00:01.5+00"},
	{typ: TypeTimestamptz, json: `"2026-11-01T00:00:01-0130"`, want: "2026-11-01 01:30:01+00"},
	{typ: TypeTimestamptz, json: `"2026-11-01T00:00:01+05"`, want: "2026-10-31 19:00:01+00"},
	{typ: TypeTimestamptz, json: `"2026-11-01 00:00:01"`, want: "2026-11-01 00:00:01+00"},
	{typ: TypeTimestamptz, json: `"2026-11-01t00:00z"`, want: "2026-11-01 00:00:00+00"},
	{typ: TypeTimestamptz, json: `"2026-11-01"`, want: "2026-11-01 00:00:00+00"},
	{typ: TypeTimestamptz, json: `"2026-01-01T00:00:00.0000005Z"`, want: "2026-01-01 00:00:00+00"},
	{typ: TypeTimestamptz, json: `"2026-01-01T00:00:00.0000015Z"`, want: "2026-01-01 00:00:00.000002+00"},
	{typ: TypeTimestamptz, json: `"2026-01-01T00:00:00.0000025Z"`, want: "2026-01-01 00:00:00.000002+00"},
	{typ: TypeTimestamptz, json: `"2026-12-31T23:59:59.9999995Z"`, want: "2027-01-01 00:00:00+00"},
	{typ: TypeTimestamptz, json: `"2026-01-01T00:00:00.123456789Z"`, want: "2026-01-01 00:00:00.123457+00"},
	{typ: TypeTimestamptz, json: `"2026-01-01T24:00:00Z"`, want: "2026-01-02 00:00:00+00"},
	{typ: TypeTimestamptz, json: `"2026-12-31T23:59:60Z"`, want: "2027-01-01 00:00:00+00"},
	{typ: TypeTimestamptz, json: `"2024-02-29T12:00:00Z"`, want: "2024-02-29 12:00:00+00"},
	{typ: TypeTimestamptz, json: `"0001-01-01T00:00:00Z"`, want: "0001-01-01 00:00:00+00"},
	{typ: TypeTimestamptz, json: `"9999-12-31T23:59:59.999999Z"`, want: "9999-12-31 23:59:59.999999+00"},
	{typ: TypeTimestamptz, json: `1730419201`, want: "2024-11-01 00:00:01+00"},
	{typ: TypeTimestamptz, json: `1730419201.5`, want: "2024-11-01 00:00:01.5+00"},
	{typ: TypeTimestamptz, json: `1730419201234`, want: "2024-11-01 00:00:01.234+00"},
	{typ: TypeTimestamptz, json: `1730419201234567`, want: "2024-11-01 00:00:01.234567+00"},
	{typ: TypeTimestamptz, json: `1730419201234567500`, want: "2024-11-01 00:00:01.234568+00"},
	{typ: TypeTimestamptz, json: `1730419201234568500`, want: "2024-11-01 00:00:01.234568+00"},
	{typ: TypeTimestamptz, json: `1.7304192012345e9`, want: "2024-11-01 00:00:01.2345+00"},
	{typ: TypeTimestamptz, json: `0`, want: "1970-01-01 00:00:00+00"},
	{typ: TypeTimestamptz, json: `-1`, want: "1969-12-31 23:59:59+00"},
	{typ: TypeTimestamptz, json: `1e30`, reason: ReasonOutOfRange},
	{typ: TypeTimestamptz, json: `"2026-02-29T00:00:00Z"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `"2026-11-01T00:00:01+16:00"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `"2026-11-01T00:00:01.1234567891Z"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `"2026-01-01T24:00:01Z"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `"2026-01-01T23:59:60.5Z"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `"0000-01-01T00:00:00Z"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `"2026-11-01T00:00:01Zjunk"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `"Nov 1 2026"`, reason: ReasonInvalidValue},
	{typ: TypeTimestamptz, json: `true`, reason: ReasonWrongType},
	{typ: TypeTimestamp, json: `"2026-11-01T02:00:01+02:00"`, want: "2026-11-01 00:00:01"},
	{typ: TypeTimestamp, json: `"2026-11-01T00:00:01.234"`, want: "2026-11-01 00:00:01.234"},
	{typ: TypeTimestamp, json: `1730419201234`, want: "2024-11-01 00:00:01.234"},

	{typ: TypeDate, json: `"2026-11-01"`, want: "2026-11-01"},
	{typ: TypeDate, json: `"0001-01-01"`, want: "0001-01-01"},
	{typ: TypeDate, json: `"2000-01-01"`, want: "2000-01-01"},
	{typ: TypeDate, json: `"1999-12-31"`, want: "1999-12-31"},
	{typ: TypeDate, json: `"2026-13-01"`, reason: ReasonInvalidValue},
	{typ: TypeDate, json: `"2026-11-01T00:00:00Z"`, reason: ReasonInvalidValue},
	{typ: TypeDate, json: `20261101`, reason: ReasonWrongType},

	{typ: TypeJSONB, json: `{"a":1,"a":2}`, want: `{"a": 2}`},
	{typ: TypeJSONB, json: `[1,"x",null, 1.50]`, want: `[1, "x", null, 1.50]`},
	{typ: TypeJSONB, json: `"str"`, want: `"str"`},
	{typ: TypeJSONB, json: `false`, want: `false`},
	{typ: TypeJSONB, json: `{"a":"\u00e9\ud83d\ude00"}`, want: `{"a": "é😀"}`},
	{typ: TypeJSONB, json: `1e400`, want: "1" + strings.Repeat("0", 400)},
	{typ: TypeJSONB, json: `"\u0000"`, reason: ReasonInvalidValue},
	{typ: TypeJSONB, json: `["\ud800"]`, reason: ReasonInvalidValue},
	{typ: TypeJSONB, json: `{"x":1e131072}`, reason: ReasonInvalidValue},
	{typ: TypeJSON, json: `{"a":1,"a":2}`, want: `{"a":1,"a":2}`},
	{typ: TypeJSON, json: `"\u0000"`, want: `"\u0000"`},
	{typ: TypeJSON, json: `["\ud800"]`, want: `["\ud800"]`},
	{typ: TypeJSON, json: `1e999999`, want: `1e999999`},

	{typ: TypeBytea, json: `"aGVsbG8="`, want: `\x68656c6c6f`},
	{typ: TypeBytea, json: `""`, want: `\x`},
	{typ: TypeBytea, json: `"aGk\/"`, want: `\x68693f`},
	{typ: TypeBytea, json: `"-_8="`, want: `\xfbff`},
	{typ: TypeBytea, json: `"-_8"`, want: `\xfbff`},
	{typ: TypeBytea, json: `"-_8=\n"`, want: `\xfbff`},
	{typ: TypeBytea, json: `"-_8=\r\n"`, want: `\xfbff`},
	{typ: TypeBytea, json: `"-_\n8"`, want: `\xfbff`},
	{typ: TypeBytea, json: `"aGVs\r\nbG8="`, want: `\x68656c6c6f`},
	{typ: TypeBytea, json: `"aGVsbG8"`, reason: ReasonInvalidValue},
	{typ: TypeBytea, json: `"a+_8"`, reason: ReasonInvalidValue},
	{typ: TypeBytea, json: `"!!!!"`, reason: ReasonInvalidValue},
	{typ: TypeBytea, json: `12`, reason: ReasonWrongType},
}

// TestTypes decodes every case and, for the accepted ones, lands them in
// PostgreSQL and compares the stored value's text.
func TestTypes(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	byType := map[Type][]byte{} // framed tuples per type
	wants := map[Type][]typeCase{}
	for i, tc := range typeCases {
		dec, err := NewDecoder(FormatJSON, []Column{{Name: "v", Type: tc.typ, Path: "v"}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		rec := &Record{Value: []byte(`{"v":` + tc.json + `}`)}
		prefix := []byte("prefix")
		out, err := dec.AppendFields(prefix, rec)
		name := fmt.Sprintf("%d %s %s", i, tc.typ, tc.json)
		if len(name) > 80 {
			name = name[:80]
		}
		if tc.reason != "" {
			var re *RowError
			if !errors.As(err, &re) || re.Reason != tc.reason {
				t.Errorf("%s: got %v, want reason %s", name, err, tc.reason)
				continue
			}
			if re.Column != "v" || re.Path != "v" {
				t.Errorf("%s: error names column %q path %q, want v and v", name, re.Column, re.Path)
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
		table := "types_" + typ.String()
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
				t.Errorf("%s %s: PostgreSQL holds %q, want %q", typ, tc.json, g, w)
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
