package models

import (
	"slices"
	"unsafe"
)

// The memory manager follows River's (after Kirkby 2007, "Improving
// Hoeffding trees"): every MemoryEstimatePeriod of weight the tree
// estimates its size; when it is over MaxSizeMiB, the least promising
// leaves are deactivated until the estimate fits. After every split River
// re-runs the same policy with the last estimates, which also reactivates
// inactive leaves while the budget allows. Sizes are estimates of the Go
// heap the tree holds (River measures Python objects), so MaxSizeMiB means
// MiB of Go memory.

// Byte sizes of the tree's pieces.
const (
	nodeBytes      = int(unsafe.Sizeof(cnode{}))
	leafObsBytes   = int(unsafe.Sizeof(leafObs{}))
	gaussObsBytes  = int(unsafe.Sizeof(gaussObs{}))
	gaussEstBytes  = int(unsafe.Sizeof(gaussEst{}))
	bucketObsBytes = int(unsafe.Sizeof(bucketObs{}))
	// adwinBytes is a typical ADWIN's window: a few rows of buckets.
	adwinBytes = 1024
)

func (t *ctree) distBytes() int { return 12 * t.p.k }

// leafBytes estimates a leaf's memory, observers included.
func (t *ctree) leafBytes(n *cnode) int {
	size := nodeBytes + t.distBytes() + 4*len(n.subspace)
	if n.adwin != nil {
		size += adwinBytes
	}
	if o := n.obs; o != nil {
		size += leafObsBytes + t.distBytes() + len(o.gauss)*gaussObsBytes + 4*cap(o.order) + 4*len(o.disabled)
		size += len(o.order) * t.p.k * (gaussEstBytes + 4)
		size += len(o.buckets) * (bucketObsBytes + 8*t.p.k)
	}
	return size
}

// treeBytes estimates the whole tree's memory, alternate trees included.
func (t *ctree) treeBytes(n *cnode) int {
	if n == nil {
		return 0
	}
	if !n.isBranch() {
		return t.leafBytes(n)
	}
	size := nodeBytes + t.distBytes() + t.treeBytes(n.alt)
	if n.adwin != nil {
		size += adwinBytes
	}
	return size + t.treeBytes(n.children[0]) + t.treeBytes(n.children[1])
}

// leaves lists the leaves in River's iter_leaves order.
func (t *ctree) leaves() []*cnode {
	var out []*cnode
	t.root.forEachLeaf(func(n *cnode) { out = append(out, n) })
	return out
}

// promise is River's calculate_promise for classification leaves: the
// weight outside the majority class.
func (n *cnode) promise() float64 {
	total := n.stats.total()
	if total > 0 {
		return total - n.stats.maxWeight()
	}
	return 0
}

// estimateModelSize is River's _estimate_model_size.
func (t *ctree) estimateModelSize() {
	var active, inactive float64
	for _, n := range t.leaves() {
		if n.active() {
			active += float64(t.leafBytes(n))
		} else {
			inactive += float64(t.leafBytes(n))
		}
	}
	if active > 0 && t.nActive > 0 {
		t.activeLeafEst = active / float64(t.nActive)
	}
	if inactive > 0 && t.nInactive > 0 {
		t.inactiveLeafEst = inactive / float64(t.nInactive)
	}
	actual := float64(t.treeBytes(t.root))
	if estimated := float64(t.nActive)*t.activeLeafEst + float64(t.nInactive)*t.inactiveLeafEst; estimated > 0 {
		t.overhead = actual / estimated
	}
	if actual > t.p.maxBytes {
		t.enforceSizeLimit()
	}
}

// enforceSizeLimit is River's _enforce_size_limit, including its estimate
// of the tree's size (which counts one active leaf).
func (t *ctree) enforceSizeLimit() {
	size := t.overhead * (t.activeLeafEst + float64(t.nInactive)*t.inactiveLeafEst)
	if (t.nInactive > 0 || size > t.p.maxBytes) && t.p.stopMem {
		t.growthAllowed = false
		return
	}
	leaves := t.leaves()
	slices.SortStableFunc(leaves, func(a, b *cnode) int {
		pa, pb := a.promise(), b.promise()
		switch {
		case pa < pb:
			return -1
		case pb < pa:
			return 1
		}
		return 0
	})
	maxActive := 0
	for maxActive < len(leaves) {
		maxActive++
		if (float64(maxActive)*t.activeLeafEst+float64(len(leaves)-maxActive)*t.inactiveLeafEst)*t.overhead > t.p.maxBytes {
			maxActive--
			break
		}
	}
	cutoff := len(leaves) - maxActive
	for _, n := range leaves[:cutoff] {
		if n.active() {
			t.deactivate(n)
			t.nInactive++
			t.nActive--
		}
	}
	for _, n := range leaves[cutoff:] {
		if !n.active() && n.depth < t.p.maxDepth {
			t.activate(n)
			t.nActive++
			t.nInactive--
		}
	}
}
