package models_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/driftline/driftline/models"
)

// An MLP learns XOR of two signs, which no linear model can express: the
// label is 1 when both values have the same sign.
func ExampleNewMLP() {
	m, err := models.NewMLP(models.MLPConfig{
		Link:      models.LinkSigmoid,
		NumDense:  2,
		Hidden:    []int{16},
		Optimizer: models.MLPOptimizerConfig{LearningRate: 0.02},
		BatchSize: 8,
		Seed:      1,
	})
	if err != nil {
		panic(err)
	}
	const n = 20_000
	rng := rand.New(rand.NewPCG(1, 2))
	rows := &models.Rows{N: n, NumDense: 2, Dense: make([]float32, 2*n)}
	y := make([]float32, n)
	for i := range n {
		a, b := 2*rng.Float64()-1, 2*rng.Float64()-1
		rows.Dense[2*i], rows.Dense[2*i+1] = float32(a), float32(b)
		if a*b > 0 {
			y[i] = 1
		}
	}
	if err := m.Learn(rows, y); err != nil {
		panic(err)
	}
	probe := &models.Rows{N: 4, NumDense: 2, Dense: []float32{0.5, 0.5, -0.5, 0.5, -0.5, -0.5, 0.5, -0.5}}
	p := make([]float32, 4)
	if err := m.Predict(p, probe); err != nil {
		panic(err)
	}
	for i := range 4 {
		fmt.Printf("(%+.1f, %+.1f): P(y=1) > 0.9: %v, < 0.1: %v\n", probe.Dense[2*i], probe.Dense[2*i+1], p[i] > 0.9, p[i] < 0.1)
	}
	fmt.Println("steps:", m.Steps())
	// Output:
	// (+0.5, +0.5): P(y=1) > 0.9: true, < 0.1: false
	// (-0.5, +0.5): P(y=1) > 0.9: false, < 0.1: true
	// (-0.5, -0.5): P(y=1) > 0.9: true, < 0.1: false
	// (+0.5, -0.5): P(y=1) > 0.9: false, < 0.1: true
	// steps: 2500
}
