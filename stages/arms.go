package stages

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/pipeline"
)

// Arms is the set of models serving one data plane:
//
//   - the champion serves the predictions topic (always set);
//   - the canary, when set and CanaryPercent > 0, serves that share of keys
//     instead of the champion, sticky by rollout.InCanary of the routing key
//     (the entity field when the spec has entity aggregates, else the event
//     id); its predictions go to the predictions topic with arm "canary" and
//     its own version;
//   - the shadow, when set, scores every event; its predictions go to the
//     shadow topic only, never to the predictions topic, with arm "shadow".
//
// Arms is safe for concurrent use. Set and SetCanaryPercent swap atomically:
// a Score stage loads the arms once per batch, so partition loops pick up a
// change on their next batch, without a restart, and a batch never mixes two
// champions.
type Arms struct {
	champion atomic.Pointer[ServedModel]
	canary   atomic.Pointer[ServedModel]
	shadow   atomic.Pointer[ServedModel]
	percent  atomic.Int32
}

// NewArms serves champion alone; champion must not be nil.
func NewArms(champion *ServedModel) *Arms {
	if champion == nil {
		panic("stages: NewArms with a nil champion")
	}
	a := &Arms{}
	a.champion.Store(champion)
	return a
}

// ArmsView is one consistent-enough reading of the arms: each pointer is
// read atomically (a concurrent Set of another arm may or may not show).
type ArmsView struct {
	Champion, Canary, Shadow *ServedModel
	// CanaryPercent is the share of keys routed to Canary, in [0, 100].
	CanaryPercent int
}

// Load returns the current arms.
func (a *Arms) Load() ArmsView {
	return ArmsView{Champion: a.champion.Load(), Canary: a.canary.Load(), Shadow: a.shadow.Load(), CanaryPercent: int(a.percent.Load())}
}

// Champion returns the current champion.
func (a *Arms) Champion() *ServedModel { return a.champion.Load() }

// Set puts m on arm (ArmChampion, ArmCanary or ArmShadow); m's Arm must be
// arm. A nil m clears the canary or the shadow; the champion cannot be
// cleared.
func (a *Arms) Set(arm string, m *ServedModel) error {
	if m != nil && m.Arm != arm {
		return fmt.Errorf("arms: model %s version %s is for arm %q, not %q", m.Name, m.Version, m.Arm, arm)
	}
	switch arm {
	case ArmChampion:
		if m == nil {
			return fmt.Errorf("arms: the champion cannot be cleared")
		}
		a.champion.Store(m)
	case ArmCanary:
		a.canary.Store(m)
	case ArmShadow:
		a.shadow.Store(m)
	default:
		return fmt.Errorf("arms: unknown arm %q (want champion, canary or shadow)", arm)
	}
	return nil
}

// SetCanaryPercent sets the canary's share of keys, clamped to [0, 100].
func (a *Arms) SetCanaryPercent(p int) {
	a.percent.Store(int32(min(max(p, 0), 100)))
}

// ByVersion returns the served (champion or canary) model with version v,
// or nil: the model a label for a prediction of v teaches. Shadow
// predictions are not cached for the label join, so the shadow never
// matches (the label join teaches the shadow every joined label on its own
// pass, see LabelJoin.Arms).
func (a *Arms) ByVersion(v string) *ServedModel {
	if m := a.champion.Load(); m != nil && m.Version == v {
		return m
	}
	if m := a.canary.Load(); m != nil && m.Version == v {
		return m
	}
	return nil
}

// served is ByVersion on this reading of the arms.
func (v *ArmsView) served(version string) *ServedModel {
	switch {
	case v.Champion != nil && v.Champion.Version == version:
		return v.Champion
	case v.Canary != nil && v.Canary.Version == version:
		return v.Canary
	}
	return nil
}

// armOf is the arm that serves version in this reading of the arms,
// ArmChampion or ArmCanary, or "" when none does (a retired version). The
// shadow is not a serving arm: its predictions are never cached.
func (v *ArmsView) armOf(version string) string {
	switch v.served(version) {
	case nil:
		return ""
	case v.Champion:
		return ArmChampion
	}
	return ArmCanary
}

// Route returns the model serving key: the canary when it is set and key
// falls in its share, else the champion.
func (v *ArmsView) Route(key []byte) *ServedModel {
	if v.Canary != nil && v.CanaryPercent > 0 && rollout.InCanary(key, v.CanaryPercent) {
		return v.Canary
	}
	return v.Champion
}

// NewScoreWithArms builds the score stage over arms: each batch is scored
// by the arms loaded at its start (see Arms). Predictions of the champion
// and the canary go to topics.predictions; the shadow's, when a shadow is
// set, go to shadowTopic ("" drops them: a shadow without a topic only
// scores). Observe sees b.Scores as served (champion or canary per row),
// and Versions tells which version served each row.
func NewScoreWithArms(spec *pipeline.Spec, arms *Arms, shadowTopic, keyID string) *Score {
	s := NewScore(spec, arms.Champion(), keyID)
	s.arms, s.shadowTopic = arms, shadowTopic
	s.keyCol = s.idCol
	if e := spec.Stages.Featurize.Entity; e != nil && e.Field != "" {
		s.keyCol = spec.FieldIndex(e.Field)
	}
	return s
}

// Versions returns, during Observe, the version that served each row of
// the batch (parallel to b.Scores), or nil for a stage without arms, whose
// rows are all its one model's.
func (s *Score) Versions() []string {
	if s.arms == nil {
		return nil
	}
	return s.versions
}

// Served says which model served each row of a scored batch, and under
// which rollout step: the label join caches it with each prediction, so
// that a label's outcome counts for the step that served the prediction
// (Outcome.ServedArm, Outcome.CanaryPercent), not the step in force when
// the label comes.
type Served struct {
	// Versions is the version per row (nil: the join's model for all).
	Versions []string
	// Arms is the arm per row, ArmChampion or ArmCanary (nil: the
	// champion for all).
	Arms []string
	// CanaryPercent is the canary's share of keys when the batch was
	// scored.
	CanaryPercent int
}

// Served returns, during Observe, which model served each row and the
// canary share of the batch; the zero Served for a stage without arms.
func (s *Score) Served() Served {
	if s.arms == nil {
		return Served{}
	}
	return Served{Versions: s.versions, Arms: s.armNames, CanaryPercent: s.percent}
}

// scoreArms scores b with the arms: the champion scores every row, the
// canary rescores the rows routed to it, and the shadow scores every row
// into its own records.
func (s *Score) scoreArms(ctx context.Context, b *pipeline.Batch) error {
	view := s.arms.Load()
	fb := &b.Features
	n := fb.Len()
	if err := view.Champion.Predict(b.Scores, &s.rows); err != nil {
		return fmt.Errorf("score: %s: %w", ArmChampion, err)
	}
	s.served, s.versions, s.armNames = s.served[:0], s.versions[:0], s.armNames[:0]
	s.percent = view.CanaryPercent
	var canaryRows []int
	var key []byte
	for _, i := range fb.Row {
		m := view.Champion
		if view.Canary != nil && view.CanaryPercent > 0 {
			key = appendEventID(key[:0], b, s.keyCol, i)
			m = view.Route(key)
		}
		if m == view.Canary {
			canaryRows = append(canaryRows, len(s.served))
		}
		s.served = append(s.served, m)
		s.versions = append(s.versions, m.Version)
		s.armNames = append(s.armNames, m.Arm)
	}
	if len(canaryRows) > 0 {
		sub := gatherRows(fb, canaryRows)
		scores := make([]float32, sub.N)
		if err := view.Canary.Predict(scores, &sub); err != nil {
			return fmt.Errorf("score: %s: %w", ArmCanary, err)
		}
		for k, j := range canaryRows {
			b.Scores[j] = scores[k]
		}
	}
	var shadow []float32
	if view.Shadow != nil && s.shadowTopic != "" {
		shadow = make([]float32, n)
		if err := view.Shadow.Predict(shadow, &s.rows); err != nil {
			return fmt.Errorf("score: %s: %w", ArmShadow, err)
		}
	}
	// A buffer from the batch's Pool, held until the batch is
	// acknowledged, as in Process: pending records point into it.
	s.buf = b.Pool.Get(s.bufCap)[:0]
	// Each arm's fragment (and warmth) is written once per batch.
	s.frags.reset()
	emit := func(topic string, m *ServedModel, i int, score float32) {
		start := len(s.buf)
		s.buf = appendEventID(s.buf, b, s.idCol, i)
		keyEnd := len(s.buf)
		s.buf = s.appendPrediction(s.buf, s.frags.of(m), b, i, score)
		// Records slice s.buf only once it has stopped growing (below).
		b.AppendOutput(i, pipeline.OutRecord{Topic: topic, Key: s.buf[start:keyEnd], Headers: s.keyHeader})
		s.ends = append(s.ends, [3]int{start, keyEnd, len(s.buf)})
	}
	first := len(b.Outputs)
	s.ends = s.ends[:0]
	for j, i := range fb.Row {
		emit(s.topic, s.served[j], i, b.Scores[j])
	}
	if shadow != nil {
		for j, i := range fb.Row {
			emit(s.shadowTopic, view.Shadow, i, shadow[j])
		}
	}
	for k, e := range s.ends {
		o := &b.Outputs[first+k]
		o.Key = s.buf[e[0]:e[1]:e[1]]
		o.Value = s.buf[e[1]:e[2]:e[2]]
	}
	b.Hold(s.buf)
	s.bufCap, s.buf = cap(s.buf), nil
	if s.Observe != nil {
		return s.Observe(ctx, b)
	}
	return nil
}

// gatherRows copies rows js of fb into a new block.
func gatherRows(fb *pipeline.FeatureBlock, js []int) models.Rows {
	r := models.Rows{N: len(js), NumDense: fb.NumDense, NumHashed: fb.NumHashed,
		Dense: make([]float32, 0, len(js)*fb.NumDense), Hashed: make([]int32, 0, len(js)*fb.NumHashed)}
	for _, j := range js {
		r.Dense = append(r.Dense, fb.Dense[j*fb.NumDense:(j+1)*fb.NumDense]...)
		r.Hashed = append(r.Hashed, fb.Hashed[j*fb.NumHashed:(j+1)*fb.NumHashed]...)
	}
	return r
}
