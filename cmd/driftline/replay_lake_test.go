package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// seededEvents generates n events of cfg.
func seededEvents(t testing.TB, cfg streams.Config, n int) []streams.Event {
	t.Helper()
	g, err := streams.NewGenerator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]streams.Event, n)
	for i := range out {
		g.Next(&out[i])
	}
	return out
}

// eventMessages is evs as input messages: partition i%parts, offsets in
// order, Kafka timestamps at the event times.
func eventMessages(topic string, evs []streams.Event, parts int) [][]pipeline.Message {
	out := make([][]pipeline.Message, parts)
	for i := range evs {
		p := i % parts
		out[p] = append(out[p], pipeline.Message{Topic: topic, Partition: int32(p), Offset: int64(len(out[p])),
			Value: streams.AppendJSON(nil, &evs[i]), Timestamp: evs[i].Time})
	}
	return out
}

// livePipeline is the live data plane's stages for spec (fresh Redis
// state under prefix), scoring with model.
func livePipeline(t testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient, prefix string, model *stages.ServedModel) ([]pipeline.Stage, *stages.Score) {
	t.Helper()
	s := *spec
	s.Redis.KeyPrefix = prefix
	keys, err := stages.LoadKeys(&s.Stages.Anonymize)
	if err != nil {
		t.Fatal(err)
	}
	list, err := stages.PreparationChain(&s, rdb, keys)
	if err != nil {
		t.Fatal(err)
	}
	return list, stages.NewScore(&s, model, keys.AESKeyID)
}

// writeLiveLake runs evs through the live stages and the lake sink, the way
// production fills a lake, in batches of 500, partition by partition.
func writeLiveLake(t testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient, root string, model *stages.ServedModel, evs []streams.Event, parts int) {
	t.Helper()
	ctx := context.Background()
	list, score := livePipeline(t, spec, rdb, "live-"+filepath.Base(root)+":", model)
	w, err := lake.New(lake.Config{Root: root, TimeColumn: spec.Schema.TimeField})
	if err != nil {
		t.Fatal(err)
	}
	var b pipeline.Batch
	defer b.Reset(nil)
	for _, msgs := range eventMessages(spec.Topics.Input, evs, parts) {
		for i := 0; i < len(msgs); i += 500 {
			b.Reset(msgs[i:min(i+500, len(msgs))])
			for _, st := range append(list, score) {
				if err := st.Process(ctx, &b); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.WriteBatch(&b, model.Version); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// trainOn trains the spec's fresh learner on evs (through the live
// featurize) for epochs passes and writes its snapshot to path.
func trainOn(t testing.TB, spec *pipeline.Spec, rdb redis.UniversalClient, evs []streams.Event, epochs int, path string) models.Learner {
	t.Helper()
	ctx := context.Background()
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	l, err := stages.NewLearner(spec, fz)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := livePipeline(t, spec, rdb, "train-"+filepath.Base(path)+":", stages.NewServedModel("m", "0", stages.ArmShadow, l))
	byID := map[string]float32{}
	for i := range evs {
		byID[evs[i].ID] = float32(evs[i].Label)
	}
	msgs := eventMessages(spec.Topics.Input, evs, 1)[0]
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
				t.Fatal(err)
			}
		}
		rows := stages.FeatureRows(&b.Features)
		rows.Dense, rows.Hashed = append([]float32(nil), rows.Dense...), append([]int32(nil), rows.Hashed...)
		var y []float32
		for _, r := range b.Features.Row {
			y = append(y, byID[eventID(&b, spec.FieldIndex(spec.Schema.IDField), r)])
		}
		chunks = append(chunks, chunk{rows, y})
	}
	b.Reset(nil)
	for range epochs {
		for _, c := range chunks {
			if err := l.Learn(&c.rows, c.y); err != nil {
				t.Fatal(err)
			}
		}
	}
	data, err := l.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data))
	return l
}

// lakeRows reads a lake's rows: event id -> score, model version.
func lakeRows(t testing.TB, root string) (map[string]float32, map[string]int) {
	t.Helper()
	scores, versions := map[string]float32{}, map[string]int{}
	for rec, err := range lake.ReadFiles(context.Background(), root, time.Time{}, time.Time{}) {
		if err != nil {
			t.Fatal(err)
		}
		s := rec.Schema()
		ids := rec.Column(s.FieldIndices("event_id")[0]).(*array.String)
		sc := rec.Column(s.FieldIndices(lake.ColScore)[0]).(*array.Float32)
		ver := rec.Column(s.FieldIndices(lake.ColModelVersion)[0]).(*array.String)
		for i := range int(rec.NumRows()) {
			if _, dup := scores[ids.Value(i)]; dup {
				t.Fatalf("event %s twice in %s", ids.Value(i), root)
			}
			scores[ids.Value(i)] = sc.Value(i)
			versions[ver.Value(i)]++
		}
	}
	return scores, versions
}

// lakeDigests hashes the files of a lake in manifest order.
func lakeDigests(t testing.TB, root string) []string {
	t.Helper()
	entries, err := lake.ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(root, e.Path))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		out = append(out, fmt.Sprintf("%s:%d:%x", filepath.Dir(e.Path), e.Rows, sum[:8]))
	}
	return out
}

func TestReplayLakeToLake(t *testing.T) {
	rds := redistest.StartMiniredis(t)
	env := loadReplayEnv(t, "127.0.0.1:1", rds.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	dir := t.TempDir()
	// One partition within one hour, so the lake's row order is the input
	// order and entity aggregates see the same sequence as the live run.
	evs := seededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 5, Step: 100 * time.Millisecond}, 3000)
	src := filepath.Join(dir, "src")
	writeLiveLake(t, env.spec, rdb, src, stages.NewServedModel(env.spec.Model.Name, "1", stages.ArmChampion, mustFresh(t, env, rdb)), evs, 1)
	// What live scoring by the candidate gives.
	cand, err := models.UnmarshalLearner(mustRead(t, env.snapshot))
	if err != nil {
		t.Fatal(err)
	}
	wantLake := filepath.Join(dir, "want")
	writeLiveLake(t, env.spec, rdb, wantLake, stages.NewServedModel(env.spec.Model.Name, "9", stages.ArmShadow, cand), evs, 1)
	want, _ := lakeRows(t, wantLake)

	replay := func(to string) string {
		var stdout, stderr bytes.Buffer
		args := []string{"replay", "--spec", env.specPath, "--lake", src, "--to-lake", to, "--snapshot", env.snapshot, "--model-version", "9", "--batch", "256"}
		if code := runMain(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("replay exit %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 2000))
		}
		return stdout.String()
	}
	out1 := filepath.Join(dir, "out1")
	t.Log(replay(out1))
	got, versions := lakeRows(t, out1)
	if len(got) != len(want) || len(got) < 2900 {
		t.Fatalf("replayed lake has %d rows, live candidate scoring %d (of 3000 events)", len(got), len(want))
	}
	if versions["9"] != len(got) {
		t.Errorf("model versions in the replayed lake: %v, want all 9", versions)
	}
	for id, s := range want {
		if got[id] != s {
			t.Fatalf("event %s: replayed score %v, live scoring by the same model %v", id, got[id], s)
		}
	}
	// Idempotent: the same run again writes nothing.
	if msg := replay(out1); !strings.Contains(msg, "nothing to do") {
		t.Errorf("re-run: %q, want nothing to do", msg)
	}
	if again, _ := lakeRows(t, out1); len(again) != len(got) {
		t.Errorf("re-run changed the lake: %d rows, was %d", len(again), len(got))
	}
	// Deterministic: another run of the same input gives the same files.
	out2 := filepath.Join(dir, "out2")
	replay(out2)
	d1, d2 := lakeDigests(t, out1), lakeDigests(t, out2)
	if strings.Join(d1, "|") != strings.Join(d2, "|") {
		t.Errorf("two replays of the same lake wrote different files:\n%q\n%q", d1, d2)
	}
	if _, err := os.Stat(out1 + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial directory left behind: %v", err)
	}
	// An independent reader sees the rows and the shadow version.
	checkWithPyarrow(t, out1, len(got))
}

func mustFresh(t testing.TB, env *replayEnv, rdb redis.UniversalClient) models.Learner {
	t.Helper()
	fz, err := stages.NewFeaturize(env.spec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	l, err := stages.NewLearner(env.spec, fz)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkWithPyarrow reads root with connectors/lake's pyarrow script.
func checkWithPyarrow(t *testing.T, root string, rows int) {
	t.Helper()
	if out, err := exec.Command("python3", "-c", "import pyarrow").CombinedOutput(); err != nil {
		t.Fatalf("pyarrow is needed to check the lake independently; install it with: python3 -m pip install pyarrow==26.0.1\n(%v: %s)", err, out)
	}
	out, err := exec.Command("python3", "../../connectors/lake/testdata/check_lake.py", root).Output()
	if err != nil {
		t.Fatalf("check_lake.py: %v", err)
	}
	var v struct {
		Partitions map[string]int64 `json:"partitions"`
		Files      []struct {
			Rows    int64                      `json:"rows"`
			Columns map[string][]any           `json:"columns"`
			Types   map[string]json.RawMessage `json:"types"`
		} `json:"files"`
		Stray []string `json:"stray"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range v.Files {
		n += f.Rows
		for _, ver := range f.Columns[lake.ColModelVersion] {
			if ver != "9" {
				t.Fatalf("pyarrow reads model version %v, want 9", ver)
			}
		}
	}
	var parts int64
	for _, c := range v.Partitions {
		parts += c
	}
	if n != int64(rows) || parts != int64(rows) {
		t.Errorf("pyarrow reads %d rows (%d by partition), want %d", n, parts, rows)
	}
	if len(v.Stray) != 1 || v.Stray[0] != replayMarkerName {
		t.Errorf("files besides the lake's: %v, want only %s", v.Stray, replayMarkerName)
	}
}

func TestReplayKafkaToLake(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	rds := redistest.StartMiniredis(t)
	env := loadReplayEnv(t, broker.Addr, rds.Addr)
	broker.CreateTopic(t, env.spec.Topics.Input, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	produceEvents(t, ctx, env.brokers, env.spec.Topics.Input, 3000, 4)
	ends, err := kadm.NewClient(mustClient(t, env.brokers)).ListEndOffsets(ctx, env.spec.Topics.Input)
	if err != nil {
		t.Fatal(err)
	}
	ranges := map[int32][2]int64{}
	var from, to []string
	ends.Each(func(o kadm.ListedOffset) {
		r := [2]int64{o.Offset / 10 * int64(o.Partition), o.Offset * 9 / 10}
		ranges[o.Partition] = r
		from, to = append(from, fmt.Sprintf("%d:%d", o.Partition, r[0])), append(to, fmt.Sprintf("%d:%d", o.Partition, r[1]))
	})
	want := freshScoring(t, ctx, env, ranges, "7")
	out := filepath.Join(t.TempDir(), "lake")
	var stdout, stderr bytes.Buffer
	args := []string{"replay", "--spec", env.specPath, "--from-offsets", strings.Join(from, ","), "--to-offsets", strings.Join(to, ","),
		"--to-lake", out, "--snapshot", env.snapshot, "--model-version", "7", "--batch", "200"}
	if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 2000))
	}
	got, versions := lakeRows(t, out)
	if len(got) != len(want) || len(got) < 2000 {
		t.Fatalf("lake has %d rows, fresh scoring %d predictions", len(got), len(want))
	}
	if versions["7"] != len(got) {
		t.Errorf("model versions %v, want all 7", versions)
	}
	for id, v := range want {
		var p struct {
			Score float32 `json:"score"`
		}
		if err := json.Unmarshal(v, &p); err != nil {
			t.Fatal(err)
		}
		if s, ok := got[id]; !ok || s != p.Score {
			t.Fatalf("event %s: lake score %v (present %v), fresh scoring %v", id, s, ok, p.Score)
		}
	}
}

func TestReplayLakeToTopic(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	rds := redistest.StartMiniredis(t)
	env := loadReplayEnv(t, broker.Addr, rds.Addr)
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	evs := seededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 8, Step: time.Minute}, 1200)
	src := filepath.Join(t.TempDir(), "src")
	writeLiveLake(t, env.spec, rdb, src, stages.NewServedModel(env.spec.Model.Name, "1", stages.ArmChampion, env.learner.Clone()), evs, 2)
	rows, _ := lakeRows(t, src)
	// --from-time/--to-time bound the event times: one event a minute from
	// 2025-01-01T00:00, so 02:00 to 05:00 holds 180 events.
	var stdout, stderr bytes.Buffer
	args := []string{"replay", "--spec", env.specPath, "--lake", src, "--from-time", "2025-01-01T02:00:00Z", "--to-time", "2025-01-01T05:00:00Z",
		"--to-topic", "backfill", "--snapshot", env.snapshot, "--model-version", "3"}
	if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 2000))
	}
	got := readCommitted(t, ctx, env.brokers, "backfill")
	if len(got) != 180 || len(rows) < 1100 {
		t.Fatalf("backfill holds %d events, want the 180 of 02:00-05:00 (lake: %d rows)", len(got), len(rows))
	}
	for id, vs := range got {
		if len(vs) != 1 || !bytes.Contains(vs[0], []byte(`"arm":"shadow"`)) || !bytes.Contains(vs[0], []byte(`"version":"3"`)) {
			t.Fatalf("event %s: %q", id, vs)
		}
		if _, ok := rows[id]; !ok {
			t.Fatalf("event %s is not in the lake", id)
		}
	}
}
