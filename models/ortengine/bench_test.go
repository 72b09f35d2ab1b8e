//go:build cgo && !noonnx

package ortengine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
)

// benchLogistic is the model the scoring benchmarks use: a logistic
// regression over 11 dense values and 3 hashed categoricals in 2^18 buckets,
// the featurizer's shape in shared/PERFORMANCE-NOTES.md, trained briefly.
func benchLogistic(b *testing.B) (*models.Linear, *rand.Rand) {
	b.Helper()
	rng := rand.New(rand.NewPCG(11, 11))
	l, err := models.NewLinear(models.LinearConfig{
		Link: models.LinkSigmoid, NumDense: 11, NumHashed: 3, HashBits: 18,
		Optimizer: models.OptimizerConfig{Kind: models.OptimizerAdaGrad},
	})
	if err != nil {
		b.Fatal(err)
	}
	mean := make([]float32, 11)
	std := make([]float32, 11)
	for j := range std {
		std[j] = 1
	}
	rows := randomRows(rng, 2000, 11, 3, 18, mean, std, false)
	y := make([]float32, rows.N)
	for i := range y {
		if rows.DenseRow(i)[0] > 0 {
			y[i] = 1
		}
	}
	if err := l.Learn(rows, y); err != nil {
		b.Fatal(err)
	}
	return l, rng
}

func reportPerRow(b *testing.B, batch int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
}

// BenchmarkScoreLogistic compares the pure-Go learner's Predict with ONNX
// Runtime on the CPU (one session, one intra-op thread) scoring the same
// exported model, at batch sizes 1, 64 and 4096.
func BenchmarkScoreLogistic(b *testing.B) {
	learner, rng := benchLogistic(b)
	params := learner.Params()
	engine := newLinear(b, Config{}, exportLinear(b, &params))
	for _, batch := range []int{1, 64, 4096} {
		rows := randomRows(rng, batch, 11, 3, 18, params.Mean, params.Std, false)
		dst := make([]float32, batch)
		b.Run(fmt.Sprintf("go/batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := learner.Predict(dst, rows); err != nil {
					b.Fatal(err)
				}
			}
			reportPerRow(b, batch)
		})
		b.Run(fmt.Sprintf("ort-cpu/batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := engine.Score(dst, rows); err != nil {
					b.Fatal(err)
				}
			}
			reportPerRow(b, batch)
		})
	}
}
