package app

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// LoadSpec reads and checks a pipeline spec file: pipeline's own checks,
// then each block whose fields another package owns (rollout.gate, which
// models/rollout defines and validates). Every error reads
// FILE:LINE: field.path: message.
func LoadSpec(path string) (*pipeline.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return ParseSpec(path, data)
}

// ParseSpec is LoadSpec for a spec in memory; name is used in errors.
// Once the YAML decodes, every problem is reported together: pipeline's
// rules between fields and the checks of the blocks other packages own.
func ParseSpec(name string, data []byte) (*pipeline.Spec, error) {
	spec, err := pipeline.DecodeSpec(name, data)
	if err != nil {
		return nil, err
	}
	if err := pipeline.JoinSorted(spec.Validate(), CheckSpec(spec)); err != nil {
		return nil, err
	}
	return spec, nil
}

// CheckSpec checks the blocks of spec that packages other than pipeline
// own; LoadSpec and ParseSpec call it. Call it again after changing such a
// block in code.
func CheckSpec(spec *pipeline.Spec) error {
	if err := checkModel(spec); err != nil {
		return err
	}
	if spec.Rollout == nil {
		return nil
	}
	_, _, err := RolloutGate(spec)
	return err
}

// checkModel checks model.kind and its params with the models factory, the
// one place that knows them; errors name the spec field that set each.
func checkModel(spec *pipeline.Spec) error {
	if spec.Model.ONNX != nil {
		return nil
	}
	ls, paths := stages.LearnerSpecOf(spec)
	err := ls.Validate()
	var pe *models.ParamError
	switch {
	case err == nil:
	case errors.Is(err, models.ErrUnknownKind):
		return spec.ErrAt("model.kind", "%v", err)
	case errors.As(err, &pe):
		path := paths[pe.Param]
		if path == "" {
			path = "model.params." + pe.Param
		}
		return spec.ErrAt(path, "%v", err)
	default:
		return spec.ErrAt("model.params", "%v", err)
	}
	if spec.Model.Threshold != nil {
		task, _ := ls.Task()
		if task != models.TaskClassification || spec.Model.Kind == "softmax" || spec.Model.Classes > 2 {
			return spec.ErrAt("model.threshold", "applies to binary models (a classifier of 2 classes, or model.onnx), not kind %s", spec.Model.Kind)
		}
	}
	if spec.Model.Engine == stages.EngineONNXRuntime {
		if _, err := ls.MLPConfig(models.Shape{NumDense: 1}, 2); err != nil {
			return spec.ErrAt("model.engine", "onnxruntime runs the MLP kinds' training step only: %v", err)
		}
	}
	return nil
}

// RolloutGate returns the spec's rollout gate with every default applied,
// and how often it is evaluated. A spec without a rollout.gate block gets
// the default gate. Errors name the field, positioned in the spec file.
func RolloutGate(spec *pipeline.Spec) (rollout.Gate, time.Duration, error) {
	var gs rollout.GateSpec
	if spec.Rollout != nil {
		if err := spec.DecodeBlock("rollout.gate", spec.Rollout.Gate, &gs); err != nil {
			return rollout.Gate{}, 0, err
		}
	}
	g, interval, err := gs.Resolve(isRegression(spec))
	if err != nil {
		fes := rollout.FieldErrors(err)
		errs := make([]error, 0, len(fes))
		for _, fe := range fes {
			msg := fe.Msg
			if fe.Field == "metric" && isRegression(spec) {
				msg += fmt.Sprintf(" (model.kind %s is a regression)", spec.Model.Kind)
			}
			errs = append(errs, spec.ErrAt("rollout.gate."+fe.Field, "%s", msg))
		}
		return rollout.Gate{}, 0, errors.Join(errs...)
	}
	if spec.Model.Classes > 2 && g.Metric != rollout.MetricAccuracy {
		// A multi-class model's served score is its predicted class, which
		// has no log loss or error (models.ServedScore).
		return rollout.Gate{}, 0, spec.ErrAt("rollout.gate.metric", "%s is not defined for a multi-class model (model.classes %d): use accuracy", g.Metric, spec.Model.Classes)
	}
	return g, interval, nil
}

// isBinary reports whether the spec's model is a classifier of two
// classes, whose served score is P(y=1).
func isBinary(spec *pipeline.Spec) bool {
	return !isRegression(spec) && spec.Model.Classes <= 2
}

// isRegression reports whether the spec's model predicts a number rather
// than a class.
func isRegression(spec *pipeline.Spec) bool {
	ls, _ := stages.LearnerSpecOf(spec)
	task, err := ls.Task()
	return err == nil && task == models.TaskRegression
}
