package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
)

const replayAbout = `Replay a past range of the spec's input topic through the spec's stages
(decode, validate, dedupe, anonymize, featurize, score: the live code path)
and write the predictions to a backfill topic, every one marked with the
shadow arm and keyed by event id, so they never mix with live predictions.

Source (one of):
  --from-time T --to-time T        events with Kafka timestamps in [T1, T2),
                                   mapped to offsets per partition (RFC 3339)
  --from-offsets P:O,... --to-offsets P:O,...
                                   explicit offsets [from, to) per partition
  --lake DIR [--from-time T] [--to-time T]
                                   rows of a Parquet lake (connectors/lake) with
                                   event time in the range; they were validated
                                   and anonymized before they reached the lake, so
                                   only featurize and score run on them

Target (one or both): --to-topic TOPIC (alone, from Kafka: exactly once, as
below; with --lake or --to-lake: produced without transactions, keyed by
event id to a compacted topic, so a re-run overwrites its keys), or
--to-lake DIR: a new lake of the shadow predictions (driftline_model_version
is the shadow model's version), written to DIR.partial and renamed to DIR
when complete; re-running the same run finds DIR complete and writes nothing,
a killed run starts over. Its file contents are deterministic (file names
are not).

Backtest: --backtest scores the candidate (--snapshot or --model-version)
and the champion (--champion-snapshot, default the registry's champion, or
the spec's fresh learner when the registry has none)
over the same history, joins labels by event id (--labels-topic, or the
lake's driftline_label column), prints accuracy, log loss and AUC of both
per --bucket of event time, and with --report FILE writes them as a
self-contained HTML page with an SVG chart. Nothing is written elsewhere.

Model: --snapshot FILE (a learner snapshot), or --model-version V (a number
or an alias such as champion) from the model registry in Redis, or, with
neither, the spec's fresh learner. The model does not learn during replay.

Exactly once: outputs and a checkpoint of the input offsets are committed in
one Kafka transaction per chunk. Re-running the same command resumes after
the last committed chunk (after a kill too) and writes nothing twice; a run
that completed does nothing. Read the backfill topic with read-committed
isolation. The run id is derived from the spec, the ranges, the target and
the model, or set with --run-id.

State: dedupe and entity aggregates run on Redis under their own key prefix
(<redis.key_prefix>replay:<run-id>:<nonce>:; with --lake, aggregates in memory),
so replayed events are not duplicates of their live run and the live state is
never touched. Rejected rows are dropped (counted) unless --to-dlq names a topic.

Output is deterministic: the same input and model give byte-identical keys
and values, except fields the spec encrypts (AES-GCM uses a random nonce by
design), which decrypt to the same plaintext. Progress (done/total, rate, ETA) goes to stderr: a bar on a
terminal, plain lines otherwise.`

func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", "--spec FILE (--from-time T --to-time T | --from-offsets P:O,... --to-offsets P:O,... | --lake DIR) (--to-topic TOPIC | --to-lake DIR | --backtest) [flags]", replayAbout, stderr)
	specPath := fs.String("spec", "", "pipeline spec (YAML); required")
	fromTime := fs.String("from-time", "", "start of the time range, inclusive (RFC 3339, e.g. 2026-01-02T15:04:05Z)")
	toTime := fs.String("to-time", "", "end of the time range, exclusive (RFC 3339)")
	fromOffsets := fs.String("from-offsets", "", "first offset per partition, inclusive: P:O,... (e.g. 0:100,1:250)")
	toOffsets := fs.String("to-offsets", "", "end offset per partition, exclusive: P:O,... (same partitions as --from-offsets)")
	toTopic := fs.String("to-topic", "", "target: backfill topic for the shadow predictions (created if missing); the targets are --to-topic, --to-lake and --backtest")
	toDLQ := fs.String("to-dlq", "", "topic for rejected rows, created if missing (default: drop them, counted)")
	ckptTopic := fs.String("checkpoint-topic", app.DefaultCheckpointTopic, "compacted topic holding the committed checkpoints (created if missing)")
	runID := fs.String("run-id", "", "name of the run (default: derived from spec, ranges, target and model, so a re-run resumes)")
	modelVersion := fs.String("model-version", "", "model version number or alias in the registry (with --snapshot: only the version label)")
	snapshot := fs.String("snapshot", "", "learner snapshot file (models MarshalBinary) to score with")
	batch := fs.Int("batch", 0, "input records per micro-batch and checkpoint (default: the spec's batch.size)")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "partitions replayed at once")
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap brokers (overrides kafka.brokers)")
	redisAddr := fs.String("redis", "", "Redis address host:port (overrides redis.addr)")
	interval := fs.Duration("progress-interval", 5*time.Second, "how often to print a progress line when stderr is not a terminal")
	verbose := fs.Bool("v", false, "debug logging")
	lakeDir := fs.String("lake", "", "source: replay the rows of this lake (connectors/lake) instead of Kafka; --from-time/--to-time bound their event time (optional)")
	toLake := fs.String("to-lake", "", "target: write the shadow predictions as a new lake in this directory (instead of, or as well as, --to-topic)")
	backtest := fs.Bool("backtest", false, "score the candidate (--snapshot/--model-version) and the champion over the history and report metrics per --bucket, joining labels by event id")
	labelsTopic := fs.String("labels-topic", "", "with --backtest: topic of label records ({id_field: ..., labels.field: 0|1}); default: the lake's driftline_label column (with --lake)")
	champSnapshot := fs.String("champion-snapshot", "", "with --backtest: learner snapshot of the champion (default: the registry's champion alias; the spec's fresh learner when there is none)")
	bucket := fs.Duration("bucket", time.Hour, "with --backtest: width of the report's event-time buckets")
	report := fs.String("report", "", "with --backtest: also write a self-contained HTML report (table and SVG chart) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	usageErr := func(msg string) error {
		fmt.Fprintln(stderr, msg)
		fs.Usage()
		return errUsage
	}
	if *specPath == "" {
		return usageErr("--spec is required")
	}
	direct := *lakeDir != "" || *toLake != "" || *backtest
	byTime := *fromTime != "" || *toTime != ""
	byOffsets := *fromOffsets != "" || *toOffsets != ""
	if direct {
		switch {
		case *lakeDir != "" && byOffsets:
			return usageErr("--lake and --from-offsets/--to-offsets exclude each other (a lake is bounded by --from-time/--to-time)")
		case *lakeDir == "" && *fromTime == "" && !byOffsets:
			return usageErr("a source is required: --lake DIR, --from-time and --to-time, or --from-offsets and --to-offsets")
		case *lakeDir == "" && byOffsets && (*fromOffsets == "" || *toOffsets == ""):
			return usageErr("--from-offsets and --to-offsets go together")
		case *lakeDir == "" && !byOffsets && (*fromTime == "" || *toTime == ""):
			return usageErr("--from-time and --to-time go together")
		case *backtest && (*toTopic != "" || *toLake != ""):
			return usageErr("--backtest writes no predictions: drop --to-topic and --to-lake")
		case !*backtest && *toTopic == "" && *toLake == "":
			return usageErr(replayTargets)
		case !*backtest && (*labelsTopic != "" || *champSnapshot != "" || *report != ""):
			return usageErr("--labels-topic, --champion-snapshot and --report go with --backtest")
		case *backtest && *lakeDir == "" && *labelsTopic == "":
			return usageErr("--labels-topic is required with --backtest on a Kafka source")
		case *bucket <= 0:
			return usageErr("--bucket must be positive")
		case *batch < 0:
			return usageErr("--batch must not be negative")
		case *toDLQ != "":
			return usageErr("--to-dlq is only for a Kafka source with --to-topic alone (lake rows were validated already)")
		case *interval <= 0:
			return usageErr("--progress-interval must be positive")
		}
	} else {
		switch {
		case *labelsTopic != "" || *champSnapshot != "" || *report != "":
			return usageErr("--labels-topic, --champion-snapshot and --report go with --backtest")
		case *toTopic == "":
			return usageErr(replayTargets)
		case byTime && byOffsets:
			return usageErr("--from-time/--to-time and --from-offsets/--to-offsets exclude each other")
		case !byTime && !byOffsets:
			return usageErr("a source is required: --from-time and --to-time, or --from-offsets and --to-offsets")
		case byTime && (*fromTime == "" || *toTime == ""):
			return usageErr("--from-time and --to-time go together")
		case byOffsets && (*fromOffsets == "" || *toOffsets == ""):
			return usageErr("--from-offsets and --to-offsets go together")
		case *parallel < 1:
			return usageErr("--parallel must be at least 1")
		case *batch < 0:
			return usageErr("--batch must not be negative")
		case *interval <= 0:
			return usageErr("--progress-interval must be positive")
		}
	}
	opts := app.ReplayOptions{LakeDir: *lakeDir, ToTopic: *toTopic, ToDLQ: *toDLQ, CheckpointTopic: *ckptTopic, ToLake: *toLake,
		RunID: *runID, ModelVersion: *modelVersion, Snapshot: *snapshot, BatchSize: *batch, Parallel: *parallel}
	var err error
	if *fromTime != "" {
		if opts.FromTime, err = time.Parse(time.RFC3339Nano, *fromTime); err != nil {
			return fmt.Errorf("--from-time: %w", err)
		}
	}
	if *toTime != "" {
		if opts.ToTime, err = time.Parse(time.RFC3339Nano, *toTime); err != nil {
			return fmt.Errorf("--to-time: %w", err)
		}
	}
	if !opts.FromTime.IsZero() && !opts.ToTime.IsZero() && !opts.FromTime.Before(opts.ToTime) {
		return fmt.Errorf("--to-time %s must be after --from-time %s", *toTime, *fromTime)
	}
	if byOffsets {
		if opts.Offsets, err = app.ParseOffsetRanges(*fromOffsets, *toOffsets); err != nil {
			return flagError(err)
		}
	}
	if opts.Spec, err = app.LoadSpec(*specPath); err != nil {
		return err
	}
	if *brokers != "" {
		opts.Spec.Kafka.Brokers = strings.Split(*brokers, ",")
	}
	if *redisAddr != "" {
		opts.Spec.Redis.Addr = *redisAddr
	}
	if (*lakeDir == "" || *toTopic != "" || *labelsTopic != "") && len(opts.Spec.Kafka.Brokers) == 0 {
		return fmt.Errorf("no Kafka brokers: set kafka.brokers in %s or pass --brokers", *specPath)
	}
	errw := &lockedWriter{w: stderr}
	opts.Progress = replay.NewProgress(errw, replay.IsTerminal(stderr), *interval)
	progCtx, stopProg := context.WithCancel(ctx)
	defer stopProg()
	go opts.Progress.Run(progCtx)
	start := time.Now()
	elapsed := func() time.Duration { return time.Since(start).Round(time.Millisecond) }

	switch {
	case *backtest:
		rep, err := app.Backtest(ctx, app.BacktestOptions{ReplayOptions: opts, LabelsTopic: *labelsTopic, ChampionSnapshot: *champSnapshot, Bucket: *bucket})
		stopProg()
		if errors.Is(err, app.ErrBacktestNoLabels) {
			return fmt.Errorf("%w (check --labels-topic, or the lake's driftline_label column)", err)
		}
		if err != nil {
			return flagError(err)
		}
		rep.WriteText(stdout)
		if *report != "" {
			if err := writeReport(*report, &rep); err != nil {
				return fmt.Errorf("--report: %w", err)
			}
			fmt.Fprintf(stdout, "report written to %s\n", *report)
		}
		return nil
	case direct:
		res, err := app.DirectReplay(ctx, opts)
		stopProg()
		if err != nil {
			return flagError(err)
		}
		switch {
		case res.Done:
			fmt.Fprintf(stdout, "replay %s: --to-lake %s already holds this run's output; nothing to do\n", res.RunID, *toLake)
		default:
			to := *toTopic
			if *toLake != "" {
				to = "--to-lake " + *toLake
			}
			fmt.Fprintf(stdout, "replay %s: %d input rows = %d predictions to %s + %d rejected + %d duplicates, %s\n",
				res.RunID, res.Inputs, res.Outputs, to, res.Rejected, res.Duplicates, elapsed())
		}
		return nil
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts.Log = newLogger(errw, level)
	res, err := app.Replay(ctx, opts)
	stopProg()
	if err != nil {
		return flagError(err)
	}
	fmt.Fprintf(stdout, "replay %s: %d input offsets, %d committed before this run; this run: %d offsets = %d predictions to %s + %d rejected + %d duplicates + %d control records, %d transactions, %s\n",
		res.RunID, res.Total, res.Resumed, res.Inputs, res.Outputs, *toTopic, res.Rejected, res.Duplicates, res.Inputs-res.Records, res.Txns, elapsed())
	return nil
}

// replayTargets is the usage error of a replay without a target.
const replayTargets = "a target is required, one of: --to-topic TOPIC (a backfill topic), --to-lake DIR (a new lake), --backtest (a report, nothing written)"

// flagError names the flag of the app.OptionError in err: "to-topic x:
// ..." reads "--to-topic x: ...".
func flagError(err error) error {
	var oe *app.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	return errors.New(strings.Replace(err.Error(), oe.Error(), "--"+oe.Error(), 1))
}

// writeReport writes the backtest's HTML report to path.
func writeReport(path string, rep *stages.BacktestReport) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
