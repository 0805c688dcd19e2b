// Package devenv runs the embedded environment: a private PostgreSQL cluster
// built from the machine's binaries in a temporary directory on a free
// loopback port, and an in-process Kafka-protocol broker (kfake).
//
// It is what `sluice demo`, `sluice broker`, the tests and the benchmarks
// stand on. Everything it starts is torn down by the matching Stop/Close.
package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Listen is the address the server listens on; default 127.0.0.1.
	Listen string
	// Port is the TCP port; 0 picks a free one.
	Port int
	// Durable keeps fsync and synchronous_commit on. Tests leave it off
	// (they assert behaviour, not crash durability of the OS page cache);
	// benchmarks and the demo turn it on so numbers mean something.
	Durable bool
	// Settings are extra `-c name=value` server settings.
	Settings []string
	// Dir is the data directory's parent; default os.TempDir().
	Dir string
	// TLS, when set, turns ssl on with its server key pair; plain
	// connections are still accepted unless HBA rejects them.
	TLS *PostgresTLS
	// HBA lines go before the default pg_hba.conf rules (which trust every
	// socket and loopback connection), so they win: e.g.
	// "hostssl all app 127.0.0.1/32 scram-sha-256" and
	// "host all app 127.0.0.1/32 reject". The postgres superuser should keep
	// the trust rules: devenv itself connects as postgres without TLS.
	HBA []string
}

// PostgresTLS is the server side of TLS for StartPostgres.
type PostgresTLS struct {
	// Server is the server's certificate and key.
	Server *KeyPair
	// ClientCA, when set, is trusted for client certificates (for
	// `hostssl … cert` HBA rules, where the certificate's common name is
	// the role).
	ClientCA *CA
}

// Postgres is a running private cluster.
type Postgres struct {
	DataDir string
	Port    int
	Host    string

	root    string
	ctl     string
	asUser  string // "postgres" when we are root, else ""
	opts    PostgresOptions
	mu      sync.Mutex
	stopped bool
}

// URL returns a connection URL for database db (default "postgres").
func (p *Postgres) URL(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", p.Host, p.Port, db)
}

// FindPGBin returns the directory holding initdb and pg_ctl: from PATH, or
// the newest /usr/lib/postgresql/<version>/bin.
func FindPGBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			// Resolve symlinks so postgres is found next to pg_ctl.
			if r, err := filepath.EvalSymlinks(p); err == nil {
				return filepath.Dir(r), nil
			}
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("cannot find PostgreSQL binaries (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin; install them, e.g. `apt-get install -y postgresql`")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// FreePort returns a TCP port on host that was free a moment ago.
func FreePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartPostgres initialises and starts a private cluster. The caller must
// call Stop, which also removes the data directory.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1"
	}
	bin, err := FindPGBin()
	if err != nil {
		return nil, err
	}
	p := &Postgres{Host: opts.Listen, ctl: filepath.Join(bin, "pg_ctl"), opts: opts}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		if _, err := user.Lookup("postgres"); err != nil {
			return nil, errors.New("cannot run initdb as root and there is no `postgres` user; install the postgresql package or run as a non-root user")
		}
		p.asUser = "postgres"
	}
	root, err := os.MkdirTemp(opts.Dir, "sluice-pg-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a directory for the private PostgreSQL: %w", err)
	}
	p.root = root
	p.DataDir = filepath.Join(root, "data")
	if p.asUser != "" {
		if err := chownTo(root, p.asUser); err != nil {
			os.RemoveAll(root)
			return nil, err
		}
	}
	initdb := filepath.Join(bin, "initdb")
	if out, err := p.run(ctx, initdb, "-D", p.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("cannot initdb the private PostgreSQL in %s: %w\n%s", p.DataDir, err, out)
	}
	if err := p.configureSecurity(); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return p, nil
}

// configureSecurity writes the TLS files and settings and the HBA rules into
// the fresh data directory.
func (p *Postgres) configureSecurity() error {
	if t := p.opts.TLS; t != nil {
		if t.Server == nil {
			return errors.New("cannot enable TLS on the private PostgreSQL: PostgresTLS.Server is nil; issue one with CA.ServerCert")
		}
		conf := "\n# devenv: TLS\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
		files := map[string][]byte{"server.crt": t.Server.CertPEM, "server.key": t.Server.KeyPEM}
		if t.ClientCA != nil {
			files["client_ca.crt"] = t.ClientCA.CertPEM
			conf += "ssl_ca_file = 'client_ca.crt'\n"
		}
		for name, data := range files {
			if err := p.writeDataFile(name, data, 0o600); err != nil {
				return err
			}
		}
		if err := p.appendDataFile("postgresql.conf", conf); err != nil {
			return err
		}
	}
	if len(p.opts.HBA) > 0 {
		f := filepath.Join(p.DataDir, "pg_hba.conf")
		old, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", f, err)
		}
		hba := "# devenv: PostgresOptions.HBA\n" + strings.Join(p.opts.HBA, "\n") + "\n\n" + string(old)
		if err := p.writeDataFile("pg_hba.conf", []byte(hba), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeDataFile writes a file into the data directory, owned by the server's
// user (the server refuses a key file it does not own).
func (p *Postgres) writeDataFile(name string, data []byte, mode os.FileMode) error {
	f := filepath.Join(p.DataDir, name)
	if err := os.WriteFile(f, data, mode); err != nil {
		return fmt.Errorf("cannot write %s: %w", f, err)
	}
	if err := os.Chmod(f, mode); err != nil {
		return fmt.Errorf("cannot chmod %s: %w", f, err)
	}
	if p.asUser != "" {
		return chownTo(f, p.asUser)
	}
	return nil
}

func (p *Postgres) appendDataFile(name, text string) error {
	f := filepath.Join(p.DataDir, name)
	old, err := os.ReadFile(f)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", f, err)
	}
	return p.writeDataFile(name, append(old, text...), 0o600)
}

// CreateRole creates a login role with a password (stored as SCRAM, the
// server default).
func (p *Postgres) CreateRole(ctx context.Context, name, password string) error {
	c, err := pgx.Connect(ctx, p.URL(""))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var stmt string
	if err := c.QueryRow(ctx, "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", name, password).Scan(&stmt); err != nil {
		return err
	}
	if _, err := c.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("cannot create role %s: %w", name, err)
	}
	return nil
}

func (p *Postgres) serverOptions() string {
	o := []string{
		"-p", strconv.Itoa(p.Port),
		"-k", p.root,
		"-c", "listen_addresses=" + p.Host,
		"-c", "max_connections=200",
		"-c", "shared_buffers=256MB",
		"-c", "max_wal_size=4GB",
		"-c", "checkpoint_timeout=15min",
		"-c", "wal_level=minimal",
		"-c", "max_wal_senders=0",
		"-c", "logging_collector=off",
	}
	if !p.opts.Durable {
		o = append(o, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	for _, s := range p.opts.Settings {
		o = append(o, "-c", s)
	}
	return strings.Join(o, " ")
}

func (p *Postgres) start(ctx context.Context) error {
	if p.Port == 0 {
		port := p.opts.Port
		if port == 0 {
			var err error
			if port, err = FreePort(p.Host); err != nil {
				return err
			}
		}
		p.Port = port
	}
	logFile := filepath.Join(p.root, "postgres.log")
	out, err := p.run(ctx, p.ctl, "-D", p.DataDir, "-l", logFile, "-o", p.serverOptions(), "-w", "-t", "60", "start")
	if err != nil {
		logTail, _ := os.ReadFile(logFile)
		return fmt.Errorf("cannot start the private PostgreSQL on %s:%d: %w\n%s\n%s", p.Host, p.Port, err, out, tail(logTail, 2000))
	}
	p.stopped = false
	return waitReady(ctx, p.URL(""))
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.Connect(ctx, url)
		if err == nil {
			c.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("private PostgreSQL did not accept connections: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Restart stops the server in the given mode ("fast" or "immediate") and
// starts it again on the same port with the same data.
func (p *Postgres) Restart(ctx context.Context, mode string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stop(ctx, mode); err != nil {
		return err
	}
	return p.start(ctx)
}

// StopServer stops the server without removing its data ("fast" or
// "immediate"); StartServer brings it back.
func (p *Postgres) StopServer(ctx context.Context, mode string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stop(ctx, mode)
}

// StartServer starts a server stopped by StopServer.
func (p *Postgres) StartServer(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.start(ctx)
}

func (p *Postgres) stop(ctx context.Context, mode string) error {
	if p.stopped {
		return nil
	}
	out, err := p.run(ctx, p.ctl, "-D", p.DataDir, "-m", mode, "-w", "-t", "60", "stop")
	if err != nil {
		return fmt.Errorf("cannot stop the private PostgreSQL: %w\n%s", err, out)
	}
	p.stopped = true
	return nil
}

// Stop stops the server and removes its directory.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.stop(context.Background(), "fast")
	if err != nil {
		err = p.stop(context.Background(), "immediate")
	}
	os.RemoveAll(p.root)
	return err
}

// CreateDatabase creates database name (dropping it first if it exists) and
// returns its URL.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (string, error) {
	c, err := pgx.Connect(ctx, p.URL(""))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	q := pgx.Identifier{name}.Sanitize()
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+q+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE "+q); err != nil {
		return "", fmt.Errorf("cannot create database %s: %w", name, err)
	}
	return p.URL(name), nil
}

func (p *Postgres) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if p.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", p.asUser, "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Dir = p.root
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

func chownTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("cannot hand %s to user %s: %w", dir, name, err)
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
