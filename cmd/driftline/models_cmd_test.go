package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/admintest"
	"github.com/driftline/driftline/testkit/redistest"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/ortengine"
)

// The demo spec's feature layout: 10 numeric fields plus 3 entity
// aggregates, 3 categorical fields hashed to 16 bits.
const exportDense, exportHashed, exportHashBits = 13, 3, 16

// exportRows draws n rows of the demo layout, with some missing dense
// values and absent hashed indices.
func exportRows(rng *rand.Rand, n int) *models.Rows {
	r := &models.Rows{N: n, NumDense: exportDense, NumHashed: exportHashed,
		Dense: make([]float32, n*exportDense), Hashed: make([]int32, n*exportHashed)}
	for i := range r.Dense {
		r.Dense[i] = float32(rng.NormFloat64()*3 + 1)
		if rng.IntN(50) == 0 {
			r.Dense[i] = float32(math.NaN())
		}
	}
	for i := range r.Hashed {
		r.Hashed[i] = rng.Int32N(1 << exportHashBits)
		if rng.IntN(20) == 0 {
			r.Hashed[i] = -1
		}
	}
	return r
}

// exportSnapshot trains a learner on a seeded stream of the demo layout
// (when cfg has that layout; else it stays untrained) and writes its
// snapshot to a file.
func exportSnapshot(t *testing.T, cfg models.LinearConfig) (models.Learner, string) {
	t.Helper()
	l, err := models.NewLinear(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rounds := 20
	if cfg.NumDense != exportDense || cfg.NumHashed != exportHashed {
		rounds = 0
	}
	for range rounds {
		rows := exportRows(rng, 250)
		y := make([]float32, rows.N)
		for i := range y {
			d := rows.DenseRow(i)
			switch {
			case cfg.Link == models.LinkSoftmax:
				y[i] = float32(rows.HashedRow(i)[0] & 1)
				if d[1] > 2 {
					y[i] = 2
				}
			case d[0]+0.5*d[3] > 1.5:
				y[i] = 1
			}
		}
		if err := l.Learn(rows, y); err != nil {
			t.Fatalf("learn: %v", err)
		}
	}
	snap, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "learner.snap")
	if err := os.WriteFile(path, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	return l, path
}

func exportSpecFile(t *testing.T, edit func(string) string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "demo.yaml")
	y := string(app.DemoSpec)
	if edit != nil {
		y = edit(y)
	}
	writeFile(t, path, y)
	return path
}

func runModelsCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), append([]string{"models"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestModelsExportScoresLikeTheLearner exports trained learners with
// `driftline models export` and scores the files with ONNX Runtime: the
// scores agree with the Go learner within 1e-5 on 10,000 rows.
func TestModelsExportScoresLikeTheLearner(t *testing.T) {
	spec := exportSpecFile(t, nil)
	for _, tc := range []struct {
		name string
		cfg  models.LinearConfig
	}{
		{"logistic sgd", models.LinearConfig{Link: models.LinkSigmoid}},
		{"softmax adagrad", models.LinearConfig{Link: models.LinkSoftmax, Classes: 3, Optimizer: models.OptimizerConfig{Kind: models.OptimizerAdaGrad}}},
		{"linear ftrl", models.LinearConfig{Link: models.LinkIdentity, Optimizer: models.OptimizerConfig{Kind: models.OptimizerFTRL}, L1: 0.01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.NumDense, cfg.NumHashed, cfg.HashBits = exportDense, exportHashed, exportHashBits
			learner, snap := exportSnapshot(t, cfg)
			out := filepath.Join(t.TempDir(), "model.onnx")
			code, stdout, stderr := runModelsCmd(t, "export", "--spec", spec, "--snapshot", snap, "--out", out, "--version", "v9")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "wrote "+out) || !strings.Contains(stdout, `version "v9"`) {
				t.Fatalf("summary %q does not say what was written", stdout)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"driftline.model.version", "v9", "driftline.features.dense", "user_id.seconds_since_last", "channel"} {
				if !bytes.Contains(data, []byte(want)) {
					t.Errorf("model metadata lacks %q", want)
				}
			}
			lin, err := ortengine.NewLinear(ortengine.Config{}, data)
			if err != nil {
				t.Fatalf("ortengine: %v", err)
			}
			defer lin.Close()
			k := learner.Classes()
			rows := exportRows(rand.New(rand.NewPCG(3, 4)), 10_000)
			want := make([]float32, rows.N*k)
			got := make([]float32, rows.N*k)
			if err := learner.Predict(want, rows); err != nil {
				t.Fatal(err)
			}
			if err := lin.Score(got, rows); err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := range want {
				worst = max(worst, math.Abs(float64(got[i]-want[i])))
			}
			if worst > 1e-5 {
				t.Fatalf("ONNX Runtime differs from the Go learner by up to %g, want ≤ 1e-5", worst)
			}
			t.Logf("max |ort - go| = %.3g over %d scores", worst, len(want))
		})
	}
}

func TestModelsExportRefusesWhatDoesNotFit(t *testing.T) {
	spec := exportSpecFile(t, nil)
	_, wrongLayout := exportSnapshot(t, models.LinearConfig{Link: models.LinkSigmoid, NumDense: 10, NumHashed: exportHashed, HashBits: exportHashBits})
	_, wrongBits := exportSnapshot(t, models.LinearConfig{Link: models.LinkSigmoid, NumDense: exportDense, NumHashed: exportHashed, HashBits: 12})
	corrupt := filepath.Join(t.TempDir(), "corrupt.snap")
	writeFile(t, corrupt, "not a snapshot")
	byoSpec := exportSpecFile(t, func(string) string {
		return strings.Replace(demoSpecWithoutRollout(), "model:\n", "model:\n  onnx: {path: user.onnx, inputs: [{input: x, features: [f0]}]}\n", 1)
	})
	out := filepath.Join(t.TempDir(), "model.onnx")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"layout", []string{"--spec", spec, "--snapshot", wrongLayout, "--out", out}, 1,
			[]string{"--snapshot", "10 dense and 3 hashed", "stages.featurize gives 13 and 3"}},
		{"hash bits", []string{"--spec", spec, "--snapshot", wrongBits, "--out", out}, 1,
			[]string{"--snapshot", "12 bits", "hash_bits is 16"}},
		{"corrupt", []string{"--spec", spec, "--snapshot", corrupt, "--out", out}, 1,
			[]string{"--snapshot", "bad snapshot"}},
		{"missing snapshot", []string{"--spec", spec, "--snapshot", corrupt + ".nope", "--out", out}, 1,
			[]string{"--snapshot:", "no such file"}},
		{"bring your own", []string{"--spec", byoSpec, "--snapshot", corrupt, "--out", out}, 1,
			[]string{"model.onnx:", "no learner to export"}},
		{"flags required", []string{"--spec", spec}, 2,
			[]string{"--spec, --out and one of --snapshot and --model-version are required", "Usage: driftline models export"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runModelsCmd(t, append([]string{"export"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
		})
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a refused export left %s behind (%v)", out, err)
	}
	if code, _, stderr := runModelsCmd(t, "frobnicate"); code != 2 || !strings.Contains(stderr, `unknown subcommand "frobnicate"`) {
		t.Fatalf("unknown subcommand: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runModelsCmd(t, "--help"); code != 0 || !strings.Contains(stderr, "export") {
		t.Fatalf("models --help: exit %d, %s", code, stderr)
	}
}

// TestModelsExportTree: a Hoeffding tree exports as a tree ensemble that
// ONNX Runtime scores like the tree; naive-Bayes leaves need
// --approximate, and then export.
func TestModelsExportTree(t *testing.T) {
	sh := models.Shape{NumDense: exportDense, NumHashed: exportHashed, HashBits: exportHashBits}
	rng := rand.New(rand.NewPCG(3, 4))
	train := func(leaf string) string {
		l, err := models.NewLearnerFromSpec(models.LearnerSpec{Kind: "hoeffding_tree", Params: map[string]string{"leaf_prediction": leaf, "grace_period": "50"}}, sh, 2)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			rows := exportRows(rng, 250)
			y := make([]float32, rows.N)
			for i := range y {
				if d := rows.Dense[i*exportDense]; d > 1 && !math.IsNaN(float64(d)) {
					y[i] = 1
				}
			}
			if err := l.Learn(rows, y); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := l.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), leaf+".snap")
		if err := os.WriteFile(path, snap, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	spec := exportSpecFile(t, nil)
	out := filepath.Join(t.TempDir(), "tree.onnx")
	code, stdout, stderr := runModelsCmd(t, "export", "--spec", spec, "--snapshot", train("mc"), "--out", out)
	if code != 0 || !strings.Contains(stdout, "tree ensemble") {
		t.Fatalf("export of a majority-class tree: exit %d\n%s%s", code, stdout, stderr)
	}
	if info, err := os.Stat(out); err != nil || info.Size() == 0 {
		t.Fatalf("no model written: %v", err)
	}
	nb := train("nba")
	code, _, stderr = runModelsCmd(t, "export", "--spec", spec, "--snapshot", nb, "--out", out)
	if code != 1 || !strings.Contains(stderr, "--approximate") {
		t.Fatalf("naive-Bayes leaves without --approximate: exit %d\n%s", code, stderr)
	}
	if code, _, stderr = runModelsCmd(t, "export", "--spec", spec, "--snapshot", nb, "--out", out, "--approximate"); code != 0 {
		t.Fatalf("naive-Bayes leaves with --approximate: exit %d\n%s", code, stderr)
	}
}

// Exported from the registry (--model-version), the ONNX metadata carries
// the version's real number, also through an alias; download writes the
// same snapshot bytes.
func TestModelsExportAndDownloadFromTheRegistry(t *testing.T) {
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	spec := exportSpecFile(t, func(y string) string {
		return strings.Replace(y, "  name: demo-logistic", "  name: "+admintest.Model, 1)
	})
	cfg := models.LinearConfig{Link: models.LinkSigmoid, NumDense: exportDense, NumHashed: exportHashed, HashBits: exportHashBits}
	_, snapPath := exportSnapshot(t, cfg)
	snap, err := os.ReadFile(snapPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := f.Registry.Register(ctx, registry.Registration{Model: admintest.Model, Snapshot: snap, Who: "test",
		Signature: registry.Signature{Inputs: []registry.Tensor{{Name: "dense", DType: "float32"}}, Outputs: []registry.Tensor{{Name: "score", DType: "float32"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Registry.MoveAlias(ctx, registry.AliasMove{Model: admintest.Model, Alias: registry.AliasShadow, Version: v.Number, Who: "test"}); err != nil {
		t.Fatal(err)
	}
	api := []string{"--admin-url", f.URL, "--token", f.Viewer}
	out := filepath.Join(t.TempDir(), "model.onnx")
	code, stdout, stderr := runModelsCmd(t, append([]string{"export", "--spec", spec, "--model-version", "shadow", "--out", out}, api...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if want := fmt.Sprintf(`version "%d"`, v.Number); !strings.Contains(stdout, want) {
		t.Fatalf("summary %q does not name the registry version (%s)", stdout, want)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("driftline.model.version")) || !bytes.Contains(data, []byte(strconv.FormatInt(v.Number, 10))) {
		t.Error("the ONNX metadata lacks the registry version")
	}
	got := filepath.Join(t.TempDir(), "v.snapshot")
	code, stdout, stderr = runModelsCmd(t, append([]string{"download", admintest.Model, "shadow", "--out", got}, api...)...)
	if code != 0 {
		t.Fatalf("download: exit %d: %s", code, stderr)
	}
	if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, snap) || !strings.Contains(stdout, fmt.Sprintf("version %d", v.Number)) {
		t.Fatalf("download wrote %d bytes (%v), want the %d registered; said %q", len(b), err, len(snap), stdout)
	}
}
