package codec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// everyTypeColumns reads one path per column type, so a fuzzed document
// can reach every encoder.
func everyTypeColumns() []Column {
	var cols []Column
	for _, name := range TypeNames() {
		typ, _ := ParseType(name)
		cols = append(cols, Column{Name: "c_" + name, Type: typ, Path: name})
	}
	return append(cols, Column{Name: "c_nested", Type: TypeText, Path: "jsonb.a"})
}

const everyTypeTable = `(c_text text, c_int2 int2, c_int4 int4, c_int8 int8, c_float4 float4, c_float8 float8,
	c_numeric numeric, c_bool bool, c_uuid uuid, c_timestamptz timestamptz, c_timestamp timestamp, c_date date,
	c_jsonb jsonb, c_json json, c_bytea bytea, c_nested text)`

// fuzzDecoders are the decoders the fuzz target and the corpus check run.
type fuzzDecoder struct {
	name  string
	table string
	dec   *Decoder
}

func fuzzDecoders(t testing.TB) []fuzzDecoder {
	return []fuzzDecoder{
		{"reference", referenceTable, mustDecoder(t, FormatJSON, referenceColumns, Options{})},
		{"value_jsonb", "(v jsonb)", mustDecoder(t, FormatJSON, []Column{{Name: "v", Type: TypeJSONB, Source: SourceValue}}, Options{})},
		{"value_json", "(v json)", mustDecoder(t, FormatJSON, []Column{{Name: "v", Type: TypeJSON, Source: SourceValue}}, Options{})},
		{"every_type", everyTypeTable, mustDecoder(t, FormatJSON, everyTypeColumns(), Options{})},
	}
}

var knownReasons = map[Reason]bool{
	ReasonMalformedJSON: true, ReasonWrongType: true, ReasonOutOfRange: true, ReasonMissingRequired: true,
	ReasonInvalidUTF8: true, ReasonNULInText: true, ReasonBadCompression: true, ReasonOversized: true, ReasonInvalidValue: true,
}

// checkDecode runs one decoder on value and checks the framing contract.
// It returns the fields when the record was accepted.
func checkDecode(t testing.TB, fd fuzzDecoder, value []byte) []byte {
	prefix := []byte("xyz")
	out, err := fd.dec.AppendFields(prefix, &Record{Value: value, Offset: 1})
	if err != nil {
		var re *RowError
		if !errors.As(err, &re) || !knownReasons[re.Reason] || re.Detail == "" {
			t.Fatalf("%s: bad error %#v", fd.name, err)
		}
		if string(out) != "xyz" {
			t.Fatalf("%s: buffer not restored after %v", fd.name, err)
		}
		return nil
	}
	if string(out[:3]) != "xyz" {
		t.Fatalf("%s: prefix overwritten", fd.name)
	}
	if _, err := splitFields(out[3:], fd.dec.NumFields()); err != nil {
		t.Fatalf("%s: accepted with malformed fields: %v", fd.name, err)
	}
	return out[3:]
}

func FuzzDecode(f *testing.F) {
	f.Add(referenceEvent)
	f.Add([]byte(`{"text":"a\u00e9","int2":1,"int4":"2","int8":3e2,"float4":1.5,"float8":"NaN","numeric":-1.50e-3,` +
		`"bool":true,"uuid":"{A0EEBC999C0B4EF8BB6D6BB9BD380A11}","timestamptz":"2026-11-01T00:00:01.234567891+02:00",` +
		`"timestamp":1730419201234,"date":"2024-02-29","jsonb":{"a":[1,"\ud83d\ude00"]},"json":"\u0000","bytea":"aGk="}`))
	files, _ := filepath.Glob("testdata/json/*.json")
	for _, file := range files {
		if doc, err := os.ReadFile(file); err == nil && len(doc) < 4096 {
			f.Add(doc)
		}
	}
	decs := fuzzDecoders(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		var accepted [4]bool
		for i, fd := range decs {
			accepted[i] = checkDecode(t, fd, value) != nil
		}
		// jsonb is stricter than json, never the other way round.
		if accepted[1] && !accepted[2] {
			t.Fatalf("jsonb accepted a document json rejected")
		}
		// A path decoder parses the whole value: it only accepts documents
		// that are valid JSON.
		if (accepted[0] || accepted[3]) && !accepted[2] {
			t.Fatalf("a path decoder accepted invalid JSON")
		}
	})
}

// readFuzzCorpus returns the []byte inputs of testdata/fuzz/FuzzDecode.
func readFuzzCorpus(t testing.TB) [][]byte {
	files, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil {
		t.Fatal(err)
	}
	var inputs [][]byte
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Fatalf("%s: not a FuzzDecode corpus file", file)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		inputs = append(inputs, []byte(s))
	}
	return inputs
}

// TestFuzzCorpusInPostgres replays the committed fuzz corpus (seeds,
// crashers and inputs the fuzzer found interesting) and COPYs every tuple
// the decoders accept into PostgreSQL, which must accept them all.
func TestFuzzCorpusInPostgres(t *testing.T) {
	inputs := readFuzzCorpus(t)
	if len(inputs) < 50 {
		t.Fatalf("only %d corpus inputs in testdata/fuzz/FuzzDecode", len(inputs))
	}
	conn := pgConn(t)
	ctx := context.Background()
	for _, fd := range fuzzDecoders(t) {
		table := "fuzz_" + fd.name
		mustExec(t, conn, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s %s", table, table,
			strings.Replace(fd.table, "primary key", "", 1)))
		var tuples []byte
		var accepted [][]byte
		for _, in := range inputs {
			if fields := checkDecode(t, fd, in); fields != nil {
				tuples = appendTuple(tuples, fd.dec.NumFields(), fields)
				accepted = append(accepted, in)
			}
		}
		if len(accepted) == 0 {
			t.Errorf("%s accepted no corpus input", fd.name)
			continue
		}
		if err := copyTuples(ctx, conn, table, tuples); err == nil {
			t.Logf("%s: PostgreSQL accepted all %d tuples", fd.name, len(accepted))
			continue
		}
		// Find the culprits one by one.
		for _, in := range accepted {
			fields := checkDecode(t, fd, in)
			if err := copyTuples(ctx, conn, table, appendTuple(nil, fd.dec.NumFields(), fields)); err != nil {
				t.Errorf("%s: PostgreSQL rejects the tuple we made from %q: %v", fd.name, in, err)
			}
		}
	}
}

// fuzzPG is one connection per fuzz worker process, with the fuzz tables.
var fuzzPG struct {
	once sync.Once
	conn *pgx.Conn
}

// FuzzDecodePostgres is FuzzDecode with PostgreSQL as the oracle: every
// tuple a decoder accepts must COPY. Slower (a round trip per input), so it
// is a separate target: go test -fuzz FuzzDecodePostgres ./codec/.
func FuzzDecodePostgres(f *testing.F) {
	for _, in := range readFuzzCorpus(f) {
		f.Add(in)
	}
	decs := fuzzDecoders(f)
	f.Fuzz(func(t *testing.T, value []byte) {
		fuzzPG.once.Do(func() {
			fuzzPG.conn = pgConn(noCleanup{t})
			for _, fd := range decs {
				mustExec(t, fuzzPG.conn, fmt.Sprintf("DROP TABLE IF EXISTS fuzzpg_%s; CREATE UNLOGGED TABLE fuzzpg_%s %s",
					fd.name, fd.name, strings.Replace(fd.table, "primary key", "", 1)))
			}
		})
		if fuzzPG.conn == nil {
			t.Fatal("no PostgreSQL connection")
		}
		for _, fd := range decs {
			fields := checkDecode(t, fd, value)
			if fields == nil {
				continue
			}
			err := copyTuples(context.Background(), fuzzPG.conn, "fuzzpg_"+fd.name, appendTuple(nil, fd.dec.NumFields(), fields))
			if err != nil {
				t.Fatalf("%s: PostgreSQL rejects the tuple we made from %q: %v", fd.name, value, err)
			}
		}
	})
}

// noCleanup lets a connection outlive the test that opened it.
type noCleanup struct{ testing.TB }

func (noCleanup) Cleanup(func()) {}
