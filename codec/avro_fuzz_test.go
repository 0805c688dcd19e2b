package codec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
)

// kitchenSchema holds every Avro type and logical type, a recursive
// record and a multi-branch union.
const kitchenSchema = `{"type":"record","name":"K","namespace":"t","fields":[
	{"name":"b","type":"boolean"},
	{"name":"i","type":"int"},
	{"name":"l","type":"long"},
	{"name":"f","type":"float"},
	{"name":"d","type":"double"},
	{"name":"by","type":"bytes"},
	{"name":"s","type":"string"},
	{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
	{"name":"fx","type":{"type":"fixed","name":"F4","size":4}},
	{"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":4}},
	{"name":"fdec","type":{"type":"fixed","name":"F9","size":9,"logicalType":"decimal","precision":20,"scale":2}},
	{"name":"u","type":{"type":"string","logicalType":"uuid"}},
	{"name":"dt","type":{"type":"int","logicalType":"date"}},
	{"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
	{"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
	{"name":"tsm","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"tsn","type":{"type":"long","logicalType":"timestamp-nanos"}},
	{"name":"lts","type":{"type":"long","logicalType":"local-timestamp-micros"}},
	{"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
	{"name":"arr","type":{"type":"array","items":["null","string"]}},
	{"name":"m","type":{"type":"map","values":"long"}},
	{"name":"node","type":{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}},
	{"name":"un","type":["null","string","long","Node"]}
]}`

// kitchenColumns reads every field as its natural type, as text and as
// jsonb, and paths into the map and the recursive record.
func kitchenColumns() ([]Column, string) {
	natural := map[string]Type{"b": TypeBool, "i": TypeInt4, "l": TypeInt8, "f": TypeFloat4, "d": TypeFloat8,
		"by": TypeBytea, "s": TypeText, "e": TypeText, "fx": TypeBytea, "dec": TypeNumeric, "fdec": TypeNumeric,
		"u": TypeUUID, "dt": TypeDate, "tm": TypeInt4, "tu": TypeText, "tsm": TypeTimestamptz, "tsn": TypeTimestamptz,
		"lts": TypeTimestamp, "dur": TypeJSON, "arr": TypeJSON, "m": TypeJSONB, "node": TypeJSON, "un": TypeText}
	var cols []Column
	var ddl []string
	add := func(path string, typ Type) {
		name := fmt.Sprintf("c%d", len(cols))
		cols = append(cols, Column{Name: name, Type: typ, Path: path})
		ddl = append(ddl, name+" "+typ.String())
	}
	for _, f := range []string{"b", "i", "l", "f", "d", "by", "s", "e", "fx", "dec", "fdec", "u", "dt", "tm", "tu",
		"tsm", "tsn", "lts", "dur", "arr", "m", "node", "un"} {
		add(f, natural[f])
		add(f, TypeText)
		add(f, TypeJSONB)
	}
	add("m.k", TypeInt2)
	add("node.next.next.v", TypeNumeric)
	add("un.v", TypeFloat8)
	add("dec", TypeFloat4)
	add("s", TypeTimestamp)
	return cols, "(" + strings.Join(ddl, ", ") + ")"
}

// kitchenDatum is one valid datum of kitchenSchema.
var kitchenDatum = cat([]byte{1}, aL(-5), aL(1<<40), aF32(1.5), aF64(-0.25), aS("hi"), aS("2026-11-01T00:00:01.5Z"), aL(2),
	[]byte{1, 2, 3, 4}, aS("\x01\x00\x00"), []byte{0, 0, 0, 0, 0, 0, 0, 0x30, 0x39},
	aS("3f1c9a2e-8b4d-4c6e-9f2a-1b3c5d7e9f01"), aL(19782), aL(45296789), aL(45296789012), aL(tsMillis),
	aL(tsMillis*1e6+567891), aL(tsMillis*1000), duration,
	aL(-2), aL(4), aL(1), aS("x"), aL(0), aL(0), // array block with byte size: "x", null
	aL(2), aS("k"), aL(7), aS("j"), aL(8), aL(0),
	aL(1), aL(1), aL(2), aL(1), aL(3), aL(0), // node 1 → 2 → 3
	aL(3), aL(9), aL(0))

type avroFuzzDecoder struct {
	name  string
	table string
	dec   *Decoder
}

func avroFuzzDecoders(t testing.TB) []avroFuzzDecoder {
	kcols, ktable := kitchenColumns()
	k := mustDecoder(t, FormatAvro, kcols, Options{MaxDepth: 50, checkBlocks: true})
	if err := k.AddSchema(SchemaRef{ID: 1}, &Schema{Text: kitchenSchema}); err != nil {
		t.Fatal(err)
	}
	// Columns random payloads rarely fail, so that many tuples reach
	// PostgreSQL.
	var bcols []Column
	var bddl []string
	for _, c := range []struct {
		path string
		typ  Type
	}{{"b", TypeBool}, {"i", TypeInt4}, {"l", TypeInt8}, {"f", TypeFloat4}, {"d", TypeFloat8}, {"by", TypeBytea},
		{"s", TypeBytea}, {"e", TypeText}, {"fx", TypeBytea}, {"dec", TypeNumeric}, {"fdec", TypeNumeric}, {"fdec", TypeJSONB},
		{"dt", TypeDate}, {"tm", TypeInt4}, {"tu", TypeInt8}, {"tsm", TypeTimestamptz}, {"tsn", TypeTimestamptz},
		{"tsn", TypeTimestamp}, {"lts", TypeTimestamp}, {"dur", TypeJSONB}, {"dur", TypeText}, {"node", TypeJSONB},
		{"node.next.v", TypeNumeric}, {"dec", TypeFloat8}, {"d", TypeNumeric}, {"f", TypeJSONB}} {
		name := fmt.Sprintf("c%d", len(bcols))
		bcols = append(bcols, Column{Name: name, Type: c.typ, Path: c.path})
		bddl = append(bddl, name+" "+c.typ.String())
	}
	btable := "(" + strings.Join(bddl, ", ") + ")"
	kb := mustDecoder(t, FormatAvro, bcols, Options{})
	if err := kb.AddSchema(SchemaRef{ID: 1}, &Schema{Text: kitchenSchema}); err != nil {
		t.Fatal(err)
	}
	kj := mustDecoder(t, FormatAvro, kcols, Options{})
	if err := kj.AddSchema(SchemaRef{ID: 1}, &Schema{Text: kitchenSchema}); err != nil {
		t.Fatal(err)
	}
	return []avroFuzzDecoder{
		{"kitchen", ktable, k},
		{"reference", referenceTable, avroDecoder(t, referenceColumns, AvroReferenceSchema)},
		{"kitchen_jump", ktable, kj},
		{"kitchen_bin", btable, kb},
	}
}

var avroKnownReasons = map[Reason]bool{
	ReasonWrongType: true, ReasonOutOfRange: true, ReasonMissingRequired: true, ReasonInvalidUTF8: true,
	ReasonNULInText: true, ReasonInvalidValue: true, ReasonBadFraming: true, ReasonSchemaMismatch: true,
}

// checkAvroDecode decodes a payload written with schema id 1 and checks
// the framing contract; it returns the fields when the record was
// accepted and whether the payload matched the schema.
func checkAvroDecode(t testing.TB, fd avroFuzzDecoder, payload []byte) ([]byte, bool) {
	prefix := []byte("xyz")
	out, err := fd.dec.AppendFields(prefix, &Record{Value: append(AppendRegistryFraming(nil, 1), payload...)})
	if err != nil {
		var re *RowError
		if !errors.As(err, &re) || !avroKnownReasons[re.Reason] || re.Detail == "" {
			t.Fatalf("%s: bad error %#v", fd.name, err)
		}
		if string(out) != "xyz" {
			t.Fatalf("%s: buffer not restored after %v", fd.name, err)
		}
		return nil, re.Reason != ReasonSchemaMismatch
	}
	if string(out[:3]) != "xyz" {
		t.Fatalf("%s: prefix overwritten", fd.name)
	}
	if _, err := splitFields(out[3:], fd.dec.NumFields()); err != nil {
		t.Fatalf("%s: accepted with malformed fields: %v", fd.name, err)
	}
	return out[3:], true
}

// FuzzAvro decodes arbitrary payloads under the kitchen-sink and the
// reference schemas. A payload the decoder finds well-formed (walking every
// block item) must also be one hamba/avro can read; a decoder that jumps
// over blocks by their byte size accepts at least as much.
func FuzzAvro(f *testing.F) {
	f.Add(kitchenDatum)
	f.Add(referenceAvroValue[5:])
	f.Add(kitchenDatum[:len(kitchenDatum)-1])
	decs := avroFuzzDecoders(f)
	schemas := []avro.Schema{avro.MustParse(kitchenSchema), avro.MustParse(AvroReferenceSchema)}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var matched [4]bool
		for i, fd := range decs {
			_, matched[i] = checkAvroDecode(t, fd, payload)
			if matched[i] && i < len(schemas) {
				var v any
				if err := avro.Unmarshal(schemas[i], payload, &v); err != nil {
					t.Fatalf("%s: the codec reads %x as well-formed, hamba/avro does not: %v", fd.name, payload, err)
				}
			}
		}
		if matched[0] && !matched[2] {
			t.Fatalf("jumping over blocks rejects %x, walking them accepts it", payload)
		}
	})
}

// readAvroCorpus returns the inputs of testdata/fuzz/FuzzAvro.
func readAvroCorpus(t testing.TB) [][]byte {
	files, err := filepath.Glob("testdata/fuzz/FuzzAvro/*")
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
			t.Fatalf("%s: not a FuzzAvro corpus file", file)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		inputs = append(inputs, []byte(s))
	}
	return inputs
}

// TestAvroFuzzCorpusInPostgres replays the committed FuzzAvro corpus and
// the seeds, and COPYs every tuple the decoders accept into PostgreSQL,
// which must take them all.
func TestAvroFuzzCorpusInPostgres(t *testing.T) {
	inputs := append(readAvroCorpus(t), kitchenDatum, referenceAvroValue[5:])
	conn := pgConn(t)
	ctx := context.Background()
	for _, fd := range avroFuzzDecoders(t) {
		table := "avro_fuzz_" + fd.name
		mustExec(t, conn, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s %s", table, table,
			strings.Replace(fd.table, "primary key", "", 1)))
		var tuples []byte
		var accepted [][]byte
		for _, in := range inputs {
			if fields, _ := checkAvroDecode(t, fd, in); fields != nil {
				tuples = appendTuple(tuples, fd.dec.NumFields(), fields)
				accepted = append(accepted, in)
			}
		}
		if len(accepted) == 0 {
			t.Errorf("%s accepted no input", fd.name)
			continue
		}
		if err := copyTuples(ctx, conn, table, tuples); err == nil {
			t.Logf("%s: PostgreSQL accepted all %d tuples of %d inputs", fd.name, len(accepted), len(inputs))
			continue
		}
		for _, in := range accepted {
			fields, _ := checkAvroDecode(t, fd, in)
			if err := copyTuples(ctx, conn, table, appendTuple(nil, fd.dec.NumFields(), fields)); err != nil {
				t.Errorf("%s: PostgreSQL rejects the tuple we made from %x: %v", fd.name, in, err)
			}
		}
	}
}
