package ortengine

import (
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
)

// MLPTrainStep returns the training-step description of a resolved MLP
// configuration, as NewMLP runs it.
func MLPTrainStep(cfg models.MLPConfig) onnxexport.TrainStep {
	o := cfg.Optimizer
	s := onnxexport.TrainStep{
		Name:  "driftline-mlp-step",
		Sizes: append(append([]int{cfg.NumDense + 1<<cfg.HashBits}, cfg.Hidden...), cfg.Classes),
		Batch: cfg.BatchSize, Activation: onnxexport.ActivationReLU,
		Loss: onnxexport.LossSquared, Optimizer: onnxexport.OptimizerAdam,
		LearningRate: o.LearningRate, Beta1: o.Beta1, Beta2: o.Beta2, Epsilon: o.Epsilon,
		L2: cfg.L2, ClipGradient: cfg.ClipGradient,
	}
	if cfg.Activation == models.ActivationTanh {
		s.Activation = onnxexport.ActivationTanh
	}
	switch cfg.Link {
	case models.LinkSigmoid:
		s.Loss = onnxexport.LossLog
	case models.LinkSoftmax:
		s.Loss = onnxexport.LossCrossEntropy
	}
	if o.Kind == models.MLPOptimizerSGD {
		s.Optimizer = onnxexport.OptimizerSGD
	}
	return s
}
