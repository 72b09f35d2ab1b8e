package stages

import (
	"fmt"
	"strconv"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/ortengine"
	"github.com/driftline/driftline/pipeline"
)

// The engines that run an MLP's training step (model.engine).
const (
	EngineGo          = "go"
	EngineONNXRuntime = "onnxruntime"
)

// LearnerSpecOf is the learner the spec's model section describes, as the
// models factory takes it: model.kind with model.params, and the linear
// learners' own fields (optimizer, learn_rate, l1, l2) as their params.
// paths maps each param to the spec field that set it, so that an error
// naming a param can name the line.
func LearnerSpecOf(spec *pipeline.Spec) (s models.LearnerSpec, paths map[string]string) {
	m := &spec.Model
	s = models.LearnerSpec{Kind: m.Kind, Params: map[string]string{}}
	paths = map[string]string{}
	for k, v := range m.Params {
		s.Params[k], paths[k] = v, "model.params."+k
	}
	legacy := func(param, path, value string) {
		if value != "" {
			s.Params[param], paths[param] = value, path
		}
	}
	legacy("optimizer", "model.optimizer", m.Optimizer)
	if m.LearnRate != 0 {
		legacy("learning_rate", "model.learn_rate", strconv.FormatFloat(m.LearnRate, 'g', -1, 64))
	}
	if m.L1 != 0 {
		legacy("l1", "model.l1", strconv.FormatFloat(m.L1, 'g', -1, 64))
	}
	if m.L2 != 0 {
		legacy("l2", "model.l2", strconv.FormatFloat(m.L2, 'g', -1, 64))
	}
	return s, paths
}

// modelClasses is the class count a classification model is built for:
// model.classes, at least 2.
func modelClasses(spec *pipeline.Spec) int { return max(spec.Model.Classes, 2) }

// NewLearner builds the spec's online learner for the featurize stage's
// feature layout: any family of the models factory (model.kind and
// model.params). An MLP with model.engine onnxruntime runs its training
// step on ONNX Runtime (on CUDA with model.execution_provider cuda; it
// fails, naming the field, where CUDA is absent).
func NewLearner(spec *pipeline.Spec, fz *Featurize) (models.Learner, error) {
	s, _ := LearnerSpecOf(spec)
	sh := models.Shape{NumDense: fz.NumDense(), NumHashed: fz.NumHashed()}
	if sh.NumHashed > 0 {
		sh.HashBits = spec.Stages.Featurize.HashBits
	}
	if spec.Model.Engine == EngineONNXRuntime {
		cfg, err := s.MLPConfig(sh, modelClasses(spec))
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		l, err := ortengine.NewMLP(ortengine.Config{ExecutionProvider: spec.Model.ExecutionProvider, DeviceID: spec.Model.DeviceID}, cfg)
		if err != nil {
			return nil, fmt.Errorf("model.engine onnxruntime: %w", err)
		}
		return l, nil
	}
	l, err := models.NewLearnerFromSpec(s, sh, modelClasses(spec))
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	return l, nil
}
