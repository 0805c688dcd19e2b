package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestAppendHeadersJSON(t *testing.T) {
	f := func(headers []Header, want string) {
		t.Helper()
		got := AppendHeadersJSON([]byte("x"), headers)
		if string(got) != "x"+want {
			t.Errorf("AppendHeadersJSON(%q)\n got %s\nwant %s", headers, got[1:], want)
		}
	}
	f(nil, `[]`)
	f([]Header{{Key: "a", Value: []byte("b")}}, `[{"key":"a","value":"b"}]`)
	f([]Header{{Key: "a", Value: []byte{}}}, `[{"key":"a","value":""}]`)
	f([]Header{{Key: "a", Value: nil}}, `[{"key":"a","value":null}]`)
	f([]Header{{Key: "q", Value: []byte("\"\\\n\t\x01")}}, `[{"key":"q","value":"\"\\\n\t\u0001"}]`)
	f([]Header{{Key: "bin", Value: []byte{0xff, 0x00}}}, `[{"key":"bin","value_base64":"/wA="}]`)
	f([]Header{{Key: "nul", Value: []byte("a\x00b")}}, `[{"key":"nul","value_base64":"YQBi"}]`)
	f([]Header{{Key: "bad\xffkey\x00", Value: []byte("v")}}, `[{"key":"bad`+"\uFFFD"+`key`+"\uFFFD"+`","value":"v"}]`)
	f([]Header{{Key: "k", Value: []byte("1")}, {Key: "k", Value: []byte("2")}}, `[{"key":"k","value":"1"},{"key":"k","value":"2"}]`)
}

// headersFromJSON reads AppendHeadersJSON's output back.
func headersFromJSON(t testing.TB, b []byte) []Header {
	t.Helper()
	var raw []map[string]*string
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("cannot parse %s: %v", b, err)
	}
	out := []Header{}
	for _, m := range raw {
		h := Header{Key: *m["key"]}
		if v, ok := m["value_base64"]; ok {
			var err error
			if h.Value, err = base64.StdEncoding.DecodeString(*v); err != nil {
				t.Fatalf("value_base64 in %s: %v", b, err)
			}
		} else if v := m["value"]; v != nil {
			h.Value = []byte(*v)
		}
		out = append(out, h)
	}
	return out
}

// FuzzAppendHeadersJSON: the output is always valid JSON without \u0000
// (jsonb rejects it), and every value comes back byte for byte.
func FuzzAppendHeadersJSON(f *testing.F) {
	f.Add("k", []byte("v"), false, "k", []byte{0xff})
	f.Add("\x00\xff", []byte("a\x00"), true, "", []byte(nil))
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, null1 bool, k2 string, v2 []byte) {
		if null1 {
			v1 = nil
		}
		in := []Header{{Key: k1, Value: v1}, {Key: k2, Value: v2}}
		b := AppendHeadersJSON(nil, in)
		if !json.Valid(b) || bytes.Contains(b, []byte(`\u0000`)) {
			t.Fatalf("not jsonb: %s", b)
		}
		out := headersFromJSON(t, b)
		for i := range in {
			if (in[i].Value == nil) != (out[i].Value == nil) || !bytes.Equal(in[i].Value, out[i].Value) {
				t.Fatalf("header %d value %q came back as %q from %s", i, in[i].Value, out[i].Value, b)
			}
			if utf8.ValidString(in[i].Key) && !bytes.Contains([]byte(in[i].Key), []byte{0}) && out[i].Key != in[i].Key {
				t.Fatalf("header %d key %q came back as %q", i, in[i].Key, out[i].Key)
			}
		}
	})
}
