package ingest

import (
	"time"
)

// StuckConfig is the `stuck:` section.
type StuckConfig struct {
	After  Duration `yaml:"after"`
	Action string   `yaml:"action"`
}

func defaultStuck() StuckConfig { return StuckConfig{After: Duration(time.Minute), Action: "wait"} }

func (s *StuckConfig) validate() error {
	if s.After.D() <= 0 {
		return cfgErr("stuck.after", "must be positive, e.g. 60s")
	}
	if s.Action != "wait" && s.Action != "exit" {
		return cfgErr("stuck.action", "%q is not valid; use wait or exit", s.Action)
	}
	return nil
}

// StuckStatus says that a table's batches fail with an error retrying
// cannot fix.
type StuckStatus struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	Code   string    `json:"code,omitempty"` // SQLSTATE
}

func (a *App) stuckStatus(t *tableRT) *StuckStatus { return nil }
