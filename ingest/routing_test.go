package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestExpandTable(t *testing.T) {
	for _, c := range []struct{ name, topic, want string }{
		{"replica.{topic.-1}", "shop.public.orders", "replica.orders"},
		{"replica.{topic.1}_{topic.2}", "shop.public.orders", "replica.public_orders"},
		{"raw.{topic}", "Shop-Events.v2", "raw.shop_events_v2"},
		{"t_{topic.0}", "9lives", "t_t_9lives"},
		{"x.{topic.3}", "a.b", ""},
	} {
		got, ok := expandTable(c.name, c.topic)
		if c.want == "" {
			if ok {
				t.Errorf("expandTable(%q, %q) = %q, want a failure", c.name, c.topic, got)
			}
			continue
		}
		if !ok || got != c.want {
			t.Errorf("expandTable(%q, %q) = %q, %v; want %q", c.name, c.topic, got, ok, c.want)
		}
	}
}

// TestRoutingPatternsAndTemplates: a /regex/ topic with a {topic.N} table
// name lands each matching topic in its own table, created on first use,
// including a topic created while the appliance runs; a topic the
// template cannot name halts its partitions with the reason in /readyz.
func TestRoutingPatternsAndTemplates(t *testing.T) {
	e := newEnv(t, 1)
	adm := kadm.NewClient(e.prod)
	for _, tp := range []string{"shop.public.orders", "shop.public.items"} {
		if _, err := adm.CreateTopic(e.ctx, 1, -1, nil, tp); err != nil {
			t.Fatal(err)
		}
	}
	cfg := e.config(`
  - name: replica.{topic.-1}
    topics: ["/shop\\.public\\..*/", "shop"]
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: v, type: text, path: v}
`)
	r := e.start(cfg, func(a *App) { a.periods.topicCheck = 100e6 })
	rec := func(topic string, id int) *kgo.Record {
		return &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, `{"id":%d,"v":"%s"}`, id, topic)}
	}
	e.produce(rec("shop.public.orders", 1), rec("shop.public.orders", 2), rec("shop.public.items", 1))
	e.waitFor("orders and items to land", func() bool {
		return e.count(`SELECT count(*) FROM pg_tables WHERE schemaname = 'replica'`) == 2 &&
			e.count(`SELECT (SELECT count(*) FROM replica.orders) + (SELECT count(*) FROM replica.items)`) == 3
	})
	// A topic created while running.
	if _, err := adm.CreateTopic(e.ctx, 1, -1, nil, "shop.public.users"); err != nil {
		t.Fatal(err)
	}
	e.produce(rec("shop.public.users", 7))
	e.waitFor("the new topic's table and row", func() bool {
		return e.count(`SELECT count(*) FROM pg_tables WHERE schemaname = 'replica' AND tablename = 'users'`) == 1 &&
			e.count(`SELECT count(*) FROM replica.users WHERE id = 7`) == 1
	})
	// "shop" has no part -1 ... it has one part, so it names replica.shop;
	// a name the template cannot make is tested by expandTable above.
	if _, err := adm.CreateTopic(e.ctx, 1, -1, nil, "shop"); err != nil {
		t.Fatal(err)
	}
	e.produce(rec("shop", 9))
	e.waitFor("the named topic's row", func() bool {
		return e.count(`SELECT count(*) FROM pg_tables WHERE schemaname = 'replica' AND tablename = 'shop'`) == 1 &&
			e.count(`SELECT count(*) FROM replica.shop WHERE id = 9`) == 1
	})
	if !r.app.Ready() {
		t.Errorf("not ready: %s", r.app.notReady())
	}
	// Each instance has a key filter, drawn on the process's budget.
	for _, tb := range r.app.tableList() {
		if tb.seen == nil {
			t.Errorf("table %s has no key filter", tb.cfg.Name)
		}
	}
	if n, most := r.app.filters.Size(), int(cfg.Batch.MaxInflightBytes/filterShare); n == 0 || n > most {
		t.Errorf("the key filters hold %d bytes, want some and at most %d", n, most)
	}
}

// TestRoutingUnroutableTopic: a topic the table name's template cannot
// name is not consumed: its partition halts and /readyz says why.
func TestRoutingUnroutableTopic(t *testing.T) {
	e := newEnv(t, 1)
	cfg := e.config(`
  - name: replica.{topic.2}
    topics: [events]
    columns:
      - {name: v, type: text, path: v}
`)
	r := e.start(cfg)
	e.produce(&kgo.Record{Value: []byte(`{"v":"x"}`)})
	e.waitFor("/readyz to name the unrouted partition", func() bool {
		return strings.Contains(r.app.notReady(), "unrouted partitions: events/0")
	})
	if why := r.app.notReady(); !strings.Contains(why, "asks for a part the topic does not have") {
		t.Errorf("/readyz reason: %q", why)
	}
	// The unrouted partition has no table. Every per-table sum over the
	// partitions (the status sampler, the metrics, the progress log, the
	// status page) skips it: they once dereferenced its nil table, which
	// panicked when such a partition was assigned before Run's first
	// sample.
	a := r.app
	a.sample(time.Now())
	var m bytes.Buffer
	a.writePartitionMetrics(&m)
	if !strings.Contains(m.String(), `sluice_consumer_lag{topic="events",partition="0"}`) {
		t.Errorf("metrics lack the unrouted partition's lag:\n%s", m.String())
	}
	a.logProgress(nil, a.progressCounts(), time.Second)
	st := a.Status()
	found := false
	for _, p := range st.Partitions {
		if p.Topic == "events" && p.Partition == 0 {
			found = true
			if p.Table != "" || !p.Halted {
				t.Errorf("status of the unrouted partition: table %q, halted %v; want no table, halted", p.Table, p.Halted)
			}
		}
	}
	if !found {
		t.Errorf("status lacks the unrouted partition: %+v", st.Partitions)
	}
}
