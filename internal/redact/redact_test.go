package redact

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:pw@h/db":                  "postgres://u:xxxxx@h/db",
		"postgres://u:Pw@Secret@h/db and x@y":   "postgres://u:xxxxx@h/db and x@y",
		"https://reg.example.com:8081/a@b":      "https://reg.example.com:8081/a@b",
		"host=h password='a b\\'c' user=u":      "host=h password=xxxxx user=u",
		"host=h password=abc user=u":            "host=h password=xxxxx user=u",
		"postgres://u@h/db?sslmode=verify-full": "postgres://u@h/db?sslmode=verify-full",
	} {
		if got := Passwords(in); got != want {
			t.Errorf("Passwords(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPGParseDetail: pgconn masks a password only up to its first '@' or
// ':'; the detail holds none of the connection string.
func TestPGParseDetail(t *testing.T) {
	for _, s := range []string{
		"postgres://u:Pw@Secret-9Zq@h/db?sslrootcert=/nonexistent/ca.pem",
		"postgres://u:Pw:Secret-9Zq@h/db?sslrootcert=/nonexistent/ca.pem",
		"postgres://u:Secret-9Zq%zz@h/db",
		"host=h password=Secret-9Zq port=x",
	} {
		_, err := pgconn.ParseConfig(s)
		if err == nil {
			t.Fatalf("%s parsed", s)
		}
		if d := PGParseDetail(err); strings.Contains(d, "Secret-9Zq") || d == "" {
			t.Errorf("PGParseDetail(%v) = %q", err, d)
		}
	}
}
