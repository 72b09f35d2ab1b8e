package models

import (
	"fmt"
	"math"
)

// checkRowsFit reports whether rows fit a learner of shape sh.
func checkRowsFit(rows *Rows, sh Shape) error {
	if rows.N < 0 || rows.NumDense != sh.NumDense || rows.NumHashed != sh.NumHashed {
		return fmt.Errorf("rows have n %d, %d dense, %d hashed; learner wants %d dense, %d hashed: %w",
			rows.N, rows.NumDense, rows.NumHashed, sh.NumDense, sh.NumHashed, ErrShape)
	}
	if len(rows.Dense) < rows.N*rows.NumDense || len(rows.Hashed) < rows.N*rows.NumHashed {
		return fmt.Errorf("rows hold %d dense and %d hashed values, fewer than %d rows need: %w",
			len(rows.Dense), len(rows.Hashed), rows.N, ErrShape)
	}
	return nil
}

// classifierLink is the link of a classifier over k classes: sigmoid (one
// output, P(y=1)) for 2, softmax for more.
func classifierLink(k int) Link {
	if k == 2 {
		return LinkSigmoid
	}
	return LinkSoftmax
}

// classifierOutputs is Classes() of a classifier over k classes.
func classifierOutputs(k int) int {
	if k == 2 {
		return 1
	}
	return k
}

// classLabel converts a label to a class index in [0, k), or false.
func classLabel(y float32, k int) (int32, bool) {
	v := float64(y)
	if v >= 0 && v < float64(k) && v == math.Trunc(v) {
		return int32(v), true
	}
	return 0, false
}

// writeProba writes a class-indexed probability vector as a classifier's
// outputs: P(y=1) for two classes, the K probabilities otherwise. A vector
// without mass (a tree that has not learned, River's empty prediction)
// becomes the uniform distribution, so outputs are always probabilities.
func writeProba(dst []float32, proba []float64) {
	sum := 0.0
	for _, p := range proba {
		sum += p
	}
	k := len(proba)
	if !(sum > 0) || math.IsInf(sum, 0) {
		if k == 2 {
			dst[0] = 0.5
			return
		}
		for c := range dst {
			dst[c] = float32(1 / float64(k))
		}
		return
	}
	if k == 2 {
		dst[0] = float32(min(1, max(0, proba[1])))
		return
	}
	for c, p := range proba {
		dst[c] = float32(min(1, max(0, p)))
	}
}

// skippedLabels is the error Learn returns after skipping invalid labels.
func skippedLabels(skipped, n, first int, y float32, link Link) error {
	return fmt.Errorf("skipped %d of %d rows, first row %d with label %v for link %s: %w",
		skipped, n, first, y, link, ErrInvalidLabel)
}
