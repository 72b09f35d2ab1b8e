package models_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/driftline/driftline/models"
)

// A Hoeffding tree learns a concept no linear model can: y = 1 inside a
// band of the first attribute.
func ExampleHoeffdingTreeClassifier() {
	tree, err := models.NewHoeffdingTreeClassifier(models.HoeffdingTreeConfig{NumDense: 2, GracePeriod: 50})
	if err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rows := &models.Rows{N: 1, NumDense: 2, Dense: make([]float32, 2)}
	label := make([]float32, 1)
	for range 5000 {
		a, b := rng.Float64(), rng.Float64()
		rows.Dense[0], rows.Dense[1] = float32(a), float32(b)
		label[0] = 0
		if a > 0.3 && a < 0.7 {
			label[0] = 1
		}
		if err := tree.Learn(rows, label); err != nil {
			panic(err)
		}
	}
	p := make([]float32, 1)
	for _, a := range []float32{0.1, 0.5, 0.9} {
		rows.Dense[0], rows.Dense[1] = a, 0.5
		if err := tree.Predict(p, rows); err != nil {
			panic(err)
		}
		fmt.Printf("P(y=1 | a=%.1f) > 0.5: %v\n", a, p[0] > 0.5)
	}
	// Output:
	// P(y=1 | a=0.1) > 0.5: false
	// P(y=1 | a=0.5) > 0.5: true
	// P(y=1 | a=0.9) > 0.5: false
}

// LearnerSpec builds any learner from its kind and text parameters, as a
// spec file or `driftline eval --model KIND --param k=v` gives them, and
// names the parameter at fault when one is wrong.
func ExampleLearnerSpec() {
	spec := models.LearnerSpec{Kind: "arf", Params: map[string]string{"n_models": "5", "seed": "7"}}
	l, err := models.NewLearnerFromSpec(spec, models.Shape{NumDense: 9}, 2)
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Link(), l.(*models.ARFClassifier).Config().Models)

	bad := models.LearnerSpec{Kind: "hat", Params: map[string]string{"grace_period": "-5"}}
	fmt.Println(bad.Validate())
	// Output:
	// sigmoid 5
	// hat param grace_period="-5": models: grace period -5 < 1
}
