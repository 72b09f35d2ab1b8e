package models

import "math"

// gaussianSplits is River's GaussianSplitter(n_splits=10): the candidate
// thresholds of a numeric attribute.
const gaussianSplits = 10

// halfLogTau is ½·ln(2π), as River's Gaussian.log_pdf uses it.
var halfLogTau = 0.5 * math.Log(2*math.Pi)

// gaussEst is one class's statistics of a numeric attribute at a leaf:
// River's Gaussian (a weighted running variance) and the class's minimum
// and maximum.
type gaussEst struct {
	v      runningVar
	lo, hi float64
	sigma  float64 // the standard deviation, set while splits are scored
}

// gaussObs is River's GaussianSplitter for one dense column at one leaf.
type gaussObs struct {
	classes []int32    // classes seen, in insertion order
	est     []gaussEst // by class
}

func newGaussObs(k int) gaussObs {
	return gaussObs{classes: make([]int32, 0, k), est: make([]gaussEst, k)}
}

func (g *gaussObs) has(c int32) bool {
	for _, o := range g.classes {
		if o == c {
			return true
		}
	}
	return false
}

func (g *gaussObs) update(x float64, c int32, w float64) {
	e := &g.est[c]
	if !g.has(c) {
		g.classes = append(g.classes, c)
		e.lo, e.hi = x, x
	} else {
		if x < e.lo {
			e.lo = x
		}
		if x > e.hi {
			e.hi = x
		}
	}
	e.v.update(x, w)
}

// cdf is Gaussian.cdf: 0 when the standard deviation is 0.
func (e *gaussEst) cdf(x float64) float64 {
	e.sigma = math.Sqrt(e.v.variance())
	return e.cdfWithSigma(x)
}

// cdfWithSigma is cdf with e.sigma already set.
func (e *gaussEst) cdfWithSigma(x float64) float64 {
	if e.sigma == 0 {
		return 0
	}
	return 0.5 * (1 + math.Erf((x-e.v.mean)/e.sigma/math.Sqrt2))
}

// splitRange is the range River's _split_point_suggestions spreads its
// candidates over; ok is false for an observer without classes.
func (g *gaussObs) splitRange() (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, c := range g.classes {
		lo = min(lo, g.est[c].lo)
		hi = max(hi, g.est[c].hi)
	}
	return lo, hi, lo < math.Inf(1)
}

// splitDists fills lhs and rhs as River's _class_dists_from_binary_split.
func (g *gaussObs) splitDists(v float64, lhs, rhs *classDist) {
	lhs.reset()
	rhs.reset()
	for _, c := range g.classes {
		e := &g.est[c]
		n := e.v.n
		switch {
		case v < e.lo:
			rhs.set(c, n)
		case v >= e.hi:
			lhs.set(c, n)
		default:
			l := e.cdf(v) * n
			lhs.set(c, l)
			rhs.set(c, n-l)
		}
	}
}

// bucketObs watches one hash bucket at a leaf as a nominal attribute with
// the values absent (0) and present (1): River's NominalSplitterClassif fed
// the bucket's full 0/1 column. Only the present counts are kept; the
// absent ones are the leaf's counts since activation less these.
type bucketObs struct {
	bucket  int32
	present []float64 // by class
}

// SplitCriterion scores a candidate split of a classification tree, as
// River's split criteria do.
type SplitCriterion uint8

const (
	// CriterionInfoGain is information gain, River's "info_gain" (the default).
	CriterionInfoGain SplitCriterion = iota
	// CriterionGini is the Gini impurity decrease, River's "gini".
	CriterionGini
)

// String names the criterion as River does.
func (sc SplitCriterion) String() string {
	switch sc {
	case CriterionInfoGain:
		return "info_gain"
	case CriterionGini:
		return "gini"
	}
	return "unknown"
}

// meritOfSplit is merit_of_split(pre, [lhs, rhs]), given pre's entropy
// (which only information gain reads).
func (sc SplitCriterion) meritOfSplit(preEntropy float64, lhs, rhs *classDist, minFraction float64) float64 {
	wl, wr := lhs.total(), rhs.total()
	if subsetsAbove(wl, wr, minFraction) < 2 {
		return math.Inf(-1)
	}
	total := 0 + wl + wr
	if sc == CriterionGini {
		g := 0.0
		g += (wl / total) * lhs.gini(wl)
		g += (wr / total) * rhs.gini(wr)
		return 1 - g
	}
	e := 0.0
	e += wl * lhs.entropy()
	e += wr * rhs.entropy()
	return preEntropy - e/total
}

// rangeOfMerit is range_of_merit(pre).
func (sc SplitCriterion) rangeOfMerit(pre *classDist) float64 {
	if sc == CriterionGini {
		return 1
	}
	return math.Log2(float64(max(len(pre.order), 2)))
}

// subsetsAbove is num_subsets_greater_than_frac for two subsets of weights
// a and b.
func subsetsAbove(a, b, frac float64) int {
	total := 0 + a + b
	n := 0
	if total > 0 {
		if a/total > frac {
			n++
		}
		if b/total > frac {
			n++
		}
	}
	return n
}
