// Command driftline is the composition root and CLI of driftline, a
// streaming continual-learning pipeline: run, demo, replay, produce,
// validate-spec, models and version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the pipeline of a spec against real Kafka and Redis", cmdRun},
		{"demo", "run everything in one process on embedded Kafka (kfake) and Redis (miniredis)", cmdDemo},
		{"replay", "replay a past range of the input through the stages into a shadow backfill topic, exactly once", cmdReplay},
		{"produce", "write a seeded synthetic event stream (and delayed labels) to Kafka", cmdProduce},
		{"eval", "prequential evaluation of a model kind on a file or a seeded stream (River's progressive_val_score)", cmdEval},
		{"validate-spec", "check a pipeline spec and report every problem with file, line and field", cmdValidateSpec},
		{"prepare", "run a spec's preparation stages over a JSONL file and print each output row or DLQ reason", cmdPrepare},
		{"models", "manage models through the admin API (list, show, promote, rollback, pause, retrain, tokens) and export snapshots to ONNX", cmdModels},
		{"audit", "print the audit log: promotions, rollbacks, gate decisions, retrains", cmdAudit},
		{"version", "print the version", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `driftline: a streaming continual-learning pipeline.

Events are read from Kafka, validated, de-duplicated, anonymized and
featurized, scored by online models that learn from delayed labels, and
published as predictions; bad rows go to a DLQ with their reason.

Usage:
  driftline <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "driftline <command> --help" for a command's flags.
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "driftline %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "driftline: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// errUsage means the flags were wrong; the flag set already said why.
var errUsage = errors.New("usage")

// newFlags makes a command's flag set with a usage text that explains it.
func newFlags(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: driftline %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping flag errors to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", "Print driftline's version.", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "driftline", version)
	return nil
}
