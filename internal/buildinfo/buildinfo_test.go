package buildinfo

import (
	"runtime"
	"strings"
	"testing"
)

func TestStamped(t *testing.T) {
	defer func(v, r string) { version, revision = v, r }(version, revision)
	version, revision = "", ""
	if v := Version(); v != "dev" {
		t.Errorf("unstamped test binary: Version() = %q, want dev", v)
	}
	if Revision() == "" {
		t.Error("Revision() is empty; want a revision or unknown")
	}
	version, revision = "v0.1.0-2-gabcdef0-dirty", "abcdef0123"
	if Version() != version || Revision() != revision {
		t.Errorf("stamped: %q %q", Version(), Revision())
	}
	s := String()
	for _, want := range []string{"sluice v0.1.0-2-gabcdef0-dirty", "revision abcdef0123", runtime.Version()} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, want it to contain %q", s, want)
		}
	}
}
