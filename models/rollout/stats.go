package rollout

import (
	"fmt"
	"math"
)

// Stats are one arm's online metrics, cumulative over the rollout (a drop in N is taken
// as a reset of the caller's counters).
type Stats struct {
	// N is the number of labelled outcomes behind Value.
	N int64 `json:"n"`
	// Value is the gate's metric over those outcomes (RMSE itself for rmse).
	Value float64 `json:"value"`
	// SD is the sample standard deviation of the per-outcome quantity: the log loss for
	// logloss, the absolute error for mae, the squared error for rmse. Unused for
	// accuracy.
	SD float64 `json:"sd,omitempty"`
	// Positives is the number of positive labels among N, for the evidence shown to
	// operators.
	Positives int64 `json:"positives,omitempty"`
	// Paired, on a candidate's Stats, is its comparison with the champion on the same
	// labels, when the caller has one (a shadow scores the labels the champion served):
	// the gate then bounds the mean of the per-label differences, not the difference
	// of two means. Not for rmse, whose value is not a mean.
	Paired *Paired `json:"paired,omitempty"`
}

// Paired is a candidate's improvement over the champion per label, over labels both
// predicted: in the metric's units, positive is better (the candidate's correct minus
// the champion's for accuracy, the champion's loss minus the candidate's otherwise).
type Paired struct {
	N int64 `json:"n"`
	// Mean is the mean improvement per label, SD its sample standard deviation.
	Mean float64 `json:"mean"`
	SD   float64 `json:"sd"`
}

// usable reports whether p can bound metric m's improvement: at least 2 pairs,
// finite, and m a mean (not rmse).
func (p *Paired) usable(m Metric) bool {
	return p != nil && p.N >= 2 && m != MetricRMSE && !math.IsNaN(p.Mean) && !math.IsInf(p.Mean, 0) &&
		!math.IsNaN(p.SD) && !math.IsInf(p.SD, 0) && p.SD >= 0
}

// check reports why s cannot be measured with metric m, or nil.
func (s Stats) check(m Metric) error {
	if s.N < 0 || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || math.IsNaN(s.SD) || math.IsInf(s.SD, 0) || s.SD < 0 {
		return fmt.Errorf("unusable stats n=%d value=%v sd=%v", s.N, s.Value, s.SD)
	}
	if m == MetricAccuracy && (s.Value < 0 || s.Value > 1) {
		return fmt.Errorf("%s %v outside [0, 1]", m, s.Value)
	}
	if !m.higherIsBetter() && s.Value < 0 {
		return fmt.Errorf("%s %v is negative", m, s.Value)
	}
	return nil
}

// compare returns the candidate's improvement over the champion (positive: better, in
// the metric's units) with its lower and upper one-sided bounds at normal quantile z.
// Both stats must have passed check and have N ≥ 1. With the candidate's Paired
// usable, the improvement is the pairs' mean and its bounds those of a mean (a paired
// z-test), else the two arms' values are compared as independent samples.
func compare(m Metric, cand, champ Stats, z float64) (diff, lower, upper float64) {
	if p := cand.Paired; p.usable(m) {
		se := p.SD / math.Sqrt(float64(p.N))
		return p.Mean, p.Mean - z*se, p.Mean + z*se
	}
	switch m {
	case MetricAccuracy:
		p1, p2 := cand.Value, champ.Value
		l1, u1 := wilson(p1, cand.N, z)
		l2, u2 := wilson(p2, champ.N, z)
		diff = p1 - p2
		return diff, diff - math.Hypot(p1-l1, u2-p2), diff + math.Hypot(u1-p1, p2-l2)
	}
	diff = champ.Value - cand.Value
	se := math.Hypot(meanSE(m, cand), meanSE(m, champ))
	return diff, diff - z*se, diff + z*se
}

// wilson is the Wilson score interval for a proportion p of n trials.
func wilson(p float64, n int64, z float64) (lo, hi float64) {
	nf := float64(n)
	z2 := z * z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return max(0, center-half), min(1, center+half)
}

// meanSE is the standard error of a mean loss; for rmse, of the root of the mean
// squared error by the delta method.
func meanSE(m Metric, s Stats) float64 {
	se := s.SD / math.Sqrt(float64(s.N))
	if m == MetricRMSE {
		if s.Value == 0 {
			return 0
		}
		return se / (2 * s.Value)
	}
	return se
}

// quantile returns the standard normal quantile of c.
func quantile(c float64) float64 { return math.Sqrt2 * math.Erfinv(2*c-1) }
