package codec

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// differential decodes generated JSON values into a column of type typ,
// lands the accepted ones in PostgreSQL and checks that each equals
// PostgreSQL's own parse of the same text (pgExpr turns the text parameter
// $1 element s into the value), and that PostgreSQL rejects the text of
// every value we rejected as out of range or invalid.
func differential(t *testing.T, typ Type, pgExpr string, values []string) {
	t.Helper()
	conn := pgConn(t)
	ctx := context.Background()
	table := "diff_" + typ.String()
	mustExec(t, conn, fmt.Sprintf("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int4, v %s)", table, table, typ))
	d := mustDecoder(t, FormatJSON, []Column{{Name: "v", Type: typ, Path: "v"}}, Options{})
	var tuples []byte
	var texts []string
	rejected := 0
	for _, v := range values {
		out, err := d.AppendFields(nil, &Record{Value: []byte(`{"v":` + v + `}`)})
		text := strings.Trim(v, `"`)
		if err != nil {
			var re *RowError
			if !errors.As(err, &re) || re.Reason == ReasonMalformedJSON {
				t.Fatalf("%s: %v", v, err)
			}
			rejected++
			var ok bool
			qerr := conn.QueryRow(ctx, "SELECT ("+strings.Replace(pgExpr, "s::", "$1::text::", 1)+") IS NOT NULL", text).Scan(&ok)
			if qerr == nil {
				t.Errorf("%s %s: we reject (%v), PostgreSQL accepts", typ, v, err)
			}
			continue
		}
		tuples = appendTuple(tuples, 2, appendInt4Field(nil, int32(len(texts))))
		tuples = append(tuples, out...)
		texts = append(texts, text)
	}
	if err := copyTuples(ctx, conn, table, tuples); err != nil {
		t.Fatalf("COPY %s: %v", typ, err)
	}
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT x.s, t.v::text, (%s)::text FROM %s t
		JOIN unnest($1::text[]) WITH ORDINALITY AS x(s, i) ON t.id = x.i - 1
		WHERE t.v IS DISTINCT FROM (%s)`, pgExpr, table, pgExpr), texts)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for rows.Next() {
		var s, ours, theirs string
		if err := rows.Scan(&s, &ours, &theirs); err != nil {
			t.Fatal(err)
		}
		if bad++; bad <= 10 {
			t.Errorf("%s %s: we stored %s, PostgreSQL parses %s", typ, s, ours, theirs)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != len(texts) {
		t.Fatalf("%d rows landed, want %d (%v)", n, len(texts), err)
	}
	t.Logf("%s: %d compared, %d rejected by both", typ, len(texts), rejected)
}

func randomNumber(r *rand.Rand) string {
	var b strings.Builder
	if r.IntN(2) == 0 {
		b.WriteByte('-')
	}
	intDigits := 1 + r.IntN(25)
	if r.IntN(4) == 0 {
		b.WriteByte('0')
	} else {
		b.WriteByte(byte('1' + r.IntN(9)))
		for range intDigits - 1 {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
	}
	if r.IntN(2) == 0 {
		b.WriteByte('.')
		for range 1 + r.IntN(25) {
			if r.IntN(3) == 0 {
				b.WriteByte('0')
			} else {
				b.WriteByte(byte('0' + r.IntN(10)))
			}
		}
	}
	if r.IntN(3) == 0 {
		b.WriteByte("eE"[r.IntN(2)])
		switch r.IntN(3) {
		case 0:
			b.WriteByte('-')
		case 1:
			b.WriteByte('+')
		}
		fmt.Fprintf(&b, "%d", r.IntN([]int{20, 400, 40000}[r.IntN(3)]))
	}
	return b.String()
}

func TestNumbersAgainstPostgres(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var nums []string
	for range 3000 {
		nums = append(nums, randomNumber(r))
	}
	differential(t, TypeNumeric, "s::numeric", nums)
	differential(t, TypeFloat8, "s::float8", nums)
	differential(t, TypeFloat4, "s::float4", nums)
	var ints []string
	for _, n := range nums {
		if !strings.ContainsAny(n, ".eE") {
			ints = append(ints, n)
		}
	}
	differential(t, TypeInt8, "s::int8", ints)
}

func TestTimestampsAgainstPostgres(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var ts []string
	for range 3000 {
		var b strings.Builder
		fmt.Fprintf(&b, `"%04d-%02d-%02d%c%02d:%02d:%02d`, 1+r.IntN(9999), 1+r.IntN(12), 1+r.IntN(28),
			"Tt "[r.IntN(3)], r.IntN(24), r.IntN(60), r.IntN(60))
		if n := r.IntN(10); n > 0 {
			b.WriteByte('.')
			for range n {
				b.WriteByte([]byte("0599")[r.IntN(4)])
			}
		}
		switch r.IntN(5) {
		case 0:
			b.WriteByte('Z')
		case 1:
			fmt.Fprintf(&b, "%c%02d:%02d", "+-"[r.IntN(2)], r.IntN(16), r.IntN(60))
		case 2:
			fmt.Fprintf(&b, "%c%02d%02d", "+-"[r.IntN(2)], r.IntN(16), r.IntN(60))
		case 3:
			fmt.Fprintf(&b, "%c%02d", "+-"[r.IntN(2)], r.IntN(16))
		}
		b.WriteByte('"')
		ts = append(ts, b.String())
	}
	differential(t, TypeTimestamptz, "s::timestamptz", ts)
	var dates []string
	for range 500 {
		dates = append(dates, fmt.Sprintf(`"%04d-%02d-%02d"`, 1+r.IntN(9999), 1+r.IntN(12), 1+r.IntN(31)))
	}
	differential(t, TypeDate, "s::date", dates)
}
