package stages

import "github.com/driftline/driftline/models"

// StateMark says which learner state a ServedModel holds, in the terms of
// the learner-state log (topics.model_state, models/governance): the lease
// epoch and publish sequence of the record it was restored from (both 0
// for a state that never came from the log: a registry snapshot, the
// spec's fresh learner), and Learned, the labels this version has learned
// in all (restored with the state; Learn adds each row it is given).
type StateMark struct {
	Epoch, Seq int64
	Learned    int64
}

// Newer reports whether m comes from a later publish than o: a later lease
// epoch, or the same epoch and a later sequence.
func (m StateMark) Newer(o StateMark) bool {
	if m.Epoch != o.Epoch {
		return m.Epoch > o.Epoch
	}
	return m.Seq > o.Seq
}

// Mark returns the model's state mark, its Learned count up to date.
func (s *ServedModel) Mark() StateMark {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark
}

// Swap serves l, a restored learner state marked m, from the next Predict
// or Learn call on: a score batch (one Predict call per arm) sees either
// the old state or the new one, never a mix. The ServedModel owns l
// afterwards.
func (s *ServedModel) Swap(l models.Learner, m StateMark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model, s.mark = l, m
}

// Stamp sets the epoch and sequence of the publish that now holds the
// model's state (the writer, after a publish commits), keeping Learned.
func (s *ServedModel) Stamp(epoch, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mark.Epoch, s.mark.Seq = epoch, seq
}

// SnapshotMarked returns a copy of the model and its mark, taken together.
func (s *ServedModel) SnapshotMarked() (models.Learner, StateMark) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model.Clone(), s.mark
}

// NewServedModelMarked wraps a restored learner state for serving.
func NewServedModelMarked(name, version, arm string, l models.Learner, m StateMark) *ServedModel {
	return &ServedModel{Name: name, Version: version, Arm: arm, model: l, mark: m}
}
