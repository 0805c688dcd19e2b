package ingest

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
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
