package kafkaauth

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/internal/devenv"
)

func TestSASL(t *testing.T) {
	for _, m := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		if opt, ok := SASL(m, "u", "p"); !ok || opt == nil {
			t.Errorf("SASL(%q) = %v, %v; want an option", m, opt, ok)
		}
	}
	for _, m := range []string{"", "plain", "GSSAPI", "OAUTHBEARER"} {
		if _, ok := SASL(m, "u", "p"); ok {
			t.Errorf("SASL(%q) accepted an unsupported mechanism", m)
		}
	}
}

func TestMechanismList(t *testing.T) {
	if got, want := MechanismList(), "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"; got != want {
		t.Errorf("MechanismList() = %q, want %q", got, want)
	}
}

// TestTLS: the files become a client configuration, and each unusable
// file a *TLSError naming which one, for the caller to word.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := devenv.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteCert(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.ClientCert("client")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := kp.WriteFiles(dir, "client")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := TLS(TLSFiles{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "kafka"})
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "kafka" || tc.MinVersion != tls.VersionTLS12 {
		t.Errorf("config %+v", tc)
	}
	if tc, err := TLS(TLSFiles{}); err != nil || tc.RootCAs != nil || len(tc.Certificates) != 0 {
		t.Errorf("no files: %+v, %v; want the system roots and no certificate", tc, err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		files TLSFiles
		file  TLSFile
		noErr bool // TLSError.Err is nil
	}{
		{"missing CA file", TLSFiles{CAFile: filepath.Join(dir, "nope.pem")}, CAFile, false},
		{"CA file without PEM", TLSFiles{CAFile: notPEM}, CAFile, true},
		{"certificate without key", TLSFiles{CertFile: certFile}, CertKeyPair, false},
		{"key is not a key", TLSFiles{CertFile: certFile, KeyFile: notPEM}, CertKeyPair, false},
	} {
		_, err := TLS(c.files)
		var te *TLSError
		if !errors.As(err, &te) || te.File != c.file || (te.Err == nil) != c.noErr || te.Error() == "" {
			t.Errorf("%s: error %v (%#v), want a TLSError about file %d", c.name, err, te, c.file)
		}
	}
}
