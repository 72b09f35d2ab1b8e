package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
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
and the champion (--champion-snapshot, default the spec's fresh learner)
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
(<redis.key_prefix>replay:<run-id>:<nonce>:), so replayed events are not
duplicates of their live run and the live state is never touched. Rejected
rows are dropped (counted) unless --to-dlq names a topic.

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
	toTopic := fs.String("to-topic", "", "backfill topic for the shadow predictions; required (created if missing)")
	toDLQ := fs.String("to-dlq", "", "topic for rejected rows (default: drop them, counted)")
	ckptTopic := fs.String("checkpoint-topic", "driftline.replay.checkpoints", "compacted topic holding the committed checkpoints (created if missing)")
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
	champSnapshot := fs.String("champion-snapshot", "", "with --backtest: learner snapshot of the champion (default: the spec's fresh learner)")
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
	if *lakeDir != "" || *toLake != "" || *backtest {
		return cmdReplayDirect(ctx, directFlags{
			specPath: *specPath, fromTime: *fromTime, toTime: *toTime, fromOffsets: *fromOffsets, toOffsets: *toOffsets,
			toTopic: *toTopic, runID: *runID, modelVersion: *modelVersion, snapshot: *snapshot, batch: *batch,
			brokers: *brokers, redisAddr: *redisAddr, interval: *interval, lakeDir: *lakeDir, toLake: *toLake,
			backtest: *backtest, labelsTopic: *labelsTopic, champSnapshot: *champSnapshot, bucket: *bucket, report: *report,
			toDLQ: *toDLQ,
		}, usageErr, stdout, stderr)
	}
	if *labelsTopic != "" || *champSnapshot != "" || *report != "" {
		return usageErr("--labels-topic, --champion-snapshot and --report go with --backtest")
	}
	if *toTopic == "" {
		return usageErr("--to-topic is required")
	}
	byTime := *fromTime != "" || *toTime != ""
	byOffsets := *fromOffsets != "" || *toOffsets != ""
	switch {
	case byTime && byOffsets:
		return usageErr("--from-time/--to-time and --from-offsets/--to-offsets exclude each other")
	case !byTime && !byOffsets:
		return usageErr("a source is required: --from-time and --to-time, or --from-offsets and --to-offsets")
	case byTime && (*fromTime == "" || *toTime == ""):
		return usageErr("--from-time and --to-time go together")
	case byOffsets && (*fromOffsets == "" || *toOffsets == ""):
		return usageErr("--from-offsets and --to-offsets go together")
	}
	if *parallel < 1 {
		return usageErr("--parallel must be at least 1")
	}
	if *batch < 0 {
		return usageErr("--batch must not be negative")
	}
	if *interval <= 0 {
		return usageErr("--progress-interval must be positive")
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
	if len(spec.Kafka.Brokers) == 0 {
		return fmt.Errorf("no Kafka brokers: set kafka.brokers in %s or pass --brokers", *specPath)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	errw := &syncWriter{w: stderr}
	log := newLogger(errw, level)

	needRedis := spec.Stages.Dedupe.On() || spec.Stages.Featurize.Entity != nil || (*modelVersion != "" && *snapshot == "")
	var rdb redis.UniversalClient
	if needRedis {
		if spec.Redis.Addr == "" {
			return fmt.Errorf("no Redis address (dedupe, entity aggregates or --model-version need it): set redis.addr in %s or pass --redis", *specPath)
		}
		c := redis.NewClient(&redis.Options{Addr: spec.Redis.Addr, Password: spec.Redis.Password, DB: spec.Redis.DB})
		defer c.Close()
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("--redis %s: %w", spec.Redis.Addr, err)
		}
		rdb = c
	}
	model, digest, err := loadReplayModel(ctx, spec, rdb, *modelVersion, *snapshot)
	if err != nil {
		return err
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(spec.Kafka.Brokers...))
	if err != nil {
		return fmt.Errorf("--brokers: %w", err)
	}
	adm := kadm.NewClient(cl)
	var ranges []replayRange
	if byTime {
		from, err := time.Parse(time.RFC3339Nano, *fromTime)
		if err != nil {
			cl.Close()
			return fmt.Errorf("--from-time: %w", err)
		}
		to, err := time.Parse(time.RFC3339Nano, *toTime)
		if err != nil {
			cl.Close()
			return fmt.Errorf("--to-time: %w", err)
		}
		if !from.Before(to) {
			cl.Close()
			return fmt.Errorf("--to-time %s must be after --from-time %s", *toTime, *fromTime)
		}
		ranges, err = rangesForTimes(ctx, adm, spec.Topics.Input, from, to)
	} else {
		ranges, err = rangesForOffsets(ctx, adm, spec.Topics.Input, *fromOffsets, *toOffsets)
	}
	cl.Close()
	if err != nil {
		return err
	}
	if *runID == "" {
		*runID = defaultRunID(spec, ranges, *toTopic, model.Version, digest)
	}
	if *batch == 0 {
		*batch = max(spec.Batch.Size, 1)
	}
	prog := newReplayProgress(stderr, *interval)
	prog.w = errw // newReplayProgress looked at stderr to tell a terminal
	progCtx, stopProg := context.WithCancel(ctx)
	defer stopProg()
	go prog.run(progCtx)
	log.Info("replay", "run", *runID, "input", spec.Topics.Input, "to", *toTopic, "model", model.Name, "version", model.Version, "arm", model.Arm)
	start := time.Now()
	res, err := runReplay(ctx, replayConfig{
		Spec: spec, Ranges: ranges, ToTopic: *toTopic, ToDLQ: *toDLQ, CheckpointTopic: *ckptTopic,
		RunID: *runID, Model: model, BatchSize: *batch, Parallel: *parallel, Rdb: rdb, Progress: prog, Log: log,
	}, spec.Kafka.Brokers)
	stopProg()
	if err != nil {
		return fmt.Errorf("run %s: %w", *runID, err)
	}
	fmt.Fprintf(stdout, "replay %s: %d input offsets (%d already committed before this run), %d records processed, %d predictions to %s, %d rejected, %d transactions, %s\n",
		res.RunID, res.Total, res.Resumed, res.Inputs, res.Outputs, *toTopic, res.Rejected, res.Txns, time.Since(start).Round(time.Millisecond))
	return nil
}

// loadReplayModel builds the shadow model and a digest of its parameters.
func loadReplayModel(ctx context.Context, spec *pipeline.Spec, rdb redis.UniversalClient, version, snapshot string) (*stages.ServedModel, string, error) {
	label := spec.Model.Version
	var (
		data []byte
		err  error
	)
	switch {
	case snapshot != "":
		if data, err = os.ReadFile(snapshot); err != nil {
			return nil, "", fmt.Errorf("--snapshot: %w", err)
		}
		if version != "" {
			label = version
		}
	case version != "":
		reg, err := registry.New(rdb, registry.Config{})
		if err != nil {
			return nil, "", fmt.Errorf("--model-version: %w", err)
		}
		var v registry.Version
		if n, perr := strconv.ParseInt(version, 10, 64); perr == nil {
			v, err = reg.Version(ctx, spec.Model.Name, n)
		} else {
			v, err = reg.Resolve(ctx, spec.Model.Name, version)
		}
		if err != nil {
			return nil, "", fmt.Errorf("--model-version %s of model %s: %w", version, spec.Model.Name, err)
		}
		if data, err = reg.Artifact(ctx, spec.Model.Name, v.Number, registry.ArtifactSnapshot); err != nil {
			return nil, "", fmt.Errorf("--model-version %s: %w", version, err)
		}
		label = strconv.FormatInt(v.Number, 10)
	default:
		fz, err := stages.NewFeaturize(spec, rdb) // for the feature layout
		if err != nil {
			return nil, "", err
		}
		l, err := stages.NewLearner(spec, fz)
		if err != nil {
			return nil, "", err
		}
		return stages.NewServedModel(spec.Model.Name, label, stages.ArmShadow, l), "fresh", nil
	}
	l, err := models.UnmarshalLearner(data)
	if err != nil {
		if snapshot != "" {
			return nil, "", fmt.Errorf("--snapshot %s: %w", snapshot, err)
		}
		return nil, "", fmt.Errorf("--model-version %s: %w", version, err)
	}
	sum := sha256.Sum256(data)
	return stages.NewServedModel(spec.Model.Name, label, stages.ArmShadow, l), hex.EncodeToString(sum[:8]), nil
}

// rangesForTimes maps [from, to) to offsets per partition by timestamp.
func rangesForTimes(ctx context.Context, adm *kadm.Client, topic string, from, to time.Time) ([]replayRange, error) {
	starts, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
	if err != nil {
		return nil, fmt.Errorf("--from-time: list offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListOffsetsAfterMilli(ctx, to.UnixMilli(), topic)
	if err != nil {
		return nil, fmt.Errorf("--to-time: list offsets of %s: %w", topic, err)
	}
	var out []replayRange
	var ferr error
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = fmt.Errorf("--from-time: topic %s partition %d: %w", topic, o.Partition, o.Err)
			return
		}
		e, ok := ends.Lookup(topic, o.Partition)
		if !ok || e.Err != nil {
			ferr = fmt.Errorf("--to-time: no end offset for topic %s partition %d", topic, o.Partition)
			return
		}
		out = append(out, replayRange{Partition: o.Partition, Start: o.Offset, End: max(e.Offset, o.Offset)})
	})
	if ferr != nil {
		return nil, ferr
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("input topic %s does not exist", topic)
	}
	slices.SortFunc(out, func(a, b replayRange) int { return int(a.Partition - b.Partition) })
	return out, nil
}

// rangesForOffsets parses explicit P:O lists and checks them against the log.
func rangesForOffsets(ctx context.Context, adm *kadm.Client, topic, fromText, toText string) ([]replayRange, error) {
	from, err := parsePartitionOffsets(fromText)
	if err != nil {
		return nil, fmt.Errorf("--from-offsets: %w", err)
	}
	to, err := parsePartitionOffsets(toText)
	if err != nil {
		return nil, fmt.Errorf("--to-offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	var out []replayRange
	for p, s := range from {
		e, ok := to[p]
		if !ok {
			return nil, fmt.Errorf("--to-offsets: no end for partition %d of --from-offsets", p)
		}
		if e < s {
			return nil, fmt.Errorf("--to-offsets: partition %d ends at %d, before its start %d", p, e, s)
		}
		lo, ok1 := starts.Lookup(topic, p)
		hi, ok2 := ends.Lookup(topic, p)
		if !ok1 || !ok2 || lo.Err != nil || hi.Err != nil {
			return nil, fmt.Errorf("--from-offsets: topic %s has no partition %d", topic, p)
		}
		if s < lo.Offset {
			return nil, fmt.Errorf("--from-offsets: partition %d starts at %d, before the log start %d", p, s, lo.Offset)
		}
		if e > hi.Offset {
			return nil, fmt.Errorf("--to-offsets: partition %d ends at %d, after the log end %d", p, e, hi.Offset)
		}
		out = append(out, replayRange{Partition: p, Start: s, End: e})
	}
	for p := range to {
		if _, ok := from[p]; !ok {
			return nil, fmt.Errorf("--from-offsets: no start for partition %d of --to-offsets", p)
		}
	}
	slices.SortFunc(out, func(a, b replayRange) int { return int(a.Partition - b.Partition) })
	return out, nil
}

// parsePartitionOffsets parses "P:O,P:O".
func parsePartitionOffsets(s string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for _, part := range strings.Split(s, ",") {
		ps, offs, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("%q is not PARTITION:OFFSET", part)
		}
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("%q: bad partition %q", part, ps)
		}
		o, err := strconv.ParseInt(offs, 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("%q: bad offset %q", part, offs)
		}
		if _, dup := out[int32(p)]; dup {
			return nil, fmt.Errorf("partition %d given twice", p)
		}
		out[int32(p)] = o
	}
	if len(out) == 0 {
		return nil, errors.New("no partitions")
	}
	return out, nil
}
