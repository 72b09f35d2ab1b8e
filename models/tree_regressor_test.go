package models

import (
	"math/rand/v2"
	"testing"
)

// TestRegressorModelLeaves checks model-only leaves (River's "model") on
// inputs of the scale SGD at River's rate suits: a linear target in [0, 1]²
// is learned to R² > 0.99.
func TestRegressorModelLeaves(t *testing.T) {
	h, err := NewHoeffdingTreeRegressor(HoeffdingTreeRegressorConfig{NumDense: 2, LeafPrediction: RegressionLeafModel, LeafLearningRate: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	draw := func(n int) (*Rows, []float32) {
		rows := &Rows{N: n, NumDense: 2, Dense: make([]float32, 2*n)}
		y := make([]float32, n)
		for i := range n {
			a, b := rng.Float64(), rng.Float64()
			rows.Dense[2*i], rows.Dense[2*i+1] = float32(a), float32(b)
			y[i] = float32(2*a - b + 0.5)
		}
		return rows, y
	}
	rows, y := draw(20000)
	if err := h.Learn(rows, y); err != nil {
		t.Fatal(err)
	}
	test, want := draw(1000)
	got := make([]float32, test.N)
	if err := h.Predict(got, test); err != nil {
		t.Fatal(err)
	}
	var res, tot, mean float64
	for _, v := range want {
		mean += float64(v) / float64(len(want))
	}
	for i, v := range want {
		d, e := float64(v-got[i]), float64(v)-mean
		res += d * d
		tot += e * e
	}
	if r2 := 1 - res/tot; r2 <= 0.99 {
		t.Fatalf("R² %.4f on a linear target, want > 0.99", r2)
	}
}
