package app

import (
	"slices"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// openText prepares what the free-text stages of every partition share:
// the text PII findings counter, and stages.text.model's tokenizer and
// ONNX Runtime sessions (closed at Close). A binary built without ONNX
// Runtime fails here for a spec with a text model, naming the field.
func (a *App) openText() error {
	t := &a.spec.Stages.Text
	if len(t.PII) > 0 {
		m, err := stages.NewTextPIIMetrics(a.reg)
		if err != nil {
			return err
		}
		a.chain.TextPIIMetrics = m
	}
	if t.Model != nil {
		m, err := stages.OpenTextModel(a.spec)
		if err != nil {
			return err
		}
		a.chain.TextModel = m
		a.closers = append(a.closers, m.Close)
		a.log.Info("text model", "path", t.Model.Path, "task", t.Model.Task, "provider", t.Model.ExecutionProvider, "onnxruntime", m.Library().Version)
	}
	return nil
}

// DemoSpecOf is the spec `driftline demo` runs: the embedded demo spec
// when path is "", else the spec file at path (an example of
// deploy/examples, run with its seeded scenario).
func DemoSpecOf(path string) (*pipeline.Spec, error) {
	if path == "" {
		return ParseSpec("demo.yaml (embedded)", DemoSpec)
	}
	return LoadSpec(path)
}

// Topics lists every topic spec names, each once: input, predictions,
// DLQ, labels, alerts and the alert router's poison queue, audit, and the
// rollout's shadow topic.
func Topics(spec *pipeline.Spec) []string {
	t := spec.Topics
	all := []string{t.Input, t.Predictions, t.DLQ, t.Labels, t.Alerts, t.Audit}
	if t.Alerts != "" {
		all = append(all, t.Alerts+".poison")
	}
	if spec.Rollout != nil {
		all = append(all, spec.Rollout.ShadowTopic)
	}
	var out []string
	for _, name := range all {
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}
