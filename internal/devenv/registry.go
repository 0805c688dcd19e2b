package devenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// RegistryJournal is the file, in RegistryOptions.DataDir, that holds every
// change made to the embedded Schema Registry.
const RegistryJournal = "schema-registry.jsonl"

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Listen is host:port; default 127.0.0.1:0 (a free port).
	Listen string
	// DataDir keeps the registry's schemas across restarts, in the file
	// RegistryJournal (the broker's data directory is a fine place); empty
	// keeps them in memory.
	DataDir string
	// Auth, when set, is the exact Authorization header every request must
	// carry ("Basic ..." or "Bearer ...").
	Auth string
}

// Registry is a running embedded Schema Registry (franz-go's srfake, which
// speaks the Confluent REST API for schemas, subjects, config and modes).
//
// Persistence: srfake keeps its state in memory, so every request that
// changes it (registering a schema, deleting a subject or version, setting
// a config or mode) is appended, once it succeeded, to a JSON-lines journal
// and synced; a restart replays the journal in order through the same
// handler and checks that every registration gets the id it got the first
// time. Changes are serialized, so the journal's order is the order they
// took effect in.
type Registry struct {
	Fake *srfake.Registry

	url     string
	srv     *http.Server
	ln      net.Listener
	handler http.Handler

	persist bool
	mu      sync.Mutex // serializes changes and journal writes
	journal *os.File   // nil once closed
}

// journalEntry is one change: the request and the answer it got.
type journalEntry struct {
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	Query    string          `json:"query,omitempty"`
	Body     json.RawMessage `json:"body,omitempty"`
	Status   int             `json:"status"`
	Response json.RawMessage `json:"response,omitempty"`
}

// StartRegistry starts an embedded Schema Registry on o.Listen, first
// replaying o.DataDir's journal when there is one.
func StartRegistry(o RegistryOptions) (*Registry, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	var opts []srfake.Option
	if o.Auth != "" {
		opts = append(opts, srfake.WithAuth(o.Auth))
	}
	r := &Registry{Fake: srfake.NewRegistry(opts...)}
	r.handler = r.Fake.Handler()
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create the schema registry data directory %s: %w", o.DataDir, err)
		}
		path := filepath.Join(o.DataDir, RegistryJournal)
		if err := r.replay(path, o.Auth); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("cannot open the schema registry journal %s: %w (check the data directory's permissions)", path, err)
		}
		r.journal, r.persist = f, true
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		r.closeJournal()
		return nil, fmt.Errorf("cannot listen for the schema registry on %s: %w (choose another --registry-listen address)", o.Listen, err)
	}
	r.ln = ln
	r.url = "http://" + ln.Addr().String()
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// URL returns the registry's base URL, e.g. http://127.0.0.1:8081.
func (r *Registry) URL() string { return r.url }

// Close stops the registry. Changes are already on disk.
func (r *Registry) Close() error {
	err := r.srv.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(err, r.closeJournal())
}

func (r *Registry) closeJournal() error {
	if r.journal == nil {
		return nil
	}
	err := r.journal.Close()
	r.journal = nil
	return err
}

// changes reports whether a request may change the registry's state.
// Lookups by POST (POST /subjects/{s} checks whether a schema is registered;
// POST /compatibility/... tests one) change nothing.
func changes(req *http.Request) bool {
	switch req.Method {
	case http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost:
		p := req.URL.Path
		return !strings.Contains(p, "/compatibility/") && strings.Contains(p, "/subjects/") && strings.HasSuffix(strings.TrimSuffix(p, "/"), "/versions")
	}
	return false
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	if !r.persist || !changes(req) {
		r.handler.ServeHTTP(w, req)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, "cannot read the request body: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.journal == nil { // closed meanwhile
		http.Error(w, "the schema registry is stopping", http.StatusServiceUnavailable)
		return
	}
	rec := httptest.NewRecorder()
	r.handler.ServeHTTP(rec, req)
	if rec.Code >= 200 && rec.Code < 300 {
		e := journalEntry{Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery, Status: rec.Code}
		if json.Valid(body) {
			e.Body = body
		}
		if resp := bytes.TrimSpace(rec.Body.Bytes()); json.Valid(resp) {
			e.Response = resp
		}
		if err := r.append(e); err != nil {
			// The change happened in memory but would be lost on restart:
			// tell the client it failed rather than hand out an id that a
			// restart could reassign.
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (r *Registry) append(e journalEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("cannot encode a schema registry journal entry: %w", err)
	}
	if _, err := r.journal.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("cannot append to the schema registry journal %s: %w (free disk space)", r.journal.Name(), err)
	}
	if err := r.journal.Sync(); err != nil {
		return fmt.Errorf("cannot sync the schema registry journal %s: %w", r.journal.Name(), err)
	}
	return nil
}

// replay applies the journal at path, if any. A last line cut short by a
// crash (no newline) is dropped from the file: its change was never
// acknowledged.
func (r *Registry) replay(path, auth string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot open the schema registry journal %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var good int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				if terr := os.Truncate(path, good); terr != nil {
					return fmt.Errorf("cannot drop the unfinished last line of the schema registry journal %s: %w", path, terr)
				}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot read the schema registry journal %s: %w", path, err)
		}
		if err := r.apply(line, auth); err != nil {
			return fmt.Errorf("cannot replay line %d of the schema registry journal %s: %w; the journal does not match this registry (move it away to start with no schemas)", n, path, err)
		}
		good += int64(len(line))
	}
}

func (r *Registry) apply(line []byte, auth string) error {
	var e journalEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return err
	}
	target := e.Path
	if e.Query != "" {
		target += "?" + e.Query
	}
	req := httptest.NewRequest(e.Method, target, bytes.NewReader(e.Body))
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	r.handler.ServeHTTP(rec, req)
	if rec.Code != e.Status {
		return fmt.Errorf("%s %s answered %d (%s), first %d", e.Method, e.Path, rec.Code, bytes.TrimSpace(rec.Body.Bytes()), e.Status)
	}
	if e.Method == http.MethodPost {
		var was, now struct {
			ID *int `json:"id"`
		}
		json.Unmarshal(e.Response, &was)
		json.Unmarshal(rec.Body.Bytes(), &now)
		if was.ID != nil && (now.ID == nil || *now.ID != *was.ID) {
			return fmt.Errorf("registering under %s gave id %v, first %d", e.Path, deref(now.ID), *was.ID)
		}
	}
	return nil
}

func deref(p *int) any {
	if p == nil {
		return "none"
	}
	return *p
}
