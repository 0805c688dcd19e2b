package ingest

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/sluice-dev/sluice/internal/hugepages"
)

// maxGrow caps the heap mapped up front: address space only, but a kernel
// that does not overcommit refuses a mapping far beyond its memory, and
// the runtime treats that as fatal.
const maxGrow = 1 << 30

// markHugePages marks the heap for transparent huge pages (batch.huge_pages,
// internal/hugepages): first as much heap as the in-flight budget lets the
// process fill (at most half the Go memory limit, and maxGrow), mapped
// before anything is fetched into it, then every second what the heap grew
// by. Without huge pages on this system it says so once and stops; the
// appliance works the same, with more CPU per record.
func (a *App) markHugePages(ctx context.Context) {
	var m hugepages.Marker
	grow := min(int64(a.cfg.Batch.MaxInflightBytes), debug.SetMemoryLimit(-1)/2, maxGrow)
	n, err := m.Grow(int(grow))
	if err == nil {
		a.log.Info("heap marked for transparent huge pages", "bytes", n)
		err = m.Run(ctx, time.Second)
	}
	switch {
	case err == nil:
	case errors.Is(err, hugepages.ErrUnavailable):
		a.log.Info("batch.huge_pages: transparent huge pages are not available here; the heap keeps small pages", "err", err)
	default:
		a.log.Warn("batch.huge_pages: cannot mark the heap for transparent huge pages; it keeps small pages", "err", err)
	}
}
