package models

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustLinear(t testing.TB, cfg LinearConfig) *Linear {
	t.Helper()
	l, err := NewLinear(cfg)
	if err != nil {
		t.Fatalf("new linear: %v", err)
	}
	return l
}

func TestLinearConfigDefaults(t *testing.T) {
	l := mustLinear(t, LinearConfig{Link: LinkSigmoid, NumDense: 2, NumHashed: 1})
	c := l.Config()
	if c.Classes != 1 || c.HashBits != DefaultHashBits || c.Optimizer.LearningRate != DefaultSGDRate ||
		c.ClipGradient != DefaultClipGradient || c.Optimizer.Beta != DefaultFTRLBeta {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if got := mustLinear(t, LinearConfig{NumDense: 1}).Config().HashBits; got != 0 {
		t.Fatalf("hash bits without hashed features = %d, want 0", got)
	}
	for kind, rate := range map[OptimizerKind]float64{OptimizerAdaGrad: DefaultAdaGradRate, OptimizerFTRL: DefaultFTRLAlpha} {
		got := mustLinear(t, LinearConfig{NumDense: 1, Optimizer: OptimizerConfig{Kind: kind}}).Config().Optimizer.LearningRate
		if got != rate {
			t.Fatalf("%s default rate %v, want %v", kind, got, rate)
		}
	}
}

func TestLinearConfigValidateRejects(t *testing.T) {
	for want, cfg := range map[string]LinearConfig{
		"needs classes 1":            {Link: LinkSigmoid, Classes: 2},
		"softmax needs classes":      {Link: LinkSoftmax, Classes: 1},
		"unknown link":               {Link: 9},
		"negative feature count":     {NumDense: -1},
		"hash bits 29 outside":       {NumHashed: 1, HashBits: 29},
		"unknown optimizer":          {Optimizer: OptimizerConfig{Kind: 7}},
		"unknown schedule":           {Optimizer: OptimizerConfig{Schedule: 5}},
		"needs the sgd optimizer":    {Optimizer: OptimizerConfig{Kind: OptimizerFTRL, Schedule: ScheduleOptimal}},
		"l1 needs the ftrl":          {L1: 0.1},
		"learning rate must be":      {Optimizer: OptimizerConfig{LearningRate: -1}},
		"l2 must be finite":          {L2: math.NaN()},
		"clip gradient must be":      {ClipGradient: math.Inf(1)},
		"beta must be finite and po": {Optimizer: OptimizerConfig{Beta: -2}},
	} {
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("config %+v: error %v, want one containing %q", cfg, err, want)
		}
		if _, err := NewLinear(cfg); err == nil {
			t.Fatalf("NewLinear accepted %+v", cfg)
		}
	}
}

// oneBucket is a regression learner whose every row is hashed index 0 of a
// single hashed field: the margin is B[0] + W[bucket 0], so each step can
// be computed by hand.
func oneBucket(t *testing.T, opt OptimizerConfig, l1, l2 float64) (*Linear, *Rows) {
	l := mustLinear(t, LinearConfig{NumHashed: 1, HashBits: 1, Optimizer: opt, L1: l1, L2: l2})
	return l, &Rows{N: 1, NumHashed: 1, Hashed: []int32{0}}
}

func TestOptimizerStepsMatchTheirFormulas(t *testing.T) {
	labels := []float32{1, -2, 0.5, 3}
	const l1, l2 = 0.05, 0.1
	cases := []struct {
		name string
		opt  OptimizerConfig
		l1   float64
		// next returns the new weight given the weight, its gradient, the
		// row index t and the coordinate's state, for a regularized
		// coordinate (reg) or the intercept.
		next func(w, g float64, t int, st *[2]float64, reg bool) float64
	}{
		{"sgd invscaling", OptimizerConfig{Kind: OptimizerSGD, Schedule: ScheduleInverseScaling, LearningRate: 0.3, PowerT: 1}, 0,
			func(w, g float64, t int, _ *[2]float64, reg bool) float64 {
				if reg {
					g += l2 * w
				}
				return w - 0.3/float64(t+1)*g
			}},
		{"adagrad", OptimizerConfig{Kind: OptimizerAdaGrad, LearningRate: 0.5, Epsilon: 1e-8}, 0,
			func(w, g float64, _ int, st *[2]float64, reg bool) float64 {
				if reg {
					g += l2 * w
				}
				st[0] += g * g
				return w - 0.5*g/math.Sqrt(st[0]+1e-8)
			}},
		{"ftrl", OptimizerConfig{Kind: OptimizerFTRL, LearningRate: 0.5, Beta: 1}, l1,
			func(w, g float64, _ int, st *[2]float64, reg bool) float64 {
				// McMahan et al. 2013, Algorithm 1, with st = (n, z).
				n, z := st[0], st[1]
				sigma := (math.Sqrt(n+g*g) - math.Sqrt(n)) / 0.5
				z += g - sigma*w
				n += g * g
				st[0], st[1] = n, z
				a, b := l1, l2
				if !reg {
					a, b = 0, 0
				}
				if math.Abs(z) <= a {
					return 0
				}
				sgn := 1.0
				if z < 0 {
					sgn = -1
				}
				return -(z - sgn*a) / ((1+math.Sqrt(n))/0.5 + b)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, row := oneBucket(t, tc.opt, tc.l1, l2)
			var w, b float64
			var stW, stB [2]float64
			for i, y := range labels {
				g := float64(float32(b)) + float64(float32(w)) - float64(y)
				w = float64(float32(tc.next(float64(float32(w)), g, i, &stW, true)))
				b = float64(float32(tc.next(float64(float32(b)), g, i, &stB, false)))
				if err := l.Learn(row, labels[i:i+1]); err != nil {
					t.Fatalf("learn: %v", err)
				}
				p := l.Params()
				if float64(p.W[0]) != w || float64(p.B[0]) != b {
					t.Fatalf("after row %d: weight %v, intercept %v; want %v, %v", i, p.W[0], p.B[0], w, b)
				}
			}
			if w == 0 || b == 0 {
				t.Fatalf("the hand computation never moved the weights (w %v, b %v)", w, b)
			}
		})
	}
}

func TestOptimalScheduleMatchesScikitLearn(t *testing.T) {
	// scikit-learn: typw = √(1/√α) = 10 for α = 1e-4; η0 = typw/max(1, |dloss(−typw, 1)|).
	// Log loss: |dloss| < 1, so η0 = 10 and t0 = 1/(α·η0) = 1000.
	// Squared loss: |dloss| = 11, so η0 = 10/11 and t0 = 11000.
	for link, want := range map[Link]float64{LinkSigmoid: 1000, LinkSoftmax: 1000, LinkIdentity: 11000} {
		if got := optimalT0(link, 1e-4); math.Abs(got-want) > 1e-9*want {
			t.Fatalf("%s: t0 %v, want %v", link, got, want)
		}
	}
	l := mustLinear(t, LinearConfig{Link: LinkSigmoid, NumDense: 1, Optimizer: OptimizerConfig{Schedule: ScheduleOptimal}})
	l.steps = 500
	if got, want := l.learningRate(), 1/(1e-4*1500); math.Abs(got-want) > 1e-12 {
		t.Fatalf("rate at t=500: %v, want %v", got, want)
	}
}

func TestScalerStatistics(t *testing.T) {
	l := mustLinear(t, LinearConfig{Link: LinkSigmoid, NumDense: 3})
	nan := float32(math.NaN())
	rows := &Rows{N: 4, NumDense: 3, Dense: []float32{
		1, 7, 10,
		2, 7, nan,
		3, 7, float32(math.Inf(1)),
		4, 7, 20,
	}}
	if err := l.Learn(rows, []float32{0, 1, 0, 1}); err != nil {
		t.Fatalf("learn: %v", err)
	}
	p := l.Params()
	wantMean := []float32{2.5, 7, 15}
	wantStd := []float32{float32(math.Sqrt(1.25)), 1, 5}
	for j := range wantMean {
		if p.Mean[j] != wantMean[j] || p.Std[j] != wantStd[j] {
			t.Fatalf("column %d: mean %v std %v, want %v %v", j, p.Mean[j], p.Std[j], wantMean[j], wantStd[j])
		}
	}
	if p.W[1] != 0 {
		t.Fatalf("a constant column scales to 0 and must keep weight 0, got %v", p.W[1])
	}
}

func TestDuplicateHashedIndexCountsItsMultiplicity(t *testing.T) {
	l := mustLinear(t, LinearConfig{NumHashed: 3, HashBits: 4})
	train := &Rows{N: 3, NumHashed: 3, Hashed: []int32{3, 5, -1, 3, 3, 9, 5, -1, 3}}
	if err := l.Learn(train, []float32{1, 2, 3}); err != nil {
		t.Fatalf("learn: %v", err)
	}
	p := l.Params()
	dst := make([]float32, 1)
	if err := l.Predict(dst, &Rows{N: 1, NumHashed: 3, Hashed: []int32{3, 7, 3}}); err != nil {
		t.Fatalf("predict: %v", err)
	}
	want := float32(float64(p.B[0]) + 2*float64(p.W[3]) + float64(p.W[7]))
	if dst[0] != want || p.W[3] == 0 {
		t.Fatalf("prediction %v, want B + 2·W[3] + W[7] = %v (W[3] = %v)", dst[0], want, p.W[3])
	}
}

func TestFTRLL1GivesExactZeros(t *testing.T) {
	zeros := func(l1 float64) int {
		l := mustLinear(t, LinearConfig{Link: LinkSigmoid, NumHashed: 2, HashBits: 8,
			Optimizer: OptimizerConfig{Kind: OptimizerFTRL}, L1: l1})
		rng := rand.New(rand.NewPCG(1, 2))
		rows := &Rows{N: 2000, NumHashed: 2, Hashed: make([]int32, 4000)}
		y := make([]float32, 2000)
		for i := range y {
			rows.Hashed[2*i], rows.Hashed[2*i+1] = rng.Int32N(256), rng.Int32N(4)
			y[i] = float32(rng.IntN(2)) // noise: no feature is informative
		}
		if err := l.Learn(rows, y); err != nil {
			t.Fatalf("learn: %v", err)
		}
		n := 0
		for _, w := range l.Params().W {
			if w == 0 {
				n++
			}
		}
		return n
	}
	plain, sparse := zeros(0), zeros(5)
	if plain > 10 || sparse < 250 {
		t.Fatalf("zero weights: %d without L1 (want few), %d of 256 with L1 5 (want nearly all)", plain, sparse)
	}
}

func TestUnmarshalLearnerRestoresConfiguration(t *testing.T) {
	cfg := LinearConfig{Link: LinkSoftmax, Classes: 4, NumDense: 2, NumHashed: 2, HashBits: 5,
		Optimizer: OptimizerConfig{Kind: OptimizerFTRL, LearningRate: 0.2, Beta: 0.5}, L1: 0.01, L2: 0.02}
	l := mustLinear(t, cfg)
	rows := &Rows{N: 2, NumDense: 2, NumHashed: 2, Dense: []float32{1, 2, 3, 4}, Hashed: []int32{1, 2, 3, -1}}
	if err := l.Learn(rows, []float32{3, 1}); err != nil {
		t.Fatalf("learn: %v", err)
	}
	data, err := l.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	restored, err := UnmarshalLearner(data)
	if err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	got := restored.(*Linear)
	if got.Config() != l.Config() || got.Steps() != 2 {
		t.Fatalf("restored config %+v, steps %d; want %+v, 2", got.Config(), got.Steps(), l.Config())
	}
	if _, err := UnmarshalLearner([]byte("DLLN")); !errors.Is(err, ErrSnapshot) {
		t.Fatalf("short snapshot: error %v, want ErrSnapshot", err)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	for _, b := range benchLearners() {
		l := mustLinear(t, b.cfg)
		rows, y := benchRows(b.cfg, 64)
		dst := make([]float32, 64*l.Classes())
		allocs := testing.AllocsPerRun(20, func() {
			if err := l.Predict(dst, rows); err != nil {
				t.Fatal(err)
			}
			if err := l.Learn(rows, y); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: %v allocations per predict+learn of 64 rows, want 0", b.name, allocs)
		}
	}
}
