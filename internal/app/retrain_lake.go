package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/pipeline/replay"
	"github.com/driftline/driftline/stages"
)

// LakeRetrainRows is the governance.RowSource of rollout.retrain.source
// lake: the live lake's events with event times in [max(since,
// now-lookback), now), featurized (they were decoded, validated,
// de-duplicated and anonymized before the lake) with entity aggregates
// under a state prefix of their own, joined by schema.id_field to the
// labels of the lake's labels table joined since from; the Window newest
// joined rows, oldest first. The lake's events in [start, from), start =
// max(from - warmup, now - lookback), are featurized first and only warm
// the entity aggregates (see pipeline.RetrainSpec.Warmup). Its lineage
// source names the input topic and the rows' span. Only committed lake
// files are read.
type LakeRetrainRows struct {
	retrainHistory
	dir string
}

// NewLakeRetrainRows builds the lake source of spec's rollout.retrain for
// features of numDense dense and numHashed hashed values. rdb holds the
// entity aggregates' state (nil without them); log defaults to discarding.
func NewLakeRetrainRows(spec *pipeline.Spec, rdb redis.UniversalClient, numDense, numHashed int, log *slog.Logger) (*LakeRetrainRows, error) {
	if spec.Lake == nil {
		return nil, errors.New("rollout.retrain.source lake: the spec has no lake block")
	}
	h, err := newRetrainHistory(spec, rdb, numDense, numHashed, log)
	if err != nil {
		return nil, err
	}
	return &LakeRetrainRows{retrainHistory: h, dir: spec.Lake.Dir}, nil
}

// CountSince is the number of labels the labels table holds joined in
// [max(since, now-lookback), now), at most window: an upper bound on the
// rows RowsSince gives.
func (k *LakeRetrainRows) CountSince(ctx context.Context, since time.Time) (int, error) {
	from, to := k.span(since)
	var n int64
	for rec, err := range lake.ReadFiles(ctx, filepath.Join(k.dir, lake.LabelsDir), from, to) {
		if err != nil {
			return 0, fmt.Errorf("retrain source lake: labels: %w", err)
		}
		n += rec.NumRows()
	}
	return int(min(n, int64(k.window))), nil
}

// RowsSince implements governance.RowSource (see LakeRetrainRows).
func (k *LakeRetrainRows) RowsSince(ctx context.Context, since time.Time) (models.Rows, []float32, registry.Source, error) {
	rows, err := k.replay(ctx, since)
	if err != nil {
		return models.Rows{}, nil, registry.Source{}, err
	}
	return rows.rows(), rows.y, rows.source, nil
}

// readLabels reads the labels table's labels joined since from into
// labels. lake.StoredLabels copies the ids out of the files' Arrow
// buffers (one copy per record, which its ids slice), so labels' map keys
// stay valid after each record is released; a record's copy lives while
// labels keeps any of its ids.
func (k *LakeRetrainRows) readLabels(ctx context.Context, from time.Time, labels *recentLabels) error {
	for l, err := range lake.StoredLabels(ctx, filepath.Join(k.dir, lake.LabelsDir), from, time.Time{}) {
		if err != nil {
			return fmt.Errorf("retrain source lake: labels: %w", err)
		}
		if l.Null {
			labels.malformed++
			continue
		}
		labels.put(l.EventID, l.Label, l.At.UnixMilli())
	}
	return nil
}

// replay reads the labels, replays the lake's events and joins them.
func (k *LakeRetrainRows) replay(ctx context.Context, since time.Time) (*newestRows, error) {
	spec := k.spec
	from, to := k.span(since)
	labels := newRecentLabels(retrainLabelsPerRow * k.window)
	if err := k.readLabels(ctx, from, labels); err != nil {
		return nil, err
	}
	src, err := lake.NewReplaySource(k.dir, k.replayStart(from, to), to, schemaFields(spec))
	if err != nil {
		return nil, fmt.Errorf("retrain source lake: %w", err)
	}
	s := replayStateSpec(spec, retrainReplayRun)
	fz, err := stages.NewFeaturize(s, k.rdb)
	if err != nil {
		return nil, fmt.Errorf("retrain source lake: %w", err)
	}
	d, err := replay.NewDirect(replay.DirectConfig{Stages: []pipeline.Stage{fz}, BatchSize: spec.Batch.Size})
	if err != nil {
		_ = pipeline.CloseStages([]pipeline.Stage{fz})
		return nil, fmt.Errorf("retrain source lake: %w", err)
	}
	defer d.Close()
	if k.rdb != nil && spec.Stages.Featurize.Entity != nil {
		defer func() {
			dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := dropKeys(dropCtx, k.rdb, s.Redis.Prefix()); err != nil {
				k.log.Warn("retrain: delete the replay's state (it expires with the spec's TTLs)", "prefix", s.Redis.Prefix(), "err", err)
			}
		}()
	}
	out := newNewestRows(min(k.window, labels.len()), k.numDense, k.numHashed)
	out.source = registry.Source{Topic: spec.Topics.Input, From: from.UTC(), To: to.UTC()}
	idCol := spec.FieldIndex(spec.Schema.IDField)
	var joined, warmed int64
	visit := func(b *pipeline.Batch) error {
		fb := &b.Features
		if fb.Len() == 0 {
			return nil
		}
		if fb.NumDense != k.numDense || fb.NumHashed != k.numHashed {
			return fmt.Errorf("featurize gives %d dense and %d hashed features, the learner takes %d and %d", fb.NumDense, fb.NumHashed, k.numDense, k.numHashed)
		}
		for j, i := range fb.Row {
			m := &b.Messages[i]
			if m.Timestamp.Before(from) {
				warmed++
				continue
			}
			y, ok := labels.get(stages.EventID(b, idCol, i))
			if !ok {
				continue
			}
			joined++
			out.add(rowPos{ms: m.Timestamp.UnixMilli(), partition: m.Partition, offset: m.Offset},
				fb.Dense[j*fb.NumDense:(j+1)*fb.NumDense], fb.Hashed[j*fb.NumHashed:(j+1)*fb.NumHashed], y)
		}
		return nil
	}
	if err := d.ReplayBatches(ctx, src, visit); err != nil {
		return nil, fmt.Errorf("retrain source lake: replay %s: %w", k.dir, err)
	}
	out.finish()
	k.log.Info("retrain: read the lake's events and joined its labels", "lake", k.dir, "from", out.source.From, "to", out.source.To,
		"replayed", d.Inputs(), "warmup_rows", warmed, "labels", labels.read, "labels_dropped", labels.dropped, "joined", joined, "rows", len(out.y))
	return out, nil
}
