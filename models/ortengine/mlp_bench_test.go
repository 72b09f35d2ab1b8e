//go:build cgo && !noonnx

package ortengine

import (
	"fmt"
	"testing"

	"github.com/driftline/driftline/models"
)

// benchStepConfig is the training-step benchmarks' network: 32 dense
// inputs, two ReLU layers of the given width, one sigmoid output, Adam, and
// one step per batch of the given size (the scoring MLP of ortbench).
func benchStepConfig(width, batch int) models.MLPConfig {
	return models.MLPConfig{Link: models.LinkSigmoid, NumDense: 32, Hidden: []int{width, width}, BatchSize: batch, Seed: 1}
}

// BenchmarkMLPTrainStep compares one training step of the Go MLP with the
// same step on ONNX Runtime's CPU provider (one intra-op thread, like the
// Go step), at batch 256 and 4096 and widths 64 and 1024. An op is one
// Learn of exactly one batch: scaling the rows, the step, and for ONNX
// Runtime folding the batch into its input matrix. The Go step at width
// 1024 and batch 4096 takes tens of seconds; run it with -benchtime 1x:
//
//	go test -run '^$' -bench MLPTrainStep -benchtime 1x ./models/ortengine/
func BenchmarkMLPTrainStep(b *testing.B) {
	for _, width := range []int{64, 1024} {
		for _, batch := range []int{256, 4096} {
			cfg := benchStepConfig(width, batch)
			rows, y := mlpStream(cfg, 1, batch)
			for _, backend := range []string{"go", "ort-cpu"} {
				b.Run(fmt.Sprintf("%s/width=%d/batch=%d", backend, width, batch), func(b *testing.B) {
					var m *models.MLP
					if backend == "go" {
						var err error
						if m, err = models.NewMLP(cfg); err != nil {
							b.Fatal(err)
						}
					} else {
						m = newORTMLP(b, Config{}, cfg)
					}
					if err := m.Learn(rows, y); err != nil { // warm up: the first ORT step wraps the buffers
						b.Fatal(err)
					}
					b.ReportAllocs()
					for b.Loop() {
						if err := m.Learn(rows, y); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
				})
			}
		}
	}
}
