package onnxexport

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func validTrainStep() TrainStep {
	return TrainStep{Name: "step", Sizes: []int{6, 4, 3, 1}, Batch: 8, Activation: ActivationReLU,
		Loss: LossLog, Optimizer: OptimizerAdam, LearningRate: 0.01, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, L2: 1e-4}
}

func TestTrainStepNamesItsInputsAndOutputsInOrder(t *testing.T) {
	s := validTrainStep()
	wantIn := []string{"x", "y", "w0", "b0", "w1", "b1", "w2", "b2",
		"m_w0", "m_b0", "m_w1", "m_b1", "m_w2", "m_b2", "v_w0", "v_b0", "v_w1", "v_b1", "v_w2", "v_b2", "t"}
	if got := s.Inputs(); !slices.Equal(got, wantIn) {
		t.Fatalf("inputs %v, want %v", got, wantIn)
	}
	var wantOut []string
	for _, in := range wantIn[2:] {
		wantOut = append(wantOut, "next_"+in)
	}
	wantOut = append(wantOut, "loss")
	if got := s.Outputs(); !slices.Equal(got, wantOut) {
		t.Fatalf("outputs %v, want %v", got, wantOut)
	}
	s.Optimizer, s.Sizes = OptimizerSGD, []int{6, 4, 1}
	if got, want := s.Inputs(), []string{"x", "y", "w0", "b0", "w1", "b1", "t"}; !slices.Equal(got, want) {
		t.Fatalf("sgd inputs %v, want %v", got, want)
	}
}

// TestTrainStepGraphDeclaresWhatItComputes builds every loss × optimizer ×
// activation and checks the declared signature: the inputs and outputs in
// the order Inputs and Outputs give, each updated state output shaped as
// its input, and a graph that the encoder accepts (every node reads only
// names defined before it). ONNX Runtime runs these graphs in
// models/ortengine's parity tests.
func TestTrainStepGraphDeclaresWhatItComputes(t *testing.T) {
	for _, loss := range []Loss{LossLog, LossCrossEntropy, LossSquared} {
		for _, opt := range []Optimizer{OptimizerSGD, OptimizerAdam} {
			for _, act := range []Activation{ActivationReLU, ActivationTanh} {
				t.Run(fmt.Sprintf("%s/%s/%s", loss, opt, act), func(t *testing.T) {
					s := validTrainStep()
					s.Loss, s.Optimizer, s.Activation, s.ClipGradient = loss, opt, act, 1e12
					if loss == LossCrossEntropy {
						s.Sizes = []int{6, 4, 3}
					}
					m, err := s.Model()
					if err != nil {
						t.Fatal(err)
					}
					if _, err := m.Marshal(); err != nil {
						t.Fatal(err)
					}
					names := func(specs []TensorSpec) []string {
						var out []string
						for _, sp := range specs {
							out = append(out, sp.Name)
						}
						return out
					}
					if got := names(m.Graph.Inputs); !slices.Equal(got, s.Inputs()) {
						t.Fatalf("graph inputs %v, Inputs() %v", got, s.Inputs())
					}
					if got := names(m.Graph.Outputs); !slices.Equal(got, s.Outputs()) {
						t.Fatalf("graph outputs %v, Outputs() %v", got, s.Outputs())
					}
					for i, out := range m.Graph.Outputs[:len(m.Graph.Outputs)-1] {
						in := m.Graph.Inputs[2+i]
						if out.Type != in.Type || !slices.Equal(out.Shape, in.Shape) {
							t.Fatalf("output %s is %v %v, its input %s is %v %v", out.Name, out.Type, out.Shape, in.Name, in.Type, in.Shape)
						}
					}
					lazy := 0
					for _, n := range m.Graph.Nodes {
						if n.Op == "Where" && strings.HasPrefix(n.Outputs[0], "next_") {
							lazy++
						}
					}
					want := 1 // the first layer's weights
					if opt == OptimizerAdam {
						want = 3 // and their two moments
					}
					if lazy != want {
						t.Fatalf("%d state outputs are masked by the first layer's active rows, want %d", lazy, want)
					}
				})
			}
		}
	}
}

func TestTrainStepRejectsBadDescriptions(t *testing.T) {
	for want, mutate := range map[string]func(*TrainStep){
		"sizes":                 func(s *TrainStep) { s.Sizes = []int{6, 1} },
		"sizes[1] = 0":          func(s *TrainStep) { s.Sizes = []int{6, 0, 1} },
		"batch 0":               func(s *TrainStep) { s.Batch = 0 },
		"activation \"gelu\"":   func(s *TrainStep) { s.Activation = "gelu" },
		"optimizer \"adagrad\"": func(s *TrainStep) { s.Optimizer = "adagrad" },
		"learning rate":         func(s *TrainStep) { s.LearningRate = 0 },
		"l2":                    func(s *TrainStep) { s.L2 = -1 },
		"logloss needs 1":       func(s *TrainStep) { s.Sizes = []int{6, 4, 2} },
		"crossentropy needs":    func(s *TrainStep) { s.Loss = LossCrossEntropy },
		"squared needs 1":       func(s *TrainStep) { s.Loss, s.ClipGradient, s.Sizes = LossSquared, 1, []int{6, 4, 2} },
		"clip gradient":         func(s *TrainStep) { s.Loss = LossSquared },
		"loss \"hinge\"":        func(s *TrainStep) { s.Loss = "hinge" },
		"adam beta1":            func(s *TrainStep) { s.Beta1 = 1 },
	} {
		s := validTrainStep()
		mutate(&s)
		if _, err := s.Model(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want one containing %q", s, err, want)
		}
	}
}
