package loadgen

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/devenv"
)

func cdcOptions(seed int64, records int64) Options {
	return Options{Workload: WorkloadCDC, Seed: seed, Records: records, Topic: "orders",
		DupRatio: 0.03, CDCReplays: 0.05, CDCUpdates: DefaultCDCUpdates, CDCDeletes: DefaultCDCDeletes, CDCToast: DefaultCDCToast}
}

// cdcEvent is a change event as tests read it back.
type cdcEvent struct {
	Before, After map[string]any
	Source        struct {
		LSN  int64 `json:"lsn"`
		TsMs int64 `json:"ts_ms"`
	}
	Op string
}

func parseCDC(t *testing.T, value []byte, wrapped bool) cdcEvent {
	t.Helper()
	var ev cdcEvent
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	var err error
	if wrapped {
		var w struct {
			Schema  json.RawMessage
			Payload cdcEvent
		}
		err = d.Decode(&w)
		if err == nil && !bytes.Contains(w.Schema, []byte(`"org.apache.kafka.connect.data.Decimal"`)) {
			t.Fatalf("the schema lacks the Decimal: %s", w.Schema)
		}
		ev = w.Payload
	} else {
		err = d.Decode(&ev)
	}
	if err != nil {
		t.Fatalf("cannot parse %s: %v", value, err)
	}
	return ev
}

// TestCDCStream: the stream is deterministic (At and Next agree, across
// generators), each delete is followed by its tombstone, fresh changes
// carry increasing LSNs, dups and replays re-send an earlier change
// verbatim (an upsert only of a row that still exists), and the events
// replayed in order onto a map give the generator's final table, TOAST
// placeholders keeping the value.
func TestCDCStream(t *testing.T) {
	for _, wrapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("schema=%v", wrapped), func(t *testing.T) {
			o := cdcOptions(5, 20000)
			o.CDCSchema = wrapped
			g := NewGenerator(o)
			var r Rec
			type sent struct {
				key, value []byte
				kind       Kind
			}
			var recs []sent
			for g.Next(&r) {
				recs = append(recs, sent{bytes.Clone(r.Key), bytes.Clone(r.Value), r.Kind})
			}
			// Random access and a second generator give the same bytes.
			g2 := NewGenerator(o)
			for _, i := range []int64{0, 1, 17, 5000, 4999, 19999, 3} {
				g2.At(i, &r)
				if !bytes.Equal(r.Key, recs[i].key) || !bytes.Equal(r.Value, recs[i].value) || r.Kind != recs[i].kind {
					t.Fatalf("At(%d) differs from the stream", i)
				}
			}

			var counts KindCounts
			table := map[string]map[string]any{} // id → row
			lastLSN := int64(-1)
			seen := map[string]int{} // value → first index
			for i, s := range recs {
				counts[s.kind]++
				if s.kind == KindTombstone {
					if i == 0 || recs[i-1].kind != KindDelete || !bytes.Equal(recs[i-1].key, s.key) || s.value != nil {
						t.Fatalf("record %d: a tombstone (key %s) not right after its delete", i, s.key)
					}
					continue
				}
				if s.kind == KindDelete && (i+1 == len(recs) || recs[i+1].kind != KindTombstone) && i+1 != len(recs) {
					t.Fatalf("record %d: a delete without its tombstone", i)
				}
				ev := parseCDC(t, s.value, wrapped)
				var key struct {
					ID      json.Number `json:"id"`
					Payload struct {
						ID json.Number `json:"id"`
					}
				}
				json.Unmarshal(s.key, &key)
				id := key.ID.String()
				if wrapped {
					id = key.Payload.ID.String()
				}
				switch s.kind {
				case KindDup, KindReplay:
					first, ok := seen[string(s.value)]
					if !ok {
						t.Fatalf("record %d (%s) re-sends nothing sent before", i, s.kind)
					}
					if ev.Op != "d" && table[id] == nil {
						t.Fatalf("record %d (%s) re-sends an upsert of deleted row %s (first sent as record %d)", i, s.kind, id, first)
					}
					if ev.Source.LSN > lastLSN {
						t.Fatalf("record %d (%s): lsn %d beyond the last fresh %d", i, s.kind, ev.Source.LSN, lastLSN)
					}
					continue
				}
				if _, dup := seen[string(s.value)]; dup {
					t.Fatalf("record %d (%s) repeats an earlier value", i, s.kind)
				}
				seen[string(s.value)] = i
				if ev.Source.LSN <= lastLSN {
					t.Fatalf("record %d: lsn %d after %d", i, ev.Source.LSN, lastLSN)
				}
				lastLSN = ev.Source.LSN
				switch ev.Op {
				case "c":
					if s.kind != KindGood || table[id] != nil {
						t.Fatalf("record %d: insert of %s (%s), stored %v", i, id, s.kind, table[id])
					}
					table[id] = ev.After
				case "u":
					old := table[id]
					if s.kind != KindUpdate || old == nil {
						t.Fatalf("record %d: update of missing row %s", i, id)
					}
					if ev.After["notes"] == toastPlaceholder {
						ev.After["notes"] = old["notes"]
					}
					if ev.After["customer"] != old["customer"] {
						t.Fatalf("record %d: the customer of %s changed", i, id)
					}
					table[id] = ev.After
				case "d":
					if s.kind != KindDelete || table[id] == nil || ev.After != nil || fmt.Sprint(ev.Before["id"]) != id {
						t.Fatalf("record %d: delete of %s: %+v", i, id, ev)
					}
					delete(table, id)
				default:
					t.Fatalf("record %d: op %q", i, ev.Op)
				}
			}
			z := g.cdc
			if len(table) != len(z.live) {
				t.Fatalf("%d rows from the events, %d in the generator's table", len(table), len(z.live))
			}
			for _, id := range z.live {
				row := &z.rows[id-1]
				got := table[fmt.Sprint(id)]
				total := fmt.Sprint(got["total"])
				if wrapped {
					b, _ := base64.StdEncoding.DecodeString(total)
					total = new(big.Int).SetBytes(b).String() // positive values
					if total != fmt.Sprint(row.total) {
						t.Fatalf("row %d: total %s, want %d cents", id, total, row.total)
					}
				} else if total != string(appendFixed(nil, row.total, 2)) {
					t.Fatalf("row %d: total %s, want %d cents", id, total, row.total)
				}
				wantNotes := any(nil)
				if !row.notesNull {
					wantNotes = string(appendCorpus(nil, int(row.notesOff), int(row.notesLen)))
				}
				if got["notes"] != wantNotes {
					t.Fatalf("row %d: notes %.40v, want %.40v", id, got["notes"], wantNotes)
				}
			}
			n := float64(len(recs))
			for k, want := range map[Kind]float64{KindUpdate: o.CDCUpdates, KindDelete: o.CDCDeletes, KindDup: o.DupRatio, KindReplay: o.CDCReplays} {
				if f := float64(counts[k]) / n; f < want*0.7 || f > want*1.3 {
					t.Errorf("%s: %.3f of the records, want about %.3f", k, f, want)
				}
			}
			if counts[KindTombstone] != counts[KindDelete] || z.toasts == 0 {
				t.Errorf("%d tombstones for %d deletes, %d TOAST placeholders", counts[KindTombstone], counts[KindDelete], z.toasts)
			}
			t.Logf("%d records: %v; %d rows live, %d TOAST placeholders", len(recs), counts, len(z.live), z.toasts)
		})
	}
}

func TestCDCDecimalBase64(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 255, 256, 333, 32767, 32768, 10099, -1, -128, -129, 1 << 40} {
		b, err := base64.StdEncoding.DecodeString(string(appendDecimalBase64(nil, v)))
		if err != nil {
			t.Fatal(err)
		}
		got := new(big.Int).SetBytes(b)
		if b[0]&0x80 != 0 {
			got.Sub(got, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		if got.Int64() != v {
			t.Errorf("%d encodes as %x (%d)", v, b, got)
		}
		if len(b) > 1 && (b[0] == 0 && b[1]&0x80 == 0 || b[0] == 0xff && b[1]&0x80 != 0) {
			t.Errorf("%d encodes as %x: not the shortest form", v, b)
		}
	}
	if s := string(appendDecimalBase64(nil, 333)); s != "AU0=" {
		t.Errorf("333 is %s, want AU0= (docs/change-streams.md)", s)
	}
}

func TestCDCValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Workload: "cdc", Format: FormatProtobuf}, "Debezium's JSON or AvroConverter's Avro"},
		{Options{Workload: "cdc", Keys: KeysNull}, "{\"id\": N}"},
		{Options{Workload: "cdc", Transactional: true}, "transactions"},
		{Options{Workload: "cdc", CDCUpdates: 0.8, CDCDeletes: 0.3}, "at most 1"},
		{Options{Workload: "cdc", CDCToast: 2}, "cdc toast"},
		{Options{Workload: "cdc", UpdateRatio: 0.1}, "--cdc-updates"},
		{Options{Workload: "cdc", Bad: map[Kind]float64{KindWrongType: 0.1}}, "bad records"},
		{Options{Workload: "changes"}, "events or cdc"},
	} {
		if err := tc.o.EnsureDefaults().Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.o, err, tc.want)
		}
	}
}

// drainCDC runs the appliance in this process on the cdc table until the
// offsets stored in url reach the log end of topic.
func drainCDC(t *testing.T, url string, addrs []string, topic, table string, batchRows int) {
	t.Helper()
	drainCDCConfig(t, url, addrs, topic, batchRows, "tables:\n"+TableSpec{Workload: WorkloadCDC, Table: table, Topic: topic}.YAML())
}

// drainCDCConfig is drainCDC with the configuration's tables section (and
// any schema_registry section before it) given whole.
func drainCDCConfig(t *testing.T, url string, addrs []string, topic string, batchRows int, tables string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	y := fmt.Sprintf(`
kafka:
  brokers: [%q]
  group: cdc-test-%d
postgres:
  url: %q
  max_conns: 2
batch:
  max_rows: %d
  max_age: 50ms
metrics:
  listen: ""
%s`, addrs[0], time.Now().UnixNano(), url, batchRows, tables)
	cfg, err := ingest.Parse([]byte(y), func(string) string { return "" })
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if err := ingest.Migrate(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	app, err := ingest.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	appCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(appCtx) }()
	ends, err := devenv.LogEnds(ctx, addrs, topic)
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	if err := devenv.WaitStored(ctx, db, cfg.Postgres.Schema, cfg.Kafka.Group, topic, ends, done, 20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCDCVerify lands cdc streams through the appliance and verifies the
// target against the source's final state: one record per batch, where
// every value must be exact, and batches of 500 with and without the
// schema wrapper, where a TOAST placeholder may keep the value stored
// before its batch (AllowStaleToast) and nothing else may differ. Then it
// damages the target in each way verify must catch.
func TestCDCVerify(t *testing.T) {
	addrs := testBroker(t)
	ctx := context.Background()
	for _, tc := range []struct {
		wrapped bool
		records int64
		batch   int
	}{{false, 1200, 1}, {false, 6000, 500}, {true, 6000, 500}} {
		name := fmt.Sprintf("cdc_schema_%v_batch_%d", tc.wrapped, tc.batch)
		t.Run(name, func(t *testing.T) {
			o := cdcOptions(9, tc.records)
			o.CDCSchema, o.Topic, o.Partitions = tc.wrapped, name, 3
			stats, err := Produce(ctx, addrs, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			url := testDB(t, name)
			drainCDC(t, url, addrs, o.Topic, "public.orders", tc.batch)
			vo := VerifyOptions{Gen: o, Stats: &stats, Table: "public.orders"}
			rep := mustVerify(t, url, vo)
			if tc.batch == 1 && !rep.OK() || rep.WrongValue != rep.ToastStale || rep.Rows == 0 || rep.Rows != rep.ExpectedRows ||
				rep.Committed[KindReplay] == 0 || rep.ToastSent == 0 {
				t.Fatalf("\n%s", summary(rep))
			}
			t.Logf("strict: %d stale TOAST notes of %d placeholders", rep.ToastStale, rep.ToastSent)
			if tc.batch == 1 {
				return
			}
			vo.AllowStaleToast = true
			if rep = mustVerify(t, url, vo); !rep.OK() {
				t.Fatalf("allowing stale TOAST notes:\n%s", summary(rep))
			}
			db, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close(ctx)
			exec := func(sql string) {
				t.Helper()
				if _, err := db.Exec(ctx, sql); err != nil {
					t.Fatal(err)
				}
			}
			// A missing row, a wrong value, a resurrected deleted row and
			// a TOASTed notes that the row never held are each caught.
			g := NewGenerator(o)
			g.At(stats.Records-1, &Rec{})
			live := g.cdc.live[0]
			last := slices.Max(g.cdc.live)
			var deleted, toasted int64
			for id := int64(1); id <= int64(len(g.cdc.rows)); id++ {
				r := g.cdc.rows[id-1]
				if r.livePos < 0 && deleted == 0 {
					deleted = id
				}
				if r.livePos >= 0 && r.toast && toasted == 0 && id != live && id != last {
					toasted = id
				}
			}
			exec(fmt.Sprintf(`DELETE FROM public.orders WHERE id = %d`, live))
			exec(fmt.Sprintf(`UPDATE public.orders SET status = 'lost' WHERE id = %d`, last))
			exec(fmt.Sprintf(`INSERT INTO public.orders (id, customer, lsn) VALUES (%d, 'ghost', 1)`, deleted))
			exec(fmt.Sprintf(`UPDATE public.orders SET notes = 'notes it never had' WHERE id = %d`, toasted))
			rep = mustVerify(t, url, vo)
			if rep.OK() || rep.Missing != 1 || rep.WrongValue != 2 || rep.Unexpected != 1 || rep.ToastStale == 0 {
				t.Fatalf("damaged target:\n%s", summary(rep))
			}
			exec(fmt.Sprintf(`INSERT INTO sluice.dead_letters (group_id, target, topic, partition, "offset", key, value, error, received_at)
				VALUES ('x', 'public.orders', %s, 0, 999999, '\x31', '\x32', 'bad_envelope: test', now())`, pgQuote(o.Topic)))
			if rep = mustVerify(t, url, vo); rep.DeadLetterUnexpected != 1 {
				t.Fatalf("a dead letter:\n%s", summary(rep))
			}
		})
	}
}

func pgQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestCDCVerifyUncertainChange: a change whose delivery is unknown does
// not exempt its row for good: once a later change of the row was acked,
// that change fixes the row's final state.
func TestCDCVerifyUncertainChange(t *testing.T) {
	addrs := testBroker(t)
	ctx := context.Background()
	o := cdcOptions(9, 1200)
	o.Topic, o.Partitions = "cdc_uncertain", 3
	stats, err := Produce(ctx, addrs, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := testDB(t, "cdc_uncertain")
	drainCDC(t, url, addrs, o.Topic, "public.orders", 1)
	g := NewGenerator(o)
	var r Rec
	insertAt := map[int64]int64{}
	for i := range stats.Records {
		if g.At(i, &r); r.Kind == KindGood {
			insertAt[r.ID] = i
		}
	}
	// Rows changed after their insert, and deleted rows.
	var live, deleted []int64
	for id := int64(1); id <= int64(len(g.cdc.rows)); id++ {
		switch row := g.cdc.rows[id-1]; {
		case row.livePos >= 0 && row.at > insertAt[id]:
			live = append(live, id)
		case row.livePos < 0:
			deleted = append(deleted, id)
		}
	}
	if len(live) < 3 || len(deleted) < 1 {
		t.Fatal("too few updated or deleted rows")
	}
	// The producer could not confirm the inserts of these rows (they were
	// delivered); every later change of them was acked. Nor the last
	// update of live[2], delivered too: its row may hold the state before
	// or after it.
	last := g.cdc.rows[live[2]-1].at
	vo := VerifyOptions{Gen: o, Stats: withFailed(stats, insertAt[live[0]], insertAt[live[1]], insertAt[deleted[0]], last), Table: "public.orders"}
	if rep := mustVerify(t, url, vo); !rep.OK() || rep.Uncertain != 4 {
		t.Fatalf("the landing is still right with these inserts uncertain:\n%s", summary(rep))
	}
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := db.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(fmt.Sprintf(`UPDATE public.orders SET status = 'new', total = total + 1 WHERE id = %d`, live[0]))
	mustCatch(t, url, vo, "wrong-valued rows", fmt.Sprintf("id %d (", live[0]))
	exec(fmt.Sprintf(`DELETE FROM public.orders WHERE id = %d`, live[1]))
	mustCatch(t, url, vo, "missing rows", fmt.Sprintf("id %d (", live[1]))
	exec(fmt.Sprintf(`INSERT INTO public.orders (id, customer, lsn) VALUES (%d, 'ghost', 1)`, deleted[0]))
	mustCatch(t, url, vo, "unexpected rows", fmt.Sprintf("id %d was deleted", deleted[0]))
	exec(fmt.Sprintf(`UPDATE public.orders SET lsn = lsn + 1 WHERE id = %d`, live[2]))
	mustCatch(t, url, vo, "wrong-valued rows", fmt.Sprintf("id %d: lsn", live[2]))
	exec(fmt.Sprintf(`DELETE FROM public.orders WHERE id = %d`, live[2]))
	mustCatch(t, url, vo, "missing rows", fmt.Sprintf("id %d (", live[2]))
}
