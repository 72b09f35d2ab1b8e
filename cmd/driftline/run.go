package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "--spec FILE [flags]", `Run a spec's pipeline against real Kafka brokers and Redis until SIGINT or
SIGTERM. On a signal it finishes the in-flight micro-batches, commits their
offsets (only after their outputs are acknowledged) and leaves the group.
With kafka.exactly_once, predictions, DLQ records and input offsets commit
in one Kafka transaction per round (consumers read with read_committed).
With a rollout block it also runs the governance loop: retraining on drift
alerts, shadow, canary steps, promotion and rollback through the gate.
The admin address also serves the model admin API under /api/v1 (bearer
tokens; $DRIFTLINE_ADMIN_TOKEN is a bootstrap admin token). Flags override
the spec's addresses.`, stderr)
	specPath := fs.String("spec", "", "pipeline spec (YAML); required")
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap brokers (overrides kafka.brokers)")
	redisAddr := fs.String("redis", "", "Redis address host:port (overrides redis.addr)")
	adminAddr := fs.String("admin", "", "admin HTTP address for /metrics, /healthz, /readyz (overrides admin.addr)")
	verbose := fs.Bool("v", false, "debug logging")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *specPath == "" {
		fmt.Fprintln(stderr, "--spec is required")
		fs.Usage()
		return errUsage
	}
	spec, err := pipeline.LoadSpec(*specPath)
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
	if len(spec.Kafka.Brokers) == 0 {
		return fmt.Errorf("no Kafka brokers: set kafka.brokers in %s or pass --brokers", *specPath)
	}
	if spec.Redis.Addr == "" {
		return fmt.Errorf("no Redis address: set redis.addr in %s or pass --redis", *specPath)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := newLogger(stderr, level)
	rdb := redis.NewClient(&redis.Options{Addr: spec.Redis.Addr, Password: spec.Redis.Password, DB: spec.Redis.DB})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s: %w", spec.Redis.Addr, err)
	}
	dp, err := newDataPlane(spec, rdb, log)
	if err != nil {
		return err
	}
	// With a labels topic, the label join consumes it and the model learns.
	var lp *labelPlane
	if dp.join != nil {
		if lp, err = newLabelPlane(spec, dp, log); err != nil {
			return err
		}
	}
	if spec.Admin.Addr != "" {
		models, err := registry.New(rdb, registry.Config{})
		if err != nil {
			return err
		}
		api, err := newAdminAPIFromEnv(models, rdb)
		if err != nil {
			return err
		}
		addr, err := serveAdmin(ctx, spec.Admin.Addr, dp.reg, dp.kc.Ready, log, mountAdminAPI(api))
		if err != nil {
			return err
		}
		log.Info("admin listening", "addr", addr)
	}
	log.Info("pipeline starting", "spec", *specPath, "input", spec.Topics.Input, "group", spec.Kafka.Group)
	err = runPlanes(ctx, dp, lp)
	t := dp.metrics.Totals()
	log.Info("pipeline stopped", "in", t.In, "predictions", t.Out, "dlq", t.DLQ, "duplicates", t.Duplicates)
	return err
}
