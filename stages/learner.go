package stages

import (
	"fmt"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// NewLearner builds the spec's online learner for the featurize stage's
// feature layout.
func NewLearner(spec *pipeline.Spec, fz *Featurize) (models.Learner, error) {
	cfg := models.LinearConfig{
		NumDense:  fz.NumDense(),
		NumHashed: fz.NumHashed(),
		L1:        spec.Model.L1,
		L2:        spec.Model.L2,
	}
	if cfg.NumHashed > 0 {
		cfg.HashBits = spec.Stages.Featurize.HashBits
	}
	switch spec.Model.Kind {
	case "logistic":
		cfg.Link = models.LinkSigmoid
	case "softmax":
		cfg.Link, cfg.Classes = models.LinkSoftmax, spec.Model.Classes
	case "linear":
		cfg.Link = models.LinkIdentity
	default:
		return nil, fmt.Errorf("model.kind: unknown kind %q", spec.Model.Kind)
	}
	switch spec.Model.Optimizer {
	case "", "sgd":
		cfg.Optimizer.Kind = models.OptimizerSGD
	case "adagrad":
		cfg.Optimizer.Kind = models.OptimizerAdaGrad
	case "ftrl":
		cfg.Optimizer.Kind = models.OptimizerFTRL
	default:
		return nil, fmt.Errorf("model.optimizer: unknown optimizer %q", spec.Model.Optimizer)
	}
	cfg.Optimizer.LearningRate = spec.Model.LearnRate
	l, err := models.NewLinear(cfg)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return l, nil
}
