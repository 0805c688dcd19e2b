package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"
)

// decodeChange runs AppendFields on a non-empty buffer, checks the framing
// contract for every Op, and returns the fields rendered as text (see
// renderField) with the Op.
func decodeChange(t testing.TB, d *Decoder, rec *Record) ([]string, Op, *RowError) {
	t.Helper()
	prefix := []byte{1, 2, 3}
	out, err := d.AppendFields(prefix, rec)
	if err != nil {
		var re *RowError
		if !errors.As(err, &re) {
			t.Fatalf("error %T is not a *RowError: %v", err, err)
		}
		if !bytes.Equal(out, prefix) {
			t.Fatalf("on error the buffer must be restored, got %x", out)
		}
		if re.Detail == "" {
			t.Fatalf("error without detail: %v", re)
		}
		return nil, d.Op(), re
	}
	if !bytes.Equal(out[:3], prefix) {
		t.Fatalf("prefix overwritten: %x", out[:3])
	}
	switch d.Op() {
	case OpSkip, OpTruncate:
		if len(out) != 3 {
			t.Fatalf("op %s appended %d bytes, want none", d.Op(), len(out)-3)
		}
		return nil, d.Op(), nil
	}
	fields, ferr := splitFields(out[3:], d.NumFields())
	if ferr != nil {
		t.Fatalf("malformed fields: %v", ferr)
	}
	cols := d.Columns()
	text := make([]string, len(fields))
	for i, f := range fields {
		text[i] = renderField(cols[i].Type, f)
	}
	return text, d.Op(), nil
}

// renderField renders a binary COPY field as text resembling PostgreSQL's
// output, for comparisons in tests.
func renderField(typ Type, f []byte) string {
	if f == nil {
		return null
	}
	switch typ {
	case TypeInt2:
		return strconv.Itoa(int(int16(binary.BigEndian.Uint16(f))))
	case TypeInt4:
		return strconv.Itoa(int(int32(binary.BigEndian.Uint32(f))))
	case TypeInt8:
		return strconv.FormatInt(int64(binary.BigEndian.Uint64(f)), 10)
	case TypeFloat4:
		return strconv.FormatFloat(float64(math.Float32frombits(binary.BigEndian.Uint32(f))), 'g', -1, 32)
	case TypeFloat8:
		return strconv.FormatFloat(math.Float64frombits(binary.BigEndian.Uint64(f)), 'g', -1, 64)
	case TypeBool:
		return strconv.FormatBool(f[0] == 1)
	case TypeNumeric:
		return renderNumeric(f)
	case TypeUUID:
		h := hex.EncodeToString(f)
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	case TypeTimestamp, TypeTimestamptz:
		us := int64(binary.BigEndian.Uint64(f))
		return time.UnixMicro(us + unixToPGUs).UTC().Format("2006-01-02 15:04:05.999999")
	case TypeDate:
		days := int64(int32(binary.BigEndian.Uint32(f)))
		return time.Unix((days+unixToPGDays)*86400, 0).UTC().Format("2006-01-02")
	case TypeJSONB:
		return string(f[1:])
	case TypeBytea:
		return `\x` + hex.EncodeToString(f)
	}
	return string(f)
}

func renderNumeric(f []byte) string {
	ndigits := int(binary.BigEndian.Uint16(f))
	weight := int(int16(binary.BigEndian.Uint16(f[2:])))
	sign := binary.BigEndian.Uint16(f[4:])
	dscale := int(binary.BigEndian.Uint16(f[6:]))
	switch sign {
	case numericNaN:
		return "NaN"
	case numericPInf:
		return "Infinity"
	case numericNInf:
		return "-Infinity"
	}
	digit := func(i int) int {
		if i < 0 || i >= ndigits {
			return 0
		}
		return int(binary.BigEndian.Uint16(f[8+2*i:]))
	}
	var b strings.Builder
	if sign == numericNeg {
		b.WriteByte('-')
	}
	if weight < 0 {
		b.WriteByte('0')
	}
	for i := 0; i <= weight; i++ {
		if i == 0 {
			fmt.Fprintf(&b, "%d", digit(i))
		} else {
			fmt.Fprintf(&b, "%04d", digit(i))
		}
	}
	if dscale > 0 {
		var frac strings.Builder
		for i := weight + 1; frac.Len() < dscale; i++ {
			fmt.Fprintf(&frac, "%04d", digit(i))
		}
		b.WriteByte('.')
		b.WriteString(frac.String()[:dscale])
	}
	return b.String()
}

// twosComplement returns x as Java's BigInteger.toByteArray writes it: the
// shortest big-endian two's complement.
func twosComplement(x *big.Int) []byte {
	if x.Sign() >= 0 {
		b := x.Bytes()
		if len(b) == 0 || b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -x - 1 has the complement bits of x.
	m := new(big.Int).Neg(x)
	m.Sub(m, big.NewInt(1))
	b := m.Bytes()
	for i := range b {
		b[i] = ^b[i]
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		b = append([]byte{0xFF}, b...)
	}
	return b
}

// decimal64 returns the base64 Connect Decimal of an unscaled value.
func decimal64(unscaled string) string {
	x, ok := new(big.Int).SetString(unscaled, 10)
	if !ok {
		panic(unscaled)
	}
	return base64.StdEncoding.EncodeToString(twosComplement(x))
}

// pgSource is the source block of a PostgreSQL connector.
const pgSource = `{"version":"2.7.3.Final","connector":"postgresql","name":"shop","ts_ms":1730419201234,` +
	`"snapshot":"false","db":"shop","sequence":"[\"24023928\",\"24023960\"]","ts_us":1730419201234567,` +
	`"ts_ns":1730419201234567000,"schema":"public","table":"customers","txId":743,"lsn":24023960,"xmin":null}`

// envelope returns a Debezium envelope without the schema wrapper; before
// and after are JSON (or "" to leave the field out).
func envelopeJSON(op, before, after string) string {
	var b strings.Builder
	b.WriteByte('{')
	if before != "" {
		b.WriteString(`"before":` + before + `,`)
	}
	if after != "" {
		b.WriteString(`"after":` + after + `,`)
	}
	b.WriteString(`"source":` + pgSource + `,"transaction":{"id":"743:24023960","total_order":1,"data_collection_order":1},`)
	if op != "" {
		b.WriteString(`"op":` + strconv.Quote(op) + `,`)
	}
	b.WriteString(`"ts_ms":1730419201456,"ts_us":1730419201456789,"ts_ns":1730419201456789000}`)
	return b.String()
}

// envelopeSchema returns the schema of an envelope whose rows have the
// given field schemas (a JSON array's elements).
func envelopeSchema(rowFields string) string {
	row := `{"type":"struct","fields":[` + rowFields + `],"optional":true,"name":"shop.public.customers.Value","field":"%s"}`
	return `{"type":"struct","fields":[` + fmt.Sprintf(row, "before") + `,` + fmt.Sprintf(row, "after") + `,` +
		`{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},` +
		`{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},` +
		`{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum",` +
		`"version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},` +
		`{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},` +
		`{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},` +
		`{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},` +
		`{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},` +
		`{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},` +
		`{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},` +
		`{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"},` +
		`{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},` +
		`{"type":"int64","optional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"}],` +
		`"optional":false,"name":"shop.public.customers.Envelope","version":2}`
}

func wrap(schema, payload string) string {
	return `{"schema":` + schema + `,"payload":` + payload + `}`
}

// The customers table of the ops tests.
var customerFields = `{"type":"int64","optional":false,"default":0,"field":"id"},` +
	`{"type":"string","optional":false,"field":"name"},` +
	`{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"balance"}`

var customerColumns = []Column{
	{Name: "id", Type: TypeInt8, Path: "id", Key: true},
	{Name: "name", Type: TypeText, Path: "name", Required: true},
	{Name: "balance", Type: TypeNumeric, Path: "balance"},
	{Name: "op", Type: TypeText, Source: SourceDebeziumOp},
	{Name: "src_offset", Type: TypeInt8, Source: SourceOffset},
}

const keySchema = `{"type":"struct","fields":[{"type":"int64","optional":false,"default":0,"field":"id"}],"optional":false,"name":"shop.public.customers.Key"}`

func TestDebeziumOps(t *testing.T) {
	d := mustDecoder(t, FormatDebezium, customerColumns, Options{})
	schema := envelopeSchema(customerFields)
	rowBare := `{"id":1001,"name":"Sally","balance":"12.50"}`
	rowWrapped := `{"id":1001,"name":"Sally","balance":"BOI="}` // 1250 at scale 2
	oldBare := `{"id":1001,"name":"Sal","balance":"0.00"}`
	f := func(name, key, value string, wantOp Op, want ...string) {
		t.Helper()
		rec := &Record{Offset: 42}
		if key != "<nil>" {
			rec.Key = []byte(key)
		}
		if value != "<nil>" {
			rec.Value = []byte(value)
		}
		got, op, rerr := decodeChange(t, d, rec)
		if rerr != nil {
			t.Errorf("%s: %v", name, rerr)
			return
		}
		if op != wantOp {
			t.Errorf("%s: op %s, want %s", name, op, wantOp)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: got  %q\nwant %q", name, got, want)
		}
		if d.Unchanged() != nil {
			t.Errorf("%s: Unchanged %v, want none", name, d.Unchanged())
		}
	}
	for _, op := range []string{"c", "r", "u"} {
		f("bare "+op, `{"id":1001}`, envelopeJSON(op, "null", rowBare), OpUpsert, "1001", "Sally", "12.50", op, "42")
		f("bare "+op+" with before", `{"id":1001}`, envelopeJSON(op, oldBare, rowBare), OpUpsert, "1001", "Sally", "12.50", op, "42")
		f("wrapped "+op, "<nil>", wrap(schema, envelopeJSON(op, "null", rowWrapped)), OpUpsert, "1001", "Sally", "12.50", op, "42")
	}
	f("escaped op", "", strings.Replace(envelopeJSON("c", "null", rowBare), `"op":"c"`, `"op":"\u0063"`, 1),
		OpUpsert, "1001", "Sally", "12.50", "c", "42")
	f("op first", "", `{"op":"c","after":`+rowBare+`}`, OpUpsert, "1001", "Sally", "12.50", "c", "42")

	// Deletes: key columns from before, then from the record key.
	f("delete", `{"id":1001}`, envelopeJSON("d", oldBare, "null"), OpDelete, "1001", null, null, "d", "42")
	f("delete wrapped", "<nil>", wrap(schema, envelopeJSON("d", rowWrapped, "null")), OpDelete, "1001", null, null, "d", "42")
	f("delete before null", `{"id":1002}`, envelopeJSON("d", "null", "null"), OpDelete, "1002", null, null, "d", "42")
	f("delete no before", `{"id":1002}`, envelopeJSON("d", "", ""), OpDelete, "1002", null, null, "d", "42")
	f("delete before without the key", `{"id":1003}`, envelopeJSON("d", `{"name":"x"}`, "null"), OpDelete, "1003", null, null, "d", "42")
	f("delete before key null", `{"id":1003}`, envelopeJSON("d", `{"id":null}`, "null"), OpDelete, "1003", null, null, "d", "42")
	f("delete wrapped key", wrap(keySchema, `{"id":1004}`), envelopeJSON("d", "null", "null"), OpDelete, "1004", null, null, "d", "42")
	f("delete wrapped key and value", wrap(keySchema, `{"id":1004}`), wrap(schema, envelopeJSON("d", "null", "null")),
		OpDelete, "1004", null, null, "d", "42")
	f("delete scalar key", `1005`, envelopeJSON("d", "null", "null"), OpDelete, "1005", null, null, "d", "42")
	f("delete string key", `"1006"`, envelopeJSON("d", "", ""), OpDelete, "1006", null, null, "d", "42")
	f("delete unavailable key in before", `{"id":1007}`, envelopeJSON("d", `{"id":"__debezium_unavailable_value"}`, "null"),
		OpDelete, "1007", null, null, "d", "42")

	// Records that change no row.
	f("tombstone", `{"id":1001}`, "<nil>", OpSkip)
	f("tombstone without key", "<nil>", "<nil>", OpSkip)
	f("null payload", `{"id":1001}`, `{"schema":null,"payload":null}`, OpSkip)
	f("truncate", "<nil>", `{"source":`+pgSource+`,"op":"t","ts_ms":1730419201456}`, OpTruncate)
	f("truncate wrapped", "<nil>", wrap(schema, `{"before":null,"after":null,"source":`+pgSource+`,"op":"t","ts_ms":1}`), OpTruncate)
	f("message", "<nil>", `{"op":"m","ts_ms":1,"source":`+pgSource+`,"message":{"prefix":"p","content":"aGk="}}`, OpSkip)
}

func TestDebeziumErrors(t *testing.T) {
	d := mustDecoder(t, FormatDebezium, customerColumns, Options{MaxDepth: 10})
	schema := envelopeSchema(customerFields)
	f := func(key, value string, reason Reason, column string, detail string) {
		t.Helper()
		rec := &Record{}
		if key != "<nil>" {
			rec.Key = []byte(key)
		}
		if value != "<nil>" {
			rec.Value = []byte(value)
		}
		_, _, rerr := decodeChange(t, d, rec)
		if rerr == nil {
			t.Errorf("%.80s: accepted, want %s", value, reason)
			return
		}
		if rerr.Reason != reason || rerr.Column != column || !strings.Contains(rerr.Detail, detail) {
			t.Errorf("%.80s: got %v, want %s on column %q with %q", value, rerr, reason, column, detail)
		}
		if d.Op() != OpUpsert || d.Unchanged() != nil {
			t.Errorf("%.80s: after an error Op is %s and Unchanged %v", value, d.Op(), d.Unchanged())
		}
	}
	row := `{"id":1,"name":"a"}`
	f("", envelopeJSON("", "null", row), ReasonBadEnvelope, "", "no op")
	f("", `{"id":1,"name":"a"}`, ReasonBadEnvelope, "", "ExtractNewRecordState")
	f("", `{"op":5,"after":`+row+`}`, ReasonBadEnvelope, "", "op is a JSON number")
	f("", `{"op":null,"after":`+row+`}`, ReasonBadEnvelope, "", "op is a JSON null")
	f("", `{"op":"x","after":`+row+`}`, ReasonBadEnvelope, "", `unknown op "x"`)
	f("", `{"op":"cc","after":`+row+`}`, ReasonBadEnvelope, "", `unknown op "cc"`)
	f("", `{"op":"","after":`+row+`}`, ReasonBadEnvelope, "", `unknown op ""`)
	f("", envelopeJSON("c", "null", "null"), ReasonBadEnvelope, "", "without an after object (after is null)")
	f("", envelopeJSON("u", row, ""), ReasonBadEnvelope, "", "(after is missing)")
	f("", `{"op":"r","after":[1]}`, ReasonBadEnvelope, "", "(after is array)")
	f("", `{"schema":`+schema+`}`, ReasonBadEnvelope, "", "schema but no payload")
	f("", `{"schema":`+schema+`,"payload":"x"}`, ReasonBadEnvelope, "", "payload is a JSON string")
	f("", wrap(schema, `{"after":`+row+`}`), ReasonBadEnvelope, "", "no op")
	f("", envelopeJSON("c", "null", `{"id":1}`), ReasonMissingRequired, "name", "")
	f("", envelopeJSON("c", "null", `{"id":1,"name":null}`), ReasonMissingRequired, "name", "")
	f("", envelopeJSON("c", "null", `{"id":"x","name":"a"}`), ReasonWrongType, "id", "")
	f("", envelopeJSON("c", "null", `{"id":1,"name":"a","balance":true}`), ReasonWrongType, "balance", "")
	f("", wrap(schema, envelopeJSON("c", "null", `{"id":1,"name":"a","balance":"!!"}`)), ReasonInvalidValue, "balance", "invalid base64")
	f("", `{"op":"c","after":`+row+`,}`, ReasonMalformedJSON, "", "")
	f("", `{"op":"c","after":`+row, ReasonMalformedJSON, "", "")
	f("", `[{"op":"c"}]`, ReasonMalformedJSON, "", "not a JSON object")
	f("", `null`, ReasonMalformedJSON, "", "")
	f("", ``, ReasonMalformedJSON, "", "empty")
	f("", `{"op":"c","after":`+row+`,"x":[[[[[[[[[[[1]]]]]]]]]]]}`, ReasonMalformedJSON, "", "deeper")
	f("", "{\"op\":\"c\",\"after\":{\"id\":1,\"name\":\"\xff\"}}", ReasonInvalidUTF8, "", "")
	// Deletes without a usable key.
	f("<nil>", envelopeJSON("d", "null", "null"), ReasonBadKey, "", "no key")
	f("<nil>", envelopeJSON("d", "", ""), ReasonBadKey, "", "no key")
	f(`{"other":1}`, envelopeJSON("d", "null", "null"), ReasonBadKey, "id", "no value at id")
	f(`{"id":null}`, envelopeJSON("d", "null", "null"), ReasonBadKey, "id", "no value at id")
	f(`{"id":"x"}`, envelopeJSON("d", "null", "null"), ReasonBadKey, "id", "wrong_type")
	f(`{"id":`, envelopeJSON("d", "null", "null"), ReasonBadKey, "", "not valid JSON")
	f(`null`, envelopeJSON("d", "null", "null"), ReasonBadKey, "", "JSON null")
	f(`[1]`, envelopeJSON("d", "null", "null"), ReasonBadKey, "", "JSON array")
	f("\xff", envelopeJSON("d", "null", "null"), ReasonBadKey, "", "neither JSON nor text")
}
