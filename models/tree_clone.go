package models

import (
	"slices"

	"github.com/driftline/driftline/models/internal/pyrand"
)

// clone returns an independent deep copy of the tree that reads p, works
// in sc and, if the tree draws random numbers, draws from rng (a copy of
// its own source when rng is nil).
func (t *ctree) clone(p *treeParams, sc *treeScratch, rng *pyrand.Source) *ctree {
	c := *t
	c.p, c.sc = p, sc
	c.memo, c.path = nbMemo{}, pathMemo{}
	c.classes = slices.Clone(t.classes)
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

func (n *cnode) clone() *cnode {
	if n == nil {
		return nil
	}
	c := *n
	c.stats = n.stats.clone()
	c.subspace = slices.Clone(n.subspace)
	c.children = [2]*cnode{n.children[0].clone(), n.children[1].clone()}
	c.alt = n.alt.clone()
	if n.adwin != nil {
		c.adwin = n.adwin.Clone()
	}
	if o := n.obs; o != nil {
		co := &leafObs{seen: o.seen.clone(), gauss: make([]gaussObs, len(o.gauss)),
			order: slices.Clone(o.order), disabled: slices.Clone(o.disabled)}
		for j, g := range o.gauss {
			if g.classes != nil {
				co.gauss[j] = gaussObs{classes: slices.Clone(g.classes), est: slices.Clone(g.est)}
			}
		}
		co.buckets = make([]bucketObs, len(o.buckets))
		for i, b := range o.buckets {
			co.buckets[i] = bucketObs{bucket: b.bucket, present: slices.Clone(b.present)}
		}
		c.obs = co
	}
	return &c
}
