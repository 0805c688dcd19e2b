package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/registry"
)

const (
	countryAvro = `{"type":"record","name":"Country","namespace":"t","fields":[{"name":"code","type":"string"}]}`
	cityAvro    = `{"type":"record","name":"City","namespace":"t","fields":[{"name":"name","type":"string"},{"name":"country","type":"t.Country"}]}`
	orderProto  = "syntax = \"proto3\";\nmessage Order { string id = 1; }\n"
)

func regClient(t *testing.T, url string) *registry.Client {
	t.Helper()
	c, err := registry.New(registry.Options{URLs: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRegistryPersists registers schemas (one with a reference), deletes a
// version, restarts the registry on the same data directory and finds the
// same ids and texts; new registrations continue after the old ids.
func TestRegistryPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r, err := StartRegistry(RegistryOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c := regClient(t, r.URL())
	ids := map[string]int{}
	reg := func(c *registry.Client, subject string, typ registry.SchemaType, text string, refs ...registry.Reference) int {
		t.Helper()
		id, err := c.Register(ctx, subject, typ, text, refs...)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ids["country"] = reg(c, "country-value", registry.TypeAvro, countryAvro)
	ids["city"] = reg(c, "city-value", registry.TypeAvro, cityAvro, registry.Reference{Name: "t.Country", Subject: "country-value", Version: 1})
	ids["order"] = reg(c, "orders-value", registry.TypeProtobuf, orderProto)
	ids["order2"] = reg(c, "orders-value", registry.TypeProtobuf, strings.Replace(orderProto, "id = 1;", "id = 1; int64 n = 2;", 1))
	// Soft-delete version 2 of orders-value: latest goes back to version 1.
	req, _ := http.NewRequest(http.MethodDelete, r.URL()+"/subjects/orders-value/versions/2", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("cannot delete a version: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r, err = StartRegistry(RegistryOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c = regClient(t, r.URL())
	s, err := c.Schema(ctx, ids["city"])
	if err != nil {
		t.Fatal(err)
	}
	if s.Text != cityAvro || len(s.References) != 1 || s.References[0].Schema.Text != countryAvro {
		t.Fatalf("after the restart id %d is %+v", ids["city"], s)
	}
	latest, err := c.LatestSchema(ctx, "orders-value")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Text != orderProto || latest.Version != 1 {
		t.Fatalf("latest orders-value after the restart: version %d %q, want version 1 (2 was deleted)", latest.Version, latest.Text)
	}
	for name, text := range map[string]string{"country": countryAvro, "order": orderProto} {
		subject := map[string]string{"country": "country-value", "order": "orders-value"}[name]
		typ := map[string]registry.SchemaType{"country": registry.TypeAvro, "order": registry.TypeProtobuf}[name]
		if id := reg(c, subject, typ, text); id != ids[name] {
			t.Fatalf("re-registering %s gave id %d, first %d", name, id, ids[name])
		}
	}
	fresh := reg(c, "new-value", registry.TypeJSON, `{"type":"object"}`)
	for name, id := range ids {
		if fresh == id {
			t.Fatalf("a new schema got id %d, already %s's", fresh, name)
		}
	}
}

// TestRegistryJournalTornAndMismatch: a last line cut short by a crash is
// dropped; a journal whose ids the replay cannot reproduce is refused.
func TestRegistryJournalTornAndMismatch(t *testing.T) {
	dir := t.TempDir()
	r, err := StartRegistry(RegistryOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	id, err := regClient(t, r.URL()).Register(context.Background(), "a-value", registry.TypeAvro, countryAvro)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	path := filepath.Join(dir, RegistryJournal)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(bytes.Clone(good), `{"method":"POST","path":"/subjects/b-value/ver`...), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = StartRegistry(RegistryOptions{DataDir: dir})
	if err != nil {
		t.Fatalf("a torn last line must be dropped: %v", err)
	}
	if _, err := regClient(t, r.URL()).Schema(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
		t.Fatalf("journal after the torn line was dropped:\n%s\nwant\n%s", now, good)
	}

	bad := bytes.Replace(good, []byte(fmt.Sprintf(`"response":{"id":%d}`, id)), []byte(`"response":{"id":99}`), 1)
	if bytes.Equal(bad, good) {
		t.Fatalf("journal has no response id to corrupt:\n%s", good)
	}
	os.WriteFile(path, bad, 0o644)
	_, err = StartRegistry(RegistryOptions{DataDir: dir})
	if err == nil || !strings.Contains(err.Error(), "first 99") || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("got %v, want a refusal naming the id and the fix", err)
	}
}

// TestBrokerMainRegistry runs `sluice broker --registry-listen` with a data
// directory twice: the schemas and their ids survive the restart.
func TestBrokerMainRegistry(t *testing.T) {
	dir := t.TempDir()
	addr := func() string {
		port, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	broker, reg := addr(), addr()
	run := func(f func(url string)) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		pr, pw := io.Pipe()
		go func() {
			done <- BrokerMain(ctx, []string{"--listen", broker, "--data-dir", dir, "--registry-listen", reg}, pw, io.Discard)
			pw.Close()
		}()
		// Wait for the registry's line, then drain the rest.
		url := waitLine(t, pr, "schema registry listening on ")
		go io.Copy(io.Discard, pr)
		f(url)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var id int
	run(func(url string) {
		if url != "http://"+reg {
			t.Fatalf("registry at %s, want http://%s", url, reg)
		}
		var err error
		if _, err = regClient(t, url).Register(context.Background(), "other-value", registry.TypeAvro, countryAvro); err != nil {
			t.Fatal(err)
		}
		id, err = regClient(t, url).Register(context.Background(), "events-value", registry.TypeProtobuf, orderProto)
		if err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Join(dir, RegistryJournal)); err != nil {
		t.Fatalf("no journal beside the broker's data: %v", err)
	}
	run(func(url string) {
		s, err := regClient(t, url).LatestSchema(context.Background(), "events-value")
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != id || s.Text != orderProto || s.Type != registry.TypeProtobuf {
			t.Fatalf("after the restart events-value is id %d %v %q, want id %d", s.ID, s.Type, s.Text, id)
		}
	})
}

func waitLine(t *testing.T, r io.Reader, prefix string) string {
	t.Helper()
	lines := make(chan string)
	go func() {
		var buf []byte
		b := make([]byte, 1)
		for {
			if _, err := r.Read(b); err != nil {
				close(lines)
				return
			}
			if b[0] != '\n' {
				buf = append(buf, b[0])
				continue
			}
			if rest, ok := strings.CutPrefix(string(buf), prefix); ok {
				lines <- rest
				return
			}
			buf = buf[:0]
		}
	}()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal(errors.New("the broker exited before starting the registry"))
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("no %q line within 30s", prefix)
	}
	return ""
}
