// Package models holds driftline's online learners and the contracts the
// scoring stages and the ONNX exporter build on.
//
// A model sees a batch of feature rows as two row-major blocks: raw dense
// values (numeric fields, before scaling) and hashed categorical indices (one
// per categorical field, each standing for a one-hot value of 1.0 in a
// 2^HashBits space). Learners own their online standard scaler, so the raw
// values a prediction was made from can be replayed later, when its label
// arrives, and the exported ONNX graph can embed the scaler.
package models

// Rows is a batch of N feature rows. It is a view: the caller owns the
// slices, and a learner never retains them after a call returns.
type Rows struct {
	// N is the number of rows.
	N int
	// NumDense is the number of dense values per row.
	NumDense int
	// NumHashed is the number of hashed indices per row.
	NumHashed int
	// Dense holds N×NumDense raw values, row-major.
	Dense []float32
	// Hashed holds N×NumHashed indices in [0, 2^HashBits), row-major.
	// A negative index means "absent" and contributes nothing.
	Hashed []int32
}

// DenseRow returns row i's dense values.
func (r *Rows) DenseRow(i int) []float32 {
	return r.Dense[i*r.NumDense : (i+1)*r.NumDense]
}

// HashedRow returns row i's hashed indices.
func (r *Rows) HashedRow(i int) []int32 {
	return r.Hashed[i*r.NumHashed : (i+1)*r.NumHashed]
}

// Link is the output function applied to a linear model's margin.
type Link uint8

const (
	// LinkIdentity is linear regression: the output is the margin.
	LinkIdentity Link = iota
	// LinkSigmoid is binary logistic regression: the output is P(y=1).
	LinkSigmoid
	// LinkSoftmax is multinomial regression: the outputs are K class
	// probabilities.
	LinkSoftmax
)

// String names the link as it appears in specs and exported signatures.
func (l Link) String() string {
	switch l {
	case LinkIdentity:
		return "identity"
	case LinkSigmoid:
		return "sigmoid"
	case LinkSoftmax:
		return "softmax"
	}
	return "unknown"
}

// LinearParams is a self-contained, copied description of a linear model
// with its scaler, enough to score it anywhere (the ONNX exporter and the
// parity tests use it).
//
// For class k, the margin of a row is
//
//	B[k] + Σ_j W[k*Dim()+j] * (Dense[j]-Mean[j])/Std[j] + Σ_c W[k*Dim()+NumDense+Hashed[c]]
//
// and the output is Link applied to the K margins.
//
// Missing inputs, as every Learner treats them (an exporter must match): a
// dense value that is NaN or ±Inf contributes 0 (its term is dropped), and
// a hashed index outside [0, 2^HashBits), such as −1, contributes nothing;
// an index repeated m times in a row contributes m·W. The identity link's
// output is clamped to the finite float32 range.
type LinearParams struct {
	NumDense  int
	NumHashed int
	HashBits  int
	// Classes is K: 1 for identity and sigmoid links, ≥2 for softmax.
	Classes int
	Link    Link
	// W holds Classes×Dim() weights, row-major by class.
	W []float32
	// B holds Classes intercepts.
	B []float32
	// Mean and Std hold the scaler's statistics per dense value; Std is
	// never zero (a constant feature has Std 1).
	Mean []float32
	Std  []float32
}

// Dim is the number of weights per class: dense values plus hash buckets.
func (p *LinearParams) Dim() int { return p.NumDense + (1 << p.HashBits) }
