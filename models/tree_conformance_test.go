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
