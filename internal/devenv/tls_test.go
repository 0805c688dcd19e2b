package devenv

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPostgresTLS: with TLS and HBA options the private cluster serves TLS
// with the issued certificate, enforces hostssl + scram-sha-256 for a role
// with a password, and still lets devenv itself in as postgres.
func TestPostgresTLS(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ca, err := NewCA("devenv test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.ServerCert("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCert(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	pg, err := StartPostgres(ctx, PostgresOptions{
		TLS: &PostgresTLS{Server: server},
		HBA: []string{"hostssl all app 127.0.0.1/32 scram-sha-256", "host all app all reject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	if err := pg.CreateRole(ctx, "app", "it's a p@ss"); err != nil {
		t.Fatal(err)
	}
	connect := func(userinfo *url.Userinfo, q string) (*pgx.Conn, error) {
		u := fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?%s", userinfo.String(), pg.Port, q)
		return pgx.Connect(ctx, u)
	}
	c, err := connect(url.UserPassword("app", "it's a p@ss"), "sslmode=verify-full&sslrootcert="+url.QueryEscape(caFile))
	if err != nil {
		t.Fatal(err)
	}
	var ssl bool
	err = c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
	c.Close(ctx)
	if err != nil || !ssl {
		t.Fatalf("connection as app: ssl = %v, %v; want a TLS connection", ssl, err)
	}
	if _, err := connect(url.UserPassword("app", "wrong"), "sslmode=verify-full&sslrootcert="+url.QueryEscape(caFile)); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password: err = %v, want password authentication failed", err)
	}
	if _, err := connect(url.UserPassword("app", "it's a p@ss"), "sslmode=disable"); err == nil || !strings.Contains(err.Error(), "pg_hba.conf rejects") {
		t.Errorf("plaintext as app: err = %v, want a pg_hba.conf rejection", err)
	}
	other, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	otherFile, err := other.WriteCert(dir, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(url.UserPassword("app", "it's a p@ss"), "sslmode=verify-full&sslrootcert="+url.QueryEscape(otherFile)); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("untrusted CA: err = %v, want unknown authority", err)
	}
	// devenv's own superuser URL (no TLS) keeps working, also after a restart.
	if err := pg.Restart(ctx, "fast"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.CreateDatabase(ctx, "after_restart"); err != nil {
		t.Fatal(err)
	}
}
