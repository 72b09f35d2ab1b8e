package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
	"github.com/driftline/driftline/testkit/streams"
)

func TestReplayLakeToLake(t *testing.T) {
	env := loadReplayEnv(t, "127.0.0.1:1", redistest.StartMiniredis(t))
	rdb := env.Redis
	dir := t.TempDir()
	// One partition within one hour, so the lake's row order is the input
	// order and entity aggregates see the same sequence as the live run.
	evs := replaytest.SeededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 5, Step: 100 * time.Millisecond}, 3000)
	src := filepath.Join(dir, "src")
	replaytest.WriteLiveLake(t, env.Spec, rdb, src, stages.NewServedModel(env.Spec.Model.Name, "1", stages.ArmChampion, replaytest.FreshLearner(t, env.Spec, rdb)), evs, 1)
	// What live scoring by the candidate gives.
	cand, err := models.UnmarshalLearner(mustRead(t, env.Snapshot))
	if err != nil {
		t.Fatal(err)
	}
	wantLake := filepath.Join(dir, "want")
	replaytest.WriteLiveLake(t, env.Spec, rdb, wantLake, stages.NewServedModel(env.Spec.Model.Name, "9", stages.ArmShadow, cand), evs, 1)
	want, _ := replaytest.LakeRows(t, wantLake)

	replay := func(to string) string {
		var stdout, stderr bytes.Buffer
		args := []string{"replay", "--spec", env.SpecPath, "--lake", src, "--to-lake", to, "--snapshot", env.Snapshot, "--model-version", "9", "--batch", "256"}
		if code := runMain(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("replay exit %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 2000))
		}
		return stdout.String()
	}
	out1 := filepath.Join(dir, "out1")
	t.Log(replay(out1))
	got, versions := replaytest.LakeRows(t, out1)
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
	if again, _ := replaytest.LakeRows(t, out1); len(again) != len(got) {
		t.Errorf("re-run changed the lake: %d rows, was %d", len(again), len(got))
	}
	// Deterministic: another run of the same input gives the same files.
	out2 := filepath.Join(dir, "out2")
	replay(out2)
	d1, d2 := replaytest.LakeDigests(t, out1), replaytest.LakeDigests(t, out2)
	if strings.Join(d1, "|") != strings.Join(d2, "|") {
		t.Errorf("two replays of the same lake wrote different files:\n%q\n%q", d1, d2)
	}
	if _, err := os.Stat(out1 + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial directory left behind: %v", err)
	}
	// An independent reader sees the rows and the shadow version.
	checkWithPyarrow(t, out1, len(got))
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
	if len(v.Stray) != 1 || v.Stray[0] != lake.ReplayMarkerName {
		t.Errorf("files besides the lake's: %v, want only %s", v.Stray, lake.ReplayMarkerName)
	}
}

func TestReplayKafkaToLake(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	env := loadReplayEnv(t, broker.Addr, redistest.StartMiniredis(t))
	broker.CreateTopic(t, env.Spec.Topics.Input, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	replaytest.ProduceEvents(t, ctx, env.Brokers, env.Spec.Topics.Input, 3000, 4)
	ranges := map[int32][2]int64{}
	var from, to []string
	for p, end := range replaytest.EndOffsets(t, ctx, env.Brokers, env.Spec.Topics.Input) {
		r := [2]int64{end / 10 * int64(p), end * 9 / 10}
		ranges[p] = r
		from, to = append(from, fmt.Sprintf("%d:%d", p, r[0])), append(to, fmt.Sprintf("%d:%d", p, r[1]))
	}
	want := replaytest.FreshScoring(t, ctx, env, ranges, "7")
	out := filepath.Join(t.TempDir(), "lake")
	var stdout, stderr bytes.Buffer
	args := []string{"replay", "--spec", env.SpecPath, "--from-offsets", strings.Join(from, ","), "--to-offsets", strings.Join(to, ","),
		"--to-lake", out, "--snapshot", env.Snapshot, "--model-version", "7", "--batch", "200"}
	if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 2000))
	}
	got, versions := replaytest.LakeRows(t, out)
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
	env := loadReplayEnv(t, broker.Addr, redistest.StartMiniredis(t))
	rdb := env.Redis
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	evs := replaytest.SeededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 8, Step: time.Minute}, 1200)
	src := filepath.Join(t.TempDir(), "src")
	replaytest.WriteLiveLake(t, env.Spec, rdb, src, stages.NewServedModel(env.Spec.Model.Name, "1", stages.ArmChampion, env.Learner.Clone()), evs, 2)
	rows, _ := replaytest.LakeRows(t, src)
	// --from-time/--to-time bound the event times: one event a minute from
	// 2025-01-01T00:00, so 02:00 to 05:00 holds 180 events.
	var stdout, stderr bytes.Buffer
	args := []string{"replay", "--spec", env.SpecPath, "--lake", src, "--from-time", "2025-01-01T02:00:00Z", "--to-time", "2025-01-01T05:00:00Z",
		"--to-topic", "backfill", "--snapshot", env.Snapshot, "--model-version", "3"}
	if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("replay exit %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 2000))
	}
	got := replaytest.ReadCommitted(t, ctx, env.Brokers, "backfill")
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
