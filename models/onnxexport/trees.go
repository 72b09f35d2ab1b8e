package onnxexport

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/driftline/driftline/models"
)

// TreesSignature returns the signature ExportTrees declares for e: the
// inputs of LinearSignature for e's row shape, and the score output, one
// column (P(y=1), or the value) or K class probabilities.
func TreesSignature(e *models.TreeEnsemble) Signature {
	outputs := 1
	if e.Link == models.LinkSoftmax {
		outputs = e.Classes
	}
	return LinearSignature(&models.LinearParams{NumDense: e.Shape.NumDense, NumHashed: e.Shape.NumHashed, Classes: outputs})
}

// ExportTrees encodes a tree model's description (models.TreeModel's
// Ensemble) as an ONNX model whose graph computes what the model predicts,
// with the operators of ai.onnx.ml (opset MLOpset) and ai.onnx (Opset):
//
//	x        = dense with ±Inf made NaN (missing), then one 0/1 column per
//	           hash bucket a test reads: ReduceMax(Cast(Equal(hashed, bucket)))
//	classes: TreeEnsembleClassifier (post_transform NONE) sums each tree's
//	           leaf class values; score = sums / their total (uniform when
//	           the total is 0): P(y=1) for two classes, K probabilities
//	           otherwise
//	values:  TreeEnsembleRegressor sums the trees' leaves (one tree, or a
//	           weighted mean), or writes one column per tree whose median
//	           TopK and Gather take
//
// A dense test's threshold is the largest float32 at or below the tree's
// float64 one, so float32 inputs branch as the Go trees branch; a missing
// value follows the branch the description says (the heavier child at
// export time). ONNX Runtime sums in float32, so scores agree with the Go
// model to about 1e-6 (relative for values), not bit for bit. The inputs
// and output are those of TreesSignature(e), so ortengine.NewLinear scores
// the model like an exported linear one.
func ExportTrees(e *models.TreeEnsemble, meta Metadata) ([]byte, error) {
	if err := validateEnsemble(e); err != nil {
		return nil, err
	}
	if meta.ModelName == "" || meta.ModelVersion == "" {
		return nil, errors.New("onnxexport: metadata needs a model name and version")
	}
	nd, nh := e.Shape.NumDense, e.Shape.NumHashed
	if len(meta.DenseFeatures) != 0 && len(meta.DenseFeatures) != nd {
		return nil, fmt.Errorf("onnxexport: %d dense feature names for %d dense values", len(meta.DenseFeatures), nd)
	}
	if len(meta.HashedFeatures) != 0 && len(meta.HashedFeatures) != nh {
		return nil, fmt.Errorf("onnxexport: %d hashed feature names for %d hashed values", len(meta.HashedFeatures), nh)
	}
	sig := TreesSignature(e)
	g := Graph{Name: meta.ModelName, Inputs: sig.Inputs, Outputs: sig.Outputs}
	x, bucketColumn := treeFeatures(&g, e)
	switch e.Combine {
	case models.CombineNormalizedSum:
		classifierHead(&g, e, x, bucketColumn)
	default:
		regressorHead(&g, e, x, bucketColumn)
	}

	dense, err := json.Marshal(nonNil(meta.DenseFeatures))
	if err != nil {
		return nil, fmt.Errorf("onnxexport: encode dense feature names: %w", err)
	}
	hashed, err := json.Marshal(nonNil(meta.HashedFeatures))
	if err != nil {
		return nil, fmt.Errorf("onnxexport: encode hashed feature names: %w", err)
	}
	m := Model{
		Graph:     g,
		DocString: fmt.Sprintf("driftline tree model %s version %s (%d trees, %s link)", meta.ModelName, meta.ModelVersion, len(e.Trees), e.Link),
		Props: []Prop{
			{PropModelName, meta.ModelName},
			{PropModelVersion, meta.ModelVersion},
			{PropLink, e.Link.String()},
			{PropClasses, strconv.Itoa(sig.Outputs[0].Shape[1].intValue())},
			{PropHashBits, strconv.Itoa(e.Shape.HashBits)},
			{PropDenseFeatures, string(dense)},
			{PropHashedFeatures, string(hashed)},
			{PropTrees, strconv.Itoa(len(e.Trees))},
		},
	}
	return m.Marshal()
}

// PropTrees is the metadata key of the number of trees ExportTrees wrote.
const PropTrees = "driftline.trees"

func (d Dim) intValue() int { return int(d.Value) }

func validateEnsemble(e *models.TreeEnsemble) error {
	nd, nh := e.Shape.NumDense, e.Shape.NumHashed
	switch {
	case nd < 0 || nh < 0 || (nd == 0 && nh == 0):
		return fmt.Errorf("onnxexport: tree model has %d dense and %d hashed inputs", nd, nh)
	case e.Shape.HashBits < 0 || e.Shape.HashBits > maxHashBits:
		return fmt.Errorf("onnxexport: hash bits %d outside [0, %d]", e.Shape.HashBits, maxHashBits)
	case len(e.Trees) == 0:
		return errors.New("onnxexport: tree model has no trees")
	}
	width := 1
	switch e.Combine {
	case models.CombineNormalizedSum:
		if e.Classes < 2 || (e.Link == models.LinkSigmoid) != (e.Classes == 2) {
			return fmt.Errorf("onnxexport: a classifier's %d classes do not match its %s link", e.Classes, e.Link)
		}
		width = e.Classes
	case models.CombineSum, models.CombineMedian:
		if e.Link != models.LinkIdentity {
			return fmt.Errorf("onnxexport: a regressor has the identity link, not %s", e.Link)
		}
	default:
		return fmt.Errorf("onnxexport: unknown combination %d", e.Combine)
	}
	for i, t := range e.Trees {
		if len(t.Nodes) == 0 {
			return fmt.Errorf("onnxexport: tree %d has no nodes", i)
		}
		for j, n := range t.Nodes {
			switch {
			case n.Leaf && len(n.Values) != width:
				return fmt.Errorf("onnxexport: tree %d leaf %d has %d values, want %d", i, j, len(n.Values), width)
			case n.Leaf:
			case n.Yes <= int32(j) || n.No <= int32(j) || int(n.Yes) >= len(t.Nodes) || int(n.No) >= len(t.Nodes):
				return fmt.Errorf("onnxexport: tree %d node %d points to nodes %d and %d", i, j, n.Yes, n.No)
			case n.Bucket && (n.Feature < 0 || n.Feature >= 1<<e.Shape.HashBits || nh == 0):
				return fmt.Errorf("onnxexport: tree %d node %d tests bucket %d of a model with %d hashed inputs and %d hash bits", i, j, n.Feature, nh, e.Shape.HashBits)
			case !n.Bucket && (n.Feature < 0 || int(n.Feature) >= nd || math.IsNaN(n.Threshold)):
				return fmt.Errorf("onnxexport: tree %d node %d tests dense column %d of %d", i, j, n.Feature, nd)
			}
		}
	}
	return nil
}

// treeFeatures adds the nodes that build the ensembles' float input x from
// the graph's inputs, and returns x's name and the column of each tested
// bucket.
func treeFeatures(g *Graph, e *models.TreeEnsemble) (string, map[int32]int) {
	var buckets []int32
	for _, t := range e.Trees {
		for _, n := range t.Nodes {
			if !n.Leaf && n.Bucket && !slices.Contains(buckets, n.Feature) {
				buckets = append(buckets, n.Feature)
			}
		}
	}
	slices.Sort(buckets)
	nd := e.Shape.NumDense
	column := make(map[int32]int, len(buckets))
	for i, b := range buckets {
		column[b] = nd + i
	}
	var parts []string
	if nd > 0 {
		g.Initializers = append(g.Initializers, Tensor{Name: "nan", Float32s: []float32{float32(math.NaN())}})
		g.Nodes = append(g.Nodes,
			Node{Op: "IsInf", Name: "dense_is_inf", Inputs: []string{DenseInput}, Outputs: []string{"dense_inf"}},
			Node{Op: "Where", Name: "inf_missing", Inputs: []string{"dense_inf", "nan", DenseInput}, Outputs: []string{"dense_x"}},
		)
		parts = append(parts, "dense_x")
	}
	if len(buckets) > 0 {
		g.Initializers = append(g.Initializers,
			Tensor{Name: "tested_buckets", Dims: []int64{int64(len(buckets))}, Int32s: buckets},
			Tensor{Name: "axis_2", Dims: []int64{1}, Int64s: []int64{2}},
		)
		g.Nodes = append(g.Nodes,
			Node{Op: "Unsqueeze", Name: "hashed_column", Inputs: []string{HashedInput, "axis_2"}, Outputs: []string{"hashed_3d"}},
			Node{Op: "Equal", Name: "bucket_match", Inputs: []string{"hashed_3d", "tested_buckets"}, Outputs: []string{"bucket_eq"}},
			Node{Op: "Cast", Name: "bucket_match_float", Inputs: []string{"bucket_eq"}, Outputs: []string{"bucket_eq_f"}, Attrs: []Attr{IntAttr("to", int64(Float32))}},
			Node{Op: "ReduceMax", Name: "bucket_present", Inputs: []string{"bucket_eq_f"}, Outputs: []string{"bucket_x"},
				Attrs: []Attr{IntsAttr("axes", 1), IntAttr("keepdims", 0)}},
		)
		parts = append(parts, "bucket_x")
	}
	switch len(parts) {
	case 0:
		// No dense input and no bucket tested: the trees are leaves, and x
		// only carries the batch size.
		g.Initializers = append(g.Initializers,
			Tensor{Name: "first_start", Dims: []int64{1}, Int64s: []int64{0}},
			Tensor{Name: "first_end", Dims: []int64{1}, Int64s: []int64{1}},
			Tensor{Name: "axis_1", Dims: []int64{1}, Int64s: []int64{1}},
		)
		g.Nodes = append(g.Nodes,
			Node{Op: "Slice", Name: "first_hashed", Inputs: []string{HashedInput, "first_start", "first_end", "axis_1"}, Outputs: []string{"hashed_first"}},
			Node{Op: "Cast", Name: "batch_column", Inputs: []string{"hashed_first"}, Outputs: []string{"x"}, Attrs: []Attr{IntAttr("to", int64(Float32))}},
		)
		return "x", column
	case 1:
		return parts[0], column
	}
	g.Nodes = append(g.Nodes, Node{Op: "Concat", Name: "features", Inputs: parts, Outputs: []string{"x"}, Attrs: []Attr{IntAttr("axis", 1)}})
	return "x", column
}

// floor32 is the largest float32 at or below t.
func floor32(t float64) float32 {
	f := float32(t)
	if float64(f) > t {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

// treeAttrs are the node attributes every ai.onnx.ml tree ensemble shares.
type treeAttrs struct {
	treeIDs, nodeIDs, featureIDs, trueIDs, falseIDs, missingTrue []int64
	modes                                                        []string
	values                                                       []float32
}

func (a *treeAttrs) add(tree int, t models.TreeGraph, bucketColumn map[int32]int) {
	for j, n := range t.Nodes {
		a.treeIDs = append(a.treeIDs, int64(tree))
		a.nodeIDs = append(a.nodeIDs, int64(j))
		if n.Leaf {
			a.modes = append(a.modes, "LEAF")
			a.featureIDs = append(a.featureIDs, 0)
			a.values = append(a.values, 0)
			a.trueIDs, a.falseIDs = append(a.trueIDs, 0), append(a.falseIDs, 0)
			a.missingTrue = append(a.missingTrue, 0)
			continue
		}
		a.modes = append(a.modes, "BRANCH_LEQ")
		a.trueIDs, a.falseIDs = append(a.trueIDs, int64(n.Yes)), append(a.falseIDs, int64(n.No))
		if n.Bucket {
			a.featureIDs = append(a.featureIDs, int64(bucketColumn[n.Feature]))
			a.values = append(a.values, 0.5)
			a.missingTrue = append(a.missingTrue, 0)
			continue
		}
		a.featureIDs = append(a.featureIDs, int64(n.Feature))
		a.values = append(a.values, floor32(n.Threshold))
		missing := int64(0)
		if n.MissingYes {
			missing = 1
		}
		a.missingTrue = append(a.missingTrue, missing)
	}
}

func (a *treeAttrs) attrs() []Attr {
	return []Attr{
		IntsAttr("nodes_treeids", a.treeIDs...), IntsAttr("nodes_nodeids", a.nodeIDs...),
		IntsAttr("nodes_featureids", a.featureIDs...), StringsAttr("nodes_modes", a.modes...),
		FloatsAttr("nodes_values", a.values...), IntsAttr("nodes_truenodeids", a.trueIDs...),
		IntsAttr("nodes_falsenodeids", a.falseIDs...), IntsAttr("nodes_missing_value_tracks_true", a.missingTrue...),
		StringAttr("post_transform", "NONE"),
	}
}

// classifierHead adds the classifier's ensemble and the normalization.
func classifierHead(g *Graph, e *models.TreeEnsemble, x string, bucketColumn map[int32]int) {
	k := e.Classes
	var ta treeAttrs
	var cTree, cNode, cID []int64
	var cWeight []float32
	for i, t := range e.Trees {
		ta.add(i, t, bucketColumn)
		for j, n := range t.Nodes {
			if !n.Leaf {
				continue
			}
			for c, v := range n.Values {
				cTree, cNode, cID = append(cTree, int64(i)), append(cNode, int64(j)), append(cID, int64(c))
				cWeight = append(cWeight, float32(v))
			}
		}
	}
	labels := make([]int64, k)
	for c := range labels {
		labels[c] = int64(c)
	}
	attrs := append(ta.attrs(), IntsAttr("class_treeids", cTree...), IntsAttr("class_nodeids", cNode...),
		IntsAttr("class_ids", cID...), FloatsAttr("class_weights", cWeight...), IntsAttr("classlabels_int64s", labels...))
	uniform := make([]float32, k)
	for c := range uniform {
		uniform[c] = 1 / float32(k)
	}
	g.Initializers = append(g.Initializers,
		Tensor{Name: "axis_1_sum", Dims: []int64{1}, Int64s: []int64{1}},
		Tensor{Name: "tiny", Float32s: []float32{math.SmallestNonzeroFloat32}},
		Tensor{Name: "zero_total", Float32s: []float32{0}},
		Tensor{Name: "uniform", Dims: []int64{int64(k)}, Float32s: uniform},
	)
	proba := ScoreOutput
	if k == 2 {
		proba = "proba"
	}
	g.Nodes = append(g.Nodes,
		Node{Op: "TreeEnsembleClassifier", Domain: MLDomain, Name: "trees", Inputs: []string{x}, Outputs: []string{"tree_label", "class_sums"}, Attrs: attrs},
		Node{Op: "ReduceSum", Name: "total", Inputs: []string{"class_sums", "axis_1_sum"}, Outputs: []string{"class_total"}, Attrs: []Attr{IntAttr("keepdims", 1)}},
		Node{Op: "Max", Name: "safe_total", Inputs: []string{"class_total", "tiny"}, Outputs: []string{"class_total_safe"}},
		Node{Op: "Div", Name: "normalize", Inputs: []string{"class_sums", "class_total_safe"}, Outputs: []string{"normalized"}},
		Node{Op: "Greater", Name: "has_mass", Inputs: []string{"class_total", "zero_total"}, Outputs: []string{"mass"}},
		Node{Op: "Where", Name: "or_uniform", Inputs: []string{"mass", "normalized", "uniform"}, Outputs: []string{proba}},
	)
	if k == 2 {
		g.Initializers = append(g.Initializers,
			Tensor{Name: "class1_start", Dims: []int64{1}, Int64s: []int64{1}},
			Tensor{Name: "class1_end", Dims: []int64{1}, Int64s: []int64{2}},
		)
		g.Nodes = append(g.Nodes, Node{Op: "Slice", Name: "p_class_1", Inputs: []string{"proba", "class1_start", "class1_end", "axis_1_sum"}, Outputs: []string{ScoreOutput}})
	}
}

// regressorHead adds the regressor's ensemble: a sum into one column, or
// one column per tree and their median.
func regressorHead(g *Graph, e *models.TreeEnsemble, x string, bucketColumn map[int32]int) {
	var ta treeAttrs
	var tTree, tNode, tID []int64
	var tWeight []float32
	median := e.Combine == models.CombineMedian
	for i, t := range e.Trees {
		ta.add(i, t, bucketColumn)
		for j, n := range t.Nodes {
			if n.Leaf {
				target := int64(0)
				if median {
					target = int64(i)
				}
				tTree, tNode, tID = append(tTree, int64(i)), append(tNode, int64(j)), append(tID, target)
				tWeight = append(tWeight, float32(n.Values[0]))
			}
		}
	}
	targets := 1
	if median {
		targets = len(e.Trees)
	}
	attrs := append(ta.attrs(), IntsAttr("target_treeids", tTree...), IntsAttr("target_nodeids", tNode...),
		IntsAttr("target_ids", tID...), FloatsAttr("target_weights", tWeight...),
		IntAttr("n_targets", int64(targets)), StringAttr("aggregate_function", "SUM"))
	g.Initializers = append(g.Initializers,
		Tensor{Name: "lowest", Float32s: []float32{-math.MaxFloat32}},
		Tensor{Name: "highest", Float32s: []float32{math.MaxFloat32}},
	)
	g.Nodes = append(g.Nodes, Node{Op: "TreeEnsembleRegressor", Domain: MLDomain, Name: "trees", Inputs: []string{x}, Outputs: []string{"tree_values"}, Attrs: attrs})
	value := "tree_values"
	if median {
		m := len(e.Trees)
		middle := []int64{int64((m - 1) / 2)}
		if m%2 == 0 {
			middle = []int64{int64(m/2 - 1), int64(m / 2)}
		}
		g.Initializers = append(g.Initializers,
			Tensor{Name: "tree_count", Dims: []int64{1}, Int64s: []int64{int64(m)}},
			Tensor{Name: "middle", Dims: []int64{int64(len(middle))}, Int64s: middle},
		)
		g.Nodes = append(g.Nodes,
			Node{Op: "TopK", Name: "sort_trees", Inputs: []string{"tree_values", "tree_count"}, Outputs: []string{"sorted_values", "sorted_order"}, Attrs: []Attr{IntAttr("axis", 1)}},
			Node{Op: "Gather", Name: "middle_values", Inputs: []string{"sorted_values", "middle"}, Outputs: []string{"middle_values"}, Attrs: []Attr{IntAttr("axis", 1)}},
			Node{Op: "ReduceMean", Name: "median", Inputs: []string{"middle_values"}, Outputs: []string{"median_value"}, Attrs: []Attr{IntsAttr("axes", 1), IntAttr("keepdims", 1)}},
		)
		value = "median_value"
	}
	g.Nodes = append(g.Nodes, Node{Op: "Clip", Name: "finite", Inputs: []string{value, "lowest", "highest"}, Outputs: []string{ScoreOutput}})
}
