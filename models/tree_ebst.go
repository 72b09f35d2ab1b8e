package models

import (
	"math"
	"strconv"
)

// ebstNode is a node of River's extended binary search tree: a rounded
// attribute value and the targets' statistics of the rows whose value is
// at most it within its subtree (the node's own value and its left
// subtree's).
type ebstNode struct {
	att         float64
	est         runningVar
	left, right *ebstNode
}

// ebst is River's TEBSTSplitter for one numeric attribute at a regression
// leaf: values rounded to a number of decimal digits, then an E-BST
// (Ikonomovska et al. 2011, in the variant of Osojnik's iSOUP-Tree).
type ebst struct {
	made bool // River created the splitter (its root may be pruned away)
	root *ebstNode
}

// insert is TEBSTSplitter.update: EBSTNode.insert_value on the rounded
// value.
func (e *ebst) insert(x float64, digits int, y, w float64) {
	e.made = true
	x = pyRound(x, digits)
	if e.root == nil {
		e.root = &ebstNode{att: x}
		e.root.est.update(y, w)
		return
	}
	cur := e.root
	var prev *ebstNode
	right := false
	for cur != nil {
		prev = cur
		switch {
		case x == cur.att:
			cur.est.update(y, w)
			return
		case x < cur.att:
			cur.est.update(y, w)
			cur, right = cur.left, false
		default:
			cur, right = cur.right, true
		}
	}
	n := &ebstNode{att: x}
	n.est.update(y, w)
	if right {
		prev.right = n
	} else {
		prev.left = n
	}
}

// varianceReduction is River's VarianceReductionSplitCriterion.merit_of_split
// for a binary split: 0 unless both sides hold minSamples.
func varianceReduction(pre, left, right *runningVar, minSamples float64) float64 {
	if left.n < minSamples || right.n < minSamples {
		return 0
	}
	vr := pre.variance()
	vr -= left.n / pre.n * left.variance()
	vr -= right.n / pre.n * right.variance()
	return vr
}

// ebstCand is the best split an E-BST offers.
type ebstCand struct {
	merit       float64
	threshold   float64
	left, right runningVar
	found       bool
}

// best is EBSTSplitter.best_evaluated_split_suggestion: an in-order walk
// that keeps, for each value, the statistics of the rows at or below it.
func (e *ebst) best(pre *runningVar, minSamples float64) ebstCand {
	c := ebstCand{merit: math.Inf(-1)}
	if e.root == nil {
		return c
	}
	var aux runningVar
	var walk func(n *ebstNode)
	walk = func(n *ebstNode) {
		if n.left != nil {
			walk(n.left)
		}
		left := n.est
		left.add(aux)
		right := *pre
		right.sub(left)
		if m := varianceReduction(pre, &left, &right, minSamples); m > c.merit {
			c = ebstCand{merit: m, threshold: n.att, left: left, right: right, found: true}
		}
		if n.right != nil {
			aux.add(n.est)
			walk(n.right)
			aux.sub(n.est)
		}
	}
	walk(e.root)
	return c
}

// removeBadSplits is EBSTSplitter.remove_bad_splits (FIMT-DD's pruning of
// the E-BST after a failed split attempt): a node both of whose subtrees
// are gone or bad, and whose own split is much worse than the best
// candidate's, is removed.
func (e *ebst) removeBadSplits(pre *runningVar, minSamples, lastRatio, lastVR, lastE float64) {
	if e.root == nil {
		return
	}
	var aux runningVar
	var walk func(n, parent *ebstNode, isLeft bool) bool
	walk = func(n, parent *ebstNode, isLeft bool) bool {
		bad := true
		if n.left != nil {
			bad = walk(n.left, n, true)
		}
		if !bad {
			return false
		}
		if n.right != nil {
			aux.add(n.est)
			bad = walk(n.right, n, false)
			aux.sub(n.est)
		}
		if !bad {
			return false
		}
		left := n.est
		left.add(aux)
		right := *pre
		right.sub(left)
		if varianceReduction(pre, &left, &right, minSamples)/lastVR < lastRatio-2*lastE {
			n.left, n.right = nil, nil
			switch {
			case parent == nil:
				e.root = nil
			case isLeft:
				parent.left = nil
			default:
				parent.right = nil
			}
			return true
		}
		return false
	}
	walk(e.root, nil, true)
}

// pyRound is Python's round(x, digits) for a float: the double nearest to
// x rounded to digits decimals in exact arithmetic, ties to even.
func pyRound(x float64, digits int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) >= 1e14 {
		if math.Abs(x) >= 1<<52 || math.IsNaN(x) || math.IsInf(x, 0) {
			return x
		}
		return exactRound(x, digits)
	}
	scale := math.Pow(10, float64(digits))
	y := x * scale
	if f := math.Abs(y - math.Trunc(y)); math.Abs(f-0.5) < 1e-6 {
		return exactRound(x, digits)
	}
	return math.Round(y) / scale
}

// exactRound rounds through Go's exact decimal formatting (which rounds
// the exact binary value, ties to even).
func exactRound(x float64, digits int) float64 {
	var buf [64]byte
	v, err := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], x, 'f', digits, 64)), 64)
	if err != nil {
		return x
	}
	return v
}
