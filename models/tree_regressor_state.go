package models

import (
	"math"
	"slices"

	"github.com/driftline/driftline/models/internal/pyrand"
)

// clone returns an independent deep copy of the tree that reads p, works
// in sc and draws from rng (a copy of its own source when rng is nil).
func (t *rtree) clone(p *regParams, sc *treeScratch, rng *pyrand.Source) *rtree {
	c := *t
	c.p, c.sc = p, sc
	c.root = t.root.clone()
	if t.rng != nil {
		if rng == nil {
			own := *t.rng
			rng = &own
		}
		c.rng = rng
	}
	return &c
}

func (n *rnode) clone() *rnode {
	if n == nil {
		return nil
	}
	c := *n
	c.children = [2]*rnode{n.children[0].clone(), n.children[1].clone()}
	c.model = n.model.clone()
	c.subspace = slices.Clone(n.subspace)
	if o := n.obs; o != nil {
		co := &rleafObs{seen: o.seen, ebsts: make([]ebst, len(o.ebsts)), order: slices.Clone(o.order),
			buckets: slices.Clone(o.buckets), disabled: slices.Clone(o.disabled)}
		for j, e := range o.ebsts {
			co.ebsts[j] = ebst{made: e.made, root: e.root.clone()}
		}
		c.obs = co
	}
	return &c
}

func (n *ebstNode) clone() *ebstNode {
	if n == nil {
		return nil
	}
	return &ebstNode{att: n.att, est: n.est, left: n.left.clone(), right: n.right.clone()}
}

// The body of a regression tree's snapshot: its configuration (every field
// of HoeffdingTreeRegressorConfig, in declaration order), River's counters
// and the nodes in preorder, as for the classification trees.

func encodeRegConfig(e *encoder, c *HoeffdingTreeRegressorConfig) {
	for _, v := range []int{c.NumDense, c.NumHashed, c.HashBits, c.GracePeriod, c.MaxDepth, int(c.LeafPrediction),
		c.MinSamplesSplit, c.MemoryEstimatePeriod, c.SplitterDigits} {
		e.int(v)
	}
	for _, v := range []float64{c.Delta, c.Tau, c.ModelSelectorDecay, c.MaxSizeMiB, c.LeafLearningRate} {
		e.f64(v)
	}
	for _, v := range []bool{c.BinarySplit, c.StopMemManagement, c.RemovePoorAttrs, c.NoMeritPreprune} {
		e.bool(v)
	}
}

func decodeRegConfig(d *decoder) HoeffdingTreeRegressorConfig {
	var c HoeffdingTreeRegressorConfig
	var leaf int
	for _, p := range []*int{&c.NumDense, &c.NumHashed, &c.HashBits, &c.GracePeriod, &c.MaxDepth, &leaf,
		&c.MinSamplesSplit, &c.MemoryEstimatePeriod, &c.SplitterDigits} {
		*p = d.int()
	}
	if leaf < 0 || leaf > 255 {
		d.fail("bad enum")
	}
	c.LeafPrediction = RegressionLeafPrediction(leaf)
	for _, p := range []*float64{&c.Delta, &c.Tau, &c.ModelSelectorDecay, &c.MaxSizeMiB, &c.LeafLearningRate} {
		*p = d.f64()
	}
	for _, p := range []*bool{&c.BinarySplit, &c.StopMemManagement, &c.RemovePoorAttrs, &c.NoMeritPreprune} {
		*p = d.bool()
	}
	return c
}

func encodeVar(e *encoder, v runningVar) {
	e.f64(v.n)
	e.f64(v.mean)
	e.f64(v.s)
}

func decodeVar(d *decoder) runningVar {
	v := runningVar{n: d.f64(), mean: d.f64(), s: d.f64()}
	if math.IsNaN(v.n) || v.n < 0 {
		d.fail("bad statistics")
	}
	return v
}

func (t *rtree) encode(e *encoder) {
	e.int(t.mem.nActive)
	e.int(t.mem.nInactive)
	for _, v := range []float64{t.mem.activeLeafEst, t.mem.inactiveLeafEst, t.mem.overhead, t.weightSeen} {
		e.f64(v)
	}
	e.bool(t.mem.growthAllowed)
	t.encodeNode(e, t.root)
}

func (t *rtree) decode(d *decoder) {
	t.mem.nActive, t.mem.nInactive = d.int(), d.int()
	for _, p := range []*float64{&t.mem.activeLeafEst, &t.mem.inactiveLeafEst, &t.mem.overhead, &t.weightSeen} {
		*p = d.f64()
	}
	t.mem.growthAllowed = d.bool()
	t.root = t.decodeNode(d, 0)
}

func (t *rtree) encodeNode(e *encoder, n *rnode) {
	switch {
	case n == nil:
		e.u8(tagNone)
		return
	case n.isBranch():
		e.u8(tagBranch)
	default:
		e.u8(tagLeaf)
	}
	encodeVar(e, n.stats)
	e.int(n.depth)
	if n.isBranch() {
		e.bool(n.bucket)
		e.u8(n.presentChild)
		e.u32(uint32(n.feature))
		e.f64(n.threshold)
		t.encodeNode(e, n.children[0])
		t.encodeNode(e, n.children[1])
		return
	}
	for _, v := range []float64{n.lastAttempt, n.fmseMean, n.fmseModel} {
		e.f64(v)
	}
	e.i32s(n.subspace)
	e.bool(n.model != nil)
	if m := n.model; m != nil {
		for _, w := range m.w {
			e.f64(w)
		}
		e.u32(uint32(len(m.buckets)))
		for _, b := range m.buckets {
			e.u32(uint32(b.bucket))
			e.f64(b.w)
		}
		e.f64(m.intercept)
	}
	e.bool(n.obs != nil)
	if o := n.obs; o != nil {
		encodeVar(e, o.seen)
		e.i32s(o.order)
		for _, j := range o.order {
			encodeEBST(e, o.ebsts[j].root)
		}
		e.u32(uint32(len(o.buckets)))
		for _, b := range o.buckets {
			e.u32(uint32(b.bucket))
			encodeVar(e, b.present)
		}
		e.i32s(o.disabled)
	}
}

func encodeEBST(e *encoder, n *ebstNode) {
	if n == nil {
		e.u8(0)
		return
	}
	e.u8(1)
	e.f64(n.att)
	encodeVar(e, n.est)
	encodeEBST(e, n.left)
	encodeEBST(e, n.right)
}

func decodeEBST(d *decoder, level int) *ebstNode {
	if d.u8() != 1 || d.err != nil {
		return nil
	}
	if level > 1<<16 {
		d.fail("E-BST too deep")
		return nil
	}
	n := &ebstNode{att: d.f64(), est: decodeVar(d)}
	n.left = decodeEBST(d, level+1)
	n.right = decodeEBST(d, level+1)
	return n
}

func (t *rtree) decodeNode(d *decoder, level int) *rnode {
	tag := d.u8()
	if tag == tagNone || d.err != nil {
		return nil
	}
	if tag > tagBranch || level > 1<<16 {
		d.fail("bad node tag %d", tag)
		return nil
	}
	n := &rnode{stats: decodeVar(d), depth: d.int()}
	if n.depth < 0 {
		d.fail("negative depth")
	}
	if tag == tagBranch {
		n.bucket = d.bool()
		n.presentChild = d.u8()
		n.feature = int32(d.u32())
		n.threshold = d.f64()
		limit := t.p.nd
		if n.bucket {
			limit = 1 << t.p.bits
		}
		if n.presentChild > 1 || n.feature < 0 || int(n.feature) >= limit || math.IsNaN(n.threshold) {
			d.fail("bad split on attribute %d", n.feature)
			return nil
		}
		n.children[0] = t.decodeNode(d, level+1)
		n.children[1] = t.decodeNode(d, level+1)
		if d.err == nil && (n.children[0] == nil || n.children[1] == nil) {
			d.fail("branch without two children")
		}
		return n
	}
	n.lastAttempt, n.fmseMean, n.fmseModel = d.f64(), d.f64(), d.f64()
	n.subspace = d.i32s(t.p.nd + 1<<t.p.bits)
	if d.bool() {
		m := newLeafModel(t.p.nd)
		for j := range m.w {
			m.w[j] = d.f64()
		}
		nb := d.count(12)
		for range nb {
			b := bucketWeight{bucket: int32(d.u32()), w: d.f64()}
			if b.bucket < 0 || int(b.bucket) >= 1<<t.p.bits || (len(m.buckets) > 0 && m.buckets[len(m.buckets)-1].bucket >= b.bucket) {
				d.fail("bad leaf model bucket %d", b.bucket)
				return nil
			}
			m.buckets = append(m.buckets, b)
		}
		m.intercept = d.f64()
		n.model = m
	}
	if (n.model == nil) != (t.p.leafPred == RegressionLeafMean) && d.err == nil {
		d.fail("leaf model does not match the leaf prediction")
	}
	if d.bool() {
		o := t.newObs()
		o.seen = decodeVar(d)
		for _, j := range d.i32s(t.p.nd) {
			if o.ebsts[j].made {
				d.fail("splitter %d twice", j)
				return nil
			}
			o.ebsts[j] = ebst{made: true, root: decodeEBST(d, 0)}
			o.order = append(o.order, j)
		}
		nb := d.count(28)
		for range nb {
			b := rbucketObs{bucket: int32(d.u32()), present: decodeVar(d)}
			if b.bucket < 0 || int(b.bucket) >= 1<<t.p.bits || (len(o.buckets) > 0 && o.buckets[len(o.buckets)-1].bucket >= b.bucket) {
				d.fail("bad bucket splitter %d", b.bucket)
				return nil
			}
			o.buckets = append(o.buckets, b)
		}
		o.disabled = d.i32s(t.p.nd + 1<<t.p.bits)
		if !slices.IsSorted(o.disabled) {
			d.fail("unsorted disabled attributes")
		}
		n.obs = o
	}
	return n
}

// Snapshot kind and version of a HoeffdingTreeRegressor.
const (
	htrMagic   = "DLHR"
	htrVersion = 1
)

// MarshalBinary snapshots the tree; see Learner.
func (h *HoeffdingTreeRegressor) MarshalBinary() ([]byte, error) {
	e := &encoder{}
	encodeRegConfig(e, &h.cfg)
	h.t.encode(e)
	return appendFrame(htrMagic, htrVersion, e.b), nil
}

// UnmarshalBinary replaces the tree with a snapshot; see Learner.
func (h *HoeffdingTreeRegressor) UnmarshalBinary(data []byte) error {
	r, err := unmarshalHTR(data)
	if err != nil {
		return err
	}
	*h = *r
	h.t.p = &h.p
	return nil
}

func unmarshalHTR(data []byte) (*HoeffdingTreeRegressor, error) {
	body, err := openFrame(data, htrMagic, htrVersion)
	if err != nil {
		return nil, err
	}
	d := &decoder{snapshotReader{buf: body}}
	cfg := decodeRegConfig(d)
	if d.err != nil {
		return nil, d.err
	}
	h, err := NewHoeffdingTreeRegressor(cfg)
	if err != nil {
		return nil, snapshotConfigError(err)
	}
	if h.cfg != cfg {
		return nil, snapshotConfigError(nil)
	}
	h.t.decode(d)
	if err := d.done(); err != nil {
		return nil, err
	}
	return h, nil
}
