package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// appliance simulates Sluice for one table: it creates the target and the
// dead-letter table and lands records the way the appliance must (bad ones
// as dead letters, good ones as rows, first write wins on a key).
type appliance struct {
	t     *testing.T
	conn  *pgx.Conn
	cols  []Column
	key   string
	table string
	max   int
	o     Options
	// guard, when set, lands like on_conflict update guarded by that
	// column (a newer value replaces the row); else first write wins.
	guard string
}

func newAppliance(t *testing.T, url string, o Options, table string) *appliance {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	o.EnsureDefaults()
	s := schemaByName(o.Schema)
	a := &appliance{t: t, conn: conn, cols: s.columns, key: s.key, table: table, max: o.MaxValueBytes, o: o}
	if o.EvolveAt > 0 {
		// The column evolve: add_columns adds for the second schema
		// version's field.
		a.cols = append(slices.Clip(a.cols), Column{Name: EvolvedField, Type: "text", Path: EvolvedField})
	}
	var defs []string
	for _, c := range a.cols {
		d := pgx.Identifier{c.Name}.Sanitize() + " " + c.Type
		if c.Name == a.key {
			d += " primary key"
		}
		defs = append(defs, d)
	}
	a.exec(`CREATE SCHEMA sluice`)
	a.exec(`CREATE TABLE sluice.dead_letters(topic text, partition int, "offset" bigint, key bytea, value bytea,
		headers jsonb, target text, error text, received_at timestamptz, group_id text NOT NULL DEFAULT 'sluice',
		primary key (group_id, target, topic, partition, "offset"))`)
	a.exec(`CREATE TABLE ` + quoteQualified(table) + ` (` + strings.Join(defs, ", ") + `)`)
	return a
}

func (a *appliance) exec(sql string, args ...any) int64 {
	a.t.Helper()
	tag, err := a.conn.Exec(context.Background(), sql, args...)
	if err != nil {
		a.t.Fatalf("%s: %v", sql, err)
	}
	return tag.RowsAffected()
}

// land lands records in order.
func (a *appliance) land(recs []*kgo.Record) {
	a.t.Helper()
	b := &pgx.Batch{}
	for _, r := range recs {
		a.queue(b, r.Topic, r.Partition, r.Offset, r.Key, r.Value, r.Headers)
	}
	if err := a.conn.SendBatch(context.Background(), b).Close(); err != nil {
		a.t.Fatal(err)
	}
}

func (a *appliance) queue(b *pgx.Batch, topic string, partition int32, offset int64, key, value []byte, headers []kgo.RecordHeader) {
	a.t.Helper()
	rec := &Rec{Value: value, Headers: headers}
	var reason string
	if registryFormat(a.o.Format) {
		var js []byte
		if js, reason = formatReason(a.t, a.o, a.cols, rec); reason == "" {
			value, headers = js, nil // decoded: the JSON event
		}
	} else {
		reason = rowReason(a.t, a.cols, rec, a.max)
	}
	if reason != "" {
		b.Queue(`INSERT INTO sluice.dead_letters VALUES ($1, $2, $3, $4, $5, '{}', $6, $7, now())`,
			topic, partition, offset, key, value, a.table, "column ?: "+reason+": simulated")
		return
	}
	if len(headers) > 0 {
		d, _ := zstd.NewReader(nil)
		defer d.Close()
		var err error
		if value, err = d.DecodeAll(value, nil); err != nil {
			a.t.Fatal(err)
		}
	}
	fields, err := parseObject(value, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	var names, params []string
	var args []any
	for k, c := range a.cols {
		names = append(names, pgx.Identifier{c.Name}.Sanitize())
		params = append(params, fmt.Sprintf("$%d::text::%s", k+1, c.Type))
		switch c.Source {
		case "kafka.offset":
			args = append(args, strconv.FormatInt(offset, 10))
			continue
		case "kafka.partition":
			args = append(args, strconv.Itoa(int(partition)))
			continue
		}
		head, rest, nested := strings.Cut(c.Path, ".")
		tok := findField(fields, head)
		if nested && tok != nil {
			inner, err := parseObject(tok, nil)
			if err != nil {
				a.t.Fatal(err)
			}
			tok = findField(inner, rest)
		}
		switch {
		case tok == nil || string(tok) == "null":
			args = append(args, nil)
		case tok[0] == '"':
			s, ok := jsonString(tok)
			if !ok {
				a.t.Fatalf("bad string %s", tok)
			}
			args = append(args, string(s))
		default:
			args = append(args, string(tok))
		}
	}
	sql := "INSERT INTO " + quoteQualified(a.table) + " AS t (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
	switch {
	case a.key != "" && a.guard != "":
		var set []string
		for _, n := range names {
			set = append(set, n+" = EXCLUDED."+n)
		}
		g := pgx.Identifier{a.guard}.Sanitize()
		sql += " ON CONFLICT (" + a.key + ") DO UPDATE SET " + strings.Join(set, ", ") + " WHERE t." + g + " < EXCLUDED." + g
	case a.key != "":
		sql += " ON CONFLICT (" + a.key + ") DO NOTHING"
	}
	b.Queue(sql, args...)
}

func (a *appliance) landOne(topic string, partition int32, offset int64, r *Rec) {
	a.t.Helper()
	b := &pgx.Batch{}
	a.queue(b, topic, partition, offset, r.Key, r.Value, r.Headers)
	if err := a.conn.SendBatch(context.Background(), b).Close(); err != nil {
		a.t.Fatal(err)
	}
}

func mustVerify(t *testing.T, url string, o VerifyOptions) Report {
	t.Helper()
	rep, err := Verify(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func summary(r Report) string {
	var b bytes.Buffer
	r.WriteSummary(&b)
	return b.String()
}

func TestVerifyReferenceRoundTripAndCorruption(t *testing.T) {
	addrs := testBroker(t)
	url := testDB(t, "verify_reference")
	manifest := filepath.Join(t.TempDir(), "run.json")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	err := LoadgenMain(ctx, []string{"--brokers", strings.Join(addrs, ","), "--records", "3000", "--seed", "21",
		"--dup-ratio", "0.05", "--bad-ratio", "0.035", "--bad", "oversized=0.005", "--max-value-bytes", "16384",
		"--transactional", "--abort-ratio", "0.3", "--txn-records", "100", "--value-compression", "zstd",
		"--compression", "snappy", "--manifest", manifest, "--quiet"}, &out, &errOut)
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, errOut.String())
	}
	m, err := ReadManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	recs := consume(t, addrs, "events", true, int(m.Stats.Committed.Total()))
	app := newAppliance(t, url, m.Options, "public.events")
	app.land(recs)

	vo := VerifyOptions{Gen: m.Options, Stats: &m.Stats}
	rep := mustVerify(t, url, vo)
	if !rep.OK() || rep.Rows != rep.ExpectedRows || rep.Rows == 0 || rep.ReasonMismatch != 0 || rep.Aborted.Total() == 0 {
		t.Fatalf("clean landing should verify:\n%s", summary(rep))
	}
	for k := KindMalformedJSON; k < numKinds; k++ {
		if !k.appliesTo(FormatJSON) {
			continue
		}
		if rep.Committed[k] == 0 || rep.DeadLettersByKind[k] != rep.Committed[k] {
			t.Fatalf("kind %s: %d dead letters for %d committed:\n%s", k, rep.DeadLettersByKind[k], rep.Committed[k], summary(rep))
		}
	}
	if rep.Committed != m.Stats.Committed {
		t.Fatalf("verify recomputed committed %v, loadgen counted %v", rep.Committed, m.Stats.Committed)
	}
	out.Reset()
	if err := VerifyMain(ctx, []string{"--postgres", url, "--manifest", manifest}, &out, &errOut); err != nil {
		t.Fatalf("verify command: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "OK: exactly once") {
		t.Fatalf("verify summary:\n%s", out.String())
	}

	// Corrupt the tables, one anomaly of each kind.
	app.exec(`DELETE FROM sluice.dead_letters WHERE ctid = (SELECT ctid FROM sluice.dead_letters ORDER BY partition, "offset" LIMIT 1)`)
	app.exec(`INSERT INTO sluice.dead_letters SELECT topic, partition, "offset" + 1000000, key, value, headers, target, error, received_at
		FROM sluice.dead_letters ORDER BY partition, "offset" LIMIT 1`)
	app.exec(`DELETE FROM public.events WHERE event_id = (SELECT event_id FROM public.events ORDER BY event_id LIMIT 1)`)
	app.exec(`UPDATE public.events SET amount = amount + 0.01 WHERE event_id = (SELECT event_id FROM public.events ORDER BY event_id OFFSET 1 LIMIT 1)`)
	var goodKey []byte
	if err := app.conn.QueryRow(ctx, `SELECT event_id::text FROM public.events ORDER BY event_id OFFSET 2 LIMIT 1`).Scan(&goodKey); err != nil {
		t.Fatal(err)
	}
	app.exec(`INSERT INTO sluice.dead_letters VALUES ('events', 0, 2000000, $1, '\x00', '{}', 'public.events', 'simulated', now())`, goodKey)
	app.exec(`INSERT INTO public.events (event_id, src_offset) VALUES ('7d1e3c0a-96a4-4f3e-8a55-8b0d2f3c9e11', 1)`)

	// A good and a bad record sent only in aborted transactions.
	g := NewGenerator(m.Options)
	committedIDs := map[[16]byte]bool{}
	var r Rec
	for i := int64(0); i < m.Stats.Records; i++ {
		g.At(i, &r)
		if !g.TxnAborted(r.Txn) {
			committedIDs[r.EventID] = true
		}
	}
	var abortedGood, abortedBad bool
	for i := int64(0); i < m.Stats.Records && !(abortedGood && abortedBad); i++ {
		g.At(i, &r)
		if !g.TxnAborted(r.Txn) || committedIDs[r.EventID] {
			continue
		}
		switch {
		case r.Kind == KindGood && !abortedGood:
			app.landOne("events", 1, 3000000, &r)
			abortedGood = true
		case r.Kind.Bad() && r.Kind != KindOversized && !abortedBad:
			app.landOne("events", 1, 3000001, &r)
			abortedBad = true
		}
	}
	if !abortedGood || !abortedBad {
		t.Fatal("the stream has no aborted good and bad records to inject")
	}

	rep = mustVerify(t, url, vo)
	want := Report{Missing: 1, WrongValue: 1, FromAborted: 1, Unexpected: 1, DeadLetterDuplicated: 1,
		DeadLetterAborted: 1, GoodDeadLettered: 1, InBoth: 1}
	got := Report{Missing: rep.Missing, WrongValue: rep.WrongValue, FromAborted: rep.FromAborted, Unexpected: rep.Unexpected,
		Duplicated: rep.Duplicated, BadInTarget: rep.BadInTarget, DeadLetterDuplicated: rep.DeadLetterDuplicated,
		DeadLetterUnexpected: rep.DeadLetterUnexpected, DeadLetterAborted: rep.DeadLetterAborted,
		DeadLetterWrongValue: rep.DeadLetterWrongValue, GoodDeadLettered: rep.GoodDeadLettered, InBoth: rep.InBoth}
	if fmt.Sprint(got) != fmt.Sprint(want) || rep.DeadLetterMissing.Total() != 1 || rep.OK() {
		t.Fatalf("corrupted tables: got anomalies\n%+v\nwant\n%+v\nmissing dead letters %v\n%s", got, want, rep.DeadLetterMissing, summary(rep))
	}
	if len(rep.Examples["wrong-valued rows"]) != 1 || !strings.Contains(rep.Examples["wrong-valued rows"][0], "column amount") {
		t.Fatalf("wrong value example should name the column: %v", rep.Examples["wrong-valued rows"])
	}
	out.Reset()
	err = VerifyMain(ctx, []string{"--postgres", url, "--manifest", manifest}, &out, &errOut)
	if err == nil || !strings.Contains(out.String(), "FAILED") || !strings.Contains(out.String(), "missing rows") {
		t.Fatalf("verify command on corrupted tables: %v\n%s", err, out.String())
	}

	// A dead letter whose bytes differ from the record's, and a bad record
	// that landed as a row.
	app.exec(`UPDATE sluice.dead_letters SET value = '\x01' WHERE "offset" = (SELECT min("offset") FROM sluice.dead_letters WHERE partition = 3)`)
	for i := int64(0); i < m.Stats.Records; i++ {
		g.At(i, &r)
		if r.Kind == KindMissingRequired && !g.TxnAborted(r.Txn) {
			app.exec(`INSERT INTO public.events (event_id, src_offset) VALUES ($1::text::uuid, 5)`, string(r.Key))
			break
		}
	}
	rep = mustVerify(t, url, vo)
	if rep.DeadLetterWrongValue != 1 || rep.BadInTarget != 1 || rep.InBoth != 2 {
		t.Fatalf("want 1 wrong-valued dead letter, 1 bad record in target, 2 in both:\n%s", summary(rep))
	}
}

func TestVerifyKeylessWide(t *testing.T) {
	addrs := testBroker(t)
	url := testDB(t, "verify_wide")
	o := Options{Seed: 31, Schema: SchemaWide, Records: 1500, DupRatio: 0.1, KeyCardinality: 300, Bad: allBad(0.01), MaxValueBytes: 8192}
	stats, err := Produce(context.Background(), addrs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := newAppliance(t, url, o, "public.wide")
	app.land(consume(t, addrs, "events", true, 1500))
	vo := VerifyOptions{Gen: o, Stats: &stats, Table: "public.wide"}
	rep := mustVerify(t, url, vo)
	if !rep.OK() || rep.Rows != stats.Committed[KindGood]+stats.Committed[KindDup] {
		t.Fatalf("keyless table holds every good and dup record:\n%s", summary(rep))
	}
	app.exec(`INSERT INTO public.wide SELECT * FROM public.wide LIMIT 1`)
	app.exec(`UPDATE public.wide SET meta = jsonb_set(meta, '{rank}', '-1') WHERE ctid = (SELECT ctid FROM public.wide OFFSET 10 LIMIT 1)`)
	rep = mustVerify(t, url, vo)
	if rep.Duplicated != 1 || rep.WrongValue != 1 || rep.OK() {
		t.Fatalf("want 1 duplicated and 1 wrong-valued row:\n%s", summary(rep))
	}
}

func TestVerifyConflictPolicies(t *testing.T) {
	addrs := testBroker(t)
	url := testDB(t, "verify_narrow")
	// Few keys, so most events are re-sent with new content.
	o := Options{Seed: 41, Schema: SchemaNarrow, Records: 2000, KeyCardinality: 50, Partitions: 0}
	stats, err := Produce(context.Background(), addrs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := newAppliance(t, url, o, "public.narrow")
	app.land(consume(t, addrs, "events", true, 2000)) // first write wins
	for _, tc := range []struct {
		policy string
		ok     bool
	}{{"ignore", true}, {"any", true}, {"update", false}} {
		rep := mustVerify(t, url, VerifyOptions{Gen: o, Stats: &stats, Table: "public.narrow", OnConflict: tc.policy})
		if rep.OK() != tc.ok || rep.Rows != 50 {
			t.Fatalf("policy %s: ok=%v, want %v:\n%s", tc.policy, rep.OK(), tc.ok, summary(rep))
		}
		if !tc.ok && rep.WrongValue == 0 {
			t.Fatalf("policy %s should report the first-write rows as wrong:\n%s", tc.policy, summary(rep))
		}
	}
}

// landClean produces o to a fresh broker, lands every committed record
// with the simulated appliance (first write wins) and checks that verify
// passes.
func landClean(t *testing.T, name string, o Options, table string) (string, *appliance, Stats) {
	t.Helper()
	addrs := testBroker(t)
	url := testDB(t, name)
	stats, err := Produce(context.Background(), addrs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := newAppliance(t, url, o, table)
	app.land(consume(t, addrs, "events", true, int(stats.Committed.Total())))
	rep := mustVerify(t, url, VerifyOptions{Gen: o, Stats: &stats, Table: table})
	if !rep.OK() || rep.Rows == 0 {
		t.Fatalf("clean landing should verify:\n%s", summary(rep))
	}
	return url, app, stats
}

// mustCatch checks that verify fails with an example of anomaly that
// names the damage (contains want).
func mustCatch(t *testing.T, url string, vo VerifyOptions, anomaly, want string) Report {
	t.Helper()
	vo.MaxExamples = 100
	rep := mustVerify(t, url, vo)
	if rep.OK() || !slices.ContainsFunc(rep.Examples[anomaly], func(e string) bool { return strings.Contains(e, want) }) {
		t.Fatalf("want %s naming %q:\n%s", anomaly, want, summary(rep))
	}
	return rep
}

// withFailed returns a copy of s whose producer also lost track of the
// records failed.
func withFailed(s Stats, failed ...int64) *Stats {
	c := s
	c.FailedIndices = append(slices.Clone(s.FailedIndices), failed...)
	return &c
}

// occurrences maps each good event id to the indices of its good, dup and
// update records, in order.
func occurrences(o Options, n int64) map[[16]byte][]int64 {
	g := NewGenerator(o)
	m := map[[16]byte][]int64{}
	for i := range n {
		if id := g.identify(i); !id.kind.Bad() {
			m[id.id] = append(m[id.id], i)
		}
	}
	return m
}

// sortedIDs returns the ids of m whose occurrence count keep accepts, in
// order.
func sortedIDs(m map[[16]byte][]int64, keep func(n int) bool) [][16]byte {
	var ids [][16]byte
	for id, idx := range m {
		if keep(len(idx)) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// TestVerifyUncertainSendsStillChecked: a send whose outcome the producer
// could not know only means that occurrence may or may not have landed.
// The event's acked occurrences must still be there, its row must hold a
// version that was sent, a good record is never dead-lettered and a bad
// one is never a row.
func TestVerifyUncertainSendsStillChecked(t *testing.T) {
	o := Options{Seed: 7, Records: 2000, DupRatio: 0.1, Bad: allBad(0.02), MaxValueBytes: 8192}
	url, app, stats := landClean(t, "verify_uncertain", o, "public.events")
	g := NewGenerator(o)
	occ := occurrences(o, stats.Records)
	multi := sortedIDs(occ, func(n int) bool { return n >= 2 })
	single := sortedIDs(occ, func(n int) bool { return n == 1 })
	if len(multi) < 2 || len(single) < 2 {
		t.Fatal("the stream has too few re-sent events")
	}
	// The producer could not confirm the last occurrence (a dup) of two
	// re-sent events, the only occurrence of two others and one bad
	// record; all were in fact delivered, as after a timeout.
	e1, e2, e3, e4 := multi[0], multi[1], single[0], single[1]
	failed := []int64{occ[e1][len(occ[e1])-1], occ[e2][len(occ[e2])-1], occ[e3][0], occ[e4][0]}
	var bad Rec
	for i := range stats.Records {
		if g.At(i, &bad); bad.Kind == KindMissingRequired {
			failed = append(failed, i)
			break
		}
	}
	vo := VerifyOptions{Gen: o, Stats: withFailed(stats, failed...), Table: "public.events"}
	if rep := mustVerify(t, url, vo); !rep.OK() || rep.Uncertain != 5 {
		t.Fatalf("the landing is still right with these sends uncertain:\n%s", summary(rep))
	}
	uuid := func(id [16]byte) string { return string(appendUUID(nil, id)) }

	// The first occurrence of e1 was acked: its row must exist.
	app.exec(`DELETE FROM public.events WHERE event_id = $1::uuid`, uuid(e1))
	mustCatch(t, url, vo, "missing rows", uuid(e1))
	// e2's row holds a value nobody sent.
	app.exec(`UPDATE public.events SET amount = amount + 1 WHERE event_id = $1::uuid`, uuid(e2))
	mustCatch(t, url, vo, "wrong-valued rows", uuid(e2))
	// e3 was sent once, uncertain: present, but with the values sent.
	app.exec(`UPDATE public.events SET user_agent = left(user_agent, 5) WHERE event_id = $1::uuid`, uuid(e3))
	mustCatch(t, url, vo, "wrong-valued rows", uuid(e3))
	// e4 was sent once, uncertain, and dead-lettered instead of landed.
	var r Rec
	g.At(occ[e4][0], &r)
	app.exec(`DELETE FROM public.events WHERE event_id = $1::uuid`, uuid(e4))
	app.exec(`INSERT INTO sluice.dead_letters VALUES ('events', 0, 4000000, $1, $2, '{}', 'public.events', 'column ?: wrong_type: simulated', now())`, r.Key, r.Value)
	mustCatch(t, url, vo, "good records dead-lettered", uuid(e4))
	// The uncertain bad record landed as a row next to its dead letter.
	app.exec(`INSERT INTO public.events (event_id, src_offset) VALUES ($1::text::uuid, 5)`, string(bad.Key))
	mustCatch(t, url, vo, "bad records in target", string(bad.Key))
}

// TestVerifyFailedRecordAbortsItsTxn: in a transactional run the producer
// aborts every transaction in which a record failed, so the failed record
// is aborted, not uncertain, and a row of it is caught.
func TestVerifyFailedRecordAbortsItsTxn(t *testing.T) {
	o := Options{Seed: 21, Records: 2000, DupRatio: 0.05, Transactional: true, AbortRatio: 0.3, TxnRecords: 100}
	url, app, stats := landClean(t, "verify_failed_aborted", o, "public.events")
	g := NewGenerator(o)
	occ := occurrences(o, stats.Records)
	var r Rec
	for i := range stats.Records {
		if g.At(i, &r); r.Kind == KindGood && g.TxnAborted(r.Txn) && len(occ[r.EventID]) == 1 {
			break
		}
	}
	if r.Kind != KindGood || !g.TxnAborted(r.Txn) {
		t.Fatal("no good record of an aborted transaction")
	}
	vo := VerifyOptions{Gen: o, Stats: withFailed(stats, r.Index), Table: "public.events"}
	if rep := mustVerify(t, url, vo); !rep.OK() || rep.Uncertain != 0 {
		t.Fatalf("a failed record of an aborted transaction is aborted:\n%s", summary(rep))
	}
	app.landOne("events", 1, 3000000, &r)
	mustCatch(t, url, vo, "rows from aborted txns", string(r.Key))
}

// TestVerifyUncertainTxnLandsWhole: a transaction whose commit outcome is
// unknown landed whole or not at all; part of it is caught either way.
func TestVerifyUncertainTxnLandsWhole(t *testing.T) {
	o := Options{Seed: 23, Records: 1000, Transactional: true, AbortRatio: 0.2, TxnRecords: 100}
	url, app, stats := landClean(t, "verify_uncertain_txn", o, "public.events")
	g := NewGenerator(o)
	txn := int64(0)
	for g.TxnAborted(txn) {
		txn++
	}
	// EndTransaction returned an error, but the transaction committed.
	st := stats
	st.UncertainTxns = []int64{txn}
	vo := VerifyOptions{Gen: o, Stats: &st, Table: "public.events"}
	if rep := mustVerify(t, url, vo); !rep.OK() || !slices.Equal(rep.LandedTxns, []int64{txn}) {
		t.Fatalf("the whole transaction landed:\n%s", summary(rep))
	}
	// Part of it lost: the reading closest to the tables (committed) names
	// the rows missing.
	var r Rec
	var key string
	for i := txn * 100; i < txn*100+10; i++ {
		g.At(i, &r)
		if app.exec(`DELETE FROM public.events WHERE event_id = $1::text::uuid`, string(r.Key)) == 1 && key == "" {
			key = string(r.Key)
		}
	}
	rep := mustCatch(t, url, vo, "missing rows", key)
	if !slices.Equal(rep.LandedTxns, []int64{txn}) {
		t.Fatalf("want transaction %d read as committed:\n%s", txn, summary(rep))
	}
}

// TestVerifyKeylessOccurrencesOneToOne: on a keyless table each row is one
// occurrence; one occurrence landing twice and another of the same event
// not at all is caught, and an event with an uncertain occurrence may have
// one row more, not five.
func TestVerifyKeylessOccurrencesOneToOne(t *testing.T) {
	o := Options{Seed: 31, Schema: SchemaWide, Records: 1500, DupRatio: 0.1, KeyCardinality: 300, MaxValueBytes: 8192}
	url, app, stats := landClean(t, "verify_keyless_swap", o, "public.wide")
	vo := VerifyOptions{Gen: o, Stats: &stats, Table: "public.wide"}
	var id, a, b string
	if err := app.conn.QueryRow(context.Background(), `SELECT id::text, (array_agg(ctid::text ORDER BY seq))[1], (array_agg(ctid::text ORDER BY seq DESC))[1]
		FROM public.wide GROUP BY id HAVING count(DISTINCT seq) > 1 ORDER BY id LIMIT 1`).Scan(&id, &a, &b); err != nil {
		t.Fatal(err)
	}
	var set []string
	for _, c := range wideColumns() {
		if c.Source == "" {
			n := pgx.Identifier{c.Name}.Sanitize()
			set = append(set, n+" = a."+n)
		}
	}
	// Row b takes row a's contents (keeping its Kafka position): b's
	// occurrence is lost, a's landed twice.
	app.exec(`UPDATE public.wide w SET `+strings.Join(set, ", ")+` FROM public.wide a WHERE w.ctid = $1::tid AND a.ctid = $2::tid`, b, a)
	mustCatch(t, url, vo, "duplicated rows", id)
	mustCatch(t, url, vo, "missing rows", id)

	occ := occurrences(o, stats.Records)
	var u [16]byte
	for _, k := range sortedIDs(occ, func(n int) bool { return n >= 2 }) {
		if string(appendUUID(nil, k)) != id {
			u = k
			break
		}
	}
	vo.Stats = withFailed(stats, occ[u][len(occ[u])-1])
	for range 5 {
		app.exec(`INSERT INTO public.wide SELECT * FROM public.wide WHERE id = $1::uuid LIMIT 1`, string(appendUUID(nil, u)))
	}
	if rep := mustCatch(t, url, vo, "duplicated rows", string(appendUUID(nil, u))); rep.Duplicated < 1+4 {
		t.Fatalf("want at least 4 duplicates of %s besides %s's:\n%s", appendUUID(nil, u), id, summary(rep))
	}
}

// TestVerifyKafkaPositions: the kafka.partition and kafka.offset columns
// name each record's own position, on the partition its key was written
// to, and dead letters' positions are no row's.
func TestVerifyKafkaPositions(t *testing.T) {
	o := Options{Seed: 33, Schema: SchemaWide, Records: 800, DupRatio: 0.1, Bad: allBad(0.02), MaxValueBytes: 8192}
	url, app, stats := landClean(t, "verify_positions", o, "public.wide")
	if stats.TopicPartitions != 4 {
		t.Fatalf("the run recorded %d partitions, want 4", stats.TopicPartitions)
	}
	vo := VerifyOptions{Gen: o, Stats: &stats, Table: "public.wide"}
	ctx := context.Background()
	var id string
	var p int32
	if err := app.conn.QueryRow(ctx, `SELECT id::text, src_partition FROM public.wide ORDER BY id LIMIT 1`).Scan(&id, &p); err != nil {
		t.Fatal(err)
	}
	app.exec(`UPDATE public.wide SET src_partition = $1, src_offset = 1000000 WHERE id = $2::uuid`, (p+1)%4, id)
	mustCatch(t, url, vo, "wrong Kafka positions", fmt.Sprintf("is not on partition %d", p))
	app.exec(`UPDATE public.wide w SET src_partition = d.partition, src_offset = d."offset"
		FROM (SELECT partition, "offset" FROM sluice.dead_letters ORDER BY partition, "offset" LIMIT 1) d WHERE w.id = $1::uuid`, id)
	mustCatch(t, url, vo, "wrong Kafka positions", "landed twice")
	app.exec(`UPDATE public.wide SET src_offset = 0, src_partition = 99`)
	mustCatch(t, url, vo, "wrong Kafka positions", "beyond the topic's 4 partitions")
}

// TestVerifyDeadLetterReason: a dead letter must give the reason its bad
// record was made for.
func TestVerifyDeadLetterReason(t *testing.T) {
	o := Options{Seed: 35, Records: 1000, Bad: allBad(0.03), MaxValueBytes: 8192}
	url, app, stats := landClean(t, "verify_dl_reason", o, "public.events")
	app.exec(`UPDATE sluice.dead_letters SET error = 'column amount: out_of_range: wrong reason' WHERE error NOT LIKE '%out_of_range%'`)
	rep := mustCatch(t, url, VerifyOptions{Gen: o, Stats: &stats, Table: "public.events"}, "dead letters with another reason", "wrong reason")
	if rep.ReasonMismatch != rep.DeadLetters-rep.Committed[KindOutOfRange] {
		t.Fatalf("every dead letter but the out_of_range ones has another reason:\n%s", summary(rep))
	}
}

// TestVerifyURLErrorHidesPassword: pgconn's parse error quotes the URL,
// masking the password only up to its first '@'; verify's error must hold
// none of it.
func TestVerifyURLErrorHidesPassword(t *testing.T) {
	// A CA file not mounted yet: a parse error quoting the URL.
	u := "postgres://sluice:Pw@Secret-9Zq@db.example.com/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
	_, err := verifyConn(context.Background(), u)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") || strings.Contains(err.Error(), "Secret-9Zq") {
		t.Fatalf("error %v, want the CA file's and no password", err)
	}
}

func TestCommandErrors(t *testing.T) {
	ctx := context.Background()
	var out, errOut bytes.Buffer
	for _, tc := range []struct {
		verify bool
		args   []string
		want   string
	}{
		{false, []string{"--seed", "1"}, "--records N or --duration D"},
		{false, []string{"--records", "10", "--bad", "bogus=0.1"}, "malformed_json"},
		{false, []string{"--records", "10", "--bad", "wrong_type"}, "KIND=RATIO"},
		{false, []string{"--records", "10", "--abort-ratio", "0.5"}, "enable transactional"},
		{false, []string{"--records", "10", "--compression", "brotli"}, "use one of none, gzip"},
		{false, []string{"--records", "10", "extra"}, "takes flags only"},
		{true, []string{"--records", "10"}, "--postgres"},
		{true, []string{"--postgres", "postgres://x@127.0.0.1:1/db"}, "--manifest FILE"},
		{true, []string{"--postgres", "postgres://x@127.0.0.1:1/db", "--manifest", "m.json", "--seed", "3"}, "--seed"},
		{true, []string{"--postgres", "postgres://x@127.0.0.1:1/db", "--manifest", filepath.Join(t.TempDir(), "none.json")}, "cannot read manifest"},
	} {
		var err error
		if tc.verify {
			err = VerifyMain(ctx, tc.args, &out, &errOut)
		} else {
			err = LoadgenMain(ctx, tc.args, &out, &errOut)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
	// Usage and flag errors name the command as typed: "sluice loadgen",
	// not "loadgen".
	errOut.Reset()
	if err := LoadgenMain(ctx, []string{"-h"}, &out, &errOut); err != nil || !strings.HasPrefix(errOut.String(), "Usage of sluice loadgen:") {
		t.Errorf("loadgen -h: %v, usage %.40q", err, errOut.String())
	}
	errOut.Reset()
	if err := VerifyMain(ctx, []string{"--bogus"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "(see sluice verify -h)") ||
		!strings.Contains(errOut.String(), "Usage of sluice verify:") {
		t.Errorf("verify --bogus: %v, usage %.40q", err, errOut.String())
	}
	// verify has no --duration, so its help must not send the user there.
	errOut.Reset()
	if err := VerifyMain(ctx, []string{"-h"}, &out, &errOut); err != nil || strings.Contains(errOut.String(), "--duration") {
		t.Errorf("verify -h: %v, or its usage names --duration, which verify lacks", err)
	}
	out.Reset()
	if err := LoadgenMain(ctx, []string{"--print-table-config", "public.events"}, &out, &errOut); err != nil ||
		!strings.HasPrefix(out.String(), "tables:\n- name: public.events\n") {
		t.Fatalf("print-table-config: %v\n%s", err, out.String())
	}
}
