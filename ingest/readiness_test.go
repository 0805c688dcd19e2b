package ingest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestNeedsOperator(t *testing.T) {
	// 0A000 (COPY into a table under row-level security) and 55000 (a
	// trigger's error of that class) are not retried away either, nor is
	// 53400 (a batch over temp_file_limit spills as much on every retry).
	for code, want := range map[string]bool{"42501": true, "42P01": true, "42703": true, "53100": true, "53400": true, "0A000": true, "55000": true,
		"08006": false, "40P01": false, "40001": false, "53300": false, "57P01": false, "55P03": false} {
		got, _ := needsOperator(fmt.Errorf("cannot write batch: %w", &pgconn.PgError{Code: code}))
		if (got != "") != want {
			t.Errorf("needsOperator(%s) = %q, want %v", code, got, want)
		}
	}
	if c, _ := needsOperator(errors.New("connection reset")); c != "" {
		t.Errorf("a non-PostgreSQL error needs an operator: %q", c)
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// grantableRole creates a role that owns nothing yet and may create in the
// env's database, and returns the env's URL for it.
func grantableRole(t *testing.T, e *env, role string) string {
	t.Helper()
	db := e.db.Config().Database
	for _, q := range []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN`, role),
		fmt.Sprintf(`GRANT CREATE ON DATABASE %s TO %s`, db, role),
		fmt.Sprintf(`GRANT CREATE, USAGE ON SCHEMA public TO %s`, role),
	} {
		if _, err := e.db.Exec(e.ctx, q); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("%s: %v", q, err)
		}
	}
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// startAsRole runs the items table (on_conflict ignore, stuck.after
// 500ms) as a new role of e's cluster that may be granted and refused
// things, and returns batch, which produces items from..from+n-1.
func startAsRole(t *testing.T, e *env, role string) (r *running, batch func(from, n int)) {
	t.Helper()
	y := configYAML(e.broker.Addrs(), grantableRole(t, e, role), "", "", fmt.Sprintf(tableYAML, "ignore"))
	y = append(y, "\nstuck:\n  after: 500ms\n"...)
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return e.start(cfg), func(from, n int) {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = item(from+i, "x")
		}
		e.produce(recs...)
	}
}

// TestStuckOnRevokedGrant revokes the INSERT grant on the target from the
// appliance's role mid-run: /readyz turns 503 naming the table, the error
// and the fix, sluice_stuck and the status say so; granting it again
// recovers, and every record lands once.
func TestStuckOnRevokedGrant(t *testing.T) {
	e := newEnv(t, 2)
	r, batch := startAsRole(t, e, "sluice_app")
	addr := r.app.MetricsAddr()
	batch(0, 200)
	e.waitDrained(200)
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q before the revoke", code, body)
	}

	if _, err := e.db.Exec(e.ctx, `REVOKE INSERT ON public.items FROM sluice_app`); err != nil {
		t.Fatal(err)
	}
	batch(200, 300)
	var body string
	e.waitFor("/readyz 503", func() bool {
		var code int
		code, body = get(t, "http://"+addr+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	t.Logf("/readyz: %s", body)
	for _, want := range []string{"public.items stuck", "permission denied", "42501", "grant the appliance's role INSERT"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body lacks %q: %s", want, body)
		}
	}
	if v := metricValue(httpGet(t, "http://"+addr+"/metrics"), `sluice_stuck{table="public.items"}`); v != 1 {
		t.Errorf("sluice_stuck = %d while stuck", v)
	}
	s := getStatus(t, addr)
	if s.Ready || len(s.Tables) != 1 || s.Tables[0].Stuck == nil || s.Tables[0].Stuck.Code != "42501" || s.LastError == nil {
		t.Errorf("status while stuck: ready %v tables %+v last error %+v", s.Ready, s.Tables, s.LastError)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != 200 {
		t.Errorf("%d rows while the grant is revoked", n)
	}
	if bin := findChromium(); bin != "" {
		dom := string(runChromium(t, bin, "--dump-dom", "http://"+addr+"/"))
		if !strings.Contains(dom, `data-k="stuck" data-table="public.items"`) || !strings.Contains(dom, "permission denied") || !strings.Contains(dom, `data-v="not_ready"`) {
			t.Errorf("the status page does not show the stuck table")
		}
	}
	text, _ := runStatus(t, e.ctx, "--config", writeConfig(t, r.app.cfg), "--instances", addr)
	if !strings.Contains(text, "instance "+addr+": NOT READY: public.items stuck") || !strings.Contains(text, "  stuck public.items: cannot write to public.items") {
		t.Errorf("sluice status --instances does not show the stuck table:\n%s", text)
	}

	if _, err := e.db.Exec(e.ctx, `GRANT INSERT ON public.items TO sluice_app`); err != nil {
		t.Fatal(err)
	}
	e.waitDrained(500)
	e.waitFor("/readyz 200 again", func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == 200 })
	if v := metricValue(httpGet(t, "http://"+addr+"/metrics"), `sluice_stuck{table="public.items"}`); v != 0 {
		t.Errorf("sluice_stuck = %d after recovery", v)
	}
	if n := e.count(`SELECT count(*) FROM public.items`); n != 500 {
		t.Errorf("target holds %d rows, want each of the 500 records once", n)
	}
}

// TestStuckActionExit: with stuck.action: exit, Run returns the reason.
func TestStuckActionExit(t *testing.T) {
	e := newEnv(t, 1)
	roleURL := grantableRole(t, e, "sluice_exit")
	y := configYAML(e.broker.Addrs(), roleURL, "", "", fmt.Sprintf(tableYAML, "ignore"))
	y = append(y, "\nstuck:\n  after: 300ms\n  action: exit\n"...)
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.RebalanceTimeout = Duration(time.Second) // the revoke's commit cannot succeed either
	app, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(e.ctx) }()
	e.waitFor("consuming", func() bool { return app.consuming.Load() })
	if _, err := e.db.Exec(e.ctx, `REVOKE INSERT ON public.items FROM sluice_exit`); err != nil {
		t.Fatal(err)
	}
	e.produce(item(1, "a"))
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "stuck.action: exit") || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("Run = %v, want the stuck reason", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s of a stuck table with stuck.action: exit")
	}
}

// TestStuckOnRowSecurity: errors no operatorErrors entry names, which
// retrying does not clear either, make the table stuck too: row-level
// security forced on the target (COPY refuses such a table, 0A000), then
// a trigger refusing every row with an error of a class that is not
// row-level (55000). Nothing is dead-lettered; each time the cause is
// removed the table recovers and every record lands once.
func TestStuckOnRowSecurity(t *testing.T) {
	e := newEnv(t, 2)
	r, batch := startAsRole(t, e, "sluice_rls")
	addr := r.app.MetricsAddr()
	stuck := func(want ...string) {
		t.Helper()
		var body string
		e.waitFor("/readyz 503", func() bool {
			var code int
			code, body = get(t, "http://"+addr+"/readyz")
			return code == http.StatusServiceUnavailable
		})
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("/readyz body lacks %q: %s", w, body)
			}
		}
	}
	exec := func(q string) {
		t.Helper()
		if _, err := e.db.Exec(e.ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	batch(0, 100)
	e.waitDrained(100)

	exec(`ALTER TABLE public.items ENABLE ROW LEVEL SECURITY; ALTER TABLE public.items FORCE ROW LEVEL SECURITY;
CREATE POLICY everything ON public.items USING (true) WITH CHECK (true)`)
	batch(100, 100)
	stuck("public.items stuck", "row-level security", "0A000", "fix its cause")
	exec(`ALTER TABLE public.items DISABLE ROW LEVEL SECURITY`)
	e.waitDrained(200)
	e.waitFor("/readyz 200 again", func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == 200 })

	exec(`CREATE FUNCTION not_now() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'items are frozen' USING ERRCODE = 'object_not_in_prerequisite_state'; END$$;
CREATE TRIGGER not_now BEFORE INSERT ON public.items FOR EACH ROW EXECUTE FUNCTION not_now()`)
	batch(200, 100)
	stuck("public.items stuck", "items are frozen", "55000")
	exec(`DROP TRIGGER not_now ON public.items`)
	e.waitDrained(300)
	e.waitFor("/readyz 200 again", func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == 200 })
	if n := e.count(`SELECT count(*) FROM public.items`); n != 300 {
		t.Errorf("target holds %d rows, want each of the 300 records once", n)
	}
	if n := e.count(`SELECT count(*) FROM sluice.dead_letters`); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}
