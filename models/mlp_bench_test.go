package models

import (
	"fmt"
	"testing"
)

// BenchmarkMLPPredictLearn measures the MLP at the shape of the performance
// notes (10 dense values, 3 categoricals hashed into 2^12 buckets), one
// ReLU layer of 32 and two of 32 and 16, batches of 16 rows per step, with
// the logistic learner (AdaGrad) beside it: Predict alone, and Predict then
// Learn — the work per event once its label arrives. ns/row is the cost per
// event:
//
//	go test -run '^$' -bench MLPPredictLearn -benchtime 200ms ./models/
func BenchmarkMLPPredictLearn(b *testing.B) {
	const pool = 4096
	shape := LinearConfig{Link: LinkSigmoid, NumDense: 10, NumHashed: 3, HashBits: 12}
	rows, y := benchRows(shape, pool)
	type learner interface {
		Predict([]float32, *Rows) error
		Learn(*Rows, []float32) error
	}
	cases := []struct {
		name string
		new  func(testing.TB) learner
	}{
		{"logistic-adagrad", func(tb testing.TB) learner {
			cfg := shape
			cfg.Optimizer.Kind = OptimizerAdaGrad
			return mustLinear(tb, cfg)
		}},
	}
	for _, hidden := range [][]int{{32}, {32, 16}} {
		for _, kind := range []MLPOptimizerKind{MLPOptimizerAdam, MLPOptimizerSGD} {
			cases = append(cases, struct {
				name string
				new  func(testing.TB) learner
			}{fmt.Sprintf("mlp-%v-%s", hidden, kind), func(tb testing.TB) learner {
				return mustMLP(tb, MLPConfig{Link: LinkSigmoid, NumDense: 10, NumHashed: 3, HashBits: 12,
					Hidden: hidden, Optimizer: MLPOptimizerConfig{Kind: kind}, BatchSize: 16})
			}})
		}
	}
	for _, c := range cases {
		for _, mode := range []string{"predict", "predict+learn"} {
			b.Run(fmt.Sprintf("%s/%s/batch=64", c.name, mode), func(b *testing.B) {
				const batch = 64
				l := c.new(b)
				if err := l.Learn(rows, y); err != nil {
					b.Fatal(err)
				}
				dst := make([]float32, batch)
				view := &Rows{N: batch, NumDense: rows.NumDense, NumHashed: rows.NumHashed}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					lo := i % (pool / batch) * batch
					view.Dense = rows.Dense[lo*rows.NumDense : (lo+batch)*rows.NumDense]
					view.Hashed = rows.Hashed[lo*rows.NumHashed : (lo+batch)*rows.NumHashed]
					if err := l.Predict(dst, view); err != nil {
						b.Fatal(err)
					}
					if mode == "predict+learn" {
						if err := l.Learn(view, y[lo:lo+batch]); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
			})
		}
	}
}
