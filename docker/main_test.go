// Package docker holds the deployment assets (Dockerfiles, compose stack,
// Prometheus rules, Grafana dashboard, Kubernetes manifests) and the tests
// that keep them honest: the image runs the pipeline end to end, the
// dashboard and alerts only name metrics a running appliance exports, and
// every manifest parses and agrees with the configuration contract.
//
// Tests that need a Docker engine skip when `docker info` fails and under
// -short; tests that run the appliance in-process skip under -short.
package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluice-dev/sluice/internal/devenv"
)

// repoRoot is the repository root, relative to this package's directory
// (where `go test` runs the tests).
const repoRoot = ".."

var (
	pgOnce sync.Once
	pg     *devenv.Postgres
	pgErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pg != nil {
		pg.Stop()
	}
	os.Exit(code)
}

// testPostgres returns the package's private PostgreSQL, started on first
// use (the static tests need none) and stopped by TestMain.
func testPostgres(t *testing.T) *devenv.Postgres {
	t.Helper()
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		pg, pgErr = devenv.StartPostgres(ctx, devenv.PostgresOptions{Listen: "127.0.0.1"})
	})
	if pgErr != nil {
		t.Fatalf("cannot start the private PostgreSQL: %v", pgErr)
	}
	return pg
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// requireDocker skips the test when no Docker engine answers.
func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping the Docker test in -short mode")
	}
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("skipping: no docker command in PATH (install Docker to run the image tests)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("skipping: no Docker engine answers `docker info` (%v): %s", err, firstLine(out))
	}
}

// run runs a command and returns its combined output; it fails the test on
// error.
func run(t *testing.T, ctx context.Context, dir, name string, args ...string) string {
	t.Helper()
	out, err := runErr(ctx, dir, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// waitFor polls cond until it returns true, an error, or the deadline.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// landed reports the rows in table and its dead letters.
func landed(ctx context.Context, url, table string) (rows, deadLetters int64, err error) {
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close(context.Background())
	if err := db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&rows); err != nil {
		return 0, 0, err
	}
	if err := db.QueryRow(ctx, "SELECT count(*) FROM sluice.dead_letters WHERE target = $1", table).Scan(&deadLetters); err != nil {
		return 0, 0, err
	}
	return rows, deadLetters, nil
}

// waitLanded waits until table holds wantRows rows and wantDLs dead letters.
// More than that is a duplicate and fails at once. Before the appliance
// created the tables, queries fail with undefined_table; that is waited out.
// alive, when not nil, is asked on every poll whether the appliance still
// runs.
func waitLanded(t *testing.T, ctx context.Context, url, table string, wantRows, wantDLs int64, d time.Duration, alive func() error) {
	t.Helper()
	var rows, dls int64
	waitFor(t, fmt.Sprintf("%d rows and %d dead letters in %s", wantRows, wantDLs, table), d, func() (bool, error) {
		if alive != nil {
			if err := alive(); err != nil {
				return false, err
			}
		}
		var err error
		rows, dls, err = landed(ctx, url, table)
		if err != nil {
			if strings.Contains(err.Error(), "42P01") { // undefined_table: not migrated yet
				return false, nil
			}
			return false, err
		}
		if rows > wantRows || dls > wantDLs {
			return false, fmt.Errorf("%d rows and %d dead letters in %s, more than the %d and %d sent: duplicates", rows, dls, table, wantRows, wantDLs)
		}
		return rows == wantRows && dls == wantDLs, nil
	})
}

var errStopped = errors.New("the appliance stopped")
