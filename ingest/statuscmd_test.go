package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func runStatus(t *testing.T, ctx context.Context, args ...string) (string, GroupStatus) {
	t.Helper()
	var out, errb bytes.Buffer
	if err := StatusMain(ctx, args, &out, &errb); err != nil {
		t.Fatalf("sluice status %v: %v\n%s", args, err, errb.String())
	}
	var gs GroupStatus
	if strings.Contains(strings.Join(args, " "), "--json") {
		if err := json.Unmarshal(out.Bytes(), &gs); err != nil {
			t.Fatalf("sluice status --json printed %q: %v", out.String(), err)
		}
	}
	return out.String(), gs
}

// TestStatusCommand runs `sluice status` against a group of two running
// instances: every partition's stored offset, log end, lag, epoch and
// owner, the members, and the dead letters by table and reason, checked
// against PostgreSQL and the broker; then lag while the group is stopped.
func TestStatusCommand(t *testing.T) {
	e := newEnv(t, 4)
	cfg := e.config(fmt.Sprintf(tableYAML, "ignore"))
	path := writeConfig(t, cfg)
	r1 := e.start(cfg)
	r2 := e.start(cfg)
	e.waitFor("both instances own partitions", func() bool {
		return len(r1.app.snapshotParts()) > 0 && len(r2.app.snapshotParts()) > 0 &&
			len(r1.app.snapshotParts())+len(r2.app.snapshotParts()) == 4
	})
	var recs []*kgo.Record
	for i := range 400 {
		recs = append(recs, item(i, "x"))
	}
	recs = append(recs, &kgo.Record{Key: []byte("a"), Value: []byte(`{"id":`)},
		&kgo.Record{Key: []byte("b"), Value: []byte(`{"id":"` + uuidFor(7000) + `","n":"many"}`)},
		&kgo.Record{Key: []byte("c"), Value: []byte(`{"id":"` + uuidFor(7001) + `","n":"lots"}`)})
	e.produce(recs...)
	e.waitDrained(int64(len(recs)))

	_, gs := runStatus(t, e.ctx, "--config", path, "--json", "--instances", r1.app.MetricsAddr()+","+r2.app.MetricsAddr())
	if gs.Group != "g" || len(gs.Members) != 2 || len(gs.Partitions) != 4 || gs.Lag != 0 {
		t.Fatalf("status: group %q, %d members, %d partitions, lag %d; want g, 2, 4, 0: %+v", gs.Group, len(gs.Members), len(gs.Partitions), gs.Lag, gs)
	}
	members := map[string]int{}
	for _, m := range gs.Members {
		members[m.MemberID] = m.Partitions
	}
	var stored int64
	for _, p := range gs.Partitions {
		var next, epoch int64
		if err := e.db.QueryRow(e.ctx, `SELECT next_offset, owner_epoch FROM sluice.offsets WHERE group_id = 'g' AND topic = $1 AND partition = $2`,
			p.Topic, p.Partition).Scan(&next, &epoch); err != nil {
			t.Fatal(err)
		}
		if !p.Stored || p.StoredOffset != next || p.Epoch != epoch || p.LogEnd != next || p.Lag != 0 || p.Table != "public.items" {
			t.Errorf("partition %+v; PostgreSQL has next_offset %d epoch %d", p, next, epoch)
		}
		if _, ok := members[p.Owner]; !ok {
			t.Errorf("partition %s/%d owned by %q, not a member of %v", p.Topic, p.Partition, p.Owner, members)
		}
		if p.LastCommit == nil || p.LastCommitAge < 0 || p.LastCommitAge > 60 {
			t.Errorf("partition %s/%d last commit %v age %v", p.Topic, p.Partition, p.LastCommit, p.LastCommitAge)
		}
		stored += p.StoredOffset
	}
	if stored != int64(len(recs)) {
		t.Errorf("stored offsets sum to %d, want %d", stored, len(recs))
	}
	if len(gs.DeadLetters) != 1 || gs.DeadLetters[0].Table != "public.items" || gs.DeadLetters[0].Total != 3 ||
		gs.DeadLetters[0].Reasons["malformed_json"] != 1 || gs.DeadLetters[0].Reasons["wrong_type"] != 2 {
		t.Errorf("dead letters = %+v, want public.items: malformed_json 1, wrong_type 2", gs.DeadLetters)
	}
	if len(gs.Instances) != 2 || !gs.Instances[0].Ready || !gs.Instances[1].Ready {
		t.Errorf("instances = %+v, want two ready", gs.Instances)
	}

	text, _ := runStatus(t, e.ctx, "--config", path)
	for _, want := range []string{"group g (offsets in PostgreSQL schema sluice)", "2 member(s), lag 0", "TOPIC", "LAST COMMIT",
		"public.items  3", "malformed_json 1, wrong_type 2"} {
		if !strings.Contains(text, want) {
			t.Errorf("plain output lacks %q:\n%s", want, text)
		}
	}
	t.Logf("sluice status:\n%s", text)

	// Stopped group: the lag is what PostgreSQL has not got yet.
	r1.stop()
	r2.stop()
	more := make([]*kgo.Record, 25)
	for i := range more {
		more[i] = item(1000+i, "late")
	}
	e.produce(more...)
	_, gs = runStatus(t, e.ctx, "--config", path, "--json")
	if gs.Lag != 25 || len(gs.Members) != 0 {
		t.Errorf("stopped group: lag %d with %d members, want 25 and 0", gs.Lag, len(gs.Members))
	}

	// --watch refreshes until interrupted.
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- StatusMain(ctx, []string{"--config", path, "--watch", "100ms"}, &out, &out) }()
	deadline := time.Now().Add(3 * time.Second)
	for strings.Count(out.String(), "group g ") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("--watch: %v", err)
	}
	if n := strings.Count(out.String(), "group g "); n < 2 {
		t.Errorf("--watch 100ms printed the status %d times in 3s", n)
	}
}

// TestWatchFlagForms: --watch takes an interval as the next argument, and
// the flags after it are parsed too: `--watch 10s --config F` used to stop
// at 10s and refuse --config as an unexpected argument.
func TestWatchFlagForms(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		on     bool
		every  time.Duration
		config string
		err    bool
	}{
		{[]string{"--config", "f.yaml"}, false, 2 * time.Second, "f.yaml", false},
		{[]string{"--config", "f.yaml", "--watch"}, true, 2 * time.Second, "f.yaml", false},
		{[]string{"--watch", "--config", "f.yaml"}, true, 2 * time.Second, "f.yaml", false},
		{[]string{"--watch=5s", "--config", "f.yaml"}, true, 5 * time.Second, "f.yaml", false},
		{[]string{"--config", "f.yaml", "--watch", "10s"}, true, 10 * time.Second, "f.yaml", false},
		{[]string{"--watch", "10s", "--config", "f.yaml", "--json"}, true, 10 * time.Second, "f.yaml", false},
		{[]string{"--watch", "10s", "extra"}, true, 10 * time.Second, "", true},
		{[]string{"--config", "f.yaml", "10s"}, false, 2 * time.Second, "f.yaml", true},
	} {
		fs := flag.NewFlagSet("sluice status", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		config := fs.String("config", "", "")
		fs.Bool("json", false, "")
		w := watchFlag{every: 2 * time.Second}
		fs.Var(&w, "watch", "")
		err := parseWatchFlags(fs, tc.args, &w)
		if (err != nil) != tc.err || w.on != tc.on || w.every != tc.every || *config != tc.config {
			t.Errorf("%q: error %v, watch %v every %v, config %q; want error %v, watch %v every %v, config %q",
				tc.args, err, w.on, w.every, *config, tc.err, tc.on, tc.every, tc.config)
		}
	}
}
