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

// docCommandLines returns the sluice command lines of the shell blocks of
// a Markdown page ("```sh", and "$ " lines of plain blocks), each split
// into its arguments after "sluice", up to the first shell operator;
// placeholders (…) are left as they are.
func docCommandLines(md string) [][]string {
	var out [][]string
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(fence, "```") {
			continue
		}
		lang := strings.TrimPrefix(fence, "```")
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if lang != "sh" && lang != "" {
			continue
		}
		joined := strings.ReplaceAll(strings.Join(body, "\n"), "\\\n", " ")
		for _, line := range strings.Split(joined, "\n") {
			line = strings.TrimSpace(line)
			if lang == "" {
				var ok bool
				if line, ok = strings.CutPrefix(line, "$ "); !ok {
					continue
				}
			}
			if c, _, ok := strings.Cut(line, " #"); ok {
				line = c
			}
			if args := sluiceArgs(shellWords(line)); args != nil {
				out = append(out, args)
			}
		}
	}
	return out
}

// sluiceArgs returns the arguments after the first word that runs sluice
// (sluice, bin/sluice, ./bin/sluice, or the compose service sluice
// followed by a command), up to a shell operator; nil without one.
func sluiceArgs(words []string) []string {
	for i, w := range words {
		if w != "sluice" && !strings.HasSuffix(w, "/sluice") || i+1 >= len(words) {
			continue
		}
		if _, ok := commands[words[i+1]]; !ok {
			continue
		}
		var args []string
		for _, a := range words[i+1:] {
			if a == "|" || a == ">" || a == "&" || a == "&&" || a == ";" || a == "||" || a == "2>&1" {
				break
			}
			args = append(args, a)
		}
		return args
	}
	return nil
}

// shellWords splits a command line at spaces, keeping quoted strings
// whole (without their quotes).
func shellWords(s string) []string {
	var words []string
	var b strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			b.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, b.String())
	}
	return words
}

// Every sluice command line in the shell blocks of the docs names a
// command and flags that command has: it is run with one more, unknown
// flag, which its flag parsing must be the first to refuse (nothing runs).
func TestDocCommandsParse(t *testing.T) {
	pages, _ := filepath.Glob("docs/*.md")
	pages = append(pages, "README.md", "bench/README.md", "internal/chaos/README.md")
	const probe = "--sluice-docs-probe"
	n := 0
	for _, p := range pages {
		md, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range docCommandLines(string(md)) {
			n++
			var stdout, stderr strings.Builder
			code := run(append(slices.Clone(args), probe), &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), "flag provided but not defined: "+probe[1:]) {
				first, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
				t.Errorf("%s: sluice %s: its flags do not parse (exit %d): %s", p, strings.Join(args, " "), code, first)
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d sluice command lines in the docs; the extraction is broken", n)
	}
}

// helpFlag is one flag as `sluice COMMAND -h` prints it.
type helpFlag struct{ name, def string }

var helpDefaultRe = regexp.MustCompile(` \(default (.*)\)$`)

// commandFlags returns the flags `sluice args... -h` prints, with the
// default its help ends with ("" without one).
func commandFlags(t *testing.T, args ...string) []helpFlag {
	t.Helper()
	var stdout, stderr strings.Builder
	if code := run(append(slices.Clone(args), "-h"), &stdout, &stderr); code != 0 {
		t.Fatalf("sluice %s -h: exit %d: %s", strings.Join(args, " "), code, stderr.String())
	}
	lines := strings.Split(stderr.String(), "\n")
	var out []helpFlag
	for i, l := range lines {
		rest, ok := strings.CutPrefix(l, "  -")
		if !ok {
			continue
		}
		usage := ""
		if i+1 < len(lines) {
			usage = strings.TrimSpace(lines[i+1])
		}
		if before, after, ok := strings.Cut(rest, "\t"); ok {
			// A one-letter flag's usage follows on its line.
			rest, usage = before, after
		}
		name, placeholder, _ := strings.Cut(rest, " ")
		if strings.Contains(placeholder, " ") {
			// flag.UnquoteUsage takes a back-quoted word of the usage as
			// the value's name: "-in-process-broker sluice broker".
			t.Errorf("sluice %s -h prints %q: a back-quoted phrase in its usage became the value's name", strings.Join(args, " "), l)
		}
		f := helpFlag{name: name}
		if m := helpDefaultRe.FindStringSubmatch(usage); m != nil {
			f.def = strings.Trim(m[1], `"`)
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		t.Fatalf("sluice %s -h printed no flags:\n%s", strings.Join(args, " "), stderr.String())
	}
	return out
}

var docFlagRowRe = regexp.MustCompile("^\\| `--([a-z0-9-]+)` \\|([^|]*)\\|")

// Every flag of every command is in docs/configuration.md's table for
// that command ("#### `sluice COMMAND`", the commands that read the
// configuration also under "Flags of every command that reads the
// configuration"), with the default -h prints, and the tables name no
// flag the command lacks.
func TestFlagsDocumented(t *testing.T) {
	md, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, cmds, ok := strings.Cut(string(md), "\n## Commands\n")
	if !ok {
		t.Fatal(`docs/configuration.md has no "## Commands" section`)
	}
	cmds, _, _ = strings.Cut(cmds, "\n## ")
	// documented flags by section: a command's name, or "common".
	type row struct{ def, section string }
	documented := map[string]map[string]row{}
	section := ""
	for _, line := range strings.Split(cmds, "\n") {
		if h, ok := strings.CutPrefix(line, "#### "); ok {
			section = ""
			switch {
			case strings.HasPrefix(h, "Flags of every command that reads the configuration"):
				section = "common"
			case strings.HasPrefix(h, "`sluice "):
				section, _, _ = strings.Cut(strings.TrimPrefix(h, "`sluice "), " ")
				section = strings.TrimSuffix(section, "`")
				section, _, _ = strings.Cut(section, "|")
			}
			if section != "" && documented[section] == nil {
				documented[section] = map[string]row{}
			}
			continue
		}
		if m := docFlagRowRe.FindStringSubmatch(line); m != nil && section != "" {
			documented[section][m[1]] = row{def: strings.ReplaceAll(strings.TrimSpace(m[2]), "`", ""), section: section}
		}
	}
	var invocations [][]string
	for name := range commands {
		switch name {
		case "version":
		case "dead-letters":
			for _, sub := range []string{"list", "show", "replay"} {
				invocations = append(invocations, []string{name, sub})
			}
		default:
			invocations = append(invocations, []string{name})
		}
	}
	slices.SortFunc(invocations, func(a, b []string) int { return strings.Compare(strings.Join(a, " "), strings.Join(b, " ")) })
	used := map[string]map[string]bool{}
	for _, inv := range invocations {
		cmd := inv[0]
		flags := commandFlags(t, inv...)
		own := documented[cmd]
		if own == nil {
			t.Errorf("docs/configuration.md has no \"#### `sluice %s`\" table of its flags", cmd)
			continue
		}
		if used[cmd] == nil {
			used[cmd] = map[string]bool{}
		}
		hasConfig := slices.ContainsFunc(flags, func(f helpFlag) bool { return f.name == "config" })
		for _, f := range flags {
			r, ok := own[f.name]
			if ok {
				used[cmd][f.name] = true
			} else if hasConfig {
				r, ok = documented["common"][f.name]
			}
			if !ok {
				t.Errorf("docs/configuration.md does not document --%s of sluice %s", f.name, strings.Join(inv, " "))
				continue
			}
			if f.def != "" && !strings.Contains(r.def, f.def) {
				t.Errorf("docs/configuration.md gives --%s of sluice %s the default %q; -h says %q", f.name, strings.Join(inv, " "), r.def, f.def)
			}
		}
	}
	for cmd, rows := range documented {
		if cmd == "common" {
			continue
		}
		for name := range rows {
			if !used[cmd][name] {
				t.Errorf("docs/configuration.md documents --%s for sluice %s, which has no such flag", name, cmd)
			}
		}
	}
}

var envLiteralRe = regexp.MustCompile(`"(SLUICE_[A-Z0-9_]+)"`)

// Every SLUICE_* variable the code reads (a string literal outside the
// tests) is named in docs/configuration.md.
func TestEnvDocumented(t *testing.T) {
	md, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	err = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range envLiteralRe.FindAllStringSubmatch(string(src), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				if !strings.Contains(string(md), "`"+m[1]+"`") {
					t.Errorf("%s reads %s, which docs/configuration.md does not name", path, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 10 {
		t.Errorf("found only %d SLUICE_* variables in the code: %v", len(seen), seen)
	}
}

var (
	mdHeadingRe  = regexp.MustCompile(`(?m)^#+\s+(.*)$`)
	mdLeadInRe   = regexp.MustCompile(`\*\*([^*]+?)\.?\*\*`)
	mdFenceRe    = regexp.MustCompile("(?s)```.*?```")
	sectionRefRe = regexp.MustCompile(`([\w./-]+\.md)\)?,?\s+"([^"]+)"`)
	inPageRefRe  = regexp.MustCompile(`"([^"]{3,80})",? (?:below|above)`)
)

// sectionTitles returns the headings of a Markdown page and its bold
// lead-ins ("**Memory.**"), whitespace collapsed.
func sectionTitles(t *testing.T, path string) []string {
	t.Helper()
	md, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := mdFenceRe.ReplaceAllString(string(md), "")
	var out []string
	for _, m := range mdHeadingRe.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Trim(strings.TrimSpace(m[1]), "`"))
	}
	for _, m := range mdLeadInRe.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Join(strings.Fields(m[1]), " "))
	}
	return out
}

// A section named by its title, `[page.md](page.md), "Title"` or
// `"Title", below`, is a heading (or a bold lead-in) of that page.
func TestDocsSectionReferences(t *testing.T) {
	pages, _ := filepath.Glob("docs/*.md")
	pages = append(pages, "README.md", "internal/chaos/README.md")
	n := 0
	for _, p := range pages {
		md, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(md)), " ")
		check := func(target, title string) {
			n++
			titles := sectionTitles(t, target)
			if titles == nil {
				t.Errorf("%s refers to section %q of %s, which does not exist", p, title, target)
				return
			}
			if !slices.ContainsFunc(titles, func(h string) bool { return strings.Contains(h, title) }) {
				t.Errorf("%s refers to section %q of %s, which has no such heading", p, title, target)
			}
		}
		for _, m := range sectionRefRe.FindAllStringSubmatch(text, -1) {
			target := filepath.Join(filepath.Dir(p), m[1])
			if _, err := os.Stat(target); err != nil {
				target = m[1] // named from the repository's root
			}
			check(target, m[2])
		}
		for _, m := range inPageRefRe.FindAllStringSubmatch(text, -1) {
			check(p, m[1])
		}
	}
	if n < 30 {
		t.Errorf("found only %d section references; the extraction is broken", n)
	}
}

var saslRe = regexp.MustCompile(`mechanism: [A-Z]`)

// Every YAML example of the docs that configures Sluice is a valid
// configuration. A fragment (a section without tables:, or one table of
// a list) is completed with a minimal table; secret files are given;
// examples that elide columns ("columns: [...]") and YAML that is not
// Sluice's (Kubernetes manifests) are left out.
func TestDocConfigExamplesParse(t *testing.T) {
	secrets := t.TempDir()
	for _, f := range []string{"kafka-password", "registry-secret", "registry-token", "postgres-password"} {
		if err := os.WriteFile(filepath.Join(secrets, f), []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	topKeys := map[string]bool{}
	ct := reflect.TypeFor[ingest.Config]()
	for i := range ct.NumField() {
		name, _, _ := strings.Cut(ct.Field(i).Tag.Get("yaml"), ",")
		topKeys[name] = true
	}
	pages, _ := filepath.Glob("docs/*.md")
	pages = append(pages, "README.md")
	n := 0
	for _, p := range pages {
		md, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(md), "\n")
		for i := 0; i < len(lines); i++ {
			fence := strings.TrimSpace(lines[i])
			if fence != "```yaml" {
				continue
			}
			indent := lines[i][:strings.Index(lines[i], "```")]
			at := i + 1
			var b strings.Builder
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				b.WriteString(strings.TrimPrefix(lines[i], indent) + "\n")
			}
			block := b.String()
			if strings.Contains(block, "[...]") {
				continue
			}
			var root yaml.Node
			if err := yaml.Unmarshal([]byte(block), &root); err != nil || len(root.Content) == 0 {
				t.Errorf("%s:%d: a YAML example that is not YAML: %v", p, at, err)
				continue
			}
			doc := root.Content[0]
			switch doc.Kind {
			case yaml.SequenceNode: // one or more items of tables:
				block = "tables:\n" + block
			case yaml.MappingNode:
				ours, hasTables := false, false
				for j := 0; j+1 < len(doc.Content); j += 2 {
					ours = ours || topKeys[doc.Content[j].Value]
					hasTables = hasTables || doc.Content[j].Value == "tables"
				}
				if !ours {
					continue
				}
				if !hasTables {
					block += "tables:\n  - {name: t, topics: [t], columns: [{name: a, type: text, path: a}]}\n"
				}
			}
			block = strings.ReplaceAll(block, "/run/secrets/sluice/", secrets+"/")
			block = regexp.MustCompile(`&sslrootcert=[^\s"]*`).ReplaceAllString(block, "")
			// What the examples leave to the environment: the registry of
			// a fragment, and a SASL password from a mounted file.
			env := func(k string) string {
				switch {
				case k == "SLUICE_SCHEMA_REGISTRY_URLS" && !strings.Contains(block, "schema_registry:"):
					return "http://127.0.0.1:8081"
				case k == "SLUICE_KAFKA_SASL_PASSWORD_FILE" && saslRe.MatchString(block) && !strings.Contains(block, "password_file:"):
					return filepath.Join(secrets, "kafka-password")
				}
				return ""
			}
			n++
			if _, err := ingest.Parse([]byte(block), env); err != nil {
				t.Errorf("%s:%d: the example is refused: %v", p, at, err)
			}
		}
	}
	if n < 12 {
		t.Errorf("checked only %d YAML examples; the extraction is broken", n)
	}
}
