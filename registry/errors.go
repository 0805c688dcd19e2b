package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/sr"
)

var (
	// ErrNotFound: the registry answered that the schema id, GUID, subject
	// or version does not exist (error codes 40401, 40402, 40403).
	// Permanent: a record naming such a schema becomes a dead letter.
	ErrNotFound = errors.New("not found in the schema registry")
	// ErrInvalidSchema: the schema was found but cannot be used: its type
	// is not AVRO, PROTOBUF or JSON, or its references cannot be resolved
	// (a cycle, too deep, a reference without subject). Permanent.
	ErrInvalidSchema = errors.New("schema cannot be used")
)

// Error is a failed registry request. It unwraps to ErrNotFound or
// ErrInvalidSchema when it is one of those, and to the underlying error
// (an *sr.ResponseError, a transport or context error).
type Error struct {
	// Op is what was asked, e.g. "fetch schema id 42".
	Op string
	// URL is the registry URL asked (the request's full URL when the
	// registry answered).
	URL string
	// StatusCode is the HTTP status of the answer, 0 when there was none.
	StatusCode int
	// Code is the registry's error_code (40403, 50001, ...), 0 when none.
	Code int
	// Permanent is true for ErrNotFound and ErrInvalidSchema.
	Permanent bool
	// Fix says what to do about it.
	Fix string

	kind error // ErrNotFound, ErrInvalidSchema or nil
	err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot %s from %s: ", e.Op, e.URL)
	switch {
	case e.kind != nil && e.err == nil:
		b.WriteString(e.kind.Error())
	case e.err != nil:
		b.WriteString(e.err.Error())
	}
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (HTTP %d", e.StatusCode)
		if e.Code != 0 {
			fmt.Fprintf(&b, ", error code %d", e.Code)
		}
		b.WriteByte(')')
	}
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Unwrap returns the error's kind (ErrNotFound, ErrInvalidSchema) and cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	return errs
}

// IsPermanent reports whether err will not go away by retrying: the schema
// (or a schema it references) does not exist, or its references are
// unusable. Records naming it become dead letters. Any other error from a
// Client is transient: retry with backoff.
func IsPermanent(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Permanent
	}
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidSchema)
}

// classify turns an error from pkg/sr into an *Error that says whether it
// is permanent and how to fix it.
func classify(op, urls string, err error) error {
	e := &Error{Op: op, URL: urls, err: err}
	var re *sr.ResponseError
	switch {
	case errors.As(err, &re):
		e.URL = re.URL
		e.StatusCode = re.StatusCode
		e.Code = re.ErrorCode
		switch {
		case re.StatusCode == http.StatusNotFound && sr.IsNotFoundError(re.ErrorCode):
			e.kind, e.Permanent = ErrNotFound, true
			e.err = errors.New(strings.TrimSpace(re.Message))
			if re.Message == "" {
				e.err = nil
			}
			e.Fix = "records naming it cannot be decoded (check the producer's registry is this one)"
		case re.StatusCode == http.StatusNotFound:
			e.Fix = "the URL does not serve the Schema Registry API; check schema_registry.urls, including any path prefix"
		case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
			e.Fix = "the registry refused the credentials; check schema_registry username/password_file or token_file"
		case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests || re.StatusCode == http.StatusRequestTimeout:
			e.Fix = "the registry is unavailable or overloaded; the request is retried, check the registry if it persists"
		default:
			e.Fix = "unexpected answer; check that schema_registry.urls points at a Confluent-compatible Schema Registry"
		}
	case errors.Is(err, context.Canceled):
		// The caller's context ended: report it as is.
	case isTimeout(err):
		e.Fix = "the registry did not answer in time (10 s); check it is running, reachable and not overloaded"
	case strings.Contains(err.Error(), "unable to decode ok response body"):
		e.Fix = "the URL does not serve the Schema Registry API; check schema_registry.urls"
	default:
		e.Fix = "cannot reach the registry; check schema_registry.urls, TLS settings and that the registry is running"
	}
	return e
}

// isTimeout reports an HTTP client timeout (as opposed to the caller's
// context ending).
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// invalid returns a permanent ErrInvalidSchema error.
func invalid(op, urls, format string, args ...any) error {
	return &Error{Op: op, URL: urls, Permanent: true, kind: ErrInvalidSchema, err: fmt.Errorf(format, args...),
		Fix: "fix the schema's references in the registry"}
}

// unknownType returns a permanent ErrInvalidSchema error for a schema of
// a type Sluice cannot read (a registry may serve others, e.g. Apicurio's
// XML or OpenAPI artifacts).
func unknownType(op, urls, typ string) error {
	return &Error{Op: op, URL: urls, Permanent: true, kind: ErrInvalidSchema, err: fmt.Errorf("unknown schema type %q", typ),
		Fix: "records naming it cannot be decoded (Sluice reads AVRO, PROTOBUF and JSON schemas)"}
}

// noSchema returns the transient error for a 200 answer that holds no
// schema: the URL does not serve the Schema Registry API.
func noSchema(op, urls string) error {
	return &Error{Op: op, URL: urls, StatusCode: http.StatusOK, err: errors.New("the answer holds no schema"),
		Fix: "the URL does not serve the Schema Registry API; check schema_registry.urls, including any path prefix"}
}
