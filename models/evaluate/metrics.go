package evaluate

import (
	"math"
	"slices"

	"github.com/driftline/driftline/models"
)

// logLossEps bounds the probabilities log loss reads, as River's LogLoss
// does.
const logLossEps = 1e-15

// scores accumulates the metrics of a prequential run over all rows so
// far (River's metrics are cumulative too).
type scores struct {
	classes int // 0 for regression
	n       int
	correct int
	logLoss float64
	absErr  float64
	sqErr   float64
	// binary: P(y=1) and the label of every row, for the exact ROC AUC.
	probs  []float64
	labels []bool
}

// add scores one prediction out for label y.
func (s *scores) add(out []float32, y float32) {
	s.n++
	if s.classes == 0 {
		d := float64(out[0]) - float64(y)
		s.absErr += math.Abs(d)
		s.sqErr += d * d
		return
	}
	c := int(y)
	if models.ClassOfOutputs(out, models.Threshold) == c {
		s.correct++
	}
	var p float64
	if len(out) == 1 {
		p = float64(out[0])
		s.probs = append(s.probs, p)
		s.labels = append(s.labels, c == 1)
		if c == 0 {
			p = 1 - p
		}
	} else {
		p = float64(out[c])
	}
	s.logLoss -= math.Log(min(max(p, logLossEps), 1-logLossEps))
}

// auc is the exact area under the ROC curve of the binary scores so far
// (the Mann–Whitney statistic, ties counted half), or NaN without both
// classes.
func (s *scores) auc() float64 {
	n := len(s.probs)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case s.probs[a] < s.probs[b]:
			return -1
		case s.probs[a] > s.probs[b]:
			return 1
		}
		return 0
	})
	var pos, neg, rankSum float64
	for i := 0; i < n; {
		j := i
		for j < n && s.probs[idx[j]] == s.probs[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // ranks i+1 … j share their mean
		for _, k := range idx[i:j] {
			if s.labels[k] {
				pos++
				rankSum += mid
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// point is the metrics so far.
func (s *scores) point() Point {
	p := Point{Rows: s.n}
	if s.n == 0 {
		return p
	}
	n := float64(s.n)
	if s.classes == 0 {
		p.MAE, p.RMSE = ptr(s.absErr/n), ptr(math.Sqrt(s.sqErr/n))
		return p
	}
	p.Accuracy, p.LogLoss = ptr(float64(s.correct)/n), ptr(s.logLoss/n)
	if s.classes == 2 {
		if a := s.auc(); !math.IsNaN(a) {
			p.AUC = ptr(a)
		}
	}
	return p
}

func ptr(v float64) *float64 { return &v }
