package ingest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// The monitor says what the appliance is doing: it watches the subscribed
// topics (a topic that does not exist is warned about, counted in
// sluice_missing_topics and makes /readyz not ready until it is created),
// logs a progress line per table while records flow, and says why nothing
// is assigned yet.

// Monitor periods. Tests shorten them through App fields.
const (
	topicCheckEvery   = 5 * time.Second  // while a topic is missing; every minute otherwise
	missingWarnEvery  = time.Minute      // how often a missing topic is warned about again
	progressEvery     = 30 * time.Second // progress lines and the idle reason
	topicRecheckEvery = time.Minute      // while every topic exists
)

// monitorPeriods are the monitor's timings (the constants above unless a
// test changes them before Run).
type monitorPeriods struct {
	topicCheck, missingWarn, progress, topicRecheck time.Duration
	sample                                          time.Duration // status history (status.go)
	retention                                       time.Duration // dead-letter retention (retention.go)
}

func defaultPeriods() monitorPeriods {
	return monitorPeriods{topicCheckEvery, missingWarnEvery, progressEvery, topicRecheckEvery, sampleEvery, retentionEvery}
}

// topicWatch holds the subscribed topics that do not exist.
type topicWatch struct {
	mu       sync.Mutex
	missing  []string
	lastWarn time.Time
}

// missingTopics returns the subscribed topics found missing at the last
// check.
func (a *App) missingTopics() []string {
	a.topicsW.mu.Lock()
	defer a.topicsW.mu.Unlock()
	return slices.Clone(a.topicsW.missing)
}

// checkTopics asks the cluster which subscribed topics do not exist and
// which patterns match no topic.
func (a *App) checkTopics(ctx context.Context) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return a.missingSubscriptions(cctx)
}

// missingTopicsMessage explains missing topics and the fixes.
func missingTopicsMessage(missing []string) string {
	return fmt.Sprintf("subscribed topic(s) %s do not exist (or, for a /pattern/, no topic matches it): nothing is consumed from them until they are created; "+
		"create them, or correct tables[].topics (kafka.missing_topics: fail stops at start instead)", strings.Join(missing, ", "))
}

// updateMissing records the result of a topic check, logging changes and
// warning about missing topics at most every missingWarn.
func (a *App) updateMissing(missing []string) {
	w := &a.topicsW
	w.mu.Lock()
	before := w.missing
	w.missing = missing
	warn := len(missing) > 0 && (len(before) == 0 || time.Since(w.lastWarn) >= a.periods.missingWarn)
	if warn {
		w.lastWarn = time.Now()
	}
	w.mu.Unlock()
	var appeared []string
	for _, tp := range before {
		if !slices.Contains(missing, tp) {
			appeared = append(appeared, tp)
		}
	}
	if warn {
		a.log.Warn(missingTopicsMessage(missing))
	}
	if len(appeared) > 0 {
		a.log.Info("subscribed topic(s) exist now; consuming them", "topics", appeared)
		// The group learns of new topics from metadata: refresh it now
		// instead of at the next periodic refresh (minutes).
		a.cl.ForceMetadataRefresh()
	}
}

// monitor runs until ctx is done.
func (a *App) monitor(ctx context.Context) {
	tick := time.NewTicker(min(a.periods.topicCheck, a.periods.progress))
	defer tick.Stop()
	now := time.Now()
	lastTopics, lastProgress := now, now
	prev := a.progressCounts()
	idleSince := now
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now = time.Now()
		every := a.periods.topicRecheck
		if len(a.missingTopics()) > 0 {
			every = a.periods.topicCheck
		}
		if now.Sub(lastTopics) >= every {
			lastTopics = now
			if missing, err := a.checkTopics(ctx); err == nil {
				a.updateMissing(missing)
			} else if ctx.Err() == nil {
				a.log.Debug("cannot list the subscribed topics", "err", err)
			}
		}
		if now.Sub(lastProgress) >= a.periods.progress {
			cur := a.progressCounts()
			a.logProgress(prev, cur, now.Sub(lastProgress))
			prev, lastProgress = cur, now
			if len(a.snapshotParts()) > 0 {
				idleSince = now
			} else if now.Sub(idleSince) >= a.periods.progress {
				a.log.Info("no partitions assigned yet: " + a.idleReason())
			}
		}
	}
}

// idleReason says why this instance owns no partition.
func (a *App) idleReason() string {
	if missing := a.missingTopics(); len(missing) > 0 && len(missing) == len(a.subscriptions()) {
		return missingTopicsMessage(missing)
	}
	return fmt.Sprintf("waiting for group %s to assign partitions; after a crash the old member's session must expire first "+
		"(kafka.session_timeout %s), and a group with more instances than partitions leaves some idle",
		a.cfg.Kafka.Group, a.cfg.Kafka.SessionTimeout.D())
}

// tableProgress is a table's counters at one moment.
type tableProgress struct {
	rows, deadLetters uint64
}

func (a *App) progressCounts() map[string]tableProgress {
	out := map[string]tableProgress{}
	a.m.mu.Lock()
	for name, tm := range a.m.tables {
		p := out[name]
		p.rows = tm.written.Get()
		out[name] = p
	}
	for k, c := range a.m.dls {
		p := out[k[0]]
		p.deadLetters += c.Get()
		out[k[0]] = p
	}
	a.m.mu.Unlock()
	return out
}

// logProgress logs one line per table that moved or has lag.
func (a *App) logProgress(prev, cur map[string]tableProgress, took time.Duration) {
	lag := map[string]int64{}
	addTableLags(lag, a.snapshotParts())
	for _, t := range a.tableList() {
		name := t.cfg.Name
		rows := cur[name].rows - prev[name].rows
		dls := cur[name].deadLetters - prev[name].deadLetters
		if rows == 0 && dls == 0 && lag[name] == 0 {
			continue
		}
		a.log.Info("progress", "table", name, "rows", rows, "dead_letters", dls, "lag", lag[name],
			"rows_per_sec", int64(float64(rows)/took.Seconds()), "rows_total", cur[name].rows)
	}
}
