//go:build cgo && !noonnx

package ortengine

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/driftline/driftline/models"
)

// mlpStream returns n rows of a nonlinear concept with 10% label noise,
// shaped for cfg: dense values of different offsets and scales with 5%
// missing (NaN), hashed indices with 10% absent (−1), and labels valid for
// cfg's link.
func mlpStream(cfg models.MLPConfig, seed uint64, n int) (*models.Rows, []float32) {
	rng := rand.New(rand.NewPCG(seed, 17))
	rows := &models.Rows{N: n, NumDense: cfg.NumDense, NumHashed: cfg.NumHashed,
		Dense: make([]float32, n*cfg.NumDense), Hashed: make([]int32, n*cfg.NumHashed)}
	y := make([]float32, n)
	for i := range n {
		dense, hashed := rows.DenseRow(i), rows.HashedRow(i)
		for j := range dense {
			dense[j] = float32(float64(10*j) + float64(j+1)*rng.NormFloat64())
			if rng.IntN(20) == 0 {
				dense[j] = float32(math.NaN())
			}
		}
		for c := range hashed {
			hashed[c] = rng.Int32N(1 << cfg.HashBits)
			if rng.IntN(10) == 0 {
				hashed[c] = -1
			}
		}
		z0 := (float64(dense[0]) - 0) / 1
		z1 := (float64(dense[1]) - 10) / 2
		band := math.Abs(z0) < 0.8 // a band: no linear model separates it
		switch cfg.Link {
		case models.LinkSigmoid:
			if band != (rng.IntN(10) == 0) {
				y[i] = 1
			}
		case models.LinkSoftmax:
			c := 0
			if band {
				c = 1 + int(min(max(z1+1, 0), float64(cfg.Classes-2)))
			}
			if rng.IntN(10) == 0 {
				c = rng.IntN(cfg.Classes)
			}
			y[i] = float32(c)
		default:
			y[i] = float32(math.Sin(2*z0) + 0.5*z1*z1 + 0.1*rng.NormFloat64())
		}
		if math.IsNaN(z0) || math.IsNaN(z1) {
			y[i] = float32(rng.IntN(max(2, cfg.Classes)) % max(2, cfg.Classes))
			if cfg.Link == models.LinkSigmoid {
				y[i] = float32(rng.IntN(2))
			}
		}
	}
	return rows, y
}

func newORTMLP(t testing.TB, engine Config, cfg models.MLPConfig) *models.MLP {
	t.Helper()
	m, err := NewMLP(engine, cfg)
	if err != nil {
		t.Fatalf("new ONNX Runtime mlp (the ONNX Runtime tests need the real library): %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m
}

// stateDiff is the largest difference between two states' values, each
// relative to max(1, |a|), and where it is.
func stateDiff(a, b models.MLPState) (float64, string) {
	worst, where := 0.0, ""
	for _, part := range []struct {
		name string
		a, b []models.MLPLayer
	}{{"layer", a.Layers, b.Layers}, {"m", a.M, b.M}, {"v", a.V, b.V}} {
		for l := range part.a {
			for _, vs := range []struct {
				name string
				a, b []float32
			}{{"W", part.a[l].W, part.b[l].W}, {"B", part.a[l].B, part.b[l].B}} {
				for i := range vs.a {
					d := math.Abs(float64(vs.a[i])-float64(vs.b[i])) / max(1, math.Abs(float64(vs.a[i])))
					if d > worst || math.IsNaN(d) {
						worst, where = d, fmt.Sprintf("%s %d %s[%d] go %v ort %v", part.name, l, vs.name, i, vs.a[i], vs.b[i])
					}
				}
			}
		}
	}
	return worst, where
}

// TestMLPStepParityWithGo trains the Go MLP and the ONNX Runtime MLP (CPU)
// side by side for 1,000 steps on the same stream, for every head, both
// optimizers and both activations, with one and two hidden layers. After
// every step their weights, moments and step counts, and the step's loss,
// must agree within 1e-5 (relative to max(1, |value|)).
func TestMLPStepParityWithGo(t *testing.T) {
	const steps, tol = 1000, 1e-5
	for _, head := range []struct {
		link    models.Link
		classes int
	}{{models.LinkSigmoid, 1}, {models.LinkSoftmax, 4}, {models.LinkIdentity, 1}} {
		for _, opt := range []models.MLPOptimizerConfig{
			{Kind: models.MLPOptimizerAdam, LearningRate: 0.005},
			{Kind: models.MLPOptimizerSGD, LearningRate: 0.05},
		} {
			for _, act := range []models.Activation{models.ActivationReLU, models.ActivationTanh} {
				hidden := []int{16, 8}
				if act == models.ActivationTanh {
					hidden = []int{12}
				}
				cfg := models.MLPConfig{
					Link: head.link, Classes: head.classes, NumDense: 5, NumHashed: 2, HashBits: 5,
					Hidden: hidden, Activation: act, Optimizer: opt, BatchSize: 8, L2: 1e-4, Seed: 3,
				}
				t.Run(fmt.Sprintf("%s/%s/%s", head.link, opt.Kind, act), func(t *testing.T) {
					goMLP, err := models.NewMLP(cfg)
					if err != nil {
						t.Fatal(err)
					}
					ortMLP := newORTMLP(t, Config{}, cfg)
					rows, y := mlpStream(cfg, 5, steps*cfg.BatchSize)
					worstState, worstLoss, where := 0.0, 0.0, ""
					for step := range steps {
						lo, hi := step*cfg.BatchSize, (step+1)*cfg.BatchSize
						batch := &models.Rows{N: cfg.BatchSize, NumDense: cfg.NumDense, NumHashed: cfg.NumHashed,
							Dense: rows.Dense[lo*cfg.NumDense : hi*cfg.NumDense], Hashed: rows.Hashed[lo*cfg.NumHashed : hi*cfg.NumHashed]}
						if err := goMLP.Learn(batch, y[lo:hi]); err != nil {
							t.Fatal(err)
						}
						if err := ortMLP.Learn(batch, y[lo:hi]); err != nil {
							t.Fatalf("step %d on ONNX Runtime: %v", step+1, err)
						}
						if goMLP.Steps() != int64(step+1) || ortMLP.Steps() != int64(step+1) {
							t.Fatalf("after %d batches: steps go %d, ort %d", step+1, goMLP.Steps(), ortMLP.Steps())
						}
						d, w := stateDiff(goMLP.State(), ortMLP.State())
						gl, ol := goMLP.LastLoss(), ortMLP.LastLoss()
						dl := math.Abs(gl-ol) / max(1, math.Abs(gl))
						if d > worstState {
							worstState, where = d, w
						}
						worstLoss = max(worstLoss, dl)
						if !(d <= tol) || !(dl <= tol) {
							t.Fatalf("step %d: state differs by %.3g (%s), loss go %v ort %v", step+1, d, w, gl, ol)
						}
					}
					t.Logf("over %d steps: largest state difference %.2g (%s), loss %.2g; final loss %.4f",
						steps, worstState, where, worstLoss, goMLP.LastLoss())
				})
			}
		}
	}
}

// TestMLPCUDAFailsClearlyOrRunsOnTheGPU asks for the CUDA provider. Without
// a usable CUDA provider (this project's CI) NewMLP must fail with
// ErrCUDAUnavailable and say why and what to do, and must not hand back a
// learner that would run on the CPU; where CUDA works, the learner's steps
// must match the Go step.
func TestMLPCUDAFailsClearlyOrRunsOnTheGPU(t *testing.T) {
	cfg := models.MLPConfig{Link: models.LinkSigmoid, NumDense: 4, NumHashed: 1, HashBits: 4, BatchSize: 8, Seed: 1}
	m, err := NewMLP(Config{ExecutionProvider: ProviderCUDA}, cfg)
	if err != nil {
		if m != nil {
			t.Fatal("NewMLP returned a learner with its error")
		}
		if !errors.Is(err, ErrCUDAUnavailable) {
			t.Fatalf("error %v does not wrap ErrCUDAUnavailable", err)
		}
		for _, want := range []string{"device 0", "libonnxruntime_providers_cuda.so", "setup-ort.sh --cuda", `"cpu"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		t.Logf("cuda unavailable, as expected without a GPU: %v", err)
		return
	}
	defer m.Close()
	goMLP, err := models.NewMLP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows, y := mlpStream(m.Config(), 9, 100*cfg.BatchSize)
	for _, l := range []*models.MLP{goMLP, m} {
		if err := l.Learn(rows, y); err != nil {
			t.Fatalf("learn: %v", err)
		}
	}
	if d, where := stateDiff(goMLP.State(), m.State()); !(d <= 1e-5) {
		t.Fatalf("after 100 steps on cuda the state differs from Go's by %.3g (%s)", d, where)
	}
}

// TestMLPSnapshotsMoveBetweenGoAndONNXRuntime restores a Go learner's
// snapshot (taken mid-batch) on ONNX Runtime and the other way round, and
// checks that both continue alike; that an ONNX Runtime learner's snapshot
// equals the Go learner's byte for byte after the same rows, up to the
// float32 rounding of the step (the snapshots' configuration, scaler and
// pending rows are identical); and that a clone shares the session but
// nothing else.
func TestMLPSnapshotsMoveBetweenGoAndONNXRuntime(t *testing.T) {
	cfg := models.MLPConfig{Link: models.LinkSoftmax, Classes: 3, NumDense: 4, NumHashed: 2, HashBits: 6,
		Hidden: []int{10, 6}, BatchSize: 16, Seed: 11}
	goMLP, err := models.NewMLP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rows, y := mlpStream(cfg, 21, 16*50+7)
	if err := goMLP.Learn(rows, y); err != nil {
		t.Fatal(err)
	}
	snap, err := goMLP.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	restored, err := RestoreMLP(Config{}, snap)
	if err != nil {
		t.Fatalf("restore on ONNX Runtime: %v", err)
	}
	defer restored.Close()
	if again, err := restored.MarshalBinary(); err != nil || string(again) != string(snap) {
		t.Fatalf("the restored learner's snapshot differs from the one it came from (err %v)", err)
	}
	if restored.Pending() != 7 {
		t.Fatalf("restored learner has %d pending rows, want 7", restored.Pending())
	}

	clone := restored.Clone().(*models.MLP)
	more, yMore := mlpStream(cfg, 22, 16*20)
	for _, l := range []*models.MLP{goMLP, restored} {
		if err := l.Learn(more, yMore); err != nil {
			t.Fatal(err)
		}
	}
	if d, where := stateDiff(goMLP.State(), restored.State()); !(d <= 1e-5) {
		t.Fatalf("after training on, the ONNX Runtime learner differs from Go's by %.3g (%s)", d, where)
	}
	if clone.Steps() != 50 {
		t.Fatalf("the clone moved when the original learned: %d steps", clone.Steps())
	}
	if err := restored.Close(); err != nil {
		t.Fatal(err)
	}
	if err := restored.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := restored.Learn(more, yMore); !errors.Is(err, ErrClosed) {
		t.Fatalf("learn after close: %v, want ErrClosed", err)
	}
	// The clone's session outlives the original's Close.
	if err := clone.Learn(more, yMore); err != nil {
		t.Fatalf("clone learns after the original closed: %v", err)
	}
	if d, where := stateDiff(goMLP.State(), clone.State()); !(d <= 1e-5) {
		t.Fatalf("the clone, trained on the same rows, differs from Go's by %.3g (%s)", d, where)
	}
	if err := clone.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestMLPUnmarshalOtherConfigurationMakesANewSession restores a snapshot of
// another shape into an ONNX Runtime learner: it must build a step for the
// new shape rather than run the old graph on it.
func TestMLPUnmarshalOtherConfigurationMakesANewSession(t *testing.T) {
	small := models.MLPConfig{Link: models.LinkSigmoid, NumDense: 3, Hidden: []int{4}, BatchSize: 4, Seed: 1}
	big := models.MLPConfig{Link: models.LinkSigmoid, NumDense: 5, NumHashed: 1, HashBits: 3, Hidden: []int{6, 5},
		Optimizer: models.MLPOptimizerConfig{Kind: models.MLPOptimizerSGD}, BatchSize: 8, Seed: 2}
	m := newORTMLP(t, Config{}, small)
	goBig, err := models.NewMLP(big)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := goBig.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UnmarshalBinary(snap); err != nil {
		t.Fatalf("restore a snapshot of another configuration: %v", err)
	}
	rows, y := mlpStream(big, 3, 8*30)
	for _, l := range []*models.MLP{goBig, m} {
		if err := l.Learn(rows, y); err != nil {
			t.Fatal(err)
		}
	}
	if d, where := stateDiff(goBig.State(), m.State()); !(d <= 1e-5) {
		t.Fatalf("after restoring another configuration, ONNX Runtime differs from Go by %.3g (%s)", d, where)
	}
}

func TestMLPRejectsInputsTooWideForADenseStep(t *testing.T) {
	_, err := NewMLP(Config{}, models.MLPConfig{Link: models.LinkSigmoid, NumDense: 1, NumHashed: 1, HashBits: 17, Hidden: []int{2}})
	if err == nil || !strings.Contains(err.Error(), "hash bits 17") {
		t.Fatalf("error %v, want one naming hash bits 17", err)
	}
	if _, err := NewMLP(Config{ExecutionProvider: "tpu"}, models.MLPConfig{Link: models.LinkSigmoid, NumDense: 1}); err == nil {
		t.Fatal("an unknown execution provider was accepted")
	}
	if _, err := NewMLP(Config{}, models.MLPConfig{Link: models.LinkSigmoid}); err == nil || !strings.Contains(err.Error(), "no features") {
		t.Fatalf("error %v, want the model configuration's", err)
	}
}
