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
	for code, want := range map[string]bool{"42501": true, "42P01": true, "42703": true, "53100": true, "08006": false, "40P01": false, "23505": false} {
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

// TestStuckOnRevokedGrant revokes the INSERT grant on the target from the
// appliance's role mid-run: /readyz turns 503 naming the table, the error
// and the fix, sluice_stuck and the status say so; granting it again
// recovers, and every record lands once.
func TestStuckOnRevokedGrant(t *testing.T) {
	e := newEnv(t, 2)
	roleURL := grantableRole(t, e, "sluice_app")
	y := configYAML(e.broker.Addrs(), roleURL, "", "", fmt.Sprintf(tableYAML, "ignore"))
	y = append(y, "\nstuck:\n  after: 500ms\n"...)
	cfg, err := Parse(y, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	r := e.start(cfg)
	addr := r.app.MetricsAddr()
	batch := func(from, n int) {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = item(from+i, "x")
		}
		e.produce(recs...)
	}
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
	text, _ := runStatus(t, e.ctx, "--config", writeConfig(t, cfg), "--instances", addr)
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
