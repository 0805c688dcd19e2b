package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/ingest"
)

// Docs that are true and findable: these tests hold the pages against the
// code they describe.

// configKeys returns the dotted YAML keys of t's fields ("kafka.tls.ca_file";
// list items as "tables[].name").
func configKeys(t reflect.Type, prefix string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft.NumField() > 0 && ft.Field(0).Tag.Get("yaml") != "":
			configKeys(ft, key+".", out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			configKeys(ft.Elem(), key+"[].", out)
		default:
			out[key] = true
		}
	}
}

// yamlKeys returns the dotted keys of a YAML document, every item of a list
// counted under "[]".
func yamlKeys(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			yamlKeys(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := prefix+n.Content[i].Value, n.Content[i+1]
			switch {
			case v.Kind == yaml.MappingNode:
				yamlKeys(v, k+".", out)
			case v.Kind == yaml.SequenceNode && len(v.Content) > 0 && v.Content[0].Kind == yaml.MappingNode:
				for _, item := range v.Content {
					yamlKeys(item, k+"[].", out)
				}
			default:
				out[k] = true
			}
		}
	}
}

// Every configuration key is in docs/configuration.md's annotated example,
// and the example has no key the code does not read.
func TestConfigurationDocumented(t *testing.T) {
	md, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(md), "## Every key, with its default")
	if !ok {
		t.Fatal(`docs/configuration.md has no "## Every key, with its default" section`)
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/configuration.md: no yaml block under \"Every key, with its default\"")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(block), &doc); err != nil {
		t.Fatalf("docs/configuration.md's example is not YAML: %v", err)
	}
	documented, inCode := map[string]bool{}, map[string]bool{}
	yamlKeys(&doc, "", documented)
	configKeys(reflect.TypeFor[ingest.Config](), "", inCode)
	for k := range inCode {
		if !documented[k] {
			t.Errorf("configuration key %s is not in docs/configuration.md's example", k)
		}
	}
	for k := range documented {
		if !inCode[k] {
			t.Errorf("docs/configuration.md documents %s, which ingest.Config does not have", k)
		}
	}
	// The example is a valid configuration.
	if _, err := ingest.Parse([]byte(block), func(string) string { return "" }); err != nil {
		t.Errorf("docs/configuration.md's example does not parse: %v", err)
	}
}

var mdLinkRe = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)

// Every relative link of README.md and docs/ names a file that exists, and
// the README's first two commands are make demo and make test.
func TestDocsLinks(t *testing.T) {
	pages, _ := filepath.Glob("docs/*.md")
	pages = append(pages, "README.md", "bench/README.md", "internal/chaos/README.md", "CHANGELOG.md")
	for _, p := range pages {
		md, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLinkRe.FindAllStringSubmatch(string(md), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", p, target)
			}
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, block := range strings.Split(string(readme), "```sh\n")[1:] {
		body, _, _ := strings.Cut(block, "```")
		for _, line := range strings.Split(body, "\n") {
			if c, _, _ := strings.Cut(line, "#"); strings.TrimSpace(c) != "" {
				cmds = append(cmds, strings.TrimSpace(c))
			}
		}
	}
	if len(cmds) < 2 || !slices.Equal(cmds[:2], []string{"make demo", "make test"}) {
		t.Errorf("the README's first two commands are %q, want make demo and make test", cmds[:min(2, len(cmds))])
	}
}

// subjectsCheckedFrom is the first commit whose successors must keep their
// subjects to 72 characters; older history is left as it was written.
const subjectsCheckedFrom = "988750b"

// Commit subjects after subjectsCheckedFrom are at most 72 characters, so
// `git log --oneline` stays readable. Skipped without git or without that
// commit (a shallow clone).
func TestCommitSubjects(t *testing.T) {
	if err := exec.Command("git", "cat-file", "-e", subjectsCheckedFrom+"^{commit}").Run(); err != nil {
		t.Skipf("git or commit %s not available here: %v", subjectsCheckedFrom, err)
	}
	out, err := exec.Command("git", "log", "--format=%h %s", subjectsCheckedFrom+"..HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		hash, subject, _ := strings.Cut(line, " ")
		if n := utf8.RuneCountInString(subject); n > 72 {
			t.Errorf("commit %s: subject of %d characters, more than 72: %q (the details go in the body)", hash, n, subject)
		}
	}
}
