package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Defaults.
const (
	DefaultTimeout   = 10 * time.Second
	DefaultCacheSize = 10_000
	// MaxReferenceDepth bounds how deep references may nest.
	MaxReferenceDepth = 32
	// MaxReferences bounds how many distinct schemas one schema may
	// reference transitively.
	MaxReferences = 1000
)

// Options configures a Client.
type Options struct {
	// URLs are the registry's base URLs (http:// or https://, with any
	// path prefix). A request goes to the first; the next ones are tried
	// only when a URL cannot be reached.
	URLs []string
	// Username and Password enable HTTP basic authentication (Confluent
	// Cloud: the API key and secret).
	Username, Password string
	// Token enables bearer authentication ("Authorization: Bearer TOKEN").
	// Mutually exclusive with Username.
	Token string
	// TLS configures https URLs (CA, client certificate); nil uses the
	// system roots.
	TLS *tls.Config
	// Timeout bounds each HTTP request, connecting included; default 10s.
	Timeout time.Duration
	// CacheSize bounds the schemas kept by id, and separately by GUID and
	// by subject version; default 10,000 each.
	CacheSize int
	// UserAgent defaults to "sluice".
	UserAgent string
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.UserAgent == "" {
		o.UserAgent = "sluice"
	}
	return o
}

// Validate reports the first invalid field, naming the setting and the fix.
func (o *Options) Validate() error {
	if len(o.URLs) == 0 {
		return errors.New("cannot use a schema registry without URLs; set schema_registry.urls, e.g. [http://127.0.0.1:8081]")
	}
	for i, u := range o.URLs {
		if err := CheckURL(u); err != nil {
			return fmt.Errorf("cannot use schema_registry.urls[%d]: it %w", i, err)
		}
	}
	if o.Token != "" && o.Username != "" {
		return errors.New("cannot use both a bearer token and a username for the schema registry; set only one")
	}
	if o.Password != "" && o.Username == "" {
		return errors.New("cannot use a schema registry password without a username; set schema_registry.username")
	}
	if o.Timeout < 0 {
		return fmt.Errorf("cannot use schema registry timeout %v; use a positive duration", o.Timeout)
	}
	if o.CacheSize < 0 {
		return fmt.Errorf("cannot use schema cache size %d; use a positive count", o.CacheSize)
	}
	return nil
}

// CheckURL reports what is wrong with a registry URL, or nil. Its errors
// never quote the URL, nor url.Parse's error, which quotes the URL and its
// parts: a password holding a '/', a space or a bad %-escape makes the
// parse fail (so an unparsable URL with an '@' is taken to hold
// credentials), and a list split at commas (SLUICE_SCHEMA_REGISTRY_URLS)
// can cut one in two.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err == nil && u.User != nil, err != nil && strings.Contains(raw, "@"):
		return errors.New("holds credentials; remove them from the URL and set schema_registry.username with password_file (or SLUICE_SCHEMA_REGISTRY_PASSWORD[_FILE])")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("is not an http:// or https:// URL; write it like https://registry.example.com:8081, with any path prefix")
	}
	return nil
}

// Client fetches and caches schemas. It is safe for concurrent use.
type Client struct {
	o    Options
	sr   *sr.Client
	urls string // for error messages

	byID      *lru[int, *Schema]
	byGUID    *lru[string, *Schema]
	byVersion *lru[subjectVersion, *versionEntry]
	flight    flight

	requests, hits atomic.Int64
}

type subjectVersion struct {
	subject string
	version int
}

// New returns a Client for o, after o.EnsureDefaults and o.Validate.
func New(o Options) (*Client, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.URLs = append([]string(nil), o.URLs...) // pkg/sr rewrites the slice it is given
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = o.TLS
	tr.DialContext = (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = o.Timeout
	opts := []sr.ClientOpt{
		sr.URLs(append([]string(nil), o.URLs...)...),
		sr.HTTPClient(&http.Client{Transport: tr, Timeout: o.Timeout}),
		sr.UserAgent(o.UserAgent),
	}
	switch {
	case o.Username != "":
		opts = append(opts, sr.BasicAuth(o.Username, o.Password))
	case o.Token != "":
		opts = append(opts, sr.BearerToken(o.Token))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create the schema registry client: %w", err)
	}
	return &Client{
		o:         o,
		sr:        cl,
		urls:      strings.Join(o.URLs, ","),
		byID:      newLRU[int, *Schema](o.CacheSize),
		byGUID:    newLRU[string, *Schema](o.CacheSize),
		byVersion: newLRU[subjectVersion, *versionEntry](o.CacheSize),
	}, nil
}

// Stats counts what the Client did.
type Stats struct {
	// Requests is the number of HTTP requests sent.
	Requests int64
	// Hits is the number of lookups answered from the cache.
	Hits int64
}

// Stats returns the counts so far.
func (c *Client) Stats() Stats {
	return Stats{Requests: c.requests.Load(), Hits: c.hits.Load()}
}

// Schema returns schema id with its references resolved. The result is
// shared by every caller: do not modify it.
func (c *Client) Schema(ctx context.Context, id int) (*Schema, error) {
	if s, ok := c.byID.get(id); ok {
		c.hits.Add(1)
		return s, nil
	}
	op := "fetch schema id " + strconv.Itoa(id)
	return c.flight.do(ctx, "id\x00"+strconv.Itoa(id), func(ctx context.Context) (*Schema, error) {
		ss, err := c.fetch(ctx, op, "/schemas/ids/"+strconv.Itoa(id))
		if err != nil {
			return nil, err
		}
		ss.ID = id
		out, err := c.resolve(ctx, op, ss)
		if err != nil {
			return nil, err
		}
		c.byID.add(id, out)
		return out, nil
	})
}

// SchemaByGUID returns the schema with the given GUID (Confluent Platform
// 8's globally unique schema identifier, carried in record headers), with
// its references resolved. The result is shared: do not modify it.
func (c *Client) SchemaByGUID(ctx context.Context, guid string) (*Schema, error) {
	if s, ok := c.byGUID.get(guid); ok {
		c.hits.Add(1)
		return s, nil
	}
	op := "fetch schema guid " + guid
	return c.flight.do(ctx, "guid\x00"+guid, func(ctx context.Context) (*Schema, error) {
		ss, err := c.fetch(ctx, op, "/schemas/guids/"+url.PathEscape(guid))
		if err != nil {
			return nil, err
		}
		if ss.GUID == "" {
			ss.GUID = guid
		}
		out, err := c.resolve(ctx, op, ss)
		if err != nil {
			return nil, err
		}
		c.byGUID.add(guid, out)
		return out, nil
	})
}

// LatestSchema returns the latest version of subject (for example
// "orders-value") with its references resolved, uncached: a new version may
// have been registered since the last call.
func (c *Client) LatestSchema(ctx context.Context, subject string) (*Schema, error) {
	op := fmt.Sprintf("fetch the latest version of subject %q", subject)
	ss, err := c.fetch(ctx, op, versionPath(subject, -1))
	if err != nil {
		return nil, err
	}
	return c.resolve(ctx, op, ss)
}

// SubjectVersion returns version (from 1) of subject with its references
// resolved, cached: a registered version's text never changes. A
// soft-deleted version is returned too; a version that does not exist
// is ErrNotFound.
func (c *Client) SubjectVersion(ctx context.Context, subject string, version int) (*Schema, error) {
	if version < 1 {
		return nil, fmt.Errorf("version %d of subject %q: versions count from 1", version, subject)
	}
	ss, err := c.subjectVersion(ctx, subject, version)
	if err != nil {
		return nil, err
	}
	return c.resolve(ctx, fmt.Sprintf("fetch subject %q version %d", subject, version), ss)
}

// schemaAnswer is a schema as the registry's GET endpoints answer it. The
// type is kept as text: pkg/sr's SchemaType refuses a type it does not
// know while decoding, and that failure reads like a URL that does not
// serve the API, so a schema of another type would be retried forever.
type schemaAnswer struct {
	Subject    string               `json:"subject"`
	Version    int                  `json:"version"`
	ID         int                  `json:"id"`
	GUID       string               `json:"guid"`
	Schema     string               `json:"schema"`
	SchemaType string               `json:"schemaType"`
	References []sr.SchemaReference `json:"references"`
}

// fetch GETs the schema at path, relative to the registry's URL.
func (c *Client) fetch(ctx context.Context, op, path string) (sr.SubjectSchema, error) {
	c.requests.Add(1)
	var a schemaAnswer
	if err := c.sr.Do(ctx, http.MethodGet, path, nil, &a); err != nil {
		return sr.SubjectSchema{}, classify(op, c.urls, err)
	}
	if a.Schema == "" {
		// A registry never serves a schema without text: this 200 is
		// another service's (a catch-all route answering {}), and taking
		// it as a schema would fail every record naming the id until a
		// restart.
		return sr.SubjectSchema{}, noSchema(op, c.urls)
	}
	var typ sr.SchemaType
	if err := typ.UnmarshalText([]byte(a.SchemaType)); err != nil {
		return sr.SubjectSchema{}, unknownType(op, c.urls, a.SchemaType)
	}
	return sr.SubjectSchema{Subject: a.Subject, Version: a.Version, ID: a.ID, GUID: a.GUID,
		Schema: sr.Schema{Schema: a.Schema, Type: typ, References: a.References}}, nil
}

// versionPath is the path of subject's version; -1 is the latest.
func versionPath(subject string, version int) string {
	v := "latest"
	if version != -1 {
		v = strconv.Itoa(version)
	}
	return "/subjects/" + url.PathEscape(subject) + "/versions/" + v
}

// Register registers a schema under subject (idempotent: the registry
// returns the existing id for a schema it already holds) and returns its
// id. refs name the registered schemas it depends on.
func (c *Client) Register(ctx context.Context, subject string, typ SchemaType, text string, refs ...Reference) (int, error) {
	s := sr.Schema{Schema: text, Type: sr.SchemaType(typ)}
	for _, r := range refs {
		s.References = append(s.References, sr.SchemaReference{Name: r.Name, Subject: r.Subject, Version: r.Version})
	}
	c.requests.Add(1)
	id, err := c.sr.RegisterSchema(ctx, subject, s, -1, -1)
	if err != nil {
		e := classify(fmt.Sprintf("register a %s schema under subject %q", typ, subject), c.urls, err).(*Error)
		// Registering a schema whose references do not exist is not a
		// missing schema to dead-letter: it is the registrant's mistake.
		e.Permanent = false
		return 0, e
	}
	return id, nil
}

// Lookup returns the id of a schema already registered under subject, or
// ErrNotFound (permanent) when the subject does not hold it. It registers
// nothing.
func (c *Client) Lookup(ctx context.Context, subject string, typ SchemaType, text string, refs ...Reference) (int, error) {
	s := sr.Schema{Schema: text, Type: sr.SchemaType(typ)}
	for _, r := range refs {
		s.References = append(s.References, sr.SchemaReference{Name: r.Name, Subject: r.Subject, Version: r.Version})
	}
	c.requests.Add(1)
	ss, err := c.sr.LookupSchema(ctx, subject, s)
	if err != nil {
		return 0, classify(fmt.Sprintf("look up a %s schema under subject %q", typ, subject), c.urls, err)
	}
	return ss.ID, nil
}

// resolve fetches root's references, transitively, dependencies first.
func (c *Client) resolve(ctx context.Context, op string, root sr.SubjectSchema) (*Schema, error) {
	out := &Schema{Type: SchemaType(root.Type), Text: root.Schema.Schema, ID: root.ID, GUID: root.GUID, Subject: root.Subject, Version: root.Version}
	if len(root.References) == 0 {
		return out, nil
	}
	r := resolver{c: c, op: op, done: map[subjectVersion]bool{}, onPath: map[subjectVersion]bool{}, names: map[string]bool{}}
	if err := r.walk(ctx, root.References, 1); err != nil {
		return nil, err
	}
	out.References = r.out
	return out, nil
}

type resolver struct {
	c      *Client
	op     string
	done   map[subjectVersion]bool
	onPath map[subjectVersion]bool
	names  map[string]bool
	out    []Named
}

func (r *resolver) walk(ctx context.Context, refs []sr.SchemaReference, depth int) error {
	if depth > MaxReferenceDepth {
		return invalid(r.op, r.c.urls, "references nest deeper than %d", MaxReferenceDepth)
	}
	for _, ref := range refs {
		if ref.Subject == "" || ref.Name == "" {
			return invalid(r.op, r.c.urls, "reference %q to subject %q lacks a name or subject", ref.Name, ref.Subject)
		}
		k := subjectVersion{ref.Subject, ref.Version}
		if r.onPath[k] {
			return invalid(r.op, r.c.urls, "reference cycle through subject %q version %d", ref.Subject, ref.Version)
		}
		if r.done[k] || r.names[ref.Name] {
			continue
		}
		if len(r.done) >= MaxReferences {
			return invalid(r.op, r.c.urls, "more than %d referenced schemas", MaxReferences)
		}
		ss, err := r.c.subjectVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			return err
		}
		r.onPath[k] = true
		if err := r.walk(ctx, ss.References, depth+1); err != nil {
			return err
		}
		delete(r.onPath, k)
		r.done[k] = true
		if r.names[ref.Name] {
			continue // reached by another path while walking this one's own references
		}
		r.names[ref.Name] = true
		r.out = append(r.out, Named{Name: ref.Name, Schema: Schema{
			Type: SchemaType(ss.Type), Text: ss.Schema.Schema, ID: ss.ID, GUID: ss.GUID,
			Subject: ref.Subject, Version: ref.Version,
		}})
	}
	return nil
}

// subjectVersion fetches one referenced version, cached: a registered
// version's text never changes. "latest" (-1) is not cached. Soft-deleted
// versions are included, as Confluent's deserializers include them: a
// schema id stays served after its subject is soft-deleted, and records
// written with it must still decode.
func (c *Client) subjectVersion(ctx context.Context, subject string, version int) (sr.SubjectSchema, error) {
	k := subjectVersion{subject, version}
	if version > 0 {
		if v, ok := c.byVersion.get(k); ok {
			c.hits.Add(1)
			return v.ss, nil
		}
	}
	op := fmt.Sprintf("fetch subject %q version %d", subject, version)
	v, err := c.flight.doVersion(ctx, k, func(ctx context.Context) (*versionEntry, error) {
		ss, err := c.fetch(sr.WithParams(ctx, sr.ShowDeleted), op, versionPath(subject, version))
		if err != nil {
			return nil, err
		}
		e := &versionEntry{ss: ss}
		if version > 0 {
			c.byVersion.add(k, e)
		}
		return e, nil
	})
	if err != nil {
		return sr.SubjectSchema{}, err
	}
	return v.ss, nil
}

type versionEntry struct{ ss sr.SubjectSchema }

// flight shares one request among concurrent callers of one key. The
// request runs detached from the first caller's context (its values kept,
// its cancellation not): a caller that gives up does not fail the others.
// The HTTP client's timeout bounds it.
type flight struct {
	mu       sync.Mutex
	schemas  map[string]*call[*Schema]
	versions map[subjectVersion]*call[*versionEntry]
}

type call[V any] struct {
	done    chan struct{}
	v       V
	err     error
	waiters int // callers sharing the call (under the flight's mu)
}

func (f *flight) do(ctx context.Context, key string, fn func(context.Context) (*Schema, error)) (*Schema, error) {
	f.mu.Lock()
	if f.schemas == nil {
		f.schemas = map[string]*call[*Schema]{}
	}
	return join(ctx, &f.mu, f.schemas, key, fn)
}

func (f *flight) doVersion(ctx context.Context, key subjectVersion, fn func(context.Context) (*versionEntry, error)) (*versionEntry, error) {
	f.mu.Lock()
	if f.versions == nil {
		f.versions = map[subjectVersion]*call[*versionEntry]{}
	}
	return join(ctx, &f.mu, f.versions, key, fn)
}

// join is called with mu held and releases it.
func join[K comparable, V any](ctx context.Context, mu *sync.Mutex, calls map[K]*call[V], key K, fn func(context.Context) (V, error)) (V, error) {
	c := calls[key]
	if c == nil {
		c = &call[V]{done: make(chan struct{})}
		calls[key] = c
		go func() {
			c.v, c.err = fn(context.WithoutCancel(ctx))
			mu.Lock()
			delete(calls, key)
			mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
