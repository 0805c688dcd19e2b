package codec

import (
	"bytes"
	"context"
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

func mustBig(s string) *big.Int {
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return x
}

// decimal64 returns the base64 Connect Decimal of an unscaled value.
func decimal64(unscaled string) string {
	return base64.StdEncoding.EncodeToString(twosComplement(mustBig(unscaled)))
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

// The reference change event: an update of the reference event, as the
// PostgreSQL connector writes it with REPLICA IDENTITY FULL, with
// decimal.handling.mode=string (bare) or precise (wrapped).
var (
	referenceRowFields = `{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"event_id"},` +
		`{"type":"int64","optional":true,"field":"tenant_id"},{"type":"int64","optional":true,"field":"user_id"},` +
		`{"type":"string","optional":true,"field":"type"},` +
		`{"type":"string","optional":true,"name":"io.debezium.time.ZonedTimestamp","version":1,"field":"ts"},` +
		`{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"12"},"field":"amount"},` +
		`{"type":"string","optional":true,"field":"url"},{"type":"string","optional":true,"field":"user_agent"},` +
		`{"type":"string","optional":true,"name":"io.debezium.data.Json","version":1,"field":"attrs"}`
	referenceRow = func(amount string) string {
		return `{"event_id":"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01","tenant_id":123,"user_id":4567,"type":"purchase",` +
			`"ts":"2026-11-01T00:00:01.234Z","amount":` + amount + `,` +
			`"url":"https://shop.example.com/checkout/cart?item=sku-48213&qty=2&ref=newsletter-2026-11",` +
			`"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",` +
			`"attrs":"{\"country\":\"DE\",\"device\":\"desktop\",\"session\":\"9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b\",\"experiment\":\"checkout-v2\"}"}`
	}
	referenceChangeBare    = []byte(envelopeJSON("u", referenceRow(`"10.00"`), referenceRow(`"12.34"`)))
	referenceChangeWrapped = []byte(wrap(envelopeSchema(referenceRowFields), envelopeJSON("u", referenceRow(`"A+g="`), referenceRow(`"BNI="`))))
	referenceChangeKey     = []byte(wrap(`{"type":"struct","fields":[{"type":"string","optional":false,"name":"io.debezium.data.Uuid","version":1,"field":"event_id"}],"optional":false,"name":"shop.public.events.Key"}`,
		`{"event_id":"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"}`))
)

var referenceChangeColumns = []Column{
	{Name: "event_id", Type: TypeUUID, Path: "event_id", Required: true, Key: true},
	{Name: "tenant_id", Type: TypeInt8, Path: "tenant_id"},
	{Name: "user_id", Type: TypeInt8, Path: "user_id"},
	{Name: "type", Type: TypeText, Path: "type"},
	{Name: "ts", Type: TypeTimestamptz, Path: "ts"},
	{Name: "amount", Type: TypeNumeric, Path: "amount"},
	{Name: "url", Type: TypeText, Path: "url"},
	{Name: "user_agent", Type: TypeText, Path: "user_agent"},
	{Name: "attrs", Type: TypeJSONB, Path: "attrs"},
	{Name: "op", Type: TypeText, Source: SourceDebeziumOp},
	{Name: "lsn", Type: TypeInt8, Source: SourceDebeziumSourceLSN},
	{Name: "src_offset", Type: TypeInt8, Source: SourceOffset},
}

const referenceChangeTable = `(event_id uuid primary key, tenant_id int8, user_id int8, type text, ts timestamptz,
	amount numeric, url text, user_agent text, attrs jsonb, op text, lsn int8, src_offset int8)`

// TestDebeziumLandsInPostgres lands the reference change event, both
// shapes, and a delete in PostgreSQL.
func TestDebeziumLandsInPostgres(t *testing.T) {
	d := mustDecoder(t, FormatDebezium, referenceChangeColumns, Options{})
	conn := pgConn(t)
	ctx := context.Background()
	want := []string{"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01", "123", "4567", "purchase", "2026-11-01 00:00:01.234+00", "12.34",
		"https://shop.example.com/checkout/cart?item=sku-48213&qty=2&ref=newsletter-2026-11",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		`{"device": "desktop", "country": "DE", "session": "9b2e4f6a-1c3d-4e5f-8a7b-6c5d4e3f2a1b", "experiment": "checkout-v2"}`,
		"u", "24023960", "42"}
	deleted := []string{"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01", null, null, null, null, null, null, null, null, "d", "24023960", "43"}
	deleteBare := []byte(envelopeJSON("d", referenceRow(`"12.34"`), "null"))
	deleteWrapped := []byte(wrap(envelopeSchema(referenceRowFields), envelopeJSON("d", "null", "null")))
	for _, tc := range []struct {
		name  string
		key   []byte
		value []byte
		op    Op
		want  []string
	}{
		{"bare", nil, referenceChangeBare, OpUpsert, want},
		{"wrapped", referenceChangeKey, referenceChangeWrapped, OpUpsert, want},
		{"delete bare", nil, deleteBare, OpDelete, deleted},
		{"delete wrapped from the key", referenceChangeKey, deleteWrapped, OpDelete, deleted},
	} {
		offset := int64(42)
		if tc.op == OpDelete {
			offset = 43
		}
		out, err := d.AppendFields(nil, &Record{Key: tc.key, Value: tc.value, Offset: offset})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d.Op() != tc.op {
			t.Fatalf("%s: op %s, want %s", tc.name, d.Op(), tc.op)
		}
		mustExec(t, conn, "DROP TABLE IF EXISTS dbz_ref; CREATE TABLE dbz_ref "+referenceChangeTable)
		if err := copyTuples(ctx, conn, "dbz_ref", appendTuple(nil, d.NumFields(), out)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got [12]string
		ptrs := make([]any, len(got))
		for i := range got {
			ptrs[i] = &got[i]
		}
		err = conn.QueryRow(ctx, `SELECT coalesce(event_id::text, '<NULL>'), coalesce(tenant_id::text, '<NULL>'),
			coalesce(user_id::text, '<NULL>'), coalesce(type, '<NULL>'), coalesce(ts::text, '<NULL>'),
			coalesce(amount::text, '<NULL>'), coalesce(url, '<NULL>'), coalesce(user_agent, '<NULL>'),
			coalesce(attrs::text, '<NULL>'), op, lsn::text, src_offset::text FROM dbz_ref`).Scan(ptrs...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got[:], "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s:\ngot  %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestDebeziumSources(t *testing.T) {
	cols := []Column{
		{Name: "op", Type: TypeText, Source: SourceDebeziumOp},
		{Name: "ts_ms", Type: TypeInt8, Source: SourceDebeziumTsMs},
		{Name: "ts", Type: TypeTimestamptz, Source: SourceDebeziumTsMs},
		{Name: "src_ts_ms", Type: TypeNumeric, Source: SourceDebeziumSourceTsMs},
		{Name: "src_ts", Type: TypeTimestamp, Source: SourceDebeziumSourceTsMs},
		{Name: "lsn", Type: TypeInt8, Source: SourceDebeziumSourceLSN},
		{Name: "lsn_n", Type: TypeNumeric, Source: SourceDebeziumSourceLSN},
		{Name: "db", Type: TypeText, Source: SourceDebeziumSourceDB},
		{Name: "schema", Type: TypeText, Source: SourceDebeziumSourceSchema},
		{Name: "table", Type: TypeText, Source: SourceDebeziumSourceTable},
		{Name: "tx", Type: TypeText, Source: SourceDebeziumTransactionID},
		{Name: "id", Type: TypeInt8, Path: "id", Key: true},
		{Name: "topic", Type: TypeText, Source: SourceTopic},
	}
	d := mustDecoder(t, FormatDebezium, cols, Options{})
	pg := []string{"1730419201456", "2024-11-01 00:00:01.456", "1730419201234", "2024-11-01 00:00:01.234", "24023960", "24023960",
		"shop", "public", "customers", "743:24023960"}
	mysqlSource := `{"version":"2.7.3.Final","connector":"mysql","name":"shop","ts_ms":1730419201000,"snapshot":"false",` +
		`"db":"inventory","sequence":null,"table":"customers","server_id":223344,"gtid":null,"file":"mysql-bin.000003",` +
		`"pos":154,"row":0,"thread":7,"query":null}`
	mysql := []string{"1730419201456", "2024-11-01 00:00:01.456", "1730419201000", "2024-11-01 00:00:01", null, null,
		"inventory", null, "customers", null}
	f := func(name, value string, want ...string) {
		t.Helper()
		got, _, rerr := decodeChange(t, d, &Record{Topic: "shop.public.customers", Key: []byte(`{"id":7}`), Value: []byte(value)})
		if rerr != nil {
			t.Fatalf("%s: %v", name, rerr)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s:\ngot  %q\nwant %q", name, got, want)
		}
	}
	row := `{"id":7}`
	f("bare", envelopeJSON("c", "null", row), append([]string{"c"}, append(pg, "7", "shop.public.customers")...)...)
	f("wrapped", wrap(envelopeSchema(`{"type":"int64","field":"id"}`), envelopeJSON("r", "null", row)),
		append([]string{"r"}, append(pg, "7", "shop.public.customers")...)...)
	f("delete", envelopeJSON("d", "null", "null"), append([]string{"d"}, append(pg, "7", "shop.public.customers")...)...)
	f("mysql", `{"before":null,"after":{"id":7},"source":`+mysqlSource+`,"op":"c","ts_ms":1730419201456,"transaction":null}`,
		append([]string{"c"}, append(mysql, "7", "shop.public.customers")...)...)
	f("minimal", `{"op":"c","after":{"id":7}}`, "c", null, null, null, null, null, null, null, null, null, null, "7", "shop.public.customers")

	// Wrong kinds in the envelope are errors of the column.
	_, _, rerr := decodeChange(t, d, &Record{Value: []byte(`{"op":"c","after":{},"ts_ms":"soon"}`)})
	if rerr == nil || rerr.Column != "ts_ms" || rerr.Path != "debezium.ts_ms" || rerr.Reason != ReasonWrongType {
		t.Errorf("ts_ms \"soon\": got %v, want wrong_type on ts_ms", rerr)
	}
}

func TestDebeziumUnchanged(t *testing.T) {
	var cols []Column
	for i := range 70 {
		cols = append(cols, Column{Name: fmt.Sprintf("c%d", i), Type: TypeText, Path: fmt.Sprintf("c%d", i), Required: true})
	}
	cols[0].Key = true
	d := mustDecoder(t, FormatDebezium, cols, Options{})
	row := func(unavailable ...int) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range 70 {
			if i > 0 {
				b.WriteByte(',')
			}
			v := fmt.Sprintf("%q", fmt.Sprintf("v%d", i))
			for _, u := range unavailable {
				if u == i {
					v = placeholder
				}
			}
			fmt.Fprintf(&b, `"c%d":%s`, i, v)
		}
		return b.String() + "}"
	}
	got, _, rerr := decodeChange(t, d, &Record{Value: []byte(envelopeJSON("u", "null", row(3, 64, 69)))})
	if rerr != nil {
		t.Fatal(rerr)
	}
	u := d.Unchanged()
	if u.Len() != 3 || !u.Has(3) || !u.Has(64) || !u.Has(69) || u.Has(0) || u.Has(70) || u.Has(-1) {
		t.Errorf("Unchanged = %v, want {3, 64, 69}", u)
	}
	var all []int
	for i := range u.All() {
		all = append(all, i)
	}
	if fmt.Sprint(all) != "[3 64 69]" {
		t.Errorf("Unchanged().All() = %v", all)
	}
	if got[3] != null || got[64] != null || got[69] != null || got[4] != "v4" {
		t.Errorf("fields %q", got)
	}
	// The next record starts afresh, also after an error.
	if _, _, rerr := decodeChange(t, d, &Record{Value: []byte(envelopeJSON("u", "null", row()))}); rerr != nil || d.Unchanged() != nil {
		t.Errorf("next record: %v, Unchanged %v", rerr, d.Unchanged())
	}
	if _, _, rerr := decodeChange(t, d, &Record{Value: []byte(envelopeJSON("u", "null", strings.Replace(row(5), `"c69":"v69"`, `"c69":1`, 1)))}); rerr != nil {
		t.Errorf("number in text column: %v", rerr)
	}
	if _, _, rerr := decodeChange(t, d, &Record{Value: []byte(envelopeJSON("u", "null", strings.Replace(row(5), `"c69":"v69"`, `"c69":null`, 1)))}); rerr == nil {
		t.Error("null in a required column accepted")
	} else if d.Unchanged() != nil {
		t.Errorf("Unchanged after an error: %v", d.Unchanged())
	}
	// The placeholder in a delete's before is no key.
	if _, op, rerr := decodeChange(t, d, &Record{Value: []byte(envelopeJSON("d", row(0), "null"))}); rerr == nil || rerr.Reason != ReasonBadKey {
		t.Errorf("delete with an unavailable key: op %s, %v", op, rerr)
	}
}

func TestDeletes(t *testing.T) {
	cols := []Column{
		{Name: "event_id", Type: TypeUUID, Path: "event_id", Required: true, Key: true},
		{Name: "tenant_id", Type: TypeInt8, Path: "tenant_id", Required: true},
		{Name: "src_offset", Type: TypeInt8, Source: SourceOffset},
		{Name: "k", Type: TypeText, Source: SourceKey},
	}
	d := mustDecoder(t, FormatJSON, cols, Options{Deletes: true})
	const id = "3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"
	f := func(key string, want ...string) {
		t.Helper()
		rec := &Record{Offset: 9}
		if key != "<nil>" {
			rec.Key = []byte(key)
		}
		got, op, rerr := decodeChange(t, d, rec)
		if rerr != nil {
			t.Errorf("key %q: %v", key, rerr)
			return
		}
		if op != OpDelete {
			t.Errorf("key %q: op %s, want delete", key, op)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("key %q:\ngot  %q\nwant %q", key, got, want)
		}
	}
	f(id, id, null, "9", id)
	f(strings.ToUpper(id), id, null, "9", strings.ToUpper(id))
	f(`"`+id+`"`, id, null, "9", `"`+id+`"`)
	f(` "`+id+`" `, id, null, "9", ` "`+id+`" `)
	f(`{"event_id":"`+id+`","tenant_id":5}`, id, null, "9", `{"event_id":"`+id+`","tenant_id":5}`)
	f(`{"x":{"y":1},"event_id":"\u0033f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"}`, id, null, "9", `{"x":{"y":1},"event_id":"\u0033f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"}`)
	bad := func(key string, column, detail string) {
		t.Helper()
		rec := &Record{Offset: 9}
		if key != "<nil>" {
			rec.Key = []byte(key)
		}
		_, _, rerr := decodeChange(t, d, rec)
		if rerr == nil || rerr.Reason != ReasonBadKey || rerr.Column != column || rerr.Path != "kafka.key" || !strings.Contains(rerr.Detail, detail) {
			t.Errorf("key %q: got %v, want bad_key on %q with %q", key, rerr, column, detail)
		}
	}
	bad("<nil>", "", "tombstone without a key")
	bad(``, "event_id", "invalid UUID")
	bad(`not-a-uuid`, "event_id", "invalid UUID")
	bad(`42`, "event_id", "got a JSON number")
	bad(`{"tenant_id":5}`, "event_id", "no value at event_id")
	bad(`{"event_id":null}`, "event_id", "no value at event_id")
	bad(`{"event_id":"x"`, "", "not valid JSON")
	bad(`null`, "", "JSON null")
	bad(`[1]`, "", "JSON array")
	bad("a\x00b", "", "neither JSON nor text")
	bad("\xff", "", "neither JSON nor text")

	// Values are upserts as before.
	got, op, rerr := decodeChange(t, d, &Record{Value: []byte(`{"event_id":"` + id + `","tenant_id":5}`), Offset: 3})
	if rerr != nil || op != OpUpsert || got[1] != "5" {
		t.Errorf("value: %q, %s, %v", got, op, rerr)
	}

	// Integer and text keys, from strings and numbers.
	for _, typ := range []Type{TypeInt8, TypeText} {
		d := mustDecoder(t, FormatJSON, []Column{{Name: "id", Type: typ, Path: "id", Key: true}, {Name: "v", Type: TypeText, Path: "v"}}, Options{Deletes: true})
		for key, want := range map[string]string{`42`: "42", `"42"`: "42", `{"id":42}`: "42", `{"id":"42"}`: "42"} {
			got, op, rerr := decodeChange(t, d, &Record{Key: []byte(key)})
			if rerr != nil || op != OpDelete || got[0] != want || got[1] != null {
				t.Errorf("%s key %s: %q, %s, %v", typ, key, got, op, rerr)
			}
		}
	}
	d2 := mustDecoder(t, FormatJSON, []Column{{Name: "id", Type: TypeText, Path: "id", Key: true}}, Options{Deletes: true})
	for key, want := range map[string]string{`abc`: "abc", `true`: "true", `1e3`: "1e3", `{"id":1.50}`: "1.50", `{"id":"a\"b"}`: `a"b`} {
		got, _, rerr := decodeChange(t, d2, &Record{Key: []byte(key)})
		if rerr != nil || got[0] != want {
			t.Errorf("text key %s: %q, %v", key, got, rerr)
		}
	}

	// Composite keys need an object key.
	d3 := mustDecoder(t, FormatJSON, []Column{
		{Name: "tenant", Type: TypeInt4, Path: "t.id", Key: true},
		{Name: "id", Type: TypeInt8, Path: "id", Key: true},
		{Name: "v", Type: TypeText, Path: "v"},
	}, Options{Deletes: true})
	if got, op, rerr := decodeChange(t, d3, &Record{Key: []byte(`{"id":2,"t":{"id":1}}`)}); rerr != nil || op != OpDelete || strings.Join(got, "|") != "1|2|"+null {
		t.Errorf("composite key: %q, %s, %v", got, op, rerr)
	}
	if _, _, rerr := decodeChange(t, d3, &Record{Key: []byte(`2`)}); rerr == nil || rerr.Reason != ReasonBadKey || !strings.Contains(rerr.Detail, "2 key columns") {
		t.Errorf("scalar key for a composite key: %v", rerr)
	}

	// JSON key columns take the key's JSON text; a key that is not JSON is
	// no json value.
	for _, typ := range []Type{TypeJSON, TypeJSONB} {
		dj := mustDecoder(t, FormatJSON, []Column{{Name: "k", Type: typ, Path: "k", Key: true}}, Options{Deletes: true})
		for key, want := range map[string]string{`"x"`: `"x"`, `42`: `42`, `{"k":[1]}`: `[1]`, `{"k":{"a":"b"}}`: `{"a":"b"}`} {
			if got, _, rerr := decodeChange(t, dj, &Record{Key: []byte(key)}); rerr != nil || got[0] != want {
				t.Errorf("%s key %s: %q, %v", typ, key, got, rerr)
			}
		}
		if _, _, rerr := decodeChange(t, dj, &Record{Key: []byte(`abc`)}); rerr == nil || rerr.Reason != ReasonBadKey {
			t.Errorf("%s key abc: %v", typ, rerr)
		}
	}

	// Keyed by kafka.key alone.
	d4 := mustDecoder(t, FormatJSON, []Column{{Name: "k", Type: TypeText, Source: SourceKey, Key: true}, {Name: "v", Type: TypeText, Path: "v"}}, Options{Deletes: true})
	if got, op, rerr := decodeChange(t, d4, &Record{Key: []byte(`anything`)}); rerr != nil || op != OpDelete || strings.Join(got, "|") != "anything|"+null {
		t.Errorf("kafka.key key: %q, %s, %v", got, op, rerr)
	}

	// Without Deletes a tombstone is a row of NULLs.
	d5 := mustDecoder(t, FormatJSON, []Column{{Name: "id", Type: TypeInt8, Path: "id", Key: true}}, Options{})
	if got, op, rerr := decodeChange(t, d5, &Record{Key: []byte(`42`)}); rerr != nil || op != OpUpsert || got[0] != null {
		t.Errorf("tombstone without Deletes: %q, %s, %v", got, op, rerr)
	}
}

func TestChangeValidation(t *testing.T) {
	f := func(format Format, cols []Column, opts Options, want string) {
		t.Helper()
		_, err := NewDecoder(format, cols, opts)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewDecoder(%s, %v): %v, want an error with %q", format, cols, err, want)
		}
	}
	f(FormatJSON, []Column{{Name: "op", Type: TypeText, Source: SourceDebeziumOp}}, Options{}, "use format debezium")
	f(FormatRaw, []Column{{Name: "op", Type: TypeText, Source: SourceDebeziumSourceTable}}, Options{}, "use format debezium")
	f(FormatDebezium, []Column{{Name: "op", Type: TypeInt8, Source: SourceDebeziumOp}}, Options{}, "use type text")
	f(FormatDebezium, []Column{{Name: "lsn", Type: TypeText, Source: SourceDebeziumSourceLSN}}, Options{}, "use type int8 or numeric")
	f(FormatDebezium, []Column{{Name: "ts", Type: TypeDate, Source: SourceDebeziumTsMs}}, Options{}, "use type int8 or numeric or timestamptz or timestamp")
	f(FormatDebezium, []Column{{Name: "op", Type: TypeText, Source: SourceDebeziumOp, Path: "op"}}, Options{}, "reads one or the other")
	f(FormatDebezium, nil, Options{}, "without columns")
	f(FormatDebezium, []Column{{Name: "a", Type: TypeText, Path: "a.."}}, Options{}, "empty segment")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Path: "a"}}, Options{Deletes: true}, "no key column reads the record key")
	f(FormatJSON, []Column{{Name: "a", Type: TypeText, Path: "a"}, {Name: "o", Type: TypeInt8, Source: SourceOffset, Key: true}},
		Options{Deletes: true}, "no key column reads the record key")
	f(FormatRaw, nil, Options{Deletes: true}, "no key column reads the record key")

	for _, name := range []string{"debezium.op", "debezium.ts_ms", "debezium.source.ts_ms", "debezium.source.lsn", "debezium.source.db",
		"debezium.source.schema", "debezium.source.table", "debezium.transaction.id"} {
		s, err := ParseSource(name)
		if err != nil || s.String() != name {
			t.Errorf("ParseSource(%q) = %v, %v", name, s, err)
		}
	}
	if f, err := ParseFormat("debezium"); err != nil || f != FormatDebezium || f.String() != "debezium" {
		t.Errorf("ParseFormat(debezium) = %v, %v", f, err)
	}
	for op, name := range map[Op]string{OpUpsert: "upsert", OpDelete: "delete", OpTruncate: "truncate", OpSkip: "skip", 9: "invalid"} {
		if op.String() != name {
			t.Errorf("Op(%d).String() = %q, want %q", op, op.String(), name)
		}
	}
	// A debezium decoder without key columns rejects deletes, not upserts.
	d := mustDecoder(t, FormatDebezium, []Column{{Name: "a", Type: TypeText, Path: "a"}}, Options{})
	if _, _, rerr := decodeChange(t, d, &Record{Value: []byte(`{"op":"c","after":{"a":"x"}}`)}); rerr != nil {
		t.Error(rerr)
	}
	if _, _, rerr := decodeChange(t, d, &Record{Key: []byte(`{"a":"x"}`), Value: []byte(`{"op":"d","before":{"a":"x"}}`)}); rerr == nil || rerr.Reason != ReasonBadKey {
		t.Errorf("delete without key columns: %v", rerr)
	}
}

// TestDebeziumZeroAllocs asserts the steady state allocates nothing per
// record, for both envelope shapes, deletes and plain deletes.
func TestDebeziumZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	d := mustDecoder(t, FormatDebezium, referenceChangeColumns, Options{})
	deleteKey := &Record{Key: referenceChangeKey, Value: []byte(wrap(envelopeSchema(referenceRowFields), envelopeJSON("d", "null", "null")))}
	varDec := mustDecoder(t, FormatDebezium, []Column{
		{Name: "n", Type: TypeNumeric, Path: "n"}, {Name: "t", Type: TypeText, Path: "t"}, {Name: "ts", Type: TypeText, Path: "ts"},
		{Name: "j", Type: TypeJSONB, Path: "j"}, {Name: "big", Type: TypeFloat8, Path: "big"},
	}, Options{})
	varRec := &Record{Value: []byte(wrap(envelopeSchema(`{`+sVarDec+`,"field":"n"},{`+sMicroTime+`,"field":"t"},{`+sMicroTS+`,"field":"ts"},`+
		`{`+sJSON+`,"field":"j"},{`+sDecimal2+`,"field":"big"}`),
		envelopeJSON("c", "null", `{"n":{"scale":3,"value":"BNI="},"t":49500123456,"ts":1709214300123456,"j":"{\"a\":[1,2]}",`+
			`"big":`+q(decimal64("-"+big40))+`}`)))}
	plain := mustDecoder(t, FormatJSON, []Column{{Name: "id", Type: TypeUUID, Path: "event_id", Key: true}, {Name: "x", Type: TypeText, Path: "x"}}, Options{Deletes: true})
	plainRec := &Record{Key: []byte(`{"event_id":"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"}`)}
	dst := make([]byte, 0, 4096)
	for _, tc := range []struct {
		name string
		d    *Decoder
		rec  *Record
	}{
		{"bare", d, &Record{Value: referenceChangeBare}},
		{"wrapped", d, &Record{Key: referenceChangeKey, Value: referenceChangeWrapped}},
		{"delete from the key", d, deleteKey},
		{"tombstone", d, &Record{Key: referenceChangeKey}},
		{"encodings", varDec, varRec},
		{"plain delete", plain, plainRec},
	} {
		if _, err := tc.d.AppendFields(dst[:0], tc.rec); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		allocs := testing.AllocsPerRun(200, func() {
			var err error
			if dst, err = tc.d.AppendFields(dst[:0], tc.rec); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per record, want 0", tc.name, allocs)
		}
	}
}

// TestDebeziumKnownSchema checks the parse that skips a schema seen
// before: it accepts and rejects exactly what the full parse does.
func TestDebeziumKnownSchema(t *testing.T) {
	cols := []Column{{Name: "id", Type: TypeInt8, Path: "id", Key: true}, {Name: "v", Type: TypeJSONB, Source: SourceValue}}
	d := mustDecoder(t, FormatDebezium, cols, Options{MaxDepth: 8})
	schema := envelopeSchema(`{"type":"int64","field":"id"}`)
	poisoned := strings.Replace(schema, `"name":"event.block"`, `"name":"event.block\u0000"`, 1)
	f := func(value string, want Reason) {
		t.Helper()
		for i := range 3 { // compiles the plan, then takes the known schema
			_, _, rerr := decodeChange(t, d, &Record{Value: []byte(value)})
			var got Reason
			if rerr != nil {
				got = rerr.Reason
			}
			if got != want {
				t.Errorf("%.60s… (decode %d): got %v, want %q", value[len(value)-40:], i, rerr, want)
			}
		}
	}
	ok := wrap(schema, `{"op":"c","after":{"id":1}}`)
	f(ok, "")
	f(wrap(schema, `{"op":"c","after":{"id":1}}`)+" ", "")
	f(wrap(schema, ` {"op":"c","after":{"id":1}} `), "")
	f(wrap(schema, `{"op":"c","after":{"id":1}}`)+"x", ReasonMalformedJSON)
	f(wrap(schema, `{"op":"c","after":{"id":1}},"x":1`), "")
	f(wrap(schema, `{"op":"c","after":{"id":1}},"payload":null`), "")
	f(wrap(schema, `{"op":"c","after":{"id":1}}`)[:len(ok)-1], ReasonMalformedJSON)
	f(wrap(schema, `{"op":"c","after":{"id":[[[[[[[1]]]]]]]}}`), ReasonMalformedJSON)
	f(wrap(schema, `{"op":"c","after":{"id":[[[[[1]]]]]}}`), ReasonWrongType)
	f(wrap(schema, `null`), "")
	f(wrap(schema, `"x"`), ReasonBadEnvelope)
	f(wrap(schema, `{"op":"c","after":{"id":1,"x":"\u0000"}}`), ReasonInvalidValue)
	f(wrap(poisoned, `{"op":"c","after":{"id":1}}`), ReasonInvalidValue)
	f(ok, "")
	f(wrap(poisoned, `{"op":"c","after":{"id":1}}`), ReasonInvalidValue)
}

func TestDebeziumCompressedAndOversized(t *testing.T) {
	d := mustDecoder(t, FormatDebezium, referenceChangeColumns, Options{MaxRecordBytes: 8000})
	want, _, rerr := decodeChange(t, d, &Record{Value: referenceChangeWrapped})
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, enc := range []string{"zstd", "gzip", "lz4"} {
		got, op, rerr := decodeChange(t, d, &Record{Value: compressed(t, enc, referenceChangeWrapped),
			Headers: []Header{{Key: "content-encoding", Value: []byte(enc)}}})
		if rerr != nil || op != OpUpsert || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: %q, %s, %v", enc, got, op, rerr)
		}
	}
	_, _, rerr = decodeChange(t, d, &Record{Value: referenceChangeWrapped, Headers: []Header{{Key: "content-encoding", Value: []byte("br")}}})
	if rerr == nil || rerr.Reason != ReasonBadCompression {
		t.Errorf("unknown encoding: %v", rerr)
	}
	_, _, rerr = decodeChange(t, d, &Record{Value: []byte(envelopeJSON("c", "null", `{"url":"`+strings.Repeat("x", 8000)+`"}`))})
	if rerr == nil || rerr.Reason != ReasonOversized {
		t.Errorf("oversized: %v", rerr)
	}
}
