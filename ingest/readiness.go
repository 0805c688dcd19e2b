package ingest

import "time"

// StuckStatus says that a table's batches fail with an error retrying
// cannot fix.
type StuckStatus struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	Code   string    `json:"code,omitempty"` // SQLSTATE
}

func (a *App) stuckStatus(t *tableRT) *StuckStatus { return nil }
