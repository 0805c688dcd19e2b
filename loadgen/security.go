package loadgen

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/kafkaauth"
)

// securityFlags are loadgen's TLS and SASL flags, the same settings as the
// appliance's kafka.tls and kafka.sasl keys. The password is never a flag
// (flags show in ps): it comes from a file or SLUICE_KAFKA_SASL_PASSWORD.
type securityFlags struct {
	tls                       bool
	caFile, certFile, keyFile string
	serverName                string
	mechanism, user           string
	passwordFile              string
}

func (s *securityFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&s.tls, "tls", false, "connect to Kafka over TLS")
	fs.StringVar(&s.caFile, "tls-ca-file", "", "PEM CA bundle for the brokers' certificates (default: the system roots)")
	fs.StringVar(&s.certFile, "tls-cert-file", "", "client certificate (PEM), for mutual TLS")
	fs.StringVar(&s.keyFile, "tls-key-file", "", "client key (PEM), for mutual TLS")
	fs.StringVar(&s.serverName, "tls-server-name", "", "name to verify the brokers' certificates against (default: each broker's host)")
	fs.StringVar(&s.mechanism, "sasl-mechanism", "", "SASL mechanism: "+kafkaauth.MechanismList()+" (default: no SASL)")
	fs.StringVar(&s.user, "sasl-username", "", "SASL user (default $SLUICE_KAFKA_SASL_USERNAME)")
	fs.StringVar(&s.passwordFile, "sasl-password-file", "", "file holding the SASL password (default $SLUICE_KAFKA_SASL_PASSWORD_FILE, then $SLUICE_KAFKA_SASL_PASSWORD)")
}

// opts returns the franz-go options for the flags.
func (s *securityFlags) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if !s.tls && (s.caFile != "" || s.certFile != "" || s.keyFile != "" || s.serverName != "") {
		return nil, errors.New("cannot use --tls-* without --tls; add --tls")
	}
	if s.tls {
		tc, err := kafkaauth.TLS(kafkaauth.TLSFiles{CAFile: s.caFile, CertFile: s.certFile, KeyFile: s.keyFile, ServerName: s.serverName})
		var te *kafkaauth.TLSError
		switch {
		case errors.As(err, &te) && te.File == kafkaauth.CertKeyPair:
			return nil, fmt.Errorf("cannot load --tls-cert-file and --tls-key-file: %w", te.Err)
		case errors.As(err, &te) && te.Err == nil:
			return nil, fmt.Errorf("cannot use --tls-ca-file %s: no PEM certificate in it", te.Path)
		case errors.As(err, &te):
			return nil, fmt.Errorf("cannot read --tls-ca-file: %w", te.Err)
		case err != nil:
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	mech := strings.ToUpper(s.mechanism)
	if mech == "" {
		return opts, nil
	}
	user := s.user
	if user == "" {
		user = os.Getenv("SLUICE_KAFKA_SASL_USERNAME")
	}
	file := s.passwordFile
	if file == "" {
		file = os.Getenv("SLUICE_KAFKA_SASL_PASSWORD_FILE")
	}
	pass := os.Getenv("SLUICE_KAFKA_SASL_PASSWORD")
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cannot read the SASL password file: %w", err)
		}
		pass = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if user == "" || pass == "" {
		return nil, errors.New("cannot use SASL without a user and a password; set --sasl-username and --sasl-password-file (or the SLUICE_KAFKA_SASL_* environment)")
	}
	opt, ok := kafkaauth.SASL(mech, user, pass)
	if !ok {
		return nil, fmt.Errorf("cannot use --sasl-mechanism %q; use %s", s.mechanism, kafkaauth.MechanismList())
	}
	return append(opts, opt), nil
}

// ping fails fast when the brokers cannot be reached or reject the
// credentials, before any record is handed to a producer that would retry.
func ping(ctx context.Context, brokers []string, opts []kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return fmt.Errorf("cannot create a Kafka client: %w", err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		return fmt.Errorf("cannot reach Kafka at %v (check --brokers and the --tls/--sasl flags): %w", brokers, err)
	}
	return nil
}
