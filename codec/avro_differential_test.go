package codec

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
)

// gType is a randomly generated Avro type: it writes its schema (with or
// without logical types), generates values hamba/avro can encode, and
// says what PostgreSQL should hold for them.
type gType struct {
	kind      string // Avro type name: null, boolean, ..., record, enum, array, map, union, fixed
	logical   string
	name      string
	fields    []gField
	symbols   []string
	items     *gType
	branches  []*gType
	size      int
	precision int
	scale     int
}

type gField struct {
	name string
	t    *gType
}

type gen struct {
	r     *rand.Rand
	names int
}

func (g *gen) newName(prefix string) string {
	g.names++
	return fmt.Sprintf("%s%d", prefix, g.names)
}

func (g *gen) typ(depth int) *gType {
	r := g.r
	n := 22
	if depth >= 3 {
		n = 18 // no more complex types
	}
	switch r.IntN(n) {
	case 0:
		return &gType{kind: "boolean"}
	case 1:
		return &gType{kind: "int"}
	case 2:
		return &gType{kind: "long"}
	case 3:
		return &gType{kind: "float"}
	case 4:
		return &gType{kind: "double"}
	case 5:
		return &gType{kind: "bytes"}
	case 6, 7:
		return &gType{kind: "string"}
	case 8:
		return &gType{kind: "fixed", name: g.newName("F"), size: r.IntN(20)}
	case 9:
		t := &gType{kind: "enum", name: g.newName("E")}
		for i := range 1 + r.IntN(5) {
			t.symbols = append(t.symbols, fmt.Sprintf("S%d", i))
		}
		return t
	case 10:
		p := 1 + r.IntN(40)
		return &gType{kind: "bytes", logical: "decimal", precision: p, scale: r.IntN(p + 1)}
	case 11:
		size := 1 + r.IntN(16)
		maxPrec := int(math.Floor(math.Log10(2) * float64(8*size-1)))
		if maxPrec < 1 {
			size, maxPrec = 2, 4
		}
		p := 1 + r.IntN(maxPrec)
		return &gType{kind: "fixed", name: g.newName("D"), size: size, logical: "decimal", precision: p, scale: r.IntN(p + 1)}
	case 12:
		return &gType{kind: "string", logical: "uuid"}
	case 13:
		return &gType{kind: "int", logical: []string{"date", "time-millis"}[r.IntN(2)]}
	case 14:
		return &gType{kind: "long", logical: []string{"time-micros", "timestamp-millis", "timestamp-micros", "timestamp-nanos"}[r.IntN(4)]}
	case 15:
		return &gType{kind: "long", logical: []string{"local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos"}[r.IntN(3)]}
	case 16:
		return &gType{kind: "fixed", name: g.newName("Dur"), size: 12, logical: "duration"}
	case 17:
		return &gType{kind: "fixed", name: g.newName("U"), size: 16, logical: "uuid"}
	case 18:
		return g.record(depth + 1)
	case 19:
		return &gType{kind: "array", items: g.typ(depth + 1)}
	case 20:
		return &gType{kind: "map", items: g.typ(depth + 1)}
	}
	// A union: usually ["null", T], sometimes several branches.
	u := &gType{kind: "union"}
	if r.IntN(3) > 0 {
		u.branches = []*gType{{kind: "null"}, g.typ(depth + 1)}
		if r.IntN(4) == 0 {
			u.branches[0], u.branches[1] = u.branches[1], u.branches[0]
		}
		if u.branches[0].kind != "union" && u.branches[1].kind != "union" {
			return u
		}
		u.branches = nil
	}
	seen := map[string]bool{}
	for range 2 + r.IntN(3) {
		b := g.typ(depth + 1)
		key := b.kind
		if b.name != "" {
			key = b.name
		}
		if b.kind == "union" || seen[key] {
			continue
		}
		seen[key] = true
		u.branches = append(u.branches, b)
	}
	if len(u.branches) == 0 {
		u.branches = []*gType{{kind: "null"}}
	}
	return u
}

func (g *gen) record(depth int) *gType {
	t := &gType{kind: "record", name: g.newName("R")}
	for i := range 1 + g.r.IntN(6) {
		t.fields = append(t.fields, gField{name: fmt.Sprintf("f%d", i), t: g.typ(depth)})
	}
	return t
}

// schema returns t's schema as JSON-ready values. hamba/avro lacks some
// logical types, so it gets the underlying types, which encode the same.
func (t *gType) schema(logical bool) any {
	switch t.kind {
	case "union":
		var bs []any
		for _, b := range t.branches {
			bs = append(bs, b.schema(logical))
		}
		return bs
	case "record":
		var fs []any
		for _, f := range t.fields {
			fs = append(fs, map[string]any{"name": f.name, "type": f.t.schema(logical)})
		}
		return map[string]any{"type": "record", "name": t.name, "fields": fs}
	case "enum":
		return map[string]any{"type": "enum", "name": t.name, "symbols": t.symbols}
	case "array":
		return map[string]any{"type": "array", "items": t.items.schema(logical)}
	case "map":
		return map[string]any{"type": "map", "values": t.items.schema(logical)}
	}
	m := map[string]any{"type": t.kind}
	if t.kind == "fixed" {
		m["name"] = t.name
		m["size"] = t.size
	}
	if logical && t.logical != "" {
		m["logicalType"] = t.logical
		if t.logical == "decimal" {
			m["precision"] = t.precision
			m["scale"] = t.scale
		}
	}
	return m
}

func (g *gen) str() string {
	const alphabet = "abcXYZ019 _-\"\\/\n\t\x01\x1féü€😀{}[],:"
	runes := []rune(alphabet)
	var b strings.Builder
	n := g.r.IntN(12)
	if g.r.IntN(8) == 0 {
		n = 40 + g.r.IntN(120) // past 63 bytes the length takes two bytes
	}
	for range n {
		b.WriteRune(runes[g.r.IntN(len(runes))])
	}
	return b.String()
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.IntN(256))
	}
	return b
}

// randInt returns an int64 of random magnitude within [lo, hi].
func (g *gen) randInt(lo, hi int64) int64 {
	for {
		bits := g.r.IntN(64)
		v := int64(g.r.Uint64() >> (63 - bits))
		if g.r.IntN(2) == 0 {
			v = -v
		}
		if v >= lo && v <= hi {
			return v
		}
	}
}

// value generates a value of t in the form hamba/avro encodes for the
// schema without logical types.
func (g *gen) value(t *gType) any {
	r := g.r
	switch t.kind {
	case "null":
		return nil
	case "boolean":
		return r.IntN(2) == 1
	case "int":
		switch t.logical {
		case "date":
			return int32(g.randInt(-719162, 2932896)) // years 0001 to 9999
		case "time-millis":
			return int32(r.IntN(86400001))
		}
		return int32(g.randInt(math.MinInt32, math.MaxInt32))
	case "long":
		switch t.logical {
		case "time-micros":
			return r.Int64N(86400e6 + 1)
		case "timestamp-millis", "local-timestamp-millis":
			return g.randInt(-62135596800000, 253402300799999)
		case "timestamp-micros", "local-timestamp-micros":
			return g.randInt(-62135596800000000, 253402300799999999)
		}
		if x := g.randInt(math.MinInt64, math.MaxInt64); x%1000 != 500 && x%1000 != -500 {
			return x // nanoseconds: no tie at the microsecond, which jsonValue would round differently
		}
		return int64(0)
	case "float":
		if r.IntN(3) == 0 {
			return math.Float32frombits(r.Uint32())
		}
		return float32(g.randInt(-1e6, 1e6)) / float32(1+r.IntN(1000))
	case "double":
		if r.IntN(3) == 0 {
			return math.Float64frombits(r.Uint64())
		}
		return float64(g.randInt(-1e12, 1e12)) / float64(1+r.IntN(100000))
	case "bytes":
		if t.logical == "decimal" {
			return decimalBytes(g.decimal(t), 0)
		}
		if r.IntN(8) == 0 {
			return g.bytes(60 + r.IntN(100))
		}
		return g.bytes(r.IntN(10))
	case "string":
		if t.logical == "uuid" {
			u := hex.EncodeToString(g.bytes(16))
			return u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
		}
		return g.str()
	case "fixed":
		var b []byte
		switch t.logical {
		case "decimal":
			b = decimalBytes(g.decimal(t), t.size)
		case "duration":
			b = g.bytes(12)
		default:
			b = g.bytes(t.size)
		}
		v := reflect.New(reflect.ArrayOf(t.size, reflect.TypeFor[byte]())).Elem()
		reflect.Copy(v, reflect.ValueOf(b))
		return v.Interface()
	case "enum":
		return t.symbols[r.IntN(len(t.symbols))]
	case "array":
		var items []any
		for range r.IntN(5) {
			items = append(items, g.value(t.items))
		}
		return items
	case "map":
		m := map[string]any{}
		for range r.IntN(4) {
			m[g.str()] = g.value(t.items)
		}
		return m
	case "record":
		m := map[string]any{}
		for _, f := range t.fields {
			m[f.name] = g.value(f.t)
		}
		return m
	case "union":
		b := t.branches[r.IntN(len(t.branches))]
		if b.kind == "null" {
			return map[string]any(nil)
		}
		name := b.kind
		if b.name != "" {
			name = b.name
		}
		return map[string]any{name: g.value(b)}
	}
	panic(t.kind)
}

// decimal returns a random unscaled value with at most t.precision digits.
func (g *gen) decimal(t *gType) *big.Int {
	digits := g.r.IntN(t.precision + 1)
	v := new(big.Int)
	for range digits {
		v.Mul(v, big.NewInt(10))
		v.Add(v, big.NewInt(int64(g.r.IntN(10))))
	}
	if g.r.IntN(2) == 0 {
		v.Neg(v)
	}
	return v
}

// decimalBytes encodes v in big-endian two's complement, in size bytes
// (0: as few as possible).
func decimalBytes(v *big.Int, size int) []byte {
	n := (v.BitLen() + 8) / 8 // room for the sign bit
	if size == 0 {
		size = n
	}
	mod := new(big.Int).Lsh(big.NewInt(1), uint(8*size))
	u := new(big.Int).Set(v)
	if u.Sign() < 0 {
		u.Add(u, mod)
	}
	return u.FillBytes(make([]byte, size))
}

func decimalFromBytes(b []byte) *big.Int {
	v := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return v
}

func decimalText(b []byte, scale int) string {
	return new(big.Rat).SetFrac(decimalFromBytes(b), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)).FloatString(scale)
}

func fixedBytes(v any) []byte {
	rv := reflect.ValueOf(v)
	b := make([]byte, rv.Len())
	reflect.Copy(reflect.ValueOf(b), rv)
	return b
}

// unionValue returns the branch a union value takes and its value.
func unionValue(t *gType, v any) (*gType, any) {
	m := v.(map[string]any)
	for _, b := range t.branches {
		name := b.kind
		if b.name != "" {
			name = b.name
		}
		if bv, ok := m[name]; ok {
			return b, bv
		}
	}
	return &gType{kind: "null"}, nil
}

// column picks the column type a value of t lands in, and how PostgreSQL
// compares the stored value v with the expected text e.
func (t *gType) column() (Type, string) {
	switch t.kind {
	case "boolean":
		return TypeBool, "v IS NOT DISTINCT FROM e::bool"
	case "int":
		switch t.logical {
		case "date":
			return TypeDate, "v IS NOT DISTINCT FROM e::date"
		case "time-millis":
			return TypeText, "v::time IS NOT DISTINCT FROM e::time"
		}
		return TypeInt4, "v IS NOT DISTINCT FROM e::int4"
	case "long":
		switch t.logical {
		case "time-micros":
			return TypeText, "v::time IS NOT DISTINCT FROM e::time"
		case "timestamp-millis", "timestamp-micros", "timestamp-nanos":
			return TypeTimestamptz, "v IS NOT DISTINCT FROM e::timestamptz"
		case "local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos":
			return TypeTimestamp, "v IS NOT DISTINCT FROM e::timestamp"
		}
		return TypeInt8, "v IS NOT DISTINCT FROM e::int8"
	case "float":
		return TypeFloat4, "v IS NOT DISTINCT FROM e::float4"
	case "double":
		return TypeFloat8, "v IS NOT DISTINCT FROM e::float8"
	case "string":
		if t.logical == "uuid" {
			return TypeUUID, "v IS NOT DISTINCT FROM e::uuid"
		}
		return TypeText, "v IS NOT DISTINCT FROM e"
	case "bytes", "fixed":
		switch t.logical {
		case "decimal":
			return TypeNumeric, "v::text IS NOT DISTINCT FROM e"
		case "uuid":
			return TypeUUID, "v IS NOT DISTINCT FROM e::uuid"
		case "duration":
			return TypeJSONB, "v IS NOT DISTINCT FROM e::jsonb"
		}
		return TypeBytea, "v IS NOT DISTINCT FROM decode(e, 'hex')"
	case "enum":
		return TypeText, "v IS NOT DISTINCT FROM e"
	case "union":
		if len(t.branches) == 2 && (t.branches[0].kind == "null" || t.branches[1].kind == "null") {
			b := t.branches[0]
			if b.kind == "null" {
				b = t.branches[1]
			}
			return b.column()
		}
	}
	return TypeJSONB, "v IS NOT DISTINCT FROM e::jsonb"
}

// expect returns the text PostgreSQL compares the stored value with (nil
// for SQL NULL) when v lands in t's column.
func (t *gType) expect(v any) *string {
	s := func(x string) *string { return &x }
	col, _ := t.column()
	if t.kind == "union" {
		b, bv := unionValue(t, v)
		if b.kind == "null" {
			return nil
		}
		if col != TypeJSONB || b.kind == "record" || b.kind == "array" || b.kind == "map" || b.logical == "duration" {
			return b.expect(bv)
		}
		j, _ := json.Marshal(b.jsonValue(bv))
		return s(string(j))
	}
	switch t.kind {
	case "boolean":
		return s(strconv.FormatBool(v.(bool)))
	case "int":
		x := int64(v.(int32))
		switch t.logical {
		case "date":
			return s(time.Unix(x*86400, 0).UTC().Format("2006-01-02"))
		case "time-millis":
			return s(timeOfDay(x * 1000))
		}
		return s(strconv.FormatInt(x, 10))
	case "long":
		x := v.(int64)
		switch t.logical {
		case "time-micros":
			return s(timeOfDay(x))
		case "timestamp-millis", "local-timestamp-millis":
			return s(time.UnixMilli(x).UTC().Format("2006-01-02T15:04:05.999999999"))
		case "timestamp-micros", "local-timestamp-micros":
			return s(time.UnixMicro(x).UTC().Format("2006-01-02T15:04:05.999999999"))
		case "timestamp-nanos", "local-timestamp-nanos":
			// PostgreSQL rounds the nine fraction digits itself.
			return s(time.Unix(0, x).UTC().Format("2006-01-02T15:04:05.999999999"))
		}
		return s(strconv.FormatInt(x, 10))
	case "float":
		return s(pgFloatLiteral(float64(v.(float32)), 32))
	case "double":
		return s(pgFloatLiteral(v.(float64), 64))
	case "string":
		return s(v.(string))
	case "bytes", "fixed":
		var b []byte
		if t.kind == "bytes" {
			b = v.([]byte)
		} else {
			b = fixedBytes(v)
		}
		switch t.logical {
		case "decimal":
			return s(decimalText(b, t.scale))
		case "uuid":
			return s(hex.EncodeToString(b))
		case "duration":
			j, _ := json.Marshal(t.jsonValue(v))
			return s(string(j))
		}
		return s(hex.EncodeToString(b))
	case "enum":
		return s(v.(string))
	}
	j, err := json.Marshal(t.jsonValue(v))
	if err != nil {
		panic(err)
	}
	return s(string(j))
}

func timeOfDay(us int64) string {
	return fmt.Sprintf("%02d:%02d:%02d.%06d", us/3600e6, us/60e6%60, us/1e6%60, us%1e6)
}

func pgFloatLiteral(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}

// jsonValue returns v as encoding/json should render it: logical types
// in their text forms, bytes in base64, NaN and infinities as strings.
func (t *gType) jsonValue(v any) any {
	switch t.kind {
	case "union":
		b, bv := unionValue(t, v)
		return b.jsonValue(bv)
	case "null":
		return nil
	case "int", "long":
		switch t.logical {
		case "":
			return v
		case "timestamp-millis", "timestamp-micros", "timestamp-nanos",
			"local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos":
			var ts time.Time
			switch x := v.(int64); {
			case strings.HasSuffix(t.logical, "millis"):
				ts = time.UnixMilli(x)
			case strings.HasSuffix(t.logical, "micros"):
				ts = time.UnixMicro(x)
			default:
				ts = time.Unix(0, x).Round(time.Microsecond) // the generator avoids ties
			}
			text := ts.UTC().Format("2006-01-02T15:04:05.999999")
			if !strings.HasPrefix(t.logical, "local") {
				text += "Z"
			}
			return text
		case "time-millis", "time-micros":
			return strings.TrimRight(strings.TrimRight(*t.expect(v), "0"), ".")
		}
		return *t.expect(v)
	case "float", "double":
		f := reflect.ValueOf(v).Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return pgFloatLiteral(f, 64)
		}
		if t.kind == "float" {
			return json.Number(strconv.FormatFloat(f, 'g', -1, 32))
		}
		return v
	case "boolean", "string", "enum":
		return v
	case "bytes", "fixed":
		var b []byte
		if t.kind == "bytes" {
			b = v.([]byte)
		} else {
			b = fixedBytes(v)
		}
		switch t.logical {
		case "decimal":
			return json.Number(decimalText(b, t.scale))
		case "uuid":
			u := hex.EncodeToString(b)
			return u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
		case "duration":
			le := func(i int) uint32 { return uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24 }
			return map[string]any{"months": le(0), "days": le(4), "milliseconds": le(8)}
		}
		return b
	case "array":
		out := []any{}
		for _, x := range v.([]any) {
			out = append(out, t.items.jsonValue(x))
		}
		return out
	case "map":
		out := map[string]any{}
		for k, x := range v.(map[string]any) {
			out[k] = t.items.jsonValue(x)
		}
		return out
	case "record":
		out := map[string]any{}
		m := v.(map[string]any)
		for _, f := range t.fields {
			out[f.name] = f.t.jsonValue(m[f.name])
		}
		return out
	}
	panic(t.kind)
}

// TestAvroDifferential encodes random datums of random schemas with
// hamba/avro, decodes them with the codec into a column per field (and
// per first field of a nested record), lands them in PostgreSQL and
// compares every value with what the generator says it should be.
func TestAvroDifferential(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	g := &gen{r: rand.New(rand.NewPCG(7, 11))}
	schemas, datums := 150, 12
	if testing.Short() {
		schemas = 30
	}
	compared := 0
	for si := range schemas {
		root := g.record(0)
		full, _ := json.Marshal(root.schema(true))
		plain, _ := json.Marshal(root.schema(false))
		hs, err := avro.Parse(string(plain))
		if err != nil {
			t.Fatalf("hamba cannot parse %s: %v", plain, err)
		}
		api := avro.Config{BlockLength: 1 + g.r.IntN(3), DisableBlockSizeHeader: g.r.IntN(2) == 0}.Freeze()

		// One column per field, and per first field of a nested record.
		type target struct {
			path   []string
			t      *gType
			compar string
		}
		var targets []target
		var cols []Column
		var ddl []string
		for _, f := range root.fields {
			typ, cmp := f.t.column()
			targets = append(targets, target{[]string{f.name}, f.t, cmp})
			cols = append(cols, Column{Name: "c" + strconv.Itoa(len(cols)), Type: typ, Path: f.name})
			ddl = append(ddl, fmt.Sprintf("c%d %s", len(ddl), typ))
			rec := f.t
			if rec.kind == "union" && len(rec.branches) == 2 {
				for _, b := range rec.branches {
					if b.kind == "record" {
						rec = b
					}
				}
			}
			if rec.kind == "record" {
				sub := rec.fields[0]
				typ, cmp := sub.t.column()
				targets = append(targets, target{[]string{f.name, sub.name}, sub.t, cmp})
				cols = append(cols, Column{Name: "c" + strconv.Itoa(len(cols)), Type: typ, Path: f.name + "." + sub.name})
				ddl = append(ddl, fmt.Sprintf("c%d %s", len(ddl), typ))
			}
		}
		d := mustDecoder(t, FormatAvro, cols, Options{})
		if err := d.AddSchema(SchemaRef{ID: int32(si)}, &Schema{Text: string(full)}); err != nil {
			t.Fatalf("schema %s: %v", full, err)
		}
		var tuples []byte
		expected := make([][]*string, len(cols))
		for di := range datums {
			v := g.value(root).(map[string]any)
			payload, err := api.Marshal(hs, v)
			if err != nil {
				t.Fatalf("hamba cannot encode %v for %s: %v", v, plain, err)
			}
			out, err := d.AppendFields(nil, &Record{Value: append(AppendRegistryFraming(nil, int32(si)), payload...)})
			if err != nil {
				t.Fatalf("schema %s, datum %v (%x): %v", full, v, payload, err)
			}
			tuples = appendTuple(tuples, len(cols)+1, append(appendInt4Field(nil, int32(di)), out...))
			for ci, tg := range targets {
				var e *string
				ft, x := root.fields[fieldIndex(root, tg.path[0])].t, v[tg.path[0]]
				if len(tg.path) == 2 && ft.kind == "union" {
					ft, x = unionValue(ft, x) // through a nullable record
				}
				switch {
				case len(tg.path) == 1:
					e = ft.expect(x)
				case ft.kind == "record":
					e = tg.t.expect(x.(map[string]any)[tg.path[1]])
				}
				expected[ci] = append(expected[ci], e)
			}
		}
		table := fmt.Sprintf("avro_diff_%d", si)
		mustExec(t, conn, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int4, %s)", table, table, strings.Join(ddl, ", ")))
		if err := copyTuples(ctx, conn, table, tuples); err != nil {
			t.Fatalf("schema %s: COPY rejects the tuples: %v", full, err)
		}
		for ci, tg := range targets {
			rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT x.i - 1, t.c%d::text, x.e FROM %s t
				JOIN unnest($1::text[]) WITH ORDINALITY AS x(e, i) ON t.id = x.i - 1
				WHERE NOT (%s)`, ci, table, strings.ReplaceAll(strings.ReplaceAll(tg.compar, "v", fmt.Sprintf("t.c%d", ci)), " e", " x.e")), expected[ci])
			if err != nil {
				t.Fatalf("%s: %v", tg.compar, err)
			}
			for rows.Next() {
				var id int
				var got, want *string
				if err := rows.Scan(&id, &got, &want); err != nil {
					t.Fatal(err)
				}
				t.Errorf("schema %s, datum %d, column %s (%s): PostgreSQL holds %v, want %v",
					full, id, strings.Join(tg.path, "."), cols[ci].Type, deref(got), deref(want))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			compared += datums
		}
		mustExec(t, conn, "DROP TABLE "+table)
	}
	t.Logf("%d values compared over %d schemas", compared, schemas)
}

func fieldIndex(t *gType, name string) int {
	for i, f := range t.fields {
		if f.name == name {
			return i
		}
	}
	return -1
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strconv.Quote(*s)
}
