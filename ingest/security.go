package ingest

// Security: TLS and SASL to Kafka, the PostgreSQL password, and keeping
// secrets out of logs and errors.
//
// Secrets are resolved once, when the configuration is loaded (Parse):
//
//   - kafka.sasl password: kafka.sasl.password_file (SLUICE_KAFKA_SASL_PASSWORD_FILE
//     overrides it) or kafka.sasl.password (SLUICE_KAFKA_SASL_PASSWORD
//     overrides it), not both: a password given as a value and as a file
//     is refused, naming both, rather than one chosen silently;
//   - PostgreSQL password: postgres.password_file (SLUICE_POSTGRES_PASSWORD_FILE
//     overrides it) or SLUICE_POSTGRES_PASSWORD, not both; either wins over
//     the password in postgres.url. It is written into Config.Postgres.URL,
//     so every connection (control, writers, migrate, reset-offset) uses the
//     same settings; sslmode, sslrootcert, sslcert and sslkey stay in the URL.
//
// The App scrubs every secret it knows (and any URL password) from its log
// lines and from the errors Run returns.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-dev/sluice/internal/kafkaauth"
	"github.com/sluice-dev/sluice/internal/redact"
)

// validateSecurity checks the kafka.tls keys. The kafka.sasl keys are
// checked by resolveSecrets, which alone sees every place a password can
// be given.
func (c *Config) validateSecurity() error {
	t := c.Kafka.TLS
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "") {
		return cfgErr("kafka.tls.enabled", "false while other kafka.tls keys are set; set enabled: true to use TLS, or remove the other keys")
	}
	if t.CertFile != "" && t.KeyFile == "" {
		return cfgErr("kafka.tls.key_file", "empty while kafka.tls.cert_file is set; set the client certificate's private key file")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		return cfgErr("kafka.tls.cert_file", "empty while kafka.tls.key_file is set; set the client certificate file")
	}
	return nil
}

// resolveSecrets reads password files and folds the PostgreSQL password into
// postgres.url. env is the environment (the same function Parse applied).
func (c *Config) resolveSecrets(env func(string) string) error {
	if err := c.SchemaRegistry.resolveSecrets(env); err != nil {
		return err
	}
	s := &c.Kafka.SASL
	if err := resolveSecret(env, &s.Password, &s.PasswordFile, "kafka.sasl.password", "kafka.sasl.password_file",
		"SLUICE_KAFKA_SASL_PASSWORD", "SLUICE_KAFKA_SASL_PASSWORD_FILE"); err != nil {
		return err
	}
	if s.Mechanism == "" && s.Password != "" {
		// Without a mechanism the password would go unused: Sluice would
		// connect without SASL.
		return cfgErr("kafka.sasl.mechanism", "empty but a password is set; use %s", kafkaauth.MechanismList())
	}
	if s.Mechanism != "" && s.Password == "" {
		return cfgErr("kafka.sasl.password", "empty while kafka.sasl.mechanism is %s; set SLUICE_KAFKA_SASL_PASSWORD, SLUICE_KAFKA_SASL_PASSWORD_FILE or kafka.sasl.password_file", s.Mechanism)
	}

	p := &c.Postgres
	pw := env("SLUICE_POSTGRES_PASSWORD") // no configuration key: the URL holds one
	if err := resolveSecret(env, &pw, &p.PasswordFile, "SLUICE_POSTGRES_PASSWORD", "postgres.password_file",
		"SLUICE_POSTGRES_PASSWORD", "SLUICE_POSTGRES_PASSWORD_FILE"); err != nil {
		return err
	}
	if pw == "" {
		return nil
	}
	u, err := withPassword(p.URL, pw)
	if err != nil {
		return err
	}
	p.URL = u
	return nil
}

// resolveSecret reads a secret's file into *value: the file is named by
// fileEnv or else by the configuration key fileKey; a value already given
// (by valueEnv, applied before, or by valueKey) together with a file is
// refused naming both, and an error names the key that gave the file.
func resolveSecret(env func(string) string, value, file *string, valueKey, fileKey, valueEnv, fileEnv string) error {
	if v := env(fileEnv); v != "" {
		*file, fileKey = v, fileEnv
	}
	if *file == "" {
		return nil
	}
	if *value != "" {
		if env(valueEnv) != "" {
			valueKey = valueEnv
		}
		return bothSetErr(valueKey, fileKey)
	}
	v, err := readSecretFile(*file, fileKey)
	if err != nil {
		return err
	}
	*value = v
	return nil
}

// bothSetErr refuses a secret given twice: which one was meant is not a
// choice to make silently.
func bothSetErr(value, file string) error {
	return cfgErr(value, "set together with %s; give the secret in one place only (unset %s, or remove %s)", file, value, file)
}

// readSecretFile reads a mounted secret; one trailing newline (as left by
// `echo … > file`) is not part of it.
func readSecretFile(path, key string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrPermission) {
		return "", cfgErr(key, "cannot read the secret file: %v; this process runs as uid %d (gid %d): make the file readable by it "+
			"(e.g. chgrp %d and chmod 0440 the file, or set the pod's fsGroup to %d)", err, os.Getuid(), os.Getgid(), os.Getgid(), os.Getgid())
	}
	if err != nil {
		return "", cfgErr(key, "cannot read the secret file: %v; mount the file or fix the path", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", cfgErr(key, "%s is empty; write the password into it", path)
	}
	return s, nil
}

// withPassword returns the connection string connString with its password
// replaced by pw. It handles URLs (postgres://) and keyword/value strings.
// Its errors never quote connString.
func withPassword(connString, pw string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			// url.Error quotes the URL, password included: say less.
			return "", cfgErr("postgres.url", "cannot parse the URL to add the password; write it like postgres://user@host:5432/db?sslmode=verify-full")
		}
		if u.User == nil || u.User.Username() == "" {
			return "", cfgErr("postgres.url", "has no user, so the password from SLUICE_POSTGRES_PASSWORD(_FILE) or postgres.password_file has no one to belong to; write postgres://USER@host:5432/db")
		}
		u.User = url.UserPassword(u.User.Username(), pw)
		return u.String(), nil
	}
	// keyword/value: a later keyword wins; quote and escape like libpq.
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return connString + " password='" + r.Replace(pw) + "'", nil
}

// KafkaSecurityOpts returns the kgo options for cfg's kafka.tls and
// kafka.sasl: every Kafka client Sluice creates (the appliance, reset-offset,
// load generators pointed at the same cluster) must use them. Parse has
// already read kafka.sasl.password_file; for a Config built in code it is
// read here.
func KafkaSecurityOpts(cfg *Config) ([]kgo.Opt, error) {
	k := cfg.Kafka
	var opts []kgo.Opt
	if k.TLS.Enabled {
		tc, err := tlsConfig("kafka.tls", k.TLS)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if k.SASL.Mechanism != "" {
		if k.SASL.Password == "" && k.SASL.PasswordFile != "" {
			// A Config built in code rather than by Parse.
			pw, err := readSecretFile(k.SASL.PasswordFile, "kafka.sasl.password_file")
			if err != nil {
				return nil, err
			}
			k.SASL.Password = pw
		}
		if k.SASL.Password == "" {
			return nil, cfgErr("kafka.sasl.password", "empty while kafka.sasl.mechanism is %s; set SLUICE_KAFKA_SASL_PASSWORD, SLUICE_KAFKA_SASL_PASSWORD_FILE or kafka.sasl.password_file", k.SASL.Mechanism)
		}
		opt, ok := kafkaauth.SASL(k.SASL.Mechanism, k.SASL.Username, k.SASL.Password)
		if !ok {
			return nil, cfgErr("kafka.sasl.mechanism", "%q is not supported; use %s", k.SASL.Mechanism, kafkaauth.MechanismList())
		}
		opts = append(opts, opt)
	}
	return opts, nil
}

// tlsConfig builds the client TLS config of the TLS section under key
// (kafka.tls or schema_registry.tls), whose keys its errors name. With no
// ca_file the system roots are trusted; with no server_name the client
// checks each server's certificate against the host it dials.
func tlsConfig(key string, c TLSConfig) (*tls.Config, error) {
	tc, err := kafkaauth.TLS(kafkaauth.TLSFiles{CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, ServerName: c.ServerName})
	var te *kafkaauth.TLSError
	switch {
	case err == nil:
		return tc, nil
	case !errors.As(err, &te):
		return nil, err
	case te.File == kafkaauth.CertKeyPair:
		return nil, cfgErr(key+".cert_file", "cannot load the client certificate and key (%s.key_file): %v", key, te.Err)
	case te.Err == nil:
		return nil, cfgErr(key+".ca_file", "%s holds no PEM certificate; point it at the CA bundle (-----BEGIN CERTIFICATE-----)", te.Path)
	}
	return nil, cfgErr(key+".ca_file", "cannot read: %v; mount the CA bundle or fix the path", te.Err)
}

// kafkaHint explains a failed connection to Kafka: what is wrong and which
// key fixes it. It returns "" when it has nothing better than err.
func kafkaHint(err error, cfg *KafkaConfig) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		record    tls.RecordHeaderError
		firstEOF  *kgo.ErrFirstReadEOF
	)
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return "the broker's certificate is not signed by a trusted CA; set kafka.tls.ca_file to the CA bundle that signed it"
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the broker's certificate is not valid for %q (it names %s); set kafka.tls.server_name to a name the certificate holds, or list the brokers by that name", hostErr.Host, certNames(hostErr.Certificate))
	case errors.As(err, &invalid):
		return "the broker's certificate is invalid (" + invalid.Error() + "); renew it on the broker"
	case errors.As(err, &record):
		return "the broker does not speak TLS on that port; use its TLS (SSL/SASL_SSL) listener port or set kafka.tls.enabled: false"
	case strings.Contains(msg, "remote error: tls: certificate required"):
		// crypto/tls does not export the type of a received alert.
		return "the broker requires a client certificate; set kafka.tls.cert_file and kafka.tls.key_file"
	case strings.Contains(msg, "remote error: tls: bad certificate"), strings.Contains(msg, "remote error: tls: unknown certificate authority"):
		return "the broker rejects the client certificate; set kafka.tls.cert_file and kafka.tls.key_file to a certificate signed by a CA the broker trusts"
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return fmt.Sprintf("SASL authentication failed for user %q; check kafka.sasl.username, the password (kafka.sasl.password_file, SLUICE_KAFKA_SASL_PASSWORD or SLUICE_KAFKA_SASL_PASSWORD_FILE) and kafka.sasl.mechanism (%s)", cfg.SASL.Username, cfg.SASL.Mechanism)
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return fmt.Sprintf("the broker does not enable SASL mechanism %s; set kafka.sasl.mechanism to one it enables", cfg.SASL.Mechanism)
	case errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.ClusterAuthorizationFailed):
		return "the broker requires SASL authentication; set kafka.sasl.mechanism, username and password"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing accepts connections there; check kafka.brokers (host:port)"
	case errors.As(err, &firstEOF):
		switch m := firstEOF.Error(); {
		case strings.Contains(m, "requires TLS"):
			return "the broker closed the connection at once, as a TLS (SSL or SASL_SSL) listener does to a plaintext client; set kafka.tls.enabled: true"
		case strings.Contains(m, "SASL is required"):
			return "the broker closed the connection at once, as a SASL listener does to a client that does not authenticate; set kafka.sasl.mechanism, username and password"
		}
		return "the broker closed the connection at once; check kafka.tls.* and kafka.sasl.* against the listener's security protocol"
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		// franz-go's unexported errChosenBrokerDead: the same close, seen
		// by a request that was waiting on the connection.
		strings.Contains(err.Error(), "broker connection has died"):
		var hints []string
		if cfg.SASL.Mechanism != "" {
			// Some brokers (kfake among them) close the connection instead
			// of answering with an authentication error.
			hints = append(hints, fmt.Sprintf("the broker may have rejected the SASL credentials of user %q; check kafka.sasl.username, the password (kafka.sasl.password_file, SLUICE_KAFKA_SASL_PASSWORD or SLUICE_KAFKA_SASL_PASSWORD_FILE) and kafka.sasl.mechanism (%s)", cfg.SASL.Username, cfg.SASL.Mechanism))
		} else {
			hints = append(hints, "if the listener is SASL_PLAINTEXT or SASL_SSL, set kafka.sasl.mechanism, username and password")
		}
		if !cfg.TLS.Enabled {
			hints = append(hints, "if the listener is SSL or SASL_SSL, set kafka.tls.enabled: true")
		}
		return "the broker closed the connection; " + strings.Join(hints, "; ")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if cfg.TLS.Enabled {
			return "timed out connecting or in the TLS handshake; check kafka.brokers, that a firewall lets this host reach them, and that the port is a TLS listener (a plaintext listener never answers the handshake)"
		}
		return "timed out; check kafka.brokers and that a firewall lets this host reach them"
	}
	return ""
}

// pgHint explains a failed connection to PostgreSQL. It returns "" when it
// has nothing better than err.
func pgHint(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		pe        *pgconn.PgError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "the server's certificate is not signed by a trusted CA; set sslrootcert=/path/to/ca.pem in postgres.url to the provider's CA bundle"
	case errors.As(err, &hostErr):
		return fmt.Sprintf("the server's certificate is not valid for host %q (it names %s); connect by a name the certificate holds", hostErr.Host, certNames(hostErr.Certificate))
	case errors.As(err, &invalid):
		return "the server's certificate is invalid (" + invalid.Error() + ")"
	case errors.As(err, &pe):
		switch pe.Code {
		case "28P01":
			return "the password is wrong; fix it where it is set: postgres.password_file, SLUICE_POSTGRES_PASSWORD_FILE or SLUICE_POSTGRES_PASSWORD (any of them wins over a password in postgres.url), or postgres.url"
		case "28000":
			if strings.Contains(pe.Message, "client certificate") {
				return "the server requires a client certificate; set sslcert and sslkey in postgres.url (with sslmode=verify-full)"
			}
			return "the server has no pg_hba.conf rule for this user, database, address and encryption; check the user in postgres.url and its sslmode (a server that requires TLS needs sslmode=require or stronger)"
		case "3D000":
			return "the database does not exist; fix the database in postgres.url or create it"
		}
	case strings.Contains(err.Error(), "server refused TLS connection"):
		return "the server does not offer TLS; enable ssl on the server or lower sslmode in postgres.url"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing accepts connections there; check the host and port in postgres.url and that the server runs"
	}
	return ""
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no names"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	if len(names) == 0 {
		return "no names"
	}
	return strings.Join(names, ", ")
}

// withHint appends hint to msg when there is one.
func withHint(msg, hint string) string {
	if hint == "" {
		return msg
	}
	return msg + "; " + hint
}

// minSecretLen: shorter secrets are not scrubbed from arbitrary text, which
// would mangle every log line; structural URL/DSN password scrubbing still
// applies to them.
const minSecretLen = 4

// redactor scrubs known secrets, in plain and URL-escaped forms, and
// passwords in URLs and keyword/value connection strings from text.
type redactor struct {
	r *strings.Replacer // nil: no secrets known
}

func newRedactor(cfg *Config) *redactor {
	secrets := []string{cfg.Kafka.SASL.Password, cfg.SchemaRegistry.Password, cfg.SchemaRegistry.Token}
	if pc, err := pgconn.ParseConfig(cfg.Postgres.URL); err == nil {
		secrets = append(secrets, pc.Password)
	}
	seen := map[string]bool{}
	var forms []string
	for _, s := range secrets {
		if len(s) < minSecretLen {
			continue
		}
		userinfo := strings.TrimPrefix(url.UserPassword("u", s).String(), "u:")
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), userinfo} {
			if !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	rd := &redactor{}
	if len(forms) > 0 {
		var pairs []string
		for _, f := range forms {
			pairs = append(pairs, f, "xxxxx")
		}
		rd.r = strings.NewReplacer(pairs...)
	}
	return rd
}

// scrub returns s without secrets.
func (rd *redactor) scrub(s string) string {
	if rd.r != nil {
		s = rd.r.Replace(s)
	}
	return redact.Passwords(s)
}

// redactedError is an error whose message held a secret. Unwrap keeps
// errors.Is/As working; do not print the unwrapped errors.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// error returns err, or a copy whose message is scrubbed if it held a secret.
func (rd *redactor) error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if s := rd.scrub(msg); s != msg {
		return &redactedError{msg: s, err: err}
	}
	return err
}

// handler wraps h so that messages and attribute values are scrubbed.
func (rd *redactor) handler(h slog.Handler) slog.Handler {
	if rh, ok := h.(*redactHandler); ok {
		h = rh.h
	}
	return &redactHandler{h: h, rd: rd}
}

type redactHandler struct {
	h  slog.Handler
	rd *redactor
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.rd.scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.rd.attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = h.rd.attr(a)
	}
	return &redactHandler{h: h.h.WithAttrs(out), rd: h.rd}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{h: h.h.WithGroup(name), rd: h.rd}
}

func (rd *redactor) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := rd.scrub(v.String()); s != v.String() {
			return slog.String(a.Key, s)
		}
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = rd.attr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		// The text handler prints these with %+v, the JSON handler marshals
		// them (ignoring String methods): check both forms.
		s := fmt.Sprintf("%+v", v.Any())
		if t := rd.scrub(s); t != s {
			return slog.String(a.Key, t)
		}
		if _, isErr := v.Any().(error); !isErr {
			if js, err := json.Marshal(v.Any()); err == nil {
				if t := rd.scrub(string(js)); t != string(js) {
					return slog.String(a.Key, t)
				}
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// String hides the password when a SASLConfig (or a Config holding it) is
// printed with %v.
func (s SASLConfig) String() string {
	pw := ""
	if s.Password != "" {
		pw = "xxxxx"
	}
	return fmt.Sprintf("{mechanism:%s username:%s password:%s password_file:%s}", s.Mechanism, s.Username, pw, s.PasswordFile)
}

// GoString hides the password for %#v.
func (s SASLConfig) GoString() string { return "ingest.SASLConfig" + s.String() }

// hintSuffix returns "; hint", or "" without a hint.
func hintSuffix(hint string) string { return withHint("", hint) }

// String hides the URL's password when a PostgresConfig (or a Config holding
// it) is printed with %v.
func (p PostgresConfig) String() string {
	return fmt.Sprintf("{url:%s schema:%s max_conns:%d password_file:%s}", redact.Passwords(p.URL), p.Schema, p.MaxConns, p.PasswordFile)
}

// GoString hides the URL's password for %#v.
func (p PostgresConfig) GoString() string { return "ingest.PostgresConfig" + p.String() }

// LogValue hides the password when a SASLConfig is logged.
func (s SASLConfig) LogValue() slog.Value { return slog.StringValue(s.String()) }

// LogValue hides the URL's password when a PostgresConfig is logged.
func (p PostgresConfig) LogValue() slog.Value { return slog.StringValue(p.String()) }

// securityWarnings lists settings that work but expose credentials or data
// on the network; New logs them at start.
func securityWarnings(cfg *Config) []string {
	var w []string
	k := cfg.Kafka
	if k.SASL.Mechanism == "PLAIN" && !k.TLS.Enabled {
		w = append(w, "kafka.sasl.mechanism PLAIN without kafka.tls.enabled sends the Kafka password in clear text; enable TLS (SASL_SSL) or use SCRAM")
	}
	if !k.TLS.Enabled && !allLoopback(k.Brokers) {
		w = append(w, "kafka.tls.enabled is false for non-loopback brokers: records and credentials cross the network unencrypted")
	}
	pc, err := pgconn.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		return w
	}
	remote := false
	for _, h := range append([]string{pc.Host}, fallbackHosts(pc)...) {
		if !isLoopbackHost(h) {
			remote = true
		}
	}
	if !remote {
		return w
	}
	switch tc := pc.TLSConfig; {
	case tc == nil:
		w = append(w, "postgres.url connects to a remote server without TLS; set sslmode=verify-full and sslrootcert")
	case tc.InsecureSkipVerify && tc.VerifyPeerCertificate == nil:
		// sslmode=prefer (the default when the URL has none) or require:
		// encrypted but unauthenticated, and prefer falls back to plaintext.
		w = append(w, "postgres.url does not verify the server's certificate (sslmode is prefer, the default, or require); set sslmode=verify-full and sslrootcert to the provider's CA bundle")
	}
	return w
}

func fallbackHosts(pc *pgconn.Config) []string {
	var hs []string
	for _, f := range pc.Fallbacks {
		hs = append(hs, f.Host)
	}
	return hs
}

func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a)
		if err != nil || !isLoopbackHost(h) {
			return false
		}
	}
	return true
}

// isLoopbackHost reports whether h is a loopback name or address or a unix
// socket directory.
func isLoopbackHost(h string) bool {
	if h == "localhost" || strings.HasPrefix(h, "/") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
