package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/adminapi"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "--spec FILE [flags]", `Run a spec's pipeline against real Kafka brokers and Redis until SIGINT or
SIGTERM. On a signal it finishes the in-flight micro-batches, commits their
offsets (only after their outputs are acknowledged) and leaves the group.
With kafka.exactly_once, predictions, DLQ records and input offsets commit
in one Kafka transaction per round (consumers read with read_committed).
With a rollout block it also runs the governance loop: retraining on drift
alerts, shadow, canary steps, promotion and rollback through the gate.
With topics.model_state, one instance at a time (the learner lease's holder)
learns from the labels and publishes the model's state there; every
instance serves the newest state and restores it before it is ready.
The admin address also serves the model admin API under /api/v1 (bearer
tokens; $DRIFTLINE_ADMIN_TOKEN is a bootstrap admin token); it listens on
loopback unless the address names an interface. A Redis or broker outage
pauses the pipeline (/readyz false) until it is back. Flags override
the spec's addresses; the spec's kafka and redis blocks say how to
authenticate (see "Connecting to a secured cluster" in the README).`, stderr)
	specPath := fs.String("spec", "", "pipeline spec (YAML); required")
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap brokers (overrides kafka.brokers)")
	redisAddr := fs.String("redis", "", "Redis address host:port (overrides redis.addr)")
	adminAddr := fs.String("admin", "", "admin HTTP address for the status page, /metrics, /healthz, /readyz and /api/v1 (overrides admin.addr; no host: loopback)")
	createTopics := fs.Int("create-topics", 0, "first create the spec's missing topics with N partitions each (0: create none)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *specPath == "" {
		fmt.Fprintln(stderr, "--spec is required")
		fs.Usage()
		return errUsage
	}
	spec, err := app.LoadSpec(*specPath)
	if err != nil {
		return err
	}
	if *brokers != "" {
		spec.Kafka.Brokers = strings.Split(*brokers, ",")
	}
	if *redisAddr != "" {
		spec.Redis.Addr = *redisAddr
	}
	if *adminAddr != "" {
		spec.Admin.Addr = *adminAddr
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := newLogger(stderr, level)
	if *createTopics > 0 {
		if err := app.CreateTopics(ctx, spec, int32(*createTopics)); err != nil {
			return fmt.Errorf("--create-topics: %w", err)
		}
	}
	a, err := app.Open(ctx, spec, app.Options{Log: log, AdminToken: os.Getenv(adminapi.EnvAdminToken)})
	if err != nil {
		return err
	}
	defer a.Close()
	if spec.Admin.Addr != "" {
		addr, err := a.ServeAdmin(ctx, spec.Admin.Addr)
		if err != nil {
			return err
		}
		log.Info("admin listening", "addr", addr, "status_page", "http://"+addr+"/")
	}
	log.Info("pipeline starting", "spec", *specPath, "input", spec.Topics.Input, "group", spec.Kafka.Group)
	err = a.Run(ctx)
	t := a.Totals()
	log.Info("pipeline stopped", "in", t.In, "predictions", t.Out, "dlq", t.DLQ, "duplicates", t.Duplicates)
	return err
}
