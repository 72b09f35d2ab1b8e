package distribution

import (
	"cmp"
	"slices"
)

// Bonferroni sets dst[i] to whether pValues[i] <= alpha/len(pValues), which
// bounds the family-wise error rate by alpha. It returns dst, grown to
// len(pValues) if needed.
func Bonferroni(dst []bool, pValues []float64, alpha float64) []bool {
	dst = resize(dst, len(pValues))
	m := float64(len(pValues))
	for i, p := range pValues {
		dst[i] = p <= alpha/m
	}
	return dst
}

// BenjaminiHochberg sets dst[i] to whether hypothesis i is rejected by the
// Benjamini-Hochberg step-up procedure at false discovery rate q: with the
// p-values sorted, p_(1) ≤ … ≤ p_(m), it rejects the k smallest, where k is
// the largest rank with p_(k) <= k·q/m. Under the global null it also bounds
// the family-wise error rate by q. It returns dst, grown to len(pValues) if
// needed; it allocates one index slice.
func BenjaminiHochberg(dst []bool, pValues []float64, q float64) []bool {
	dst = resize(dst, len(pValues))
	m := len(pValues)
	order := make([]int, m)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(pValues[a], pValues[b]) })
	k := 0
	for rank := m; rank >= 1; rank-- {
		if pValues[order[rank-1]] <= float64(rank)*q/float64(m) {
			k = rank
			break
		}
	}
	clear(dst)
	for _, i := range order[:k] {
		dst[i] = true
	}
	return dst
}

func resize(dst []bool, n int) []bool {
	if cap(dst) < n {
		return make([]bool, n)
	}
	return dst[:n]
}
