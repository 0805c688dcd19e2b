package devenv

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LogEnds returns the log end offset of each partition of topic, for
// WaitStored. opts are extra client options (security).
func LogEnds(ctx context.Context, brokers []string, topic string, opts ...kgo.Opt) (map[int32]int64, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	lo, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("cannot list end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// WaitStored polls <schema>.offsets until every partition of topic whose
// log end in ends is above 0 has a stored next_offset at or past it: the
// appliance has committed everything up to those ends. It returns early
// with an error when stopped yields (the appliance's Run returned) or ctx
// ends. The demo and the benchmarks use it to time a drain; the appliance
// itself never waits for a drain. When ready is
// not nil, PostgreSQL is only asked once ready returns true (a cheap
// in-process test, such as every record having been fetched), so that
// polling often does not load the server being measured.
func WaitStored(ctx context.Context, db *pgx.Conn, schema, group, topic string, ends map[int32]int64, stopped <-chan error, every time.Duration, ready func() bool) error {
	q := fmt.Sprintf(`SELECT partition, next_offset FROM %s.offsets WHERE group_id=$1 AND topic=$2`, pgx.Identifier{schema}.Sanitize())
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if (ready == nil || ready()) && drained(ctx, db, q, group, topic, ends) {
			return nil
		}
		select {
		case err := <-stopped:
			return fmt.Errorf("the appliance stopped before draining %s: %v", topic, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func drained(ctx context.Context, db *pgx.Conn, q, group, topic string, ends map[int32]int64) bool {
	rows, err := db.Query(ctx, q, group, topic)
	if err != nil {
		return false // not migrated yet, or a passing error: poll again
	}
	stored := map[int32]int64{}
	for rows.Next() {
		var p int32
		var n int64
		if rows.Scan(&p, &n) == nil {
			stored[p] = n
		}
	}
	rows.Close()
	for p, end := range ends {
		if end > 0 && stored[p] < end {
			return false
		}
	}
	return true
}
