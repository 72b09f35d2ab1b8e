package app

// Replays without Kafka transactions: from a lake (LakeDir), to a new lake
// (ToLake) or a compacted topic, and the backtest. Sources are read in a
// fixed order (Kafka: partition by partition in offset order; a lake:
// manifest order), one batch at a time, so the same input and model give
// the same rows, scores and file contents (file names hold a random part).
// A ToLake run writes into DIR.partial and renames it to DIR when it
// completes, with a marker naming the run; running it again finds the
// marker and writes nothing, a killed run is redone from the start.
//
// Lake rows were decoded, validated, de-duplicated and anonymized before
// they reached the lake, so only featurize and score run on them.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
)

// DirectResult sums up a direct replay.
type DirectResult struct {
	RunID string
	// Done says that ToLake already held this run's output: nothing was
	// replayed.
	Done       bool
	Inputs     int64 // input rows replayed: Outputs + Rejected + Duplicates
	Outputs    int64 // predictions written
	Rejected   int64 // input rows a stage rejected
	Duplicates int64 // input rows dropped as repeats of an earlier event id
}

// BacktestOptions is a backtest: the candidate (ReplayOptions' model)
// and the champion score the same history (ReplayOptions' source), and
// their metrics are compared per Bucket of event time. ToTopic, ToDLQ and
// ToLake must be empty: nothing is written.
type BacktestOptions struct {
	ReplayOptions
	// LabelsTopic holds the labels ({id_field: …, labels.field: 0|1}),
	// joined by event id; "" takes the lake's joined labels (LakeDir):
	// its labels table when `run` wrote it live (lake.ReadLabels), else
	// each row's own.
	LabelsTopic string
	// ChampionSnapshot is the champion's learner snapshot (default: the
	// registry's champion alias, or the spec's fresh learner when the
	// registry has none).
	ChampionSnapshot string
	// Bucket is the width of the report's buckets. Required.
	Bucket time.Duration
}

// ErrBacktestNoLabels says that no scored row of a backtest had a label.
var ErrBacktestNoLabels = errors.New("backtest: no scored row has a label")

// directRun is what a direct replay and a backtest share: the spec, the
// clients, the model and the source.
type directRun struct {
	opts   *ReplayOptions
	spec   *pipeline.Spec
	cc     kafka.ClientConfig // set when a Kafka source or target needs it
	rdb    goredis.UniversalClient
	model  *stages.ServedModel
	ranges []replay.Range // the Kafka source
	lake   *lake.ReplaySource
	runID  string
	batch  int
}

func (r *directRun) close() {
	if r.rdb != nil {
		r.rdb.Close()
	}
}

// openDirect checks opts, opens what the run needs and resolves the
// source; needKafka says that a Kafka target or labels topic needs a
// client besides a Kafka source, needRegistry that a model besides
// opts' comes from the registry.
func openDirect(ctx context.Context, opts *ReplayOptions, needKafka, needRegistry bool) (_ *directRun, err error) {
	spec := opts.Spec
	switch {
	case spec == nil:
		return nil, errors.New("replay: no spec")
	case opts.LakeDir != "" && len(opts.Offsets) > 0:
		return nil, optionErr("lake", "", errors.New("a lake is bounded by from-time and to-time, not offsets"))
	case opts.ToDLQ != "":
		return nil, optionErr("to-dlq", "", errors.New("only for a Kafka source with to-topic alone"))
	case !opts.FromTime.IsZero() && !opts.ToTime.IsZero() && !opts.FromTime.Before(opts.ToTime):
		return nil, optionErr("to-time", opts.ToTime.Format(time.RFC3339Nano), fmt.Errorf("must be after from-time %s", opts.FromTime.Format(time.RFC3339Nano)))
	}
	if err := checkBackfillTopic(spec, opts.ToTopic); err != nil {
		return nil, err
	}
	r := &directRun{opts: opts, spec: spec}
	if needKafka || opts.LakeDir == "" {
		if r.cc, err = KafkaClient(spec, ""); err != nil {
			return nil, err
		}
	}
	// A lake replay keeps its entity aggregates in process
	// (stages.ReplayFeaturize).
	needRedis := (opts.LakeDir == "" && (spec.Stages.Dedupe.On() || spec.Stages.Featurize.Entity != nil)) || (opts.ModelVersion != "" && opts.Snapshot == "") || needRegistry
	if r.rdb, err = openReplayRedis(ctx, spec, needRedis); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	model, digest, err := loadReplayModel(ctx, spec, r.rdb, opts.ModelVersion, opts.Snapshot)
	if err != nil {
		return nil, err
	}
	r.model = model
	if opts.LakeDir != "" {
		if r.lake, err = lake.NewReplaySource(opts.LakeDir, opts.FromTime, opts.ToTime, schemaFields(spec)); err != nil {
			return nil, optionErr("lake", opts.LakeDir, err)
		}
	} else {
		adm, err := kafka.NewAdmin(r.cc)
		if err != nil {
			return nil, err
		}
		r.ranges, err = replayRanges(ctx, adm, spec.Topics.Input, opts)
		adm.Close()
		if err != nil {
			return nil, err
		}
	}
	r.runID = opts.RunID
	if r.runID == "" {
		r.runID = directRunID(spec, opts, r.ranges, model.Version, digest)
	}
	r.batch = batchSize(opts.BatchSize, spec)
	return r, nil
}

// directRunID derives a direct replay's run id from everything that
// determines its outputs.
func directRunID(spec *pipeline.Spec, opts *ReplayOptions, ranges []replay.Range, modelVersion, digest string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00", spec.Name, opts.LakeDir, timeText(opts.FromTime), timeText(opts.ToTime), opts.ToTopic, opts.ToLake, modelVersion, digest)
	for _, r := range ranges {
		fmt.Fprintf(h, "%d:%d-%d\x00", r.Partition, r.Start, r.End)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

func schemaFields(spec *pipeline.Spec) []string {
	out := make([]string, len(spec.Schema.Fields))
	for i, f := range spec.Schema.Fields {
		out[i] = f.Name
	}
	return out
}

// replayer builds the direct replay of the source: the preparation chain
// for Kafka records, with the stateful stages' state in Redis under a
// fresh replay prefix, as live; for lake rows, featurize alone, a column
// at a time with the entity aggregates in process (stages.ReplayFeaturize:
// the same features as the live stage over a fresh prefix).
func (r *directRun) replayer() (*replay.Direct, error) {
	s := replayStateSpec(r.spec, r.runID)
	var list []pipeline.Stage
	if r.lake != nil {
		fz, err := stages.NewReplayFeaturize(s)
		if err != nil {
			return nil, err
		}
		list = []pipeline.Stage{fz}
	} else {
		keys, err := stages.LoadKeys(&s.Stages.Anonymize)
		if err != nil {
			return nil, fmt.Errorf("stages.anonymize: %w", err)
		}
		if list, err = stages.PreparationChain(s, r.rdb, keys); err != nil {
			return nil, err
		}
		onRecordTime(list)
	}
	return replay.NewDirect(replay.DirectConfig{Stages: list, BatchSize: r.batch, Progress: r.opts.Progress})
}

// run replays the source into visit and finishes the progress.
func (r *directRun) run(ctx context.Context, d *replay.Direct, visit func(*pipeline.Batch) error) error {
	var err error
	if r.lake != nil {
		err = d.ReplayBatches(ctx, lakeSource{r.lake, r.opts.LakeDir}, visit)
	} else {
		var in *kafka.Reader
		if in, err = kafka.NewReader(r.cc); err == nil {
			err = d.ReplayRanges(ctx, in, r.spec.Topics.Input, r.ranges, visit)
		}
	}
	if err != nil {
		return err
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Finish()
	}
	return nil
}

// DirectReplay replays opts' source through the spec's stages without
// transactions into opts.ToLake and/or opts.ToTopic (keyed by event id,
// to a compacted topic: a re-run overwrites its keys). A ToLake that holds
// the run's output already is left as it is (Done).
func DirectReplay(ctx context.Context, opts ReplayOptions) (DirectResult, error) {
	if opts.ToTopic == "" && opts.ToLake == "" {
		return DirectResult{}, errors.New("replay: a target is required: to-topic or to-lake")
	}
	r, err := openDirect(ctx, &opts, opts.ToTopic != "", false)
	if err != nil {
		return DirectResult{}, err
	}
	defer r.close()
	res := DirectResult{RunID: r.runID}
	target := &directTarget{model: r.model}
	if opts.ToLake != "" {
		t, err := lake.OpenReplayTarget(opts.ToLake, r.runID, r.spec.Schema.TimeField)
		if errors.Is(err, lake.ErrReplayDone) {
			res.Done = true
			return res, nil
		}
		if err != nil {
			return res, optionErr("to-lake", "", err)
		}
		defer t.Close() // after Publish: nothing
		target.lake = t
	}
	d, err := r.replayer()
	if err == nil {
		defer d.Close()
	}
	if err != nil {
		return res, err
	}
	keys, err := stages.LoadKeys(&r.spec.Stages.Anonymize)
	if err != nil {
		return res, fmt.Errorf("stages.anonymize: %w", err)
	}
	s := *r.spec
	s.Topics.Predictions = opts.ToTopic
	target.score = stages.NewScore(&s, r.model, keys.AESKeyID)
	if opts.ToTopic != "" {
		if err := ensureCompacted(ctx, r.cc, opts.ToTopic); err != nil {
			return res, err
		}
		kc, err := kafka.New(kafka.Config{Client: r.cc})
		if err != nil {
			return res, err
		}
		defer kc.Close()
		target.kafka, target.topic = kc, opts.ToTopic
	}
	if target.lake != nil {
		target.lakeOut = newLakeWriter(target.lake, r.model.Version)
	}
	err = r.run(ctx, d, func(b *pipeline.Batch) error { return target.visit(ctx, b) })
	if target.lakeOut != nil {
		if werr := target.lakeOut.finish(); werr != nil && err == nil {
			err = optionErr("to-lake", "", werr)
		}
	}
	res.Inputs, res.Outputs, res.Rejected, res.Duplicates = d.Inputs(), target.outputs, d.Rejected(), d.Duplicates()
	if err != nil {
		return res, err
	}
	if target.lake != nil {
		m := lake.ReplayMarker{Run: r.runID, Model: r.model.Name, Version: r.model.Version, Inputs: res.Inputs, Rows: res.Outputs, Finished: time.Now().UTC().Format(time.RFC3339)}
		if err := target.lake.Publish(m); err != nil {
			return res, optionErr("to-lake", opts.ToLake, err)
		}
	}
	return res, nil
}

// lakeSource is a lake replay source whose own errors name the lake
// option (and the visitor's errors pass as they are).
type lakeSource struct {
	*lake.ReplaySource
	dir string
}

func (s lakeSource) Rows() (int64, error) {
	n, err := s.ReplaySource.Rows()
	if err != nil {
		return 0, optionErr("lake", s.dir, err)
	}
	return n, nil
}

func (s lakeSource) Batches(ctx context.Context, maxRows int, fn func(*pipeline.Batch) error) error {
	var fnErr error
	err := s.ReplaySource.Batches(ctx, maxRows, func(b *pipeline.Batch) error {
		fnErr = fn(b)
		return fnErr
	})
	if err != nil && err != fnErr {
		return optionErr("lake", s.dir, err)
	}
	return err
}

// ensureCompacted creates the compacted topic of a direct replay.
func ensureCompacted(ctx context.Context, cc kafka.ClientConfig, topic string) error {
	adm, err := kafka.NewAdmin(cc)
	if err != nil {
		return err
	}
	defer adm.Close()
	if err := adm.EnsureTopic(ctx, topic, 1, true); err != nil {
		return optionErr("to-topic", topic, err)
	}
	return nil
}

// directTarget receives the featurized batches of a direct replay, scores
// them and writes the predictions.
type directTarget struct {
	score   *stages.Score
	model   *stages.ServedModel
	lake    *lake.ReplayTarget
	lakeOut *lakeWriter // writes lake's batches
	kafka   *kafka.Client
	topic   string
	outputs int64
}

func (t *directTarget) visit(ctx context.Context, b *pipeline.Batch) error {
	var err error
	if t.kafka != nil {
		err = t.score.Process(ctx, b)
	} else { // the lake stores scores as a column: no prediction JSON
		err = stages.ScoreBatch(b, t.model)
	}
	if err != nil {
		return err
	}
	if t.lakeOut != nil {
		if err := t.lakeOut.write(ctx, b); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return optionErr("to-lake", "", err)
		}
	}
	if t.kafka != nil {
		for i := range b.Outputs {
			b.Outputs[i].Topic = t.topic
		}
		if err := t.kafka.Write(ctx, b.Outputs); err != nil {
			return optionErr("to-topic", t.topic, err)
		}
	}
	t.outputs += int64(len(b.Features.Row))
	return nil
}

// Backtest scores opts' history with the candidate and the champion,
// joins the labels by event id and reports both models' metrics per
// bucket of event time. Nothing is written. A history without any
// labelled row gives ErrBacktestNoLabels.
func Backtest(ctx context.Context, opts BacktestOptions) (stages.BacktestReport, error) {
	switch {
	case opts.ToTopic != "" || opts.ToLake != "":
		return stages.BacktestReport{}, errors.New("backtest: a backtest writes no predictions: no to-topic or to-lake")
	case opts.LakeDir == "" && opts.LabelsTopic == "":
		return stages.BacktestReport{}, optionErr("labels-topic", "", errors.New("required with a Kafka source"))
	case opts.Bucket <= 0:
		return stages.BacktestReport{}, optionErr("bucket", "", errors.New("must be positive"))
	}
	r, err := openDirect(ctx, &opts.ReplayOptions, opts.LabelsTopic != "", opts.ChampionSnapshot == "")
	if err != nil {
		return stages.BacktestReport{}, err
	}
	defer r.close()
	spec := r.spec
	var champ *stages.ServedModel
	if opts.ChampionSnapshot != "" {
		if champ, _, err = loadReplayModel(ctx, spec, r.rdb, "champion", opts.ChampionSnapshot); err != nil {
			return stages.BacktestReport{}, optionErr("champion-snapshot", "", err)
		}
	} else if champ, _, err = loadReplayModel(ctx, spec, r.rdb, registry.AliasChampion, ""); errors.Is(err, registry.ErrNotFound) {
		// No registry champion of the model (no rollout has run): the
		// spec's fresh learner, labelled so.
		if champ, _, err = loadReplayModel(ctx, spec, r.rdb, "", ""); err != nil {
			return stages.BacktestReport{}, err
		}
		champ.Version = "fresh (no registry champion)"
	} else if err != nil {
		return stages.BacktestReport{}, optionErr("champion-snapshot", "", fmt.Errorf("the default, the registry's champion: %w", err))
	}
	var labels map[string]float32
	if opts.LabelsTopic != "" {
		if labels, err = readLabels(ctx, r.cc, opts.LabelsTopic, spec); err != nil {
			return stages.BacktestReport{}, optionErr("labels-topic", opts.LabelsTopic, err)
		}
	} else if labels, err = lake.ReadLabels(ctx, opts.LakeDir); err != nil { // a live lake's labels table
		return stages.BacktestReport{}, optionErr("lake", opts.LakeDir, err)
	}
	cand := r.model
	if opts.ModelVersion == "" && opts.Snapshot == "" {
		cand.Version = "fresh"
	} else if opts.Snapshot != "" && opts.ModelVersion == "" {
		cand.Version = "candidate"
	}
	bt := stages.NewBacktest(spec, cand, champ, opts.Bucket, labels)
	d, err := r.replayer()
	if err == nil {
		defer d.Close()
	}
	if err != nil {
		return stages.BacktestReport{}, err
	}
	visit := func(b *pipeline.Batch) error { return bt.Visit(b, nil, nil) }
	if r.lake != nil {
		visit = func(b *pipeline.Batch) error {
			y, ok := r.lake.Labels()
			return bt.Visit(b, y, ok)
		}
	}
	if err := r.run(ctx, d, visit); err != nil {
		return stages.BacktestReport{}, err
	}
	rep := bt.Report()
	if rep.Labelled == 0 {
		return rep, ErrBacktestNoLabels
	}
	return rep, nil
}

// readLabels reads every label record of topic (up to its last stable
// offsets now), by event id; a later label of an id wins. Records the
// label plane would refuse (stages.LabelDecoder) are skipped.
func readLabels(ctx context.Context, cc kafka.ClientConfig, topic string, spec *pipeline.Spec) (map[string]float32, error) {
	out := map[string]float32{}
	dec := stages.NewLabelDecoder(spec)
	err := kafka.ReadTopics(ctx, cc, true, func(r *kafka.Record) error {
		if id, y, rej := dec.Decode(r.Value); rej.Reason == "" {
			out[id] = y
		}
		return nil
	}, topic)
	return out, err
}
