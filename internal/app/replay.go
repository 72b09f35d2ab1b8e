package app

// The replay and backfill jobs of `driftline replay`: the spec's stages
// (the live data plane's code path) over a past range of the input topic
// or a lake, into a backfill topic exactly once (Replay), without
// transactions to a topic or a new lake (DirectReplay), or into a
// comparison of two models (Backtest). pipeline/replay drives them;
// connectors/kafka and connectors/lake read and write.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
)

// DefaultCheckpointTopic is ReplayOptions.CheckpointTopic's usual value.
const DefaultCheckpointTopic = "driftline.replay.checkpoints"

// ReplayOptions is one replay. `driftline replay`'s flags map onto it one
// to one; an OptionError names an option the way the flag is spelled.
type ReplayOptions struct {
	// Spec is the pipeline spec, with the CLI's overrides (brokers,
	// Redis) applied. Required.
	Spec *pipeline.Spec
	// The source: the input topic's records with Kafka timestamps in
	// [FromTime, ToTime), or its explicit Offsets (checked against the
	// log), or with LakeDir the rows of that lake with event times in
	// [FromTime, ToTime) (zero bounds: unbounded).
	FromTime, ToTime time.Time
	Offsets          []replay.Range
	LakeDir          string
	// ToTopic receives the predictions, marked with the shadow arm: from
	// Kafka (Replay) exactly once, else (DirectReplay) keyed by event id
	// to a compacted topic. ToDLQ receives rejected rows (Replay only; ""
	// drops them, counted). CheckpointTopic holds Replay's checkpoints.
	ToTopic, ToDLQ, CheckpointTopic string
	// ToLake is DirectReplay's new lake of the shadow predictions.
	ToLake string
	// RunID names the run (default: derived from everything that
	// determines the outputs, so that the same replay again resumes).
	RunID string
	// ModelVersion (a number or an alias in the registry; with Snapshot
	// only the version label) and Snapshot (a learner snapshot file)
	// choose the model; with neither, the spec's fresh learner scores.
	ModelVersion, Snapshot string
	// BatchSize is the most input records per micro-batch (default the
	// spec's batch.size); Parallel the most partitions Replay runs at
	// once (default 1).
	BatchSize, Parallel int
	// Progress, when set, counts the replayed offsets.
	Progress *replay.Progress
	// Log defaults to discarding.
	Log *slog.Logger
}

// OptionError is an error about one option of a replay: Option is its
// name as `driftline replay` spells the flag, without the dashes
// ("to-topic"), and Value its value when the message names it.
type OptionError struct {
	Option, Value string
	Err           error
}

func (e *OptionError) Error() string {
	if e.Value != "" {
		return e.Option + " " + e.Value + ": " + e.Err.Error()
	}
	return e.Option + ": " + e.Err.Error()
}

func (e *OptionError) Unwrap() error { return e.Err }

func optionErr(option, value string, err error) error {
	return &OptionError{Option: option, Value: value, Err: err}
}

// Replay replays a range of the input topic through the spec's stages
// into opts.ToTopic, exactly once: see pipeline/replay. Running it again
// with the same options resumes after the last committed chunk, or does
// nothing when the run completed.
func Replay(ctx context.Context, opts ReplayOptions) (replay.Result, error) {
	spec := opts.Spec
	switch {
	case spec == nil:
		return replay.Result{}, errors.New("replay: no spec")
	case opts.LakeDir != "" || opts.ToLake != "":
		return replay.Result{}, errors.New("replay: a lake source or target is a direct replay")
	case opts.ToTopic == "":
		return replay.Result{}, optionErr("to-topic", "", errors.New("required"))
	case opts.CheckpointTopic == "":
		return replay.Result{}, optionErr("checkpoint-topic", "", errors.New("must not be empty"))
	}
	if err := checkBackfillTopic(spec, opts.ToTopic); err != nil {
		return replay.Result{}, err
	}
	cc, err := KafkaClient(spec, "")
	if err != nil {
		return replay.Result{}, err
	}
	rdb, err := openReplayRedis(ctx, spec, spec.Stages.Dedupe.On() || spec.Stages.Featurize.Entity != nil || (opts.ModelVersion != "" && opts.Snapshot == ""))
	if err != nil {
		return replay.Result{}, err
	}
	if rdb != nil {
		defer rdb.Close()
	}
	model, digest, err := loadReplayModel(ctx, spec, rdb, opts.ModelVersion, opts.Snapshot)
	if err != nil {
		return replay.Result{}, err
	}
	adm, err := kafka.NewAdmin(cc)
	if err != nil {
		return replay.Result{}, err
	}
	defer adm.Close()
	ranges, err := replayRanges(ctx, adm, spec.Topics.Input, &opts)
	if err != nil {
		return replay.Result{}, err
	}
	runID := opts.RunID
	if runID == "" {
		runID = defaultRunID(spec, ranges, opts.ToTopic, model.Version, digest)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Info("replay", "run", runID, "input", spec.Topics.Input, "to", opts.ToTopic, "model", model.Name, "version", model.Version, "arm", model.Arm)
	res, err := runReplay(ctx, &opts, cc, adm, rdb, model, ranges, runID, log)
	if err != nil {
		return res, fmt.Errorf("run %s: %w", runID, err)
	}
	return res, nil
}

// runReplay creates the topics, fences the run's earlier processes and
// drives the replay.
func runReplay(ctx context.Context, opts *ReplayOptions, cc kafka.ClientConfig, adm *kafka.Admin, rdb goredis.UniversalClient, model *stages.ServedModel, ranges []replay.Range, runID string, log *slog.Logger) (replay.Result, error) {
	spec := opts.Spec
	if err := adm.EnsureTopic(ctx, opts.CheckpointTopic, 1, true); err != nil {
		return replay.Result{RunID: runID}, optionErr("checkpoint-topic", opts.CheckpointTopic, err)
	}
	parts, err := adm.Partitions(ctx, spec.Topics.Input)
	if err != nil {
		return replay.Result{RunID: runID}, err
	}
	if err := adm.EnsureTopic(ctx, opts.ToTopic, parts, false); err != nil {
		return replay.Result{RunID: runID}, optionErr("to-topic", opts.ToTopic, err)
	}
	if opts.ToDLQ != "" {
		if err := adm.EnsureTopic(ctx, opts.ToDLQ, parts, false); err != nil {
			return replay.Result{RunID: runID}, optionErr("to-dlq", opts.ToDLQ, err)
		}
	}
	committer, err := kafka.NewReplayCommitter(kafka.ReplayCommitterConfig{Client: cc, TransactionalID: "driftline-replay-" + runID, CheckpointTopic: opts.CheckpointTopic})
	if err != nil {
		return replay.Result{RunID: runID}, err
	}
	defer committer.Close()
	input, err := kafka.NewReader(cc)
	if err != nil {
		return replay.Result{RunID: runID}, err
	}
	s := replayStateSpec(spec, runID)
	s.Topics.Predictions = opts.ToTopic
	keys, err := stages.LoadKeys(&s.Stages.Anonymize)
	if err != nil {
		return replay.Result{RunID: runID}, fmt.Errorf("stages.anonymize: %w", err)
	}
	// Rejected rows' DLQ records are what the live pipeline writes: within
	// the topic's record limit, encrypted under dlq_payload: encrypt.
	committer.LearnRecordLimits(ctx, log, slices.DeleteFunc([]string{opts.ToTopic, opts.ToDLQ}, func(t string) bool { return t == "" })...)
	var newDLQPayload func() pipeline.DLQPayloadFunc
	if spec.Stages.Anonymize.DLQPayload == "encrypt" {
		crypt, err := stages.NewAnonymize(s, keys)
		if err != nil {
			return replay.Result{RunID: runID}, err
		}
		newDLQPayload = func() pipeline.DLQPayloadFunc { return crypt.Clone().EncryptDLQ }
	}
	return replay.Run(ctx, replay.Config{
		Topic: spec.Topics.Input, Ranges: ranges, RunID: runID,
		NewStages: func() ([]pipeline.Stage, error) {
			list, err := stages.PreparationChain(s, rdb, keys)
			if err != nil {
				return nil, err
			}
			return append(onRecordTime(list), stages.NewScore(s, model, keys.AESKeyID)), nil
		},
		Stateful:    spec.Stages.Dedupe.On() || spec.Stages.Featurize.Entity != nil,
		OutputTopic: opts.ToTopic, DLQTopic: opts.ToDLQ,
		NewDLQPayload: newDLQPayload, RecordLimit: committer.MaxRecordBytes, PropagateHeaders: spec.Output.PropagateHeaders,
		BatchSize: batchSize(opts.BatchSize, spec), Parallel: max(opts.Parallel, 1),
		Input: input, Committer: committer, Progress: opts.Progress, Logger: log,
	})
}

// checkBackfillTopic refuses a backfill topic that is a live topic of the
// spec.
func checkBackfillTopic(spec *pipeline.Spec, topic string) error {
	if topic != "" && (topic == spec.Topics.Predictions || topic == spec.Topics.Input) {
		return optionErr("to-topic", strconv.Quote(topic), errors.New("is a live topic of the spec; backfill goes to a topic of its own"))
	}
	return nil
}

func batchSize(n int, spec *pipeline.Spec) int {
	if n > 0 {
		return n
	}
	return max(spec.Batch.Size, 1)
}

// replayStateSpec is spec with the stateful stages' Redis state (dedupe,
// entity aggregates) under a key prefix of the replay's own, fresh for
// every call: <redis.key_prefix>replay:<run>:<nonce>:. So a replay never
// reads or writes the live pipeline's state (a replayed event is never a
// duplicate of its live run) nor sees state an aborted chunk left; the
// keys expire with the spec's TTLs (dedupe's buckets on record time: see
// onRecordTime).
func replayStateSpec(spec *pipeline.Spec, runID string) *pipeline.Spec {
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	s := *spec
	s.Redis.KeyPrefix = spec.Redis.KeyPrefix + "replay:" + runID + ":" + hex.EncodeToString(nonce) + ":"
	return &s
}

// onRecordTime puts the chain's dedupe stage on the records' time
// (stages.Dedupe.UseRecordTime), so that a replay's dedupe window follows
// the data, not the clock: a stall between an event and its repeat (a
// broker restart, a Redis outage) does not change what is a duplicate.
func onRecordTime(list []pipeline.Stage) []pipeline.Stage {
	for _, st := range list {
		if d, ok := st.(*stages.Dedupe); ok {
			d.UseRecordTime()
		}
	}
	return list
}

// openReplayRedis opens and pings the spec's Redis when need is set (nil
// otherwise): dedupe and entity aggregates keep their state there, and
// the registry its models.
func openReplayRedis(ctx context.Context, spec *pipeline.Spec, need bool) (goredis.UniversalClient, error) {
	if !need {
		return nil, nil
	}
	cfg, err := RedisClient(spec)
	if err != nil {
		return nil, fmt.Errorf("dedupe, entity aggregates and models of the registry need Redis: %w", err)
	}
	rdb, err := redis.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, optionErr("redis", strings.Join(cfg.Addrs, ","), err)
	}
	return rdb, nil
}

// replayRanges is the source's offsets of topic: opts.Offsets checked
// against the log, or the offsets of opts' time range.
func replayRanges(ctx context.Context, adm *kafka.Admin, topic string, opts *ReplayOptions) ([]replay.Range, error) {
	if len(opts.Offsets) > 0 {
		if err := adm.CheckRanges(ctx, topic, opts.Offsets); err != nil {
			return nil, rangeOptionErr(err, "from-offsets", "to-offsets")
		}
		ranges := slices.Clone(opts.Offsets)
		slices.SortFunc(ranges, func(a, b replay.Range) int { return int(a.Partition - b.Partition) })
		return ranges, nil
	}
	if opts.FromTime.IsZero() || opts.ToTime.IsZero() || !opts.FromTime.Before(opts.ToTime) {
		return nil, optionErr("to-time", opts.ToTime.Format(time.RFC3339Nano), fmt.Errorf("must be after from-time %s", opts.FromTime.Format(time.RFC3339Nano)))
	}
	ranges, err := adm.TimeRanges(ctx, topic, opts.FromTime, opts.ToTime)
	if err != nil {
		return nil, rangeOptionErr(err, "from-time", "to-time")
	}
	return ranges, nil
}

// rangeOptionErr names the option of the end of a range a
// kafka.RangeError is about.
func rangeOptionErr(err error, start, end string) error {
	var re *kafka.RangeError
	if !errors.As(err, &re) {
		return err
	}
	if re.Bound == kafka.BoundEnd {
		return optionErr(end, "", re.Err)
	}
	return optionErr(start, "", re.Err)
}

// defaultRunID derives a run id from everything that determines the
// outputs, so that running the same replay again resumes (or finds the
// run done) instead of starting over.
func defaultRunID(spec *pipeline.Spec, ranges []replay.Range, toTopic, modelVersion, modelDigest string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", spec.Name, spec.Topics.Input, toTopic, modelVersion, modelDigest)
	for _, r := range ranges {
		fmt.Fprintf(h, "%d:%d-%d\x00", r.Partition, r.Start, r.End)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// loadReplayModel builds the shadow model of a replay and a digest of its
// parameters: from a snapshot file, from the registry (version is a
// number or an alias), or the spec's fresh learner (digest "fresh").
func loadReplayModel(ctx context.Context, spec *pipeline.Spec, rdb goredis.UniversalClient, version, snapshot string) (*stages.ServedModel, string, error) {
	label := spec.Model.Version
	var (
		data []byte
		err  error
	)
	switch {
	case snapshot != "":
		if data, err = os.ReadFile(snapshot); err != nil {
			return nil, "", optionErr("snapshot", "", err)
		}
		if version != "" {
			label = version
		}
	case version != "":
		reg, err := registry.New(rdb, registry.Config{})
		if err != nil {
			return nil, "", optionErr("model-version", "", err)
		}
		var v registry.Version
		if n, perr := strconv.ParseInt(version, 10, 64); perr == nil {
			v, err = reg.Version(ctx, spec.Model.Name, n)
		} else {
			v, err = reg.Resolve(ctx, spec.Model.Name, version)
		}
		if err != nil {
			return nil, "", optionErr("model-version", version, fmt.Errorf("model %s: %w", spec.Model.Name, err))
		}
		if data, err = reg.Artifact(ctx, spec.Model.Name, v.Number, registry.ArtifactSnapshot); err != nil {
			return nil, "", optionErr("model-version", version, err)
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
			return nil, "", optionErr("snapshot", snapshot, err)
		}
		return nil, "", optionErr("model-version", version, err)
	}
	sum := sha256.Sum256(data)
	return stages.NewServedModel(spec.Model.Name, label, stages.ArmShadow, l), hex.EncodeToString(sum[:8]), nil
}
