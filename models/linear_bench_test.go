package models

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

type benchLearner struct {
	name string
	cfg  LinearConfig
}

// benchLearners is every link × optimizer at the shape of the performance
// notes: 10 dense values and 3 categoricals hashed into 2^18 buckets.
func benchLearners() []benchLearner {
	var out []benchLearner
	for _, link := range []struct {
		link    Link
		classes int
	}{{LinkSigmoid, 1}, {LinkSoftmax, 3}, {LinkIdentity, 1}} {
		for _, kind := range []OptimizerKind{OptimizerSGD, OptimizerAdaGrad, OptimizerFTRL} {
			out = append(out, benchLearner{
				name: fmt.Sprintf("%s/%s", link.link, kind),
				cfg: LinearConfig{Link: link.link, Classes: link.classes, NumDense: 10, NumHashed: 3, HashBits: 18,
					Optimizer: OptimizerConfig{Kind: kind}},
			})
		}
	}
	return out
}

// benchRows returns n random rows for cfg and valid labels.
func benchRows(cfg LinearConfig, n int) (*Rows, []float32) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows := &Rows{N: n, NumDense: cfg.NumDense, NumHashed: cfg.NumHashed,
		Dense: make([]float32, n*cfg.NumDense), Hashed: make([]int32, n*cfg.NumHashed)}
	for i := range rows.Dense {
		rows.Dense[i] = float32(rng.NormFloat64()*10 + 5)
	}
	for i := range rows.Hashed {
		rows.Hashed[i] = rng.Int32N(1 << cfg.HashBits)
	}
	y := make([]float32, n)
	for i := range y {
		switch cfg.Link {
		case LinkIdentity:
			y[i] = float32(rng.NormFloat64())
		case LinkSigmoid:
			y[i] = float32(rng.IntN(2))
		default:
			y[i] = float32(rng.IntN(cfg.Classes))
		}
	}
	return rows, y
}

// BenchmarkPredictLearn measures one Predict then one Learn on the same
// batch, the work the pipeline does per event once its label arrives.
// ns/row is the cost per event.
func BenchmarkPredictLearn(b *testing.B) {
	const pool = 4096
	for _, bl := range benchLearners() {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", bl.name, batch), func(b *testing.B) {
				l := mustLinear(b, bl.cfg)
				rows, y := benchRows(bl.cfg, pool)
				dst := make([]float32, batch*l.Classes())
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					lo := i % (pool / batch) * batch
					view := &Rows{N: batch, NumDense: rows.NumDense, NumHashed: rows.NumHashed,
						Dense:  rows.Dense[lo*rows.NumDense : (lo+batch)*rows.NumDense],
						Hashed: rows.Hashed[lo*rows.NumHashed : (lo+batch)*rows.NumHashed]}
					if err := l.Predict(dst, view); err != nil {
						b.Fatal(err)
					}
					if err := l.Learn(view, y[lo:lo+batch]); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
			})
		}
	}
}
