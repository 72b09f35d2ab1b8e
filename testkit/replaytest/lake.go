package replaytest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/streams"
)

// EventMessages is evs as input messages of topic: partition i%parts,
// offsets in order, Kafka timestamps at the event times.
func EventMessages(topic string, evs []streams.Event, parts int) [][]pipeline.Message {
	out := make([][]pipeline.Message, parts)
	for i := range evs {
		p := i % parts
		out[p] = append(out[p], pipeline.Message{Topic: topic, Partition: int32(p), Offset: int64(len(out[p])),
			Value: streams.AppendJSON(nil, &evs[i]), Timestamp: evs[i].Time})
	}
	return out
}

// LivePipeline is the live data plane's stages for spec (fresh Redis
// state under prefix), scoring with model.
func LivePipeline(tb testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient, prefix string, model *stages.ServedModel) ([]pipeline.Stage, *stages.Score) {
	tb.Helper()
	s := *spec
	s.Redis.KeyPrefix = prefix
	keys, err := stages.LoadKeys(&s.Stages.Anonymize)
	if err != nil {
		tb.Fatal(err)
	}
	list, err := stages.PreparationChain(&s, rdb, keys)
	if err != nil {
		tb.Fatal(err)
	}
	return list, stages.NewScore(&s, model, keys.AESKeyID)
}

// WriteLiveLake runs evs through the live stages and the lake sink, the way
// production fills a lake, in batches of 500, partition by partition.
func WriteLiveLake(tb testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient, root string, model *stages.ServedModel, evs []streams.Event, parts int) {
	tb.Helper()
	ctx := context.Background()
	list, score := LivePipeline(tb, spec, rdb, "live-"+filepath.Base(root)+":", model)
	w, err := lake.New(lake.Config{Root: root, TimeColumn: spec.Schema.TimeField})
	if err != nil {
		tb.Fatal(err)
	}
	var b pipeline.Batch
	defer b.Reset(nil)
	for _, msgs := range EventMessages(spec.Topics.Input, evs, parts) {
		for i := 0; i < len(msgs); i += 500 {
			b.Reset(msgs[i:min(i+500, len(msgs))])
			for _, st := range append(list, score) {
				if err := st.Process(ctx, &b); err != nil {
					tb.Fatal(err)
				}
			}
			if err := w.WriteBatch(&b, model.Version); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
}

// FreshLearner is the spec's fresh learner.
func FreshLearner(tb testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient) models.Learner {
	tb.Helper()
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := stages.NewLearner(spec, fz)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// TrainOn trains the spec's fresh learner on evs (through the live
// featurize) for epochs passes and writes its snapshot to path.
func TrainOn(tb testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient, evs []streams.Event, epochs int, path string) models.Learner {
	tb.Helper()
	ctx := context.Background()
	l := FreshLearner(tb, spec, rdb)
	list, _ := LivePipeline(tb, spec, rdb, "train-"+filepath.Base(path)+":", stages.NewServedModel("m", "0", stages.ArmShadow, l))
	byID := map[string]float32{}
	for i := range evs {
		byID[evs[i].ID] = float32(evs[i].Label)
	}
	msgs := EventMessages(spec.Topics.Input, evs, 1)[0]
	type chunk struct {
		rows models.Rows
		y    []float32
	}
	var chunks []chunk
	var b pipeline.Batch
	for i := 0; i < len(msgs); i += 500 {
		b.Reset(msgs[i:min(i+500, len(msgs))])
		for _, st := range list {
			if err := st.Process(ctx, &b); err != nil {
				tb.Fatal(err)
			}
		}
		rows := stages.FeatureRows(&b.Features)
		rows.Dense, rows.Hashed = append([]float32(nil), rows.Dense...), append([]int32(nil), rows.Hashed...)
		var y []float32
		for _, r := range b.Features.Row {
			y = append(y, byID[stages.EventID(&b, spec.FieldIndex(spec.Schema.IDField), r)])
		}
		chunks = append(chunks, chunk{rows, y})
	}
	b.Reset(nil)
	for range epochs {
		for _, c := range chunks {
			if err := l.Learn(&c.rows, c.y); err != nil {
				tb.Fatal(err)
			}
		}
	}
	WriteFile(tb, path, string(MarshalLearner(tb, l)))
	return l
}

// LakeRows reads a lake's rows: event id → score, and rows per model
// version. An event twice fails the test.
func LakeRows(tb testing.TB, root string) (map[string]float32, map[string]int) {
	tb.Helper()
	scores, versions := map[string]float32{}, map[string]int{}
	for rec, err := range lake.ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
		if err != nil {
			tb.Fatal(err)
		}
		s := rec.Schema()
		ids := rec.Column(s.FieldIndices("event_id")[0]).(*array.String)
		sc := rec.Column(s.FieldIndices(lake.ColScore)[0]).(*array.Float32)
		ver := rec.Column(s.FieldIndices(lake.ColModelVersion)[0]).(*array.String)
		for i := range int(rec.NumRows()) {
			if _, dup := scores[ids.Value(i)]; dup {
				tb.Fatalf("event %s twice in %s", ids.Value(i), root)
			}
			scores[ids.Value(i)] = sc.Value(i)
			versions[ver.Value(i)]++
		}
	}
	return scores, versions
}

// LakeDigests hashes the files of a lake in manifest order.
func LakeDigests(tb testing.TB, root string) []string {
	tb.Helper()
	entries, err := lake.ReadManifest(root)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(root, e.Path))
		if err != nil {
			tb.Fatal(err)
		}
		sum := sha256.Sum256(data)
		out = append(out, fmt.Sprintf("%s:%d:%x", filepath.Dir(e.Path), e.Rows, sum[:8]))
	}
	return out
}
