package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/loadgen"
)

// TestCDCFaults mirrors a Debezium change stream (loadgen's cdc workload:
// inserts, updates, deletes with their tombstones, dups, replays of older
// changes, TOAST placeholders) into a format: debezium table guarded by the
// source LSN, in rounds: each round produces the next stretch of the
// stream while the appliance is killed with kill -9, at a random moment or
// at a chosen point of a batch transaction (SLUICE_FAULT), then restarts
// it, drains, and checks with loadgen.Verify that the target equals the
// source table's final state as of the records sent so far. A TOASTed
// notes kept from before its batch is accepted and counted (see
// docs/change-streams.md, "Unchanged TOAST columns"); every other column
// of every row, every delete and every rejected replay must be exact.
func TestCDCFaults(t *testing.T) {
	start := time.Now()
	const parts = 4
	tables := loadgen.TableSpec{Workload: loadgen.WorkloadCDC, Table: "public.orders", Topic: "orders"}.YAML() +
		"    - {name: src_partition, type: int4, source: kafka.partition}\n"
	c := newCluster(t, clusterOptions{
		partitions:     parts,
		topics:         []string{"orders"},
		tablesYAML:     tables,
		sessionTimeout: 3 * time.Second,
		batchYAML:      "  max_rows: 500\n  max_age: 100ms\n",
	})
	in := c.addInstance(0)
	c.migrate("public.orders")
	s := c.startSampler(map[string]string{"orders": "public.orders"})
	in.startAndWait(t)

	gen := loadgen.Options{Workload: loadgen.WorkloadCDC, Seed: 51, Topic: "orders", DupRatio: 0.03,
		CDCUpdates: loadgen.DefaultCDCUpdates, CDCDeletes: loadgen.DefaultCDCDeletes, CDCReplays: 0.05, CDCToast: loadgen.DefaultCDCToast}
	perRound := pick(int64(4000), 10000)
	faults := pick([]string{"kill", "merge", "commit", "committed"},
		[]string{"kill", "copy", "merge", "commit", "committed", "kill", "kill", "merge", "commit", "committed", "copy", "kill"})
	var total loadgen.Stats
	var stale, toasts int64
	for r, fault := range faults {
		round := gen
		round.Start, round.Records, round.Rate = int64(r)*perRound, int64(r+1)*perRound, 4000
		st := c.produce(round, "public.orders", "update")
		switch fault {
		case "kill":
			randomDelay(200*time.Millisecond, 600*time.Millisecond)
			in.kill()
		default:
			// Die at the point in one of the next few batches.
			in.kill()
			c.killAt(in, fault, 1+rand.IntN(3))
		}
		c.restart(in)
		rs := st.wait(t, 2*time.Minute)
		total.Records = rs.Records
		total.FailedIndices = append(total.FailedIndices, rs.FailedIndices...)
		for k := range total.Committed {
			total.Committed[k] += rs.Committed[k]
		}
		c.waitDrained(2 * time.Minute)
		rep, err := loadgen.Verify(c.ctx, c.url, loadgen.VerifyOptions{Gen: gen, Stats: &total, Table: "public.orders"})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		rep.WriteSummary(&b)
		if !rep.OK() || rep.Rows == 0 {
			t.Fatalf("round %d (%s): the target is not the source's final state:\n%s", r+1, fault, b.String())
		}
		if r == len(faults)-1 {
			t.Log(b.String())
		}
		stale, toasts = rep.ToastStale, rep.ToastSent
	}
	c.waitLagZero(time.Minute)
	s.halt()
	s.check(t)
	summary.add("cdc", "kill -9 faults, each followed by a drain and a check against the source's final state", "%d (%s)", len(faults), strings.Join(faults, ", "))
	summary.add("cdc", "verified public.orders after every fault", "OK: %d change records (%s)",
		total.Records, kindsLine(total.Committed))
	summary.add("cdc", "stale TOAST notes (kept from before their batch; each fails the check) / placeholders sent", "%d / %d", stale, toasts)
	summary.add("cdc", "test time (cluster start to last check)", "%v", time.Since(start).Round(100*time.Millisecond))
}

func kindsLine(c loadgen.KindCounts) string {
	var parts []string
	for _, k := range []loadgen.Kind{loadgen.KindGood, loadgen.KindUpdate, loadgen.KindDelete, loadgen.KindTombstone, loadgen.KindDup, loadgen.KindReplay} {
		name := k.String()
		if k == loadgen.KindGood {
			name = "insert"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, c[k]))
	}
	return strings.Join(parts, ", ")
}
