package models_test

import (
	"fmt"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/testkit/learnersuite"
)

// TestMLPConformance runs the learner suite on the MLP for every head,
// both optimizers and both activations, with one and two hidden layers, on
// the suite's default concept for a non-linear learner: a depth-3 tree over
// thresholds 0.1 standard deviations from the nearest rows. After one pass
// over 60,000 rows an MLP, which approximates each threshold with a ramp,
// still errs near them: the configurations here reach 0.98–0.999 accuracy
// and R² 0.88–0.99, so the targets are 0.97 and 0.85 — well above what a
// linear learner reaches on the same stream (accuracy 0.83–0.90, R² 0.43
// with AdaGrad), so a network that does not learn the nonlinearity fails.
func TestMLPConformance(t *testing.T) {
	for _, lk := range links {
		for _, opt := range []models.MLPOptimizerConfig{
			{Kind: models.MLPOptimizerAdam, LearningRate: 0.01},
			{Kind: models.MLPOptimizerSGD, LearningRate: 0.3},
		} {
			for _, act := range []models.Activation{models.ActivationReLU, models.ActivationTanh} {
				hidden := []int{32, 32}
				if act == models.ActivationTanh {
					hidden = []int{32}
				}
				if opt.Kind == models.MLPOptimizerSGD && lk.link == models.LinkIdentity {
					opt.LearningRate = 0.1 // squared loss: unbounded gradients
				}
				cfg := models.MLPConfig{
					Link: lk.link, Classes: lk.classes,
					NumDense: 4, NumHashed: 3, HashBits: 8,
					Hidden: hidden, Activation: act, Optimizer: opt, L2: 1e-5, Seed: 7,
				}
				t.Run(fmt.Sprintf("%s/%s/%s", lk.link, opt.Kind, act), func(t *testing.T) {
					t.Parallel()
					target := 0.97
					if lk.link == models.LinkIdentity {
						target = 0.85
					}
					learnersuite.Run(t, func() models.Learner {
						l, err := models.NewMLP(cfg)
						if err != nil {
							t.Fatalf("new mlp: %v", err)
						}
						return l
					}, learnersuite.WithTarget(target))
				})
			}
		}
	}
}
