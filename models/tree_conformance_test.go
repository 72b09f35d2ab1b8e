package models_test

import (
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/testkit/learnersuite"
)

func TestHoeffdingTreeConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  models.HoeffdingTreeConfig
	}{
		{"binary-nba", models.HoeffdingTreeConfig{}},
		{"binary-mc-gini", models.HoeffdingTreeConfig{LeafPrediction: models.LeafMajorityClass, SplitCriterion: models.CriterionGini}},
		{"3class-nb", models.HoeffdingTreeConfig{Classes: 3, LeafPrediction: models.LeafNaiveBayes}},
		{"3class-nba", models.HoeffdingTreeConfig{Classes: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.NumDense, cfg.NumHashed, cfg.HashBits = 4, 3, 8
			cfg.GracePeriod = 100
			learnersuite.Run(t, func() models.Learner {
				l, err := models.NewHoeffdingTreeClassifier(cfg)
				if err != nil {
					t.Fatalf("new tree: %v", err)
				}
				return l
			})
		})
	}
}

func TestHoeffdingAdaptiveTreeConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  models.HATConfig
	}{
		{"binary-nba", models.HATConfig{Seed: 3}},
		{"3class-mc", models.HATConfig{HoeffdingTreeConfig: models.HoeffdingTreeConfig{Classes: 3, LeafPrediction: models.LeafMajorityClass}, Seed: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.NumDense, cfg.NumHashed, cfg.HashBits = 4, 3, 8
			cfg.GracePeriod = 100
			learnersuite.Run(t, func() models.Learner {
				l, err := models.NewHoeffdingAdaptiveTreeClassifier(cfg)
				if err != nil {
					t.Fatalf("new tree: %v", err)
				}
				return l
			})
		})
	}
}

func TestARFClassifierConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  models.ARFConfig
	}{
		{"binary", models.ARFConfig{Models: 5, Seed: 3}},
		{"3class-all-features", models.ARFConfig{HoeffdingTreeConfig: models.HoeffdingTreeConfig{Classes: 3}, Models: 3, MaxFeatures: "all", Seed: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.NumDense, cfg.NumHashed, cfg.HashBits = 4, 3, 8
			learnersuite.Run(t, func() models.Learner {
				l, err := models.NewARFClassifier(cfg)
				if err != nil {
					t.Fatalf("new forest: %v", err)
				}
				return l
			})
		})
	}
}

// TestHoeffdingTreeRegressorConformance runs the suite on the adaptive
// (default) and mean leaves. Its concept is learned to R² > 0.98, not
// 0.99: River's numeric splitter rounds raw values to 0.1, coarser than the
// suite's narrowest columns, so a few boundaries land off by a bucket.
// Model-only leaves are left out of the suite: like River's
// LinearRegression, their plain SGD on the suite's raw columns (offsets
// near 100, scales up to e^6) diverges, which is what the adaptive default
// guards against; TestRegressorModelLeaves checks them on their own.
func TestHoeffdingTreeRegressorConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  models.HoeffdingTreeRegressorConfig
	}{
		{"adaptive", models.HoeffdingTreeRegressorConfig{}},
		{"mean", models.HoeffdingTreeRegressorConfig{LeafPrediction: models.RegressionLeafMean}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.NumDense, cfg.NumHashed, cfg.HashBits = 4, 3, 8
			cfg.GracePeriod = 100
			learnersuite.Run(t, func() models.Learner {
				l, err := models.NewHoeffdingTreeRegressor(cfg)
				if err != nil {
					t.Fatalf("new tree: %v", err)
				}
				return l
			}, learnersuite.WithTarget(0.98))
		})
	}
}

func TestARFRegressorConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  models.ARFRegressorConfig
	}{
		{"median", models.ARFRegressorConfig{Models: 5, Seed: 3}},
		{"weighted-mean", models.ARFRegressorConfig{Models: 4, Aggregation: "mean", WeightedVote: true, MaxFeatures: "all", Seed: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.NumDense, cfg.NumHashed, cfg.HashBits = 4, 3, 8
			learnersuite.Run(t, func() models.Learner {
				l, err := models.NewARFRegressor(cfg)
				if err != nil {
					t.Fatalf("new forest: %v", err)
				}
				return l
			}, learnersuite.WithTarget(0.95))
		})
	}
}
