package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
	"github.com/driftline/driftline/models/ortengine"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// byoDemoSpec is the demo spec with a bring-your-own model over f0 and
// f1 (a 2→1 sigmoid layer written to a temp file) on the given provider.
func byoDemoSpec(t *testing.T, provider string) *pipeline.Spec {
	t.Helper()
	mlp := onnxexport.MLP{Name: "user", Input: "x", Output: "prob", Layers: []onnxexport.DenseLayer{{
		In: 2, Out: 1, W: []float32{0.5, -0.25}, B: []float32{0.1}, Activation: onnxexport.ActivationSigmoid,
	}}}
	m, err := mlp.Model()
	if err != nil {
		t.Fatal(err)
	}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.onnx")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	block := fmt.Sprintf("model:\n  onnx: {path: %s, inputs: [{input: x, features: [f0, f1]}], output: prob, execution_provider: %s, latency_budget: 2ms}\n", path, provider)
	spec, err := pipeline.ParseSpec("byo.yaml", []byte(strings.Replace(demoSpecWithoutRollout(t), "model:\n", block, 1)))
	if err != nil {
		t.Fatal(err)
	}
	spec.Kafka.Brokers = []string{"127.0.0.1:1"}
	t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
	t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
	return spec
}

// TestDataPlaneWiresBringYourOwnModel builds the data plane of a spec
// with model.onnx: the champion is the ONNX model, which does not learn,
// and every partition scores with it. With execution_provider cuda and no
// usable CUDA, startup fails naming the field; it never falls back.
func TestDataPlaneWiresBringYourOwnModel(t *testing.T) {
	rdb := redistest.StartMiniredis(t).Client(t)
	log := slog.New(slog.DiscardHandler)
	ctx := context.Background()

	dp, err := Open(ctx, byoDemoSpec(t, "cpu"), Options{Redis: rdb, Log: log})
	if err != nil {
		t.Fatalf("data plane: %v", err)
	}
	defer dp.Close()
	if dp.onnx == nil || dp.join == nil {
		t.Fatal("no ONNX model or label join in the data plane")
	}
	rows := &models.Rows{N: 1, NumDense: 13, NumHashed: 3, Dense: make([]float32, 13), Hashed: []int32{1, 2, 3}}
	if err := dp.champion.Learn(rows, []float32{1}); err != nil {
		t.Fatalf("the label join's Learn on a bring-your-own model: %v, want a no-op", err)
	}
	h, err := dp.openPartition("events", 0)
	if err != nil {
		t.Fatalf("open partition: %v", err)
	}
	h.Close()

	gpu, err := Open(ctx, byoDemoSpec(t, "cuda"), Options{Redis: rdb, Log: log})
	if err == nil {
		// Where CUDA works the model opens on the GPU (stages tests score there).
		t.Log("cuda execution provider usable here: the data plane opened on the GPU")
		gpu.Close()
		return
	}
	if !errors.Is(err, ortengine.ErrCUDAUnavailable) || !strings.Contains(err.Error(), "model.onnx.execution_provider:") {
		t.Fatalf("cuda startup error %v: want ErrCUDAUnavailable naming model.onnx.execution_provider", err)
	}
}
