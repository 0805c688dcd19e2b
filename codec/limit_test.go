package codec

import (
	"context"
	"fmt"
	"testing"
)

// TestLimits holds the decoder's Limit checks against PostgreSQL: a value
// the decoder accepts must be stored unchanged by a numeric(p,s) or
// varchar(n) column, and a value it refuses must be one PostgreSQL would
// have rounded, trimmed or refused.
func TestLimits(t *testing.T) {
	conn := pgConn(t)
	ctx := context.Background()
	numerics := []string{"0", "1", "312.33", "312.3", "312.30", "312.330000", "-999.99", "999.995", "1000", "0.001",
		"0.01", "99999", "123456789.5", "1e3", "1.5e-2", "0.00", "-0", "12345.6789", "0.0001", "10000.00001", `"NaN"`, `"Infinity"`,
		"0.0012", "0.00012", "-0.00099", "0.000123", "0.00001", "-0.5"}
	// A scale above the precision (2,5; 1,3) bounds values below 10^(p-s).
	for _, ps := range [][2]int{{5, 2}, {5, 1}, {3, 3}, {12, 4}, {20, 0}, {8, 5}, {2, 5}, {1, 3}} {
		p, s := ps[0], ps[1]
		d := mustDecoder(t, FormatJSON, []Column{{Name: "v", Type: TypeNumeric, Path: "v", Limit: Limit{Precision: p, Scale: s}}}, Options{})
		for _, v := range numerics {
			_, rerr := decode(t, d, &Record{Value: []byte(`{"v":` + v + `}`)})
			lit := v
			if lit[0] == '"' {
				lit = lit[1 : len(lit)-1]
			}
			var same bool
			err := conn.QueryRow(ctx, fmt.Sprintf("SELECT $1::numeric::numeric(%d,%d) = $1::numeric", p, s), lit).Scan(&same)
			pgKeeps := err == nil && same
			if (rerr == nil) != pgKeeps {
				t.Errorf("%s into numeric(%d,%d): decoder error %v, PostgreSQL keeps it unchanged: %v (%v)", v, p, s, rerr, pgKeeps, err)
			}
			if rerr != nil && rerr.Reason != ReasonOutOfRange {
				t.Errorf("%s into numeric(%d,%d): reason %s, want out_of_range", v, p, s, rerr.Reason)
			}
		}
	}
	texts := []string{"", "abc", "abcde", "abcdef", "äöü€x", "äöü€xy", "abc  ", "abcde ", "日本語のテキ"}
	for _, n := range []int{5, 6} {
		d := mustDecoder(t, FormatJSON, []Column{{Name: "v", Type: TypeText, Path: "v", Limit: Limit{Chars: n}}}, Options{})
		for _, v := range texts {
			_, rerr := decode(t, d, &Record{Value: []byte(`{"v":"` + v + `"}`)})
			var same bool
			err := conn.QueryRow(ctx, fmt.Sprintf("SELECT $1::text::varchar(%d) = $1::text AND length($1::text::varchar(%d)) = length($1::text)", n, n), v).Scan(&same)
			pgKeeps := err == nil && same
			if (rerr == nil) != pgKeeps {
				t.Errorf("%q into varchar(%d): decoder error %v, PostgreSQL keeps it unchanged: %v", v, n, rerr, pgKeeps)
			}
		}
	}
	// Limits apply to every source, and NULL is never out of range.
	d := mustDecoder(t, FormatJSON, []Column{
		{Name: "t", Type: TypeText, Source: SourceTopic, Limit: Limit{Chars: 3}},
		{Name: "v", Type: TypeNumeric, Path: "v", Limit: Limit{Precision: 2, Scale: 0}},
	}, Options{})
	if _, rerr := decode(t, d, &Record{Topic: "abc", Value: []byte(`{"v":null}`)}); rerr != nil {
		t.Errorf("NULL under a limit: %v", rerr)
	}
	if _, rerr := decode(t, d, &Record{Topic: "abcd", Value: []byte(`{}`)}); rerr == nil || rerr.Column != "t" {
		t.Errorf("a long topic under varchar(3): %v", rerr)
	}
}
