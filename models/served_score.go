package models

// A served model writes one score per event, whatever its number of
// outputs K (Learner.Classes): the score its predictions carry, that the
// prediction cache keeps, and that outcomes, prequential metrics, the gate
// and the error detector compare with the label.
//
//   - K = 1 (regression, or a binary classifier scoring P(y=1)): the output.
//   - K = 2 (a two-class softmax): P(y=1), the second output, so that the
//     binary decision rule and metrics apply unchanged.
//   - K > 2 (a multi-class classifier): the index of the predicted class
//     (ArgMax), the only value a label can be compared with; such a score
//     has no log loss or AUC (Prequential reports NaN for them).

// ServedScore is the served score of one row's K outputs (see above).
func ServedScore(out []float32) float32 {
	switch len(out) {
	case 1:
		return out[0]
	case 2:
		return out[1]
	}
	return float32(ArgMax(out))
}

// ArgMax is the first index of the greatest value of out (River's
// predict_one picks the first class of greatest probability); NaN values
// are never the greatest. It returns 0 for an empty out.
func ArgMax(out []float32) int {
	best := 0
	for c := 1; c < len(out); c++ {
		if out[c] > out[best] || (out[best] != out[best] && out[c] == out[c]) {
			best = c
		}
	}
	return best
}

// ClassOfOutputs is the class one row's K outputs pick: PredictedClass of
// the served score for K ≤ 2, the arg max for more.
func ClassOfOutputs(out []float32, threshold float64) int {
	if len(out) > 2 {
		return ArgMax(out)
	}
	return PredictedClass(float64(ServedScore(out)), threshold)
}

// Decision turns served scores into classes: the model's decision
// threshold (binary models) and its number of classes (the spec's
// model.classes; 0 or 2 for a binary model).
type Decision struct {
	Threshold float64
	Classes   int
}

// MultiClass reports whether served scores are class indexes (K > 2).
func (d Decision) MultiClass() bool { return d.Classes > 2 }

// Class is the class a served score stands for: the score itself for a
// multi-class model, PredictedClass otherwise.
func (d Decision) Class(score float64) int {
	if d.MultiClass() {
		return int(score)
	}
	return PredictedClass(score, d.Threshold)
}
