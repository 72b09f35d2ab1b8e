package models_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
)

// FuzzTreeConfigs builds a tree or forest from fuzzed configuration values
// and, when its constructor accepts them, feeds it 10,000 rows with
// missing, infinite, huge and absent values, predicting along the way:
// nothing may panic, every output must be finite (a probability for
// classifiers), and a snapshot must restore to the same predictions. The
// shape and forest size are folded into small ranges so that each input
// runs in well under a second; every other field is passed as fuzzed.
//
//	go test -run '^$' -fuzz FuzzTreeConfigs -fuzztime 60s ./models/
func FuzzTreeConfigs(f *testing.F) {
	f.Add(uint8(0), uint8(2), uint8(4), uint8(2), uint8(6), 200, 0, 1e-7, 0.05, 0.01, 0.99, uint8(0), uint8(0), uint8(0), 100.0, 1_000_000, uint8(3), "sqrt", 6.0, uint64(1), uint64(2))
	f.Add(uint8(1), uint8(3), uint8(2), uint8(1), uint8(4), 5, 3, 0.5, 0.3, 0.2, 0.6, uint8(2), uint8(1), uint8(7), 0.001, 50, uint8(2), "all", 1.0, uint64(3), uint64(4))
	f.Add(uint8(2), uint8(2), uint8(3), uint8(2), uint8(8), 10, 0, 0.01, 0.05, 0.01, 0.99, uint8(1), uint8(0), uint8(1), 0.01, 300, uint8(4), "2", 6.0, uint64(5), uint64(6))
	f.Add(uint8(3), uint8(0), uint8(5), uint8(0), uint8(0), 20, 0, 1e-3, 0.05, 0.01, 0.99, uint8(1), uint8(0), uint8(6), 0.002, 100, uint8(3), "log2", 3.0, uint64(7), uint64(8))
	f.Add(uint8(4), uint8(0), uint8(3), uint8(1), uint8(5), 30, 4, 0.01, 0.1, 0.01, 0.99, uint8(2), uint8(0), uint8(0), 1.0, 500, uint8(3), "0.5", 6.0, uint64(9), uint64(10))
	f.Add(uint8(0), uint8(2), uint8(2), uint8(1), uint8(3), -1, -2, math.NaN(), math.Inf(1), -0.5, 7.0, uint8(9), uint8(9), uint8(255), -1.0, -5, uint8(0), "most", -6.0, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, family, classes, nd, nh, bits uint8, grace, maxDepth int, delta, tau, minFrac, maxShare float64,
		leaf, crit, flags uint8, maxSize float64, period int, trees uint8, maxFeatures string, lambda float64, seed, dataSeed uint64) {
		shape := models.Shape{NumDense: int(nd % 8), NumHashed: int(nh % 4), HashBits: int(bits % 12)}
		ht := models.HoeffdingTreeConfig{
			Classes: int(classes % 6), NumDense: shape.NumDense, NumHashed: shape.NumHashed, HashBits: shape.HashBits,
			GracePeriod: grace, MaxDepth: maxDepth, SplitCriterion: models.SplitCriterion(crit % 3),
			Delta: delta, Tau: tau, LeafPrediction: models.LeafPrediction(leaf % 4), NBThreshold: int(flags) % 50,
			BinarySplit: flags&1 != 0, MinBranchFraction: minFrac, MaxShareToSplit: maxShare, MaxSizeMiB: maxSize,
			MemoryEstimatePeriod: period, StopMemManagement: flags&2 != 0, RemovePoorAttrs: flags&4 != 0, NoMeritPreprune: flags&8 != 0,
		}
		htr := models.HoeffdingTreeRegressorConfig{
			NumDense: shape.NumDense, NumHashed: shape.NumHashed, HashBits: shape.HashBits, GracePeriod: grace, MaxDepth: maxDepth,
			Delta: delta, Tau: tau, LeafPrediction: models.RegressionLeafPrediction(leaf % 4), ModelSelectorDecay: maxShare,
			MinSamplesSplit: int(flags) % 20, BinarySplit: flags&1 != 0, MaxSizeMiB: maxSize, MemoryEstimatePeriod: period,
			StopMemManagement: flags&2 != 0, RemovePoorAttrs: flags&4 != 0, NoMeritPreprune: flags&8 != 0,
			LeafLearningRate: minFrac, SplitterDigits: int(crit % 17),
		}
		var l models.Learner
		var err error
		regression := false
		switch family % 5 {
		case 0:
			l, err = models.NewHoeffdingTreeClassifier(ht)
		case 1:
			l, err = models.NewHoeffdingAdaptiveTreeClassifier(models.HATConfig{HoeffdingTreeConfig: ht, Seed: seed, NoBootstrap: flags&16 != 0,
				DriftWindowThreshold: int(trees), SwitchSignificance: lambda / 100, ADWINDelta: tau})
		case 2:
			l, err = models.NewARFClassifier(models.ARFConfig{HoeffdingTreeConfig: ht, Models: int(trees % 5), MaxFeatures: maxFeatures,
				Lambda: lambda, DisableWeightedVote: flags&16 != 0, WarningDelta: tau, NoWarning: flags&32 != 0, NoDrift: flags&64 != 0, Seed: seed})
		case 3:
			regression = true
			l, err = models.NewHoeffdingTreeRegressor(htr)
		case 4:
			regression = true
			l, err = models.NewARFRegressor(models.ARFRegressorConfig{HoeffdingTreeRegressorConfig: htr, Models: int(trees % 5),
				MaxFeatures: maxFeatures, Aggregation: []string{"median", "mean", "mode"}[flags%3], Lambda: lambda,
				WeightedVote: flags&16 != 0, DriftDelta: tau, NoWarning: flags&32 != 0, NoDrift: flags&64 != 0, Seed: seed})
		}
		if err != nil {
			return
		}
		if shape.NumDense == 0 && shape.NumHashed == 0 {
			return
		}
		fuzzStream(t, l, shape, regression, dataSeed)
	})
}

// fuzzStream feeds l 10,000 rows and checks its outputs and snapshot.
func fuzzStream(t *testing.T, l models.Learner, sh models.Shape, regression bool, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 17))
	values := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e30, -1e30, math.MaxFloat32, 0}
	k := l.Classes()
	classes := k
	if l.Link() == models.LinkSigmoid {
		classes = 2
	}
	const total, batch = 10_000, 50
	rows := &models.Rows{N: batch, NumDense: sh.NumDense, NumHashed: sh.NumHashed,
		Dense: make([]float32, batch*sh.NumDense), Hashed: make([]int32, batch*sh.NumHashed)}
	y := make([]float32, batch)
	out := make([]float32, batch*k)
	drift := rng.Float64()
	for lo := 0; lo < total; lo += batch {
		for i := range rows.Dense {
			if rng.IntN(20) == 0 {
				rows.Dense[i] = values[rng.IntN(len(values))]
			} else {
				rows.Dense[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(7)-3)))
			}
		}
		for i := range rows.Hashed {
			switch rng.IntN(10) {
			case 0:
				rows.Hashed[i] = -1
			case 1:
				rows.Hashed[i] = int32(rng.Uint32())
			default:
				rows.Hashed[i] = int32(rng.IntN(max(1, min(1<<sh.HashBits, 40))))
			}
		}
		for i := range y {
			signal := 0.0
			if sh.NumDense > 0 {
				signal = float64(rows.DenseRow(i)[0])
			}
			if lo > int(drift*total) {
				signal = -signal
			}
			if regression {
				y[i] = float32(signal)
				if rng.IntN(50) == 0 {
					y[i] = []float32{1e30, -1e30, math.MaxFloat32}[rng.IntN(3)]
				}
				if math.IsNaN(float64(y[i])) || math.IsInf(float64(y[i]), 0) {
					y[i] = 0
				}
			} else {
				y[i] = float32(rng.IntN(classes))
				if signal > 0 && rng.IntN(3) > 0 {
					y[i] = 0
				}
			}
		}
		if err := l.Predict(out, rows); err != nil {
			t.Fatalf("predict: %v", err)
		}
		checkOutputs(t, out, regression)
		if err := l.Learn(rows, y); err != nil {
			t.Fatalf("learn: %v", err)
		}
	}
	data, err := l.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	restored, err := models.UnmarshalLearner(data)
	if err != nil {
		t.Fatalf("unmarshal a fresh snapshot: %v", err)
	}
	got := make([]float32, batch*k)
	if err := l.Predict(out, rows); err != nil {
		t.Fatal(err)
	}
	if err := restored.Predict(got, rows); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		if math.Float32bits(out[i]) != math.Float32bits(got[i]) {
			t.Fatalf("restored prediction %d is %v, want %v", i, got[i], out[i])
		}
	}
}

func checkOutputs(t *testing.T, out []float32, regression bool) {
	t.Helper()
	for i, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || (!regression && (v < 0 || v > 1)) {
			t.Fatalf("output %d is %v", i, v)
		}
	}
}
