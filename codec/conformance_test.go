package codec

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// stricterThanPostgres lists the corpus documents PostgreSQL accepts and
// the decoder rejects on purpose, with the documented reason.
var stricterThanPostgres = map[string]string{
	"depth_1001_arrays.json": "nesting beyond Options.MaxDepth (default 1000)",
	"depth_5000_arrays.json": "nesting beyond Options.MaxDepth (default 1000)",
}

// TestJSONConformance decodes every document of testdata/json whole into a
// jsonb and a json column (source kafka.value) and holds the result
// against PostgreSQL's own parse of the same text: what both accept lands
// equal, what we reject PostgreSQL rejects too (or is listed in
// stricterThanPostgres), and we never accept what PostgreSQL rejects.
func TestJSONConformance(t *testing.T) {
	files, err := filepath.Glob("testdata/json/*.json")
	if err != nil || len(files) < 100 {
		t.Fatalf("corpus missing: %d files, %v", len(files), err)
	}
	sort.Strings(files)
	conn := pgConn(t)
	ctx := context.Background()
	mustExec(t, conn, "DROP TABLE IF EXISTS conf_jsonb, conf_json; CREATE TABLE conf_jsonb (id int4, v jsonb); CREATE TABLE conf_json (id int4, v json)")

	// pgAccepts asks PostgreSQL to parse doc as typ.
	pgAccepts := func(doc []byte, typ string) bool {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, "SELECT $1::text::"+typ, string(doc))
		return err == nil
	}
	stats := map[string]int{}
	for _, typ := range []Type{TypeJSONB, TypeJSON} {
		d := mustDecoder(t, FormatJSON, []Column{{Name: "v", Type: typ, Source: SourceValue}}, Options{MaxRecordBytes: 1 << 22})
		table := "conf_" + typ.String()
		for id, file := range files {
			name := filepath.Base(file)
			doc, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, derr := d.AppendFields(nil, &Record{Value: doc})
			ours := derr == nil
			pg := pgAccepts(doc, typ.String())
			switch {
			case ours && !pg:
				t.Errorf("%s as %s: we accept, PostgreSQL rejects", name, typ)
				continue
			case !ours && pg:
				if stricterThanPostgres[name] == "" {
					t.Errorf("%s as %s: we reject (%v), PostgreSQL accepts", name, typ, derr)
				}
				stats["stricter"]++
				continue
			case !ours:
				stats["both reject"]++
				continue
			}
			stats["both accept"]++
			tuple := appendTuple(nil, 2, appendInt4Field(nil, int32(id)))
			tuple = append(tuple, out...)
			if err := copyTuples(ctx, conn, table, tuple); err != nil {
				t.Errorf("%s as %s: COPY rejected our field: %v", name, typ, err)
				continue
			}
			// jsonb: semantic equality; json: the text, verbatim but for
			// the whitespace around the top-level value.
			q := "SELECT v = $2::text::jsonb FROM conf_jsonb WHERE id = $1"
			want := string(doc)
			if typ == TypeJSON {
				q = "SELECT v::text = $2 FROM conf_json WHERE id = $1"
				want = strings.Trim(want, " \t\r\n")
			}
			var equal bool
			if err := conn.QueryRow(ctx, q, id, want).Scan(&equal); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !equal {
				t.Errorf("%s as %s: stored value differs from PostgreSQL's parse", name, typ)
			}
		}
	}
	if stats["both accept"] < 60 || stats["both reject"] < 60 {
		t.Errorf("corpus lacks coverage: %v", stats)
	}
	t.Logf("%v", stats)
}
