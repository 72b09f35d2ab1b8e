package models

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// mlpBuilder registers the online MLP as a factory kind: a classifier
// (sigmoid or softmax head) or, with link LinkIdentity, a regressor.
func mlpBuilder(link Link) func() *builder {
	return func() *builder {
		var c MLPConfig
		o := &c.Optimizer
		b := &builder{}
		b.params = []param{
			p("hidden", strconv.Itoa(DefaultMLPWidth), "hidden layer widths: one or two, comma-separated (e.g. 64,32)", parseWidths(&c.Hidden)),
			p("activation", "relu", "relu or tanh", parseEnum(&c.Activation, "relu", "tanh")),
			p("optimizer", "adam", "adam or sgd", parseEnum(&o.Kind, "adam", "sgd")),
			p("learning_rate", "0.001 (adam), 0.01 (sgd)", "the optimizer's rate", parseFloat(&o.LearningRate)),
			p("beta1", "0.9", "Adam's first-moment decay", parseFloat(&o.Beta1)),
			p("beta2", "0.999", "Adam's second-moment decay", parseFloat(&o.Beta2)),
			p("epsilon", "1e-8", "Adam's ε", parseFloat(&o.Epsilon)),
			p("batch_size", strconv.Itoa(DefaultMLPBatchSize), "rows per optimizer step (Learn buffers the rest)", parseNonZero(&c.BatchSize)),
			p("l2", "0", "L2 strength on the weights", parseFloatZero(&c.L2)),
			p("clip_gradient", "1e12", "bound on the squared loss's output gradient (regression)", parseFloat(&c.ClipGradient)),
			p("seed", "0", "seed of the weight initialization", parseUint64(&c.Seed)),
		}
		b.check = func() error { _, err := mlpConfigFor(c, link, nominalShape, 2); return err }
		b.build = func(sh Shape, classes int) (Learner, error) {
			cfg, err := mlpConfigFor(c, link, sh, classes)
			if err != nil {
				return nil, err
			}
			return NewMLP(cfg)
		}
		b.mlp = func(sh Shape, classes int) (MLPConfig, error) { return mlpConfigFor(c, link, sh, classes) }
		return b
	}
}

// mlpConfigFor completes c for a row shape and class count and validates it.
func mlpConfigFor(c MLPConfig, link Link, sh Shape, classes int) (MLPConfig, error) {
	c.Hidden = append([]int(nil), c.Hidden...)
	c.NumDense, c.NumHashed, c.HashBits = sh.NumDense, sh.NumHashed, sh.HashBits
	c.Link, c.Classes = link, 1
	if link != LinkIdentity {
		if classes < 2 {
			return c, fmt.Errorf("classification needs at least 2 classes, got %d", classes)
		}
		if classes > 2 {
			c.Link, c.Classes = LinkSoftmax, classes
		}
	}
	return c, c.Validate()
}

// parseWidths parses "32" or "64,32" into hidden layer widths.
func parseWidths(dst *[]int) func(string) error {
	return func(v string) error {
		var out []int
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return errors.New("not a comma-separated list of positive widths")
			}
			out = append(out, n)
		}
		*dst = out
		return nil
	}
}

// MLPConfig returns the configuration an mlp or mlp_regressor spec gives
// for rows of shape sh and classes classes, for callers that run the MLP's
// step elsewhere (ortengine.NewMLP runs it on ONNX Runtime).
func (s LearnerSpec) MLPConfig(sh Shape, classes int) (MLPConfig, error) {
	b, err := s.apply()
	if err != nil {
		return MLPConfig{}, err
	}
	if b.mlp == nil {
		return MLPConfig{}, fmt.Errorf("model kind %s is not an MLP", s.Kind)
	}
	return b.mlp(sh, classes)
}
