package app

import "github.com/driftline/driftline/stages"

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
