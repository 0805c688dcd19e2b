package codec

import (
	"encoding/binary"
	"errors"
	"testing"
)

// lastField returns the payload of the last field of buf (nil for NULL),
// knowing the fields before it take skip bytes.
func lastField(buf []byte, skip int) []byte {
	b := buf[skip:]
	n := int32(binary.BigEndian.Uint32(b))
	if n < 0 {
		return nil
	}
	return b[4 : 4+n]
}

func TestUnmapped(t *testing.T) {
	cols := []Column{
		{Name: "id", Type: TypeInt8, Path: "id"},
		{Name: "country", Type: TypeText, Path: "attrs.country"},
		{Name: "extra", Type: TypeJSONB, Source: SourceUnmapped},
	}
	dec, err := NewDecoder(FormatJSON, cols, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := func(value, want string, reason Reason) {
		t.Helper()
		var rec *Record
		if value != "<nil>" {
			rec = &Record{Value: []byte(value)}
		} else {
			rec = &Record{}
		}
		out, err := dec.AppendFields(nil, rec)
		var re *RowError
		if reason != "" {
			if !errors.As(err, &re) || re.Reason != reason || re.Column != "extra" {
				t.Errorf("%s: got %v, want %s in extra", value, err, reason)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", value, err)
		}
		// id (NULL or 8 bytes) and country precede extra.
		skip := 0
		for range 2 {
			n := int32(binary.BigEndian.Uint32(out[skip:]))
			skip += 4 + max(int(n), 0)
		}
		got := lastField(out, skip)
		switch {
		case want == "NULL" && got != nil:
			t.Errorf("%s: extra = %q, want NULL", value, got)
		case want != "NULL" && (len(got) == 0 || got[0] != 1 || string(got[1:]) != want):
			t.Errorf("%s: extra = %q, want jsonb %s", value, got, want)
		}
	}
	f(`{"id":1,"attrs":{"country":"NZ","device":"x"}}`, "NULL", "")
	f(`{"id":1,"new":"a", "attrs":{},"more" : [1,{"b":2}],"n":null}`, `{"new":"a","more" : [1,{"b":2}],"n":null}`, "")
	f(`{"x":1,"x":2}`, `{"x":1,"x":2}`, "")
	f(`{"\u0069d":1,"k":"v"}`, `{"k":"v"}`, "") // an escaped key still maps
	f(`{"id":1,"k":"a\u0000b"}`, "", ReasonInvalidValue)
	f(`<nil>`, "NULL", "")
	f(`{}`, "NULL", "")

	rec := &Record{Value: []byte(`{"id":1,"new":"a","attrs":{"country":"NZ"},"more":[1,2],"z":true}`)}
	var dst []byte
	if n := testing.AllocsPerRun(100, func() { dst, _ = dec.AppendFields(dst[:0], rec) }); n != 0 {
		t.Errorf("%v allocations per record with an unmapped column", n)
	}

	// Only JSON records, one such column, json or jsonb.
	for _, bad := range []struct {
		f    Format
		cols []Column
	}{
		{FormatAvro, []Column{{Name: "id", Type: TypeInt8, Path: "id"}, {Name: "e", Type: TypeJSONB, Source: SourceUnmapped}}},
		{FormatJSON, []Column{{Name: "e", Type: TypeJSONB, Source: SourceUnmapped}, {Name: "f", Type: TypeJSON, Source: SourceUnmapped}}},
		{FormatJSON, []Column{{Name: "e", Type: TypeText, Source: SourceUnmapped}}},
	} {
		if _, err := NewDecoder(bad.f, bad.cols, Options{}); err == nil {
			t.Errorf("NewDecoder(%v, %v) accepted", bad.f, bad.cols)
		}
	}
	// Alone, it keeps the whole object; json keeps the text.
	dec2, err := NewDecoder(FormatJSON, []Column{{Name: "e", Type: TypeJSON, Source: SourceUnmapped}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := dec2.AppendFields(nil, &Record{Value: []byte(` {"a":1,"b":{"c":2}} `)})
	if err != nil || string(lastField(out, 0)) != `{"a":1,"b":{"c":2}}` {
		t.Errorf("alone: %q, %v", lastField(out, 0), err)
	}
	if _, err := dec2.AppendFields(nil, &Record{Value: []byte(`[1]`)}); err == nil {
		t.Error("a top-level array was accepted by an unmapped column")
	}
}

// A json_schema record is a JSON document after its framing: the
// unmapped column keeps its members as for format json.
func TestUnmappedJSONSchema(t *testing.T) {
	dec, err := NewDecoder(FormatJSONSchema, []Column{{Name: "id", Type: TypeInt8, Path: "id"},
		{Name: "extra", Type: TypeJSONB, Source: SourceUnmapped}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.AddSchema(SchemaRef{ID: 1}, &Schema{Type: SchemaJSON, Text: `{"type":"object"}`}); err != nil {
		t.Fatal(err)
	}
	v := append(binary.BigEndian.AppendUint32([]byte{0}, 1), `{"id":1,"country":"NZ"}`...)
	out, err := dec.AppendFields(nil, &Record{Value: v})
	if err != nil {
		t.Fatal(err)
	}
	if got := lastField(out, 4+8); string(got) != "\x01"+`{"country":"NZ"}` {
		t.Errorf("extra = %q, want jsonb {\"country\":\"NZ\"}", got)
	}
}
