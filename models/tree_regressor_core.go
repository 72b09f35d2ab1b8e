package models

import (
	"math"
	"slices"
	"unsafe"

	"github.com/driftline/driftline/models/internal/pyrand"
)

// rnode is a node of a regression tree: a branch (children set) or a leaf,
// with River's node state.
type rnode struct {
	stats runningVar // River's node.stats: the targets' Var
	depth int

	children     [2]*rnode
	bucket       bool
	presentChild uint8
	feature      int32
	threshold    float64

	obs         *rleafObs // nil while inactive
	lastAttempt float64
	model       *leafModel // model and adaptive leaves
	fmseMean    float64    // adaptive leaves: the decayed squared errors
	fmseModel   float64    // of the mean and of the model
	subspace    []int32    // ARF members
}

func (n *rnode) isBranch() bool { return n.children[0] != nil }
func (n *rnode) active() bool   { return n.obs != nil }

// rleafObs is an active regression leaf's splitters.
type rleafObs struct {
	seen     runningVar // targets since activation: the buckets' absent statistics follow from it
	ebsts    []ebst     // by dense column
	order    []int32    // dense columns in the order their splitters were created
	buckets  []rbucketObs
	disabled []int32
}

// rbucketObs is River's NominalSplitterReg for one hash bucket, values
// absent and present; only the present statistics are kept.
type rbucketObs struct {
	bucket  int32
	present runningVar
}

func (o *rleafObs) bucketIndex(b int32) (int, bool) {
	return slices.BinarySearchFunc(o.buckets, b, func(ob rbucketObs, b int32) int {
		switch {
		case ob.bucket < b:
			return -1
		case ob.bucket > b:
			return 1
		}
		return 0
	})
}

func (o *rleafObs) isDisabled(attr int32) bool {
	_, found := slices.BinarySearch(o.disabled, attr)
	return found
}

func (n *rnode) totalWeight() float64 {
	if !n.isBranch() {
		return n.stats.n
	}
	return n.children[0].totalWeight() + n.children[1].totalWeight()
}

func (n *rnode) mostCommonPath() (int, *rnode) {
	if n.children[0].totalWeight() < n.children[1].totalWeight() {
		return 1, n.children[1]
	}
	return 0, n.children[0]
}

func (n *rnode) branchNo(r *treeRow) (int, bool) {
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

func (n *rnode) leafFor(r *treeRow) *rnode {
	for n.isBranch() {
		b, ok := n.branchNo(r)
		if !ok {
			b, _ = n.mostCommonPath()
		}
		n = n.children[b]
	}
	return n
}

func (n *rnode) forEachLeaf(visit func(*rnode)) {
	if !n.isBranch() {
		visit(n)
		return
	}
	n.children[0].forEachLeaf(visit)
	n.children[1].forEachLeaf(visit)
}

// regParams is a resolved HoeffdingTreeRegressorConfig as the tree reads
// it.
type regParams struct {
	nd, nh, bits  int
	grace         float64
	maxDepth      int
	delta, tau    float64
	leafPred      RegressionLeafPrediction
	decay         float64
	minSamples    float64
	binarySplit   bool
	maxBytes      float64
	memPeriod     float64
	stopMem       bool
	removePoor    bool
	meritPreprune bool
	rate          float64
	digits        int
}

// rtree is one regression Hoeffding tree: River's HoeffdingTreeRegressor.
type rtree struct {
	p          *regParams
	root       *rnode
	mem        memState
	weightSeen float64

	randomSubspace bool
	maxFeatures    int
	rng            *pyrand.Source
	sc             *treeScratch
}

func newRTree(p *regParams, sc *treeScratch) *rtree {
	return &rtree{p: p, mem: newMemState(), sc: sc}
}

// newLeaf is River's _new_leaf: the model is a copy of the parent leaf's
// (a fresh one at the root), and an adaptive leaf inherits its parent's
// error sums.
func (t *rtree) newLeaf(stats runningVar, depth int, parent *rnode) *rnode {
	n := &rnode{stats: stats, depth: depth, obs: t.newObs(), lastAttempt: stats.n}
	if t.p.leafPred != RegressionLeafMean {
		if parent != nil && parent.model != nil {
			n.model = parent.model.clone()
		} else {
			n.model = newLeafModel(t.p.nd)
		}
	}
	if parent != nil && t.p.leafPred == RegressionLeafAdaptive {
		n.fmseMean, n.fmseModel = parent.fmseMean, parent.fmseModel
	}
	return n
}

func (t *rtree) newObs() *rleafObs { return &rleafObs{ebsts: make([]ebst, t.p.nd)} }

func (t *rtree) deactivate(n *rnode) { n.obs = nil }

func (t *rtree) activate(n *rnode) {
	if n.obs == nil {
		n.obs = t.newObs()
	}
}

// learnOne is River's HoeffdingTreeRegressor.learn_one.
func (t *rtree) learnOne(r *treeRow, y, w float64) {
	t.weightSeen += w
	if t.root == nil {
		t.root = t.newLeaf(runningVar{}, 0, nil)
		t.mem.nActive = 1
	}
	var parent *rnode
	parentBranch := -1
	node := t.root
	for node.isBranch() {
		b, ok := node.branchNo(r)
		if !ok {
			break
		}
		parent, parentBranch, node = node, b, node.children[b]
	}
	if !node.isBranch() {
		t.learnLeaf(node, r, y, w)
		if t.mem.growthAllowed && node.active() {
			if node.depth >= t.p.maxDepth {
				t.deactivate(node)
				t.mem.nActive--
				t.mem.nInactive++
			} else if seen := node.stats.n; seen-node.lastAttempt >= t.p.grace {
				t.attemptSplit(node, parent, parentBranch)
				node.lastAttempt = seen
			}
		}
	} else {
		for node.isBranch() {
			_, node = node.mostCommonPath()
			for node.isBranch() {
				b, ok := node.branchNo(r)
				if !ok {
					break
				}
				node = node.children[b]
			}
		}
		t.learnLeaf(node, r, y, w)
	}
	if math.Mod(t.weightSeen, t.p.memPeriod) == 0 {
		t.estimateModelSize()
	}
}

// learnLeaf is the leaf's learn_one: River's LeafAdaptive, LeafModel and
// LeafMean.
func (t *rtree) learnLeaf(n *rnode, r *treeRow, y, w float64) {
	if t.p.leafPred == RegressionLeafAdaptive {
		dMean, dModel := y-n.stats.mean, y-n.model.predict(r)
		n.fmseMean = t.p.decay*n.fmseMean + dMean*dMean
		n.fmseModel = t.p.decay*n.fmseModel + dModel*dModel
	}
	n.stats.update(y, w)
	if n.active() {
		t.updateObservers(n, r, y, w)
	}
	if n.model != nil {
		n.model.learn(r, y, w, t.p.rate)
	}
}

func (t *rtree) updateObservers(n *rnode, r *treeRow, y, w float64) {
	o := n.obs
	o.seen.update(y, w)
	nd := int32(t.p.nd)
	feed := func(attr int32) {
		if o.disabled != nil && o.isDisabled(attr) {
			return
		}
		if attr < nd {
			if x, ok := r.value(int(attr)); ok {
				e := &o.ebsts[attr]
				if !e.made {
					o.order = append(o.order, attr)
				}
				e.insert(x, t.p.digits, y, w)
			}
			return
		}
		b := attr - nd
		if !r.has(b) {
			return
		}
		i, found := o.bucketIndex(b)
		if !found {
			o.buckets = slices.Insert(o.buckets, i, rbucketObs{bucket: b})
		}
		o.buckets[i].present.update(y, w)
	}
	if !t.randomSubspace {
		for j := range nd {
			feed(j)
		}
		for _, b := range r.buckets {
			feed(nd + b)
		}
		return
	}
	if len(n.subspace) == 0 {
		n.subspace = sampleSubspace(t.sc, t.rng, r, t.p.nd, t.maxFeatures)
	}
	for _, attr := range n.subspace {
		feed(attr)
	}
}

// predict is the leaf's prediction: the mean, the model, or (adaptive)
// whichever has the smaller decayed squared error. A model that has
// diverged to a non-finite value gives way to the mean.
func (t *rtree) predictLeaf(n *rnode, r *treeRow) float64 {
	switch t.p.leafPred {
	case RegressionLeafMean:
		return n.stats.mean
	case RegressionLeafAdaptive:
		if n.fmseMean < n.fmseModel {
			return n.stats.mean
		}
	}
	if v := n.model.predict(r); !math.IsNaN(v) && !math.IsInf(v, 0) {
		return v
	}
	return n.stats.mean
}

// predictOne is River's HoeffdingTreeRegressor.predict_one: 0 before the
// first row.
func (t *rtree) predictOne(r *treeRow) float64 {
	if t.root == nil {
		return 0
	}
	return t.predictLeaf(t.root.leafFor(r), r)
}

// rsplit is a regression split suggestion; attr < 0 is the null split.
type rsplit struct {
	merit       float64
	attr        int32
	threshold   float64
	present     bool // bucket split on the value present (children [present, rest])
	left, right runningVar
}

// attemptSplit is River's HoeffdingTreeRegressor._attempt_to_split.
func (t *rtree) attemptSplit(leaf, parent *rnode, parentBranch int) {
	cands := t.suggestions(leaf)
	slices.SortStableFunc(cands, func(a, b rsplit) int {
		switch {
		case a.merit < b.merit:
			return -1
		case b.merit < a.merit:
			return 1
		}
		return 0
	})
	shouldSplit := false
	var bound float64
	if len(cands) < 2 {
		shouldSplit = len(cands) > 0
	} else {
		bound = hoeffdingBound(1, t.p.delta, leaf.stats.n)
		best, second := cands[len(cands)-1], cands[len(cands)-2]
		if best.merit > 0 && (second.merit/best.merit < 1-bound || bound < t.p.tau) {
			shouldSplit = true
		}
		if t.p.removePoor {
			ratio := second.merit / best.merit
			for _, c := range cands {
				if c.attr >= 0 && c.merit/best.merit < ratio-2*bound {
					t.disableAttribute(leaf, c.attr)
				}
			}
		}
	}
	switch {
	case shouldSplit:
		d := cands[len(cands)-1]
		if d.attr < 0 {
			t.deactivate(leaf)
			t.mem.nInactive++
			t.mem.nActive--
		} else {
			branch := &rnode{stats: leaf.stats, depth: leaf.depth, feature: d.attr, threshold: d.threshold}
			if nd := int32(t.p.nd); d.attr >= nd {
				branch.bucket, branch.feature = true, d.attr-nd
				if d.present {
					branch.presentChild = 0
				} else {
					branch.presentChild = 1
				}
			}
			branch.children = [2]*rnode{t.newLeaf(d.left, leaf.depth+1, leaf), t.newLeaf(d.right, leaf.depth+1, leaf)}
			t.mem.nActive++
			if parent == nil {
				t.root = branch
			} else {
				parent.children[parentBranch] = branch
			}
		}
		t.enforceSizeLimit()
	case len(cands) >= 2 && cands[len(cands)-1].merit > 0 && cands[len(cands)-2].merit > 0:
		best, second := cands[len(cands)-1], cands[len(cands)-2]
		for _, j := range leaf.obs.order {
			leaf.obs.ebsts[j].removeBadSplits(&leaf.stats, t.p.minSamples, second.merit/best.merit, best.merit, bound)
		}
	}
}

// suggestions is HTLeaf.best_split_suggestions for a regression leaf.
func (t *rtree) suggestions(leaf *rnode) []rsplit {
	var cands []rsplit
	if t.p.meritPreprune {
		cands = append(cands, rsplit{merit: math.Inf(-1), attr: -1})
	}
	o := leaf.obs
	for _, j := range o.order {
		c := o.ebsts[j].best(&leaf.stats, t.p.minSamples)
		s := rsplit{merit: c.merit, attr: -1}
		if c.found {
			s = rsplit{merit: c.merit, attr: j, threshold: c.threshold, left: c.left, right: c.right}
		}
		cands = append(cands, s)
	}
	nd := int32(t.p.nd)
	for i := range o.buckets {
		cands = append(cands, t.bestBucket(leaf, &o.buckets[i], nd))
	}
	return cands
}

// bestBucket is NominalSplitterReg.best_evaluated_split_suggestion over the
// values absent (0) and present (1), each against the rest of the leaf.
func (t *rtree) bestBucket(leaf *rnode, ob *rbucketObs, nd int32) rsplit {
	best := rsplit{merit: math.Inf(-1), attr: -1}
	absent := leaf.obs.seen
	absent.sub(ob.present)
	values := []struct {
		dist    runningVar
		present bool
		seen    bool
	}{{absent, false, leaf.obs.seen.n-ob.present.n > 0}, {ob.present, true, true}}
	for _, v := range values {
		if !v.seen {
			continue
		}
		rest := leaf.stats
		rest.sub(v.dist)
		if m := varianceReduction(&leaf.stats, &v.dist, &rest, t.p.minSamples); m > best.merit {
			best = rsplit{merit: m, attr: nd + ob.bucket, present: v.present, left: v.dist, right: rest}
		}
	}
	return best
}

func (t *rtree) disableAttribute(leaf *rnode, attr int32) {
	o := leaf.obs
	if o == nil {
		return
	}
	nd := int32(t.p.nd)
	if attr < nd {
		if !o.ebsts[attr].made {
			return
		}
		o.ebsts[attr] = ebst{}
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
}

// Byte sizes of a regression tree's pieces.
const (
	rnodeBytes    = int(unsafe.Sizeof(rnode{}))
	rleafObsBytes = int(unsafe.Sizeof(rleafObs{}))
	ebstNodeBytes = int(unsafe.Sizeof(ebstNode{}))
	rbucketBytes  = int(unsafe.Sizeof(rbucketObs{}))
	ebstBytes     = int(unsafe.Sizeof(ebst{}))
)

func (n *ebstNode) count() int {
	if n == nil {
		return 0
	}
	return 1 + n.left.count() + n.right.count()
}

func (t *rtree) leafBytes(n *rnode) int {
	size := rnodeBytes + 4*len(n.subspace)
	if n.model != nil {
		size += 8*len(n.model.w) + 16*len(n.model.buckets) + 64
	}
	if o := n.obs; o != nil {
		size += rleafObsBytes + len(o.ebsts)*ebstBytes + 4*cap(o.order) + len(o.buckets)*rbucketBytes + 4*len(o.disabled)
		for _, j := range o.order {
			size += o.ebsts[j].root.count() * ebstNodeBytes
		}
	}
	return size
}

func (t *rtree) treeBytes(n *rnode) int {
	if !n.isBranch() {
		return t.leafBytes(n)
	}
	return rnodeBytes + t.treeBytes(n.children[0]) + t.treeBytes(n.children[1])
}

func (t *rtree) leaves(sized bool) ([]*rnode, []leafInfo) {
	var nodes []*rnode
	var infos []leafInfo
	t.root.forEachLeaf(func(n *rnode) {
		nodes = append(nodes, n)
		// River's LeafMean.calculate_promise: the deeper, the less promising.
		info := leafInfo{promise: -float64(n.depth), active: n.active(), depth: n.depth}
		if sized {
			info.bytes = float64(t.leafBytes(n))
		}
		infos = append(infos, info)
	})
	return nodes, infos
}

func (t *rtree) estimateModelSize() {
	_, infos := t.leaves(true)
	if t.mem.estimate(infos, float64(t.treeBytes(t.root)), t.p.maxBytes) {
		t.enforceSizeLimit()
	}
}

func (t *rtree) enforceSizeLimit() {
	if t.mem.stopGrowth(t.p.maxBytes, t.p.stopMem) {
		return
	}
	if !t.mem.estimated() {
		if t.mem.nInactive == 0 {
			return // nothing to reactivate; the regressor's counters are exact
		}
		t.root.forEachLeaf(func(n *rnode) {
			if !n.active() && n.depth < t.p.maxDepth {
				t.activate(n)
				t.mem.nActive++
				t.mem.nInactive--
			}
		})
		return
	}
	nodes, infos := t.leaves(false)
	t.mem.enforce(infos, make([]int, len(infos)), t.p.maxBytes, t.p.maxDepth, func(i int, active bool) {
		if active {
			t.activate(nodes[i])
		} else {
			t.deactivate(nodes[i])
		}
	})
}
