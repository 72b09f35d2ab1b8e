package models

// WarmLearner is a Learner that knows whether it has learned anything:
// Warm is false for a learner fresh from its constructor, whose
// predictions are its untrained defaults (0.5 for a logistic model), and
// true once it has learned from at least one labelled row. Snapshots keep
// it: a restored learner is as warm as the one that was saved.
type WarmLearner interface {
	Learner
	Warm() bool
}

// IsWarm reports whether l has learned from at least one labelled row. A
// learner that cannot tell (a model the user brings, trained elsewhere)
// counts as warm.
func IsWarm(l Learner) bool {
	if w, ok := l.(WarmLearner); ok {
		return w.Warm()
	}
	return true
}

// Warm reports whether the model has learned from any row.
func (l *Linear) Warm() bool { return l.steps > 0 }

// Warm reports whether the network has taken an optimizer step: rows
// waiting for a full batch have not changed it yet.
func (m *MLP) Warm() bool { return m.state.Steps > 0 }

// Warm reports whether the tree has learned from any row.
func (h *HoeffdingTreeClassifier) Warm() bool { return h.t.weightSeen > 0 }

// Warm reports whether the tree has learned from any row.
func (h *HoeffdingAdaptiveTreeClassifier) Warm() bool { return h.t.weightSeen > 0 }

// Warm reports whether the tree has learned from any row.
func (h *HoeffdingTreeRegressor) Warm() bool { return h.t.weightSeen > 0 }

// Warm reports whether the forest has learned from any row.
func (a *ARFClassifier) Warm() bool { return a.f.started }

// Warm reports whether the forest has learned from any row.
func (a *ARFRegressor) Warm() bool { return a.f.started }
