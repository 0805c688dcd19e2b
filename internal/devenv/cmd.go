package devenv

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// BrokerMain is `sluice broker`: the embedded Kafka-protocol broker as a
// standalone process, for the demo, tests, benchmarks and interop (kcat).
// With --registry-listen it also serves an embedded Schema Registry (see
// StartRegistry), off by default so that it never takes a port (8081 is
// the usual one) that a real registry may hold.
func BrokerMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "host:port to listen on (the advertised host is always 127.0.0.1)")
	dataDir := fs.String("data-dir", "", "persist topics, offsets, groups and transactions here (empty: in memory)")
	syncWrites := fs.Bool("sync-writes", false, "fsync every produced batch (with --data-dir)")
	partitions := fs.Int("partitions", 4, "partitions of auto-created topics")
	topics := fs.String("topics", "", "comma-separated topics to create at start")
	registryListen := fs.String("registry-listen", "", "also serve a Schema Registry (Confluent REST API) on host:port, e.g. 127.0.0.1:8081; its schemas persist in --data-dir (empty: no registry)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *partitions < 1 {
		return errors.New("--partitions must be at least 1")
	}
	var ts []string
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	if os.Getenv("GOGC") == "" {
		// The broker's heap is mostly the log it holds, and every fetch
		// copies batches into fresh buffers: at the default GOGC=100 the
		// heap may double before a collection, so fetches keep landing on
		// pages never touched before. Their page faults cost a 2-core VM
		// 2.2–2.5 CPU-seconds per million records served, against 0.5–0.7 s
		// at 25 (`sluice bench`, two runs each).
		debug.SetGCPercent(25)
	}
	b, err := StartBroker(BrokerOptions{Listen: *listen, DataDir: *dataDir, SyncWrites: *syncWrites, Partitions: *partitions, Topics: ts,
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "broker listening on %s (data dir %q)\n", strings.Join(b.Addrs(), ","), *dataDir)
	var reg *Registry
	if *registryListen != "" {
		reg, err = StartRegistry(RegistryOptions{Listen: *registryListen, DataDir: *dataDir})
		if err != nil {
			b.Close()
			return err
		}
		fmt.Fprintf(stdout, "schema registry listening on %s\n", reg.URL())
	}
	<-ctx.Done()
	if reg != nil {
		if err := reg.Close(); err != nil {
			fmt.Fprintf(stderr, "cannot close the schema registry cleanly: %v\n", err)
		}
	}
	b.Close()
	fmt.Fprintln(stdout, "broker stopped")
	return nil
}
