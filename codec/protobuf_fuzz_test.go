package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// pbGen builds a random schema: message R { M body = 1; } with M's fields
// of every kind and cardinality, a second message S that M uses (and that
// may use M back), and enum E.
type pbGen struct {
	r *rand.Rand
}

var pbGenScalars = []descriptorpb.FieldDescriptorProto_Type{
	descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, descriptorpb.FieldDescriptorProto_TYPE_FLOAT,
	descriptorpb.FieldDescriptorProto_TYPE_INT64, descriptorpb.FieldDescriptorProto_TYPE_UINT64,
	descriptorpb.FieldDescriptorProto_TYPE_INT32, descriptorpb.FieldDescriptorProto_TYPE_FIXED64,
	descriptorpb.FieldDescriptorProto_TYPE_FIXED32, descriptorpb.FieldDescriptorProto_TYPE_BOOL,
	descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_BYTES,
	descriptorpb.FieldDescriptorProto_TYPE_UINT32, descriptorpb.FieldDescriptorProto_TYPE_SFIXED32,
	descriptorpb.FieldDescriptorProto_TYPE_SFIXED64, descriptorpb.FieldDescriptorProto_TYPE_SINT32,
	descriptorpb.FieldDescriptorProto_TYPE_SINT64, descriptorpb.FieldDescriptorProto_TYPE_ENUM,
}

var pbGenWKTs = []string{".google.protobuf.Timestamp", ".google.protobuf.Duration", ".google.protobuf.Int64Value",
	".google.protobuf.StringValue", ".google.protobuf.BoolValue", ".google.protobuf.DoubleValue", ".google.protobuf.UInt64Value",
	".google.protobuf.BytesValue", ".google.protobuf.Struct", ".google.protobuf.Value", ".google.protobuf.ListValue",
	".google.protobuf.FieldMask"}

func (g *pbGen) schema() *descriptorpb.FileDescriptorProto {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("gen.proto"),
		Package: proto.String("gen"),
		Syntax:  proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto", "google/protobuf/duration.proto", "google/protobuf/wrappers.proto",
			"google/protobuf/struct.proto", "google/protobuf/field_mask.proto"},
		EnumType: []*descriptorpb.EnumDescriptorProto{{Name: proto.String("E"), Value: []*descriptorpb.EnumValueDescriptorProto{
			{Name: proto.String("E0"), Number: proto.Int32(0)}, {Name: proto.String("E1"), Number: proto.Int32(1)},
			{Name: proto.String("E5"), Number: proto.Int32(5)}}}},
	}
	r := &descriptorpb.DescriptorProto{Name: proto.String("R"), Field: []*descriptorpb.FieldDescriptorProto{{
		Name: proto.String("body"), Number: proto.Int32(1), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: proto.String(".gen.M")}}}
	m := g.messageType("M", 1+g.r.IntN(12), true)
	s := g.messageType("S", 1+g.r.IntN(5), false)
	fdp.MessageType = []*descriptorpb.DescriptorProto{r, m, s}
	return fdp
}

func (g *pbGen) messageType(name string, n int, rich bool) *descriptorpb.DescriptorProto {
	d := &descriptorpb.DescriptorProto{Name: proto.String(name)}
	used := map[int32]bool{}
	number := func() int32 {
		for {
			var x int32
			switch g.r.IntN(10) {
			case 0:
				x = 1000 + g.r.Int32N(5)
			case 1:
				x = 100000 + g.r.Int32N(5)
			default:
				x = 1 + g.r.Int32N(30)
			}
			if !used[x] {
				used[x] = true
				return x
			}
		}
	}
	optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	for i := 0; i < n; i++ {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(fmt.Sprintf("f%d", i)), Number: proto.Int32(number()), Label: optional}
		g.fieldType(f, rich)
		switch c := g.r.IntN(10); {
		case c < 2:
			f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		case c < 3 && rich:
			// map<key, value>
			entry := &descriptorpb.DescriptorProto{Name: proto.String(fmt.Sprintf("F%dEntry", i)), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)}}
			key := &descriptorpb.FieldDescriptorProto{Name: proto.String("key"), Number: proto.Int32(1), Label: optional}
			key.Type = []descriptorpb.FieldDescriptorProto_Type{descriptorpb.FieldDescriptorProto_TYPE_STRING,
				descriptorpb.FieldDescriptorProto_TYPE_INT32, descriptorpb.FieldDescriptorProto_TYPE_BOOL,
				descriptorpb.FieldDescriptorProto_TYPE_UINT64, descriptorpb.FieldDescriptorProto_TYPE_SINT64}[g.r.IntN(5)].Enum()
			val := &descriptorpb.FieldDescriptorProto{Name: proto.String("value"), Number: proto.Int32(2), Label: optional}
			g.fieldType(val, rich)
			entry.Field = []*descriptorpb.FieldDescriptorProto{key, val}
			d.NestedType = append(d.NestedType, entry)
			f.Label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
			f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
			f.TypeName = proto.String(fmt.Sprintf(".gen.%s.F%dEntry", name, i))
		case c < 4:
			// proto3 optional: a synthetic oneof.
			f.Proto3Optional = proto.Bool(true)
			f.OneofIndex = proto.Int32(int32(len(d.OneofDecl)))
			d.OneofDecl = append(d.OneofDecl, &descriptorpb.OneofDescriptorProto{Name: proto.String("_" + f.GetName())})
		case c < 6 && rich:
			f.OneofIndex = proto.Int32(-1) // placed below
		}
		d.Field = append(d.Field, f)
	}
	// Real oneofs gather the marked fields, and must be declared before the
	// synthetic ones: renumber.
	var real []*descriptorpb.FieldDescriptorProto
	for _, f := range d.Field {
		if f.OneofIndex != nil && f.GetOneofIndex() == -1 {
			real = append(real, f)
		}
	}
	if len(real) > 0 {
		synth := d.OneofDecl
		d.OneofDecl = []*descriptorpb.OneofDescriptorProto{{Name: proto.String("o")}}
		for _, f := range d.Field {
			if f.OneofIndex != nil && f.GetOneofIndex() >= 0 {
				f.OneofIndex = proto.Int32(f.GetOneofIndex() + 1)
			}
		}
		d.OneofDecl = append(d.OneofDecl, synth...)
		// Members of a oneof are declared together: move them last.
		var rest []*descriptorpb.FieldDescriptorProto
		for _, f := range d.Field {
			if f.OneofIndex == nil || f.GetOneofIndex() != -1 {
				rest = append(rest, f)
			}
		}
		d.Field = append(rest, real...)
		for _, f := range real {
			f.OneofIndex = proto.Int32(0)
		}
	}
	return d
}

func (g *pbGen) fieldType(f *descriptorpb.FieldDescriptorProto, rich bool) {
	switch c := g.r.IntN(10); {
	case c < 6 || !rich:
		t := pbGenScalars[g.r.IntN(len(pbGenScalars))]
		f.Type = t.Enum()
		if t == descriptorpb.FieldDescriptorProto_TYPE_ENUM {
			f.TypeName = proto.String(".gen.E")
		}
		if !rich && g.r.IntN(4) == 0 {
			f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
			f.TypeName = proto.String(".gen.M")
		}
	case c < 8:
		f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
		f.TypeName = proto.String(".gen.S")
	default:
		f.Type = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
		f.TypeName = proto.String(pbGenWKTs[g.r.IntN(len(pbGenWKTs))])
	}
}

// fill sets random values on m.
func (g *pbGen) fill(m protoreflect.Message, depth int) {
	if depth > 3 {
		return
	}
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if g.r.IntN(3) == 0 {
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && m.WhichOneof(od) != nil && g.r.IntN(2) == 0 {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for n := g.r.IntN(4); n > 0; n-- {
				k := g.scalar(fd.MapKey())
				if fd.MapValue().Message() != nil {
					v := mp.NewValue()
					g.message(v.Message(), depth+1)
					mp.Set(k.MapKey(), v)
				} else {
					mp.Set(k.MapKey(), g.scalar(fd.MapValue()))
				}
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := g.r.IntN(4); n > 0; n-- {
				if fd.Message() != nil {
					v := l.NewElement()
					g.message(v.Message(), depth+1)
					l.Append(v)
				} else {
					l.Append(g.scalar(fd))
				}
			}
		case fd.Message() != nil:
			if depth > 2 {
				continue
			}
			v := m.NewField(fd)
			g.message(v.Message(), depth+1)
			m.Set(fd, v)
		default:
			m.Set(fd, g.scalar(fd))
		}
	}
}

// message fills a message value, the well-known types with valid values.
func (g *pbGen) message(m protoreflect.Message, depth int) {
	var wkt proto.Message
	switch m.Descriptor().FullName() {
	case "google.protobuf.Timestamp":
		wkt = &timestamppb.Timestamp{Seconds: g.r.Int64N(pbMaxTimestampSec-pbMinTimestampSec) + pbMinTimestampSec, Nanos: g.r.Int32N(1e9)}
	case "google.protobuf.Duration":
		sec, nanos := g.r.Int64N(2*pbMaxDurationSec)-pbMaxDurationSec, g.r.Int32N(1e9)
		if sec < 0 {
			nanos = -nanos
		}
		wkt = &durationpb.Duration{Seconds: sec, Nanos: nanos}
	case "google.protobuf.Struct":
		s, _ := structpb.NewStruct(map[string]any{"a": g.r.Float64(), "b": []any{"x", true, nil}, "c": map[string]any{"d": "e\u00e9"}})
		wkt = s
	case "google.protobuf.Value":
		wkt = structpb.NewNumberValue(float64(g.r.IntN(100)) / 8)
		if g.r.IntN(2) == 0 {
			wkt = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("s"), structpb.NewNullValue()}})
		}
	case "google.protobuf.ListValue":
		wkt = &structpb.ListValue{Values: []*structpb.Value{structpb.NewBoolValue(true)}}
	case "google.protobuf.FieldMask":
		wkt = &fieldmaskpb.FieldMask{Paths: []string{"a_b.c", "d"}}
	case "google.protobuf.Int64Value":
		wkt = wrapperspb.Int64(g.r.Int64() - g.r.Int64())
	case "google.protobuf.UInt64Value":
		wkt = wrapperspb.UInt64(g.r.Uint64())
	case "google.protobuf.StringValue":
		wkt = wrapperspb.String(g.string())
	case "google.protobuf.BytesValue":
		wkt = wrapperspb.Bytes([]byte(g.string()))
	case "google.protobuf.BoolValue":
		wkt = wrapperspb.Bool(g.r.IntN(2) == 0)
	case "google.protobuf.DoubleValue":
		wkt = wrapperspb.Double(g.float())
	default:
		g.fill(m, depth)
		return
	}
	b, _ := proto.Marshal(wkt)
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(b, m.Interface()); err != nil {
		panic(err)
	}
}

func (g *pbGen) string() string {
	parts := []string{"", "a", "é", "😀", "\"", "\\", "\n", "\x01", "\x00", "ab c", "DE"}
	var b strings.Builder
	for n := g.r.IntN(4); n > 0; n-- {
		b.WriteString(parts[g.r.IntN(len(parts))])
	}
	return b.String()
}

func (g *pbGen) float() float64 {
	switch g.r.IntN(8) {
	case 0:
		return math.Inf(1 - 2*g.r.IntN(2))
	case 1:
		return math.NaN()
	case 2:
		return math.Copysign(0, -1)
	case 3:
		return math.Float64frombits(g.r.Uint64())
	}
	return float64(g.r.IntN(2000)-1000) / 16
}

func (g *pbGen) scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	small := g.r.IntN(3) == 0
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(g.r.IntN(2) == 0)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber([]int32{0, 1, 5, 7, -3}[g.r.IntN(5)]))
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if small {
			return protoreflect.ValueOfInt32(g.r.Int32N(20) - 10)
		}
		return protoreflect.ValueOfInt32(int32(g.r.Uint32()))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if small {
			return protoreflect.ValueOfInt64(g.r.Int64N(20) - 10)
		}
		return protoreflect.ValueOfInt64(int64(g.r.Uint64()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if small {
			return protoreflect.ValueOfUint32(g.r.Uint32N(20))
		}
		return protoreflect.ValueOfUint32(g.r.Uint32())
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if small {
			return protoreflect.ValueOfUint64(g.r.Uint64N(20))
		}
		return protoreflect.ValueOfUint64(g.r.Uint64())
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(g.float()))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(g.float())
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(g.string())
	case protoreflect.BytesKind:
		b := make([]byte, g.r.IntN(18))
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	}
	panic(fd.Kind())
}

// pbColumnTypes lists, per field, the column types the differential test
// checks against the oracle.
func pbColumnTypes(fd protoreflect.FieldDescriptor) []Type {
	if fd.IsList() || fd.IsMap() {
		return []Type{TypeJSON}
	}
	if md := fd.Message(); md != nil {
		switch md.FullName() {
		case "google.protobuf.Timestamp":
			return []Type{TypeTimestamptz, TypeJSON}
		case "google.protobuf.Int64Value", "google.protobuf.StringValue", "google.protobuf.BoolValue",
			"google.protobuf.DoubleValue", "google.protobuf.UInt64Value", "google.protobuf.BytesValue":
			return pbColumnTypes(md.Fields().ByNumber(1))
		}
		return []Type{TypeJSON}
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return []Type{TypeBool, TypeText}
	case protoreflect.EnumKind:
		return []Type{TypeText, TypeInt8}
	case protoreflect.StringKind:
		return []Type{TypeText, TypeJSON}
	case protoreflect.BytesKind:
		return []Type{TypeBytea, TypeText}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return []Type{TypeFloat8, TypeNumeric, TypeText}
	}
	return []Type{TypeInt8, TypeNumeric, TypeText, TypeFloat8}
}

// pbDiffColumn is a column of the differential test and where the oracle
// finds its value.
type pbDiffColumn struct {
	col   Column
	outer protoreflect.FieldDescriptor // a message field of M the column reads into, or nil
	fd    protoreflect.FieldDescriptor
}

func pbDiffColumns(r *rand.Rand, m protoreflect.MessageDescriptor) []pbDiffColumn {
	cols := []pbDiffColumn{{col: Column{Name: "body", Type: TypeJSON, Path: "body"}}}
	add := func(outer, fd protoreflect.FieldDescriptor, path string) {
		types := pbColumnTypes(fd)
		typ := types[r.IntN(len(types))]
		cols = append(cols, pbDiffColumn{col: Column{Name: fmt.Sprintf("c%d", len(cols)), Type: typ, Path: path}, outer: outer, fd: fd})
	}
	for i := 0; i < m.Fields().Len(); i++ {
		fd := m.Fields().Get(i)
		add(nil, fd, "body."+string(fd.Name()))
		if sub := fd.Message(); sub != nil && !fd.IsList() && !fd.IsMap() && strings.HasPrefix(string(sub.FullName()), "gen.") {
			for j := 0; j < sub.Fields().Len(); j++ {
				if inner := sub.Fields().Get(j); inner.Message() == nil || inner.IsList() || inner.IsMap() {
					add(fd, inner, "body."+string(fd.Name())+"."+string(inner.Name()))
				}
			}
		}
	}
	return cols
}

// pbOracle is the field dynamicpb says column c holds in msg (an R), or a
// reason; for json columns it returns the JSON text to compare
// semantically.
func pbOracle(c *pbDiffColumn, msg protoreflect.Message) (field []byte, reason Reason, jsonText []byte, skip bool) {
	bodyFD := msg.Descriptor().Fields().ByName("body")
	if !msg.Has(bodyFD) {
		return appendNull(nil), "", nil, false
	}
	body := msg.Get(bodyFD).Message()
	if c.col.Path == "body" {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(body.Interface())
		if err != nil {
			return nil, "", nil, true
		}
		return nil, "", b, false
	}
	holder := body
	if c.outer != nil {
		if !body.Has(c.outer) {
			return appendNull(nil), "", nil, false
		}
		holder = body.Get(c.outer).Message()
	}
	fd := c.fd
	if fd.IsList() || fd.IsMap() || c.col.Type == TypeJSON {
		if fd.HasPresence() && !holder.Has(fd) {
			return appendNull(nil), "", nil, false
		}
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(holder.Interface())
		if err != nil {
			return nil, "", nil, true
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(b, &obj); err != nil {
			panic(err)
		}
		v, ok := obj[string(fd.Name())]
		switch {
		case ok:
		case fd.IsMap():
			v = json.RawMessage("{}")
		case fd.IsList():
			v = json.RawMessage("[]")
		case fd.Kind() == protoreflect.StringKind:
			v = json.RawMessage(`""`)
		}
		return nil, "", v, false
	}
	if fd.HasPresence() && !holder.Has(fd) {
		return appendNull(nil), "", nil, false
	}
	v := holder.Get(fd)
	if md := fd.Message(); md != nil {
		if md.FullName() == "google.protobuf.Timestamp" {
			sec, nanos := v.Message().Get(md.Fields().ByNumber(1)).Int(), v.Message().Get(md.Fields().ByNumber(2)).Int()
			if nanos%1000 == 500 {
				return nil, "", nil, true // a tie: PostgreSQL's rounding in doubles decides
			}
			us := (sec-unixToPGDays*86400)*usPerSec + nanos/1000
			if nanos%1000 > 500 {
				us++
			}
			return appendInt8Field(nil, us), "", nil, false
		}
		// A wrapper.
		fd = md.Fields().ByNumber(1)
		v = v.Message().Get(fd)
	}
	field, reason = pbExpectScalar(c.col.Type, fd, v)
	return field, reason, nil, false
}

func pbExpectScalar(typ Type, fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, Reason) {
	var i int64
	var u uint64
	unsigned := false
	switch fd.Kind() {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		u, unsigned = v.Uint(), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Int64Kind,
		protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		i = v.Int()
	case protoreflect.EnumKind:
		i = int64(v.Enum())
	}
	intText := func() string {
		if unsigned {
			return strconv.FormatUint(u, 10)
		}
		return strconv.FormatInt(i, 10)
	}
	switch typ {
	case TypeBool:
		return appendBoolField(nil, v.Bool()), ""
	case TypeBytea:
		return appendBytesField(nil, v.Bytes()), ""
	case TypeInt8:
		if unsigned && u > math.MaxInt64 {
			return nil, ReasonOutOfRange
		}
		if unsigned {
			i = int64(u)
		}
		return appendInt8Field(nil, i), ""
	case TypeFloat8:
		switch fd.Kind() {
		case protoreflect.FloatKind, protoreflect.DoubleKind:
			return appendFloat8Field(nil, v.Float()), ""
		}
		if unsigned {
			return appendFloat8Field(nil, float64(u)), ""
		}
		return appendFloat8Field(nil, float64(i)), ""
	case TypeNumeric:
		text := intText()
		switch fd.Kind() {
		case protoreflect.FloatKind, protoreflect.DoubleKind:
			f := v.Float()
			switch {
			case math.IsNaN(f):
				return appendNumericSpecial(nil, numericNaN), ""
			case math.IsInf(f, 1):
				return appendNumericSpecial(nil, numericPInf), ""
			case math.IsInf(f, -1):
				return appendNumericSpecial(nil, numericNInf), ""
			}
			bits := 64
			if fd.Kind() == protoreflect.FloatKind {
				bits = 32
			}
			text = strconv.FormatFloat(f, 'g', -1, bits)
		}
		n, ok := splitNumber([]byte(text))
		if !ok {
			panic(text)
		}
		if !n.fitsNumeric() {
			return nil, ReasonOutOfRange
		}
		return appendNumericField(nil, &n), ""
	case TypeText:
		switch fd.Kind() {
		case protoreflect.StringKind:
			if strings.Contains(v.String(), "\x00") {
				return nil, ReasonNULInText
			}
			return appendStringField(nil, v.String()), ""
		case protoreflect.BytesKind:
			return appendStringField(nil, base64.StdEncoding.EncodeToString(v.Bytes())), ""
		case protoreflect.BoolKind:
			return appendStringField(nil, strconv.FormatBool(v.Bool())), ""
		case protoreflect.EnumKind:
			if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
				return appendStringField(nil, string(ev.Name())), ""
			}
		case protoreflect.FloatKind, protoreflect.DoubleKind:
			return nil, "float-text" // compared by value
		}
		return appendStringField(nil, intText()), ""
	}
	panic(typ)
}

// pbJSONEqual compares JSON documents, a 64-bit integer string of protojson
// matching the same number of ours.
func pbJSONEqual(ours, theirs []byte) bool {
	var a, b any
	da, db := json.NewDecoder(bytes.NewReader(ours)), json.NewDecoder(bytes.NewReader(theirs))
	da.UseNumber()
	db.UseNumber()
	if da.Decode(&a) != nil || db.Decode(&b) != nil {
		return false
	}
	return pbSameJSON(a, b)
}

func pbSameJSON(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !pbSameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !pbSameJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		switch y := b.(type) {
		case json.Number:
			return x == y
		case string:
			return string(x) == y
		}
		return false
	}
	return a == b
}

// pbDifferential builds a random schema and message from seed and checks
// every column the plan produces against dynamicpb.
func pbDifferential(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed>>32|1))
	g := &pbGen{r: r}
	fdp := g.schema()
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("seed %d: generated schema: %v", seed, err)
	}
	rmd := fd.Messages().ByName("R")
	// Two messages, concatenated: protobuf merges them.
	var payload []byte
	for n := 1 + r.IntN(2); n > 0; n-- {
		m := dynamicpb.NewMessage(rmd)
		g.fill(m, 0)
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("seed %d: marshal: %v", seed, err)
		}
		payload = append(payload, b...)
	}
	oracle := dynamicpb.NewMessage(rmd)
	if err := proto.Unmarshal(payload, oracle); err != nil {
		t.Fatalf("seed %d: unmarshal: %v", seed, err)
	}
	p, dcols := pbDiffPlan(t, r, fdp, fd)
	if rerr := p.decode(payload); rerr != nil {
		t.Fatalf("seed %d: decode: %v\npayload %x", seed, rerr, payload)
	}
	pbCompare(t, fmt.Sprintf("seed %d", seed), p, dcols, oracle)
}

// pbDiffPlan compiles the plan of random columns for a generated schema,
// from its descriptor form.
func pbDiffPlan(t *testing.T, r *rand.Rand, fdp *descriptorpb.FileDescriptorProto, fd protoreflect.FileDescriptor) (*protobufPlan, []pbDiffColumn) {
	desc, err := proto.Marshal(fdp)
	if err != nil {
		t.Fatal(err)
	}
	dcols := pbDiffColumns(r, fd.Messages().ByName("M"))
	cols := make([]Column, len(dcols))
	for i := range dcols {
		cols[i] = dcols[i].col
	}
	pl, err := compileProtobufPlan(&Schema{Type: SchemaProtobuf, Text: base64.StdEncoding.EncodeToString(desc)}, nil, cols, Options{})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return pl.(*protobufPlan), dcols
}

// pbCompare checks every column of the last decode against oracle.
func pbCompare(t *testing.T, what string, p *protobufPlan, dcols []pbDiffColumn, oracle protoreflect.Message) {
	for i := range dcols {
		c := &dcols[i]
		got, rerr := p.appendPath(nil, i)
		want, reason, jsonText, skip := pbOracle(c, oracle)
		where := fmt.Sprintf("%s column %s (%s %s)", what, c.col.Path, c.col.Type, fieldKind(c.fd))
		switch {
		case skip:
		case reason == "float-text":
			if rerr != nil {
				t.Errorf("%s: %v", where, rerr)
				continue
			}
			f, err := strconv.ParseFloat(string(got[4:]), 64)
			v := oracleFloat(c, oracle)
			if err != nil || !(f == v || math.IsNaN(f) && math.IsNaN(v)) || math.Signbit(f) != math.Signbit(v) {
				t.Errorf("%s: got %q, want %v", where, got, v)
			}
		case reason != "":
			if rerr == nil || rerr.Reason != reason {
				t.Errorf("%s: got %q (%v), want reason %s", where, got, rerr, reason)
			}
		case rerr != nil:
			t.Errorf("%s: %v", where, rerr)
		case jsonText != nil:
			if !pbJSONEqual(got[4:], jsonText) {
				t.Errorf("%s:\n got %s\nwant %s", where, got[4:], jsonText)
			}
		case !bytes.Equal(got, want):
			t.Errorf("%s: got %x, want %x", where, got, want)
		}
	}
}

func fieldKind(fd protoreflect.FieldDescriptor) string {
	if fd == nil {
		return "message"
	}
	return fd.Kind().String()
}

// oracleFloat is the float a text column over a float field must read back as.
func oracleFloat(c *pbDiffColumn, msg protoreflect.Message) float64 {
	body := msg.Get(msg.Descriptor().Fields().ByName("body")).Message()
	holder := body
	if c.outer != nil {
		holder = body.Get(c.outer).Message()
	}
	v := holder.Get(c.fd)
	fd := c.fd
	if md := fd.Message(); md != nil {
		fd = md.Fields().ByNumber(1)
		v = v.Message().Get(fd)
	}
	return v.Float()
}

func TestProtobufDifferential(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	for seed := uint64(0); seed < uint64(n); seed++ {
		pbDifferential(t, seed)
		if t.Failed() {
			break
		}
	}
}

func FuzzProtobufDifferential(f *testing.F) {
	for seed := uint64(0); seed < 8; seed++ {
		f.Add(seed)
	}
	f.Fuzz(pbDifferential)
}

// FuzzProtobufDecode feeds arbitrary payloads to the plan of a generated
// schema. Where both the plan and dynamicpb accept the payload the columns
// must agree; the plan may reject what dynamicpb accepts only for a wire
// type that does not fit a field a column reads (dynamicpb keeps such a
// field as unknown).
func FuzzProtobufDecode(f *testing.F) {
	for seed := uint64(0); seed < 4; seed++ {
		r := rand.New(rand.NewPCG(seed, seed>>32|1))
		g := &pbGen{r: r}
		fdp := g.schema()
		fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
		if err != nil {
			f.Fatal(err)
		}
		m := dynamicpb.NewMessage(fd.Messages().ByName("R"))
		g.fill(m, 0)
		b, _ := proto.Marshal(m)
		f.Add(seed, b)
	}
	f.Add(uint64(1), []byte{0x0a, 0x03, 0x13, 0x14, 0x00})
	f.Fuzz(func(t *testing.T, seed uint64, payload []byte) {
		r := rand.New(rand.NewPCG(seed, seed>>32|1))
		g := &pbGen{r: r}
		fdp := g.schema()
		fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
		if err != nil {
			t.Fatal(err)
		}
		p, dcols := pbDiffPlan(t, r, fdp, fd)
		oracle := dynamicpb.NewMessage(fd.Messages().ByName("R"))
		goErr := proto.Unmarshal(payload, oracle)
		rerr := p.decode(payload)
		if rerr != nil {
			if rerr.Reason != ReasonSchemaMismatch {
				t.Fatalf("decode: %v", rerr)
			}
			if goErr == nil && !strings.Contains(rerr.Detail, "value for a field of type") {
				t.Fatalf("decode rejects what protobuf accepts: %v", rerr)
			}
			return
		}
		if goErr != nil {
			for i := range dcols { // no panic, well-formed or an error
				if out, rerr := p.appendPath([]byte("x"), i); rerr == nil {
					if _, err := splitFields(out[1:], 1); err != nil {
						t.Fatal(err)
					}
				} else if string(out) != "x" {
					t.Fatalf("buffer not restored: %q", out)
				}
			}
			return
		}
		pbCompareLenient(t, p, dcols, oracle)
	})
}

// pbCompareLenient is pbCompare where rendering a message may fail on a
// field dynamicpb kept as unknown.
func pbCompareLenient(t *testing.T, p *protobufPlan, dcols []pbDiffColumn, oracle protoreflect.Message) {
	t.Helper()
	for i := range dcols {
		if _, rerr := p.appendPath(nil, i); rerr != nil && rerr.Reason == ReasonSchemaMismatch && strings.Contains(rerr.Detail, "value for a field of type") {
			return
		}
	}
	pbCompare(t, "fuzz", p, dcols, oracle)
}
