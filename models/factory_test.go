package models_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/driftline/driftline/models"
)

func TestLearnerSpecBuildsEveryKind(t *testing.T) {
	sh := models.Shape{NumDense: 3, NumHashed: 2, HashBits: 10}
	for _, k := range models.LearnerKinds() {
		if len(k.Params) == 0 || k.About == "" {
			t.Errorf("%s: no params or description for the help text", k.Kind)
		}
		for _, classes := range []int{2, 3} {
			l, err := models.NewLearnerFromSpec(models.LearnerSpec{Kind: k.Kind}, sh, classes)
			if err != nil {
				t.Fatalf("%s with defaults: %v", k.Kind, err)
			}
			sl, ok := l.(models.ShapedLearner)
			if !ok || sl.Shape() != sh {
				t.Fatalf("%s: built for shape %+v, want %+v", k.Kind, sl.Shape(), sh)
			}
			want := 1
			if k.Task == models.TaskClassification && (classes > 2 || k.Kind == "softmax") {
				want = classes
			}
			if l.Classes() != want {
				t.Fatalf("%s with %d classes: %d outputs, want %d", k.Kind, classes, l.Classes(), want)
			}
		}
	}
}

func TestLearnerSpecParams(t *testing.T) {
	sh := models.Shape{NumDense: 4}
	l, err := models.NewLearnerFromSpec(models.LearnerSpec{Kind: "hat", Params: map[string]string{
		"grace_period": "50", "leaf_prediction": "mc", "split_criterion": "gini", "seed": "9", "bootstrap_sampling": "false"}}, sh, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.(*models.HoeffdingAdaptiveTreeClassifier).Config()
	if cfg.GracePeriod != 50 || cfg.LeafPrediction != models.LeafMajorityClass || cfg.SplitCriterion != models.CriterionGini ||
		cfg.Seed != 9 || !cfg.NoBootstrap {
		t.Fatalf("params not applied: %+v", cfg)
	}
	a, err := models.NewLearnerFromSpec(models.LearnerSpec{Kind: "arf", Params: map[string]string{"n_models": "3", "max_features": "2"}}, sh, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c := a.(*models.ARFClassifier).Config(); c.Models != 3 || c.MaxFeatures != "2" || c.GracePeriod != models.DefaultARFGracePeriod {
		t.Fatalf("arf params: %+v", c)
	}
	lin, err := models.NewLearnerFromSpec(models.LearnerSpec{Kind: "logistic", Params: map[string]string{"optimizer": "adagrad"}}, sh, 3)
	if err != nil {
		t.Fatal(err)
	}
	if lin.Link() != models.LinkSoftmax || lin.(*models.Linear).Config().Optimizer.Kind != models.OptimizerAdaGrad {
		t.Fatal("logistic over 3 classes is not softmax with adagrad")
	}
}

func TestLearnerSpecValidateNamesTheParam(t *testing.T) {
	for _, tc := range []struct {
		spec models.LearnerSpec
		want []string
	}{
		{models.LearnerSpec{Kind: "forest"}, []string{"unknown learner kind", `"forest"`, "hoeffding_tree"}},
		{models.LearnerSpec{Kind: "hat", Params: map[string]string{"grace": "10"}}, []string{`no param "grace"`, "grace_period"}},
		{models.LearnerSpec{Kind: "hat", Params: map[string]string{"grace_period": "ten"}}, []string{"grace_period", "not an integer"}},
		{models.LearnerSpec{Kind: "hoeffding_tree", Params: map[string]string{"delta": "2"}}, []string{"delta=", "outside (0, 1)"}},
		{models.LearnerSpec{Kind: "hoeffding_tree", Params: map[string]string{"leaf_prediction": "knn"}}, []string{"leaf_prediction", "nba, nb, mc"}},
		{models.LearnerSpec{Kind: "arf", Params: map[string]string{"max_features": "most"}}, []string{"max_features", "sqrt"}},
		{models.LearnerSpec{Kind: "arf_regressor", Params: map[string]string{"aggregation_method": "mode"}}, []string{"aggregation_method", "median, mean"}},
		{models.LearnerSpec{Kind: "linear", Params: map[string]string{"optimizer": "sgd", "l1": "0.1"}}, []string{"l1", "ftrl"}},
		{models.LearnerSpec{Kind: "hat", Params: map[string]string{"seed": "-1"}}, []string{"seed", "non-negative"}},
	} {
		err := tc.spec.Validate()
		if err == nil {
			t.Errorf("%+v: valid, want an error", tc.spec)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not mention %q", tc.spec, err, w)
			}
		}
	}
	if err := (models.LearnerSpec{Kind: "forest"}).Validate(); !errors.Is(err, models.ErrUnknownKind) {
		t.Errorf("unknown kind: %v does not wrap ErrUnknownKind", err)
	}
}

// TestLearnerSpecMLP: the factory builds the MLP from its params, and
// MLPConfig gives the same configuration for ONNX Runtime's step.
func TestLearnerSpecMLP(t *testing.T) {
	sh := models.Shape{NumDense: 4, NumHashed: 1, HashBits: 8}
	s := models.LearnerSpec{Kind: "mlp", Params: map[string]string{"hidden": "16,8", "activation": "tanh", "optimizer": "sgd", "batch_size": "4", "seed": "3"}}
	l, err := models.NewLearnerFromSpec(s, sh, 2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := s.MLPConfig(sh, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := l.(*models.MLP).Config()
	if len(got.Hidden) != 2 || got.Hidden[0] != 16 || got.Activation != models.ActivationTanh || got.Optimizer.Kind != models.MLPOptimizerSGD ||
		got.BatchSize != 4 || got.Seed != 3 || got.Link != models.LinkSigmoid || got.NumDense != 4 || got.HashBits != 8 {
		t.Fatalf("params not applied: %+v", got)
	}
	if cfg.Hidden[1] != got.Hidden[1] || cfg.Link != got.Link || cfg.BatchSize != got.BatchSize {
		t.Fatalf("MLPConfig %+v differs from the built learner's %+v", cfg, got)
	}
	if r, err := models.NewLearnerFromSpec(models.LearnerSpec{Kind: "mlp_regressor"}, sh, 0); err != nil || r.Link() != models.LinkIdentity {
		t.Fatalf("mlp_regressor: %v, %v", r, err)
	}
	for _, bad := range []map[string]string{{"hidden": "0"}, {"hidden": "8,8,8"}, {"activation": "gelu"}, {"learning_rate": "-1"}} {
		if err := (models.LearnerSpec{Kind: "mlp", Params: bad}).Validate(); err == nil {
			t.Errorf("mlp params %v accepted", bad)
		}
	}
	if _, err := (models.LearnerSpec{Kind: "hat"}).MLPConfig(sh, 2); err == nil {
		t.Error("MLPConfig of a hat spec succeeded")
	}
}
