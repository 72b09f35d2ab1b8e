package models_test

import (
	"fmt"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/testkit/learnersuite"
)

// optimizers are the optimizer settings every learner is checked with.
var optimizers = []struct {
	name string
	opt  models.OptimizerConfig
	l1   float64
	l2   float64
}{
	{name: "sgd-constant", opt: models.OptimizerConfig{Kind: models.OptimizerSGD}},
	{name: "sgd-invscaling", opt: models.OptimizerConfig{Kind: models.OptimizerSGD, Schedule: models.ScheduleInverseScaling, LearningRate: 1}},
	{name: "sgd-optimal-l2", opt: models.OptimizerConfig{Kind: models.OptimizerSGD, Schedule: models.ScheduleOptimal, ScheduleAlpha: 0.01}, l2: 1e-5},
	{name: "adagrad", opt: models.OptimizerConfig{Kind: models.OptimizerAdaGrad}},
	{name: "ftrl", opt: models.OptimizerConfig{Kind: models.OptimizerFTRL}},
	{name: "ftrl-l1-l2", opt: models.OptimizerConfig{Kind: models.OptimizerFTRL, LearningRate: 0.5}, l1: 1e-3, l2: 1e-3},
}

var links = []struct {
	link    models.Link
	classes int
}{
	{models.LinkIdentity, 1},
	{models.LinkSigmoid, 1},
	{models.LinkSoftmax, 3},
}

func TestConformance(t *testing.T) {
	for _, lk := range links {
		for _, o := range optimizers {
			cfg := models.LinearConfig{
				Link: lk.link, Classes: lk.classes,
				NumDense: 4, NumHashed: 3, HashBits: 8,
				Optimizer: o.opt, L1: o.l1, L2: o.l2,
			}
			if lk.link == models.LinkIdentity && o.opt.Schedule == models.ScheduleOptimal {
				// Bottou's t0 assumes a bounded loss gradient; squared loss
				// diverges early unless α is large (as in scikit-learn).
				cfg.Optimizer.ScheduleAlpha = 0.1
			}
			t.Run(fmt.Sprintf("%s/%s", lk.link, o.name), func(t *testing.T) {
				t.Parallel()
				learnersuite.Run(t, func() models.Learner {
					l, err := models.NewLinear(cfg)
					if err != nil {
						t.Fatalf("new learner: %v", err)
					}
					return l
				})
			})
		}
	}
}
