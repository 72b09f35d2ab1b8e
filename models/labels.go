package models

import "math"

// ValidLabel reports whether y is a label that a learner with this link and
// class count can learn: 0 or 1 for LinkSigmoid, a class index in [0, K)
// for LinkSoftmax, any finite value for LinkIdentity. It is the rule every
// learner's Learn applies (others are ErrInvalidLabel), and the one the
// label join checks labels with before they reach a model.
func ValidLabel(link Link, classes int, y float32) bool {
	v := float64(y)
	switch link {
	case LinkSigmoid:
		return v == 0 || v == 1
	case LinkSoftmax:
		return v >= 0 && v < float64(classes) && v == math.Trunc(v)
	default:
		return isFinite(v)
	}
}
