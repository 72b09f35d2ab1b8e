package models

import (
	"slices"
	"unsafe"
)

// The memory manager follows River's (after Kirkby 2007, "Improving
// Hoeffding trees"): every MemoryEstimatePeriod of weight a tree estimates
// its size; when it is over MaxSizeMiB, the least promising leaves are
// deactivated until the estimate fits. After every split River re-runs the
// same policy with the last estimates, which also reactivates inactive
// leaves while the budget allows. Sizes are estimates of the Go heap a tree
// holds (River measures Python objects), so MaxSizeMiB means MiB of Go
// memory.

// memState is River's size bookkeeping of one tree.
type memState struct {
	nActive, nInactive int
	activeLeafEst      float64
	inactiveLeafEst    float64
	overhead           float64
	growthAllowed      bool
}

func newMemState() memState { return memState{overhead: 1, growthAllowed: true} }

// leafInfo is what the memory manager reads of a leaf.
type leafInfo struct {
	promise float64
	active  bool
	depth   int
	bytes   float64
}

// estimate is River's _estimate_model_size, given the leaves (in
// iter_leaves order) and the whole tree's size; it reports whether the
// tree is over maxBytes (and the caller must enforce the limit).
func (m *memState) estimate(leaves []leafInfo, actual, maxBytes float64) bool {
	var active, inactive float64
	for _, l := range leaves {
		if l.active {
			active += l.bytes
		} else {
			inactive += l.bytes
		}
	}
	if active > 0 && m.nActive > 0 {
		m.activeLeafEst = active / float64(m.nActive)
	}
	if inactive > 0 && m.nInactive > 0 {
		m.inactiveLeafEst = inactive / float64(m.nInactive)
	}
	if estimated := float64(m.nActive)*m.activeLeafEst + float64(m.nInactive)*m.inactiveLeafEst; estimated > 0 {
		m.overhead = actual / estimated
	}
	return actual > maxBytes
}

// stopGrowth is the first step of River's _enforce_size_limit, with its
// estimate of the tree's size (which counts one active leaf): under
// StopMemManagement, a tree with inactive leaves or over its budget stops
// growing, and the caller stops there.
func (m *memState) stopGrowth(maxBytes float64, stopMem bool) bool {
	size := m.overhead * (m.activeLeafEst + float64(m.nInactive)*m.inactiveLeafEst)
	if (m.nInactive > 0 || size > maxBytes) && stopMem {
		m.growthAllowed = false
		return true
	}
	return false
}

// estimated reports whether the tree has a size estimate. Without one,
// River's policy keeps every leaf: it reactivates every inactive leaf
// above the maximum depth, which the callers do without sorting.
func (m *memState) estimated() bool { return m.activeLeafEst != 0 || m.inactiveLeafEst != 0 }

// enforce is the rest of River's _enforce_size_limit: set(i, active) is
// called for each leaf i whose state must change.
func (m *memState) enforce(leaves []leafInfo, idx []int, maxBytes float64, maxDepth int, set func(i int, active bool)) {
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		pa, pb := leaves[a].promise, leaves[b].promise
		switch {
		case pa < pb:
			return -1
		case pb < pa:
			return 1
		}
		return 0
	})
	maxActive := 0
	for maxActive < len(idx) {
		maxActive++
		if (float64(maxActive)*m.activeLeafEst+float64(len(idx)-maxActive)*m.inactiveLeafEst)*m.overhead > maxBytes {
			maxActive--
			break
		}
	}
	cutoff := len(idx) - maxActive
	for _, i := range idx[:cutoff] {
		if leaves[i].active {
			set(i, false)
			m.nInactive++
			m.nActive--
		}
	}
	for _, i := range idx[cutoff:] {
		if !leaves[i].active && leaves[i].depth < maxDepth {
			set(i, true)
			m.nActive++
			m.nInactive--
		}
	}
}

// Byte sizes of a classification tree's pieces.
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

// leaves lists the leaves in River's iter_leaves order, with what the
// memory manager reads of them (their sizes only if sized).
func (t *ctree) leaves(sized bool) ([]*cnode, []leafInfo) {
	var nodes []*cnode
	var infos []leafInfo
	t.root.forEachLeaf(func(n *cnode) {
		nodes = append(nodes, n)
		info := leafInfo{promise: n.promise(), active: n.active(), depth: n.depth}
		if sized {
			info.bytes = float64(t.leafBytes(n))
		}
		infos = append(infos, info)
	})
	return nodes, infos
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

func (t *ctree) estimateModelSize() {
	_, infos := t.leaves(true)
	if t.mem.estimate(infos, float64(t.treeBytes(t.root)), t.p.maxBytes) {
		t.enforceSizeLimit()
	}
}

func (t *ctree) enforceSizeLimit() {
	if t.mem.stopGrowth(t.p.maxBytes, t.p.stopMem) {
		return
	}
	if !t.mem.estimated() {
		if t.hat == nil && t.mem.nInactive == 0 {
			// Nothing to reactivate: a HoeffdingTreeClassifier's counters
			// are exact (a HAT's follow River's bookkeeping, which is not).
			return
		}
		t.root.forEachLeaf(func(n *cnode) {
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
