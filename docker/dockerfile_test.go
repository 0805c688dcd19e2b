package docker

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, COPY, ...
	args string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// finalStage returns the instructions after the last FROM, and that FROM's
// image.
func finalStage(ins []instruction) (string, []instruction) {
	last := -1
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	if last < 0 {
		return "", nil
	}
	image, _, _ := strings.Cut(ins[last].args, " ")
	return image, ins[last+1:]
}

// TestDockerfiles checks what both images promise: FROM scratch, the
// unprivileged user of rootfs/passwd, /sluice run as entrypoint and command,
// metrics exposed on the port SLUICE_METRICS_LISTEN names, and, for the
// source build that cannot run here (no base image can be pulled), that
// what it copies exists and that its Go version is go.mod's.
func TestDockerfiles(t *testing.T) {
	for _, path := range []string{"Dockerfile", "Dockerfile.scratch"} {
		t.Run(path, func(t *testing.T) {
			ins := parseDockerfile(t, path)
			base, final := finalStage(ins)
			if base != "scratch" {
				t.Errorf("final stage is FROM %q, want scratch", base)
			}
			got := map[string][]string{}
			for _, in := range final {
				got[in.cmd] = append(got[in.cmd], in.args)
			}
			want := map[string]string{"USER": "65532:65532", "ENTRYPOINT": `["/sluice"]`, "CMD": `["run"]`}
			for cmd, v := range want {
				if len(got[cmd]) != 1 || got[cmd][0] != v {
					t.Errorf("%s = %q, want exactly %s", cmd, got[cmd], v)
				}
			}
			if uid := strconv.Itoa(imageUID(t)); want["USER"] != uid+":"+uid {
				t.Errorf("USER %s is not rootfs/passwd's uid %s", want["USER"], uid)
			}
			var entry []string
			if err := json.Unmarshal([]byte(got["ENTRYPOINT"][0]), &entry); err != nil {
				t.Errorf("ENTRYPOINT must be exec form (signals reach sluice, not a shell): %v", err)
			}
			env := map[string]string{}
			for _, e := range got["ENV"] {
				for _, kv := range strings.Fields(e) {
					k, v, _ := strings.Cut(kv, "=")
					env[k] = v
				}
			}
			if env["SLUICE_CONFIG"] != "/etc/sluice/sluice.yaml" {
				t.Errorf("SLUICE_CONFIG = %q, want /etc/sluice/sluice.yaml", env["SLUICE_CONFIG"])
			}
			port := strconv.Itoa(portOf(t, env["SLUICE_METRICS_LISTEN"]))
			if !strings.HasPrefix(env["SLUICE_METRICS_LISTEN"], "0.0.0.0:") || len(got["EXPOSE"]) != 1 || got["EXPOSE"][0] != port {
				t.Errorf("SLUICE_METRICS_LISTEN %q and EXPOSE %q must name one port on 0.0.0.0", env["SLUICE_METRICS_LISTEN"], got["EXPOSE"])
			}
			if hc := strings.Join(got["HEALTHCHECK"], " "); !strings.Contains(hc, `CMD ["/sluice", "healthcheck"]`) {
				t.Errorf("HEALTHCHECK %q: want the self-probe CMD [\"/sluice\", \"healthcheck\"]", hc)
			}
		})
	}

	// The source build: a golang stage of go.mod's version, a static binary,
	// and COPY sources that exist in the repository.
	ins := parseDockerfile(t, "Dockerfile")
	goMod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	var goArg, build string
	for _, in := range ins {
		switch {
		case in.cmd == "ARG" && strings.HasPrefix(in.args, "GO_VERSION="):
			goArg = strings.TrimPrefix(in.args, "GO_VERSION=")
		case in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			build = in.args
		case in.cmd == "COPY" && !strings.HasPrefix(in.args, "--from="):
			srcs := strings.Fields(in.args)
			for _, src := range srcs[:len(srcs)-1] {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("COPY %s: not in the repository: %v", src, err)
				}
			}
		}
	}
	if goArg != string(m[1]) {
		t.Errorf("Dockerfile builds with Go %q, go.mod says go %s", goArg, m[1])
	}
	if !strings.Contains(build, "CGO_ENABLED=0") || !strings.Contains(build, "-trimpath") {
		t.Errorf("the build step %q must make a static binary (CGO_ENABLED=0) with -trimpath, as `make build` does", build)
	}
	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		switch strings.TrimSpace(line) {
		case "go.mod", "go.sum", "*.go", "**/*.go", "*", "docker/rootfs":
			t.Errorf("Dockerfile.dockerignore excludes %q, which the build needs", line)
		}
	}
}
