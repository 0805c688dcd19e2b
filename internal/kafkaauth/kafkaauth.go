// Package kafkaauth builds the authentication of every Kafka client Sluice
// builds, the appliance (ingest, from kafka.tls and kafka.sasl) and the
// load generator (loadgen, from its flags): the SASL client option for a
// mechanism name, and the TLS configuration from PEM files. Callers
// validate their own settings and word their own errors, naming their own
// keys or flags; this package only knows the mechanisms and the files.
package kafkaauth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Mechanisms are the SASL mechanisms SASL accepts, upper case.
var Mechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// MechanismList is Mechanisms for an error message: "PLAIN, SCRAM-SHA-256
// or SCRAM-SHA-512".
func MechanismList() string {
	return strings.Join(Mechanisms[:len(Mechanisms)-1], ", ") + " or " + Mechanisms[len(Mechanisms)-1]
}

// SASL returns the client option for mechanism (one of Mechanisms, upper
// case), and false for any other name.
func SASL(mechanism, user, pass string) (kgo.Opt, bool) {
	switch mechanism {
	case "PLAIN":
		return kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()), true
	case "SCRAM-SHA-256":
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()), true
	case "SCRAM-SHA-512":
		return kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()), true
	}
	return nil, false
}

// TLSFiles are the PEM files and the name a TLS client verifies; empty
// fields keep Go's defaults (system roots, no client certificate, each
// broker's host name).
type TLSFiles struct {
	CAFile, CertFile, KeyFile, ServerName string
}

// TLSFile says which file a TLSError is about.
type TLSFile int

const (
	// CAFile: the CA bundle cannot be read, or holds no PEM certificate
	// (TLSError.Err is then nil).
	CAFile TLSFile = iota
	// CertKeyPair: the client certificate and key cannot be loaded.
	CertKeyPair
)

// TLSError is a TLS file that cannot be used.
type TLSError struct {
	File TLSFile
	Path string // the CA file, or the certificate file
	Err  error  // nil when the CA file holds no PEM certificate
}

func (e *TLSError) Error() string {
	switch {
	case e.File == CertKeyPair:
		return fmt.Sprintf("cannot load the client certificate %s and its key: %v", e.Path, e.Err)
	case e.Err == nil:
		return fmt.Sprintf("%s holds no PEM certificate", e.Path)
	}
	return fmt.Sprintf("cannot read the CA file: %v", e.Err)
}

func (e *TLSError) Unwrap() error { return e.Err }

// TLS returns the client configuration for f (TLS 1.2 at least), or a
// *TLSError.
func TLS(f TLSFiles) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, &TLSError{File: CAFile, Path: f.CAFile, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &TLSError{File: CAFile, Path: f.CAFile}
		}
		tc.RootCAs = pool
	}
	if f.CertFile != "" || f.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, &TLSError{File: CertKeyPair, Path: f.CertFile, Err: err}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
