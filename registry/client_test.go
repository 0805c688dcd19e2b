package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// fakeRegistry is srfake served on a loopback port behind a handler that
// counts requests and records the Authorization headers it saw.
type fakeRegistry struct {
	*srfake.Registry
	URL      string
	requests atomic.Int64
	gate     chan struct{} // when set, GET /schemas/ids/ waits for it to close

	mu    sync.Mutex
	auths []string
}

func startFake(t *testing.T, opts ...srfake.Option) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{Registry: srfake.NewRegistry(opts...)}
	h := f.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		f.mu.Lock()
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		gate := f.gate
		f.mu.Unlock()
		if gate != nil && strings.HasPrefix(r.URL.Path, "/schemas/ids/") {
			<-gate
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *fakeRegistry) register(t *testing.T, subject string, s sr.Schema) int {
	t.Helper()
	id, _, err := f.RegisterSchema(subject, s)
	if err != nil {
		t.Fatalf("cannot register %s: %v", subject, err)
	}
	return id
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const (
	countryAvro = `{"type":"record","name":"Country","namespace":"com.example","fields":[{"name":"code","type":"string"}]}`
	addressAvro = `{"type":"record","name":"Address","namespace":"com.example","fields":[{"name":"city","type":"string"},{"name":"country","type":"com.example.Country"}]}`
	userAvro    = `{"type":"record","name":"User","namespace":"com.example","fields":[{"name":"home","type":"com.example.Address"},{"name":"work","type":"com.example.Address"},{"name":"born","type":"com.example.Country"}]}`
)

// TestAvroReferences resolves an Avro record whose named types live in
// other subjects, two levels deep, one of them reached twice.
func TestAvroReferences(t *testing.T) {
	f := startFake(t)
	f.register(t, "country-value", sr.Schema{Schema: countryAvro})
	f.register(t, "address-value", sr.Schema{Schema: addressAvro, References: []sr.SchemaReference{
		{Name: "com.example.Country", Subject: "country-value", Version: 1},
	}})
	id := f.register(t, "user-value", sr.Schema{Schema: userAvro, References: []sr.SchemaReference{
		{Name: "com.example.Address", Subject: "address-value", Version: 1},
		{Name: "com.example.Country", Subject: "country-value", Version: 1},
	}})
	c := newClient(t, Options{URLs: []string{f.URL}})
	s, err := c.Schema(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != TypeAvro || s.Text != userAvro || s.ID != id {
		t.Fatalf("got %v %q id %d, want the user schema", s.Type, s.Text, s.ID)
	}
	var got []string
	for _, r := range s.References {
		got = append(got, r.Name+"="+r.Schema.Subject)
		if len(r.Schema.References) != 0 {
			t.Errorf("reference %s has nested references; the list must be flat", r.Name)
		}
	}
	// Dependencies first; Country once although two paths reach it.
	want := "com.example.Country=country-value,com.example.Address=address-value"
	if strings.Join(got, ",") != want {
		t.Fatalf("references %s, want %s", strings.Join(got, ","), want)
	}
	if s.References[0].Schema.Text != countryAvro || s.References[1].Schema.Text != addressAvro {
		t.Fatalf("reference texts differ from what was registered: %+v", s.References)
	}
}

// TestProtobufImport resolves a .proto that imports a file registered under
// its own subject.
func TestProtobufImport(t *testing.T) {
	const money = "syntax = \"proto3\";\npackage common;\nmessage Money { int64 units = 1; int32 nanos = 2; }\n"
	const order = "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nmessage Order { string id = 1; common.Money total = 2; }\n"
	f := startFake(t)
	f.register(t, "common/money.proto", sr.Schema{Schema: money, Type: sr.TypeProtobuf})
	id := f.register(t, "orders-value", sr.Schema{Schema: order, Type: sr.TypeProtobuf, References: []sr.SchemaReference{
		{Name: "common/money.proto", Subject: "common/money.proto", Version: 1},
	}})
	c := newClient(t, Options{URLs: []string{f.URL}})
	s, err := c.Schema(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Type != TypeProtobuf || s.Text != order {
		t.Fatalf("got %v %q", s.Type, s.Text)
	}
	if len(s.References) != 1 || s.References[0].Name != "common/money.proto" ||
		s.References[0].Schema.Text != money || s.References[0].Schema.Type != TypeProtobuf {
		t.Fatalf("references %+v, want common/money.proto", s.References)
	}
}

// TestSoftDeletedReference: a schema id stays served after its subject is
// soft-deleted, and so must the versions it references when they are
// soft-deleted too: references are looked up with deleted=true, as
// Confluent's deserializers look them up.
func TestSoftDeletedReference(t *testing.T) {
	f := startFake(t)
	f.register(t, "country-value", sr.Schema{Schema: countryAvro})
	id := f.register(t, "address-value", sr.Schema{Schema: addressAvro, References: []sr.SchemaReference{
		{Name: "com.example.Country", Subject: "country-value", Version: 1},
	}})
	admin, err := sr.NewClient(sr.URLs(f.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := admin.DeleteSubject(ctx, "address-value", sr.SoftDelete); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteSchema(ctx, "country-value", 1, sr.SoftDelete); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, Options{URLs: []string{f.URL}})
	s, err := c.Schema(ctx, id)
	if err != nil {
		t.Fatalf("schema id %d with a soft-deleted reference: %v", id, err)
	}
	if len(s.References) != 1 || s.References[0].Schema.Text != countryAvro {
		t.Fatalf("references %+v, want the soft-deleted country-value version 1", s.References)
	}
}

// TestCache: a second lookup of an id, and of the references shared with
// another schema, sends no request.
func TestCache(t *testing.T) {
	f := startFake(t)
	f.register(t, "country-value", sr.Schema{Schema: countryAvro})
	a := f.register(t, "address-value", sr.Schema{Schema: addressAvro, References: []sr.SchemaReference{
		{Name: "com.example.Country", Subject: "country-value", Version: 1},
	}})
	c := newClient(t, Options{URLs: []string{f.URL}})
	ctx := context.Background()
	if _, err := c.Schema(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n := f.requests.Load(); n != 2 {
		t.Fatalf("first lookup sent %d requests, want 2 (the schema and its reference)", n)
	}
	for range 5 {
		if _, err := c.Schema(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.requests.Load(); n != 2 {
		t.Fatalf("cached lookups sent requests: %d in all, want 2", n)
	}
	// Another schema referencing the same version reuses the cached one.
	b := f.register(t, "other-value", sr.Schema{Schema: strings.Replace(addressAvro, "Address", "Other", 1), References: []sr.SchemaReference{
		{Name: "com.example.Country", Subject: "country-value", Version: 1},
	}})
	if _, err := c.Schema(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n := f.requests.Load(); n != 3 {
		t.Fatalf("a schema sharing a cached reference sent %d requests in all, want 3", n)
	}
	if st := c.Stats(); st.Hits != 6 || st.Requests != 3 {
		t.Fatalf("stats %+v, want 6 hits and 3 requests", st)
	}
}

// TestCacheBound: the id cache keeps at most CacheSize schemas.
func TestCacheBound(t *testing.T) {
	f := startFake(t)
	var ids []int
	for _, n := range []string{"a", "b", "c"} {
		ids = append(ids, f.register(t, n+"-value", sr.Schema{Schema: `{"type":"record","name":"` + n + `","fields":[]}`}))
	}
	c := newClient(t, Options{URLs: []string{f.URL}, CacheSize: 2})
	ctx := context.Background()
	for _, id := range append(ids, ids[2], ids[0]) {
		if _, err := c.Schema(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// a, b, c fetched; c cached; a evicted by c, fetched again.
	if n := f.requests.Load(); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
	if n := c.byID.len(); n != 2 {
		t.Fatalf("cache holds %d schemas, want 2", n)
	}
}

// TestSingleflight: concurrent callers of one id share one request, and a
// caller that gives up does not fail the others.
func TestSingleflight(t *testing.T) {
	f := startFake(t)
	id := f.register(t, "a-value", sr.Schema{Schema: countryAvro})
	gate := make(chan struct{})
	f.gate = gate
	c := newClient(t, Options{URLs: []string{f.URL}})

	const n = 16
	errs := make(chan error, n)
	quitter, quit := context.WithCancel(context.Background())
	go func() {
		_, err := c.Schema(quitter, id)
		errs <- err
	}()
	for range n - 1 {
		go func() {
			s, err := c.Schema(context.Background(), id)
			if err == nil && s.Text != countryAvro {
				err = errors.New("wrong schema text")
			}
			errs <- err
		}()
	}
	waitFor(t, func() bool {
		c.flight.mu.Lock()
		defer c.flight.mu.Unlock()
		call := c.flight.schemas["id\x00"+strconv.Itoa(id)]
		return call != nil && call.waiters == n
	})
	quit()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that gave up got %v, want context.Canceled", err)
	}
	close(gate)
	for range n - 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if r := f.requests.Load(); r != 1 {
		t.Fatalf("%d concurrent callers sent %d requests, want 1", n, r)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNotFound: 40403 is permanent, names the URL and is not cached.
func TestNotFound(t *testing.T) {
	f := startFake(t)
	c := newClient(t, Options{URLs: []string{f.URL}})
	_, err := c.Schema(context.Background(), 4242)
	if !errors.Is(err, ErrNotFound) || !IsPermanent(err) {
		t.Fatalf("got %v, want a permanent ErrNotFound", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != 40403 || e.StatusCode != 404 {
		t.Fatalf("got %#v, want error code 40403", err)
	}
	if !strings.Contains(err.Error(), f.URL+"/schemas/ids/4242") || !strings.Contains(err.Error(), "schema id 4242") {
		t.Fatalf("error %q does not name the id and the URL", err)
	}
	// Registered later (a producer racing ahead of the lookup), it is found.
	id := f.register(t, "late-value", sr.Schema{Schema: countryAvro})
	if _, err := c.Schema(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	_, err = c.LatestSchema(context.Background(), "no-such-subject")
	if !errors.Is(err, ErrNotFound) || !IsPermanent(err) {
		t.Fatalf("latest of a missing subject: got %v, want a permanent ErrNotFound", err)
	}
}

// TestTransient: a 503, a 404 that is not the registry's, a 200 without a
// schema, and an unreachable URL are transient, and each error names the URL and a fix.
func TestTransient(t *testing.T) {
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error_code":50003,"message":"Error while forwarding the request to the leader"}`))
	}))
	defer unavailable.Close()
	notRegistry := httptest.NewServer(http.NotFoundHandler())
	defer notRegistry.Close()
	// A catch-all route answering 200 with an object that holds no schema.
	catchAll := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	defer catchAll.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		url, want string
	}{
		{unavailable.URL, "unavailable or overloaded"},
		{notRegistry.URL, "does not serve the Schema Registry API"},
		{catchAll.URL, "does not serve the Schema Registry API"},
		{closed, "cannot reach the registry"},
	} {
		c := newClient(t, Options{URLs: []string{tc.url}, Timeout: 5 * time.Second})
		_, err := c.Schema(context.Background(), 1)
		if err == nil || IsPermanent(err) || errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: got %v, want a transient error", tc.url, err)
		}
		if !strings.Contains(err.Error(), tc.url) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: error %q does not name the URL and %q", tc.url, err, tc.want)
		}
		// A transient failure is not cached: the next call asks again.
		if _, err2 := c.Schema(context.Background(), 1); err2 == nil {
			t.Fatal("second call succeeded against a failing registry")
		}
	}
}

// TestUnknownSchemaType: a schema of a type Sluice cannot read (a registry
// may serve others, e.g. Apicurio's XML artifacts) is a permanent
// ErrInvalidSchema naming the type, not an answer from a URL that is not a
// registry: its records become dead letters instead of the partition
// waiting forever.
func TestUnknownSchemaType(t *testing.T) {
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.Write([]byte(`{"schema":"<xs:schema/>","schemaType":"XML"}`))
	}))
	defer reg.Close()
	c := newClient(t, Options{URLs: []string{reg.URL}})
	_, err := c.Schema(context.Background(), 1)
	if !errors.Is(err, ErrInvalidSchema) || !IsPermanent(err) || !strings.Contains(err.Error(), `unknown schema type "XML"`) {
		t.Fatalf("a schema of type XML: got %v, want a permanent ErrInvalidSchema naming the type", err)
	}
}

// TestTimeout: a registry that does not answer within Timeout is transient.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer slow.Close()
	defer close(release)
	c := newClient(t, Options{URLs: []string{slow.URL}, Timeout: 50 * time.Millisecond})
	_, err := c.Schema(context.Background(), 1)
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "did not answer in time") {
		t.Fatalf("got %v, want a transient timeout", err)
	}
}

// TestFailover: an unreachable first URL falls through to the next.
func TestFailover(t *testing.T) {
	f := startFake(t)
	id := f.register(t, "a-value", sr.Schema{Schema: countryAvro})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	c := newClient(t, Options{URLs: []string{dead, f.URL}})
	if _, err := c.Schema(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}

// TestAuth: basic and bearer credentials reach the registry; refused ones
// are transient (a configuration problem, not a missing schema).
func TestAuth(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("key:secret"))
	for _, tc := range []struct {
		name, expect string
		good, bad    Options
	}{
		{"basic", basic, Options{Username: "key", Password: "secret"}, Options{Username: "key", Password: "wrong"}},
		{"bearer", "Bearer tok3n", Options{Token: "tok3n"}, Options{Token: "other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t, srfake.WithAuth(tc.expect))
			f.SeedSchema("a-value", 1, 7, sr.Schema{Schema: countryAvro})
			tc.good.URLs = []string{f.URL}
			if _, err := newClient(t, tc.good).Schema(context.Background(), 7); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			got := f.auths[len(f.auths)-1]
			f.mu.Unlock()
			if got != tc.expect {
				t.Fatalf("sent Authorization %q, want %q", got, tc.expect)
			}
			tc.bad.URLs = []string{f.URL}
			_, err := newClient(t, tc.bad).Schema(context.Background(), 7)
			if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "refused the credentials") {
				t.Fatalf("wrong credentials: got %v, want a transient error naming the credentials", err)
			}
		})
	}
}

// TestGUIDAndLatest: lookups by GUID (cached) and of a subject's latest
// version (not cached: a new version may appear).
func TestGUIDAndLatest(t *testing.T) {
	f := startFake(t)
	f.register(t, "country-value", sr.Schema{Schema: countryAvro})
	id := f.register(t, "address-value", sr.Schema{Schema: addressAvro, References: []sr.SchemaReference{
		{Name: "com.example.Country", Subject: "country-value", Version: 1},
	}})
	ss, ok := f.GetSchema("address-value", 1)
	if !ok || ss.GUID == "" {
		t.Fatalf("srfake reports no GUID: %+v", ss)
	}
	c := newClient(t, Options{URLs: []string{f.URL}})
	ctx := context.Background()
	for range 2 {
		s, err := c.SchemaByGUID(ctx, ss.GUID)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != id || s.GUID != ss.GUID || s.Text != addressAvro || len(s.References) != 1 {
			t.Fatalf("by GUID: %+v", s)
		}
	}
	if n := f.requests.Load(); n != 2 {
		t.Fatalf("two GUID lookups sent %d requests, want 2 (schema, reference)", n)
	}
	if _, err := c.SchemaByGUID(ctx, "00000000-0000-8000-8000-000000000000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown GUID: got %v, want ErrNotFound", err)
	}

	v2 := strings.Replace(addressAvro, `"name":"city"`, `"name":"town"`, 1)
	for _, text := range []string{addressAvro, v2} {
		if text == v2 {
			f.register(t, "address-value", sr.Schema{Schema: v2, References: []sr.SchemaReference{
				{Name: "com.example.Country", Subject: "country-value", Version: 1},
			}})
		}
		s, err := c.LatestSchema(ctx, "address-value")
		if err != nil {
			t.Fatal(err)
		}
		if s.Text != text || s.Subject != "address-value" || len(s.References) != 1 {
			t.Fatalf("latest: %+v, want text %s", s, text)
		}
	}
}

// TestSubjectVersion reads earlier versions of a subject, with their
// references, from the cache the second time; a version that does not
// exist is ErrNotFound.
func TestSubjectVersion(t *testing.T) {
	f := startFake(t)
	f.register(t, "country-value", sr.Schema{Schema: countryAvro})
	refs := []sr.SchemaReference{{Name: "com.example.Country", Subject: "country-value", Version: 1}}
	v2 := strings.Replace(addressAvro, `"name":"city"`, `"name":"town"`, 1)
	f.register(t, "address-value", sr.Schema{Schema: addressAvro, References: refs})
	f.register(t, "address-value", sr.Schema{Schema: v2, References: refs})
	c := newClient(t, Options{URLs: []string{f.URL}})
	ctx := context.Background()
	for range 2 {
		for v, text := range map[int]string{1: addressAvro, 2: v2} {
			s, err := c.SubjectVersion(ctx, "address-value", v)
			if err != nil || s.Text != text || s.Version != v || len(s.References) != 1 || s.References[0].Schema.Text != countryAvro {
				t.Fatalf("version %d: %+v, %v", v, s, err)
			}
		}
	}
	if n := f.requests.Load(); n != 3 {
		t.Errorf("reading two versions twice sent %d requests, want 3 (each version, their reference)", n)
	}
	if _, err := c.SubjectVersion(ctx, "address-value", 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("version 3: %v, want ErrNotFound", err)
	}
}

// TestRegister registers with a reference and reads it back.
func TestRegister(t *testing.T) {
	f := startFake(t)
	c := newClient(t, Options{URLs: []string{f.URL}})
	ctx := context.Background()
	if _, err := c.Register(ctx, "country-value", TypeAvro, countryAvro); err != nil {
		t.Fatal(err)
	}
	id, err := c.Register(ctx, "address-value", TypeAvro, addressAvro, Reference{Name: "com.example.Country", Subject: "country-value", Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Register(ctx, "address-value", TypeAvro, addressAvro, Reference{Name: "com.example.Country", Subject: "country-value", Version: 1})
	if err != nil || again != id {
		t.Fatalf("registering again: id %d, %v; want %d", again, err, id)
	}
	s, err := c.Schema(ctx, id)
	if err != nil || len(s.References) != 1 {
		t.Fatalf("%+v, %v", s, err)
	}
	if got, err := c.Lookup(ctx, "address-value", TypeAvro, addressAvro, Reference{Name: "com.example.Country", Subject: "country-value", Version: 1}); err != nil || got != id {
		t.Fatalf("lookup: id %d, %v; want %d", got, err, id)
	}
	if _, err := c.Lookup(ctx, "address-value", TypeAvro, countryAvro); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup of an unregistered schema: got %v, want ErrNotFound", err)
	}
	_, err = c.Register(ctx, "bad-value", TypeAvro, addressAvro, Reference{Name: "x", Subject: "missing", Version: 1})
	if err == nil || IsPermanent(err) {
		t.Fatalf("registering with a missing reference: got %v, want a non-permanent error", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string // "" for valid
	}{
		{Options{URLs: []string{"http://127.0.0.1:8081"}}, ""},
		{Options{URLs: []string{"https://sr.example.com/prefix"}, Username: "k", Password: "s"}, ""},
		{Options{}, "without URLs"},
		{Options{URLs: []string{"127.0.0.1:8081"}}, "urls[0]: it is not an http:// or https:// URL"},
		{Options{URLs: []string{"http://x:1", "ftp://x"}}, "urls[1]: it is not an http:// or https:// URL"},
		{Options{URLs: []string{"http://x:1 2"}}, "urls[0]: it is not an http:// or https:// URL"},
		{Options{URLs: []string{"http://u:p@x:1"}}, "holds credentials"},
		// Passwords url.Parse rejects (base64 API secrets hold '/'): still
		// credentials, and never quoted.
		{Options{URLs: []string{"https://key:Sr/Secret-9Zq@registry.example.com"}}, "holds credentials"},
		{Options{URLs: []string{"https://key:Secret-9Zq%zz@registry.example.com"}}, "holds credentials"},
		{Options{URLs: []string{"https://key:Secret-9Zq x@registry.example.com"}}, "holds credentials"},
		{Options{URLs: []string{"http://x:1"}, Username: "u", Token: "t"}, "set only one"},
		{Options{URLs: []string{"http://x:1"}, Password: "p"}, "without a username"},
		{Options{URLs: []string{"http://x:1"}, Timeout: -1}, "timeout"},
	} {
		err := tc.o.EnsureDefaults().Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
		if strings.Contains(tc.want, "credentials") && (strings.Contains(err.Error(), ":p@") || strings.Contains(err.Error(), "Secret-9Zq")) {
			t.Errorf("error %q shows the password", err)
		}
	}
}
