package ingest

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"testing"
)

// TestMarkHugePagesLogs runs the marker of batch.huge_pages until its first
// round is done and checks what it said: the heap marked where the kernel
// has transparent huge pages, the reason otherwise, never a warning.
func TestMarkHugePagesLogs(t *testing.T) {
	var out bytes.Buffer
	cfg := Defaults()
	cfg.Batch.HugePages = true
	a := &App{cfg: &cfg, log: slog.New(slog.NewTextHandler(&out, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one round: Run marks once, then sees ctx done
	a.markHugePages(ctx)
	log := out.String()
	switch {
	case strings.Contains(log, "level=WARN"):
		t.Fatalf("marking warned:\n%s", log)
	case strings.Contains(log, "heap marked for transparent huge pages"):
		if runtime.GOOS != "linux" {
			t.Fatalf("marked the heap on %s:\n%s", runtime.GOOS, log)
		}
	case strings.Contains(log, "not available"):
	default:
		t.Fatalf("marking said nothing useful:\n%s", log)
	}
}
