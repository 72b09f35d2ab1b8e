package distribution

import (
	"math"

	"github.com/driftline/driftline/detectors/internal/stat"
)

// psiFloor is the smallest bin proportion PSI uses, so that an empty bin
// contributes a large but finite term.
const psiFloor = 1e-4

// Result holds every statistic of one comparison of a window with its
// reference profile.
type Result struct {
	// PSI is the population stability index Σ (c-r)·ln(c/r) over bin
	// proportions, each floored at 1e-4. Common reading: < 0.1 stable,
	// 0.1-0.25 moderate shift, > 0.25 major shift.
	PSI float64 `json:"psi"`
	// KS is the two-sample Kolmogorov-Smirnov statistic at the bin edges.
	KS float64 `json:"ks"`
	// KSPValue is KS's asymptotic two-sided p-value for the two sample sizes.
	KSPValue float64 `json:"ks_p_value"`
	// ChiSquare is the chi-square statistic of homogeneity of the two
	// histograms (a 2×k contingency table over the non-empty bins).
	ChiSquare float64 `json:"chi_square"`
	// ChiSquareDF is its degrees of freedom: non-empty bins - 1.
	ChiSquareDF int `json:"chi_square_df"`
	// ChiSquarePValue is the chi-square p-value.
	ChiSquarePValue float64 `json:"chi_square_p_value"`
	// JensenShannon is the Jensen-Shannon divergence of the bin proportions,
	// in bits, within [0, 1].
	JensenShannon float64 `json:"jensen_shannon"`
	// Wasserstein is the Wasserstein-1 distance, with each bin's mass at the
	// mean of its values, in the units of the data.
	Wasserstein float64 `json:"wasserstein"`
	// Reference and Current are the two sample sizes.
	Reference uint64 `json:"reference"`
	Current   uint64 `json:"current"`
}

// Compare compares w with its profile. With an empty window every statistic
// is 0 and every p-value 1. It does not allocate.
func Compare(w *Window) Result {
	p := w.profile
	r := compareBins(p.Counts, w.counts, p.Total, w.total)
	if w.total == 0 {
		return r
	}
	nr, nc := float64(p.Total), float64(w.total)
	var cumR, cumC float64
	for i, rc := range p.Counts {
		cumR += float64(rc) / nr
		cumC += float64(w.counts[i]) / nc
		r.KS = max(r.KS, math.Abs(cumR-cumC))
	}
	r.KSPValue = stat.KSAsymptoticPValue(r.KS, nr, nc)
	r.Wasserstein = wasserstein(p, w)
	return r
}

// compareBins computes the statistics that do not depend on the order of
// the bins (PSI, Jensen-Shannon, chi-square) of the current counts against
// the reference counts, which have equal lengths and sum to nr and nc. KS
// is left 0 with p-value 1. It does not allocate.
func compareBins(ref, cur []uint64, nr, nc uint64) Result {
	r := Result{Reference: nr, Current: nc, KSPValue: 1, ChiSquarePValue: 1}
	if nr == 0 || nc == 0 {
		return r
	}
	fnr, fnc := float64(nr), float64(nc)
	nonEmpty := 0
	for i, rc := range ref {
		cc := cur[i]
		pr, pc := float64(rc)/fnr, float64(cc)/fnc

		fr, fc := max(pr, psiFloor), max(pc, psiFloor)
		r.PSI += (fc - fr) * math.Log(fc/fr)

		m := (pr + pc) / 2
		if pr > 0 {
			r.JensenShannon += pr * math.Log2(pr/m) / 2
		}
		if pc > 0 {
			r.JensenShannon += pc * math.Log2(pc/m) / 2
		}

		both := float64(rc + cc)
		if both > 0 {
			nonEmpty++
			er := fnr * both / (fnr + fnc)
			ec := fnc * both / (fnr + fnc)
			dr, dc := float64(rc)-er, float64(cc)-ec
			r.ChiSquare += dr*dr/er + dc*dc/ec
		}
	}
	r.ChiSquareDF = max(nonEmpty-1, 0)
	if r.ChiSquareDF > 0 {
		r.ChiSquarePValue = stat.ChiSquareSF(r.ChiSquare, float64(r.ChiSquareDF))
	}
	return r
}

// wasserstein integrates |F_ref - F_cur| over the atoms (bin means) of both
// histograms. Within a bin both atoms lie inside the bin, so visiting bins in
// order and the two atoms of a bin in value order visits all atoms sorted.
func wasserstein(p *Profile, w *Window) float64 {
	nr, nc := float64(p.Total), float64(w.total)
	var fr, fc, dist, last float64
	started := false
	step := func(x, dr, dc float64) {
		if started {
			dist += math.Abs(fr-fc) * (x - last)
		}
		started = true
		last = x
		fr += dr
		fc += dc
	}
	for i, rc := range p.Counts {
		cc := w.counts[i]
		var xr, xc float64
		if rc > 0 {
			xr = p.Sums[i] / float64(rc)
		}
		if cc > 0 {
			xc = w.sums[i] / float64(cc)
		}
		switch {
		case rc > 0 && cc > 0 && xc < xr:
			step(xc, 0, float64(cc)/nc)
			step(xr, float64(rc)/nr, 0)
		case rc > 0 && cc > 0:
			step(xr, float64(rc)/nr, 0)
			step(xc, 0, float64(cc)/nc)
		case rc > 0:
			step(xr, float64(rc)/nr, 0)
		case cc > 0:
			step(xc, 0, float64(cc)/nc)
		}
	}
	return dist
}
