package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// goList runs `go list` with args and returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list packages with: %v", err)
	}
	out, err := exec.Command(goBin, append([]string{"list"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.Fields(string(out))
}

// The appliance's commands (run, migrate, reset-offset, healthcheck) live in
// ingest. The binary also links the embedded broker and the demo for its
// broker, demo and bench commands, but nothing the appliance runs may
// reach them.
func TestRunPathImports(t *testing.T) {
	const mod = "github.com/sluice-dev/sluice/"
	deps := goList(t, "-deps", "./ingest")
	for _, bad := range []string{
		mod + "internal/devenv", mod + "internal/demo", mod + "loadgen", mod + "bench",
		"github.com/twmb/franz-go/pkg/kfake",
	} {
		if slices.Contains(deps, bad) {
			t.Errorf("the appliance's path (ingest) imports %s; keep test, demo and benchmark code out of it", bad)
		}
	}
}

// Fault injection (copy/fault.go) is compiled only with -tags sluicefault,
// which only the chaos harness builds with.
func TestFaultOnlyWithTag(t *testing.T) {
	files := goList(t, "-f", "{{range .GoFiles}}{{.}} {{end}}", "./copy")
	if slices.Contains(files, "fault.go") || !slices.Contains(files, "fault_off.go") {
		t.Errorf("a build without tags compiles %v; want fault_off.go and not fault.go", files)
	}
	files = goList(t, "-tags", "sluicefault", "-f", "{{range .GoFiles}}{{.}} {{end}}", "./copy")
	if !slices.Contains(files, "fault.go") || slices.Contains(files, "fault_off.go") {
		t.Errorf("a sluicefault build compiles %v; want fault.go and not fault_off.go", files)
	}
}

// The Makefile stamps the version with -ldflags -X; the symbol must be
// the one buildinfo reads.
func TestVersionStamped(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build sluice with: %v", err)
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	ldflags := "-X github.com/sluice-dev/sluice/internal/buildinfo.version=v9.9.9-test" +
		" -X github.com/sluice-dev/sluice/internal/buildinfo.revision=0123abc"
	build := exec.Command(goBin, "build", "-trimpath", "-ldflags", ldflags, "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice version: %v\n%s", err, out)
	}
	if want := "sluice v9.9.9-test (revision 0123abc, " + runtime.Version(); !strings.HasPrefix(string(out), want) {
		t.Errorf("sluice version printed %q, want it to start with %q", out, want)
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errOut strings.Builder
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "sluice ") {
		t.Errorf("sluice version: exit %d, %q %q", code, out.String(), errOut.String())
	}
	if code := run([]string{"version", "extra"}, &out, &errOut); code != 2 {
		t.Errorf("sluice version extra: exit %d, want 2 (usage)", code)
	}
	// `sluice help` says "Run 'sluice COMMAND -h' for a command's flags":
	// for version that was a usage error, exit 2.
	for _, h := range []string{"-h", "--help"} {
		errOut.Reset()
		if code := run([]string{"version", h}, &out, &errOut); code != 0 || !strings.Contains(errOut.String(), "Usage: sluice version") {
			t.Errorf("sluice version %s: exit %d, %q; want exit 0 and the usage", h, code, errOut.String())
		}
	}
	if code := run([]string{"version", "--short"}, &out, &errOut); code != 2 {
		t.Errorf("sluice version --short: exit %d, want 2 (usage)", code)
	}
}

// docs/design.md's "Packages and import directions" has a row for every
// package of the module, and each row's imports of Sluice packages are
// the ones `go list` finds ("none" for a leaf; rows that describe them
// in words, as the tests-only ones, are not compared).
func TestPackageTable(t *testing.T) {
	md, err := os.ReadFile("docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(md), "\n## Packages and import directions\n")
	if !ok {
		t.Fatal(`docs/design.md has no "## Packages and import directions"`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	const mod = "github.com/sluice-dev/sluice"
	rel := func(p string) string {
		if p == mod {
			return "."
		}
		return strings.TrimPrefix(p, mod+"/")
	}
	documented := map[string][]string{} // package: imports, nil when described in words
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		var imports []string
		switch deps := strings.TrimSpace(cells[3]); {
		case strings.HasPrefix(deps, "none"):
			imports = []string{}
		case strings.HasPrefix(deps, "`"):
			for _, d := range strings.Split(deps, ",") {
				imports = append(imports, strings.Trim(strings.TrimSpace(d), "`"))
			}
		}
		name, _, _ := strings.Cut(strings.TrimSpace(cells[1]), " (")
		for _, n := range strings.Split(name, ",") {
			documented[strings.Trim(strings.TrimSpace(n), "`")] = imports
		}
	}
	for _, line := range goList(t, "-f", "{{.ImportPath}}:{{join .Imports \",\"}}", "./...") {
		pkg, deps, _ := strings.Cut(line, ":")
		want, ok := documented[rel(pkg)]
		if !ok {
			t.Errorf("docs/design.md, \"Packages and import directions\", has no row for %s", rel(pkg))
			continue
		}
		if want == nil {
			continue
		}
		var got []string
		for _, d := range strings.Split(deps, ",") {
			if strings.HasPrefix(d, mod+"/") {
				got = append(got, rel(d))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("docs/design.md says %s imports %v of Sluice's packages; it imports %v", rel(pkg), want, got)
		}
	}
}
