package models

import (
	"math"
	"slices"

	"github.com/driftline/driftline/detectors"
)

// The body of a classification tree's snapshot: its configuration (every
// field of HoeffdingTreeConfig, in declaration order), then the tree:
// River's counters, the classes seen, and the nodes in preorder. A node is
// a tag (0 none, 1 leaf, 2 branch), its class distribution (keys in
// insertion order) and depth; a branch its test and children; a leaf its
// split-attempt weight, adaptive counters, subspace and observers; and,
// in a HAT, its ADWIN, error mean and alternate tree.

func encodeTreeConfig(e *encoder, c *HoeffdingTreeConfig) {
	for _, v := range []int{c.Classes, c.NumDense, c.NumHashed, c.HashBits, c.GracePeriod, c.MaxDepth,
		int(c.SplitCriterion), int(c.LeafPrediction), c.NBThreshold, c.MemoryEstimatePeriod} {
		e.int(v)
	}
	for _, v := range []float64{c.Delta, c.Tau, c.MinBranchFraction, c.MaxShareToSplit, c.MaxSizeMiB} {
		e.f64(v)
	}
	for _, v := range []bool{c.BinarySplit, c.StopMemManagement, c.RemovePoorAttrs, c.NoMeritPreprune} {
		e.bool(v)
	}
}

func decodeTreeConfig(d *decoder) HoeffdingTreeConfig {
	var c HoeffdingTreeConfig
	var crit, leaf int
	for _, p := range []*int{&c.Classes, &c.NumDense, &c.NumHashed, &c.HashBits, &c.GracePeriod, &c.MaxDepth,
		&crit, &leaf, &c.NBThreshold, &c.MemoryEstimatePeriod} {
		*p = d.int()
	}
	if crit < 0 || crit > 255 || leaf < 0 || leaf > 255 {
		d.fail("bad enum")
	}
	c.SplitCriterion, c.LeafPrediction = SplitCriterion(crit), LeafPrediction(leaf)
	for _, p := range []*float64{&c.Delta, &c.Tau, &c.MinBranchFraction, &c.MaxShareToSplit, &c.MaxSizeMiB} {
		*p = d.f64()
	}
	for _, p := range []*bool{&c.BinarySplit, &c.StopMemManagement, &c.RemovePoorAttrs, &c.NoMeritPreprune} {
		*p = d.bool()
	}
	return c
}

func (t *ctree) encode(e *encoder) {
	for _, v := range []int{t.mem.nActive, t.mem.nInactive, t.nAlt, t.nPruned, t.nSwitch} {
		e.int(v)
	}
	for _, v := range []float64{t.mem.activeLeafEst, t.mem.inactiveLeafEst, t.mem.overhead, t.weightSeen} {
		e.f64(v)
	}
	e.bool(t.mem.growthAllowed)
	for _, c := range t.classes {
		e.bool(c)
	}
	t.encodeNode(e, t.root)
}

// decode reads a tree's state into t, which holds its parameters already.
func (t *ctree) decode(d *decoder) {
	for _, p := range []*int{&t.mem.nActive, &t.mem.nInactive, &t.nAlt, &t.nPruned, &t.nSwitch} {
		*p = d.int()
	}
	for _, p := range []*float64{&t.mem.activeLeafEst, &t.mem.inactiveLeafEst, &t.mem.overhead, &t.weightSeen} {
		*p = d.f64()
	}
	t.mem.growthAllowed = d.bool()
	for c := range t.classes {
		t.classes[c] = d.bool()
	}
	t.root = t.decodeNode(d, 0)
}

func encodeDist(e *encoder, c *classDist) {
	e.u32(uint32(len(c.order)))
	for _, k := range c.order {
		e.u32(uint32(k))
		e.f64(c.w[k])
	}
}

func decodeDist(d *decoder, k int) classDist {
	c := newClassDist(k)
	n := d.count(12)
	if n > k {
		d.fail("%d classes in a distribution of %d", n, k)
		return c
	}
	for range n {
		cl := int32(d.u32())
		w := d.f64()
		if cl < 0 || int(cl) >= k || c.has(cl) || math.IsNaN(w) {
			d.fail("bad class %d in a distribution", cl)
			return c
		}
		c.set(cl, w)
	}
	return c
}

const (
	tagNone   = 0
	tagLeaf   = 1
	tagBranch = 2
)

func (t *ctree) encodeNode(e *encoder, n *cnode) {
	switch {
	case n == nil:
		e.u8(tagNone)
		return
	case n.isBranch():
		e.u8(tagBranch)
	default:
		e.u8(tagLeaf)
	}
	encodeDist(e, &n.stats)
	e.int(n.depth)
	if n.isBranch() {
		e.bool(n.bucket)
		e.u8(n.presentChild)
		e.u32(uint32(n.feature))
		e.f64(n.threshold)
		t.encodeNode(e, n.children[0])
		t.encodeNode(e, n.children[1])
	} else {
		for _, v := range []float64{n.lastAttempt, n.mcCorrect, n.nbCorrect} {
			e.f64(v)
		}
		e.i32s(n.subspace)
		t.encodeObs(e, n.obs)
	}
	e.bool(n.adwin != nil)
	if n.adwin != nil {
		state, _ := n.adwin.AppendBinary(nil)
		e.blob(state)
	}
	e.f64(n.err.n)
	e.f64(n.err.mean)
	t.encodeNode(e, n.alt)
}

func (t *ctree) decodeNode(d *decoder, level int) *cnode {
	tag := d.u8()
	if tag == tagNone || d.err != nil {
		return nil
	}
	if tag > tagBranch || level > 1<<16 {
		d.fail("bad node tag %d", tag)
		return nil
	}
	n := &cnode{stats: decodeDist(d, t.p.k), depth: d.int()}
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
	} else {
		n.lastAttempt, n.mcCorrect, n.nbCorrect = d.f64(), d.f64(), d.f64()
		n.subspace = d.i32s(t.p.nd + 1<<t.p.bits)
		n.obs = t.decodeObs(d)
	}
	if d.bool() {
		state := d.blob()
		if d.err == nil {
			a, rest, err := detectors.ReadADWIN(state)
			if err != nil || len(rest) != 0 {
				d.fail("bad ADWIN state")
				return nil
			}
			n.adwin = a
		}
	}
	if (n.adwin == nil) != (t.hat == nil) && d.err == nil {
		d.fail("drift detector does not match the tree's kind")
	}
	n.err.n, n.err.mean = d.f64(), d.f64()
	n.alt = t.decodeNode(d, level+1)
	return n
}

func (t *ctree) encodeObs(e *encoder, o *leafObs) {
	e.bool(o != nil)
	if o == nil {
		return
	}
	encodeDist(e, &o.seen)
	e.i32s(o.order)
	for _, j := range o.order {
		g := &o.gauss[j]
		e.i32s(g.classes)
		for _, c := range g.classes {
			est := &g.est[c]
			for _, v := range []float64{est.v.n, est.v.mean, est.v.s, est.lo, est.hi} {
				e.f64(v)
			}
		}
	}
	e.u32(uint32(len(o.buckets)))
	for _, b := range o.buckets {
		e.u32(uint32(b.bucket))
		for _, v := range b.present {
			e.f64(v)
		}
	}
	e.i32s(o.disabled)
}

func (t *ctree) decodeObs(d *decoder) *leafObs {
	if !d.bool() {
		return nil
	}
	k := t.p.k
	o := newLeafObs(t.p)
	o.seen = decodeDist(d, k)
	order := d.i32s(t.p.nd)
	for _, j := range order {
		if o.gauss[j].classes != nil {
			d.fail("dense observer %d twice", j)
			return nil
		}
		o.gauss[j] = newGaussObs(k)
		o.order = append(o.order, j)
		classes := d.i32s(k)
		for _, c := range classes {
			if o.gauss[j].has(c) {
				d.fail("class %d twice in an observer", c)
				return nil
			}
			o.gauss[j].classes = append(o.gauss[j].classes, c)
			est := &o.gauss[j].est[c]
			est.v.n, est.v.mean, est.v.s, est.lo, est.hi = d.f64(), d.f64(), d.f64(), d.f64(), d.f64()
		}
	}
	nb := d.count(4 + 8*k)
	for range nb {
		b := bucketObs{bucket: int32(d.u32()), present: make([]float64, k)}
		for c := range b.present {
			b.present[c] = d.f64()
		}
		if b.bucket < 0 || int(b.bucket) >= 1<<t.p.bits || (len(o.buckets) > 0 && o.buckets[len(o.buckets)-1].bucket >= b.bucket) {
			d.fail("bad bucket observer %d", b.bucket)
			return nil
		}
		o.buckets = append(o.buckets, b)
	}
	o.disabled = d.i32s(t.p.nd + 1<<t.p.bits)
	if !slices.IsSorted(o.disabled) {
		d.fail("unsorted disabled attributes")
	}
	return o
}
