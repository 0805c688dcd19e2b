package ingest

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	pgcopy "github.com/sluice-dev/sluice/copy"
)

// Honest readiness: a batch write that fails is retried forever (nothing
// is ever dead-lettered for an infrastructure failure), which is right for
// a restarting server or a lost connection, but hides errors that no retry
// can fix: the appliance's role lost its INSERT grant, the target was
// dropped or altered, the disk is full. Such errors are told apart
// (needsOperator); when one has lasted stuck.after the table is stuck:
// /readyz answers 503 with the reason, sluice_stuck{table} is 1, the status
// page and `sluice status --instances` show it, and with stuck.action: exit
// the process exits non-zero instead of waiting (for supervisors that
// restart or page on exit). Writes keep being retried either way; the first
// success clears the state.

// StuckConfig is the `stuck:` section.
type StuckConfig struct {
	// After is how long errors that retrying cannot fix may last before
	// the table is reported stuck (default 60s).
	After Duration `yaml:"after"`
	// Action is what a stuck table does to the process: wait (default:
	// keep retrying, not ready) or exit (stop with an error, exit status 1).
	Action string `yaml:"action"`
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
	Since  time.Time `json:"since"`  // first failure of the streak
	Reason string    `json:"reason"` // the last error and what to do
	Code   string    `json:"code,omitempty"`
}

// operatorErrors are the SQLSTATEs of write failures that retrying cannot
// fix, with what to do about them.
var operatorErrors = map[string]string{
	"42501": "grant the appliance's role INSERT (and SELECT) on the table, and USAGE on its schema",
	"42P01": "the table is gone: create it again (or set create: true and run sluice migrate)",
	"42703": "a configured column is gone: add it back or remove it from the configuration",
	"42804": "a column's type changed: make the configured types match the table",
	"53100": "PostgreSQL's disk is full: free space or grow the volume",
	"53400": "a PostgreSQL limit refuses the batch (temp_file_limit, when its merge spills): raise the limit, or lower batch.max_rows and batch.max_bytes",
	"25006": "the server is read-only (a standby?): point postgres.url at the primary",
	"28000": "PostgreSQL refuses the appliance's role: check pg_hba.conf and the role",
	"28P01": "PostgreSQL refuses the password: update postgres.password_file or the URL",
	"3D000": "the database does not exist: create it or fix postgres.url",
}

// otherOperatorError is the fix of the PostgreSQL errors that retrying
// does not clear and operatorErrors does not name: a trigger's own error
// of a class that is not row-level, COPY refusing a table under
// row-level security (0A000), a constraint failing only at COMMIT.
const otherOperatorError = "PostgreSQL refuses every attempt with this error: fix its cause (the table, its triggers, policies or grants, or the configuration); the batch is retried until then"

// needsOperator returns the SQLSTATE and the fix when err is a failure
// that retrying cannot fix, "" otherwise: a PostgreSQL error that is not
// a connection, resource or conflict error (pgcopy.IsRetryable). Row-level
// errors never get here: the writer dead-letters their rows.
func needsOperator(err error) (code, fix string) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return "", ""
	}
	if fix, ok := operatorErrors[pe.Code]; ok {
		return pe.Code, fix
	}
	if pgcopy.IsRetryable(err) {
		return "", ""
	}
	return pe.Code, otherOperatorError
}

// stuckState is a table's streak of write failures that need an operator.
type stuckState struct {
	mu       sync.Mutex
	since    time.Time // zero: no streak
	code     string
	reason   string
	reported bool // logged (and acted on) once the streak passed stuck.after
	// keyChange is why a partition of the table stopped for a record key
	// schema that names another primary key (keychange.go), since
	// keySince: the table is stuck at once, until a restart, whatever
	// its writes do.
	keyChange string
	keySince  time.Time
}

// writeFailed records a failed write of t. It returns true when the
// streak has just passed stuck.after.
func (a *App) writeFailed(t *tableRT, err error) bool {
	code, fix := needsOperator(err)
	if code == "" {
		return false
	}
	s := &t.stuck
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.since.IsZero() {
		s.since = now
	}
	s.code = code
	s.reason = fmt.Sprintf("cannot write to %s: %s; %s", t.cfg.Name, a.red.scrub(err.Error()), fix)
	if !s.reported && now.Sub(s.since) >= a.cfg.Stuck.After.D() {
		s.reported = true
		return true
	}
	return false
}

// writeSucceeded ends t's streak.
func (a *App) writeSucceeded(t *tableRT) {
	s := &t.stuck
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reported {
		a.log.Info("table writes again; no longer stuck", "table", t.cfg.Name, "stuck_for", time.Since(s.since).Round(time.Second))
	}
	s.since, s.code, s.reason, s.reported = time.Time{}, "", "", false
}

// writeAbandoned ends t's streak when a batch of t was given up because
// every partition in it was dropped (fenced, revoked, lost) and this
// instance owns no other partition feeding t: nothing here writes to t
// any more, so nothing would ever clear the streak, and the table would
// stay stuck on /readyz until a restart. A partition of t claimed later
// starts a streak of its own if its writes fail.
func (a *App) writeAbandoned(t *tableRT) {
	for _, st := range a.snapshotParts() {
		if st.table == t && !st.dropped.Load() {
			return
		}
	}
	s := &t.stuck
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.since.IsZero() {
		return
	}
	if s.reported {
		a.log.Info("no longer stuck: this instance owns no partition feeding the table now", "table", t.cfg.Name)
	}
	s.since, s.code, s.reason, s.reported = time.Time{}, "", "", false
}

// stuckStatus returns t's state when it is stuck, nil otherwise.
func (a *App) stuckStatus(t *tableRT) *StuckStatus {
	s := &t.stuck
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keyChange != "" {
		return &StuckStatus{Since: s.keySince.UTC(), Reason: s.keyChange}
	}
	if s.since.IsZero() || time.Since(s.since) < a.cfg.Stuck.After.D() {
		return nil
	}
	return &StuckStatus{Since: s.since.UTC(), Reason: s.reason, Code: s.code}
}

// stuckReason words every stuck table for /readyz, "" when none is.
func (a *App) stuckReason() string {
	var rs []string
	for _, t := range a.tableList() {
		if st := a.stuckStatus(t); st != nil {
			rs = append(rs, fmt.Sprintf("%s stuck for %s: %s", t.cfg.Name, time.Since(st.Since).Round(time.Second), st.Reason))
		}
	}
	sort.Strings(rs)
	return strings.Join(rs, "; ")
}

// declareStuck logs that t is stuck and, with stuck.action: exit, stops
// the App.
func (a *App) declareStuck(t *tableRT) {
	st := a.stuckStatus(t)
	if st == nil {
		return
	}
	a.log.Error("TABLE STUCK: its writes fail with an error retrying cannot fix; /readyz reports it",
		"table", t.cfg.Name, "since", st.Since, "sqlstate", st.Code, "reason", st.Reason, "action", a.cfg.Stuck.Action)
	if a.cfg.Stuck.Action == "exit" {
		a.fail(fmt.Errorf("cannot continue: %s (stuck.action: exit)", st.Reason))
	}
}
