package chaos

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/loadgen"
	"github.com/sluice-dev/sluice/registry"
)

// shapeTableYAML is the table a stream of o's shape lands in, with the
// partition column the sampler needs.
func shapeTableYAML(table, topic, format, onConflict, guard string) string {
	return loadgen.TableSpec{Schema: loadgen.SchemaReference, Format: format, Table: table, Topic: topic,
		OnConflict: onConflict, Guard: guard}.YAML() +
		"    - {name: src_partition, type: int4, source: kafka.partition}\n"
}

// TestShapeFaults runs two (long form: three) instances of one group on
// the input shapes whose exactly-once machinery is the least obvious:
//
//   - null-keyed topics (loadgen Keys null): an event's occurrences land
//     on any partition, so two instances write one key at the same time
//     (pgcopy's KeyFilter, in-flight key claims, direct path, staging
//     merge and leftover probe). Few keys (KeyCardinality), so most
//     batches share keys with batches in flight elsewhere; one table under
//     on_conflict ignore fed by a transactional stream with aborts and bad
//     records, one under on_conflict update guarded by the event's
//     version;
//   - Avro records framed with a schema id of the embedded Schema Registry
//     that the broker process serves, also null-keyed, with the registry
//     formats' bad kinds (wrong magic byte, truncated payload, unknown
//     schema id). The stream moves to a second version of the schema
//     (loadgen EvolveAt: an optional field channel added) at the first
//     fault, and the table has evolve: add_columns: the ALTER TABLE that
//     adds channel runs under its advisory lock while batches of both
//     instances are in flight, and one instance dies with its own
//     evolution transaction in flight (SLUICE_FAULT=evolve); every kill
//     after it finds the evolved table (loadEvolved) and writer schemas
//     of both versions in flight.
//
// Under continuous load the instances are killed with kill -9 at random
// moments and at a chosen point of a batch transaction, one leaves
// gracefully and rejoins, the broker (and with it the registry) is killed
// and restarted on its data directory, and an instance restarted after it
// must fetch the writer schema from the restarted registry. Then every
// table must drain and verify exactly once.
func TestShapeFaults(t *testing.T) {
	start := time.Now()
	c := newCluster(t, clusterOptions{
		partitions: 4,
		topics:     []string{"nullign", "nullupd", "avro"},
		tablesYAML: shapeTableYAML("public.nullign", "nullign", loadgen.FormatJSON, "ignore", "") +
			shapeTableYAML("public.nullupd", "nullupd", loadgen.FormatJSON, "update", "version") +
			shapeTableYAML("public.avro", "avro", loadgen.FormatAvro, "update", "version") + "  evolve: add_columns\n",
		sessionTimeout: 3 * time.Second,
		batchYAML:      "  max_rows: 1000\n  max_age: 100ms\n",
		registry:       true,
	})
	n := pick(2, 3)
	var ins []*instance
	for i := 0; i < n; i++ {
		ins = append(ins, c.addInstance(0))
	}
	c.migrate("public.nullign", "public.nullupd", "public.avro")
	s := c.startSampler(map[string]string{"nullign": "public.nullign", "nullupd": "public.nullupd", "avro": "public.avro"})
	// The first instance is killed while its first evolution transaction
	// (the advisory lock, ALTER TABLE, COMMIT) is in flight: it starts
	// before the column can exist, so it runs one whether or not the
	// other instance added the column first.
	evolveVictim := ins[0]
	evolveVictim.startAndWait(t, "SLUICE_FAULT=evolve:1")
	for _, in := range ins[1:] {
		in.startAndWait(t)
	}

	// Null keys, on_conflict ignore: a transactional stream with aborts
	// and bad records over a few thousand keys, so an event's occurrences
	// (dups, and new content for the same id) are in flight on several
	// partitions, and instances, at once.
	nullIgn := loadgen.Options{
		Seed: 61, Topic: "nullign", Records: 1 << 40, Rate: pick(800.0, 1500.0),
		Keys: loadgen.KeysNull, KeyCardinality: pick(int64(2000), 5000), DupRatio: 0.05,
		Transactional: true, AbortRatio: 0.2, TxnRecords: 50, TransactionalID: "chaos-nullign-61",
	}
	nullIgn.SpreadBad(0.02)
	// Null keys, on_conflict update guarded by the version: newer versions
	// of few events spread over the partitions; the newest committed one
	// must win, whichever instance writes it and in whatever order.
	nullUpd := loadgen.Options{
		Seed: 62, Topic: "nullupd", Records: 1 << 40, Rate: pick(500.0, 1000.0),
		Keys: loadgen.KeysNull, KeyCardinality: pick(int64(500), 1000), UpdateRatio: 0.2, DupRatio: 0.05,
	}
	// Avro through the embedded registry, null-keyed, update by version;
	// from record EvolveAt on (some 5 s in) written with the schema's
	// second version, which adds channel.
	avro := loadgen.Options{
		Seed: 63, Topic: "avro", Records: 1 << 40, Rate: pick(500.0, 1000.0), Format: loadgen.FormatAvro,
		Keys: loadgen.KeysNull, KeyCardinality: pick(int64(1000), 2000), UpdateRatio: 0.1, DupRatio: 0.05,
		EvolveAt: pick(int64(2500), 15000),
	}
	avro.SpreadBad(0.02)
	ro := registry.Options{URLs: []string{c.registryURL}}
	if err := loadgen.RegisterSchema(c.ctx, &avro, ro); err != nil {
		t.Fatal(err)
	}

	sIgn := c.produce(nullIgn, "public.nullign", "ignore")
	sUpd := c.produce(nullUpd, "public.nullupd", "update")
	sUpd.guard = "version"
	sAvro := c.produce(avro, "public.avro", "update")
	sAvro.guard = "version"
	settle := pick(time.Minute, 2*time.Minute)
	s.allProgressedSince(t, map[tp]int64{}, settle)

	// The schema evolution: the stream reaches EvolveAt some 5 s in; the
	// first instance to meet the new writer schema with the old shape
	// runs AddColumns, and the evolve victim dies with its own evolution
	// transaction in flight, whichever came first, while the other one
	// writes. Until the hook fires it may hold no partition of the Avro
	// topic (the balancer spreads partitions, not topics): kills of the
	// others then hand their partitions around. The random kills below
	// start after it, not during: a member killed while a rebalance waits
	// for its join holds the group up to the rebalance timeout (20 s).
	for tries := 0; tries < 12; tries++ {
		if _, dead := evolveVictim.waitExit(5 * time.Second); dead {
			break
		}
		if tries < 4 {
			continue // the stream has not reached EvolveAt yet
		}
		other := ins[1+rand.IntN(n-1)]
		other.kill()
		c.restart(other)
	}
	c.faultDeath(evolveVictim, "evolve", 1, settle)
	evolveKilledWith := "without"
	if c.hasColumn("public.avro", loadgen.EvolvedField) {
		evolveKilledWith = "with"
	}
	base := s.fresh()
	c.restart(evolveVictim)
	s.allProgressedSince(t, base, settle)
	c.waitColumn("public.avro", loadgen.EvolvedField, settle)
	t.Logf("%s killed by SLUICE_FAULT=evolve:1 (column %s it), restarted", evolveVictim.name, evolveKilledWith)
	summary.add("shapes", "kill -9 with the evolution transaction in flight (SLUICE_FAULT=evolve), column there after it", "1, %s", evolveKilledWith)

	// kill -9 of a random instance at a random moment; it comes back at
	// once, so the group rebalances twice (the newcomer joins, the dead
	// member expires) while the others write the keys it held in flight,
	// of both writer schemas.
	kills := pick(4, 12)
	var resumes []time.Duration
	for i := 0; i < kills; i++ {
		in := ins[rand.IntN(n)]
		randomDelay(200*time.Millisecond, 2500*time.Millisecond)
		in.kill()
		started := time.Now()
		base := s.fresh()
		c.restart(in)
		resumes = append(resumes, s.allProgressedSince(t, base, settle).Sub(started))
		t.Logf("random kill %d of %s: every partition progressing again after %v", i+1, in.name, resumes[i].Round(10*time.Millisecond))
	}
	summary.add("shapes", "instances; kill -9 of a random one at a random moment", "%d; %d", n, kills)
	summary.add("shapes", "every partition progressing again after a kill", "%s", durStats(resumes))

	// kill -9 at chosen points of a batch transaction, while the other
	// instances write the same keys.
	points := pick([]string{"merge", "commit"}, []string{"copy", "merge", "commit", "committed", "copy", "merge", "commit", "committed"})
	for i, p := range points {
		in := ins[i%n]
		in.kill()
		c.killAt(in, p, 2+rand.IntN(8))
		base := s.fresh()
		c.restart(in)
		s.allProgressedSince(t, base, settle)
	}
	summary.add("shapes", "kill -9 at a chosen point (SLUICE_FAULT)", "%d (%s)", len(points), strings.Join(points, ", "))

	// Graceful leave and rejoin.
	rounds := pick(1, 3)
	for r := 0; r < rounds; r++ {
		in := ins[r%n]
		randomDelay(200*time.Millisecond, 2*time.Second)
		in.term(time.Minute)
		base := s.fresh()
		s.allProgressedSince(t, base, settle)
		c.restart(in)
		base = s.fresh()
		s.allProgressedSince(t, base, settle)
	}
	summary.add("shapes", "graceful leave+rejoin rounds", "%d", rounds)

	// The transactional stream ends before the broker faults (loadgen's
	// transactional producer does not survive a broker kill -9; see
	// TestCrashFaults).
	ignStats := sIgn.stop(t)
	s.setIdle("nullign")

	// The broker, and the registry it serves, killed and restarted on its
	// data directory (long form: then stopped cleanly too). The registry
	// must give the Avro schema id back, and an instance started after the
	// restart, with an empty schema cache, must fetch it from there.
	faults := pick([]bool{true}, []bool{true, false})
	for _, hard := range faults {
		randomDelay(200*time.Millisecond, 1500*time.Millisecond)
		c.restartBroker(hard)
		checkSchemaID(t, c.registryURL, avro.SchemaID)
		checkSchemaID(t, c.registryURL, avro.EvolvedSchemaID)
		base := s.fresh()
		s.allProgressedSince(t, base, settle)
		// The members rejoin on their own after the restart, so the
		// kill below may find one mid-join: the embedded broker must
		// still remove its member (internal/devenv reaper.go), which
		// waitGroupSettled checks.
		in := ins[rand.IntN(n)]
		in.kill()
		base = s.fresh()
		c.restart(in)
		s.allProgressedSince(t, base, settle)
		c.waitGroupSettled(settle)
	}
	summary.add("shapes", "broker + registry restarts (kill -9 / SIGTERM), an instance restarted after each", "%d / %d", 1, len(faults)-1)

	// One last kill while the producers stop, then drain and check.
	victim := ins[rand.IntN(n)]
	victim.kill()
	updStats := sUpd.stop(t)
	avroStats := sAvro.stop(t)
	c.restart(victim)
	c.waitGroupSettled(settle)
	c.waitDrained(pick(3*time.Minute, 6*time.Minute))
	c.waitLagZero(time.Minute)
	s.halt()
	s.check(t)
	ign := c.verify(sIgn, ignStats)
	upd := c.verify(sUpd, updStats)
	av := c.verify(sAvro, avroStats)
	summary.add("shapes", "evolutions (instance log lines, all lives): shape evolved while running (ALTER run or found done) / evolved columns found at start / waited and retried", "%d / %d / %d",
		countInLogs(ins, "table evolved: columns added"), countInLogs(ins, "evolved columns found"), countInLogs(ins, "cannot add the columns"))
	summary.add("shapes", "rebalances (sluice_rebalances_total, all members and lives)", "%v", c.metrics.get("sluice_rebalances_total"))
	summary.add("shapes", "batch retries / chunk retries / keys probed / rows deduplicated (all members and lives)", "%v / %v / %v / %v",
		c.metrics.get("sluice_batch_retries_total"), c.metrics.get("sluice_chunk_retries_total"),
		c.metrics.get("sluice_probed_keys_total"), c.metrics.get("sluice_rows_deduplicated_total"))
	summary.addReport("shapes", ign, ignStats)
	summary.addReport("shapes", upd, updStats)
	summary.addReport("shapes", av, avroStats)
	summary.add("shapes", "test time (cluster start to last check)", "%v", time.Since(start).Round(100*time.Millisecond))
}

// countInLogs counts the lines of the instances' logs (every life) that
// contain s.
func countInLogs(ins []*instance, s string) int {
	n := 0
	for _, in := range ins {
		b, _ := os.ReadFile(in.logPath)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, s) {
				n++
			}
		}
	}
	return n
}

// hasColumn reports whether table (schema.name) has column col.
func (c *cluster) hasColumn(table, col string) bool {
	c.t.Helper()
	conn := c.conn()
	defer conn.Close(c.ctx)
	schema, name, _ := strings.Cut(table, ".")
	var n int
	if err := conn.QueryRow(c.ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 AND column_name = $3`, schema, name, col).Scan(&n); err != nil {
		c.t.Fatal(err)
	}
	return n > 0
}

// waitColumn waits until evolve: add_columns has added col to table.
func (c *cluster) waitColumn(table, col string, d time.Duration) {
	c.t.Helper()
	waitFor(c.t, d, fmt.Sprintf("evolve: add_columns to add column %s to %s", col, table), func() bool {
		return c.hasColumn(table, col)
	})
}

// checkSchemaID fails t unless the registry at url serves schema id.
func checkSchemaID(t *testing.T, url string, id int) {
	t.Helper()
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("%s/schemas/ids/%d", url, id))
	if err != nil {
		t.Fatalf("the schema registry after the broker restart: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the schema registry lost schema id %d across the broker restart: GET /schemas/ids/%d answered %s", id, id, resp.Status)
	}
}
