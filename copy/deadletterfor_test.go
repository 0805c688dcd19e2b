package pgcopy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestDeadLetterForOutsideTransaction: Batch.DeadLetterFor may be slow (the
// appliance re-reads the record from Kafka, for up to 30 s), so the writer
// calls it with no transaction open: otherwise the batch would hold its
// offsets rows and keys locked meanwhile, and PostgreSQL ends a session
// idle in a transaction for longer than idle_in_transaction_session_timeout,
// so such a batch would fail every time it is retried. Each path (keyed
// and keyless, a rejection by COPY and one by the merge, a fan-out batch)
// rejects its rows, and each call sees the writer's session outside any
// transaction; the rows, dead letters and offsets still commit together.
func TestDeadLetterForOutsideTransaction(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		keyed  bool
		domain bool // refused by COPY into the staging table, else by the merge
	}{
		{"keyed-merge", true, false},
		{"keyed-copy", true, true},
		{"keyless", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tbl := eventsTable()
			if !tc.keyed {
				tbl.Key = nil
			}
			logs := &Table{Name: "public.logs", Columns: []Column{{Name: "id", SQLType: "int8"}, {Name: "line", SQLType: "text"}}, Create: true}
			url, c, claims := setup(t, 1, tbl, logs)
			if tc.domain {
				mustExec(t, c, "CREATE DOMAIN goodtext AS text CHECK (VALUE <> 'bad'); ALTER TABLE events ALTER COLUMN val TYPE goodtext")
			} else {
				mustExec(t, c, "ALTER TABLE events ADD CONSTRAINT val_ok CHECK (val <> 'bad')")
			}
			mustExec(t, c, "ALTER TABLE logs ADD CONSTRAINT line_ok CHECK (line <> 'bad')")
			w, pid := connectedWriter(t, url)
			inTx := func() string {
				rows := queryRows(t, c, fmt.Sprintf("SELECT state FROM pg_stat_activity WHERE pid = %d", pid))
				if len(rows) == 1 && strings.HasPrefix(rows[0][0], "idle in transaction") {
					return rows[0][0]
				}
				return ""
			}
			var seen []string
			b := newBuilder(tbl, "t", 0)
			lb := newBuilder(logs, "t", 0)
			for i := range 100 {
				v := "good"
				if i == 17 || i == 60 {
					v = "bad"
				}
				b.add(int64(i), fInt8(int64(i)), fText(v), fInt8(int64(i)))
				line := "ok"
				if i == 33 {
					line = "bad"
				}
				lb.add(int64(i), fInt8(int64(i)), fText(line))
			}
			batch := b.batch(claims[0].Epoch, -1, 100)
			batch.DeadLetterFor = func(i int, err string) DeadLetter {
				if s := inTx(); s != "" {
					seen = append(seen, fmt.Sprintf("events %d: %s", i, s))
				}
				return DeadLetter{Topic: "t", Partition: 0, Offset: b.offs[i], Error: err, Reason: "rejected"}
			}
			also := lb.batch(0, 0, 0)
			also.Ranges = nil
			also.DeadLetterFor = func(i int, err string) DeadLetter {
				if s := inTx(); s != "" {
					seen = append(seen, fmt.Sprintf("logs %d: %s", i, s))
				}
				return DeadLetter{Topic: "t", Partition: 0, Offset: lb.offs[i], Target: "public.logs", Error: err, Reason: "rejected"}
			}
			batch.Also = []*Batch{also}
			res, err := w.Write(testCtx(t), batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) > 0 {
				t.Errorf("DeadLetterFor ran inside the batch's transaction: %v", seen)
			}
			if res.Rows != 98 || len(res.Rejected) != 2 || len(res.Also) != 1 || res.Also[0].Rows != 99 || len(res.Also[0].Rejected) != 1 {
				t.Fatalf("result %+v", res)
			}
			if got := queryRows(t, c, `SELECT target, "offset" FROM sluice.dead_letters ORDER BY 1, 2`); !reflect.DeepEqual(got,
				[][]string{{"public.events", "17"}, {"public.events", "60"}, {"public.logs", "33"}}) {
				t.Errorf("dead letters %v", got)
			}
			if n := queryInt(t, c, "SELECT count(*) FROM events WHERE val = 'good'"); n != 98 {
				t.Errorf("%d events, want 98", n)
			}
			if n := queryInt(t, c, "SELECT count(*) FROM logs WHERE line = 'ok'"); n != 99 {
				t.Errorf("%d logs, want 99", n)
			}
			if got := offsetsOf(t, c); got[0].NextOffset != 100 {
				t.Errorf("offsets %+v", got)
			}
		})
	}
}
