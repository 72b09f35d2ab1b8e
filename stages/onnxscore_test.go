package stages

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
	"github.com/driftline/driftline/models/ortengine"
	"github.com/driftline/driftline/pipeline"
)

// byoSpecYAML is a small spec with a bring-your-own model. MODEL is
// replaced by the model.onnx block. Field d is not a featurize.numeric
// field: the ONNX scorer reads it from the Arrow record.
const byoSpecYAML = `name: byo
topics: {input: events, predictions: predictions, dlq: events.dlq}
schema:
  id_field: event_id
  fields:
    - {name: event_id, type: string, required: true}
    - {name: a, type: float, required: true}
    - {name: b, type: int, required: true}
    - {name: c, type: bool, required: true}
    - {name: d, type: float, required: true}
    - {name: country, type: string}
stages:
  dedupe: {enabled: false}
  featurize: {numeric: [a], categorical: [country]}
model:
  name: churn-byo
  version: "3"
MODEL
output: {passthrough: [country]}
`

func byoSpec(t *testing.T, onnxBlock string) (*pipeline.Spec, error) {
	t.Helper()
	return pipeline.ParseSpec("byo.yaml", []byte(strings.Replace(byoSpecYAML, "MODEL", onnxBlock, 1)))
}

func mustBYOSpec(t *testing.T, onnxBlock string) *pipeline.Spec {
	t.Helper()
	spec, err := byoSpec(t, onnxBlock)
	if err != nil {
		t.Fatalf("parse spec: %v", err)
	}
	return spec
}

// byoWeights are the weights of twoInputModel over (x0, x1, x2, flag).
var byoWeights = [4]float32{0.7, -1.3, 0.05, 0.9}

const byoBias = float32(-0.2)

// twoInputModel writes a user's model to a temp file: inputs "x" [N, 3]
// and "flags" [N, 1], concatenated, then prob = Sigmoid(cat·W + B) [N, 1].
func twoInputModel(t *testing.T) string {
	t.Helper()
	batch := onnxexport.Dim{Param: onnxexport.BatchDim}
	m := onnxexport.Model{Graph: onnxexport.Graph{
		Name: "byo",
		Inputs: []onnxexport.TensorSpec{
			{Name: "x", Type: onnxexport.Float32, Shape: []onnxexport.Dim{batch, {Value: 3}}},
			{Name: "flags", Type: onnxexport.Float32, Shape: []onnxexport.Dim{batch, {Value: 1}}},
		},
		Outputs: []onnxexport.TensorSpec{{Name: "prob", Type: onnxexport.Float32, Shape: []onnxexport.Dim{batch, {Value: 1}}}},
		Initializers: []onnxexport.Tensor{
			{Name: "W", Dims: []int64{4, 1}, Float32s: byoWeights[:]},
			{Name: "B", Dims: []int64{1}, Float32s: []float32{byoBias}},
		},
		Nodes: []onnxexport.Node{
			{Op: "Concat", Name: "cat", Inputs: []string{"x", "flags"}, Outputs: []string{"cat"}, Attrs: []onnxexport.Attr{onnxexport.IntAttr("axis", 1)}},
			{Op: "Gemm", Name: "gemm", Inputs: []string{"cat", "W", "B"}, Outputs: []string{"z"}},
			{Op: "Sigmoid", Name: "sigmoid", Inputs: []string{"z"}, Outputs: []string{"prob"}},
		},
	}}
	data, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return writeModel(t, data)
}

func writeModel(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// byoBlock maps x to (d, a, b) — an order unlike the schema's, so a
// mapping applied in the wrong order gives other scores — and flags to c.
func byoBlock(path, extra string) string {
	return fmt.Sprintf(`  onnx:
    path: %s
    inputs:
      - {input: x, features: [d, a, b]}
      - {input: flags, features: [c]}
    output: prob
%s`, path, extra)
}

type byoEvent struct {
	ID      string  `json:"event_id"`
	A       float64 `json:"a"`
	B       int64   `json:"b"`
	C       bool    `json:"c"`
	D       float64 `json:"d"`
	Country string  `json:"country"`
}

func (e byoEvent) want() float64 {
	flag := 0.0
	if e.C {
		flag = 1
	}
	x := [4]float64{e.D, e.A, float64(e.B), flag}
	z := float64(byoBias)
	for i, w := range byoWeights {
		z += float64(w) * float64(float32(x[i]))
	}
	return 1 / (1 + math.Exp(-z))
}

// byoBatch returns n valid events and a batch of their JSON, with an
// invalid row (a missing) after every tenth, so that feature rows and
// record rows differ.
func byoBatch(t *testing.T, seed uint64, n int) ([]byoEvent, *pipeline.Batch) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var evs []byoEvent
	var rows [][]byte
	for i := range n {
		e := byoEvent{ID: fmt.Sprintf("e%d", i), A: rng.NormFloat64() * 3, B: rng.Int64N(20) - 10,
			C: rng.IntN(2) == 1, D: rng.Float64()*100 - 50, Country: "DE"}
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
		rows = append(rows, raw)
		if i%10 == 0 {
			rows = append(rows, []byte(fmt.Sprintf(`{"event_id":"bad%d","b":1,"c":true,"d":2}`, i)))
		}
	}
	return evs, newBatch(100, rows...)
}

func openBYO(t *testing.T, spec *pipeline.Spec) *ONNXModel {
	t.Helper()
	m, err := OpenONNXModel(spec)
	if err != nil {
		t.Fatalf("open model: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// scoreBYO runs decode → validate → featurize → ONNXScore and returns the
// predictions by event id.
func scoreBYO(t *testing.T, spec *pipeline.Spec, st *ONNXScore, b *pipeline.Batch) map[string]prediction {
	t.Helper()
	fz, err := NewFeaturize(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustProcess(t, b, NewDecode(spec), NewValidate(spec), fz, st)
	got := map[string]prediction{}
	for _, o := range b.Outputs {
		if o.Topic != "predictions" {
			continue
		}
		var p prediction
		if err := json.Unmarshal(o.Value, &p); err != nil {
			t.Fatalf("prediction %s: %v", o.Value, err)
		}
		if string(o.Key) != p.EventID {
			t.Fatalf("key %q, event id %q", o.Key, p.EventID)
		}
		got[p.EventID] = p
	}
	return got
}

func TestONNXScoreMatchesGoComputation(t *testing.T) {
	for _, tc := range []struct {
		name, budget string
		check        func(t *testing.T, size int)
	}{
		{"no budget", "", func(t *testing.T, size int) {
			if size != 0 {
				t.Errorf("sub-batch size %d without a budget, want 0", size)
			}
		}},
		{"1ns budget splits into single rows", "    latency_budget: 1ns\n", func(t *testing.T, size int) {
			if size != 1 {
				t.Errorf("sub-batch size %d under a 1ns budget, want 1", size)
			}
		}},
		{"1s budget grows sub-batches", "    latency_budget: 1s\n", func(t *testing.T, size int) {
			if size < 64 {
				t.Errorf("sub-batch size %d under a 1s budget, want it grown to at least 64", size)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := mustBYOSpec(t, byoBlock(twoInputModel(t), tc.budget))
			if got := spec.Model.ONNX.ExecutionProvider; got != "cpu" {
				t.Fatalf("execution_provider defaults to %q, want cpu", got)
			}
			m := openBYO(t, spec)
			if got := strings.Join(m.Features(), ","); got != "d,a,b,c" {
				t.Fatalf("features %s, want d,a,b,c", got)
			}
			champ := NewServedModel(spec.Model.Name, spec.Model.Version, ArmChampion, m.Learner())
			st, err := NewONNXScore(spec, m, champ, "")
			if err != nil {
				t.Fatal(err)
			}
			evs, b := byoBatch(t, 7, 300)
			got := scoreBYO(t, spec, st, b)
			if len(got) != len(evs) {
				t.Fatalf("%d predictions for %d valid events", len(got), len(evs))
			}
			for _, e := range evs {
				p, ok := got[e.ID]
				if !ok {
					t.Fatalf("no prediction for %s", e.ID)
				}
				if p.Score == nil || math.Abs(*p.Score-e.want()) > 1e-5 {
					t.Fatalf("%s: score %v, want %v within 1e-5", e.ID, p.Score, e.want())
				}
				if p.Model != "churn-byo" || p.Version != "3" || p.Arm != ArmChampion || p.Country == nil || *p.Country != "DE" {
					t.Fatalf("%s: prediction %+v lacks the model, version, arm or passthrough", e.ID, p)
				}
			}
			if len(b.Scores) != len(evs) {
				t.Fatalf("batch holds %d scores, want %d", len(b.Scores), len(evs))
			}
			tc.check(t, st.SubBatchSize())
			// The stage is reused for the next batch of its partition.
			evs2, b2 := byoBatch(t, 8, 50)
			got2 := scoreBYO(t, spec, st, b2)
			for _, e := range evs2 {
				if p := got2[e.ID]; p.Score == nil || math.Abs(*p.Score-e.want()) > 1e-5 {
					t.Fatalf("second batch %s: score %v, want %v", e.ID, p.Score, e.want())
				}
			}
		})
	}
}

// TestONNXLearnerDoesNotLearn checks the label join's view of a
// bring-your-own model: Learn is a no-op, and scoring from feature rows or
// snapshotting fails clearly.
func TestONNXLearnerDoesNotLearn(t *testing.T) {
	spec := mustBYOSpec(t, byoBlock(twoInputModel(t), ""))
	m := openBYO(t, spec)
	champ := NewServedModel(spec.Model.Name, spec.Model.Version, ArmChampion, m.Learner())
	rows := &models.Rows{N: 1, NumDense: 1, NumHashed: 1, Dense: []float32{1}, Hashed: []int32{3}}
	if err := champ.Learn(rows, []float32{1}); err != nil {
		t.Fatalf("Learn: %v, want the documented no-op", err)
	}
	if err := champ.Predict(make([]float32, 1), rows); !errors.Is(err, models.ErrShape) {
		t.Fatalf("Predict from feature rows: %v, want ErrShape", err)
	}
	l := champ.Snapshot()
	if _, err := l.MarshalBinary(); !errors.Is(err, ErrNotLearner) {
		t.Fatalf("MarshalBinary: %v, want ErrNotLearner", err)
	}
	if err := l.UnmarshalBinary(nil); !errors.Is(err, models.ErrSnapshot) || !errors.Is(err, ErrNotLearner) {
		t.Fatalf("UnmarshalBinary: %v, want ErrSnapshot and ErrNotLearner", err)
	}
	if l.Classes() != 1 || l.Link() != models.LinkIdentity {
		t.Fatalf("classes %d link %v, want 1 and identity", l.Classes(), l.Link())
	}
}

func TestONNXModelStartupErrors(t *testing.T) {
	model := twoInputModel(t)
	wide, err := (&onnxexport.MLP{Name: "wide", Input: "x", Output: "probs", Layers: []onnxexport.DenseLayer{{
		In: 3, Out: 2, W: make([]float32, 6), B: make([]float32, 2), Activation: onnxexport.ActivationSoftmax,
	}}}).Model()
	if err != nil {
		t.Fatal(err)
	}
	wideData, err := wide.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	widePath := writeModel(t, wideData)
	for _, tc := range []struct {
		name  string
		block string
		want  []string
	}{
		{"missing file", byoBlock(filepath.Join(t.TempDir(), "nope.onnx"), ""), []string{"model.onnx.path:", "nope.onnx", "no such file"}},
		{"wrong input name", strings.Replace(byoBlock(model, ""), "input: flags", "input: flagz", 1),
			[]string{"model.onnx:", model, `"flags"`, "no feature mapping"}},
		{"unmapped input", fmt.Sprintf("  onnx: {path: %s, inputs: [{input: x, features: [d, a, b]}], output: prob}\n", model),
			[]string{"model.onnx:", "flags", "no feature mapping"}},
		{"too few features", strings.Replace(byoBlock(model, ""), "[d, a, b]", "[d, a]", 1),
			[]string{"model.onnx:", "x", "[N, 2]"}},
		{"wrong output", strings.Replace(byoBlock(model, ""), "output: prob", "output: score", 1),
			[]string{"model.onnx:", `no output "score"`}},
		{"two scores per row", fmt.Sprintf("  onnx: {path: %s, inputs: [{input: x, features: [a, b, d]}]}\n", widePath),
			[]string{"model.onnx.output:", "2 scores per row"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := mustBYOSpec(t, tc.block)
			m, err := OpenONNXModel(spec)
			if err == nil {
				m.Close()
				t.Fatal("opened; want a startup error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestONNXModelCUDAFailsClearlyOrRunsOnTheGPU asks for CUDA. Without a
// usable CUDA provider (this project's CI) startup fails with
// ErrCUDAUnavailable naming the spec field; where CUDA works, the model
// scores on the GPU as on the CPU. It never falls back silently.
func TestONNXModelCUDAFailsClearlyOrRunsOnTheGPU(t *testing.T) {
	spec := mustBYOSpec(t, byoBlock(twoInputModel(t), "    execution_provider: cuda\n    device_id: 0\n"))
	m, err := OpenONNXModel(spec)
	if err != nil {
		if !errors.Is(err, ortengine.ErrCUDAUnavailable) {
			t.Fatalf("error %v does not wrap ErrCUDAUnavailable", err)
		}
		for _, w := range []string{"model.onnx.execution_provider:", ortengine.ErrCUDAUnavailable.Error(), "device 0"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		t.Logf("cuda unavailable, as expected without a GPU: %v", err)
		return
	}
	t.Cleanup(func() { m.Close() })
	champ := NewServedModel(spec.Model.Name, spec.Model.Version, ArmChampion, m.Learner())
	st, err := NewONNXScore(spec, m, champ, "")
	if err != nil {
		t.Fatal(err)
	}
	evs, b := byoBatch(t, 9, 100)
	got := scoreBYO(t, spec, st, b)
	for _, e := range evs {
		if p := got[e.ID]; p.Score == nil || math.Abs(*p.Score-e.want()) > 1e-5 {
			t.Fatalf("cuda %s: score %v, want %v", e.ID, p.Score, e.want())
		}
	}
}

func TestONNXSpecValidation(t *testing.T) {
	for _, tc := range []struct {
		name, block string
		want        []string
	}{
		{"path required", "  onnx: {inputs: [{input: x, features: [a]}]}\n", []string{"model.onnx.path: is required"}},
		{"inputs required", "  onnx: {path: m.onnx}\n", []string{"model.onnx.inputs: must map"}},
		{"unknown field", "  onnx: {path: m.onnx, inputs: [{input: x, features: [a, zz]}]}\n",
			[]string{`model.onnx.inputs[0].features[1]: names "zz", which is not in schema.fields`}},
		{"string field", "  onnx: {path: m.onnx, inputs: [{input: x, features: [country]}]}\n",
			[]string{`model.onnx.inputs[0].features[0]: field "country" has type string`}},
		{"no features", "  onnx: {path: m.onnx, inputs: [{input: x, features: []}]}\n",
			[]string{"model.onnx.inputs[0].features: must list"}},
		{"input twice", "  onnx: {path: m.onnx, inputs: [{input: x, features: [a]}, {input: x, features: [b]}]}\n",
			[]string{`model.onnx.inputs[1].input: input "x" is mapped twice`}},
		{"unknown provider", "  onnx: {path: m.onnx, inputs: [{input: x, features: [a]}], execution_provider: tpu}\n",
			[]string{`model.onnx.execution_provider: unknown provider "tpu"`}},
		{"device on cpu", "  onnx: {path: m.onnx, inputs: [{input: x, features: [a]}], device_id: 1}\n",
			[]string{"model.onnx.device_id: applies to execution_provider cuda only"}},
		{"negative budget", "  onnx: {path: m.onnx, inputs: [{input: x, features: [a]}], latency_budget: -5ms}\n",
			[]string{"model.onnx.latency_budget: must not be negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := byoSpec(t, tc.block)
			if err == nil {
				t.Fatal("spec accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "byo.yaml:") {
				t.Errorf("error %q does not name the file and line", err)
			}
		})
	}
}
