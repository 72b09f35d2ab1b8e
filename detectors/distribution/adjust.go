package distribution

import (
	"cmp"
	"slices"
)

// AdjustBenjaminiHochberg sets dst[i] to the Benjamini-Hochberg adjusted
// p-value of hypothesis i (Benjamini & Hochberg, 1995): with the p-values
// sorted, p_(1) ≤ … ≤ p_(m), the adjusted value of rank k is
// min_{j ≥ k} min(1, m·p_(j)/j). Hypothesis i is rejected by
// BenjaminiHochberg at rate q exactly when dst[i] <= q, so the adjusted
// value is the "corrected p-value" a report shows next to the raw one. It
// returns dst, grown to len(pValues) if needed. order is scratch space for
// the ranks, grown if needed and returned, so that a caller that keeps it
// does not allocate.
func AdjustBenjaminiHochberg(dst []float64, order []int, pValues []float64) ([]float64, []int) {
	m := len(pValues)
	dst = resizeFloats(dst, m)
	if cap(order) < m {
		order = make([]int, m)
	}
	order = order[:m]
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(pValues[a], pValues[b]) })
	running := 1.0
	for rank := m; rank >= 1; rank-- {
		i := order[rank-1]
		running = min(running, float64(m)*pValues[i]/float64(rank))
		dst[i] = running
	}
	return dst, order
}

// AdjustBonferroni sets dst[i] to min(1, m·p_i), the Bonferroni adjusted
// p-value: hypothesis i is rejected by Bonferroni at level alpha exactly
// when dst[i] <= alpha. It returns dst, grown to len(pValues) if needed.
func AdjustBonferroni(dst, pValues []float64) []float64 {
	m := float64(len(pValues))
	dst = resizeFloats(dst, len(pValues))
	for i, p := range pValues {
		dst[i] = min(1, m*p)
	}
	return dst
}

func resizeFloats(dst []float64, n int) []float64 {
	if cap(dst) < n {
		return make([]float64, n)
	}
	return dst[:n]
}

// Counts copies the window's per-bin counts into dst (grown to the number of
// bins if needed) and returns it.
func (w *Window) Counts(dst []uint64) []uint64 {
	if cap(dst) < len(w.counts) {
		dst = make([]uint64, len(w.counts))
	}
	dst = dst[:len(w.counts)]
	copy(dst, w.counts)
	return dst
}
