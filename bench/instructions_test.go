package bench

import (
	"strings"
	"testing"
)

func TestInstructions(t *testing.T) {
	const text = "# a comment\ngo: go1.26.8\nBenchmarkB 1000\n\nBenchmarkA 2000\n"
	base, err := ReadInstructions(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if base.Go != "go1.26.8" || base.PerOp["BenchmarkA"] != 2000 || base.PerOp["BenchmarkB"] != 1000 {
		t.Fatalf("ReadInstructions = %+v", base)
	}
	var b strings.Builder
	if err := WriteInstructions(&b, base); err != nil {
		t.Fatal(err)
	}
	if want := "go: go1.26.8\nBenchmarkA 2000\nBenchmarkB 1000\n"; b.String() != want {
		t.Fatalf("WriteInstructions wrote %q, want %q", b.String(), want)
	}
	for _, bad := range []string{"BenchmarkA\n", "BenchmarkA x\n", "BenchmarkA -5\n", "BenchmarkA 1 2\n"} {
		if _, err := ReadInstructions(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadInstructions(%q) accepted it", bad)
		}
	}

	now := Instructions{Go: "go1.26.8", PerOp: map[string]int64{"BenchmarkA": 2059, "BenchmarkB": 1031, "BenchmarkC": 10}}
	regs, judged := InstructionRegressions(base, now, 0.03)
	if !judged || len(regs) != 2 || !strings.HasPrefix(regs[0], "BenchmarkB: 1000 → 1031") || !strings.HasPrefix(regs[1], "BenchmarkC:") {
		t.Fatalf("InstructionRegressions = %q, %v; want BenchmarkB (+3.1%%) and BenchmarkC (new)", regs, judged)
	}
	now.Go = "go1.27.0"
	if regs, judged := InstructionRegressions(base, now, 0.03); judged || regs != nil {
		t.Fatalf("another toolchain's baseline was judged: %q", regs)
	}
}
