package ingest

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTwoGroupsKeepTheirDeadLetters: two consumer groups read one topic
// into two tables; each keeps every one of its dead letters, and each
// group's count matches its metric.
func TestTwoGroupsKeepTheirDeadLetters(t *testing.T) {
	e := newEnv(t, 2)
	const good, bad = 40, 12
	var recs []*kgo.Record
	for i := range good + bad {
		recs = append(recs, item(i, "v"))
	}
	for i := range bad {
		recs[i*4].Value = []byte(`{"id":"` + uuidFor(i*4) + `","n":"not a number"}`)
	}
	e.produce(recs...)
	var apps []*running
	for _, g := range []string{"g1", "g2"} {
		tables := strings.Replace(fmt.Sprintf(tableYAML, "ignore"), "public.items", "public.items_"+g, 1)
		cfg := e.config(tables)
		cfg.Kafka.Group = g
		apps = append(apps, e.start(cfg))
	}
	for i, g := range []string{"g1", "g2"} {
		e.waitFor("group "+g+" drained", func() bool {
			return e.count(`SELECT coalesce(sum(next_offset), 0) FROM sluice.offsets WHERE group_id = $1`, g) == good+bad
		})
		if n := e.count(`SELECT count(*) FROM public.items_` + g); n != good {
			t.Errorf("group %s: target holds %d rows, want %d", g, n, good)
		}
		if n := e.count(`SELECT count(*) FROM sluice.dead_letters WHERE group_id = $1 AND target = $2`, g, "public.items_"+g); n != bad {
			t.Errorf("group %s: %d dead letters stored, want %d", g, n, bad)
		}
		if got := apps[i].app.Stats().DeadLetters; got != bad {
			t.Errorf("group %s: sluice_dead_letters_total counts %d, want %d", g, got, bad)
		}
	}
}

// TestMissingTopic: a subscribed topic that does not exist is reported by
// /readyz, the metric and the log; once it is created its records are
// consumed and /readyz turns ready. With missing_topics: fail, Run fails
// naming the topic.
func TestMissingTopic(t *testing.T) {
	e := newEnv(t, 1)
	tables := strings.Replace(fmt.Sprintf(tableYAML, "ignore"), "topics: [events]", "topics: [ordres]", 1)
	cfg := e.config(tables)
	cfg.Kafka.MissingTopics = "fail"
	app, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Run(e.ctx); err == nil || !strings.Contains(err.Error(), "ordres") || !strings.Contains(err.Error(), "missing_topics") {
		t.Errorf("missing_topics: fail: Run = %v, want an error naming the topic and the key", err)
	}

	cfg = e.config(tables)
	r := e.start(cfg, func(a *App) { a.periods.topicCheck = 100 * time.Millisecond })
	base := "http://" + r.app.MetricsAddr()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a missing topic: status %d, want 503", resp.StatusCode)
	}
	if body := httpGet(t, base+"/readyz"); !strings.Contains(body, "ordres") {
		t.Errorf("/readyz does not name the missing topic: %q", body)
	}
	if body := httpGet(t, base+"/metrics"); !strings.Contains(body, "\nsluice_missing_topics 1\n") {
		t.Errorf("/metrics lacks sluice_missing_topics 1")
	}
	if _, err := kadm.NewClient(e.prod).CreateTopic(e.ctx, 1, -1, nil, "ordres"); err != nil {
		t.Fatal(err)
	}
	rec := item(1, "late")
	rec.Topic = "ordres"
	e.produce(rec)
	e.waitFor("/readyz ready after the topic was created", func() bool { return r.app.Ready() })
	e.waitFor("the new topic's record to land", func() bool {
		return e.count(`SELECT count(*) FROM public.items WHERE v = 'late'`) == 1
	})
	if body := httpGet(t, base+"/metrics"); !strings.Contains(body, "\nsluice_missing_topics 0\n") {
		t.Errorf("/metrics lacks sluice_missing_topics 0 after the topic was created")
	}
}

// TestMetricsMeanWhatTheySay: every family has # HELP with a text and
// # TYPE; rows written count what landed, duplicates within a batch and
// keys already stored have their own counters; a table's total lag is
// exposed.
func TestMetricsMeanWhatTheySay(t *testing.T) {
	e := newEnv(t, 1)
	r := e.start(e.config(fmt.Sprintf(tableYAML, "ignore")))
	// One batch: 10 keys, three of them twice.
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, item(i, "first"))
	}
	recs = append(recs, item(1, "dup"), item(2, "dup"), item(3, "dup"))
	e.produce(recs...)
	e.waitDrained(13)
	// Later batches: 4 keys already stored, 2 new.
	e.produce(item(4, "again"), item(5, "again"), item(6, "again"), item(7, "again"), item(100, "new"), item(101, "new"))
	e.waitDrained(19)
	body := httpGet(t, "http://"+r.app.MetricsAddr()+"/metrics")
	want := map[string]string{
		`sluice_rows_written_total{table="public.items"}`:      "12",
		`sluice_rows_deduplicated_total{table="public.items"}`: "3",
		`sluice_rows_ignored_total{table="public.items"}`:      "4",
		`sluice_table_lag{table="public.items"}`:               "0",
	}
	for series, v := range want {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil || m[1] != v {
			t.Errorf("%s = %v, want %s", series, m, v)
		}
	}
	helped, typed := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[0] == "#" && f[1] == "HELP":
			helped[f[2]] = true
		case len(f) == 4 && f[0] == "#" && f[1] == "TYPE":
			typed[f[2]] = true
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		fam := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := strings.CutSuffix(name, suf); ok && typed[f] {
				fam = f
			}
		}
		if !helped[fam] || !typed[fam] {
			t.Errorf("%s has no # HELP with a text or no # TYPE line", fam)
			helped[fam] = true // once per family
		}
	}
}
