package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/codec"
	pgcopy "github.com/sluice-dev/sluice/copy"
)

func runDL(t *testing.T, e *env, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := DeadLettersMain(e.ctx, args, &out, &errb); err != nil {
		t.Fatalf("sluice dead-letters %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String()
}

func TestHeadersJSONRoundTrip(t *testing.T) {
	hs := []codec.Header{{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0xff, 0, 1}}, {Key: "nil"}, {Key: "empty", Value: []byte{}}}
	got, err := parseHeadersJSON(codec.AppendHeadersJSON(nil, hs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(hs) {
		t.Fatalf("got %d headers, want %d", len(got), len(hs))
	}
	for i := range hs {
		if got[i].Key != hs[i].Key || !bytes.Equal(got[i].Value, hs[i].Value) || (got[i].Value == nil) != (hs[i].Value == nil) {
			t.Errorf("header %d = %q %v, want %q %v", i, got[i].Key, got[i].Value, hs[i].Key, hs[i].Value)
		}
	}
	if hs, err := parseHeadersJSON([]byte("[]")); err != nil || len(hs) != 0 {
		t.Errorf("[] = %v, %v", hs, err)
	}
}

func TestClassifyError(t *testing.T) {
	for e, want := range map[string]string{
		"malformed_json: unexpected end":                              "malformed_json",
		"column n: wrong_type: string is not a number":                "wrong_type",
		"id: missing_required: no value":                              "missing_required",
		"column n (path a.b): out_of_range: 1e30":                     "out_of_range",
		"rejected by PostgreSQL: new row violates check (23514)":      "rejected_by_postgres",
		"op: bad_envelope: unknown op \"x\"; want c, r, u, d, t or m": "bad_envelope",
		"kafka.key: bad_key: tombstone without a key":                 "bad_key",
		"column ts (path ts): expired: value 2020-01-01 is older":     "expired",
		"no_route: no table takes the record: the when: conditions":   "no_route",
		"something else": "other",
	} {
		if got := classifyError(e); got != want {
			t.Errorf("classifyError(%q) = %q, want %q", e, got, want)
		}
	}
}

// Every reason a dead letter can have (each codec.Reason, and no_route of
// a record no table takes) is one that sluice status counts, that
// dead-letters --reason accepts and its help names, and that
// docs/operations.md lists for --reason.
func TestDeadLetterReasonsComplete(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../codec/codec.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	reasons := []string{reasonNoRoute}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok {
					reasons = append(reasons, strings.Trim(lit.Value, `"`))
				}
			}
		}
	}
	if len(reasons) < 10 {
		t.Fatalf("found only the reasons %v in codec/codec.go", reasons)
	}
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, row, _ := strings.Cut(string(ops), "| `--reason wrong_type` |")
	row, _, _ = strings.Cut(row, "\n")
	cfg := &Config{Kafka: KafkaConfig{Group: "g"}}
	for _, r := range reasons {
		if !slices.Contains(deadLetterReasons, r) {
			t.Errorf("reason %s is not in deadLetterReasons: sluice status counts it as other", r)
		}
		if _, err := (&dlFlags{reason: r, partition: -1}).filter(cfg, time.Now()); err != nil {
			t.Errorf("dead-letters --reason %s: %v", r, err)
		}
		if !strings.Contains(reasonFlagHelp, r) {
			t.Errorf("the help of dead-letters --reason does not name %s", r)
		}
		if !strings.Contains(row, "`"+r+"`") {
			t.Errorf("docs/operations.md, the --reason row of the dead-letter filters, does not name %s", r)
		}
	}
}

// TestDeadLettersListShowReplay: list and show with every filter, then
// replay after the configuration is fixed: what now decodes lands (or is
// kept out by a stored row under on_conflict ignore) and its dead letter
// goes; what still fails stays with its error updated, including a row
// PostgreSQL refuses.
func TestDeadLettersListShowReplay(t *testing.T) {
	e := newEnv(t, 2)
	strict := strings.Replace(fmt.Sprintf(tableYAML, "ignore"), "{name: v, type: text, path: v}", "{name: v, type: text, path: v, required: true}", 1)
	cfgA := e.config(strict)
	r := e.start(cfgA)
	var recs []*kgo.Record
	for i := range 100 {
		recs = append(recs, item(i, "first"))
	}
	// Lacking v: dead letters under the strict config, rows once v is optional.
	for i := 100; i < 150; i++ {
		recs = append(recs, &kgo.Record{Key: []byte(uuidFor(i)), Value: fmt.Appendf(nil, `{"id":%q,"n":%d}`, uuidFor(i), i),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t" + fmt.Sprint(i))}, {Key: "bin", Value: []byte{0xff, 0}}}})
	}
	// An existing key lacking v: replayed, kept out by the stored row.
	recs = append(recs, &kgo.Record{Key: []byte(uuidFor(5)), Value: fmt.Appendf(nil, `{"id":%q,"n":5}`, uuidFor(5))})
	// Still bad after the fix.
	recs = append(recs, &kgo.Record{Key: []byte("m"), Value: []byte(`{"id":`)},
		&kgo.Record{Key: []byte(uuidFor(200)), Value: fmt.Appendf(nil, `{"id":%q,"n":"many"}`, uuidFor(200))},
		// Decodes after the fix, but the CHECK added below refuses it.
		&kgo.Record{Key: []byte(uuidFor(201)), Value: fmt.Appendf(nil, `{"id":%q,"n":-1}`, uuidFor(201))})
	e.produce(recs...)
	e.waitDrained(int64(len(recs)))
	r.stop()
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 54 {
		t.Fatalf("%d dead letters, want 54", n)
	}
	pathA := writeConfig(t, cfgA)

	lines := func(s string) int { return strings.Count(s, "\n") }
	if out := runDL(t, e, "list", "--config", pathA, "--limit", "0"); lines(out) != 54 {
		t.Errorf("list printed %d lines, want 54:\n%s", lines(out), out)
	}
	if out := runDL(t, e, "list", "--config", pathA, "--limit", "10"); lines(out) != 10 {
		t.Errorf("list --limit 10 printed %d lines", lines(out))
	}
	if out := runDL(t, e, "list", "--config", pathA, "--reason", "missing_required", "--limit", "0"); lines(out) != 52 || !strings.Contains(out, "missing_required") {
		t.Errorf("--reason missing_required printed %d lines, want 52 (the -1 and the 50 and key 5):\n%s", lines(out), out)
	}
	if out := runDL(t, e, "list", "--config", pathA, "--reason", "malformed_json"); lines(out) != 1 || !strings.Contains(out, "malformed_json") {
		t.Errorf("--reason malformed_json: %q", out)
	}
	if out := runDL(t, e, "list", "--config", pathA, "--reason", "wrong_type", "--table", "public.items", "--topic", "events"); lines(out) != 1 {
		t.Errorf("--reason wrong_type: %q", out)
	}
	if out := runDL(t, e, "list", "--config", pathA, "--until", "1h", "--limit", "0"); !strings.Contains(out, "no dead letters") {
		t.Errorf("--until 1h ago listed: %q", out)
	}
	if out := runDL(t, e, "list", "--config", pathA, "--since", "1h", "--limit", "0"); lines(out) != 54 {
		t.Errorf("--since 1h listed %d", lines(out))
	}
	var part int32
	var off int64
	if err := e.db.QueryRow(e.ctx, `SELECT partition, "offset" FROM sluice.dead_letters WHERE key = $1`, []byte(uuidFor(120))).Scan(&part, &off); err != nil {
		t.Fatal(err)
	}
	out := runDL(t, e, "list", "--config", pathA, "--partition", fmt.Sprint(part), "--from-offset", fmt.Sprint(off), "--to-offset", fmt.Sprint(off))
	if lines(out) != 1 || !strings.Contains(out, fmt.Sprintf("events/%d@%d", part, off)) {
		t.Errorf("--partition --from-offset --to-offset: %q", out)
	}
	show := runDL(t, e, "show", "--config", pathA, "--partition", fmt.Sprint(part), "--offset", fmt.Sprint(off))
	for _, want := range []string{"key:      " + uuidFor(120), `value:    {"id":"` + uuidFor(120), "trace: t120", "bin: hex:ff00", "missing_required"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	js := runDL(t, e, "show", "--config", pathA, "--partition", fmt.Sprint(part), "--offset", fmt.Sprint(off), "--json")
	var dj deadLetterJSON
	if err := json.Unmarshal([]byte(js), &dj); err != nil || dj.Key == nil || *dj.Key != uuidFor(120) || dj.Reason != "missing_required" || dj.Offset != off {
		t.Errorf("show --json = %s (%v)", js, err)
	}

	// The fix: v is optional again. A CHECK the codec cannot know about
	// refuses n = -1.
	if _, err := e.db.Exec(e.ctx, `ALTER TABLE public.items ADD CONSTRAINT items_n_check CHECK (n >= 0) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(e.ctx, `UPDATE sluice.dead_letters SET error = 'stale' WHERE value LIKE '%many%'`); err != nil {
		t.Fatal(err)
	}
	pathB := writeConfig(t, e.config(fmt.Sprintf(tableYAML, "ignore")))
	out = runDL(t, e, "replay", "--config", pathB, "--batch", "7")
	t.Logf("replay:\n%s", out)
	if !strings.Contains(out, "public.items: 51 dead letter(s) landed, 3 still fail") {
		t.Errorf("replay said:\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != 150 {
		t.Errorf("target holds %d rows, want 150", n)
	}
	if n := e.count(`SELECT count(*) FROM public.items WHERE v IS NULL AND src_offset IS NOT NULL`); n != 50 {
		t.Errorf("%d replayed rows, want 50 with v NULL and their offsets", n)
	}
	if n := e.count(`SELECT count(*) FROM public.items WHERE id = $1 AND v = 'first'`, uuidFor(5)); n != 1 {
		t.Errorf("the stored row of key 5 was not kept under on_conflict ignore")
	}
	left := map[string]string{}
	rows, err := e.db.Query(e.ctx, `SELECT convert_from(key, 'UTF8'), error FROM sluice.dead_letters`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, er string
		rows.Scan(&k, &er)
		left[k] = er
	}
	rows.Close()
	if len(left) != 3 || !strings.HasPrefix(left["m"], "malformed_json") || !strings.Contains(left[uuidFor(200)], "wrong_type") ||
		!strings.HasPrefix(left[uuidFor(201)], pgcopy.RejectedPrefix) || !strings.Contains(left[uuidFor(201)], "items_n_check") {
		t.Errorf("dead letters left: %q", left)
	}
	// A second replay finds nothing new to land.
	out = runDL(t, e, "replay", "--config", pathB)
	if !strings.Contains(out, "public.items: 0 dead letter(s) landed, 3 still fail") {
		t.Errorf("second replay said:\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != 150 {
		t.Errorf("target holds %d rows after a second replay, want 150", n)
	}
}

// TestDeadLetterRetention: expired dead letters go at start, in batches,
// and the rest stay.
func TestDeadLetterRetention(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r := e.start(cfg)
	var recs []*kgo.Record
	for i := range 2500 {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte(`{"id":`)})
	}
	e.produce(recs...)
	e.waitDrained(int64(len(recs)))
	r.stop()
	if _, err := e.db.Exec(e.ctx, `UPDATE sluice.dead_letters SET received_at = now() - interval '31 days' WHERE "offset" < 2100`); err != nil {
		t.Fatal(err)
	}
	y := configYAML(e.broker.Addrs(), e.url, "", "", fmt.Sprintf(tableYAML, "ignore"))
	y = append(y, "\ndead_letters:\n  retention: 30d\n"...)
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DeadLetters.Retention.D() != 30*24*time.Hour {
		t.Fatalf("retention = %v", cfg.DeadLetters.Retention.D())
	}
	e.start(cfg)
	e.waitFor("expired dead letters deleted", func() bool { return e.count(`SELECT count(*) FROM sluice.dead_letters`) == 400 })
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE "offset" < 2100`); n != 0 {
		t.Errorf("%d expired dead letters left", n)
	}
}

// TestReplayKilledHalfway runs the real binary's replay into a keyless
// table, kills it (SIGKILL, fault point replay) before the COMMIT of its
// fourth batch, and reruns it: every record lands exactly once.
func TestReplayKilledHalfway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sluice binary")
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-tags", "sluicefault", "-o", bin, "github.com/sluice-dev/sluice")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build sluice: %v\n%s", err, out)
	}
	e := newEnv(t, 3)
	const keyless = `
  - name: public.log
    topics: [events]
    create: true
    columns:
      - {name: n, type: int8, path: n%s}
      - {name: src_partition, type: int4, source: kafka.partition}
      - {name: src_offset, type: int8, source: kafka.offset}
`
	cfgA := e.config(fmt.Sprintf(keyless, ", required: true"))
	r := e.start(cfgA)
	const bad, good = 2000, 300
	var recs []*kgo.Record
	for i := range bad + good {
		v := fmt.Appendf(nil, `{"m":%d}`, i)
		if i%((bad+good)/good) == 0 {
			v = fmt.Appendf(nil, `{"n":%d}`, i)
		}
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: v})
	}
	e.produce(recs...)
	e.waitDrained(int64(len(recs)))
	r.stop()
	dead := e.count(`SELECT count(*) FROM sluice.dead_letters`)
	rows0 := e.count(`SELECT count(*) FROM public.log`)
	if dead+rows0 != int64(len(recs)) || dead < bad-50 {
		t.Fatalf("%d dead letters and %d rows for %d records", dead, rows0, len(recs))
	}
	path := writeConfig(t, e.config(fmt.Sprintf(keyless, "")))

	replay := func(fault string) (string, error) {
		cmd := exec.CommandContext(e.ctx, bin, "dead-letters", "replay", "--config", path, "--batch", "200")
		cmd.Env = append(os.Environ(), "SLUICE_FAULT="+fault)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := replay("replay:4")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("replay with SLUICE_FAULT=replay:4 ended with %v, want SIGKILL:\n%s", err, out)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != dead-600 {
		t.Errorf("after the kill %d dead letters are left, want %d (three batches of 200 committed)", n, dead-600)
	}
	if n := e.count(`SELECT count(*) FROM public.log`); n != rows0+600 {
		t.Errorf("after the kill the target holds %d rows, want %d", n, rows0+600)
	}
	out, err = replay("")
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	t.Logf("rerun: %s", out)
	out, err = replay("")
	if err != nil || !strings.Contains(out, "public.log: 0 dead letter(s) landed") {
		t.Fatalf("third run: %v\n%s", err, out)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
	if n, d := e.count(`SELECT count(*) FROM public.log`), e.count(`SELECT count(DISTINCT (src_partition, src_offset)) FROM public.log`); n != int64(len(recs)) || d != n {
		t.Errorf("target holds %d rows, %d distinct records; want each of the %d exactly once", n, d, len(recs))
	}
}

// TestReplayTombstoneDeletesRow: under deletes: true a tombstone that was
// dead-lettered (here: oversized) deletes its row when replayed, as the
// appliance would have, instead of overwriting it with NULLs.
func TestReplayTombstoneDeletesRow(t *testing.T) {
	e := newEnv(t, 1)
	tables := strings.Replace(fmt.Sprintf(tableYAML, "update"), "key: [id]", "key: [id]\n    deletes: true\n    max_record_bytes: 150", 1)
	r := e.start(e.config(tables))
	e.produce(item(1, "a"), item(2, "b"))
	// A tombstone whose JSON key is over 150 bytes: oversized.
	e.produce(&kgo.Record{Key: fmt.Appendf(nil, `{"id":%q,"pad":%q}`, uuidFor(1), strings.Repeat("x", 200))})
	e.waitDrained(3)
	r.stop()
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE error LIKE '%oversized%'`); n != 1 {
		t.Fatalf("%d oversized dead letters, want 1", n)
	}
	// The fix: the default max_record_bytes.
	cfg := e.config(strings.Replace(fmt.Sprintf(tableYAML, "update"), "key: [id]", "key: [id]\n    deletes: true", 1))
	out := runDL(t, e, "replay", "--config", writeConfig(t, cfg))
	if !strings.Contains(out, "public.items: 1 dead letter(s) landed, 0 still fail") {
		t.Errorf("replay said:\n%s", out)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letters left after replay", n)
	}
	if n := e.count(`SELECT count(*) FROM public.items WHERE id = $1`, uuidFor(1)); n != 0 {
		t.Errorf("the replayed tombstone left row 1 (%d row(s))", n)
	}
	if n := e.count(`SELECT count(*) FROM public.items WHERE id = $1 AND v = 'b'`, uuidFor(2)); n != 1 {
		t.Errorf("row 2 changed")
	}
}

// TestReplayDebeziumChanges: Debezium change events that were
// dead-lettered (oversized) apply as the appliance applies them once the
// limit is raised: an update carrying the TOAST placeholder keeps the
// stored value of that column, and a delete removes its row.
func TestReplayDebeziumChanges(t *testing.T) {
	e := newEnv(t, 1)
	tbl := strings.Replace(debeziumTable, "    truncate: true\n", "", 1)
	r := e.start(e.config(strings.Replace(tbl, "key: [id]", "key: [id]\n    max_record_bytes: 400", 1)))
	pad := strings.Repeat("x", 300)
	e.produce(
		dbz("c", 100, "", orderRow(1, "apple", 1)),
		dbz("c", 110, "", orderRow(2, "pear", 1)),
		// Both oversized: dead letters.
		dbz("u", 200, orderRow(1, "apple", 1), fmt.Sprintf(`{"id":1,"name":"__debezium_unavailable_value","qty":3,"pad":%q}`, pad)),
		dbz("d", 210, fmt.Sprintf(`{"id":2,"name":"pear","qty":1,"pad":%q}`, pad), ""),
	)
	e.waitDrained(4)
	r.stop()
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE error LIKE '%oversized%'`); n != 2 {
		t.Fatalf("%d oversized dead letters, want 2", n)
	}
	out := runDL(t, e, "replay", "--config", writeConfig(t, e.config(tbl)))
	if !strings.Contains(out, "public.orders: 2 dead letter(s) landed, 0 still fail") {
		t.Errorf("replay said:\n%s", out)
	}
	var name *string
	var qty, lsn int64
	if err := e.db.QueryRow(e.ctx, `SELECT name, qty, lsn FROM public.orders WHERE id = 1`).Scan(&name, &qty, &lsn); err != nil {
		t.Fatal(err)
	}
	if name == nil || *name != "apple" || qty != 3 || lsn != 200 {
		t.Errorf("order 1 after replaying its update with a TOAST placeholder: name=%v qty=%d lsn=%d, want apple, 3, 200", name, qty, lsn)
	}
	if n := e.count(`SELECT count(*) FROM public.orders WHERE id = 2`); n != 0 {
		t.Errorf("order 2 still exists after replaying its delete")
	}
}

// TestReplayRecordsWithoutRow: dead-lettered records that decode now but
// make no row (a Debezium tombstone, a message event) are skipped as the
// appliance skips them: their dead letters go, in a batch with a row that
// lands. A truncate event under truncate: true is not applied by replay
// (it would empty the table of the rows landed since): it stays, saying so.
func TestReplayRecordsWithoutRow(t *testing.T) {
	e := newEnv(t, 1)
	r := e.start(e.config(strings.Replace(debeziumTable, "key: [id]", "key: [id]\n    max_record_bytes: 250", 1)))
	pad := strings.Repeat("x", 300)
	msg := dbz("m", 120, "", "")
	msg.Value = fmt.Appendf(msg.Value[:len(msg.Value)-1], `,"message":{"prefix":"p","content":%q}}`, pad)
	trunc := dbz("t", 130, "", "")
	trunc.Key = fmt.Appendf(nil, `{"pad":%q}`, pad)
	e.produce(
		dbz("c", 100, "", orderRow(1, "apple", 1)),
		&kgo.Record{Key: fmt.Appendf(nil, `{"id":1,"pad":%q}`, pad)}, // a tombstone
		msg,
		trunc,
		dbz("c", 140, "", fmt.Sprintf(`{"id":2,"name":%q,"qty":1}`, pad)),
	)
	e.waitDrained(5)
	r.stop()
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE error LIKE '%oversized%'`); n != 4 {
		t.Fatalf("%d oversized dead letters, want 4", n)
	}
	out := runDL(t, e, "replay", "--config", writeConfig(t, e.config(debeziumTable)))
	if !strings.Contains(out, "public.orders: 1 dead letter(s) landed, 2 skipped (no row to write, as the appliance skips them), 1 still fail") {
		t.Errorf("replay said:\n%s", out)
	}
	var e1 string
	if err := e.db.QueryRow(e.ctx, `SELECT error FROM sluice.dead_letters`).Scan(&e1); err != nil || !strings.Contains(e1, "replay does not truncate") {
		t.Errorf("the dead letter left: %q, %v; want the truncate event's, saying replay does not truncate", e1, err)
	}
	if n := e.count(`SELECT count(*) FROM public.orders`); n != 2 {
		t.Errorf("public.orders holds %d rows, want 2 (nothing truncated)", n)
	}
	// A second replay steps over the truncate event again.
	if out := runDL(t, e, "replay", "--config", writeConfig(t, e.config(debeziumTable))); !strings.Contains(out, "public.orders: 0 dead letter(s) landed, 1 still fail") {
		t.Errorf("second replay said:\n%s", out)
	}
}

// TestReplayTemplateTable: the dead letters of a {topic} template's table
// are stored under the name the template made; list, show and replay take
// that name with --table, and replay without --table replays them too.
func TestReplayTemplateTable(t *testing.T) {
	e := newEnv(t, 1)
	const tmpl = `
  - name: public.{topic}
    topics: [events]
    key: [id]
    columns:
      - {name: id, type: uuid, path: id, required: true}
      - {name: v, type: text, path: v, required: %s}
`
	r := e.start(e.config(fmt.Sprintf(tmpl, "true")))
	for i := range 2 {
		e.produce(&kgo.Record{Key: []byte(uuidFor(i)), Value: fmt.Appendf(nil, `{"id":%q}`, uuidFor(i))}) // lacks v
	}
	e.waitDrained(2)
	r.stop()
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE target = 'public.events'`); n != 2 {
		t.Fatalf("%d dead letters for public.events, want 2", n)
	}
	path := writeConfig(t, e.config(fmt.Sprintf(tmpl, "false")))
	if out := runDL(t, e, "list", "--config", path, "--table", "public.events"); strings.Count(out, "\n") != 2 {
		t.Errorf("list --table public.events:\n%s", out)
	}
	var out, errb bytes.Buffer
	if err := DeadLettersMain(e.ctx, []string{"list", "--config", path, "--table", "other.events"}, &out, &errb); !errors.Is(err, ErrUsage) {
		t.Errorf("list --table other.events (no template makes it): %v, want a usage error", err)
	}
	// A configuration without the template replays nothing of them, and says so.
	got := runDL(t, e, "replay", "--config", writeConfig(t, e.config(fmt.Sprintf(tableYAML, "ignore"))))
	if !strings.Contains(got, "public.events (topic events): not replayed") {
		t.Errorf("replay without the template said:\n%s", got)
	}
	got = runDL(t, e, "replay", "--config", path, "--table", "public.events", "--offset", "0")
	if !strings.Contains(got, "public.events: 1 dead letter(s) landed, 0 still fail") {
		t.Errorf("replay --table public.events said:\n%s", got)
	}
	got = runDL(t, e, "replay", "--config", path)
	if !strings.Contains(got, "public.events: 1 dead letter(s) landed, 0 still fail") {
		t.Errorf("replay said:\n%s", got)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letter(s) left", n)
	}
	if n := e.count(`SELECT count(*) FROM public.events`); n != 2 {
		t.Errorf("public.events holds %d rows, want 2", n)
	}
}
