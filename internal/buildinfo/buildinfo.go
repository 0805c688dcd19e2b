// Package buildinfo says which build of Sluice is running: the version and
// revision stamped at link time, with the Go toolchain's own build
// information as the fallback. `sluice version` prints them and the
// appliance exports them as sluice_build_info.
//
// The Makefile and docker/Dockerfile stamp them:
//
//	go build -ldflags "-X github.com/sluice-dev/sluice/internal/buildinfo.version=v0.1.0 \
//	  -X github.com/sluice-dev/sluice/internal/buildinfo.revision=$(git rev-parse HEAD)"
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags -X; empty in a plain go build, go test or go run.
var (
	version  string
	revision string
)

// Version is the stamped version (`git describe --tags --always --dirty`
// in the Makefile), else the module version of a `go install ...@vX`, else
// "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Revision is the stamped commit, else the VCS revision the go command
// recorded (with "-dirty" for a modified work tree), else "unknown".
func Revision() string {
	if revision != "" {
		return revision
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "unknown"
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }

// String is the one-line form `sluice version` prints.
func String() string {
	return "sluice " + Version() + " (revision " + Revision() + ", " + GoVersion() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
