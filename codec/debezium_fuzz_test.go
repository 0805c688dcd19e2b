package codec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var changeReasons = map[Reason]bool{ReasonBadEnvelope: true, ReasonBadKey: true}

// checkChange runs one decoder on rec and checks the contract: a
// *RowError with a known reason and the buffer restored, or fields for
// upserts and deletes and nothing for the other ops, Unchanged naming only
// NULL fields, and the same result when the record is decoded again.
func checkChange(t *testing.T, name string, d *Decoder, rec *Record) {
	prefix := []byte("xyz")
	out, err := d.AppendFields(prefix, rec)
	if err != nil {
		var re *RowError
		if !errors.As(err, &re) || !(knownReasons[re.Reason] || changeReasons[re.Reason]) || re.Detail == "" {
			t.Fatalf("%s: bad error %#v", name, err)
		}
		if string(out) != "xyz" {
			t.Fatalf("%s: buffer not restored after %v", name, err)
		}
		if d.Op() != OpUpsert || d.Unchanged() != nil {
			t.Fatalf("%s: after %v Op is %s and Unchanged %v", name, err, d.Op(), d.Unchanged())
		}
		if _, err2 := d.AppendFields(nil, rec); err2 == nil || err2.Error() != err.Error() {
			t.Fatalf("%s: decoding again gives %v, first %v", name, err2, err)
		}
		return
	}
	if string(out[:3]) != "xyz" {
		t.Fatalf("%s: prefix overwritten", name)
	}
	op := d.Op()
	var fields [][]byte
	switch op {
	case OpUpsert, OpDelete:
		if fields, err = splitFields(out[3:], d.NumFields()); err != nil {
			t.Fatalf("%s: accepted with malformed fields: %v", name, err)
		}
	case OpSkip, OpTruncate:
		if len(out) != 3 {
			t.Fatalf("%s: op %s appended %d bytes", name, op, len(out)-3)
		}
	default:
		t.Fatalf("%s: op %d", name, op)
	}
	unchanged := append(ColumnSet(nil), d.Unchanged()...)
	for i := range unchanged.All() {
		if op != OpUpsert || fields[i] != nil {
			t.Fatalf("%s: column %d unchanged in a %s with field %x", name, i, op, fields[i])
		}
	}
	again, err := d.AppendFields(nil, rec)
	if err != nil || !bytes.Equal(again, out[3:]) || d.Op() != op || d.Unchanged().Len() != unchanged.Len() {
		t.Fatalf("%s: decoding again gives %v, op %s, a different tuple or Unchanged", name, err, d.Op())
	}
}

func debeziumEveryTypeColumns() []Column {
	cols := everyTypeColumns()
	for i := range cols {
		if cols[i].Name == "c_int8" || cols[i].Name == "c_text" {
			cols[i].Key = true
		}
	}
	return append(cols,
		Column{Name: "c_op", Type: TypeText, Source: SourceDebeziumOp},
		Column{Name: "c_ts", Type: TypeTimestamptz, Source: SourceDebeziumSourceTsMs},
		Column{Name: "c_lsn", Type: TypeNumeric, Source: SourceDebeziumSourceLSN})
}

// debeziumSeeds returns the seed inputs of FuzzDebezium: (key, value)
// pairs covering every op, both shapes and every encoding.
func debeziumSeeds() [][2][]byte {
	var seeds [][2][]byte
	add := func(key, value []byte) { seeds = append(seeds, [2][]byte{key, value}) }
	add([]byte(nil), referenceChangeBare)
	add(referenceChangeKey, referenceChangeWrapped)
	add(referenceChangeKey, []byte(wrap(envelopeSchema(referenceRowFields), envelopeJSON("d", "null", "null"))))
	add([]byte(`{"id":1}`), []byte(envelopeJSON("d", `{"id":1}`, "null")))
	add([]byte(`7`), []byte(`{"op":"d"}`))
	add([]byte(`{"k":{"a":[1,"\u00e9"]}}`), []byte(`{"op":"d","before":null}`))
	add([]byte(`"k"`), []byte(`{"op":"c","after":{"k":"{\"a\":1}","v":"x"}}`))
	add([]byte(`{"int8":"42","text":"x"}`), []byte(`{"op":"d","before":{"int8":42,"text":"x"}}`))
	add([]byte(`{"text":"\u00e9","int8":1e3,"other":[1]}`), []byte(`{"op":"d","before":null}`))
	add([]byte(`{"id":1}`), []byte(`{"schema":null,"payload":null}`))
	add([]byte(nil), []byte(`{"op":"t","source":`+pgSource+`}`))
	add([]byte(nil), []byte(`{"op":"m","message":{"prefix":"p","content":"aGk="}}`))
	add([]byte(`{"int8":1,"text":"a"}`), []byte(`{"op":"u","before":{"int8":1},"after":{"text":"__debezium_unavailable_value","bytea":"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ==",`+
		`"numeric":{"scale":2,"value":"BNI="},"date":19782,"jsonb":"{\"a\":1}","timestamptz":1709214300123456}}`))
	every := `{"type":"string","field":"text"},{"type":"int16","field":"int2"},{"type":"int32","field":"int4"},{"type":"int64","field":"int8"},` +
		`{` + sDecimal2 + `,"field":"float4"},{` + sVarDec + `,"field":"float8"},{` + sDecimal10 + `,"field":"numeric"},{"type":"boolean","field":"bool"},` +
		`{` + sUUID + `,"field":"uuid"},{` + sMicroTS + `,"field":"timestamptz"},{` + sNanoTS + `,"field":"timestamp"},{` + sDate + `,"field":"date"},` +
		`{` + sJSON + `,"field":"jsonb"},{` + sJSON + `,"field":"json"},{"type":"bytes","field":"bytea"}`
	add([]byte(`{"payload":{"int8":1,"text":"k"}}`), []byte(wrap(envelopeSchema(every), envelopeJSON("c", "null",
		`{"text":"a","int2":1,"int4":2,"int8":3,"float4":"BNI=","float8":{"scale":1,"value":"AQ=="},"numeric":`+q(decimal64("-"+big40))+`,`+
			`"bool":true,"uuid":"3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01","timestamptz":1709214300123456,"timestamp":1709214300123456789,`+
			`"date":-1,"jsonb":"[1,{}]","json":"null","bytea":"aGk="}`))))
	add([]byte(`{"int8":3,"text":"k"}`), []byte(wrap(envelopeSchema(every), envelopeJSON("d", "null", "null"))))
	for i, tc := range dbzTypeCases {
		if len(tc.json) < 200 && i%3 == 0 {
			add([]byte(nil), dbzCaseEvent(tc))
		}
	}
	return seeds
}

func FuzzDebezium(f *testing.F) {
	for _, s := range debeziumSeeds() {
		f.Add(s[0], s[1])
	}
	decs := changeDecoders(f)
	f.Fuzz(func(t *testing.T, key, value []byte) {
		for _, cd := range decs {
			rec := &Record{Key: key, Value: value, Offset: 1}
			if cd.tombstone {
				rec.Value = nil
			}
			checkChange(t, cd.name, cd.d, rec)
		}
	})
}

// changeDecoder is a decoder FuzzDebezium runs, with its table.
type changeDecoder struct {
	name      string
	table     string
	d         *Decoder
	tombstone bool // decode the key alone
}

func changeDecoders(t testing.TB) []changeDecoder {
	plainCols := debeziumEveryTypeColumns()[:len(everyTypeColumns())]
	jsonKeyCols := []Column{{Name: "k", Type: TypeJSONB, Path: "k", Key: true}, {Name: "v", Type: TypeText, Path: "v"}}
	return []changeDecoder{
		{"reference", referenceChangeTable, mustDecoder(t, FormatDebezium, referenceChangeColumns, Options{}), false},
		{"every_type", strings.TrimSuffix(everyTypeTable, ")") + ", c_op text, c_ts timestamptz, c_lsn numeric)",
			mustDecoder(t, FormatDebezium, debeziumEveryTypeColumns(), Options{}), false},
		{"plain_delete", everyTypeTable, mustDecoder(t, FormatJSON, plainCols, Options{Deletes: true}), true},
		{"plain_value", everyTypeTable, mustDecoder(t, FormatJSON, plainCols, Options{Deletes: true}), false},
		{"json_key_delete", "(k jsonb, v text)", mustDecoder(t, FormatJSON, jsonKeyCols, Options{Deletes: true}), true},
		{"json_key_debezium", "(k jsonb, v text)", mustDecoder(t, FormatDebezium, jsonKeyCols, Options{}), false},
	}
}

// readDebeziumCorpus returns the committed inputs of FuzzDebezium.
func readDebeziumCorpus(t testing.TB) [][2][]byte {
	files, err := filepath.Glob("testdata/fuzz/FuzzDebezium/*")
	if err != nil {
		t.Fatal(err)
	}
	var inputs [][2][]byte
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a FuzzDebezium corpus file", file)
		}
		var in [2][]byte
		for i, line := range lines[1:] {
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")"))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			in[i] = []byte(s)
		}
		inputs = append(inputs, in)
	}
	return inputs
}

// TestDebeziumCorpusInPostgres replays the seeds and the committed corpus
// of FuzzDebezium and COPYs every tuple the decoders accept into
// PostgreSQL, which must accept them all.
func TestDebeziumCorpusInPostgres(t *testing.T) {
	inputs := append(debeziumSeeds(), readDebeziumCorpus(t)...)
	conn := pgConn(t)
	ctx := context.Background()
	for _, cd := range changeDecoders(t) {
		table := "dbz_fuzz_" + cd.name
		mustExec(t, conn, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s %s", table, table,
			strings.Replace(cd.table, "primary key", "", 1)))
		var tuples []byte
		var accepted [][]byte
		for _, in := range inputs {
			rec := &Record{Key: in[0], Value: in[1]}
			if cd.tombstone {
				rec.Value = nil
			}
			out, err := cd.d.AppendFields(nil, rec)
			if err != nil || (cd.d.Op() != OpUpsert && cd.d.Op() != OpDelete) {
				continue
			}
			tuples = appendTuple(tuples, cd.d.NumFields(), out)
			accepted = append(accepted, out)
		}
		if len(accepted) < 3 {
			t.Errorf("%s accepted only %d inputs", cd.name, len(accepted))
			continue
		}
		if err := copyTuples(ctx, conn, table, tuples); err == nil {
			t.Logf("%s: PostgreSQL accepted all %d tuples", cd.name, len(accepted))
			continue
		}
		for i, out := range accepted {
			if err := copyTuples(ctx, conn, table, appendTuple(nil, cd.d.NumFields(), out)); err != nil {
				t.Errorf("%s: PostgreSQL rejects tuple %d: %v", cd.name, i, err)
			}
		}
	}
}
