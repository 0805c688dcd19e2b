package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/devenv"
)

// Security tests run the appliance against real servers: kfake with TLS,
// mutual TLS and SASL users, and a private PostgreSQL with ssl=on and
// hostssl + scram-sha-256 / cert rules. Right credentials ingest end to
// end; wrong ones make Run fail within failFast with an error naming the
// problem and the key that fixes it.

// failFast bounds how long Run may take to reject a wrong credential or
// certificate (checkKafka's ping and connectPG's patience are 30s; a
// misconfiguration must not wait them out).
const failFast = 20 * time.Second

// pki is a test CA with files for Kafka and PostgreSQL.
type pki struct {
	dir                    string
	ca                     *devenv.CA
	caFile                 string
	otherCAFile            string // a CA that signed nothing we serve
	server                 *devenv.KeyPair
	clientCert, clientKey  string // CN=sluice_cert
	clientPair             *devenv.KeyPair
	serverCert, serverKeyF string
}

func newPKI(t *testing.T, serverHosts ...string) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p.ca, err = devenv.NewCA("sluice test CA")
	must(err)
	other, err := devenv.NewCA("some other CA")
	must(err)
	p.server, err = p.ca.ServerCert(serverHosts...)
	must(err)
	p.clientPair, err = p.ca.ClientCert("sluice_cert")
	must(err)
	p.caFile, err = p.ca.WriteCert(p.dir, "ca")
	must(err)
	p.otherCAFile, err = other.WriteCert(p.dir, "other-ca")
	must(err)
	p.clientCert, p.clientKey, err = p.clientPair.WriteFiles(p.dir, "client")
	must(err)
	p.serverCert, p.serverKeyF, err = p.server.WriteFiles(p.dir, "server")
	must(err)
	return p
}

func writeSecret(t *testing.T, name, secret string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var secDBSeq atomic.Int64

// secDB creates a fresh database on pg (owned by owner when set) and
// returns its superuser URL, for checking rows.
func secDB(t *testing.T, pg *devenv.Postgres, owner string) (name, adminURL string) {
	t.Helper()
	ctx := context.Background()
	name = fmt.Sprintf("sec_%d", secDBSeq.Add(1))
	adminURL, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if owner != "" {
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" OWNER TO "+pgx.Identifier{owner}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "ALTER SCHEMA public OWNER TO "+pgx.Identifier{owner}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	return name, adminURL
}

// secYAML is a full configuration; kafkaExtra and pgExtra are YAML lines
// indented by two spaces, inside kafka: and postgres:.
func secYAML(brokers []string, pgURL, kafkaExtra, pgExtra string) []byte {
	return configYAML(brokers, pgURL, kafkaExtra, pgExtra, fmt.Sprintf(tableYAML, "ignore"))
}

func mustParse(t *testing.T, y []byte, env func(string) string) *Config {
	t.Helper()
	cfg, err := Parse(y, env)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type secRun struct {
	app    *App
	done   chan error
	cancel context.CancelFunc
	start  time.Time
}

// startApp runs the App of cfg in the background, logging to log (nil:
// the test log).
func startApp(t *testing.T, cfg *Config, log io.Writer) *secRun {
	t.Helper()
	if log == nil {
		log = testWriter{t}
	}
	app, err := New(cfg, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &secRun{app: app, done: make(chan error, 1), cancel: cancel, start: time.Now()}
	go func() { r.done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			t.Error("Run did not return within 60s of cancel")
		}
	})
	return r
}

// stop cancels the App and wants a clean shutdown.
func (r *secRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
		r.done <- nil // for the cleanup
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s of cancel")
	}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countRows(t *testing.T, adminURL string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int64
	if err := c.QueryRow(ctx, "SELECT count(*) FROM public.items").Scan(&n); err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return 0
		}
		t.Fatal(err)
	}
	return n
}

// produceSecure produces records [from, to) with a client built from cfg's
// security options, as any other Kafka client of the deployment would be.
func produceSecure(t *testing.T, cfg *Config, from, to int) {
	t.Helper()
	sec, err := KafkaSecurityOpts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(sec, kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.DefaultProduceTopic("events"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, item(i, "secure"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("cannot produce with the configured security: %v", err)
	}
}

// ingestsEndToEnd runs the App of cfg, produces n records with the same
// security and waits for them in PostgreSQL.
func ingestsEndToEnd(t *testing.T, cfg *Config, adminURL string) {
	t.Helper()
	const n = 20
	// Parallel subtests share a broker and its topic: a group of their
	// own keeps one from being assigned the other's partitions.
	cfg.Kafka.Group = "g-" + strings.NewReplacer("/", "-", " ", "_", ",", "").Replace(t.Name())
	r := startApp(t, cfg, nil)
	produceSecure(t, cfg, 0, n)
	waitUntil(t, fmt.Sprintf("%d rows", n), 30*time.Second, func() bool {
		select {
		case err := <-r.done:
			t.Fatalf("Run returned early: %v", err)
		default:
		}
		return countRows(t, adminURL) == n
	})
	r.stop(t)
}

// failsAtStart runs the App of cfg and wants Run to return an error within
// failFast whose text holds every one of want.
func failsAtStart(t *testing.T, cfg *Config, want ...string) error {
	t.Helper()
	r := startApp(t, cfg, nil)
	select {
	case err := <-r.done:
		r.done <- nil
		if err == nil {
			t.Fatal("Run returned nil, want an error")
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Run error does not mention %q:\n%v", w, err)
			}
		}
		t.Logf("failed after %s: %v", time.Since(r.start).Round(time.Millisecond), err)
		return err
	case <-time.After(failFast):
		t.Fatalf("Run neither failed nor connected within %s (a hang or a retry loop)", failFast)
	}
	return nil
}

func startSecBroker(t *testing.T, o devenv.BrokerOptions) *devenv.Broker {
	t.Helper()
	o.Topics = []string{"events"}
	o.Partitions = 2
	b, err := devenv.StartBroker(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// startSASLSSLBroker starts a broker that takes TLS connections only, for
// the SCRAM-SHA-512 user sluice with password kafkaPW, and returns it with
// the kafka.tls and kafka.sasl lines of a configuration that reaches it
// (the password left to the caller).
func startSASLSSLBroker(t *testing.T, kafkaPW string) (*devenv.Broker, string) {
	t.Helper()
	p := newPKI(t, "127.0.0.1")
	tc, err := devenv.ServerTLSConfig(p.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := startSecBroker(t, devenv.BrokerOptions{TLS: tc, SASL: [][3]string{{"SCRAM-SHA-512", "sluice", kafkaPW}}})
	return b, fmt.Sprintf("  tls: {enabled: true, ca_file: %q}\n  sasl: {mechanism: SCRAM-SHA-512, username: sluice}", p.caFile)
}

func TestKafkaTLS(t *testing.T) {
	p := newPKI(t, "127.0.0.1", "localhost")
	tc, err := devenv.ServerTLSConfig(p.server, p.ca) // mutual TLS: client certificates required
	if err != nil {
		t.Fatal(err)
	}
	b := startSecBroker(t, devenv.BrokerOptions{TLS: tc})
	tlsYAML := func(fields string) string { return "  tls: {enabled: true, " + fields + "}" }
	client := fmt.Sprintf("cert_file: %q, key_file: %q", p.clientCert, p.clientKey)

	t.Run("verified", func(t *testing.T) {
		t.Parallel()
		_, admin := secDB(t, testPG, "")
		cfg := mustParse(t, secYAML(b.Addrs(), admin, tlsYAML(fmt.Sprintf("ca_file: %q, ", p.caFile)+client), ""), noEnv)
		ingestsEndToEnd(t, cfg, admin)
	})
	t.Run("server_name", func(t *testing.T) {
		t.Parallel()
		_, admin := secDB(t, testPG, "")
		cfg := mustParse(t, secYAML(b.Addrs(), admin, tlsYAML(fmt.Sprintf("ca_file: %q, server_name: localhost, ", p.caFile)+client), ""), noEnv)
		ingestsEndToEnd(t, cfg, admin)
	})
	bad := []struct {
		name, tls string
		want      []string
	}{
		{"untrusted CA", tlsYAML(fmt.Sprintf("ca_file: %q, ", p.otherCAFile) + client), []string{"not signed by a trusted CA", "kafka.tls.ca_file"}},
		{"system roots", tlsYAML(client), []string{"not signed by a trusted CA", "kafka.tls.ca_file"}},
		{"wrong server name", tlsYAML(fmt.Sprintf("ca_file: %q, server_name: kafka.example.com, ", p.caFile) + client), []string{`not valid for "kafka.example.com"`, "kafka.tls.server_name"}},
		{"no client certificate", tlsYAML(fmt.Sprintf("ca_file: %q", p.caFile)), []string{"client certificate", "kafka.tls.cert_file"}},
		// Either "…as a TLS (SSL or SASL_SSL) listener does…" (first-read
		// EOF) or "…if the listener is SSL or SASL_SSL…" (a later EOF).
		{"plaintext to a TLS listener", "", []string{"SSL or SASL_SSL", "set kafka.tls.enabled: true"}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustParse(t, secYAML(b.Addrs(), testPG.URL(""), c.tls, ""), noEnv)
			failsAtStart(t, cfg, c.want...)
		})
	}
	t.Run("TLS to a plaintext listener", func(t *testing.T) {
		t.Parallel()
		plain := startSecBroker(t, devenv.BrokerOptions{})
		cfg := mustParse(t, secYAML(plain.Addrs(), testPG.URL(""), tlsYAML(fmt.Sprintf("ca_file: %q", p.caFile)), ""), noEnv)
		// A real Kafka closes the connection at once; kfake waits for the
		// bogus request to arrive, so this is the ping timeout.
		failsAtStart(t, cfg, "TLS handshake", "plaintext listener")
	})
}

func TestKafkaSASL(t *testing.T) {
	p := newPKI(t, "127.0.0.1", "localhost")
	users := [][3]string{
		{"SCRAM-SHA-256", "admin", "admin-Pw-0"},
		{"PLAIN", "plainuser", "plain-Pw-1"},
		{"SCRAM-SHA-256", "scram256", "scram256-Pw-2"},
		{"SCRAM-SHA-512", "scram512", "scram512-Pw-3"},
	}
	plain := startSecBroker(t, devenv.BrokerOptions{SASL: users})
	tc, err := devenv.ServerTLSConfig(p.server, nil)
	if err != nil {
		t.Fatal(err)
	}
	saslSSL := startSecBroker(t, devenv.BrokerOptions{SASL: users, TLS: tc})
	tlsYAML := fmt.Sprintf("  tls: {enabled: true, ca_file: %q}\n", p.caFile)

	good := []struct {
		name   string
		broker *devenv.Broker
		kafka  string // kafka: lines
		env    map[string]string
	}{
		{"PLAIN, credentials from the environment", plain,
			"  sasl: {mechanism: PLAIN}",
			map[string]string{"SLUICE_KAFKA_SASL_USERNAME": "plainuser", "SLUICE_KAFKA_SASL_PASSWORD": "plain-Pw-1"}},
		{"SCRAM-SHA-256, password_file key", plain,
			fmt.Sprintf("  sasl: {mechanism: scram-sha-256, username: scram256, password_file: %q}", writeSecret(t, "kafka-pw", "scram256-Pw-2")),
			nil},
		{"SCRAM-SHA-512 over TLS, SLUICE_KAFKA_SASL_PASSWORD_FILE", saslSSL,
			tlsYAML + "  sasl: {mechanism: SCRAM-SHA-512, username: scram512}",
			map[string]string{"SLUICE_KAFKA_SASL_PASSWORD_FILE": writeSecret(t, "kafka-pw-512", "scram512-Pw-3")}},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, admin := secDB(t, testPG, "")
			ingestsEndToEnd(t, mustParse(t, secYAML(c.broker.Addrs(), admin, c.kafka, ""), envMap(c.env)), admin)
		})
	}

	bad := []struct {
		name   string
		broker *devenv.Broker
		kafka  string
		want   []string
	}{
		{"wrong SCRAM password", plain, "  sasl: {mechanism: SCRAM-SHA-256, username: scram256, password: not-the-password}",
			[]string{`rejected the SASL credentials of user "scram256"`, "SLUICE_KAFKA_SASL_PASSWORD"}},
		{"wrong PLAIN password over TLS", saslSSL, tlsYAML + "  sasl: {mechanism: PLAIN, username: plainuser, password: not-the-password}",
			[]string{`rejected the SASL credentials of user "plainuser"`}},
		{"wrong mechanism", plain, "  sasl: {mechanism: SCRAM-SHA-512, username: scram256, password: scram256-Pw-2}",
			[]string{"rejected the SASL credentials", "kafka.sasl.mechanism (SCRAM-SHA-512)"}},
		{"unknown user", saslSSL, tlsYAML + "  sasl: {mechanism: SCRAM-SHA-512, username: nobody, password: scram512-Pw-3}",
			[]string{`rejected the SASL credentials of user "nobody"`}},
		// franz-go reports the close as ErrFirstReadEOF ("…as a SASL listener
		// does…") or, when it lands later, as a plain EOF ("…if the listener
		// is SASL_PLAINTEXT or SASL_SSL…"): both tell the fix (a -race run
		// saw the second).
		{"no SASL against a SASL listener", plain, "",
			[]string{"SASL", "set kafka.sasl.mechanism"}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			failsAtStart(t, mustParse(t, secYAML(c.broker.Addrs(), testPG.URL(""), c.kafka, ""), noEnv), c.want...)
		})
	}
}

// securePG is a private PostgreSQL that accepts the test roles over TLS
// only: sluice_app by SCRAM password, sluice_cert by client certificate.
type securePG struct {
	pg  *devenv.Postgres
	pki *pki
}

const appRole = "sluice_app"

func startSecurePG(t *testing.T, password string) *securePG {
	t.Helper()
	// The certificate names 127.0.0.1 only, so "localhost" is a wrong name.
	p := newPKI(t, "127.0.0.1")
	ctx := context.Background()
	pg, err := devenv.StartPostgres(ctx, devenv.PostgresOptions{
		TLS: &devenv.PostgresTLS{Server: p.server, ClientCA: p.ca},
		HBA: []string{
			"hostssl all " + appRole + " 127.0.0.1/32 scram-sha-256",
			"host    all " + appRole + " all reject",
			"hostssl all sluice_cert 127.0.0.1/32 cert",
			"host    all sluice_cert all reject",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	if err := pg.CreateRole(ctx, appRole, password); err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateRole(ctx, "sluice_cert", "unused-cert-role-pw"); err != nil {
		t.Fatal(err)
	}
	return &securePG{pg: pg, pki: p}
}

// url returns a URL for user@host/db with query parameters q.
func (s *securePG) url(userinfo *url.Userinfo, host, db string, q url.Values) string {
	u := url.URL{Scheme: "postgres", User: userinfo, Host: fmt.Sprintf("%s:%d", host, s.pg.Port), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

func (s *securePG) verifyFull(rootCert string) url.Values {
	return url.Values{"sslmode": {"verify-full"}, "sslrootcert": {rootCert}}
}

func TestPostgresTLS(t *testing.T) {
	// The password needs URL and keyword/value escaping.
	const pw = `p@ss w/rd:'q\"&=`
	s := startSecurePG(t, pw)
	b := startSecBroker(t, devenv.BrokerOptions{})
	vf := s.verifyFull(s.pki.caFile)

	good := []struct {
		name string
		url  func(db string) string
		pg   string
		env  map[string]string
		role string
	}{
		{"verify-full, password in the URL", func(db string) string {
			return s.url(url.UserPassword(appRole, pw), "127.0.0.1", db, vf)
		}, "", nil, appRole},
		{"keyword/value string, SLUICE_POSTGRES_PASSWORD", func(db string) string {
			return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s sslmode=verify-full sslrootcert='%s'", s.pg.Port, db, appRole, s.pki.caFile)
		}, "", map[string]string{"SLUICE_POSTGRES_PASSWORD": pw}, appRole},
		{"postgres.password_file wins over the URL", func(db string) string {
			return s.url(url.UserPassword(appRole, "stale-password"), "127.0.0.1", db, vf)
		}, fmt.Sprintf("  password_file: %q", writeSecret(t, "pg-pw", pw)), nil, appRole},
		{"SLUICE_POSTGRES_PASSWORD_FILE", func(db string) string {
			return s.url(url.User(appRole), "127.0.0.1", db, vf)
		}, "", map[string]string{"SLUICE_POSTGRES_PASSWORD_FILE": writeSecret(t, "pg-pw-env", pw)}, appRole},
		{"client certificate (sslcert, sslkey)", func(db string) string {
			q := s.verifyFull(s.pki.caFile)
			q.Set("sslcert", s.pki.clientCert)
			q.Set("sslkey", s.pki.clientKey)
			return s.url(url.User("sluice_cert"), "127.0.0.1", db, q)
		}, "", nil, "sluice_cert"},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db, admin := secDB(t, s.pg, c.role)
			cfg := mustParse(t, secYAML(b.Addrs(), c.url(db), "", c.pg), envMap(c.env))
			ingestsEndToEnd(t, cfg, admin)
		})
	}

	bad := []struct {
		name string
		url  func(db string) string
		env  map[string]string
		want []string
	}{
		{"wrong password", func(db string) string {
			return s.url(url.User(appRole), "127.0.0.1", db, vf)
		}, map[string]string{"SLUICE_POSTGRES_PASSWORD": "not-the-password"}, []string{"password is wrong", "SLUICE_POSTGRES_PASSWORD"}},
		{"wrong password, default sslmode: reported once, without the TLS attempt", func(db string) string {
			return s.url(url.UserPassword(appRole, "not-the-password"), "127.0.0.1", db, nil)
		}, nil, []string{"as user " + appRole, "password authentication failed", "28P01", "password is wrong"}},
		{"no password at all", func(db string) string {
			return s.url(url.User(appRole), "127.0.0.1", db, nil)
		}, nil, []string{"no password was given", "SLUICE_POSTGRES_PASSWORD"}},
		{"untrusted CA", func(db string) string {
			return s.url(url.UserPassword(appRole, pw), "127.0.0.1", db, s.verifyFull(s.pki.otherCAFile))
		}, nil, []string{"not signed by a trusted CA", "sslrootcert"}},
		{"wrong host name", func(db string) string {
			return s.url(url.UserPassword(appRole, pw), "localhost", db, vf)
		}, nil, []string{`not valid for host "localhost"`, "127.0.0.1"}},
		{"TLS disabled against hostssl", func(db string) string {
			return s.url(url.UserPassword(appRole, pw), "127.0.0.1", db, url.Values{"sslmode": {"disable"}})
		}, nil, []string{"no pg_hba.conf rule", "sslmode"}},
		{"client certificate missing", func(db string) string {
			return s.url(url.User("sluice_cert"), "127.0.0.1", db, vf)
		}, nil, []string{"requires a client certificate", "sslcert and sslkey"}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db, _ := secDB(t, s.pg, appRole)
			cfg := mustParse(t, secYAML(b.Addrs(), c.url(db), "", ""), envMap(c.env))
			err := failsAtStart(t, cfg, c.want...)
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error holds the password: %v", err)
			}
			if strings.Contains(c.want[0], "password") && (strings.Contains(err.Error(), "tls error") || strings.Contains(err.Error(), "pg_hba")) {
				t.Errorf("a password error mentions the TLS attempt or pg_hba.conf: %v", err)
			}
		})
	}
}

// TestSecretsInConfig covers where secrets may come from and the mistakes
// Parse must reject.
func TestSecretsInConfig(t *testing.T) {
	base := func(kafka, pg string) []byte {
		return secYAML([]string{"127.0.0.1:9092"}, "postgres://app@db.example:5432/ingest?sslmode=verify-full", kafka, pg)
	}
	pwFile := writeSecret(t, "pw", "from-the-file")
	t.Run("precedence", func(t *testing.T) {
		cfg := mustParse(t, base("  sasl: {mechanism: PLAIN, username: u, password: from-yaml}", ""),
			envMap(map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": "from-env"}))
		if cfg.Kafka.SASL.Password != "from-env" {
			t.Errorf("SLUICE_KAFKA_SASL_PASSWORD does not override kafka.sasl.password: got %q", cfg.Kafka.SASL.Password)
		}
		cfg = mustParse(t, base("  sasl: {mechanism: PLAIN, username: u}", ""),
			envMap(map[string]string{"SLUICE_KAFKA_SASL_PASSWORD_FILE": pwFile}))
		if cfg.Kafka.SASL.Password != "from-the-file" {
			t.Errorf("the password file is not read: got %q", cfg.Kafka.SASL.Password)
		}
		cfg = mustParse(t, base("", ""), envMap(map[string]string{"SLUICE_POSTGRES_PASSWORD": "p w@x"}))
		if want := "postgres://app:p%20w%40x@db.example:5432/ingest?sslmode=verify-full"; cfg.Postgres.URL != want {
			t.Errorf("postgres.url = %q, want %q", cfg.Postgres.URL, want)
		}
		cfg = mustParse(t, base("", fmt.Sprintf("  password_file: %q", pwFile)), nil)
		if !strings.Contains(cfg.Postgres.URL, "app:from-the-file@") {
			t.Errorf("postgres.password_file is not read: %q", cfg.Postgres.URL)
		}
	})
	bad := []struct {
		name, kafka, pg string
		env             map[string]string
		want            string
	}{
		{"SASL without a password", "  sasl: {mechanism: SCRAM-SHA-512, username: u}", "", nil, "kafka.sasl.password: empty while kafka.sasl.mechanism is SCRAM-SHA-512"},
		{"password without a mechanism", "", "", map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": "x"}, "kafka.sasl.mechanism: empty but a password is set"},
		// The file named by the environment is read after the other checks:
		// without a mechanism its password went unused, and no SASL was done.
		{"password file without a mechanism", "", "", map[string]string{"SLUICE_KAFKA_SASL_PASSWORD_FILE": pwFile}, "kafka.sasl.mechanism: empty but a password is set"},
		{"missing password file", "  sasl: {mechanism: PLAIN, username: u, password_file: /nonexistent/pw}", "", nil, "kafka.sasl.password_file: cannot read the secret file"},
		{"empty password file", "", "", map[string]string{"SLUICE_POSTGRES_PASSWORD_FILE": writeSecret(t, "empty", "")}, "SLUICE_POSTGRES_PASSWORD_FILE: "},
		{"SASL password in the environment and a file", "  sasl: {mechanism: PLAIN, username: u}", "",
			map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": "from-env", "SLUICE_KAFKA_SASL_PASSWORD_FILE": pwFile},
			"SLUICE_KAFKA_SASL_PASSWORD: set together with SLUICE_KAFKA_SASL_PASSWORD_FILE"},
		{"SASL password in the YAML and a file", fmt.Sprintf("  sasl: {mechanism: PLAIN, username: u, password: y, password_file: %q}", pwFile), "",
			nil, "kafka.sasl.password: set together with kafka.sasl.password_file"},
		{"PostgreSQL password in the environment and a file", "", fmt.Sprintf("  password_file: %q", pwFile),
			map[string]string{"SLUICE_POSTGRES_PASSWORD": "x"}, "SLUICE_POSTGRES_PASSWORD: set together with postgres.password_file"},
		{"PostgreSQL password in two environment variables", "", "",
			map[string]string{"SLUICE_POSTGRES_PASSWORD": "x", "SLUICE_POSTGRES_PASSWORD_FILE": pwFile}, "SLUICE_POSTGRES_PASSWORD: set together with SLUICE_POSTGRES_PASSWORD_FILE"},
		{"TLS keys while disabled", "  tls: {ca_file: /etc/ca.pem}", "", nil, "kafka.tls.enabled: false while other kafka.tls keys are set"},
		{"certificate without key", "  tls: {enabled: true, cert_file: /c.pem}", "", nil, "kafka.tls.key_file: empty while kafka.tls.cert_file is set"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(base(c.kafka, c.pg), envMap(c.env))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, c.want)
			}
		})
	}
	t.Run("KafkaSecurityOpts of a Config built in code", func(t *testing.T) {
		cfg := Defaults()
		cfg.Kafka.SASL = SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "u", PasswordFile: "/nonexistent/pw"}
		if _, err := KafkaSecurityOpts(&cfg); err == nil || !strings.Contains(err.Error(), "kafka.sasl.password_file: cannot read") {
			t.Fatalf("KafkaSecurityOpts error = %v", err)
		}
		cfg.Kafka.SASL.PasswordFile = pwFile
		cfg.Kafka.TLS = TLSConfig{Enabled: true, CAFile: pwFile}
		if _, err := KafkaSecurityOpts(&cfg); err == nil || !strings.Contains(err.Error(), "kafka.tls.ca_file") {
			t.Fatalf("KafkaSecurityOpts with a non-PEM CA file: error = %v", err)
		}
		cfg.Kafka.TLS = TLSConfig{Enabled: true}
		opts, err := KafkaSecurityOpts(&cfg)
		if err != nil || len(opts) != 2 {
			t.Fatalf("KafkaSecurityOpts = %d options, %v; want TLS and SASL", len(opts), err)
		}
	})
	t.Run("no user to give the password to", func(t *testing.T) {
		y := secYAML([]string{"127.0.0.1:9092"}, "postgres://db.example/ingest", "", "")
		_, err := Parse(y, envMap(map[string]string{"SLUICE_POSTGRES_PASSWORD": "pw-Secret-1"}))
		if err == nil || !strings.Contains(err.Error(), "postgres.url: has no user") || strings.Contains(err.Error(), "pw-Secret-1") {
			t.Fatalf("Parse error = %v", err)
		}
	})
}

// TestRegistrySecrets: a registry URL holding a password is refused
// without quoting it, also when the password makes url.Parse fail (a '/',
// as in base64 API secrets, a bad %-escape, a space) or a comma splits
// SLUICE_SCHEMA_REGISTRY_URLS inside it; schema_registry.tls errors name
// its own keys; the registry's password and token are scrubbed and hidden
// when the section is logged.
func TestRegistrySecrets(t *testing.T) {
	withRegistry := func(section string) []byte { return []byte(validYAML + "schema_registry:\n" + section) }
	for _, c := range []struct {
		name, yaml string
		env        map[string]string
		leaks      []string
	}{
		{"slash", `  urls: ["https://key:Sr/Secret-9Zq@registry.example.com"]` + "\n", nil, []string{"Secret-9Zq"}},
		{"bad escape", `  urls: ["https://key:Secret-9Zq%zz@registry.example.com"]` + "\n", nil, []string{"Secret-9Zq"}},
		{"space", `  urls: ["https://key:Secret-9Zq x@registry.example.com"]` + "\n", nil, []string{"Secret-9Zq"}},
		{"environment", "", map[string]string{"SLUICE_SCHEMA_REGISTRY_URLS": "https://key:Sr/Secret-9Zq@registry.example.com"}, []string{"Secret-9Zq"}},
		{"split by a comma", "", map[string]string{"SLUICE_SCHEMA_REGISTRY_URLS": "https://key:Sr3t,Pw9x@registry.example.com"}, []string{"Sr3t", "Pw9x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(withRegistry(c.yaml), envMap(c.env))
			if err == nil || !strings.Contains(err.Error(), "schema_registry.urls[0]: ") {
				t.Fatalf("Parse error = %v, want one naming schema_registry.urls[0]", err)
			}
			for _, leak := range c.leaks {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("the error quotes the password: %v", err)
				}
			}
		})
	}

	for tls, want := range map[string]string{
		"{ca_file: /nonexistent/registry-ca.pem}":                       "schema_registry.tls.ca_file: cannot read",
		"{cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}": "schema_registry.tls.cert_file: cannot load the client certificate and key (schema_registry.tls.key_file)",
	} {
		cfg := mustParse(t, withRegistry("  urls: [\"https://registry.example.com\"]\n  tls: "+tls+"\n"), noEnv)
		if _, err := newRegistry(cfg); err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "kafka.tls") {
			t.Errorf("tls: %s: newRegistry error = %v, want one containing %q", tls, err, want)
		}
	}

	cfg := mustParse(t, withRegistry("  urls: [\"https://registry.example.com\"]\n  username: key\n"),
		envMap(map[string]string{"SLUICE_SCHEMA_REGISTRY_PASSWORD": "sr-Pass/1"}))
	if got := newRedactor(cfg).scrub("refused sr-Pass/1 and sr-Pass%2F1"); strings.Contains(got, "sr-Pass") {
		t.Errorf("the redactor does not know the registry password: %q", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("registry", "cfg", cfg.SchemaRegistry)
	if strings.Contains(buf.String(), "sr-Pass") {
		t.Errorf("the logged section holds the password: %s", buf.String())
	}
	cfg = mustParse(t, withRegistry("  urls: [\"https://registry.example.com\"]\n"),
		envMap(map[string]string{"SLUICE_SCHEMA_REGISTRY_TOKEN": "sr-Token-1"}))
	if got := newRedactor(cfg).scrub("refused sr-Token-1"); strings.Contains(got, "sr-Token") {
		t.Errorf("the redactor does not know the registry token: %q", got)
	}
}

// TestNoSecretsInOutput starts the appliance with known secrets, logging at
// debug level to one buffer, and provokes every failure it can: Postgres
// down mid-run, a wrong broker port, wrong passwords, Postgres down at
// start, malformed settings. No log line, error, metrics page or --help text
// may hold a secret in any encoding.
func TestNoSecretsInOutput(t *testing.T) {
	const (
		// Every alphanumeric run of 4+ characters is distinctive, so a
		// partly masked secret shows up too.
		kafkaPW      = "kf-S3cret-Zq9Vw"
		wrongKafkaPW = "kf-Wr0ng-Kx4Hd"
		pgPW         = "pg S3cret/W@Xr7Qz:Lm4Kt"
		wrongPGPW    = "pg-Wr0ng-Vb2Nn"
	)
	secrets := []string{kafkaPW, wrongKafkaPW, pgPW, wrongPGPW}
	var out syncBuffer
	record := func(what string, v any) { fmt.Fprintf(&out, "\n--- %s\n%v\n", what, v) }

	s := startSecurePG(t, pgPW)
	b, kafkaYAML := startSASLSSLBroker(t, kafkaPW)
	db, admin := secDB(t, s.pg, appRole)
	pgURL := s.url(url.UserPassword(appRole, pgPW), "127.0.0.1", db, s.verifyFull(s.pki.caFile))
	kafkaEnv := envMap(map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": kafkaPW})

	t.Run("running, then Postgres down and back", func(t *testing.T) {
		cfg := mustParse(t, secYAML(b.Addrs(), pgURL, kafkaYAML, ""), kafkaEnv)
		record("config", fmt.Sprintf("%v\n%+v\n%#v", cfg, *cfg, *cfg))
		r := startApp(t, cfg, &out)
		produceSecure(t, cfg, 0, 20)
		waitUntil(t, "20 rows", 30*time.Second, func() bool { return countRows(t, admin) == 20 })
		get := func(path string) {
			t.Helper()
			resp, err := http.Get("http://" + r.app.MetricsAddr() + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			record(path, string(body))
		}
		get("/metrics")
		ctx := context.Background()
		if err := s.pg.StopServer(ctx, "fast"); err != nil {
			t.Fatal(err)
		}
		produceSecure(t, cfg, 20, 40)
		// Wait for a reconnect to fail, not just for the write the shutdown
		// interrupted: both errors must be clean.
		waitUntil(t, "a failed reconnect", 30*time.Second, func() bool { return strings.Contains(out.String(), "connection refused") })
		get("/metrics")
		get("/readyz")
		if err := s.pg.StartServer(ctx); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "40 rows", 30*time.Second, func() bool { return countRows(t, admin) == 40 })
		get("/metrics")
		r.stop(t)
	})

	fail := func(name string, cfg *Config) {
		t.Run(name, func(t *testing.T) {
			r := startApp(t, cfg, &out)
			select {
			case err := <-r.done:
				r.done <- nil
				if err == nil {
					t.Fatal("Run returned nil, want an error")
				}
				record(name, err)
			case <-time.After(failFast):
				t.Fatalf("Run did not fail within %s", failFast)
			}
		})
	}
	port, err := devenv.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	fail("wrong broker port", mustParse(t, secYAML([]string{fmt.Sprintf("127.0.0.1:%d", port)}, pgURL, kafkaYAML, ""), kafkaEnv))
	fail("wrong Kafka password", mustParse(t, secYAML(b.Addrs(), pgURL, kafkaYAML, ""),
		envMap(map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": wrongKafkaPW})))
	fail("wrong Postgres password", mustParse(t, secYAML(b.Addrs(), s.url(url.UserPassword(appRole, wrongPGPW), "127.0.0.1", db, s.verifyFull(s.pki.caFile)), kafkaYAML, ""), kafkaEnv))
	fail("wrong Postgres password from the environment", mustParse(t, secYAML(b.Addrs(), s.url(url.User(appRole), "127.0.0.1", db, s.verifyFull(s.pki.caFile)), kafkaYAML, ""),
		envMap(map[string]string{"SLUICE_KAFKA_SASL_PASSWORD": kafkaPW, "SLUICE_POSTGRES_PASSWORD": wrongPGPW})))

	t.Run("commands", func(t *testing.T) {
		deadURL := strings.Replace(pgURL, fmt.Sprintf(":%d/", s.pg.Port), fmt.Sprintf(":%d/", port), 1)
		cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
		if err := os.WriteFile(cfgFile, secYAML(b.Addrs(), deadURL, kafkaYAML, ""), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SLUICE_KAFKA_SASL_PASSWORD", kafkaPW)
		t.Setenv("SLUICE_POSTGRES_PASSWORD", pgPW)
		ctx := context.Background()
		for _, args := range [][]string{
			{"--config", cfgFile, "--topic", "events", "--partition", "0", "--to", "5"},
			{"--config", cfgFile, "--topic", "events", "--partition", "0", "--to", "latest", "--brokers", fmt.Sprintf("127.0.0.1:%d", port)},
		} {
			var so, se bytes.Buffer
			err := ResetOffsetMain(ctx, args, &so, &se)
			if err == nil {
				t.Fatalf("reset-offset %v: want an error (Postgres or Kafka is down)", args)
			}
			record("reset-offset", fmt.Sprintf("%v\n%s%s", err, so.String(), se.String()))
		}
		mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var so, se bytes.Buffer
		record("migrate", fmt.Sprint(MigrateMain(mctx, []string{"--config", cfgFile}, &so, &se), so.String(), se.String()))
		for _, main := range []func(context.Context, []string, io.Writer, io.Writer) error{RunMain, MigrateMain, ResetOffsetMain, HealthcheckMain} {
			var so, se bytes.Buffer
			if err := main(ctx, []string{"--help"}, &so, &se); err == nil {
				t.Fatal("--help: want flag.ErrHelp")
			}
			record("--help", so.String()+se.String())
		}
	})

	t.Run("malformed settings", func(t *testing.T) {
		for _, u := range []string{
			"postgres://app:" + url.PathEscape(pgPW) + "@127.0.0.1:notaport/db",
			"host=127.0.0.1 port=x user=app password='" + pgPW + "'",
		} {
			_, err := Parse(secYAML(b.Addrs(), u, "", ""), noEnv)
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", u)
			}
			record("parse", err)
		}
	})

	all := out.String()
	for _, sec := range secrets {
		forms := []string{sec, url.QueryEscape(sec), url.PathEscape(sec), strings.TrimPrefix(url.UserPassword("u", sec).String(), "u:")}
		for _, f := range strings.FieldsFunc(sec, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) {
			if len(f) >= 4 {
				forms = append(forms, f)
			}
		}
		for _, form := range forms {
			if i := strings.Index(all, form); i >= 0 {
				t.Errorf("secret %q appears (as %q) in the output:\n...%s...", sec, form, all[max(0, i-300):min(len(all), i+100)])
			}
		}
	}
	for _, want := range []string{"batch write failed", "connection refused", "sluice_rows_written_total", "rejected the SASL credentials", "password is wrong", "xxxxx"} {
		if !strings.Contains(all, want) {
			t.Errorf("the output lacks %q: the failures were not provoked", want)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("all output:\n%s", all)
	}
}

// TestSafeDefaults: the metrics and health endpoints bind to loopback
// unless configured, and the private PostgreSQL listens on loopback only.
func TestSafeDefaults(t *testing.T) {
	cfg := mustParse(t, bytes.Replace(secYAML([]string{"127.0.0.1:9092"}, testPG.URL(""), "", ""), []byte("metrics:\n  listen: 127.0.0.1:0\n"), nil, 1), noEnv)
	if cfg.Metrics.Listen != "127.0.0.1:9187" || Defaults().Metrics.Listen != "127.0.0.1:9187" {
		t.Fatalf("default metrics.listen = %q, want 127.0.0.1:9187", cfg.Metrics.Listen)
	}

	// Bind the default host on a free port and check it is unreachable on
	// any other address of this machine.
	host, _, _ := net.SplitHostPort(cfg.Metrics.Listen)
	app, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr, stop, err := app.serveMetrics(net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	_, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(strings.Split(addr, ":")[0]); ip == nil || !ip.IsLoopback() {
		t.Fatalf("metrics listen on %s, want a loopback address", addr)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	pgPort := fmt.Sprint(testPG.Port)
	checked := 0
	for _, ip := range nonLoopbackIPs(t) {
		for _, p := range []string{port, pgPort} {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, p), 2*time.Second)
			if err == nil {
				c.Close()
				t.Errorf("%s:%s accepts connections; want loopback only", ip, p)
			}
			checked++
		}
	}
	t.Logf("checked %d non-loopback address/port pairs", checked)

	if testPG.Host != "127.0.0.1" {
		t.Errorf("devenv PostgreSQL host = %s, want 127.0.0.1 by default", testPG.Host)
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testPG.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var listen string
	if err := c.QueryRow(ctx, "SHOW listen_addresses").Scan(&listen); err != nil {
		t.Fatal(err)
	}
	if listen != "127.0.0.1" {
		t.Errorf("devenv PostgreSQL listen_addresses = %q, want 127.0.0.1", listen)
	}
}

func nonLoopbackIPs(t *testing.T) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// TestRedactor checks the scrubbing itself on the forms secrets take.
func TestRedactor(t *testing.T) {
	cfg := Defaults()
	cfg.Kafka.SASL.Password = "k/P@ss w0rd"
	cfg.Postgres.URL = "postgres://app:" + url.PathEscape("pg#S3cret") + "@h/db"
	rd := newRedactor(&cfg)
	for _, in := range []string{
		"plain k/P@ss w0rd here",
		"query k%2FP%40ss+w0rd here",
		"path k%2FP@ss%20w0rd here",
		"pg pg#S3cret and pg%23S3cret",
		"postgres://other:Short1@host/db",
		"host=h password='a b\\'c' user=u",
		"host=h password=abc user=u",
	} {
		got := rd.scrub(in)
		for _, leak := range []string{"P@ss", "P%40ss", "S3cret", "Short1", "a b", "abc"} {
			if strings.Contains(got, leak) {
				t.Errorf("scrub(%q) = %q still holds %q", in, got, leak)
			}
		}
	}
	err := rd.error(fmt.Errorf("wrapped: %w", errors.New("k/P@ss w0rd")))
	if strings.Contains(err.Error(), "P@ss") || !strings.Contains(err.Error(), "wrapped") {
		t.Errorf("error = %v", err)
	}
	var buf bytes.Buffer
	log := slog.New(rd.handler(slog.NewJSONHandler(&buf, nil)))
	log.With("url", cfg.Postgres.URL).WithGroup("g").Info("connecting with k/P@ss w0rd", "err", errors.New("pg#S3cret"), "cfg", cfg.Kafka.SASL, slog.Group("inner", "pw", "pg#S3cret"))
	if s := buf.String(); strings.Contains(s, "P@ss") || strings.Contains(s, "S3cret") {
		t.Errorf("log line holds a secret: %s", s)
	}
}

// TestCommandsUseSecuritySettings: `sluice migrate` and `sluice
// reset-offset --to latest` (which asks the broker) reach a SASL_SSL Kafka
// and a TLS-only PostgreSQL with the secrets from the environment and a
// mounted file, as the appliance does.
func TestCommandsUseSecuritySettings(t *testing.T) {
	const pgPW, kafkaPW = "cmd-Pg-Pw-1", "cmd-Kafka-Pw-2"
	s := startSecurePG(t, pgPW)
	b, kafkaYAML := startSASLSSLBroker(t, kafkaPW)
	db, admin := secDB(t, s.pg, appRole)
	y := secYAML(b.Addrs(), s.url(url.User(appRole), "127.0.0.1", db, s.verifyFull(s.pki.caFile)), kafkaYAML, "")
	cfgFile := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(cfgFile, y, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_CONFIG", cfgFile)
	t.Setenv("SLUICE_KAFKA_SASL_PASSWORD", kafkaPW)
	t.Setenv("SLUICE_POSTGRES_PASSWORD_FILE", writeSecret(t, "pg-pw", pgPW))
	t.Setenv("SLUICE_POSTGRES_PASSWORD", "")
	t.Setenv("SLUICE_KAFKA_SASL_PASSWORD_FILE", "")
	ctx := context.Background()

	var so, se bytes.Buffer
	if err := MigrateMain(ctx, nil, &so, &se); err != nil {
		t.Fatalf("migrate: %v\n%s", err, se.String())
	}
	cfg := mustParse(t, y, os.Getenv)
	sec, err := KafkaSecurityOpts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(sec, kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic("events"), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 7; i++ {
		r := item(i, "cmd")
		r.Partition = 1
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	so.Reset()
	if err := ResetOffsetMain(ctx, []string{"--topic", "events", "--partition", "1", "--to", "latest"}, &so, &se); err != nil {
		t.Fatalf("reset-offset: %v\n%s", err, se.String())
	}
	if want := "group g: events/1 next offset set to 7"; !strings.Contains(so.String(), want) {
		t.Fatalf("reset-offset printed %q, want %q", so.String(), want)
	}
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var next int64
	if err := c.QueryRow(ctx, "SELECT next_offset FROM sluice.offsets WHERE group_id = 'g' AND topic = 'events' AND partition = 1").Scan(&next); err != nil || next != 7 {
		t.Fatalf("stored next_offset = %d, %v; want 7", next, err)
	}
}

func TestSecurityWarnings(t *testing.T) {
	f := func(brokers, pgURL, kafka string, want ...string) {
		t.Helper()
		got := strings.Join(securityWarnings(mustParse(t, secYAML([]string{brokers}, pgURL, kafka, ""), noEnv)), "\n")
		if len(want) == 0 && got != "" {
			t.Errorf("%s %s: unexpected warnings:\n%s", brokers, pgURL, got)
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s %s: warnings lack %q:\n%s", brokers, pgURL, w, got)
			}
		}
	}
	f("127.0.0.1:9092", "postgres://u@localhost/db", "")
	f("127.0.0.1:9092", "postgres://u:pw@db.example.com/db?sslmode=verify-full", "")
	f("kafka.example.com:9093", "postgres://u@db.example.com/db?sslmode=verify-ca", "  tls: {enabled: true}\n  sasl: {mechanism: PLAIN, username: u, password: p}")
	f("kafka.example.com:9092", "postgres://u@db.example.com/db", "  sasl: {mechanism: PLAIN, username: u, password: p}",
		"PLAIN without kafka.tls.enabled", "non-loopback brokers", "does not verify the server's certificate")
	f("127.0.0.1:9092", "postgres://u@10.0.0.5/db?sslmode=require", "", "does not verify")
	f("127.0.0.1:9092", "host=db.example.com user=u sslmode=disable", "", "without TLS")
}

// TestUnreadableSecretNamesUID: a mounted secret the process cannot read
// (as in a container running as a non-root uid) is reported with the uid
// and gid to grant. The test re-runs itself as uid 65534 (nobody), which
// needs root to start; as any other user the check happens directly.
func TestUnreadableSecretNamesUID(t *testing.T) {
	if os.Getenv("SLUICE_TEST_SECRET_CHILD") != "" {
		_, err := Parse(secYAML([]string{"127.0.0.1:9092"}, "postgres://app@db.example/ingest", "", ""),
			envMap(map[string]string{"SLUICE_POSTGRES_PASSWORD_FILE": os.Getenv("SLUICE_TEST_SECRET_CHILD")}))
		fmt.Fprintf(os.Stdout, "PARSE-ERROR: %v\n", err)
		return
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // TempDir makes both 0700
	os.Chmod(dir, 0o755)
	secret := filepath.Join(dir, "pg-password")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	if os.Getuid() != 0 {
		os.Chmod(secret, 0)
		_, err := Parse(secYAML([]string{"127.0.0.1:9092"}, "postgres://app@db.example/ingest", "", ""),
			envMap(map[string]string{"SLUICE_POSTGRES_PASSWORD_FILE": secret}))
		out = fmt.Sprint(err)
	} else {
		// The test binary lives in a directory only root may enter: copy it.
		bin := filepath.Join(dir, "ingest.test")
		data, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run", "^TestUnreadableSecretNamesUID$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SLUICE_TEST_SECRET_CHILD="+secret)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child as uid 65534: %v\n%s", err, b)
		}
		out = string(b)
	}
	uid := fmt.Sprintf("uid %d", os.Getuid())
	if os.Getuid() == 0 {
		uid = "uid 65534"
	}
	for _, want := range []string{"SLUICE_POSTGRES_PASSWORD_FILE", "permission denied", "runs as " + uid, "chmod 0440"} {
		if !strings.Contains(out, want) {
			t.Errorf("unreadable secret: %q does not mention %q", out, want)
		}
	}
}

// TestConnectRetryLogged: a PostgreSQL that refuses connections is retried
// for connectPG's patience (30 s at start); the first failure is logged at
// once, naming the address and the fix, with the password scrubbed.
// Before, sluice run and migrate sat silent for the whole patience.
func TestConnectRetryLogged(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	start := time.Now()
	_, err = connectPG(context.Background(), "postgres://u:s3cret@"+addr+"/db", time.Second, log)
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	if time.Since(start) < time.Second {
		t.Errorf("gave up after %s, before its patience of 1s", time.Since(start))
	}
	got := out.String()
	for _, want := range []string{"cannot connect to PostgreSQL yet; retrying", "for=1s", addr, "nothing accepts connections there"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "retrying"); n != 1 {
		t.Errorf("logged %d retry lines, want 1:\n%s", n, got)
	}
	if strings.Contains(got, "s3cret") {
		t.Errorf("log holds the password:\n%s", got)
	}
}
