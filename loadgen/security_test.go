package loadgen

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/devenv"
)

// TestLoadgenSASL: loadgen reaches a SASL/SCRAM broker with the password
// from a file, and a wrong password fails instead of hanging.
func TestLoadgenSASL(t *testing.T) {
	b, err := devenv.StartBroker(devenv.BrokerOptions{Topics: []string{"events"}, Partitions: 1,
		SASL: [][3]string{{"SCRAM-SHA-256", "loader", "s3cret-pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("s3cret-pw\n"), 0o600)
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	run := func(file string, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return LoadgenMain(ctx, []string{"--brokers", b.Addrs()[0], "--records", "50", "--quiet",
			"--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "loader", "--sasl-password-file", file}, io.Discard, io.Discard)
	}
	start := time.Now()
	if err := run(good, 30*time.Second); err != nil {
		t.Fatalf("with the right password: %v", err)
	}
	t.Logf("produced in %v", time.Since(start))
	if err := run(bad, 5*time.Second); err == nil {
		t.Fatal("a wrong SASL password produced")
	}
	if err := LoadgenMain(context.Background(), []string{"--records", "1", "--tls-ca-file", good}, io.Discard, io.Discard); err == nil {
		t.Fatal("--tls-ca-file without --tls was accepted")
	}
}
