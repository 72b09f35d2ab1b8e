package models

import (
	"fmt"
	"math"

	"github.com/driftline/driftline/detectors"
	"github.com/driftline/driftline/models/internal/pyrand"
)

// HATConfig configures a HoeffdingAdaptiveTreeClassifier. The embedded
// tree configuration takes River's HoeffdingTreeClassifier defaults; a zero
// field here takes the default stated on it (River 0.26.1's
// HoeffdingAdaptiveTreeClassifier defaults).
type HATConfig struct {
	HoeffdingTreeConfig
	// Seed seeds the bootstrap's random numbers (River's seed; River's
	// default, None, is not reproducible). Default 0.
	Seed uint64
	// NoBootstrap turns off the Poisson(1) bootstrap weighting of the
	// leaves' rows (River's bootstrap_sampling=False).
	NoBootstrap bool
	// DriftWindowThreshold is the number of errors both a subtree and its
	// alternate must have monitored before they are compared. Default 300.
	DriftWindowThreshold int
	// SwitchSignificance is the significance of the test that switches to
	// an alternate subtree or drops it, in (0, 1). Default 0.05.
	SwitchSignificance float64
	// ADWINDelta is the delta of every node's ADWIN error monitor, in
	// (0, 1). Default 0.002 (River's drift.ADWIN()).
	ADWINDelta float64
}

// River's HoeffdingAdaptiveTreeClassifier defaults.
const (
	DefaultHATDriftWindowThreshold = 300
	DefaultHATSwitchSignificance   = 0.05
	DefaultHATADWINDelta           = 0.002
)

// Validate reports whether the configuration, with its defaults applied,
// is usable by NewHoeffdingAdaptiveTreeClassifier.
func (c HATConfig) Validate() error {
	_, err := c.resolve()
	return err
}

func (c HATConfig) resolve() (HATConfig, error) {
	tc, err := c.HoeffdingTreeConfig.resolve(htDefaults)
	if err != nil {
		return c, err
	}
	c.HoeffdingTreeConfig = tc
	if c.DriftWindowThreshold == 0 {
		c.DriftWindowThreshold = DefaultHATDriftWindowThreshold
	}
	orDefault(&c.SwitchSignificance, DefaultHATSwitchSignificance)
	orDefault(&c.ADWINDelta, DefaultHATADWINDelta)
	switch {
	case c.DriftWindowThreshold < 0:
		return c, fmt.Errorf("models: drift window threshold %d < 0", c.DriftWindowThreshold)
	case !(c.SwitchSignificance > 0 && c.SwitchSignificance < 1):
		return c, fmt.Errorf("models: switch significance %v outside (0, 1)", c.SwitchSignificance)
	case !(c.ADWINDelta > 0 && c.ADWINDelta < 1):
		return c, fmt.Errorf("models: adwin delta %v outside (0, 1)", c.ADWINDelta)
	}
	return c, nil
}

// hatParams are the resolved HAT settings a ctree reads.
type hatParams struct {
	bootstrap          bool
	windowThreshold    float64
	switchSignificance float64
	// adwin is an empty detector of the configured delta; nodes get clones.
	adwin *detectors.ADWIN
}

// newADWIN is a fresh drift detector for a node.
func (h *hatParams) newADWIN() *detectors.ADWIN { return h.adwin.Clone() }

func newHATParams(c HATConfig) (hatParams, error) {
	acfg := detectors.DefaultADWINConfig()
	acfg.Delta = c.ADWINDelta
	a, err := detectors.NewADWIN(acfg)
	if err != nil {
		return hatParams{}, fmt.Errorf("models: adwin delta: %w", err)
	}
	return hatParams{bootstrap: !c.NoBootstrap, windowThreshold: float64(c.DriftWindowThreshold),
		switchSignificance: c.SwitchSignificance, adwin: a}, nil
}

// HoeffdingAdaptiveTreeClassifier is the Hoeffding Adaptive Tree of Bifet &
// Gavaldà: a Hoeffding tree whose every node watches its error rate with
// ADWIN. When a branch's error rises it grows an alternate subtree, and
// once the alternate is significantly better (after DriftWindowThreshold
// errors each) it replaces the branch, or is dropped if it is
// significantly worse. Leaves weight their rows by Poisson(1) (bootstrap),
// and a prediction combines every leaf the row reaches in the tree and its
// alternates, each weighted by the inverse square of its error rate.
//
// It implements River 0.26.1's tree.HoeffdingAdaptiveTreeClassifier (after
// MOA) step for step, with River's random numbers: the bootstrap draws
// from a CPython-compatible Mersenne Twister seeded with Seed, so the same
// seed gives River's model. It keeps River's (and MOA's) behaviour where
// an alternate leaf's first split replaces the subtree it shadows at once.
// Attributes, missing values and outputs are as HoeffdingTreeClassifier
// documents. It implements ShapedLearner; Learner states the contract.
//
// Reference: A. Bifet and R. Gavaldà, "Adaptive learning from evolving data
// streams", IDA 2009.
type HoeffdingAdaptiveTreeClassifier struct {
	cfg HATConfig // resolved
	p   treeParams
	hp  hatParams
	t   *ctree
}

var _ ShapedLearner = (*HoeffdingAdaptiveTreeClassifier)(nil)

// NewHoeffdingAdaptiveTreeClassifier returns an empty tree for cfg, after
// applying its defaults and validating it.
func NewHoeffdingAdaptiveTreeClassifier(cfg HATConfig) (*HoeffdingAdaptiveTreeClassifier, error) {
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	hp, err := newHATParams(rc)
	if err != nil {
		return nil, err
	}
	h := &HoeffdingAdaptiveTreeClassifier{cfg: rc, p: newTreeParams(rc.HoeffdingTreeConfig), hp: hp}
	h.t = newCTree(&h.p, newTreeScratch(&h.p))
	h.t.hat = &h.hp
	h.t.rng = pyrand.New(rc.Seed)
	return h, nil
}

// Config returns the configuration with its defaults applied.
func (h *HoeffdingAdaptiveTreeClassifier) Config() HATConfig { return h.cfg }

// Classes is 1 (P(y=1)) for a binary tree, else K.
func (h *HoeffdingAdaptiveTreeClassifier) Classes() int { return classifierOutputs(h.p.k) }

// Link is LinkSigmoid for a binary tree, else LinkSoftmax.
func (h *HoeffdingAdaptiveTreeClassifier) Link() Link { return classifierLink(h.p.k) }

// Shape is the layout of the rows the tree takes.
func (h *HoeffdingAdaptiveTreeClassifier) Shape() Shape {
	return Shape{NumDense: h.p.nd, NumHashed: h.p.nh, HashBits: h.p.bits}
}

// Predict writes rows.N×Classes() outputs into dst; see Learner.
func (h *HoeffdingAdaptiveTreeClassifier) Predict(dst []float32, rows *Rows) error {
	return predictRows(h, dst, rows, h.t.sc, func(r *treeRow, proba []float64) { h.t.hatPredictProba(r, proba) })
}

// Learn updates the tree with rows and labels y (class indices); see
// Learner.
func (h *HoeffdingAdaptiveTreeClassifier) Learn(rows *Rows, y []float32) error {
	return learnRows(h, rows, y, h.p.k, h.t.sc, func(r *treeRow, c int32) { h.t.hatLearnOne(r, c, 1) })
}

// Clone returns an independent deep copy.
func (h *HoeffdingAdaptiveTreeClassifier) Clone() Learner {
	c := &HoeffdingAdaptiveTreeClassifier{cfg: h.cfg, p: h.p, hp: h.hp}
	c.hp.adwin = h.hp.adwin.Clone()
	c.t = h.t.clone(&c.p, newTreeScratch(&c.p), nil)
	c.t.hat = &c.hp
	return c
}

// hatLearnOne is River's HoeffdingAdaptiveTreeClassifier.learn_one.
func (t *ctree) hatLearnOne(r *treeRow, y int32, w float64) {
	t.classes[y] = true
	t.weightSeen += w
	if t.root == nil {
		t.root = t.newLeaf(newClassDist(t.p.k), 0)
		t.mem.nActive = 1
	}
	t.hatLearn(t.root, r, y, w, nil, -1)
	t.checkMemory()
}

func (t *ctree) hatLearn(n *cnode, r *treeRow, y int32, w float64, parent *cnode, parentBranch int) {
	if n.isBranch() {
		t.hatBranchLearn(n, r, y, w, parent, parentBranch)
	} else {
		t.hatLeafLearn(n, r, y, w, parent, parentBranch)
	}
}

// hatPredictLeaf is AdaLeafClassifier.prediction into the class-indexed
// out: the leaf's prediction divided by its total times its squared error
// rate. It reports false when River's prediction is None or empty.
func (t *ctree) hatPredictLeaf(n *cnode, r *treeRow, out []float64) bool {
	if len(n.stats.order) == 0 {
		clear(out)
		return false
	}
	ok := true
	if !n.active() || t.p.leafPred == LeafMajorityClass {
		n.stats.normalizeInto(out, -1)
	} else {
		ok = t.leafPredict(n, r, out)
	}
	sum := 0.0
	for _, c := range n.stats.order {
		sum += out[c]
	}
	e := n.err.mean
	factor := sum * e * e
	if factor != 0 && !math.IsNaN(factor) {
		scale := 1 / factor
		for _, c := range n.stats.order {
			out[c] *= scale
		}
	}
	return ok
}

// errorOf is the 0/1 error of predicting with out for label y: River's
// `0 if y == max(aux, key=aux.get) else 1`, with no prediction an error.
func errorOf(out []float64, order []int32, ok bool, y int32) float64 {
	if ok && len(order) > 0 && argmaxIn(out, order) == y {
		return 0
	}
	return 1
}

// monitorError feeds a node's ADWIN and error mean with one 0/1 error and
// reports a drift on which the error grew (River: error_change, unless the
// error is decreasing, which resets the mean).
func (n *cnode) monitorError(e float64) bool {
	old := n.err.mean
	n.adwin.Update(e)
	n.err.update(e, 1)
	change := n.adwin.DriftDetected()
	if change && old > n.err.mean {
		n.err = runningMean{}
		change = false
	}
	return change
}

// hatLeafLearn is AdaLeafClassifier.learn_one.
func (t *ctree) hatLeafLearn(n *cnode, r *treeRow, y int32, w float64, parent *cnode, parentBranch int) {
	if t.hat.bootstrap {
		if k := t.rng.Poisson(1); k > 0 {
			w *= float64(k)
		}
	}
	ok := t.hatPredictLeaf(n, r, t.sc.votes)
	n.monitorError(errorOf(t.sc.votes, n.stats.order, ok, y))
	t.learnLeaf(n, r, y, w)
	seen := n.stats.total()
	if seen-n.lastAttempt >= t.p.grace {
		if n.depth >= t.p.maxDepth {
			t.deactivate(n)
			t.mem.nInactive++
			t.mem.nActive--
		} else if n.active() {
			t.attemptSplit(n, parent, parentBranch)
			n.lastAttempt = seen
		}
	}
}

// hatBranchLearn is AdaBranchClassifier.learn_one.
func (t *ctree) hatBranchLearn(n *cnode, r *treeRow, y int32, w float64, parent *cnode, parentBranch int) {
	leaf := n.leafFor(r)
	ok := t.hatPredictLeaf(leaf, r, t.sc.votes)
	e := errorOf(t.sc.votes, leaf.stats.order, ok, y)
	n.stats.add(y, w)
	if n.monitorError(e) {
		n.err = runningMean{}
		n.alt = t.newLeaf(newClassDist(t.p.k), n.depth)
		t.nAlt++
	} else if alt := n.alt; alt != nil {
		altN, nN := alt.err.n, n.err.n
		if altN > t.hat.windowThreshold && nN > t.hat.windowThreshold {
			oldRate, altRate := n.err.mean, alt.err.mean
			inv := 1.0/altN + 1.0/nN
			bound := math.Sqrt(2.0 * oldRate * (1.0 - oldRate) * math.Log(2.0/t.hat.switchSignificance) * inv)
			if bound < oldRate-altRate {
				t.mem.nActive -= n.nLeaves()
				t.mem.nActive += alt.nLeaves()
				t.killTreeChildren(n)
				if parent != nil {
					parent.children[parentBranch] = alt
					n.alt = nil
				} else {
					t.root = alt
					t.shape++
				}
				t.nSwitch++
			} else if bound < altRate-oldRate {
				if alt.isBranch() {
					t.killTreeChildren(alt)
				}
				n.alt = nil
				t.nPruned++
			}
		}
	}
	if n.alt != nil {
		t.hatLearn(n.alt, r, y, w, parent, parentBranch)
	}
	b, present := n.branchNo(r)
	if !present {
		b, _ = n.mostCommonPath()
	}
	t.hatLearn(n.children[b], r, y, w, n, b)
}

// killTreeChildren is AdaBranchClassifier.kill_tree_children: River's
// bookkeeping when a subtree is discarded.
func (t *ctree) killTreeChildren(n *cnode) {
	for _, c := range n.children {
		if c.isBranch() {
			if c.alt != nil {
				if c.alt.isBranch() {
					t.killTreeChildren(c.alt)
				}
				t.nPruned++
				c.alt = nil
			}
			t.killTreeChildren(c)
		} else if c.active() {
			t.mem.nActive--
		} else {
			t.mem.nInactive--
		}
	}
}

// hatPredictProba is River's HoeffdingAdaptiveTreeClassifier.
// predict_proba_one into the class-indexed out: the sum of the predictions
// of every leaf the row reaches, in the tree and in the alternate trees on
// its path, normalized.
func (t *ctree) hatPredictProba(r *treeRow, out []float64) {
	clear(out)
	if t.root == nil {
		return
	}
	dist := t.sc.dist2()
	add := func(leaf *cnode) {
		if t.hatPredictLeaf(leaf, r, dist) {
			for _, c := range leaf.stats.order {
				out[c] += dist[c]
			}
		}
	}
	// River walks the path and adds the alternate of every branch on it.
	// (An alternate is a leaf: its first split replaces the branch it
	// shadows.) A node reached by the most common path is walked twice,
	// so its alternate counts twice, as in River.
	n := t.root
	for n.isBranch() {
		if n.alt != nil {
			add(n.alt.leafFor(r))
		}
		b, ok := n.branchNo(r)
		if !ok {
			b, _ = n.mostCommonPath()
			if c := n.children[b]; c.isBranch() && c.alt != nil {
				add(c.alt.leafFor(r))
			}
		}
		n = n.children[b]
	}
	add(n)
	sum := 0.0
	for c, seen := range t.classes {
		if seen {
			sum += out[c]
		}
	}
	if sum != 0 && !math.IsNaN(sum) {
		scale := 1 / sum
		for c := range out {
			out[c] *= scale
		}
	}
}

// Snapshot kind and version of a HoeffdingAdaptiveTreeClassifier.
const (
	hatMagic   = "DLHA"
	hatVersion = 1
)

func encodeHATConfig(e *encoder, c *HATConfig) {
	encodeTreeConfig(e, &c.HoeffdingTreeConfig)
	e.u64(c.Seed)
	e.bool(c.NoBootstrap)
	e.int(c.DriftWindowThreshold)
	e.f64(c.SwitchSignificance)
	e.f64(c.ADWINDelta)
}

func decodeHATConfig(d *decoder) HATConfig {
	c := HATConfig{HoeffdingTreeConfig: decodeTreeConfig(d)}
	c.Seed = d.u64()
	c.NoBootstrap = d.bool()
	c.DriftWindowThreshold = d.int()
	c.SwitchSignificance = d.f64()
	c.ADWINDelta = d.f64()
	return c
}

// MarshalBinary snapshots the tree, its random source included; see
// Learner.
func (h *HoeffdingAdaptiveTreeClassifier) MarshalBinary() ([]byte, error) {
	e := &encoder{}
	encodeHATConfig(e, &h.cfg)
	e.b = h.t.rng.AppendState(e.b)
	h.t.encode(e)
	return appendFrame(hatMagic, hatVersion, e.b), nil
}

// UnmarshalBinary replaces the tree with a snapshot; see Learner.
func (h *HoeffdingAdaptiveTreeClassifier) UnmarshalBinary(data []byte) error {
	r, err := unmarshalHAT(data)
	if err != nil {
		return err
	}
	*h = *r
	h.t.p, h.t.hat = &h.p, &h.hp
	return nil
}

func unmarshalHAT(data []byte) (*HoeffdingAdaptiveTreeClassifier, error) {
	body, err := openFrame(data, hatMagic, hatVersion)
	if err != nil {
		return nil, err
	}
	d := &decoder{snapshotReader{buf: body}}
	cfg := decodeHATConfig(d)
	if d.err != nil {
		return nil, d.err
	}
	h, err := NewHoeffdingAdaptiveTreeClassifier(cfg)
	if err != nil {
		return nil, snapshotConfigError(err)
	}
	if h.cfg != cfg {
		return nil, snapshotConfigError(nil)
	}
	if err := h.t.rng.SetState(d.take(pyrand.StateSize)); err != nil && d.err == nil {
		d.fail("bad random state")
	}
	h.t.decode(d)
	if err := d.done(); err != nil {
		return nil, err
	}
	return h, nil
}
