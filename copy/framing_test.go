package pgcopy

import (
	"bytes"
	"io"
	"testing"
)

func TestFraming(t *testing.T) {
	f := func(name string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %x, want %x", name, got, want)
		}
	}
	f("header", AppendHeader(nil), []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f("trailer", AppendTrailer(nil), []byte{0xff, 0xff})
	f("tuple header", AppendTupleHeader(nil, 3), []byte{0, 3})
	f("int8", AppendInt8Field(nil, -2), []byte{0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe})
	f("append keeps prefix", AppendInt8Field([]byte("x"), 1), []byte{'x', 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1})
	if len(AppendHeader(nil)) != 19 {
		t.Errorf("header is %d bytes, want 19", len(AppendHeader(nil)))
	}

	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendHeader(buf[:0])
		buf = AppendTupleHeader(buf, 1)
		buf = AppendInt8Field(buf, 42)
		buf = AppendTrailer(buf)
	}); n != 0 {
		t.Errorf("appenders allocate %v times per run, want 0", n)
	}
}

func TestCopyReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	want := append(append(AppendHeader(nil), data...), AppendTrailer(nil)...)
	for _, size := range []int{1, 3, 19, 20, 64, 4096} {
		var r copyReader
		r.reset(data)
		var got []byte
		p := make([]byte, size)
		for {
			n, err := r.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("buffer %d: Read returned 0, nil", size)
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("buffer %d: stream differs from header+data+trailer", size)
		}
	}
	var r copyReader
	p := make([]byte, 4096)
	if n := testing.AllocsPerRun(100, func() {
		r.reset(data)
		for {
			if _, err := r.Read(p); err != nil {
				break
			}
		}
	}); n != 0 {
		t.Errorf("copyReader allocates %v times per stream, want 0", n)
	}
}

func TestParsePolicy(t *testing.T) {
	for s, want := range map[string]Policy{"ignore": PolicyIgnore, "update": PolicyUpdate} {
		p, err := ParsePolicy(s)
		if err != nil || p != want || p.String() != s {
			t.Errorf("ParsePolicy(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParsePolicy("upsert"); err == nil {
		t.Error("ParsePolicy(upsert) succeeded")
	}
}

func TestTableValidate(t *testing.T) {
	ok := Table{Name: "s.t", Columns: []Column{{Name: "id", SQLType: "int8"}, {Name: "v", SQLType: "text"}}, Key: []string{"id"}, OffsetColumn: "id"}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Table){
		"no columns":      func(t *Table) { t.Columns = nil },
		"key not column":  func(t *Table) { t.Key = []string{"nope"} },
		"dup column":      func(t *Table) { t.Columns = append(t.Columns, Column{Name: "v", SQLType: "text"}) },
		"offset column":   func(t *Table) { t.OffsetColumn = "nope" },
		"reserved column": func(t *Table) { t.Columns = append(t.Columns, Column{Name: seqColumn, SQLType: "int8"}) },
		"bad type":        func(t *Table) { t.Columns[1].SQLType = "text; DROP TABLE x" },
		"bad name":        func(t *Table) { t.Name = "a.b.c" },
	} {
		bad := ok
		bad.Columns = append([]Column(nil), ok.Columns...)
		mut(&bad)
		if err := bad.validate(); err == nil {
			t.Errorf("%s: validate succeeded", name)
		}
	}
}
