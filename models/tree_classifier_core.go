package models

import (
	"math"
	"slices"

	"github.com/driftline/driftline/models/internal/pyrand"
)

// ctree is one classification Hoeffding tree: the state River's
// HoeffdingTreeClassifier keeps, and its algorithms. HoeffdingTreeClassifier
// wraps one; HoeffdingAdaptiveTreeClassifier wraps one with adaptive set;
// ARFClassifier holds one per member, with randomSubspace set.
type ctree struct {
	p    *treeParams
	root *cnode
	// mem is River's bookkeeping, kept as River keeps it.
	mem        memState
	weightSeen float64
	classes    []bool // River's classes: the labels learned so far

	// HAT.
	hat                    *hatParams
	nAlt, nPruned, nSwitch int
	// rng is HAT's bootstrap source or, for an ARF member, the forest's.
	rng *pyrand.Source
	// randomSubspace makes each leaf observe maxFeatures attributes drawn
	// at random (an ARF member).
	randomSubspace bool
	maxFeatures    int

	sc *treeScratch
	// memo is the last naive-Bayes prediction, reused while the leaf and
	// the row are unchanged (predict, then learn, the same row; a HAT's
	// branches asking the same leaf).
	memo nbMemo
	// path is the last full path walked (no missing value on it), reused
	// while the row and the tree's structure are unchanged; shape counts
	// the structural changes.
	path  pathMemo
	shape uint64
}

// pathMemo is the leaf a row reaches, with its parent.
type pathMemo struct {
	row          uint64
	shape        uint64
	leaf, parent *cnode
	branch       int
}

// walk is River's walk(x, until_leaf=False) from the root: the leaf the row
// reaches with its parent and branch, or the branch whose split value the
// row misses.
func (t *ctree) walk(r *treeRow) (parent *cnode, parentBranch int, node *cnode) {
	if m := &t.path; m.leaf != nil && m.row == r.id && m.shape == t.shape {
		return m.parent, m.branch, m.leaf
	}
	parentBranch = -1
	node = t.root
	for node.isBranch() {
		b, ok := node.branchNo(r)
		if !ok {
			return parent, parentBranch, node
		}
		parent, parentBranch, node = node, b, node.children[b]
	}
	t.path = pathMemo{row: r.id, shape: t.shape, leaf: node, parent: parent, branch: parentBranch}
	return parent, parentBranch, node
}

// nbMemo is a leaf's naive-Bayes prediction for a row.
type nbMemo struct {
	leaf  *cnode
	ver   uint32
	row   uint64
	ok    bool
	votes []float64
}

// treeScratch is per-call working memory, shared by the trees of a forest
// (which are never used concurrently).
type treeScratch struct {
	row      treeRow
	lhs, rhs classDist
	cand     []splitCand
	votes    []float64
	dist     []float64
	dist2s   []float64
	pool     []int32
	picked   []int32
	// preEntropy is the entropy of the leaf whose split is being evaluated.
	preEntropy float64
}

func newTreeScratch(p *treeParams) *treeScratch {
	return &treeScratch{
		row: treeRow{scratch: make([]int32, 0, p.nh)},
		lhs: newClassDist(p.k), rhs: newClassDist(p.k),
		votes: make([]float64, p.k), dist: make([]float64, p.k), dist2s: make([]float64, p.k),
	}
}

// dist2 is a second class-indexed buffer, for predictions that combine
// several leaves into dist.
func (sc *treeScratch) dist2() []float64 { return sc.dist2s }

func newCTree(p *treeParams, sc *treeScratch) *ctree {
	return &ctree{p: p, mem: newMemState(), classes: make([]bool, p.k), sc: sc}
}

// newLeaf is River's _new_leaf: an active leaf whose last split attempt
// is at its initial weight. A HAT leaf gets a fresh ADWIN.
func (t *ctree) newLeaf(stats classDist, depth int) *cnode {
	n := &cnode{stats: stats, depth: depth, obs: newLeafObs(t.p)}
	n.lastAttempt = stats.total()
	if t.hat != nil {
		n.adwin = t.hat.newADWIN()
	}
	return n
}

// deactivate drops a leaf's observers (River: splitters = None); an ARF
// leaf keeps its subspace.
func (t *ctree) deactivate(n *cnode) {
	n.obs = nil
	n.ver++
}

// activate gives an inactive leaf fresh observers (River: splitters = {}).
func (t *ctree) activate(n *cnode) {
	if n.obs == nil {
		n.obs = newLeafObs(t.p)
		n.ver++
	}
}

// learnOne is River's HoeffdingTreeClassifier.learn_one.
func (t *ctree) learnOne(r *treeRow, y int32, w float64) {
	t.classes[y] = true
	t.weightSeen += w
	if t.root == nil {
		t.root = t.newLeaf(newClassDist(t.p.k), 0)
		t.mem.nActive = 1
	}
	parent, parentBranch, node := t.walk(r)
	if !node.isBranch() {
		t.learnLeaf(node, r, y, w)
		if t.mem.growthAllowed && node.active() {
			if node.depth >= t.p.maxDepth {
				t.deactivate(node)
				t.mem.nActive--
				t.mem.nInactive++
			} else if seen := node.stats.total(); seen-node.lastAttempt >= t.p.grace {
				t.attemptSplit(node, parent, parentBranch)
				node.lastAttempt = seen
			}
		}
	} else {
		// A missing value: follow the most common paths to a leaf, which
		// learns without a split attempt (as River does).
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
	t.checkMemory()
}

// checkMemory runs River's memory estimate every MemoryEstimatePeriod of
// weight.
func (t *ctree) checkMemory() {
	if math.Mod(t.weightSeen, t.p.memPeriod) == 0 {
		t.estimateModelSize()
	}
}

// learnLeaf is the leaf's learn_one: River's LeafNaiveBayesAdaptive counts
// which predictor was right, then HTLeaf updates the stats and, while
// active, the observers.
func (t *ctree) learnLeaf(n *cnode, r *treeRow, y int32, w float64) {
	if t.p.leafPred == LeafNaiveBayesAdaptive && n.active() {
		if len(n.stats.order) == 0 || n.stats.argmax() == y {
			n.mcCorrect += w
		}
		if t.naiveBayes(n, r, t.sc.votes) && argmaxIn(t.sc.votes, n.stats.order) == y {
			n.nbCorrect += w
		}
	}
	n.stats.add(y, w)
	if n.active() {
		t.updateObservers(n, r, y, w)
	}
	n.ver++
}

// argmaxIn is the first class of greatest value in order.
func argmaxIn(v []float64, order []int32) int32 {
	best := int32(-1)
	for _, c := range order {
		if best < 0 || v[c] > v[best] {
			best = c
		}
	}
	return best
}

// updateObservers is River's update_splitters (with BaseRandomLeaf's
// random subspace for an ARF member).
func (t *ctree) updateObservers(n *cnode, r *treeRow, y int32, w float64) {
	o := n.obs
	o.seen.add(y, w)
	k, nd := t.p.k, int32(t.p.nd)
	if !t.randomSubspace {
		for j := range nd {
			if x, ok := r.value(int(j)); ok && (o.disabled == nil || !o.isDisabled(j)) {
				o.updateDense(k, j, x, y, w)
			}
		}
		for _, b := range r.buckets {
			if o.disabled == nil || !o.isDisabled(nd+b) {
				o.updateBucket(k, b, y, w)
			}
		}
		return
	}
	if len(n.subspace) == 0 {
		n.subspace = sampleSubspace(t.sc, t.rng, r, t.p.nd, t.maxFeatures)
	}
	for _, attr := range n.subspace {
		if o.disabled != nil && o.isDisabled(attr) {
			continue
		}
		if attr < nd {
			if x, ok := r.value(int(attr)); ok {
				o.updateDense(k, attr, x, y, w)
			}
		} else if r.has(attr - nd) {
			o.updateBucket(k, attr-nd, y, w)
		}
	}
}

// sampleSubspace is BaseRandomLeaf._sample_features: the row's present
// attributes, sorted (dense columns, then NumDense+bucket), sampled down
// to maxFeatures with the forest's random.sample.
func sampleSubspace(sc *treeScratch, rng *pyrand.Source, r *treeRow, nd, maxFeatures int) []int32 {
	pool := sc.pool[:0]
	for j := range int32(nd) {
		if _, ok := r.value(int(j)); ok {
			pool = append(pool, j)
		}
	}
	for _, b := range r.buckets {
		pool = append(pool, int32(nd)+b)
	}
	sc.pool = pool
	if len(pool) >= maxFeatures {
		sc.picked = rng.Sample(sc.picked, pool, maxFeatures)
		return slices.Clone(sc.picked)
	}
	return slices.Clone(pool)
}

// naiveBayes is River's do_naive_bayes_prediction into the class-indexed
// out (0 for classes without a key); false (and out all 0) when the leaf
// has no weight.
func (t *ctree) naiveBayes(n *cnode, r *treeRow, out []float64) bool {
	m := &t.memo
	if m.leaf == n && m.ver == n.ver && m.row == r.id {
		copy(out, m.votes)
		return m.ok
	}
	ok := t.computeNaiveBayes(n, r, out)
	if m.votes == nil {
		m.votes = make([]float64, t.p.k)
	}
	*m = nbMemo{leaf: n, ver: n.ver, row: r.id, ok: ok, votes: m.votes}
	copy(m.votes, out)
	return ok
}

func (t *ctree) computeNaiveBayes(n *cnode, r *treeRow, out []float64) bool {
	clear(out)
	total := n.stats.total()
	if len(n.stats.order) == 0 || total == 0 {
		return false
	}
	o := n.obs
	for _, c := range n.stats.order {
		cw := n.stats.w[c]
		if cw <= 0 {
			out[c] = 0
			continue
		}
		v := math.Log(cw / total)
		if o != nil {
			v += t.gaussianLogLikelihood(o, r, c)
			if o.seen.has(c) {
				seen := o.seen.w[c]
				for i := range o.buckets {
					ob := &o.buckets[i]
					count := ob.present[c]
					if !r.has(ob.bucket) {
						count = seen - count
					}
					if count > 0 {
						v += math.Log(count / seen)
					}
				}
			}
		}
		out[c] = v
	}
	// River normalizes with the log-sum-exp trick, exp(v − lse); dividing
	// each exp(v − top) by their sum is the same up to rounding, with
	// fewer exponentials.
	top := math.Inf(-1)
	for _, c := range n.stats.order {
		top = max(top, out[c])
	}
	sum := 0.0
	for _, c := range n.stats.order {
		out[c] = math.Exp(out[c] - top)
		sum += out[c]
	}
	for _, c := range n.stats.order {
		out[c] /= sum
	}
	return true
}

// gaussianLogLikelihood is the sum of River's Gaussian cond_log_proba over
// the leaf's numeric observers for class c, skipping the −Inf terms (an
// unseen class, a variance that is not positive) as River does. The terms'
// ½·ln(variance) parts are summed as the logarithm of the variances'
// product (flushed before it could overflow or underflow): one logarithm
// per class instead of one per attribute, equal up to rounding.
func (t *ctree) gaussianLogLikelihood(o *leafObs, r *treeRow, c int32) float64 {
	quad, logs, prod := 0.0, 0.0, 1.0
	terms := 0
	for _, j := range o.order {
		x, ok := r.value(int(j))
		if !ok {
			continue
		}
		g := &o.gauss[j]
		if !g.has(c) {
			continue
		}
		v := &g.est[c].v
		if v.n <= 1 {
			continue
		}
		variance := v.s / (v.n - 1)
		if !(variance > 0) {
			continue
		}
		d := x - v.mean
		quad += d * d / (-2 * variance)
		terms++
		prod *= variance
		if prod > 1e250 || prod < 1e-250 {
			logs += math.Log(prod)
			prod = 1
		}
	}
	if terms == 0 {
		return 0
	}
	return quad - float64(terms)*halfLogTau - 0.5*(logs+math.Log(prod))
}

// leafPredict is a leaf's prediction(x) into the class-indexed out: River's
// LeafMajorityClass, LeafNaiveBayes or LeafNaiveBayesAdaptive. It reports
// whether River's dict has keys.
func (t *ctree) leafPredict(n *cnode, r *treeRow, out []float64) bool {
	switch t.p.leafPred {
	case LeafNaiveBayes:
		if n.active() && n.stats.total() >= t.p.nbThreshold {
			return t.naiveBayes(n, r, out)
		}
	case LeafNaiveBayesAdaptive:
		if n.active() && n.nbCorrect >= n.mcCorrect {
			return t.naiveBayes(n, r, out)
		}
	}
	n.stats.normalizeInto(out, -1)
	return len(n.stats.order) > 0
}

// predictProba is River's HoeffdingTreeClassifier.predict_proba_one into the
// class-indexed out (all 0 before the first row).
func (t *ctree) predictProba(r *treeRow, out []float64) {
	if t.root == nil {
		clear(out)
		return
	}
	_, _, n := t.walk(r)
	if n.isBranch() {
		n = n.leafFor(r)
	}
	t.leafPredict(n, r, out)
}

// predictOne is River's predict_one on predict_proba_one: the first class
// of greatest probability in class order, or −1 (None) before any label.
func (t *ctree) predictOne(r *treeRow) int32 {
	if t.root == nil {
		return -1
	}
	out := t.sc.dist
	t.predictProba(r, out)
	best := int32(-1)
	for c, seen := range t.classes {
		if seen && (best < 0 || out[c] > out[best]) {
			best = int32(c)
		}
	}
	return best
}
