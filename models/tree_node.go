package models

import (
	"slices"

	"github.com/driftline/driftline/detectors"
)

// cnode is a node of a classification tree: a branch (children set) or a
// leaf. It carries River's node state field for field, so that the trees
// can follow River's algorithms step by step.
type cnode struct {
	// stats is the node's class distribution: River's node.stats. A leaf
	// made by a split starts from its branch's estimate.
	stats classDist
	depth int

	// Branch: the test sends a row to children[0] or children[1].
	children [2]*cnode
	// bucket splits on whether hash bucket `feature` is present (the row
	// goes to children[presentChild] if it is); otherwise on dense column
	// `feature`: children[0] if value ≤ threshold, children[1] if above.
	bucket       bool
	presentChild uint8
	feature      int32
	threshold    float64

	// Leaf. obs is nil while the leaf is inactive (River: splitters None).
	obs         *leafObs
	ver         uint32  // changes whenever stats or obs do (see ctree.memo)
	lastAttempt float64 // weight seen at the last split attempt
	mcCorrect   float64 // LeafNaiveBayesAdaptive: weight the majority class got right
	nbCorrect   float64 // … and naive Bayes
	subspace    []int32 // ARF: the sampled attributes (dense j, or NumDense+bucket); nil until sampled

	// HAT (branches and leaves): the error monitor and alternate tree.
	adwin *detectors.ADWIN
	err   runningMean
	alt   *cnode
}

func (n *cnode) isBranch() bool { return n.children[0] != nil }
func (n *cnode) active() bool   { return n.obs != nil }

// leafObs is an active leaf's attribute observers: River's leaf.splitters.
type leafObs struct {
	// seen is the class distribution the observers have seen since the
	// leaf became active; bucket observers derive their absent counts
	// from it.
	seen    classDist
	gauss   []gaussObs // by dense column; classes == nil until created
	order   []int32    // dense columns in the order their observers were created
	buckets []bucketObs
	// disabled marks attributes RemovePoorAttrs dropped (dense j, or
	// NumDense+bucket), sorted.
	disabled []int32
}

func newLeafObs(p *treeParams) *leafObs {
	return &leafObs{seen: newClassDist(p.k), gauss: make([]gaussObs, p.nd)}
}

func (o *leafObs) isDisabled(attr int32) bool {
	_, found := slices.BinarySearch(o.disabled, attr)
	return found
}

// bucketIndex is the position of bucket b's observer, and whether it
// exists.
func (o *leafObs) bucketIndex(b int32) (int, bool) {
	return slices.BinarySearchFunc(o.buckets, b, func(ob bucketObs, b int32) int {
		switch {
		case ob.bucket < b:
			return -1
		case ob.bucket > b:
			return 1
		}
		return 0
	})
}

// updateDense feeds dense column j's observer, creating it first.
func (o *leafObs) updateDense(k int, j int32, x float64, y int32, w float64) {
	g := &o.gauss[j]
	if g.classes == nil {
		*g = newGaussObs(k)
		o.order = append(o.order, j)
	}
	g.update(x, y, w)
}

// updateBucket feeds bucket b's observer, creating it first.
func (o *leafObs) updateBucket(k int, b int32, y int32, w float64) {
	i, found := o.bucketIndex(b)
	if !found {
		o.buckets = slices.Insert(o.buckets, i, bucketObs{bucket: b, present: make([]float64, k)})
	}
	o.buckets[i].present[y] += w
}

// absent is the weight of class c seen without bucket ob: River's count
// for the value 0.
func (o *leafObs) absent(ob *bucketObs, c int32) float64 {
	return o.seen.w[c] - ob.present[c]
}

// totalWeight is River's node.total_weight: a leaf's summed stats, a
// branch's children's total weights.
func (n *cnode) totalWeight() float64 {
	if !n.isBranch() {
		return n.stats.total()
	}
	return n.children[0].totalWeight() + n.children[1].totalWeight()
}

// mostCommonPath is River's most_common_path of a binary branch: the
// heavier child, the left one on a tie.
func (n *cnode) mostCommonPath() (int, *cnode) {
	if n.children[0].totalWeight() < n.children[1].totalWeight() {
		return 1, n.children[1]
	}
	return 0, n.children[0]
}

// branchNo is the child a row goes to, and false when the split's dense
// value is missing (River's KeyError).
func (n *cnode) branchNo(r *treeRow) (int, bool) {
	if n.bucket {
		if r.has(n.feature) {
			return int(n.presentChild), true
		}
		return 1 - int(n.presentChild), true
	}
	v, ok := r.value(int(n.feature))
	if !ok {
		return 0, false
	}
	if v <= n.threshold {
		return 0, true
	}
	return 1, true
}

// leafFor is the leaf a row reaches (River's traverse(until_leaf=True)): a
// missing value follows the most common path.
func (n *cnode) leafFor(r *treeRow) *cnode {
	for n.isBranch() {
		b, ok := n.branchNo(r)
		if !ok {
			b, _ = n.mostCommonPath()
		}
		n = n.children[b]
	}
	return n
}

// nLeaves is River's n_leaves (alternate trees not included).
func (n *cnode) nLeaves() int {
	if !n.isBranch() {
		return 1
	}
	return n.children[0].nLeaves() + n.children[1].nLeaves()
}

// forEachLeaf visits the leaves left to right as River's iter_leaves does,
// including the alternate trees of the branches below n (not n's own).
func (n *cnode) forEachLeaf(visit func(*cnode)) {
	if !n.isBranch() {
		visit(n)
		return
	}
	for _, c := range n.children {
		c.forEachLeaf(visit)
		if c.isBranch() && c.alt != nil {
			c.alt.forEachLeaf(visit)
		}
	}
}
