package models

import (
	"math"
	"slices"
)

// splitCand is River's BranchFactory: a split suggestion. attr < 0 is the
// null split ("do not split").
type splitCand struct {
	merit float64
	// attr is a dense column, or NumDense+bucket; −1 for no split.
	attr int32
	// threshold of a dense split; form of a bucket split.
	threshold float64
	form      bucketForm
}

// bucketForm is which of River's nominal suggestions won for a bucket: the
// multiway split over the values [absent, present], or a binary split on
// one value (children [value, other]).
type bucketForm uint8

const (
	bucketMultiway bucketForm = iota
	bucketEqualAbsent
	bucketEqualPresent
)

// attemptSplit is River's HoeffdingTreeClassifier._attempt_to_split.
func (t *ctree) attemptSplit(leaf, parent *cnode, parentBranch int) {
	if leaf.stats.nonZero() < 2 {
		return
	}
	cands := t.suggestions(leaf)
	// Python's list.sort is stable, and so is this.
	slices.SortStableFunc(cands, func(a, b splitCand) int {
		switch {
		case a.merit < b.merit:
			return -1
		case b.merit < a.merit:
			return 1
		}
		return 0
	})
	shouldSplit := false
	if len(cands) < 2 {
		shouldSplit = len(cands) > 0
	} else {
		bound := hoeffdingBound(t.p.criterion.rangeOfMerit(&leaf.stats), t.p.delta, leaf.stats.total())
		best, second := cands[len(cands)-1], cands[len(cands)-2]
		if best.merit-second.merit > bound || bound < t.p.tau {
			shouldSplit = true
		}
		if t.p.removePoor && t.p.leafPred == LeafMajorityClass {
			for _, c := range cands {
				if c.attr >= 0 && best.merit-c.merit > bound {
					t.disableAttribute(leaf, c.attr)
				}
			}
		}
	}
	if !shouldSplit {
		return
	}
	decision := cands[len(cands)-1]
	if decision.attr < 0 {
		// Pre-pruning: "no split" wins.
		t.deactivate(leaf)
		t.mem.nInactive++
		t.mem.nActive--
	} else {
		branch := t.assemble(leaf, decision)
		t.shape++
		t.mem.nActive += 1
		if parent == nil {
			t.root = branch
		} else {
			parent.children[parentBranch] = branch
		}
	}
	t.enforceSizeLimit()
}

// hoeffdingBound is ε = √(R² ln(1/δ) / 2n).
func hoeffdingBound(rangeVal, delta, n float64) float64 {
	return math.Sqrt((rangeVal * rangeVal * math.Log(1.0/delta)) / (2.0 * n))
}

// suggestions is River's best_split_suggestions: the null split (under
// merit pre-pruning), then each observer's best candidate, in the
// observers' order. A leaf whose majority class holds more than
// MaxShareToSplit suggests the null split alone.
func (t *ctree) suggestions(leaf *cnode) []splitCand {
	cands := t.sc.cand[:0]
	defer func() { t.sc.cand = cands }()
	total := leaf.stats.total()
	if top := leaf.stats.maxWeight(); top != 0 && top/total > t.p.maxShare {
		return append(cands, splitCand{merit: math.Inf(-1), attr: -1})
	}
	if t.p.meritPreprune {
		cands = append(cands, splitCand{merit: math.Inf(-1), attr: -1})
	}
	if t.p.criterion == CriterionInfoGain {
		t.sc.preEntropy = leaf.stats.entropy()
	}
	o := leaf.obs
	for _, j := range o.order {
		cands = append(cands, t.bestGaussian(leaf, j))
	}
	for i := range o.buckets {
		cands = append(cands, t.bestBucket(leaf, i))
	}
	return cands
}

// bestGaussian is GaussianSplitter.best_evaluated_split_suggestion.
func (t *ctree) bestGaussian(leaf *cnode, j int32) splitCand {
	best := splitCand{merit: math.Inf(-1), attr: -1}
	g := &leaf.obs.gauss[j]
	lo, hi, ok := g.splitRange()
	if !ok {
		return best
	}
	bin := hi - lo
	bin /= gaussianSplits + 1.0
	left, right := t.sc.votes, t.sc.dist2s
	for _, c := range g.classes {
		g.est[c].sigma = math.Sqrt(g.est[c].v.variance())
	}
	for i := range gaussianSplits {
		v := lo + (bin * float64(i+1))
		if !(lo < v && v < hi) {
			continue
		}
		if m := t.gaussianMerit(g, v, left, right); m > best.merit {
			best = splitCand{merit: m, attr: j, threshold: v}
		}
	}
	return best
}

// gaussianMerit is the merit of splitting observer g at v: what
// splitDists and meritOfSplit compute, without building the two
// distributions (left and right are class-indexed scratch). The sums run
// over the classes in the observer's order, as the distributions' keys
// would, and a class missing from one side adds nothing there, as its
// missing key would not.
func (t *ctree) gaussianMerit(g *gaussObs, v float64, left, right []float64) float64 {
	wl, wr := 0.0, 0.0
	for _, c := range g.classes {
		e := &g.est[c]
		n := e.v.n
		switch {
		case v < e.lo:
			left[c], right[c] = 0, n
		case v >= e.hi:
			left[c], right[c] = n, 0
		default:
			l := e.cdfWithSigma(v) * n
			left[c], right[c] = l, n-l
		}
		wl += left[c]
		wr += right[c]
	}
	if subsetsAbove(wl, wr, t.p.minBranchFrac) < 2 {
		return math.Inf(-1)
	}
	total := 0 + wl + wr
	if t.p.criterion == CriterionGini {
		gini := 0.0
		gini += (wl / total) * giniOf(left, g.classes, wl)
		gini += (wr / total) * giniOf(right, g.classes, wr)
		return 1 - gini
	}
	e := 0.0
	e += wl * entropyOf(left, g.classes)
	e += wr * entropyOf(right, g.classes)
	return t.sc.preEntropy - e/total
}

// bucketDists fills the children's distributions of a bucket split in
// form f: River's multiway split (classes sorted) or binary split on a
// value (classes in the observer's order).
func (t *ctree) bucketDists(o *leafObs, ob *bucketObs, f bucketForm, first, second *classDist) {
	first.reset()
	second.reset()
	absent, present := first, second
	if f == bucketEqualPresent {
		absent, present = second, first
	}
	order := o.seen.order
	if f == bucketMultiway {
		order = t.sc.pool[:0]
		for _, c := range o.seen.order {
			order = append(order, c)
		}
		slices.Sort(order)
	}
	for _, c := range order {
		if a := o.absent(ob, c); a > 0 {
			absent.set(c, a)
		}
		if p := ob.present[c]; p > 0 {
			present.set(c, p)
		}
	}
}

// bestBucket is NominalSplitterClassif.best_evaluated_split_suggestion for
// bucket observer i, over the values absent and present. A bucket that was
// present in every row has one value and no split.
func (t *ctree) bestBucket(leaf *cnode, i int) splitCand {
	best := splitCand{merit: math.Inf(-1), attr: -1}
	o := leaf.obs
	ob := &o.buckets[i]
	sawAbsent := false
	for _, c := range o.seen.order {
		sawAbsent = sawAbsent || o.absent(ob, c) > 0
	}
	if !sawAbsent {
		return best
	}
	attr := int32(t.p.nd) + ob.bucket
	lhs, rhs := &t.sc.lhs, &t.sc.rhs
	if !t.p.binarySplit {
		t.bucketDists(o, ob, bucketMultiway, lhs, rhs)
		best = splitCand{merit: t.p.criterion.meritOfSplit(t.sc.preEntropy, lhs, rhs, t.p.minBranchFrac), attr: attr, form: bucketMultiway}
	}
	for _, f := range []bucketForm{bucketEqualAbsent, bucketEqualPresent} {
		t.bucketDists(o, ob, f, lhs, rhs)
		if m := t.p.criterion.meritOfSplit(t.sc.preEntropy, lhs, rhs, t.p.minBranchFrac); m > best.merit {
			best = splitCand{merit: m, attr: attr, form: f}
		}
	}
	if math.IsInf(best.merit, -1) {
		best.attr = -1
	}
	return best
}

// assemble replaces leaf by a branch for decision, with two new leaves
// that start from the split's class distributions (River's assemble). The
// branch keeps the leaf's stats, depth and, in a HAT, gets a fresh ADWIN.
func (t *ctree) assemble(leaf *cnode, d splitCand) *cnode {
	o := leaf.obs
	first, second := newClassDist(t.p.k), newClassDist(t.p.k)
	branch := &cnode{stats: leaf.stats, depth: leaf.depth, feature: d.attr, threshold: d.threshold}
	if nd := int32(t.p.nd); d.attr < nd {
		o.gauss[d.attr].splitDists(d.threshold, &first, &second)
	} else {
		branch.bucket = true
		branch.feature = d.attr - nd
		i, _ := o.bucketIndex(branch.feature)
		t.bucketDists(o, &o.buckets[i], d.form, &first, &second)
		if d.form == bucketEqualPresent {
			branch.presentChild = 0
		} else {
			branch.presentChild = 1
		}
	}
	branch.children = [2]*cnode{t.newLeaf(first, leaf.depth+1), t.newLeaf(second, leaf.depth+1)}
	if t.hat != nil {
		branch.adwin = t.hat.newADWIN()
	}
	return branch
}

// disableAttribute is River's LeafMajorityClass.disable_attribute: the
// attribute's observer is dropped and never fed again at this leaf.
func (t *ctree) disableAttribute(leaf *cnode, attr int32) {
	o := leaf.obs
	if o == nil {
		return
	}
	nd := int32(t.p.nd)
	if attr < nd {
		if o.gauss[attr].classes == nil {
			return
		}
		o.gauss[attr] = gaussObs{}
		o.order = slices.DeleteFunc(o.order, func(j int32) bool { return j == attr })
	} else {
		i, found := o.bucketIndex(attr - nd)
		if !found {
			return
		}
		o.buckets = slices.Delete(o.buckets, i, i+1)
	}
	i, _ := slices.BinarySearch(o.disabled, attr)
	o.disabled = slices.Insert(o.disabled, i, attr)
	leaf.ver++
}

// entropyOf is classDist.entropy over the class-indexed v, in order,
// computed as −Σ p·ln(p)/ln(2) over the shares p: one natural logarithm
// per class, where River's form takes one more base-2 logarithm (the same
// up to rounding).
func entropyOf(v []float64, order []int32) float64 {
	sum := 0.0
	for _, c := range order {
		if x := v[c]; x > 0 {
			sum += x
		}
	}
	if !(sum > 0) {
		return 0
	}
	h := 0.0
	inv := 1 / sum
	for _, c := range order {
		if x := v[c]; x > 0 {
			p := x * inv
			h -= p * math.Log(p)
		}
	}
	return h * (1 / math.Ln2)
}

// giniOf is classDist.gini over the class-indexed v, in order.
func giniOf(v []float64, order []int32, sum float64) float64 {
	g := 1.0
	if sum != 0 {
		for _, c := range order {
			f := v[c] / sum
			g -= f * f
		}
	}
	return g
}
