package models

import "errors"

// Learner is an online model that scores batches of rows now and learns
// from their labels later.
//
// Inputs. A row's dense values are raw (the learner scales them with its
// own online standard scaler). A dense value that is NaN or ±Inf is
// missing: it contributes 0 to the margin, and Learn neither updates the
// scaler nor the weight of that column with it. A hashed index outside
// [0, 2^HashBits) — by convention −1 — is absent and contributes nothing.
// The order of the hashed indices within a row does not matter: Predict and
// Learn give bit-identical results for any permutation of them. An index
// that appears m times in a row counts as the value m.
//
// Outputs. Predict writes Classes() values per row, row-major: P(y=1) for
// LinkSigmoid, the K class probabilities for LinkSoftmax, and the margin,
// clamped to the finite float32 range, for LinkIdentity. Outputs are never
// NaN or Inf. They equal Link applied to the margins that Params describes.
//
// Labels. Learn takes one label per row: 0 or 1 for LinkSigmoid, the class
// index in [0, K) as a float for LinkSoftmax, any finite value for
// LinkIdentity. A row with any other label is skipped whole, the other rows
// are learned, and Learn returns an error that wraps ErrInvalidLabel.
//
// Batches. Learn on n rows is exactly n single-row Learn calls, in order:
// the weights, scaler and optimizer state are bit-identical. For each row,
// Learn first updates the scaler with the row's dense values, then scales
// the row with the updated statistics and takes one optimizer step. Predict
// never changes the model.
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
	// skipped rows with invalid labels. It does not allocate unless it
	// returns an error.
	Learn(rows *Rows, y []float32) error
	// Params returns a copy of the model's current weights and scaler.
	Params() LinearParams
	// Classes is K, the number of outputs per row.
	Classes() int
	// Link is the output function.
	Link() Link
	// Clone returns an independent deep copy.
	Clone() Learner
	// MarshalBinary snapshots the whole learner: configuration, weights,
	// scaler and optimizer state, in a versioned format with a CRC-32C
	// checksum. It is deterministic: equal states give equal bytes.
	MarshalBinary() ([]byte, error)
	// UnmarshalBinary replaces the learner's whole state, configuration
	// included, with a snapshot. It returns an error wrapping ErrSnapshot
	// for input that is truncated, corrupt, or of an unknown version, and
	// then leaves the learner unchanged.
	UnmarshalBinary(data []byte) error
}

// Threshold turns a binary model's score P(y=1) into a predicted class:
// class 1 when score ≥ Threshold, class 0 otherwise, so a tie (a score of
// exactly 0.5, as an untrained logistic model gives) is class 1.
const Threshold = 0.5

var (
	// ErrShape reports rows, labels or a destination whose sizes do not
	// match the learner.
	ErrShape = errors.New("models: shape mismatch")
	// ErrInvalidLabel reports labels that the learner's link cannot learn.
	ErrInvalidLabel = errors.New("models: invalid label")
	// ErrSnapshot reports a snapshot that cannot be restored.
	ErrSnapshot = errors.New("models: bad snapshot")
)
