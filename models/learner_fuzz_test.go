package models_test

import (
	"math"
	"testing"

	"github.com/driftline/driftline/models"
)

// FuzzLinearConfigs builds a linear learner from fuzzed configuration
// values and, when NewLinear accepts them, feeds it 10,000 rows through
// fuzzStream (missing, infinite, huge and absent values; extreme regression
// targets): nothing may panic, every output stays finite (a probability
// for classifiers), and a snapshot restores to the same predictions. The
// shape is folded into small ranges; every other field is passed as
// fuzzed, out-of-range values included.
//
//	go test -run '^$' -fuzz FuzzLinearConfigs -fuzztime 60s ./models/
func FuzzLinearConfigs(f *testing.F) {
	f.Add(uint8(1), 0, uint8(4), uint8(2), uint8(6), uint8(0), 0.01, uint8(0), 0.5, 1e-4, 1e-8, 1.0, 0.0, 0.0, 1e12, uint64(1))
	f.Add(uint8(2), 3, uint8(3), uint8(1), uint8(4), uint8(1), 0.1, uint8(0), 0.0, 0.0, 0.0, 0.0, 0.0, 1e-3, 0.0, uint64(2))
	f.Add(uint8(0), 0, uint8(5), uint8(0), uint8(0), uint8(2), 0.05, uint8(0), 0.0, 0.0, 0.0, 1.0, 0.1, 0.1, 1.0, uint64(3))
	f.Add(uint8(0), 0, uint8(2), uint8(2), uint8(3), uint8(0), 1e6, uint8(2), 0.25, 1e-4, 0.0, 0.0, 0.0, 0.0, 1e30, uint64(4))
	f.Add(uint8(1), 1, uint8(2), uint8(1), uint8(3), uint8(0), 10.0, uint8(1), 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, uint64(5))
	f.Add(uint8(9), -1, uint8(2), uint8(1), uint8(40), uint8(7), math.NaN(), uint8(9), -1.0, math.Inf(1), -1.0, -1.0, -1.0, -1.0, -1.0, uint64(6))
	f.Fuzz(func(t *testing.T, link uint8, classes int, nd, nh, bits, opt uint8, rate float64, schedule uint8,
		powerT, schedAlpha, eps, beta, l1, l2, clip float64, dataSeed uint64) {
		shape := models.Shape{NumDense: int(nd % 8), NumHashed: int(nh % 4), HashBits: int(bits % 40)}
		if shape.HashBits > 12 && shape.HashBits <= models.MaxHashBits {
			shape.HashBits %= 12 // valid but slow: fold
		}
		cfg := models.LinearConfig{
			Link: models.Link(link % 4), Classes: foldClasses(classes),
			NumDense: shape.NumDense, NumHashed: shape.NumHashed, HashBits: shape.HashBits,
			Optimizer: models.OptimizerConfig{Kind: models.OptimizerKind(opt % 4), LearningRate: rate,
				Schedule: models.Schedule(schedule % 4), PowerT: powerT, ScheduleAlpha: schedAlpha, Epsilon: eps, Beta: beta},
			L1: l1, L2: l2, ClipGradient: clip,
		}
		l, err := models.NewLinear(cfg)
		if err != nil {
			return
		}
		if shape.NumDense == 0 && shape.NumHashed == 0 {
			return
		}
		fuzzStream(t, l, l.Shape(), l.Link() == models.LinkIdentity, dataSeed)
	})
}

// FuzzMLPConfigs is FuzzLinearConfigs for the MLP: fuzzed link, widths,
// activation, optimizer, batch size, L2 and clipping, with the shape and
// the widths folded into small ranges so that each input runs in well
// under a second.
//
//	go test -run '^$' -fuzz FuzzMLPConfigs -fuzztime 60s ./models/
func FuzzMLPConfigs(f *testing.F) {
	f.Add(uint8(1), 0, uint8(4), uint8(2), uint8(6), 16, 0, uint8(0), uint8(0), 0.001, 0.9, 0.999, 1e-8, 16, 0.0, 0.0, uint64(1), uint64(1))
	f.Add(uint8(2), 3, uint8(3), uint8(1), uint8(4), 8, 8, uint8(1), uint8(1), 0.3, 0.0, 0.0, 0.0, 4, 1e-5, 0.0, uint64(2), uint64(2))
	f.Add(uint8(0), 0, uint8(5), uint8(0), uint8(0), 4, 0, uint8(0), uint8(1), 0.1, 0.0, 0.0, 0.0, 1, 0.0, 1.0, uint64(3), uint64(3))
	f.Add(uint8(0), 0, uint8(2), uint8(1), uint8(3), 2, 2, uint8(1), uint8(0), 10.0, 0.5, 0.5, 1.0, 3, 0.0, 1e30, uint64(4), uint64(4))
	f.Add(uint8(9), -2, uint8(1), uint8(0), uint8(0), -1, 70000, uint8(5), uint8(4), math.NaN(), 1.0, -1.0, -1.0, -1, -1.0, -1.0, uint64(5), uint64(5))
	f.Fuzz(func(t *testing.T, link uint8, classes int, nd, nh, bits uint8, w1, w2 int, act, opt uint8,
		rate, beta1, beta2, eps float64, batch int, l2, clip float64, seed, dataSeed uint64) {
		shape := models.Shape{NumDense: int(nd % 6), NumHashed: int(nh % 3), HashBits: int(bits % 40)}
		if shape.HashBits > 8 && shape.HashBits <= models.MaxHashBits {
			shape.HashBits %= 8
		}
		hidden := []int{foldWidth(w1)}
		if w2 != 0 {
			hidden = append(hidden, foldWidth(w2))
		}
		if batch > 64 {
			batch %= 64
		}
		cfg := models.MLPConfig{
			Link: models.Link(link % 4), Classes: foldClasses(classes),
			NumDense: shape.NumDense, NumHashed: shape.NumHashed, HashBits: shape.HashBits,
			Hidden: hidden, Activation: models.Activation(act % 3),
			Optimizer: models.MLPOptimizerConfig{Kind: models.MLPOptimizerKind(opt % 3), LearningRate: rate, Beta1: beta1, Beta2: beta2, Epsilon: eps},
			BatchSize: batch, L2: l2, ClipGradient: clip, Seed: seed,
		}
		m, err := models.NewMLP(cfg)
		if err != nil {
			return
		}
		fuzzStream(t, m, m.Shape(), m.Link() == models.LinkIdentity, dataSeed)
	})
}

// foldClasses keeps a fuzzed class count small (softmax allocates per
// class) without hiding the invalid ones: negative, 0, 1 and 2 to 7 stay.
func foldClasses(k int) int {
	if k > 7 {
		return 2 + k%6
	}
	return k
}

// foldWidth keeps a fuzzed hidden width small, leaving invalid ones (≤ 0
// and past MaxMLPWidth) as they are.
func foldWidth(w int) int {
	if w > 32 && w <= models.MaxMLPWidth {
		return w % 32
	}
	return w
}
