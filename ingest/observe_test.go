package ingest

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	pgcopy "github.com/sluice-dev/sluice/copy"
)

// TestRebalancesCountedOnce: sluice_rebalances_total counts each
// rebalance of the group the instance takes part in once, as the group's
// generation does: a member joining, one leaving. Revoking partitions at
// the end of a generation and being assigned some in the next are one
// rebalance, not two.
func TestRebalancesCountedOnce(t *testing.T) {
	e := newEnv(t, 4)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	r1 := e.start(cfg)
	next := 0
	produce := func() {
		var recs []*kgo.Record
		for i := 0; i < 40; i++ {
			recs = append(recs, item(next, "x"))
			next++
		}
		e.produce(recs...)
		e.waitDrained(int64(next))
	}
	produce()
	_, first := r1.app.cl.GroupMetadata()
	check := func(when string) {
		t.Helper()
		_, gen := r1.app.cl.GroupMetadata()
		want := uint64(gen - first + 1)
		if got := r1.app.m.rebalances.Get(); got != want {
			t.Errorf("%s: sluice_rebalances_total = %d, want %d (generations %d to %d)", when, got, want, first, gen)
		}
	}
	check("alone")

	r2 := e.start(cfg)
	e.waitFor("the partitions to spread", func() bool {
		return r1.app.Stats().Partitions == 2 && r2.app.Stats().Partitions == 2
	})
	produce()
	check("after a second member joined")

	r2.stop()
	e.waitFor("r1 to own every partition", func() bool { return r1.app.Stats().Partitions == 4 })
	produce()
	check("after the second member left")
}

// TestConsumedCountsDataRecords: sluice_records_consumed_total counts the
// data records, not the transaction markers a transactional producer
// writes after each transaction, and sluice_bytes_consumed_total their
// keys and values, as their help says.
func TestConsumedCountsDataRecords(t *testing.T) {
	e := newEnv(t, 1)
	txp, err := kgo.NewClient(kgo.SeedBrokers(e.broker.Addrs()...), kgo.DefaultProduceTopic("events"), kgo.TransactionalID("consumed-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer txp.Close()
	var records, bytes uint64
	for tx := 0; tx < 3; tx++ {
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for j := 0; j < 10; j++ {
			r := item(tx*100+j, "x")
			r.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}
			recs = append(recs, r)
			records++
			bytes += uint64(len(r.Key) + len(r.Value))
		}
		if err := txp.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := txp.EndTransaction(e.ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	r := e.start(e.config(fmt.Sprintf(tableYAML, "ignore")))
	e.waitDrained(e.logEnd()) // past the markers too
	if n := e.count(`SELECT count(*) FROM public.items`); n != int64(records) {
		t.Fatalf("target holds %d rows, want %d", n, records)
	}
	s := r.app.Stats()
	if s.RecordsConsumed != records {
		t.Errorf("sluice_records_consumed_total = %d, want the %d data records (the log also holds 3 markers)", s.RecordsConsumed, records)
	}
	if s.BytesConsumed != bytes {
		t.Errorf("sluice_bytes_consumed_total = %d, want %d, the bytes of their keys and values", s.BytesConsumed, bytes)
	}
}

// TestStuckClearsWhenPartitionsGo: a table stuck on an instance stops
// being reported stuck there once another owner took every partition
// feeding it: the failing batches are dropped, the instance writes nothing
// to the table any more, and /readyz, sluice_stuck and the status page
// must not keep saying it is stuck until a restart.
func TestStuckClearsWhenPartitionsGo(t *testing.T) {
	e := newEnv(t, 2)
	r, batch := startAsRole(t, e, "sluice_gone")
	addr := r.app.MetricsAddr()
	batch(0, 100)
	e.waitDrained(100)
	if _, err := e.db.Exec(e.ctx, `REVOKE INSERT ON public.items FROM sluice_gone`); err != nil {
		t.Fatal(err)
	}
	batch(100, 100)
	e.waitFor("/readyz 503", func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == http.StatusServiceUnavailable })

	// A newer owner claims both partitions (what another member does once
	// this one is presumed dead): the retried batches are fenced.
	conn, err := pgconnFor(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgcopy.ClaimPartitions(e.ctx, conn, "sluice", "g", map[string][]int32{"events": {0, 1}}); err != nil {
		t.Fatal(err)
	}
	conn.Close(e.ctx)
	e.waitFor("the stuck batches to be fenced", func() bool { return r.app.m.fenced.Get() >= 1 })
	e.waitFor("/readyz 200 once no partition of the table is owned", func() bool {
		code, _ := get(t, "http://"+addr+"/readyz")
		return code == http.StatusOK
	})
	if v := metricValue(httpGet(t, "http://"+addr+"/metrics"), `sluice_stuck{table="public.items"}`); v != 0 {
		t.Errorf("sluice_stuck = %d after the table's partitions went to another owner", v)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != 100 {
		t.Errorf("target holds %d rows, want the 100 written before the revoke", n)
	}
}

// TestMetricsDocumented: every sluice_* family the appliance exports (each
// has a help text in metricHelp) is in docs/design.md's "Metrics" table,
// the contract, and in docs/operations.md's "Metrics and health" list,
// and neither names a family that does not exist.
func TestMetricsDocumented(t *testing.T) {
	section := func(path, heading string) string {
		t.Helper()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		i := strings.Index(s, "\n"+heading+"\n")
		if i < 0 {
			t.Fatalf("%s has no %q", path, heading)
		}
		s = s[i+len(heading)+2:]
		if j := strings.Index(s, "\n## "); j >= 0 {
			s = s[:j]
		}
		return s
	}
	names := regexp.MustCompile("`(sluice_[a-z_]+)")
	for _, doc := range []struct{ path, heading string }{
		{"../docs/design.md", "## Metrics"},
		{"../docs/operations.md", "## Metrics and health"},
	} {
		named := map[string]bool{}
		for _, m := range names.FindAllStringSubmatch(section(doc.path, doc.heading), -1) {
			named[m[1]] = true
			if _, ok := metricHelp[m[1]]; !ok {
				t.Errorf("%s, %q, names %s, which the appliance does not export", doc.path, doc.heading, m[1])
			}
		}
		for name := range metricHelp {
			if strings.HasPrefix(name, "sluice_") && !named[name] {
				t.Errorf("%s, %q, does not name %s, which the appliance exports", doc.path, doc.heading, name)
			}
		}
	}
}
