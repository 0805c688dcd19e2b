// Package redact removes passwords from text Sluice prints, for the
// appliance (ingest) and the commands beside it (loadgen, bench), which
// cannot share the appliance's redactor: ingest's tests import loadgen.
// It finds passwords by their place in URLs and connection strings; the
// appliance also scrubs the secrets it knows by value.
package redact

import (
	"errors"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// The password runs to the last '@' before a '/' or a space, as
	// url.Parse reads it: an unescaped '@' is part of it.
	urlPasswordRe = regexp.MustCompile(`(://[^/@\s:]*):[^\s/]*@`)
	kvPasswordRe  = regexp.MustCompile(`(password=)('(?:[^'\\]|\\.)*'|\S+)`)
)

// Passwords returns s with the password of every URL and keyword/value
// connection string in it replaced by xxxxx.
func Passwords(s string) string {
	if strings.Contains(s, "://") {
		s = urlPasswordRe.ReplaceAllString(s, "$1:xxxxx@")
	}
	if strings.Contains(s, "password=") {
		s = kvPasswordRe.ReplaceAllString(s, "${1}xxxxx")
	}
	return s
}

// PGParseDetail is what is wrong with a connection string pgconn cannot
// parse, without the string: pgconn quotes it with the password masked, but
// a password holding an unescaped '@' or ':' defeats the masking.
func PGParseDetail(err error) string {
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && strings.HasPrefix(msg, "cannot parse `") {
		// The quoted string ends at the last "`: " (the details that follow
		// hold no backquote).
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+len("`: "):]
		}
	}
	return Passwords(msg)
}
