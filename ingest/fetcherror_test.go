package ingest

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestFetchErrorGroupSession is a regression test: after a broker restart
// the coordinator no longer knows the member and franz-go reports
// UNKNOWN_MEMBER_ID through the poll; `sluice run` exited on it instead of
// letting the client rejoin (found by internal/chaos).
func TestFetchErrorGroupSession(t *testing.T) {
	a := &App{log: slog.New(slog.NewTextHandler(io.Discard, nil)), parts: map[partKey]*partState{}}
	for _, err := range []error{kerr.UnknownMemberID, kerr.IllegalGeneration, kerr.RebalanceInProgress} {
		if got := a.fetchError("", -1, fmt.Errorf("unable to join group session: %w", err)); got != nil {
			t.Errorf("%v ended the appliance (%v); the client rejoins by itself", err, got)
		}
	}
	for _, err := range []error{kerr.GroupAuthorizationFailed, kerr.TopicAuthorizationFailed, kerr.SaslAuthenticationFailed} {
		if got := a.fetchError("", -1, err); got == nil {
			t.Errorf("%v was ignored; a cluster that rejects the client must stop the appliance", err)
		}
	}
}
