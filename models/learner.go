package models

import "errors"

// Learner is an online model that scores batches of rows now and learns
// from their labels later: a linear model, a tree, a forest or a network.
//
// Inputs. A row's dense values are raw (a learner scales or bins them
// itself). A dense value that is NaN or ±Inf is missing, and every missing
// encoding is the same: a row with NaN, +Inf or −Inf in a column is
// predicted and learned exactly alike. A hashed index outside
// [0, 2^HashBits) — by convention −1 — is absent, however it is encoded.
// The order of the hashed indices within a row does not matter: Predict and
// Learn give bit-identical results for any permutation of them. What a
// present hashed index means is the learner's: a linear model gives it a
// weight (an index that appears m times counts as the value m), a tree
// splits on whether its bucket is present.
//
// Outputs. Predict writes Classes() values per row, row-major: P(y=1) for
// LinkSigmoid, the K class probabilities for LinkSoftmax, and the
// prediction, clamped to the finite float32 range, for LinkIdentity.
// Outputs are never NaN or Inf.
//
// Labels. Learn takes one label per row: 0 or 1 for LinkSigmoid, the class
// index in [0, K) as a float for LinkSoftmax, any finite value for
// LinkIdentity. A row with any other label is skipped whole, the other rows
// are learned, and Learn returns an error that wraps ErrInvalidLabel.
//
// Batches. Learn on n rows is exactly n single-row Learn calls, in order:
// the state after them is bit-identical — unless the learner implements
// MiniBatchLearner, which states its own rule. Predict never changes the
// model.
//
// Concurrency. A Learner is not safe for concurrent use, not even for
// concurrent Predict calls (it reuses internal scratch buffers). Callers
// serialize calls, or give each goroutine its own Clone.
//
// Ownership. Predict and Learn never retain rows, dst or y.
type Learner interface {
	// Predict writes the outputs for rows into dst, which must hold exactly
	// rows.N×Classes() values. It returns an error wrapping ErrShape, and
	// writes nothing, when the shapes do not match the learner. It does not
	// allocate.
	Predict(dst []float32, rows *Rows) error
	// Learn updates the model with rows and their labels y (one per row).
	// It returns an error wrapping ErrShape, and learns nothing, when the
	// shapes do not match; an error wrapping ErrInvalidLabel when it
	// skipped rows with invalid labels.
	Learn(rows *Rows, y []float32) error
	// Classes is K, the number of outputs per row.
	Classes() int
	// Link is the output function.
	Link() Link
	// Clone returns an independent deep copy.
	Clone() Learner
	// MarshalBinary snapshots the whole learner: configuration and every
	// piece of learned state, in a versioned format with a kind tag and a
	// CRC-32C checksum, which UnmarshalLearner reads back. It is
	// deterministic: equal states give equal bytes.
	MarshalBinary() ([]byte, error)
	// UnmarshalBinary replaces the learner's whole state, configuration
	// included, with a snapshot of the same kind. It returns an error
	// wrapping ErrSnapshot for input that is truncated, corrupt, of another
	// kind or of an unknown version, and then leaves the learner unchanged.
	UnmarshalBinary(data []byte) error
}

// Threshold is the default decision threshold of a binary model (the
// spec's model.threshold): see PredictedClass.
const Threshold = 0.5

// PredictedClass is the decision rule of a binary model: class 1 when its
// score P(y=1) is above threshold, class 0 otherwise. A tie — a score
// exactly at the threshold, such as the 0.5 of a logistic model that has
// learned nothing — is class 0, and so is a NaN score: without evidence a
// model says "negative" (River's predict_one, which picks the first class
// of greatest probability, does the same at 0.5).
func PredictedClass(score, threshold float64) int {
	if score > threshold {
		return 1
	}
	return 0
}

// Shape is the layout of the rows a learner takes.
type Shape struct {
	// NumDense is the number of dense values per row.
	NumDense int
	// NumHashed is the number of hashed indices per row.
	NumHashed int
	// HashBits sets the valid hashed indices, [0, 2^HashBits).
	HashBits int
}

// ShapedLearner is a Learner over rows of a fixed Shape. Every learner that
// driftline trains is one; a bring-your-own ONNX model, which scores named
// columns rather than rows, is not.
type ShapedLearner interface {
	Learner
	// Shape is the layout of the rows Predict and Learn accept.
	Shape() Shape
}

// LinearModel is a learner whose outputs are a link applied to linear
// margins, so that its weights describe it whole (the linear ONNX export
// and the parity tests need them).
type LinearModel interface {
	ShapedLearner
	// Params returns a copy of the model's current weights and scaler;
	// Predict's outputs equal Link applied to the margins they describe.
	Params() LinearParams
}

// MiniBatchLearner is a Learner whose Learn takes a batch as one update (a
// mini-batch gradient step, say) rather than as single rows in order.
type MiniBatchLearner interface {
	Learner
	// MiniBatch is the number of rows Learn groups into one update; Learn on
	// a batch whose length is a multiple of it equals Learn on each group
	// in order.
	MiniBatch() int
}

var (
	// ErrShape reports rows, labels or a destination whose sizes do not
	// match the learner.
	ErrShape = errors.New("models: shape mismatch")
	// ErrInvalidLabel reports labels that the learner's link cannot learn.
	ErrInvalidLabel = errors.New("models: invalid label")
	// ErrSnapshot reports a snapshot that cannot be restored.
	ErrSnapshot = errors.New("models: bad snapshot")
)
