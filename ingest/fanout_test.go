package ingest

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFanOut: one topic feeds three tables: two by a header condition, one
// by a field condition, and a keyless archive taking every record. Each
// record lands in every table that takes it, once, across a restart; a
// record no conditioned table takes still lands in the archive, and with
// no archive it would be a no_route dead letter (checked on a second
// topic).
func TestFanOut(t *testing.T) {
	e := newEnv(t, 2)
	cfg := e.config(`
  - name: public.orders
    topics: [events]
    when: {header: type, equals: order}
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: v, type: text, path: v}
  - name: public.refunds
    topics: [events]
    when: {field: kind, equals: refund}
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
      - {name: v, type: text, path: v}
  - name: public.archive
    topics: [events]
    columns:
      - {name: id, type: int8, path: id}
      - {name: off, type: int8, source: kafka.offset}
  - name: public.typed
    topics: [events2]
    when: {header: type, equals: order}
    key: [id]
    columns:
      - {name: id, type: int8, path: id}
`)
	cfg.Batch.MaxRows = 7
	rec := func(topic string, id int, typ, kind string) *kgo.Record {
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "%d", id), Value: fmt.Appendf(nil, `{"id":%d,"v":"x%d","kind":%q}`, id, id, kind)}
		if typ != "" {
			r.Headers = []kgo.RecordHeader{{Key: "type", Value: []byte(typ)}}
		}
		return r
	}
	var first, second []*kgo.Record
	for i := range 60 {
		var r *kgo.Record
		switch i % 4 {
		case 0:
			r = rec("events", i, "order", "")
		case 1:
			r = rec("events", i, "", "refund")
		case 2:
			r = rec("events", i, "order", "refund") // both
		default:
			r = rec("events", i, "other", "") // the archive only
		}
		if i < 30 {
			first = append(first, r)
		} else {
			second = append(second, r)
		}
	}
	r := e.start(cfg)
	e.produce(first...)
	e.produce(rec("events2", 1, "order", ""), rec("events2", 2, "nope", ""))
	e.waitDrained(32)
	r.stop()
	e.start(cfg)
	e.produce(second...)
	e.waitDrained(62)
	for q, want := range map[string]int64{
		`SELECT count(*) FROM public.orders`:                                                           30,
		`SELECT count(*) FROM public.refunds`:                                                          30,
		`SELECT count(*) FROM public.archive`:                                                          60,
		`SELECT count(DISTINCT id) FROM public.archive`:                                                60,
		`SELECT count(*) FROM public.orders WHERE id % 4 NOT IN (0, 2)`:                                0,
		`SELECT count(*) FROM public.refunds WHERE id % 4 NOT IN (1, 2)`:                               0,
		`SELECT count(*) FROM public.typed`:                                                            1,
		`SELECT count(*) FROM sluice.dead_letters WHERE topic = 'events'`:                              0,
		`SELECT count(*) FROM sluice.dead_letters WHERE topic = 'events2' AND error LIKE 'no_route:%'`: 1,
	} {
		if got := e.count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
}
