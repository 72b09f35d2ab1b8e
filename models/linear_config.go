package models

import (
	"fmt"
	"math"
)

// OptimizerKind names the per-coordinate update rule of a linear learner.
type OptimizerKind uint8

const (
	// OptimizerSGD is plain stochastic gradient descent with a learning-rate
	// Schedule: w ← w − η_t·(g + L2·w).
	OptimizerSGD OptimizerKind = iota
	// OptimizerAdaGrad scales each coordinate's step by its accumulated
	// squared gradients (Duchi et al. 2011), as River's optim.AdaGrad:
	// G ← G + g², w ← w − η·g/√(G+ε), with g including the L2 term.
	OptimizerAdaGrad
	// OptimizerFTRL is FTRL-Proximal with per-coordinate learning rates and
	// L1/L2 regularization (McMahan et al. 2013, "Ad Click Prediction: a
	// View from the Trenches", Algorithm 1).
	OptimizerFTRL
)

// String names the optimizer as it appears in specs and benchmark names.
func (k OptimizerKind) String() string {
	switch k {
	case OptimizerSGD:
		return "sgd"
	case OptimizerAdaGrad:
		return "adagrad"
	case OptimizerFTRL:
		return "ftrl"
	}
	return "unknown"
}

// Schedule is SGD's learning rate as a function of the number t of rows
// learned so far (t = 0 for the first row).
type Schedule uint8

const (
	// ScheduleConstant keeps η_t = LearningRate.
	ScheduleConstant Schedule = iota
	// ScheduleInverseScaling is η_t = LearningRate / (t+1)^PowerT, as River's
	// optim.schedulers.InverseScaling and scikit-learn's "invscaling".
	ScheduleInverseScaling
	// ScheduleOptimal is η_t = 1 / (ScheduleAlpha·(t0+t)), with t0 chosen by
	// Bottou's heuristic from the learner's loss, as River's
	// optim.schedulers.Optimal and scikit-learn's "optimal".
	ScheduleOptimal
)

// String names the schedule as it appears in specs and benchmark names.
func (s Schedule) String() string {
	switch s {
	case ScheduleConstant:
		return "constant"
	case ScheduleInverseScaling:
		return "invscaling"
	case ScheduleOptimal:
		return "optimal"
	}
	return "unknown"
}

// OptimizerConfig configures a linear learner's optimizer. A zero field
// takes the default stated on it.
type OptimizerConfig struct {
	// Kind selects the update rule. Default OptimizerSGD.
	Kind OptimizerKind
	// LearningRate is SGD's η0, AdaGrad's η and FTRL's α. Defaults: 0.01
	// for SGD, 0.1 for AdaGrad, 0.05 for FTRL (River's defaults).
	LearningRate float64
	// Schedule is SGD's learning-rate schedule; other optimizers accept
	// only ScheduleConstant. Default ScheduleConstant.
	Schedule Schedule
	// PowerT is ScheduleInverseScaling's exponent. Default 0.5.
	PowerT float64
	// ScheduleAlpha is ScheduleOptimal's α. Default 1e-4.
	ScheduleAlpha float64
	// Epsilon is AdaGrad's ε. Default 1e-8.
	Epsilon float64
	// Beta is FTRL's β. Default 1.
	Beta float64
}

// LinearConfig configures a linear learner: binary logistic regression
// (LinkSigmoid), multinomial softmax regression (LinkSoftmax) or linear
// regression (LinkIdentity). A zero field takes the default stated on it;
// NewLinear and Validate apply the defaults, then check the result.
type LinearConfig struct {
	// Link selects the learner. The zero value is LinkIdentity.
	Link Link
	// Classes is K: it must be in [2, MaxClasses] for LinkSoftmax; it defaults to, and
	// must be, 1 for the other links.
	Classes int
	// NumDense is the number of dense values per row (≥ 0).
	NumDense int
	// NumHashed is the number of hashed indices per row (≥ 0).
	NumHashed int
	// HashBits sets the 2^HashBits hash buckets, in [0, 28]. Default 18
	// when NumHashed > 0, else 0. Memory is about 4·K·2^HashBits bytes of
	// weights, plus 8 (AdaGrad) or 16 (FTRL) bytes per weight of state.
	HashBits int
	// Optimizer selects and tunes the update rule.
	Optimizer OptimizerConfig
	// L1 is the L1 strength; only OptimizerFTRL supports it. Default 0.
	L1 float64
	// L2 is the L2 strength, applied to the weights of the coordinates
	// present in a row (never to the intercepts). Default 0.
	L2 float64
	// ClipGradient bounds the loss gradient with respect to each margin to
	// [−ClipGradient, ClipGradient], which keeps regression on extreme
	// targets finite (River's clip_gradient). Default 1e12.
	ClipGradient float64
}

// Defaults of LinearConfig and OptimizerConfig.
const (
	DefaultHashBits       = 18
	MaxHashBits           = 28
	MaxClasses            = 1 << 16
	DefaultSGDRate        = 0.01
	DefaultAdaGradRate    = 0.1
	DefaultFTRLAlpha      = 0.05
	DefaultFTRLBeta       = 1.0
	DefaultPowerT         = 0.5
	DefaultScheduleAlpha  = 1e-4
	DefaultAdaGradEpsilon = 1e-8
	DefaultClipGradient   = 1e12
)

// Validate reports whether the configuration, with its defaults applied, is
// usable by NewLinear.
func (c LinearConfig) Validate() error {
	_, err := c.resolve()
	return err
}

// resolve returns the configuration with its defaults applied, or the first
// problem found.
func (c LinearConfig) resolve() (LinearConfig, error) {
	switch c.Link {
	case LinkIdentity, LinkSigmoid:
		if c.Classes == 0 {
			c.Classes = 1
		}
		if c.Classes != 1 {
			return c, fmt.Errorf("models: link %s needs classes 1, got %d", c.Link, c.Classes)
		}
	case LinkSoftmax:
		if c.Classes < 2 || c.Classes > MaxClasses {
			return c, fmt.Errorf("models: link softmax needs classes in [2, %d], got %d", MaxClasses, c.Classes)
		}
	default:
		return c, fmt.Errorf("models: unknown link %d", c.Link)
	}
	if c.NumDense < 0 || c.NumHashed < 0 {
		return c, fmt.Errorf("models: negative feature count (dense %d, hashed %d)", c.NumDense, c.NumHashed)
	}
	if c.HashBits == 0 && c.NumHashed > 0 {
		c.HashBits = DefaultHashBits
	}
	if c.HashBits < 0 || c.HashBits > MaxHashBits {
		return c, fmt.Errorf("models: hash bits %d outside [0, %d]", c.HashBits, MaxHashBits)
	}
	o := &c.Optimizer
	switch o.Kind {
	case OptimizerSGD:
		orDefault(&o.LearningRate, DefaultSGDRate)
	case OptimizerAdaGrad:
		orDefault(&o.LearningRate, DefaultAdaGradRate)
	case OptimizerFTRL:
		orDefault(&o.LearningRate, DefaultFTRLAlpha)
	default:
		return c, fmt.Errorf("models: unknown optimizer %d", o.Kind)
	}
	orDefault(&o.PowerT, DefaultPowerT)
	orDefault(&o.ScheduleAlpha, DefaultScheduleAlpha)
	orDefault(&o.Epsilon, DefaultAdaGradEpsilon)
	orDefault(&o.Beta, DefaultFTRLBeta)
	orDefault(&c.ClipGradient, DefaultClipGradient)
	if o.Schedule > ScheduleOptimal {
		return c, fmt.Errorf("models: unknown schedule %d", o.Schedule)
	}
	if o.Kind != OptimizerSGD && o.Schedule != ScheduleConstant {
		return c, fmt.Errorf("models: schedule %s needs the sgd optimizer, not %s", o.Schedule, o.Kind)
	}
	if o.Kind != OptimizerFTRL && c.L1 != 0 {
		return c, fmt.Errorf("models: l1 needs the ftrl optimizer, not %s", o.Kind)
	}
	for _, p := range []struct {
		name     string
		v        float64
		positive bool
	}{
		{"learning rate", o.LearningRate, true},
		{"power t", o.PowerT, true},
		{"schedule alpha", o.ScheduleAlpha, true},
		{"epsilon", o.Epsilon, true},
		{"beta", o.Beta, true},
		{"clip gradient", c.ClipGradient, true},
		{"l1", c.L1, false},
		{"l2", c.L2, false},
	} {
		if math.IsNaN(p.v) || math.IsInf(p.v, 0) || p.v < 0 || (p.positive && p.v == 0) {
			want := "non-negative"
			if p.positive {
				want = "positive"
			}
			return c, fmt.Errorf("models: %s must be finite and %s, got %v", p.name, want, p.v)
		}
	}
	return c, nil
}

func orDefault(v *float64, def float64) {
	if *v == 0 {
		*v = def
	}
}
