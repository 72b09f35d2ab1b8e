package models

import (
	"math"
	"slices"
)

// Prequential keeps test-then-train metrics over a sliding window of the
// last Window outcomes: each outcome is a prediction made before the model
// learned from its label. For binary models it reports accuracy, log loss
// and ROC AUC; for regression, MAE and RMSE; for multi-class models, whose
// served score is the predicted class (see ServedScore), accuracy only
// (the others are NaN). It is not safe for concurrent
// use. Memory is O(Window).
type Prequential struct {
	window   int
	decision Decision
	scores   []float64
	labels   []float64
	next     int
	n        int64 // outcomes seen in total
	// running sums over the window
	correct, logLoss, absErr, sqErr float64
	sortBuf                         []int
}

// DefaultPrequentialWindow is the window NewPrequential uses for window ≤ 0.
const DefaultPrequentialWindow = 1000

// NewPrequential returns metrics over the last window outcomes, counting
// a binary prediction right by PredictedClass at the default Threshold.
func NewPrequential(window int) *Prequential {
	return NewPrequentialFor(window, Decision{Threshold: Threshold})
}

// NewPrequentialFor is NewPrequential with the decision rule the model is
// served with.
func NewPrequentialFor(window int, decision Decision) *Prequential {
	if window <= 0 {
		window = DefaultPrequentialWindow
	}
	return &Prequential{window: window, decision: decision, scores: make([]float64, 0, window), labels: make([]float64, 0, window)}
}

const logLossEps = 1e-15

// LogLoss is the binary cross-entropy of predicting P(y=1) = score for
// the label y (1, or else 0), with score clamped to [1e-15, 1-1e-15].
func LogLoss(score, y float64) float64 {
	s := math.Min(math.Max(score, logLossEps), 1-logLossEps)
	if y == 1 {
		return -math.Log(s)
	}
	return -math.Log(1 - s)
}

func (p *Prequential) contrib(score, y float64) (correct, ll, ae, se float64) {
	if float64(p.decision.Class(score)) == y {
		correct = 1
	}
	ll = LogLoss(score, y)
	d := score - y
	return correct, ll, math.Abs(d), d * d
}

// Update adds one outcome: the score (P(y=1) for binary models, the value
// for regression) predicted before learning, and the true label y.
// Non-finite inputs are ignored.
func (p *Prequential) Update(score, y float64) {
	if math.IsNaN(score) || math.IsInf(score, 0) || math.IsNaN(y) || math.IsInf(y, 0) {
		return
	}
	c, ll, ae, se := p.contrib(score, y)
	if len(p.scores) < p.window {
		p.scores = append(p.scores, score)
		p.labels = append(p.labels, y)
	} else {
		oc, oll, oae, ose := p.contrib(p.scores[p.next], p.labels[p.next])
		p.correct -= oc
		p.logLoss -= oll
		p.absErr -= oae
		p.sqErr -= ose
		p.scores[p.next], p.labels[p.next] = score, y
		p.next = (p.next + 1) % p.window
	}
	p.correct += c
	p.logLoss += ll
	p.absErr += ae
	p.sqErr += se
	p.n++
}

// Count is the number of outcomes seen in total.
func (p *Prequential) Count() int64 { return p.n }

// Len is the number of outcomes in the window.
func (p *Prequential) Len() int { return len(p.scores) }

// Accuracy is the share of windowed outcomes classified right by the
// decision rule (NaN when empty).
func (p *Prequential) Accuracy() float64 { return p.mean(p.correct) }

// LogLoss is the windowed mean binary cross-entropy (NaN when empty or
// multi-class).
func (p *Prequential) LogLoss() float64 { return p.scoreMean(p.logLoss) }

// MAE is the windowed mean absolute error (NaN when empty or multi-class).
func (p *Prequential) MAE() float64 { return p.scoreMean(p.absErr) }

// RMSE is the windowed root mean squared error (NaN when empty or
// multi-class).
func (p *Prequential) RMSE() float64 { return math.Sqrt(math.Max(0, p.scoreMean(p.sqErr))) }

// scoreMean is mean for the metrics of a score's value, which a
// multi-class model's class index has not.
func (p *Prequential) scoreMean(sum float64) float64 {
	if p.decision.MultiClass() {
		return math.NaN()
	}
	return p.mean(sum)
}

func (p *Prequential) mean(sum float64) float64 {
	if len(p.scores) == 0 {
		return math.NaN()
	}
	return sum / float64(len(p.scores))
}

// AUC is the windowed ROC AUC, the probability that a random positive
// scores above a random negative (ties count half); NaN when the window
// lacks either class. It sorts the window: O(Window log Window).
func (p *Prequential) AUC() float64 {
	if p.decision.MultiClass() {
		return math.NaN()
	}
	n := len(p.scores)
	p.sortBuf = p.sortBuf[:0]
	for i := 0; i < n; i++ {
		p.sortBuf = append(p.sortBuf, i)
	}
	slices.SortFunc(p.sortBuf, func(a, b int) int {
		switch {
		case p.scores[a] < p.scores[b]:
			return -1
		case p.scores[a] > p.scores[b]:
			return 1
		}
		return 0
	})
	var pos, neg, rankSum float64
	for i := 0; i < n; {
		j := i
		for j < n && p.scores[p.sortBuf[j]] == p.scores[p.sortBuf[i]] {
			j++
		}
		avgRank := float64(i+j+1) / 2 // ranks are 1-based
		for k := i; k < j; k++ {
			if p.labels[p.sortBuf[k]] == 1 {
				pos++
				rankSum += avgRank
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
