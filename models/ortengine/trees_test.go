package ortengine

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
)

// treeRows draws n rows of 4 dense values (some missing, some infinite
// when holes is set) and 2 hashed categoricals of 6 values, with labels
// from a concept that splits on both, switching at drift (n to never).
func treeRows(rng *rand.Rand, n, drift int, holes, regression bool) (*models.Rows, []float32) {
	const nd, nh, bits = 4, 2, 6
	rows := &models.Rows{N: n, NumDense: nd, NumHashed: nh, Dense: make([]float32, n*nd), Hashed: make([]int32, n*nh)}
	y := make([]float32, n)
	for i := range n {
		d, h := rows.DenseRow(i), rows.HashedRow(i)
		for j := range d {
			d[j] = float32(rng.NormFloat64()*10 + float64(j))
		}
		for c := range h {
			h[c] = int32(c*8 + rng.IntN(6))
		}
		var v float64
		if i < drift {
			v = float64(d[0])
			if h[0] == 2 {
				v += 15
			}
		} else {
			v = -float64(d[1]) + 5*float64(h[1]%3)
		}
		if regression {
			y[i] = float32(v)
		} else if v > 2 {
			y[i] = 1
		}
		if holes && i%7 == 3 {
			d[i%nd] = float32(math.NaN())
		}
		if holes && i%11 == 5 {
			d[(i+1)%nd] = float32(math.Inf(1 - 2*(i%2)))
		}
		if holes && i%13 == 4 {
			h[i%nh] = -1
		}
	}
	return rows, y
}

// TestTreesScoreOnONNXRuntimeAsInGo trains every tree family (with leaves
// a tree ensemble expresses: majority-class and mean leaves), exports it,
// and scores fresh rows — with missing and infinite values, absent hashed
// indices — on ONNX Runtime: every score within 1e-6 of Predict's
// (relative to the value for regressors).
func TestTreesScoreOnONNXRuntimeAsInGo(t *testing.T) {
	tree := models.HoeffdingTreeConfig{NumDense: 4, NumHashed: 2, HashBits: 6, GracePeriod: 50, LeafPrediction: models.LeafMajorityClass}
	tree3 := tree
	tree3.Classes, tree3.SplitCriterion = 3, models.CriterionGini
	reg := models.HoeffdingTreeRegressorConfig{NumDense: 4, NumHashed: 2, HashBits: 6, GracePeriod: 50, LeafPrediction: models.RegressionLeafMean}
	for i, tc := range []struct {
		name       string
		regression bool
		holes      bool
		build      func() (models.Learner, error)
	}{
		{"hoeffding_tree", false, true, func() (models.Learner, error) { return models.NewHoeffdingTreeClassifier(tree) }},
		{"hoeffding_tree_3_classes", false, true, func() (models.Learner, error) { return models.NewHoeffdingTreeClassifier(tree3) }},
		// The HAT's rows have no missing values: Predict counts the alternate
		// of a branch reached by a missing value twice (River's walk), the
		// export once.
		{"hat", false, false, func() (models.Learner, error) {
			return models.NewHoeffdingAdaptiveTreeClassifier(models.HATConfig{HoeffdingTreeConfig: tree, Seed: 3})
		}},
		{"arf", false, true, func() (models.Learner, error) {
			return models.NewARFClassifier(models.ARFConfig{HoeffdingTreeConfig: tree, Models: 5, Seed: 3})
		}},
		{"hoeffding_tree_regressor", true, true, func() (models.Learner, error) { return models.NewHoeffdingTreeRegressor(reg) }},
		{"arf_regressor_median", true, true, func() (models.Learner, error) {
			return models.NewARFRegressor(models.ARFRegressorConfig{HoeffdingTreeRegressorConfig: reg, Models: 4, Seed: 3})
		}},
		{"arf_regressor_weighted_mean", true, true, func() (models.Learner, error) {
			return models.NewARFRegressor(models.ARFRegressorConfig{HoeffdingTreeRegressorConfig: reg, Models: 5, Aggregation: "mean", WeightedVote: true, Seed: 3})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(40+i), 1))
			l, err := tc.build()
			if err != nil {
				t.Fatal(err)
			}
			train, y := treeRows(rng, 20000, 10000, tc.holes, tc.regression)
			if tc.name == "hoeffding_tree_3_classes" {
				for r := range y {
					y[r] = float32(r % 3)
					if d := train.DenseRow(r)[0]; d > 5 && !math.IsNaN(float64(d)) {
						y[r] = 1
					}
				}
			}
			// Learn in steps; a HAT's export must hold an alternate tree, which
			// the drift grows and a switch or a prune later removes.
			var e models.TreeEnsemble
			for lo := 0; lo < train.N; lo += 100 {
				hi := min(lo+100, train.N)
				part := &models.Rows{N: hi - lo, NumDense: 4, NumHashed: 2, Dense: train.Dense[lo*4 : hi*4], Hashed: train.Hashed[lo*2 : hi*2]}
				if err := l.Learn(part, y[lo:hi]); err != nil {
					t.Fatal(err)
				}
				if e, err = l.(models.TreeModel).Ensemble(false); err != nil {
					t.Fatal(err)
				}
				if tc.name == "hat" && len(e.Trees) > 1 {
					break
				}
			}
			if tc.name == "hat" && len(e.Trees) < 2 {
				t.Fatal("the drift grew no alternate tree; the export's alternate path is untested")
			}
			branches := 0
			for _, g := range e.Trees {
				for _, n := range g.Nodes {
					if !n.Leaf {
						branches++
					}
				}
			}
			if branches == 0 {
				t.Fatal("the trees never split; the test checks nothing")
			}
			t.Logf("%d trees, %d tests", len(e.Trees), branches)
			model, err := onnxexport.ExportTrees(&e, onnxexport.Metadata{ModelName: tc.name, ModelVersion: "1"})
			if err != nil {
				t.Fatal(err)
			}
			engine := newLinear(t, Config{}, model)
			test, _ := treeRows(rng, 4000, 2000, tc.holes, tc.regression)
			k := l.Classes()
			want := make([]float32, test.N*k)
			if err := l.Predict(want, test); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, test.N*k)
			if err := engine.Score(got, test); err != nil {
				t.Fatalf("score: %v", err)
			}
			for r := range want {
				tol := 1e-6
				if tc.regression {
					tol *= max(1, math.Abs(float64(want[r])))
				}
				if d := math.Abs(float64(got[r] - want[r])); d > tol || math.IsNaN(float64(got[r])) {
					t.Fatalf("score %d: ONNX Runtime %v, Go %v (|diff| %.3g > %.3g)", r, got[r], want[r], d, tol)
				}
			}
		})
	}
}

// TestTreesExportRefusesNaiveBayesLeaves checks that a tree whose leaves
// predict with naive Bayes (the default) does not export, unless asked to
// approximate.
func TestTreesExportRefusesNaiveBayesLeaves(t *testing.T) {
	l, err := models.NewHoeffdingTreeClassifier(models.HoeffdingTreeConfig{NumDense: 4, NumHashed: 2, HashBits: 6, GracePeriod: 50})
	if err != nil {
		t.Fatal(err)
	}
	rows, y := treeRows(rand.New(rand.NewPCG(1, 1)), 5000, 5000, false, false)
	if err := l.Learn(rows, y); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Ensemble(false); !errors.Is(err, models.ErrNotExpressible) {
		t.Fatalf("naive-Bayes leaves: %v, want ErrNotExpressible", err)
	}
	e, err := l.Ensemble(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onnxexport.ExportTrees(&e, onnxexport.Metadata{ModelName: "m", ModelVersion: "1"}); err != nil {
		t.Fatal(err)
	}
}
