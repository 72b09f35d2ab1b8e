package models

import "math"

// scaler is an online standard scaler: per dense column, Welford's running
// mean and sum of squared deviations (population variance, as River's
// preprocessing.StandardScaler), over the finite values seen. It also keeps
// the float32 statistics that Predict, Learn and Params share, so the Go
// scorer and an exported graph use the very same numbers.
type scaler struct {
	count []float64
	mean  []float64
	m2    []float64
	// mean32 and std32 are the published statistics; std32 is never zero.
	mean32 []float32
	std32  []float32
}

func newScaler(numDense int) scaler {
	s := scaler{
		count:  make([]float64, numDense),
		mean:   make([]float64, numDense),
		m2:     make([]float64, numDense),
		mean32: make([]float32, numDense),
		std32:  make([]float32, numDense),
	}
	for j := range s.std32 {
		s.std32[j] = 1
	}
	return s
}

// update adds a row's dense values; missing (non-finite) values are skipped.
func (s *scaler) update(row []float32) {
	for j, v := range row {
		x := float64(v)
		if !isFinite(x) {
			continue
		}
		s.count[j]++
		delta := x - s.mean[j]
		s.mean[j] += delta / s.count[j]
		s.m2[j] += delta * (x - s.mean[j])
		s.publish(j)
	}
}

// publish refreshes column j's float32 statistics from the float64 ones.
func (s *scaler) publish(j int) {
	s.mean32[j] = float32(s.mean[j])
	s.std32[j] = publishedStd(s.m2[j], s.count[j])
}

// publishedStd is the population standard deviation as a float32 that is
// safe to divide by: 1 for a constant column (or one seen fewer than twice)
// and for one whose deviation underflows float32, and at most MaxFloat32.
func publishedStd(m2, count float64) float32 {
	if count < 2 || m2 <= 0 {
		return 1
	}
	std := math.Sqrt(m2 / count)
	if std > math.MaxFloat32 {
		return math.MaxFloat32
	}
	if float32(std) < math.SmallestNonzeroFloat32*(1<<23) { // below the normal range
		return 1
	}
	return float32(std)
}

// scale returns column j's scaled value of x, and false when x is missing.
func (s *scaler) scale(j int, x float32) (float64, bool) {
	v := float64(x)
	if !isFinite(v) {
		return 0, false
	}
	return (v - float64(s.mean32[j])) / float64(s.std32[j]), true
}

func (s *scaler) clone() scaler {
	return scaler{
		count:  append([]float64(nil), s.count...),
		mean:   append([]float64(nil), s.mean...),
		m2:     append([]float64(nil), s.m2...),
		mean32: append([]float32(nil), s.mean32...),
		std32:  append([]float32(nil), s.std32...),
	}
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
