// Command sluice lands Kafka records in PostgreSQL exactly once.
//
// This file only dispatches subcommands; each stage lives in its own package
// (ingest, codec, batching, copy, loadgen, bench).
//
// It is one binary: besides the appliance's commands (run, migrate,
// reset-offset, healthcheck, all in ingest) it links the embedded Kafka
// broker and PostgreSQL launcher (internal/devenv) for broker, demo, bench
// and report. The appliance's path never imports them (main_test.go checks
// with go list), so `sluice run` only carries their code, never starts it.
// Fault injection for the chaos tests is not linked at all unless built
// with -tags sluicefault (copy/fault.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-dev/sluice/bench"
	"github.com/sluice-dev/sluice/ingest"
	"github.com/sluice-dev/sluice/internal/buildinfo"
	"github.com/sluice-dev/sluice/internal/demo"
	"github.com/sluice-dev/sluice/internal/devenv"
	"github.com/sluice-dev/sluice/loadgen"
)

// command runs one subcommand. It returns flag.ErrHelp after printing help,
// ingest.ErrUsage after printing a usage mistake, or the failure.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

var commands = map[string]command{
	"run":          ingest.RunMain,
	"migrate":      ingest.MigrateMain,
	"reset-offset": ingest.ResetOffsetMain,
	"healthcheck":  ingest.HealthcheckMain,
	"status":       ingest.StatusMain,
	"dead-letters": ingest.DeadLettersMain,
	"broker":       devenv.BrokerMain,
	"demo":         demo.Main,
	"loadgen":      loadgen.LoadgenMain,
	"verify":       loadgen.VerifyMain,
	"bench":        bench.BenchMain,
	"report":       bench.ReportMain,
	"version":      versionMain,
}

const usage = `sluice lands Kafka records in PostgreSQL exactly once.

Usage: sluice COMMAND [flags]

Commands:
  run          run the appliance (--config FILE)
  migrate      create the offsets, dead-letter and target tables (--config FILE)
  reset-offset set a partition's stored offset (for a halted partition)
  healthcheck  probe /healthz or /readyz of a running appliance (for containers)
  status       offsets, lag, owners and dead letters of a group, from PostgreSQL and the broker
  dead-letters list, show or replay dead letters (replay: decode again with the current config)
  broker       run the embedded Kafka-protocol broker (kfake), and a Schema Registry with --registry-listen
  demo         everything embedded: broker, PostgreSQL, traffic, appliance, verification
  loadgen      produce simulated traffic
  verify       check PostgreSQL against what loadgen sent, exactly once
  bench        end-to-end benchmark against the raw COPY limit, same run
  report       capacity report: a sweep written as Markdown with SVG charts
  version      print the version, revision and Go version of this binary

Run 'sluice COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args[0] = "version"
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sluice: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	err := cmd(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ingest.ErrUsage):
		return 2
	}
	fmt.Fprintf(stderr, "sluice %s: %v\n", args[0], err)
	return 1
}

// versionMain is `sluice version`. It takes no arguments but -h, which
// `sluice help` offers for every command.
func versionMain(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: sluice version\n\nPrints the version, revision and Go version of this binary; it takes no flags.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ingest.ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sluice version takes no arguments, got %q\n", fs.Arg(0))
		return ingest.ErrUsage
	}
	fmt.Fprintln(stdout, buildinfo.String())
	return nil
}

// signalContext is canceled on the first SIGINT or SIGTERM (graceful
// shutdown); a second signal exits at once, which loses nothing either:
// uncommitted batches are re-read from the offsets stored in PostgreSQL.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ch
		cancel()
		<-ch
		fmt.Fprintln(os.Stderr, "sluice: second signal, exiting now")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}
