package models

import (
	"fmt"
	"math"
	"reflect"
	"slices"
)

// Activation is the function an MLP applies to its hidden layers.
type Activation uint8

const (
	// ActivationReLU is max(0, z). Its derivative at z = 0 is taken as 0.
	ActivationReLU Activation = iota
	// ActivationTanh is the hyperbolic tangent.
	ActivationTanh
)

// String names the activation as it appears in specs and benchmark names.
func (a Activation) String() string {
	switch a {
	case ActivationReLU:
		return "relu"
	case ActivationTanh:
		return "tanh"
	}
	return "unknown"
}

// MLPOptimizerKind names an MLP's update rule.
type MLPOptimizerKind uint8

const (
	// MLPOptimizerAdam is Adam (Kingma & Ba 2015, "Adam: A Method for
	// Stochastic Optimization", Algorithm 1), with L2 added to the gradient:
	// g ← g + L2·w, m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
	// w ← w − η·(m/(1−β1^t)) / (√(v/(1−β2^t)) + ε), t counting steps from 1.
	MLPOptimizerAdam MLPOptimizerKind = iota
	// MLPOptimizerSGD is mini-batch gradient descent with a constant rate:
	// w ← w − η·(g + L2·w).
	MLPOptimizerSGD
)

// String names the optimizer as it appears in specs and benchmark names.
func (k MLPOptimizerKind) String() string {
	switch k {
	case MLPOptimizerAdam:
		return "adam"
	case MLPOptimizerSGD:
		return "sgd"
	}
	return "unknown"
}

// MLPOptimizerConfig configures an MLP's optimizer. A zero field takes the
// default stated on it.
type MLPOptimizerConfig struct {
	// Kind selects the update rule. Default MLPOptimizerAdam.
	Kind MLPOptimizerKind
	// LearningRate is η. Default 0.001 for Adam, 0.01 for SGD.
	LearningRate float64
	// Beta1 and Beta2 are Adam's decay rates, in (0, 1). Defaults 0.9 and
	// 0.999.
	Beta1, Beta2 float64
	// Epsilon is Adam's ε. Default 1e-8.
	Epsilon float64
}

// MLPConfig configures an MLP learner. A zero field takes the default stated
// on it; NewMLP and Validate apply the defaults, then check the result.
//
// Memory: the first layer holds (NumDense + 2^HashBits) × Hidden[0]
// float32 weights, one row per dense value and per hash bucket; Adam keeps
// two more values per weight.
type MLPConfig struct {
	// Link selects the head and loss: LinkSigmoid (binary, log loss),
	// LinkSoftmax (K classes, cross-entropy) or LinkIdentity (regression,
	// squared loss ½(z−y)²). The zero value is LinkIdentity.
	Link Link
	// Classes is K: in [2, MaxClasses] for LinkSoftmax; it defaults to, and
	// must be, 1 for the other links.
	Classes int
	// NumDense is the number of dense values per row (≥ 0).
	NumDense int
	// NumHashed is the number of hashed indices per row (≥ 0).
	NumHashed int
	// HashBits sets the 2^HashBits hash buckets, in [0, MaxHashBits].
	// Default DefaultMLPHashBits when NumHashed > 0, else 0.
	HashBits int
	// Hidden holds the widths of the hidden layers: one or two, each in
	// [1, MaxMLPWidth]. Default [DefaultMLPWidth].
	Hidden []int
	// Activation is the hidden layers' function. Default ActivationReLU.
	Activation Activation
	// Optimizer selects and tunes the update rule.
	Optimizer MLPOptimizerConfig
	// BatchSize is the number of rows per optimizer step, in [1,
	// MaxMLPBatchSize]. Default DefaultMLPBatchSize. See MLP for how Learn
	// batches.
	BatchSize int
	// L2 is the L2 strength, added to the gradient of every weight that a
	// step updates (never to the intercepts). Default 0.
	L2 float64
	// ClipGradient bounds the squared loss's gradient with respect to the
	// output to [−ClipGradient, ClipGradient] (LinkIdentity only; the
	// other losses' gradients lie in [−1, 1]). Default 1e12.
	ClipGradient float64
	// Seed seeds the weight initialization; every value is valid, 0
	// included.
	Seed uint64
}

// Defaults and bounds of MLPConfig.
const (
	DefaultMLPHashBits  = 12
	DefaultMLPWidth     = 32
	DefaultMLPBatchSize = 16
	DefaultAdamRate     = 0.001
	DefaultMLPSGDRate   = 0.01
	DefaultAdamBeta1    = 0.9
	DefaultAdamBeta2    = 0.999
	DefaultAdamEpsilon  = 1e-8
	MaxMLPWidth         = 1 << 14
	MaxMLPBatchSize     = 1 << 16
	// MaxMLPParams bounds the number of weights and intercepts (1 GiB of
	// float32).
	MaxMLPParams = 1 << 28
	// MaxMLPBatchValues bounds BatchSize × (the hidden widths + Classes):
	// the Go step keeps three float64 values per row and unit (1.5 GiB at
	// the bound).
	MaxMLPBatchValues = 1 << 26
)

// Validate reports whether the configuration, with its defaults applied, is
// usable by NewMLP. The error names the field at fault.
func (c MLPConfig) Validate() error {
	_, err := c.resolve()
	return err
}

// resolve returns a copy of the configuration with its defaults applied
// (Hidden is a fresh slice), or the first problem found.
func (c MLPConfig) resolve() (MLPConfig, error) {
	switch c.Link {
	case LinkIdentity, LinkSigmoid:
		if c.Classes == 0 {
			c.Classes = 1
		}
		if c.Classes != 1 {
			return c, fmt.Errorf("models: mlp classes: link %s needs 1, got %d", c.Link, c.Classes)
		}
	case LinkSoftmax:
		if c.Classes < 2 || c.Classes > MaxClasses {
			return c, fmt.Errorf("models: mlp classes: link softmax needs [2, %d], got %d", MaxClasses, c.Classes)
		}
	default:
		return c, fmt.Errorf("models: mlp link: unknown link %d", c.Link)
	}
	if c.NumDense < 0 {
		return c, fmt.Errorf("models: mlp num dense: negative (%d)", c.NumDense)
	}
	if c.NumHashed < 0 {
		return c, fmt.Errorf("models: mlp num hashed: negative (%d)", c.NumHashed)
	}
	if c.NumDense == 0 && c.NumHashed == 0 {
		return c, fmt.Errorf("models: mlp num dense, num hashed: the model has no features")
	}
	if c.HashBits == 0 && c.NumHashed > 0 {
		c.HashBits = DefaultMLPHashBits
	}
	if c.HashBits < 0 || c.HashBits > MaxHashBits {
		return c, fmt.Errorf("models: mlp hash bits: %d outside [0, %d]", c.HashBits, MaxHashBits)
	}
	if len(c.Hidden) == 0 {
		c.Hidden = []int{DefaultMLPWidth}
	} else {
		c.Hidden = slices.Clone(c.Hidden)
	}
	if len(c.Hidden) > 2 {
		return c, fmt.Errorf("models: mlp hidden: %d layers, at most 2", len(c.Hidden))
	}
	for i, w := range c.Hidden {
		if w < 1 || w > MaxMLPWidth {
			return c, fmt.Errorf("models: mlp hidden[%d]: width %d outside [1, %d]", i, w, MaxMLPWidth)
		}
	}
	if c.Activation > ActivationTanh {
		return c, fmt.Errorf("models: mlp activation: unknown activation %d", c.Activation)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultMLPBatchSize
	}
	if c.BatchSize < 1 || c.BatchSize > MaxMLPBatchSize {
		return c, fmt.Errorf("models: mlp batch size: %d outside [1, %d]", c.BatchSize, MaxMLPBatchSize)
	}
	o := &c.Optimizer
	switch o.Kind {
	case MLPOptimizerAdam:
		orDefault(&o.LearningRate, DefaultAdamRate)
		orDefault(&o.Beta1, DefaultAdamBeta1)
		orDefault(&o.Beta2, DefaultAdamBeta2)
		orDefault(&o.Epsilon, DefaultAdamEpsilon)
	case MLPOptimizerSGD:
		orDefault(&o.LearningRate, DefaultMLPSGDRate)
		if o.Beta1 != 0 || o.Beta2 != 0 || o.Epsilon != 0 {
			return c, fmt.Errorf("models: mlp optimizer beta1, beta2, epsilon: only adam takes them, not sgd")
		}
	default:
		return c, fmt.Errorf("models: mlp optimizer kind: unknown optimizer %d", o.Kind)
	}
	orDefault(&c.ClipGradient, DefaultClipGradient)
	for _, p := range []struct {
		name     string
		v        float64
		positive bool
	}{
		{"optimizer learning rate", o.LearningRate, true},
		{"optimizer epsilon", o.Epsilon, o.Kind == MLPOptimizerAdam},
		{"l2", c.L2, false},
		{"clip gradient", c.ClipGradient, true},
	} {
		if math.IsNaN(p.v) || math.IsInf(p.v, 0) || p.v < 0 || (p.positive && p.v == 0) {
			want := "non-negative"
			if p.positive {
				want = "positive"
			}
			return c, fmt.Errorf("models: mlp %s: must be finite and %s, got %v", p.name, want, p.v)
		}
	}
	if o.Kind == MLPOptimizerAdam {
		for _, p := range []struct {
			name string
			v    float64
		}{{"beta1", o.Beta1}, {"beta2", o.Beta2}} {
			if !(p.v > 0 && p.v < 1) {
				return c, fmt.Errorf("models: mlp optimizer %s: must be in (0, 1), got %v", p.name, p.v)
			}
		}
	}
	units := c.Classes
	for _, w := range c.Hidden {
		units += w
	}
	if n := int64(c.BatchSize) * int64(units); n > MaxMLPBatchValues {
		return c, fmt.Errorf("models: mlp batch size, hidden: %d rows × %d units, more than %d", c.BatchSize, units, MaxMLPBatchValues)
	}
	if n := c.paramCount(); n > MaxMLPParams {
		return c, fmt.Errorf("models: mlp hidden, hash bits: %d weights, more than %d", n, MaxMLPParams)
	}
	return c, nil
}

// inputs is the width of the first layer's input: dense values then hash
// buckets.
func (c *MLPConfig) inputs() int { return c.NumDense + 1<<c.HashBits }

// widths returns the layer sizes: inputs, the hidden widths, and Classes.
func (c *MLPConfig) widths() []int {
	w := append([]int{c.inputs()}, c.Hidden...)
	return append(w, c.Classes)
}

// paramCount is the number of weights and intercepts, computed without
// overflow for any resolved sizes.
func (c *MLPConfig) paramCount() int64 {
	w := c.widths()
	var n int64
	for l := 1; l < len(w); l++ {
		n += int64(w[l-1])*int64(w[l]) + int64(w[l])
	}
	return n
}

// equal reports whether two resolved configurations are the same.
func (c *MLPConfig) equal(o *MLPConfig) bool { return reflect.DeepEqual(c, o) }
