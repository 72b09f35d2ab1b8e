package onnxexport

import (
	"fmt"
	"math"
	"strconv"
)

// Loss names the head and loss of a TrainStep.
type Loss string

// Losses a TrainStep can minimize, each the mean over the batch.
const (
	// LossLog is the sigmoid head's log loss: softplus(z) − y·z, computed
	// as max(z, 0) − y·z + log(1 + e^−|z|). One output, y in {0, 1}.
	LossLog Loss = "logloss"
	// LossCrossEntropy is the softmax head's cross-entropy −Σ y·logsoftmax(z),
	// with y one-hot over K outputs.
	LossCrossEntropy Loss = "crossentropy"
	// LossSquared is the identity head's ½(z − y)². Its gradient with
	// respect to z is clipped to ±TrainStep.ClipGradient.
	LossSquared Loss = "squared"
)

// Optimizer names a TrainStep's update rule.
type Optimizer string

// Optimizers a TrainStep can apply.
const (
	// OptimizerSGD is w ← w − η·g.
	OptimizerSGD Optimizer = "sgd"
	// OptimizerAdam is Adam with bias correction: m ← β1·m + (1−β1)·g,
	// v ← β2·v + (1−β2)·g², w ← w − η·(m/(1−β1^t)) / (√(v/(1−β2^t)) + ε),
	// with t the step number from 1. 1−β^t is computed in float64.
	OptimizerAdam Optimizer = "adam"
)

// Names of a TrainStep graph's inputs and outputs. Layer l's weights,
// intercepts and Adam moments are named by WeightName, BiasName and
// MomentName; each output is "next_" followed by the name of the input it
// updates.
const (
	// TrainInput is the float32 [Batch, Sizes[0]] input matrix: row i holds
	// the batch's row i as the first layer multiplies it (for models.MLP:
	// models.MLPBatch.FoldInto).
	TrainInput = "x"
	// TrainTarget is the float32 [Batch, K] target: y for LossLog and
	// LossSquared (K = 1), one-hot rows for LossCrossEntropy.
	TrainTarget = "y"
	// TrainStepCount is the int64 [1] number of steps taken before this
	// one (Adam's t−1); its output, "next_t", is one more.
	TrainStepCount = "t"
	// TrainLoss is the float32 [1] output: the batch's mean loss before the
	// step.
	TrainLoss = "loss"
	// NextPrefix prefixes the name of each updated state output.
	NextPrefix = "next_"
)

// WeightName is the name of layer l's weights, a float32 [in, out] input.
func WeightName(l int) string { return "w" + strconv.Itoa(l) }

// BiasName is the name of layer l's intercepts, a float32 [out] input.
func BiasName(l int) string { return "b" + strconv.Itoa(l) }

// MomentName is the name of Adam's moment ("m" or "v") of a parameter
// named param.
func MomentName(moment, param string) string { return moment + "_" + param }

// TrainStep describes one mini-batch training step of an MLP as an ONNX
// graph — forward pass, loss, backward pass and optimizer update — written
// with plain default-domain operators at Opset: Gemm, Relu or Tanh,
// Where/Greater (ReLU's derivative), Sigmoid, LogSoftmax, Exp, Log, Abs,
// Clip, ReduceSum, ReduceMean, ReduceMax, Unsqueeze, Sqrt, Pow, Cast, Div,
// Mul, Add, Sub, Neg.
//
// The graph takes the batch, the parameters and the optimizer state, and
// returns the updated parameters and state and the loss; it has no state
// of its own. Inputs, in order: TrainInput, TrainTarget, then per layer
// WeightName(l) and BiasName(l), then for Adam per layer the m moments of
// the weights and intercepts, then the v moments likewise, then
// TrainStepCount. Outputs: NextPrefix plus each input after TrainTarget,
// in the same order, then TrainLoss. Inputs and Outputs list them.
//
// It computes what models.MLP's Go step computes, in float32: the mean
// loss over the batch; gradients by back-propagation; L2 added to the
// weights' gradients; and the update of every intercept and every weight,
// except the rows of the first layer whose input column is zero in every
// row of the batch — their weights and moments pass through unchanged
// (a "lazy" update, so that hashed features that a batch does not use stay
// put).
type TrainStep struct {
	// Name is the graph name.
	Name string
	// Sizes are the layer widths: the input width, one or two hidden
	// widths, and the output width K.
	Sizes []int
	// Batch is the fixed number of rows per step.
	Batch      int
	Activation Activation // ActivationReLU or ActivationTanh
	Loss       Loss
	Optimizer  Optimizer
	// LearningRate is η; Beta1, Beta2 and Epsilon are Adam's.
	LearningRate, Beta1, Beta2, Epsilon float64
	// L2 is added to the weights' gradients as L2·w; 0 adds no node.
	L2 float64
	// ClipGradient bounds LossSquared's gradient.
	ClipGradient float64
}

// Layers is the number of layers with weights: hidden layers plus output.
func (s *TrainStep) Layers() int { return len(s.Sizes) - 1 }

// Inputs returns the graph's input names, in order.
func (s *TrainStep) Inputs() []string {
	names := []string{TrainInput, TrainTarget}
	return append(append(names, s.stateNames()...), TrainStepCount)
}

// Outputs returns the graph's output names, in order.
func (s *TrainStep) Outputs() []string {
	var names []string
	for _, n := range append(s.stateNames(), TrainStepCount) {
		names = append(names, NextPrefix+n)
	}
	return append(names, TrainLoss)
}

// stateNames lists the parameters, then Adam's m and v moments.
func (s *TrainStep) stateNames() []string {
	var params []string
	for l := range s.Layers() {
		params = append(params, WeightName(l), BiasName(l))
	}
	names := append([]string(nil), params...)
	if s.Optimizer == OptimizerAdam {
		for _, moment := range []string{"m", "v"} {
			for _, p := range params {
				names = append(names, MomentName(moment, p))
			}
		}
	}
	return names
}

func (s *TrainStep) validate() error {
	switch {
	case len(s.Sizes) < 3 || len(s.Sizes) > 4:
		return fmt.Errorf("onnxexport: train step sizes %v: want inputs, 1 or 2 hidden widths, outputs", s.Sizes)
	case s.Batch < 1:
		return fmt.Errorf("onnxexport: train step batch %d: want at least 1", s.Batch)
	case s.Activation != ActivationReLU && s.Activation != ActivationTanh:
		return fmt.Errorf("onnxexport: train step activation %q: want relu or tanh", s.Activation)
	case s.Optimizer != OptimizerSGD && s.Optimizer != OptimizerAdam:
		return fmt.Errorf("onnxexport: train step optimizer %q: want sgd or adam", s.Optimizer)
	case !(s.LearningRate > 0) || math.IsInf(s.LearningRate, 0):
		return fmt.Errorf("onnxexport: train step learning rate %v: want finite and positive", s.LearningRate)
	case !(s.L2 >= 0) || math.IsInf(s.L2, 0):
		return fmt.Errorf("onnxexport: train step l2 %v: want finite and non-negative", s.L2)
	}
	for i, n := range s.Sizes {
		if n < 1 {
			return fmt.Errorf("onnxexport: train step sizes[%d] = %d: want at least 1", i, n)
		}
	}
	k := s.Sizes[len(s.Sizes)-1]
	switch s.Loss {
	case LossLog:
		if k != 1 {
			return fmt.Errorf("onnxexport: train step loss logloss needs 1 output, got %d", k)
		}
	case LossSquared:
		if k != 1 {
			return fmt.Errorf("onnxexport: train step loss squared needs 1 output, got %d", k)
		}
		if !(s.ClipGradient > 0) {
			return fmt.Errorf("onnxexport: train step clip gradient %v: want positive", s.ClipGradient)
		}
	case LossCrossEntropy:
		if k < 2 {
			return fmt.Errorf("onnxexport: train step loss crossentropy needs at least 2 outputs, got %d", k)
		}
	default:
		return fmt.Errorf("onnxexport: train step loss %q: want logloss, crossentropy or squared", s.Loss)
	}
	if s.Optimizer == OptimizerAdam {
		if !(s.Beta1 > 0 && s.Beta1 < 1) || !(s.Beta2 > 0 && s.Beta2 < 1) || !(s.Epsilon > 0) {
			return fmt.Errorf("onnxexport: train step adam beta1 %v, beta2 %v, epsilon %v: want betas in (0, 1) and a positive epsilon",
				s.Beta1, s.Beta2, s.Epsilon)
		}
	}
	return nil
}

// ONNX tensor element types that Cast targets.
const (
	castFloat  = 1
	castDouble = 11
)

// builder appends nodes that each produce one output named after the node.
type builder struct {
	g *Graph
}

// op appends a node and returns its output's name.
func (b *builder) op(op, name string, inputs []string, attrs ...Attr) string {
	b.g.Nodes = append(b.g.Nodes, Node{Op: op, Name: name, Inputs: inputs, Outputs: []string{name}, Attrs: attrs})
	return name
}

// to appends a node whose output is the given name (a graph output).
func (b *builder) to(out, op string, inputs []string, attrs ...Attr) {
	b.g.Nodes = append(b.g.Nodes, Node{Op: op, Name: out, Inputs: inputs, Outputs: []string{out}, Attrs: attrs})
}

// scalar adds a float32 scalar initializer and returns its name.
func (b *builder) scalar(name string, v float64) string {
	b.g.Initializers = append(b.g.Initializers, Tensor{Name: name, Float32s: []float32{float32(v)}})
	return name
}

// Model returns the training step as an ONNX model at Opset.
func (s *TrainStep) Model() (*Model, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	layers := s.Layers()
	batch := int64(s.Batch)
	k := int64(s.Sizes[layers])
	g := Graph{Name: s.Name}
	b := &builder{g: &g}
	spec := func(name string, dims ...int64) TensorSpec {
		shape := make([]Dim, len(dims))
		for i, d := range dims {
			shape[i] = Dim{Value: d}
		}
		return TensorSpec{Name: name, Type: Float32, Shape: shape}
	}
	g.Inputs = []TensorSpec{spec(TrainInput, batch, int64(s.Sizes[0])), spec(TrainTarget, batch, k)}
	var stateSpecs []TensorSpec
	for l := range layers {
		in, out := int64(s.Sizes[l]), int64(s.Sizes[l+1])
		stateSpecs = append(stateSpecs, spec(WeightName(l), in, out), spec(BiasName(l), out))
	}
	if s.Optimizer == OptimizerAdam {
		params := stateSpecs
		for _, moment := range []string{"m", "v"} {
			for _, p := range params {
				stateSpecs = append(stateSpecs, TensorSpec{Name: MomentName(moment, p.Name), Type: Float32, Shape: p.Shape})
			}
		}
	}
	steps := TensorSpec{Name: TrainStepCount, Type: Int64, Shape: []Dim{{Value: 1}}}
	g.Inputs = append(append(g.Inputs, stateSpecs...), steps)
	for _, in := range append(stateSpecs, steps) {
		g.Outputs = append(g.Outputs, TensorSpec{Name: NextPrefix + in.Name, Type: in.Type, Shape: in.Shape})
	}
	g.Outputs = append(g.Outputs, spec(TrainLoss, 1))

	zero := b.scalar("zero", 0)
	one := b.scalar("one", 1)
	invN := b.scalar("inv_batch", 1/float64(s.Batch))
	g.Initializers = append(g.Initializers,
		Tensor{Name: "axis0", Dims: []int64{1}, Int64s: []int64{0}},
		Tensor{Name: "axis1", Dims: []int64{1}, Int64s: []int64{1}},
		Tensor{Name: "shape_1", Dims: []int64{1}, Int64s: []int64{1}},
		Tensor{Name: "one_i64", Dims: []int64{1}, Int64s: []int64{1}},
	)

	// Forward pass: z[l] = a[l-1]·W[l] + B[l], a[l] = act(z[l]).
	z := make([]string, layers)
	a := make([]string, layers)
	prev := TrainInput
	for l := range layers {
		z[l] = b.op("Gemm", fmt.Sprintf("z%d", l), []string{prev, WeightName(l), BiasName(l)})
		if l < layers-1 {
			actOp := "Relu"
			if s.Activation == ActivationTanh {
				actOp = "Tanh"
			}
			a[l] = b.op(actOp, fmt.Sprintf("a%d", l), []string{z[l]})
			prev = a[l]
		}
	}

	// Loss and its gradient with respect to the output layer's z.
	out := z[layers-1]
	var lossSum, dz string
	switch s.Loss {
	case LossLog:
		p := b.op("Sigmoid", "p", []string{out})
		softplus := b.op("Add", "softplus", []string{
			b.op("Relu", "z_pos", []string{out}),
			b.op("Log", "log1p_exp", []string{b.op("Add", "one_plus_exp", []string{one,
				b.op("Exp", "exp_neg_abs", []string{b.op("Neg", "neg_abs", []string{b.op("Abs", "abs_z", []string{out})})})})}),
		})
		perRow := b.op("Sub", "row_loss", []string{softplus, b.op("Mul", "y_z", []string{TrainTarget, out})})
		lossSum = b.op("ReduceSum", "loss_sum", []string{perRow}, IntAttr("keepdims", 0))
		dz = b.op("Mul", "dz_out", []string{b.op("Sub", "p_minus_y", []string{p, TrainTarget}), invN})
	case LossCrossEntropy:
		logp := b.op("LogSoftmax", "log_p", []string{out}, IntAttr("axis", -1))
		lossSum = b.op("Neg", "loss_sum", []string{b.op("ReduceSum", "y_log_p", []string{b.op("Mul", "y_times_log_p", []string{TrainTarget, logp})}, IntAttr("keepdims", 0))})
		dz = b.op("Mul", "dz_out", []string{b.op("Sub", "p_minus_y", []string{b.op("Exp", "p", []string{logp}), TrainTarget}), invN})
	case LossSquared:
		d := b.op("Sub", "residual", []string{out, TrainTarget})
		half := b.scalar("half", 0.5)
		lossSum = b.op("Mul", "loss_sum", []string{half, b.op("ReduceSum", "squares", []string{b.op("Mul", "residual_sq", []string{d, d})}, IntAttr("keepdims", 0))})
		lo, hi := b.scalar("clip_lo", -s.ClipGradient), b.scalar("clip_hi", s.ClipGradient)
		dz = b.op("Mul", "dz_out", []string{b.op("Clip", "residual_clipped", []string{d, lo, hi}), invN})
	}
	b.to(TrainLoss, "Reshape", []string{b.op("Mul", "loss_mean", []string{lossSum, invN}), "shape_1"})

	// Backward pass: gradients of every layer's weights and intercepts.
	gw := make([]string, layers)
	gb := make([]string, layers)
	for l := layers - 1; l >= 0; l-- {
		in := TrainInput
		if l > 0 {
			in = a[l-1]
		}
		gw[l] = b.op("Gemm", fmt.Sprintf("grad_w%d", l), []string{in, dz}, IntAttr("transA", 1))
		gb[l] = b.op("ReduceSum", fmt.Sprintf("grad_b%d", l), []string{dz, "axis0"}, IntAttr("keepdims", 0))
		if l == 0 {
			break
		}
		da := b.op("Gemm", fmt.Sprintf("grad_a%d", l-1), []string{dz, WeightName(l)}, IntAttr("transB", 1))
		if s.Activation == ActivationReLU {
			positive := b.op("Greater", fmt.Sprintf("z%d_positive", l-1), []string{z[l-1], zero})
			dz = b.op("Where", fmt.Sprintf("dz%d", l-1), []string{positive, da, zero})
		} else {
			slope := b.op("Sub", fmt.Sprintf("tanh_slope%d", l-1), []string{one, b.op("Mul", fmt.Sprintf("a%d_sq", l-1), []string{a[l-1], a[l-1]})})
			dz = b.op("Mul", fmt.Sprintf("dz%d", l-1), []string{da, slope})
		}
	}
	if s.L2 > 0 {
		l2 := b.scalar("l2", s.L2)
		for l := range layers {
			gw[l] = b.op("Add", fmt.Sprintf("grad_w%d_l2", l), []string{gw[l], b.op("Mul", fmt.Sprintf("l2_w%d", l), []string{l2, WeightName(l)})})
		}
	}
	// active is [inputs, 1]: whether input column j is non-zero in some row.
	active := b.op("Unsqueeze", "active_rows", []string{
		b.op("Greater", "active", []string{b.op("ReduceMax", "column_max", []string{b.op("Abs", "abs_x", []string{TrainInput})},
			IntsAttr("axes", 0), IntAttr("keepdims", 0)), zero}), "axis1"})

	// Optimizer update.
	lr := b.scalar("lr", s.LearningRate)
	b.to(NextPrefix+TrainStepCount, "Add", []string{TrainStepCount, "one_i64"})
	var bc1, bc2, beta1, beta2, rest1, rest2, eps string
	if s.Optimizer == OptimizerAdam {
		g.Initializers = append(g.Initializers,
			Tensor{Name: "one_f64", Float64s: []float64{1}},
			Tensor{Name: "beta1_f64", Float64s: []float64{s.Beta1}},
			Tensor{Name: "beta2_f64", Float64s: []float64{s.Beta2}},
		)
		t := b.op("Cast", "t_f64", []string{NextPrefix + TrainStepCount}, IntAttr("to", castDouble))
		bc1 = b.op("Cast", "bias_correction1", []string{b.op("Sub", "bc1_f64", []string{"one_f64", b.op("Pow", "beta1_t", []string{"beta1_f64", t})})}, IntAttr("to", castFloat))
		bc2 = b.op("Cast", "bias_correction2", []string{b.op("Sub", "bc2_f64", []string{"one_f64", b.op("Pow", "beta2_t", []string{"beta2_f64", t})})}, IntAttr("to", castFloat))
		beta1, beta2 = b.scalar("beta1", s.Beta1), b.scalar("beta2", s.Beta2)
		rest1, rest2 = b.scalar("one_minus_beta1", 1-s.Beta1), b.scalar("one_minus_beta2", 1-s.Beta2)
		eps = b.scalar("epsilon", s.Epsilon)
	}
	update := func(param, grad string, lazy bool) {
		next := func(name, value string) {
			if lazy {
				b.to(NextPrefix+name, "Where", []string{active, value, name})
			} else {
				b.to(NextPrefix+name, "Identity", []string{value})
			}
		}
		if s.Optimizer == OptimizerSGD {
			next(param, b.op("Sub", param+"_stepped", []string{param, b.op("Mul", param+"_lr_grad", []string{lr, grad})}))
			return
		}
		m, v := MomentName("m", param), MomentName("v", param)
		mNew := b.op("Add", m+"_new", []string{b.op("Mul", m+"_decayed", []string{beta1, m}), b.op("Mul", m+"_grad", []string{rest1, grad})})
		vNew := b.op("Add", v+"_new", []string{b.op("Mul", v+"_decayed", []string{beta2, v}),
			b.op("Mul", v+"_grad", []string{rest2, b.op("Mul", param+"_grad_sq", []string{grad, grad})})})
		mHat := b.op("Div", m+"_hat", []string{mNew, bc1})
		denom := b.op("Add", v+"_denominator", []string{b.op("Sqrt", v+"_hat_sqrt", []string{b.op("Div", v+"_hat", []string{vNew, bc2})}), eps})
		step := b.op("Mul", param+"_step", []string{lr, b.op("Div", param+"_direction", []string{mHat, denom})})
		next(param, b.op("Sub", param+"_stepped", []string{param, step}))
		next(m, mNew)
		next(v, vNew)
	}
	for l := range layers {
		update(WeightName(l), gw[l], l == 0)
		update(BiasName(l), gb[l], false)
	}
	return &Model{Graph: g, DocString: "driftline MLP training step " + s.Name}, nil
}
