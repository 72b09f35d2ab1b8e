package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// directFlags are the replay flags of a lake source, a lake target or a
// backtest.
type directFlags struct {
	specPath, fromTime, toTime, fromOffsets, toOffsets string
	toTopic, toDLQ, runID, modelVersion, snapshot      string
	batch                                              int
	brokers, redisAddr                                 string
	interval                                           time.Duration
	lakeDir, toLake                                    string
	backtest                                           bool
	labelsTopic, champSnapshot                         string
	bucket                                             time.Duration
	report                                             string
}

func cmdReplayDirect(ctx context.Context, f directFlags, usageErr func(string) error, stdout, stderr io.Writer) error {
	byOffsets := f.fromOffsets != "" || f.toOffsets != ""
	switch {
	case f.lakeDir != "" && byOffsets:
		return usageErr("--lake and --from-offsets/--to-offsets exclude each other (a lake is bounded by --from-time/--to-time)")
	case f.lakeDir == "" && f.fromTime == "" && !byOffsets:
		return usageErr("a source is required: --lake DIR, --from-time and --to-time, or --from-offsets and --to-offsets")
	case f.lakeDir == "" && byOffsets && (f.fromOffsets == "" || f.toOffsets == ""):
		return usageErr("--from-offsets and --to-offsets go together")
	case f.lakeDir == "" && !byOffsets && (f.fromTime == "" || f.toTime == ""):
		return usageErr("--from-time and --to-time go together")
	case f.backtest && (f.toTopic != "" || f.toLake != ""):
		return usageErr("--backtest writes no predictions: drop --to-topic and --to-lake")
	case !f.backtest && f.toTopic == "" && f.toLake == "":
		return usageErr("a target is required: --to-topic TOPIC or --to-lake DIR")
	case !f.backtest && (f.labelsTopic != "" || f.champSnapshot != "" || f.report != ""):
		return usageErr("--labels-topic, --champion-snapshot and --report go with --backtest")
	case f.backtest && f.lakeDir == "" && f.labelsTopic == "":
		return usageErr("--labels-topic is required with --backtest on a Kafka source")
	case f.bucket <= 0:
		return usageErr("--bucket must be positive")
	case f.batch < 0:
		return usageErr("--batch must not be negative")
	case f.toDLQ != "":
		return usageErr("--to-dlq is only for a Kafka source with --to-topic alone (lake rows were validated already)")
	case f.interval <= 0:
		return usageErr("--progress-interval must be positive")
	}
	var from, to time.Time
	var err error
	if f.fromTime != "" {
		if from, err = time.Parse(time.RFC3339Nano, f.fromTime); err != nil {
			return fmt.Errorf("--from-time: %w", err)
		}
	}
	if f.toTime != "" {
		if to, err = time.Parse(time.RFC3339Nano, f.toTime); err != nil {
			return fmt.Errorf("--to-time: %w", err)
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return fmt.Errorf("--to-time %s must be after --from-time %s", f.toTime, f.fromTime)
	}
	spec, err := pipeline.LoadSpec(f.specPath)
	if err != nil {
		return err
	}
	if f.brokers != "" {
		spec.Kafka.Brokers = strings.Split(f.brokers, ",")
	}
	if f.redisAddr != "" {
		spec.Redis.Addr = f.redisAddr
	}
	needKafka := f.lakeDir == "" || f.toTopic != "" || f.labelsTopic != ""
	if needKafka && len(spec.Kafka.Brokers) == 0 {
		return fmt.Errorf("no Kafka brokers: set kafka.brokers in %s or pass --brokers", f.specPath)
	}
	if f.toTopic != "" && (f.toTopic == spec.Topics.Predictions || f.toTopic == spec.Topics.Input) {
		return fmt.Errorf("--to-topic %q is a live topic of the spec; backfill goes to a topic of its own", f.toTopic)
	}
	needRedis := (f.lakeDir == "" && spec.Stages.Dedupe.On()) || spec.Stages.Featurize.Entity != nil || (f.modelVersion != "" && f.snapshot == "")
	var rdb redis.UniversalClient
	if needRedis {
		if spec.Redis.Addr == "" {
			return fmt.Errorf("no Redis address (dedupe, entity aggregates or --model-version need it): set redis.addr in %s or pass --redis", f.specPath)
		}
		c := redis.NewClient(&redis.Options{Addr: spec.Redis.Addr, Password: spec.Redis.Password, DB: spec.Redis.DB})
		defer c.Close()
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("--redis %s: %w", spec.Redis.Addr, err)
		}
		rdb = c
	}
	model, digest, err := loadReplayModel(ctx, spec, rdb, f.modelVersion, f.snapshot)
	if err != nil {
		return err
	}
	src := directSource{LakeDir: f.lakeDir, From: from, To: to, Brokers: spec.Kafka.Brokers}
	if f.lakeDir == "" {
		cl, err := kgo.NewClient(kgo.SeedBrokers(spec.Kafka.Brokers...))
		if err != nil {
			return fmt.Errorf("--brokers: %w", err)
		}
		adm := kadm.NewClient(cl)
		if byOffsets {
			src.Ranges, err = rangesForOffsets(ctx, adm, spec.Topics.Input, f.fromOffsets, f.toOffsets)
		} else {
			src.Ranges, err = rangesForTimes(ctx, adm, spec.Topics.Input, from, to)
		}
		cl.Close()
		if err != nil {
			return err
		}
	}
	if f.runID == "" {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00", spec.Name, f.lakeDir, f.fromTime, f.toTime, f.toTopic, f.toLake, model.Version, digest)
		for _, r := range src.Ranges {
			fmt.Fprintf(h, "%d:%d-%d\x00", r.Partition, r.Start, r.End)
		}
		f.runID = hex.EncodeToString(h.Sum(nil))[:16]
	}
	if f.batch == 0 {
		f.batch = max(spec.Batch.Size, 1)
	}
	prog := newReplayProgress(stderr, f.interval)
	progCtx, stopProg := context.WithCancel(ctx)
	defer stopProg()
	start := time.Now()

	if f.backtest {
		var champ *stages.ServedModel
		if f.champSnapshot != "" {
			m, _, err := loadReplayModel(ctx, spec, rdb, "champion", f.champSnapshot)
			if err != nil {
				return fmt.Errorf("--champion-snapshot: %w", err)
			}
			champ = m
		} else {
			m, _, err := loadReplayModel(ctx, spec, rdb, "", "")
			if err != nil {
				return err
			}
			m.Version = "fresh"
			champ = m
		}
		var labels map[string]float32
		if f.labelsTopic != "" {
			if labels, err = readLabels(ctx, spec.Kafka.Brokers, f.labelsTopic, spec.Schema.IDField, spec.Labels.Field); err != nil {
				return err
			}
		}
		cand := model
		if f.modelVersion == "" && f.snapshot == "" {
			cand.Version = "fresh"
		} else if f.snapshot != "" && f.modelVersion == "" {
			cand.Version = "candidate"
		}
		bt := newBacktester(spec, cand, champ, f.bucket, labels)
		d, err := newDirectReplay(spec, rdb, f.runID, f.batch, prog)
		if err != nil {
			return err
		}
		go prog.run(progCtx)
		err = d.run(ctx, src, func(b *pipeline.Batch) error { return bt.visit(b, d.labels, d.labelOK) })
		stopProg()
		if err != nil {
			return err
		}
		prog.finish()
		rep := bt.report()
		if rep.Labelled == 0 {
			return errors.New("backtest: no scored row has a label (check --labels-topic, or the lake's driftline_label column)")
		}
		rep.writeText(stdout)
		if f.report != "" {
			if err := rep.writeHTML(f.report); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "report written to %s\n", f.report)
		}
		return nil
	}

	target := &directTarget{model: model}
	if f.toLake != "" {
		w, partial, err := openLakeTarget(f.toLake, f.runID, spec.Schema.TimeField)
		if errors.Is(err, errReplayDone) {
			fmt.Fprintf(stdout, "replay %s: --to-lake %s already holds this run's output; nothing to do\n", f.runID, f.toLake)
			return nil
		}
		if err != nil {
			return err
		}
		defer func() {
			if partial != "" {
				_ = w.Close()
			}
		}()
		target.lake = w
		d, err := newDirectReplay(spec, rdb, f.runID, f.batch, prog)
		if err != nil {
			return err
		}
		if err := runDirectTarget(ctx, d, src, target, spec, f, progCtx, prog, stopProg); err != nil {
			return err
		}
		if err := finishLakeTarget(w, partial, f.toLake, replayMarker{Run: f.runID, Model: model.Name, Version: model.Version, Inputs: d.inputs, Rows: target.outputs, Finished: time.Now().UTC().Format(time.RFC3339)}); err != nil {
			return err
		}
		partial = ""
		fmt.Fprintf(stdout, "replay %s: %d input rows, %d predictions to --to-lake %s, %d rejected, %s\n", f.runID, d.inputs, target.outputs, f.toLake, d.rejected, time.Since(start).Round(time.Millisecond))
		return nil
	}
	d, err := newDirectReplay(spec, rdb, f.runID, f.batch, prog)
	if err != nil {
		return err
	}
	if err := runDirectTarget(ctx, d, src, target, spec, f, progCtx, prog, stopProg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replay %s: %d input rows, %d predictions to %s, %d rejected, %s\n", f.runID, d.inputs, target.outputs, f.toTopic, d.rejected, time.Since(start).Round(time.Millisecond))
	return nil
}

// runDirectTarget replays src into target (and --to-topic when set).
func runDirectTarget(ctx context.Context, d *directReplay, src directSource, target *directTarget, spec *pipeline.Spec, f directFlags, progCtx context.Context, prog *replayProgress, stopProg func()) error {
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		return fmt.Errorf("stages.anonymize: %w", err)
	}
	s := *spec
	s.Topics.Predictions = f.toTopic
	target.score = stages.NewScore(&s, target.model, keys.AESKeyID)
	if f.toTopic != "" {
		cl, err := kgo.NewClient(kgo.SeedBrokers(spec.Kafka.Brokers...), kgo.ProducerLinger(time.Millisecond))
		if err != nil {
			return fmt.Errorf("--brokers: %w", err)
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		if err := ensureTopic(ctx, adm, f.toTopic, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}); err != nil {
			return fmt.Errorf("--to-topic %s: %w", f.toTopic, err)
		}
		target.kafka, target.topic = cl, f.toTopic
	}
	go prog.run(progCtx)
	err = d.run(ctx, src, func(b *pipeline.Batch) error { return target.visit(ctx, b) })
	stopProg()
	if err != nil {
		return err
	}
	prog.finish()
	return nil
}
