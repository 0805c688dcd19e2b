// Package chaos proves Sluice's exactly-once guarantee under faults,
// rebalances and bad input, Jepsen-style: real processes, real faults,
// invariants checked during and after the run. It holds only tests.
//
// The harness (harness_test.go) builds the `sluice` binary once per test
// run with `go build -tags sluicefault` (the fault hooks exist only in such
// a build; a release binary ignores SLUICE_FAULT), starts a private PostgreSQL (internal/devenv) for the
// whole run, and for each test a `sluice broker --data-dir` process and one
// to three `sluice run` processes on 127.0.0.1. loadgen.Produce streams
// deterministic traffic (every record's kind, id and fate follow from the
// seed; the manifest Stats says which transactions committed) while the
// test injects faults:
//
//   - kill -9 of an appliance at random moments, and at chosen points of a
//     batch transaction through the test-only SLUICE_FAULT hook
//     (copy/fault.go: before COPY, after the merge, during COMMIT, after
//     COMMIT);
//   - PostgreSQL stopped in immediate mode and restarted; writer backends
//     terminated in a loop; the target table locked for seconds (slow
//     PostgreSQL, backpressure);
//   - the broker restarted cleanly and with kill -9 (its state persisted in
//     its data directory);
//   - instances joining and leaving; a zombie frozen with SIGSTOP before a
//     batch, past its session timeout, while another instance takes its
//     partitions over, then thawed with SIGCONT: its commit must be fenced;
//   - kill -9 and rebalances of two or three instances on null-keyed
//     topics (one key in flight in several instances at once) under
//     on_conflict ignore and update (guard: version), and on Avro records
//     whose schema lives in the broker process's embedded Schema Registry,
//     restarted with the broker (TestShapeFaults);
//   - kill -9 under a Debezium change stream (loadgen's cdc workload into a
//     format: debezium table), in rounds, the target checked against the
//     source table's final state after every fault (TestCDCFaults).
//
// Invariants checked while the faults run (a sampler polls PostgreSQL):
//
//   - every partition's stored next_offset and owner_epoch never decrease;
//   - in one snapshot, no row of a target table and no dead letter lies at
//     or beyond its partition's stored next_offset (rows carry
//     `source: kafka.partition` and `source: kafka.offset` columns).
//
// And after draining:
//
//   - every stored next_offset equals its partition's log end offset
//     (transaction markers included) and sluice_consumer_lag is 0;
//   - loadgen.Verify: every committed record landed exactly once, in the
//     target or (bad kinds) in dead_letters with its reason, nothing from
//     an aborted transaction, and under on_conflict update each key holds
//     its highest offset's value;
//   - for hand-made odd input (tombstones, null keys, duplicate keys within
//     a batch and across partitions) each acknowledged record is a row, a
//     merged duplicate or a dead letter, as its position says.
//
// Forms: `go test ./internal/chaos` runs the short form (a few kills, one
// PostgreSQL and one broker restart, a two-instance rebalance, the zombie,
// bad input, two instances on null-keyed and Avro topics; about two and a
// half minutes on two cores). SLUICE_CHAOS=long (`make
// chaos`) runs the long form: at least 20 random kills, every fault point,
// three instances, the failover and resume measurements with default
// session timeouts, and a multi-GB backlog drained with default settings
// while peak RSS is read from /proc. The long form prints a summary table.
// `go test -short` skips the package. Timings are measured and printed,
// never asserted.
package chaos
