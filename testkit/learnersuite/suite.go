// Package learnersuite is the conformance suite that every models.Learner
// passes, in the spirit of River's check_estimator. A learner's test calls
// Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		learnersuite.Run(t, func() models.Learner { l, _ := models.NewLinear(cfg); return l })
//	}
//
// The suite checks the contract that models.Learner documents, for every
// learner:
//   - learning a batch of n rows equals n single-row calls, byte for byte
//     (unless the learner is a models.MiniBatchLearner);
//   - the same configuration and stream give the same state, byte for byte
//     (a learner with a seed must use the same one on every call to
//     newLearner);
//   - a snapshot round-trip, through the learner's UnmarshalBinary and
//     through models.UnmarshalLearner, gives identical predictions and
//     training, and a damaged snapshot is rejected;
//   - a clone is independent;
//   - permuting the hashed indices within rows changes nothing at all;
//   - every encoding of a missing value is the same (NaN, +Inf and −Inf; −1
//     and any other index out of range), and a row with every feature
//     missing gets sane outputs;
//   - the learner learns its concept: a separable stream to above 99%
//     accuracy (R² above 0.99 for regression) by default;
//   - extreme inputs (±1e30, ±MaxFloat32, ±Inf, NaN, out-of-range
//     indices) never give NaN or Inf;
//   - bad shapes and invalid labels are reported without partial learning.
//
// For a models.LinearModel it also checks what the weights promise:
//   - Predict agrees with the formula that Params describes (what the ONNX
//     exporter relies on);
//   - permuting the dense columns (for a learner trained on the permuted
//     columns) permutes the learned dense weights and keeps predictions, up
//     to float64 summation rounding;
//   - a missing feature contributes nothing, and its weight and scaler
//     statistics do not move.
package learnersuite

import (
	"testing"

	"github.com/driftline/driftline/models"
)

// Concept is the teacher that labels the suite's streams.
type Concept uint8

const (
	// ConceptLinear labels rows by a linear model over standardized dense
	// values and hash-bucket indicators. It is the default for a
	// models.LinearModel.
	ConceptLinear Concept = iota
	// ConceptAxisAligned labels rows by a depth-3 decision tree whose tests
	// are thresholds on standardized dense values and the presence of hash
	// buckets; no linear model separates its classes. It is the default
	// for every other learner.
	ConceptAxisAligned
)

// Option adjusts the suite for a learner.
type Option func(*options)

type options struct {
	concept    Concept
	conceptSet bool
	target     float64
}

// WithConcept selects the teacher of the learning check (and of every
// stream the suite draws).
func WithConcept(c Concept) Option {
	return func(o *options) { o.concept, o.conceptSet = c, true }
}

// WithTarget sets the accuracy (R² for LinkIdentity) that the learning
// check requires on a held-out stream after 60,000 rows. Default 0.99.
func WithTarget(min float64) Option {
	return func(o *options) { o.target = min }
}

// Run runs the suite as subtests of t. newLearner must return a fresh,
// untrained models.ShapedLearner with the same configuration on every call,
// with at least 2 dense values and 2 hashed indices per row and
// HashBits ≥ 6. The learner must be able to learn its concept's separable
// stream (60,000 rows over dense values of wildly different offsets and
// scales and 16 categories per hashed field) to the target.
func Run(t *testing.T, newLearner func() models.Learner, opts ...Option) {
	t.Helper()
	s := newSuite(t, newLearner, opts)
	t.Run("BatchEqualsSingleRows", s.batchEqualsSingleRows)
	t.Run("SameSeedSameState", s.sameSeedSameState)
	t.Run("SnapshotRoundTrip", s.snapshotRoundTrip)
	t.Run("SnapshotRejectsDamage", s.snapshotRejectsDamage)
	t.Run("CloneIsIndependent", s.cloneIsIndependent)
	t.Run("HashedOrderDoesNotMatter", s.hashedOrderDoesNotMatter)
	t.Run("MissingIsMissing", s.missingIsMissing)
	t.Run("LearnsConcept", s.learnsConcept)
	t.Run("ExtremeInputs", s.extremeInputs)
	t.Run("RejectsBadShapes", s.rejectsBadShapes)
	t.Run("SkipsInvalidLabels", s.skipsInvalidLabels)
	if s.linear {
		t.Run("PredictMatchesParams", s.predictMatchesParams)
		t.Run("DenseOrderPermutesWeights", s.denseOrderPermutesWeights)
		t.Run("MissingFeaturesKeepWeights", s.missingFeaturesKeepWeights)
	}
}

type suite struct {
	newLearner func() models.Learner
	linear     bool // the learner is a models.LinearModel
	link       models.Link
	k          int // outputs per row
	nd, nh     int
	bits       int
	concept    Concept
	target     float64
	teacher    teacher
}

func newSuite(t *testing.T, newLearner func() models.Learner, opts []Option) *suite {
	t.Helper()
	l := newLearner()
	shaped, ok := l.(models.ShapedLearner)
	if !ok {
		t.Fatalf("learnersuite needs a models.ShapedLearner; %T has no Shape method", l)
	}
	sh := shaped.Shape()
	if sh.NumDense < 2 || sh.NumHashed < 2 || sh.HashBits < 6 {
		t.Fatalf("learnersuite needs >= 2 dense, >= 2 hashed and hash bits >= 6; the learner has %d, %d, %d",
			sh.NumDense, sh.NumHashed, sh.HashBits)
	}
	_, linear := l.(models.LinearModel)
	o := options{target: 0.99}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.conceptSet && !linear {
		o.concept = ConceptAxisAligned
	}
	s := &suite{newLearner: newLearner, linear: linear, link: l.Link(), k: l.Classes(),
		nd: sh.NumDense, nh: sh.NumHashed, bits: sh.HashBits, concept: o.concept, target: o.target}
	s.teacher = newTeacher(s.k, s.nd, s.nh, s.bits)
	return s
}
