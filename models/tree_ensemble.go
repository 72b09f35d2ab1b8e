package models

import (
	"errors"
	"fmt"
)

// TreeEnsemble is a copied description of a tree model's trees as they
// score now: each tree's tests and leaf values, and how the trees' outputs
// combine into the model's prediction. Exporters read it
// (onnxexport.ExportTrees); it never changes the model.
type TreeEnsemble struct {
	Shape Shape
	// Classes is K for a classifier, 0 for a regressor.
	Classes int
	Link    Link
	Trees   []TreeGraph
	// Combine says how the trees' leaf values make the prediction.
	Combine Combine
}

// Combine is how a TreeEnsemble's trees make one prediction.
type Combine uint8

const (
	// CombineNormalizedSum adds the K class values of every tree's leaf and
	// divides by their total (the uniform distribution when it is 0): the
	// classifiers.
	CombineNormalizedSum Combine = iota
	// CombineSum adds the trees' leaf values: a regression tree.
	CombineSum
	// CombineMedian takes the median of the trees' leaf values (the mean of
	// the middle two for an even count): ARFRegressor's default.
	CombineMedian
)

// TreeGraph is one tree; Nodes[0] is its root.
type TreeGraph struct {
	Nodes []TreeNode
}

// TreeNode is a test or a leaf of a TreeGraph.
type TreeNode struct {
	Leaf bool
	// A test on dense column Feature sends a value ≤ Threshold to Yes and
	// a greater one to No; a missing one (NaN, ±Inf) to Yes if MissingYes.
	// A test on hash bucket Feature (Bucket) sends a row without the
	// bucket to Yes and one with it to No.
	Feature    int32
	Bucket     bool
	Threshold  float64
	Yes, No    int32
	MissingYes bool
	// Values is a leaf's K class values (classifiers) or its one value
	// (regressors).
	Values []float64
}

// ErrNotExpressible reports a tree whose leaves predict with something a
// tree ensemble cannot express (naive Bayes, linear models).
var ErrNotExpressible = errors.New("models: leaves not expressible as a tree ensemble")

// TreeModel is a learner made of trees, which can describe them.
type TreeModel interface {
	ShapedLearner
	// Ensemble describes the trees. A leaf that predicts with naive Bayes
	// or a linear model makes it fail with ErrNotExpressible, unless
	// approximate is set: such a leaf then exports its class distribution
	// or target mean, and the description scores differently from Predict.
	Ensemble(approximate bool) (TreeEnsemble, error)
}

var (
	_ TreeModel = (*HoeffdingTreeClassifier)(nil)
	_ TreeModel = (*HoeffdingAdaptiveTreeClassifier)(nil)
	_ TreeModel = (*ARFClassifier)(nil)
	_ TreeModel = (*HoeffdingTreeRegressor)(nil)
	_ TreeModel = (*ARFRegressor)(nil)
)

// classLeafValues is a classification leaf's prediction as a tree ensemble
// holds it: its normalized class distribution, which is what it predicts
// with majority-class leaves and what a leaf does while its naive Bayes is
// not in use.
func (t *ctree) classLeafValues(n *cnode, approximate bool) ([]float64, error) {
	usesNB := false
	switch t.p.leafPred {
	case LeafNaiveBayes:
		usesNB = n.active() && n.stats.total() >= t.p.nbThreshold && n.stats.total() > 0
	case LeafNaiveBayesAdaptive:
		usesNB = n.active() && n.nbCorrect >= n.mcCorrect && n.stats.total() > 0
	}
	if usesNB && !approximate {
		return nil, fmt.Errorf("%w: a leaf predicts with naive Bayes (leaf_prediction %s); train with leaf_prediction mc, or export approximately",
			ErrNotExpressible, t.p.leafPred)
	}
	v := make([]float64, t.p.k)
	n.stats.normalizeInto(v, -1)
	return v, nil
}

// graph describes the tree under root; leafValues gives a leaf's values.
func describeTree[N any](root N, isBranch func(N) bool, branch func(N) (test TreeNode, yes, no N), leafValues func(N) ([]float64, error)) (TreeGraph, error) {
	var g TreeGraph
	var add func(n N) (int32, error)
	add = func(n N) (int32, error) {
		at := int32(len(g.Nodes))
		g.Nodes = append(g.Nodes, TreeNode{})
		if !isBranch(n) {
			v, err := leafValues(n)
			if err != nil {
				return 0, err
			}
			g.Nodes[at] = TreeNode{Leaf: true, Values: v}
			return at, nil
		}
		test, yes, no := branch(n)
		y, err := add(yes)
		if err != nil {
			return 0, err
		}
		nn, err := add(no)
		if err != nil {
			return 0, err
		}
		test.Yes, test.No = y, nn
		g.Nodes[at] = test
		return at, nil
	}
	_, err := add(root)
	return g, err
}

// cbranch describes a classification branch: its test, and its children
// in the order of TreeNode's Yes and No.
func cbranch(n *cnode) (TreeNode, *cnode, *cnode) {
	if n.bucket {
		return TreeNode{Feature: n.feature, Bucket: true}, n.children[1-n.presentChild], n.children[n.presentChild]
	}
	heavier, _ := n.mostCommonPath()
	return TreeNode{Feature: n.feature, Threshold: n.threshold, MissingYes: heavier == 0}, n.children[0], n.children[1]
}

// describe describes a classification tree, scaled per leaf by scale (nil:
// none).
func (t *ctree) describe(approximate bool, scale func(*cnode) float64) (TreeGraph, error) {
	if t.root == nil {
		return TreeGraph{Nodes: []TreeNode{{Leaf: true, Values: make([]float64, t.p.k)}}}, nil
	}
	return describeTree(t.root, (*cnode).isBranch, cbranch, func(n *cnode) ([]float64, error) {
		v, err := t.classLeafValues(n, approximate)
		if err == nil && scale != nil {
			s := scale(n)
			for c := range v {
				v[c] *= s
			}
		}
		return v, err
	})
}

func (t *ctree) ensembleBase(sh Shape) TreeEnsemble {
	return TreeEnsemble{Shape: sh, Classes: t.p.k, Link: classifierLink(t.p.k), Combine: CombineNormalizedSum}
}

// Ensemble describes the tree; see TreeModel.
func (h *HoeffdingTreeClassifier) Ensemble(approximate bool) (TreeEnsemble, error) {
	e := h.t.ensembleBase(h.Shape())
	g, err := h.t.describe(approximate, nil)
	if err != nil {
		return TreeEnsemble{}, err
	}
	e.Trees = []TreeGraph{g}
	return e, nil
}

// Ensemble describes the tree and its alternate trees; see TreeModel. Each
// leaf's values carry River's weight 1/(total·error²); each alternate tree
// on a path adds its leaf's values to the rows that reach its branch, as a
// tree of its own that copies the path to the branch and gives 0
// elsewhere. (A row that reaches such a branch by a missing value counts
// its alternate twice in Predict, as in River; the description counts it
// once.)
func (h *HoeffdingAdaptiveTreeClassifier) Ensemble(approximate bool) (TreeEnsemble, error) {
	t := h.t
	e := t.ensembleBase(h.Shape())
	adaScale := func(n *cnode) float64 {
		sum := 0.0
		v := make([]float64, t.p.k)
		n.stats.normalizeInto(v, -1)
		for _, x := range v {
			sum += x
		}
		if f := sum * n.err.mean * n.err.mean; f != 0 {
			return 1 / f
		}
		return 1
	}
	main, err := t.describe(approximate, adaScale)
	if err != nil {
		return TreeEnsemble{}, err
	}
	e.Trees = append(e.Trees, main)
	if t.root == nil {
		return e, nil
	}
	// One tree per branch with an alternate: the path to it, then the
	// alternate's leaf.
	var walk func(n *cnode, path []pathStep) error
	walk = func(n *cnode, path []pathStep) error {
		if !n.isBranch() {
			return nil
		}
		if n.alt != nil {
			g, err := t.altTree(path, n.alt, approximate, adaScale)
			if err != nil {
				return err
			}
			e.Trees = append(e.Trees, g)
		}
		for i, c := range n.children {
			if err := walk(c, append(path[:len(path):len(path)], pathStep{n, i})); err != nil {
				return err
			}
		}
		return nil
	}
	return e, walk(t.root, nil)
}

type pathStep struct {
	branch *cnode
	child  int
}

// altTree is a tree that copies path's tests, leads to alt's (leaf's)
// values where the path goes, and to 0 elsewhere.
func (t *ctree) altTree(path []pathStep, alt *cnode, approximate bool, scale func(*cnode) float64) (TreeGraph, error) {
	if alt.isBranch() {
		return TreeGraph{}, fmt.Errorf("%w: an alternate tree has branches", ErrNotExpressible)
	}
	v, err := t.classLeafValues(alt, approximate)
	if err != nil {
		return TreeGraph{}, err
	}
	s := scale(alt)
	for c := range v {
		v[c] *= s
	}
	var g TreeGraph
	for _, st := range path {
		test, _, _ := cbranch(st.branch)
		at := int32(len(g.Nodes))
		zero := at + 1
		next := at + 2
		onYes := (st.branch.bucket && st.child == 1-int(st.branch.presentChild)) || (!st.branch.bucket && st.child == 0)
		if onYes {
			test.Yes, test.No = next, zero
		} else {
			test.Yes, test.No = zero, next
		}
		g.Nodes = append(g.Nodes, test, TreeNode{Leaf: true, Values: make([]float64, t.p.k)})
	}
	g.Nodes = append(g.Nodes, TreeNode{Leaf: true, Values: v})
	return g, nil
}

// Ensemble describes the forest's trees, each leaf weighted by its tree's
// accuracy as Predict weights it; see TreeModel.
func (a *ARFClassifier) Ensemble(approximate bool) (TreeEnsemble, error) {
	e := TreeEnsemble{Shape: a.Shape(), Classes: a.p.k, Link: classifierLink(a.p.k), Combine: CombineNormalizedSum}
	if !a.f.started {
		e.Trees = []TreeGraph{{Nodes: []TreeNode{{Leaf: true, Values: make([]float64, a.p.k)}}}}
		return e, nil
	}
	for i, t := range a.f.trees {
		m := a.f.accuracy(i)
		w := 1.0
		if !a.cfg.DisableWeightedVote && m > 0 {
			w = m
		}
		g, err := t.describe(approximate, func(*cnode) float64 { return w })
		if err != nil {
			return TreeEnsemble{}, fmt.Errorf("tree %d: %w", i, err)
		}
		e.Trees = append(e.Trees, g)
	}
	return e, nil
}

// regLeafValue is a regression leaf's prediction as a tree ensemble holds
// it: its target mean, which a mean leaf and an adaptive leaf that
// currently prefers its mean predict.
func (t *rtree) regLeafValue(n *rnode, approximate bool) ([]float64, error) {
	usesModel := t.p.leafPred == RegressionLeafModel || (t.p.leafPred == RegressionLeafAdaptive && !(n.fmseMean < n.fmseModel))
	if usesModel && !approximate {
		return nil, fmt.Errorf("%w: a leaf predicts with its linear model (leaf_prediction %s); train with leaf_prediction mean, or export approximately",
			ErrNotExpressible, t.p.leafPred)
	}
	return []float64{n.stats.mean}, nil
}

func rbranch(n *rnode) (TreeNode, *rnode, *rnode) {
	if n.bucket {
		return TreeNode{Feature: n.feature, Bucket: true}, n.children[1-n.presentChild], n.children[n.presentChild]
	}
	heavier, _ := n.mostCommonPath()
	return TreeNode{Feature: n.feature, Threshold: n.threshold, MissingYes: heavier == 0}, n.children[0], n.children[1]
}

func (t *rtree) describe(approximate bool, scale float64) (TreeGraph, error) {
	if t.root == nil {
		return TreeGraph{Nodes: []TreeNode{{Leaf: true, Values: []float64{0}}}}, nil
	}
	return describeTree(t.root, (*rnode).isBranch, rbranch, func(n *rnode) ([]float64, error) {
		v, err := t.regLeafValue(n, approximate)
		if err == nil {
			v[0] *= scale
		}
		return v, err
	})
}

// Ensemble describes the tree; see TreeModel.
func (h *HoeffdingTreeRegressor) Ensemble(approximate bool) (TreeEnsemble, error) {
	g, err := h.t.describe(approximate, 1)
	if err != nil {
		return TreeEnsemble{}, err
	}
	return TreeEnsemble{Shape: h.Shape(), Link: LinkIdentity, Combine: CombineSum, Trees: []TreeGraph{g}}, nil
}

// Ensemble describes the forest's trees: their median, or their (weighted)
// mean as a sum of scaled leaves; see TreeModel.
func (a *ARFRegressor) Ensemble(approximate bool) (TreeEnsemble, error) {
	e := TreeEnsemble{Shape: a.Shape(), Link: LinkIdentity, Combine: CombineSum}
	f := a.f
	if !f.started {
		e.Trees = []TreeGraph{{Nodes: []TreeNode{{Leaf: true, Values: []float64{0}}}}}
		return e, nil
	}
	n := float64(len(f.trees))
	weights := make([]float64, len(f.trees))
	for i := range weights {
		weights[i] = 1 / n
	}
	if a.cfg.Aggregation == "median" {
		e.Combine = CombineMedian
		for i := range weights {
			weights[i] = 1
		}
	} else if a.cfg.WeightedVote {
		sum := 0.0
		for i := range f.trees {
			sum += f.mse[i].mean
		}
		if sum != 0 {
			norm := 0.0
			for i := range f.trees {
				norm += sum - f.mse[i].mean
			}
			for i := range weights {
				weights[i] = (sum - f.mse[i].mean) / norm
			}
		}
	}
	for i, t := range f.trees {
		g, err := t.describe(approximate, weights[i])
		if err != nil {
			return TreeEnsemble{}, fmt.Errorf("tree %d: %w", i, err)
		}
		e.Trees = append(e.Trees, g)
	}
	return e, nil
}
