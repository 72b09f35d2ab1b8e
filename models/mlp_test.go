package models

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustMLP(t testing.TB, cfg MLPConfig) *MLP {
	t.Helper()
	m, err := NewMLP(cfg)
	if err != nil {
		t.Fatalf("new mlp: %v", err)
	}
	return m
}

// mlpRows returns n random rows for cfg with valid labels, a few dense
// values missing and a few hashed indices absent.
func mlpRows(cfg MLPConfig, seed uint64, n int) (*Rows, []float32) {
	rng := rand.New(rand.NewPCG(seed, 5))
	rows := &Rows{N: n, NumDense: cfg.NumDense, NumHashed: cfg.NumHashed,
		Dense: make([]float32, n*cfg.NumDense), Hashed: make([]int32, n*cfg.NumHashed)}
	for i := range rows.Dense {
		rows.Dense[i] = float32(rng.NormFloat64()*3 + 1)
		if rng.IntN(15) == 0 {
			rows.Dense[i] = float32(math.NaN())
		}
	}
	for i := range rows.Hashed {
		rows.Hashed[i] = rng.Int32N(1 << cfg.HashBits)
		if rng.IntN(10) == 0 {
			rows.Hashed[i] = -1
		}
	}
	y := make([]float32, n)
	for i := range y {
		switch cfg.Link {
		case LinkSigmoid:
			y[i] = float32(rng.IntN(2))
		case LinkSoftmax:
			y[i] = float32(rng.IntN(cfg.Classes))
		default:
			y[i] = float32(rng.NormFloat64() * 2)
		}
	}
	return rows, y
}

func TestMLPConfigDefaults(t *testing.T) {
	c := mustMLP(t, MLPConfig{Link: LinkSigmoid, NumDense: 2, NumHashed: 1}).Config()
	if c.Classes != 1 || c.HashBits != DefaultMLPHashBits || len(c.Hidden) != 1 || c.Hidden[0] != DefaultMLPWidth ||
		c.Activation != ActivationReLU || c.BatchSize != DefaultMLPBatchSize || c.Optimizer.Kind != MLPOptimizerAdam ||
		c.Optimizer.LearningRate != DefaultAdamRate || c.Optimizer.Beta1 != DefaultAdamBeta1 ||
		c.Optimizer.Beta2 != DefaultAdamBeta2 || c.Optimizer.Epsilon != DefaultAdamEpsilon || c.ClipGradient != DefaultClipGradient {
		t.Fatalf("defaults not applied: %+v", c)
	}
	sgd := mustMLP(t, MLPConfig{Link: LinkSigmoid, NumDense: 1, Optimizer: MLPOptimizerConfig{Kind: MLPOptimizerSGD}}).Config()
	if sgd.Optimizer.LearningRate != DefaultMLPSGDRate || sgd.HashBits != 0 {
		t.Fatalf("sgd defaults not applied: %+v", sgd)
	}
	hidden := []int{8, 4}
	m := mustMLP(t, MLPConfig{Link: LinkSigmoid, NumDense: 1, Hidden: hidden})
	hidden[0] = 99
	if got := m.Config().Hidden; got[0] != 8 {
		t.Fatal("the learner kept the caller's Hidden slice")
	}
}

func TestMLPConfigValidateNamesTheField(t *testing.T) {
	ok := MLPConfig{Link: LinkSigmoid, NumDense: 2, NumHashed: 1}
	with := func(f func(*MLPConfig)) MLPConfig {
		c := ok
		f(&c)
		return c
	}
	for want, cfg := range map[string]MLPConfig{
		"mlp classes":                        with(func(c *MLPConfig) { c.Classes = 2 }),
		"mlp link":                           with(func(c *MLPConfig) { c.Link = 7 }),
		"mlp num dense":                      with(func(c *MLPConfig) { c.NumDense = -1 }),
		"no features":                        {Link: LinkSigmoid},
		"mlp hash bits":                      with(func(c *MLPConfig) { c.HashBits = 29 }),
		"mlp hidden: 3 layers":               with(func(c *MLPConfig) { c.Hidden = []int{2, 2, 2} }),
		"mlp hidden[1]":                      with(func(c *MLPConfig) { c.Hidden = []int{2, 0} }),
		"mlp activation":                     with(func(c *MLPConfig) { c.Activation = 5 }),
		"mlp batch size":                     with(func(c *MLPConfig) { c.BatchSize = -3 }),
		"mlp optimizer kind":                 with(func(c *MLPConfig) { c.Optimizer.Kind = 9 }),
		"mlp optimizer learning rate":        with(func(c *MLPConfig) { c.Optimizer.LearningRate = math.Inf(1) }),
		"mlp optimizer beta1":                with(func(c *MLPConfig) { c.Optimizer.Beta1 = 1 }),
		"mlp optimizer beta2":                with(func(c *MLPConfig) { c.Optimizer.Beta2 = -0.5 }),
		"mlp optimizer epsilon":              with(func(c *MLPConfig) { c.Optimizer.Epsilon = math.NaN() }),
		"only adam takes them":               with(func(c *MLPConfig) { c.Optimizer = MLPOptimizerConfig{Kind: MLPOptimizerSGD, Beta1: 0.5} }),
		"mlp l2":                             with(func(c *MLPConfig) { c.L2 = -1 }),
		"mlp clip gradient":                  with(func(c *MLPConfig) { c.ClipGradient = -1 }),
		"mlp batch size, hidden: 65536 rows": with(func(c *MLPConfig) { c.BatchSize = 1 << 16; c.Hidden = []int{4096} }),
		"more than 268435456":                with(func(c *MLPConfig) { c.HashBits = 20; c.Hidden = []int{256} }),
	} {
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %+v: error %v, want one containing %q", cfg, err, want)
		}
		if m, err := NewMLP(cfg); err == nil || m != nil {
			t.Errorf("NewMLP accepted %+v", cfg)
		}
	}
}

// batchOf prepares the rows as Learn would, without stepping, and returns
// the pending batch.
func batchOf(m *MLP, rows *Rows, y []float32) *MLPBatch {
	for i := range rows.N {
		m.addPending(rows.DenseRow(i), rows.HashedRow(i), y[i])
	}
	return &m.pending
}

// batchLoss is the batch's mean loss under st, by the Go forward pass.
func batchLoss(s *goStep, st *MLPState, b *MLPBatch) float64 {
	for i := range b.N {
		s.fw.run(st, s.cfg.Activation, i, b.Dense[i*b.NumDense:(i+1)*b.NumDense], b.Hashed[i*b.NumHashed:(i+1)*b.NumHashed])
	}
	return s.outputGradient(b)
}

// TestMLPGradientMatchesFiniteDifferences checks back-propagation: every
// parameter's gradient, for every head and activation, equals the central
// difference of the batch's mean loss, and the first layer's rows that the
// batch does not set have none.
func TestMLPGradientMatchesFiniteDifferences(t *testing.T) {
	for _, tc := range []struct {
		link    Link
		classes int
		act     Activation
		hidden  []int
	}{
		{LinkSigmoid, 1, ActivationTanh, []int{5, 4}},
		{LinkSoftmax, 3, ActivationTanh, []int{6}},
		{LinkIdentity, 1, ActivationTanh, []int{4, 3}},
		{LinkSigmoid, 1, ActivationReLU, []int{6, 5}},
		{LinkSoftmax, 3, ActivationReLU, []int{7}},
	} {
		t.Run(fmt.Sprintf("%s/%s/%d", tc.link, tc.act, len(tc.hidden)), func(t *testing.T) {
			cfg := MLPConfig{Link: tc.link, Classes: tc.classes, NumDense: 3, NumHashed: 2, HashBits: 3,
				Hidden: tc.hidden, Activation: tc.act, BatchSize: 6, Seed: 4}
			m := mustMLP(t, cfg)
			rows, y := mlpRows(m.cfg, 8, 6)
			b := batchOf(m, rows, y)
			s := newGoStep(&m.cfg, m.state)
			s.gradients(m.state, b)
			analytic := make(map[[3]int]float64) // layer, 0 W / 1 B, index
			for l := 1; l < len(m.state.Layers); l++ {
				for i, g := range s.gw[l] {
					analytic[[3]int{l, 0, i}] = g
				}
			}
			for l := range m.state.Layers {
				for i, g := range s.gb[l] {
					analytic[[3]int{l, 1, i}] = g
				}
			}
			out := m.state.Layers[0].Out
			for a, r := range s.active {
				for o := range out {
					analytic[[3]int{0, 0, int(r)*out + o}] = s.g0[a*out+o]
				}
			}
			const h = 1e-3
			checked := 0
			for l := range m.state.Layers {
				for kind, vs := range [][]float32{m.state.Layers[l].W, m.state.Layers[l].B} {
					for i := range vs {
						orig := vs[i]
						vs[i] = orig + h
						up, dUp := batchLoss(s, m.state, b), float64(vs[i])-float64(orig)
						vs[i] = orig - h
						down, dDown := batchLoss(s, m.state, b), float64(orig)-float64(vs[i])
						vs[i] = orig
						numeric := (up - down) / (dUp + dDown)
						got := analytic[[3]int{l, kind, i}]
						if math.Abs(numeric-got) > 1e-6+1e-4*math.Abs(numeric) {
							t.Fatalf("layer %d %s[%d]: back-propagated gradient %.9g, finite difference %.9g", l, []string{"W", "B"}[kind], i, got, numeric)
						}
						checked++
					}
				}
			}
			if checked < 40 {
				t.Fatalf("checked only %d parameters", checked)
			}
		})
	}
}

// TestMLPAdamFirstStepMovesEachWeightByTheRate checks Adam against its
// definition: on the first step m̂ = g and v̂ = g², so every parameter with
// a gradient moves by −η·g/(|g|+ε), and the first layer's rows that the
// batch does not set keep their weights and zero moments.
func TestMLPAdamFirstStepMovesEachWeightByTheRate(t *testing.T) {
	cfg := MLPConfig{Link: LinkSoftmax, Classes: 3, NumDense: 2, NumHashed: 2, HashBits: 6,
		Hidden: []int{5, 4}, BatchSize: 4, Optimizer: MLPOptimizerConfig{LearningRate: 0.01}, Seed: 9}
	m := mustMLP(t, cfg)
	rows, y := mlpRows(m.cfg, 3, 4)
	before := m.state.Clone()
	probe := mustMLP(t, cfg)
	s := newGoStep(&probe.cfg, probe.state)
	s.gradients(probe.state, batchOf(probe, rows, y))
	grad := func(l, kind, i int) (float64, bool) {
		if kind == 1 {
			return s.gb[l][i], true
		}
		if l > 0 {
			return s.gw[l][i], true
		}
		out := probe.state.Layers[0].Out
		if a := s.slot[i/out]; a >= 0 {
			return s.g0[int(a)*out+i%out], true
		}
		return 0, false
	}
	if err := m.Learn(rows, y); err != nil {
		t.Fatal(err)
	}
	if m.Steps() != 1 {
		t.Fatalf("%d steps after one batch", m.Steps())
	}
	untouched := 0
	for l := range m.state.Layers {
		for kind := range 2 {
			pick := func(st *MLPState) []float32 {
				if kind == 0 {
					return st.Layers[l].W
				}
				return st.Layers[l].B
			}
			for i, w := range pick(m.state) {
				g, active := grad(l, kind, i)
				delta := float64(w) - float64(pick(&before)[i])
				if !active {
					untouched++
					if delta != 0 || m.state.M[l].W[i] != 0 || m.state.V[l].W[i] != 0 {
						t.Fatalf("layer 0 row %d, which the batch does not set, moved: Δw %v, m %v, v %v",
							i/m.state.Layers[0].Out, delta, m.state.M[l].W[i], m.state.V[l].W[i])
					}
					continue
				}
				want := -0.01 * g / (math.Abs(g) + 1e-8)
				if math.Abs(delta-want) > 1e-7 {
					t.Fatalf("layer %d %s[%d]: moved %.9g, Adam's first step is %.9g (gradient %.3g)", l, []string{"W", "B"}[kind], i, delta, want, g)
				}
			}
		}
	}
	if untouched == 0 {
		t.Fatal("every first-layer row was active: the lazy update is not exercised")
	}
}

func TestMLPLearnStepsEveryBatchSizeRows(t *testing.T) {
	cfg := MLPConfig{Link: LinkSigmoid, NumDense: 3, NumHashed: 1, HashBits: 4, BatchSize: 5, Seed: 1}
	m := mustMLP(t, cfg)
	rows, y := mlpRows(m.cfg, 2, 12)
	probe, _ := mlpRows(m.cfg, 3, 10)
	predict := func() []float32 {
		out := make([]float32, probe.N)
		if err := m.Predict(out, probe); err != nil {
			t.Fatal(err)
		}
		return out
	}
	start := predict()
	for i := range 12 {
		before := predict()
		if err := m.Learn(&Rows{N: 1, NumDense: 3, NumHashed: 1, Dense: rows.DenseRow(i), Hashed: rows.HashedRow(i)}, y[i:i+1]); err != nil {
			t.Fatal(err)
		}
		after := predict()
		stepped := (i+1)%5 == 0
		if m.Pending() != (i+1)%5 || m.Steps() != int64((i+1)/5) {
			t.Fatalf("after %d rows: %d pending, %d steps", i+1, m.Pending(), m.Steps())
		}
		for r := range after {
			// Predictions move only on a step (the scaler moves with every
			// row, so they may move then too; a step always moves them).
			if stepped && after[r] == before[r] {
				t.Fatalf("row %d: the step after %d rows did not move prediction %d", i, i+1, r)
			}
		}
	}
	if m.LastLoss() <= 0 {
		t.Fatalf("last loss %v after two steps", m.LastLoss())
	}
	if got := predict(); got[0] == start[0] {
		t.Fatal("learning 12 rows did not move the predictions")
	}
}

// stepperOnGo is an MLPStepper that runs the Go step on a copy of the state,
// and can be made to fail: it exercises the stepper plumbing (the swap of
// states, retries, clones and restores) without ONNX Runtime.
type stepperOnGo struct {
	cfg     MLPConfig
	fail    *bool
	created *int
	step    *goStep
	closed  bool
}

func newStepperOnGo(fail *bool, created *int) func(MLPConfig) (MLPStepper, error) {
	return func(cfg MLPConfig) (MLPStepper, error) {
		*created++
		return &stepperOnGo{cfg: cfg, fail: fail, created: created, step: newGoStep(&cfg, newMLPState(&cfg))}, nil
	}
}

var errStepFailed = errors.New("step failed on purpose")

func (s *stepperOnGo) Step(next, cur *MLPState, b *MLPBatch) (float64, error) {
	if *s.fail {
		return 0, errStepFailed
	}
	next.copyFrom(cur)
	return s.step.step(next, b), nil
}

func (s *stepperOnGo) Clone() MLPStepper {
	return &stepperOnGo{cfg: s.cfg, fail: s.fail, created: s.created, step: newGoStep(&s.cfg, newMLPState(&s.cfg))}
}

func (s *stepperOnGo) Close() error {
	s.closed = true
	return nil
}

func TestMLPStepperFailureKeepsTheBatchAndRetries(t *testing.T) {
	cfg := MLPConfig{Link: LinkSoftmax, Classes: 3, NumDense: 2, NumHashed: 2, HashBits: 4, BatchSize: 4, Seed: 5}
	fail, created := false, 0
	m, err := NewMLPWithStepper(cfg, newStepperOnGo(&fail, &created))
	if err != nil {
		t.Fatal(err)
	}
	ref := mustMLP(t, cfg)
	rows, y := mlpRows(m.cfg, 6, 11)
	if err := m.Learn(slice(rows, 0, 5), y[:5]); err != nil {
		t.Fatal(err)
	}
	fail = true
	err = m.Learn(slice(rows, 5, 10), y[5:10])
	if !errors.Is(err, errStepFailed) || !strings.Contains(err.Error(), "rows after row 2 not learned") {
		t.Fatalf("learn with a failing step: %v", err)
	}
	if m.Pending() != 4 || m.Steps() != 1 {
		t.Fatalf("after a failed step: %d pending, %d steps; want the full batch of 4 pending after 1 step", m.Pending(), m.Steps())
	}
	if err := m.Learn(slice(rows, 8, 9), y[8:9]); !errors.Is(err, errStepFailed) {
		t.Fatalf("learn while the step still fails: %v", err)
	}
	fail = false
	if err := m.Learn(slice(rows, 8, 11), y[8:11]); err != nil {
		t.Fatal(err)
	}
	if err := ref.Learn(slice(rows, 0, 11), y[:11]); err != nil {
		t.Fatal(err)
	}
	requireSameSnapshot(t, "after a failed step and its retry", ref, m)

	c := m.Clone().(*MLP)
	if c.stepper == m.stepper || c.state == m.state {
		t.Fatal("the clone shares the stepper or the state")
	}
	other := cfg
	other.Hidden = []int{3}
	snap, err := mustMLP(t, other).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	old := m.stepper.(*stepperOnGo)
	if err := m.UnmarshalBinary(snap); err != nil {
		t.Fatal(err)
	}
	if created != 2 || !old.closed || m.stepper == old {
		t.Fatalf("restoring another configuration: %d steppers created, old closed %v", created, old.closed)
	}
	same, _ := m.MarshalBinary()
	kept := m.stepper
	if err := m.UnmarshalBinary(same); err != nil || m.stepper != kept || created != 2 {
		t.Fatalf("restoring the same configuration replaced the stepper (err %v)", err)
	}
}

func slice(rows *Rows, lo, hi int) *Rows {
	return &Rows{N: hi - lo, NumDense: rows.NumDense, NumHashed: rows.NumHashed,
		Dense: rows.Dense[lo*rows.NumDense : hi*rows.NumDense], Hashed: rows.Hashed[lo*rows.NumHashed : hi*rows.NumHashed]}
}

func requireSameSnapshot(t *testing.T, what string, a, b Learner) {
	t.Helper()
	sa, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(sa) != string(sb) {
		t.Fatalf("%s: snapshots differ", what)
	}
}

func TestMLPSeedDrawsTheInitialWeights(t *testing.T) {
	cfg := MLPConfig{Link: LinkSigmoid, NumDense: 4, NumHashed: 2, HashBits: 5, Hidden: []int{8, 6}, Seed: 1}
	a, b := mustMLP(t, cfg), mustMLP(t, cfg)
	requireSameSnapshot(t, "same seed", a, b)
	cfg.Seed = 2
	if sa, sc := a.State(), mustMLP(t, cfg).State(); sa.Layers[0].W[0] == sc.Layers[0].W[0] {
		t.Fatal("another seed drew the same first weight")
	}
	// He uniform for the ReLU layers (the first with fan-in NumDense+NumHashed),
	// Glorot uniform for the output layer; intercepts zero.
	st := a.State()
	for l, limit := range []float64{math.Sqrt(6.0 / 6), math.Sqrt(6.0 / 8), math.Sqrt(6.0 / (6 + 1))} {
		top := 0.0
		for _, w := range st.Layers[l].W {
			top = max(top, math.Abs(float64(w)))
		}
		if top > limit || (len(st.Layers[l].W) > 20 && top < 0.8*limit) {
			t.Fatalf("layer %d: largest |w| %v, want close to and below %v", l, top, limit)
		}
		for _, v := range st.Layers[l].B {
			if v != 0 {
				t.Fatalf("layer %d: intercept %v, want 0", l, v)
			}
		}
	}
}

func TestMLPHotPathDoesNotAllocate(t *testing.T) {
	for _, link := range []struct {
		link    Link
		classes int
	}{{LinkSigmoid, 1}, {LinkSoftmax, 3}, {LinkIdentity, 1}} {
		for _, kind := range []MLPOptimizerKind{MLPOptimizerAdam, MLPOptimizerSGD} {
			cfg := MLPConfig{Link: link.link, Classes: link.classes, NumDense: 10, NumHashed: 3, HashBits: 12,
				Hidden: []int{16, 8}, Optimizer: MLPOptimizerConfig{Kind: kind}, BatchSize: 16}
			m := mustMLP(t, cfg)
			rows, y := mlpRows(m.cfg, 1, 64)
			dst := make([]float32, 64*link.classes)
			if err := m.Learn(rows, y); err != nil {
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(20, func() { _ = m.Predict(dst, rows) }); n != 0 {
				t.Errorf("%s/%s: Predict allocates %v times per 64 rows", link.link, kind, n)
			}
			if n := testing.AllocsPerRun(20, func() { _ = m.Learn(rows, y) }); n != 0 {
				t.Errorf("%s/%s: Learn allocates %v times per 64 rows (4 steps)", link.link, kind, n)
			}
		}
	}
}

func TestMLPSnapshotRejectsMalformedPendingRows(t *testing.T) {
	cfg := MLPConfig{Link: LinkSigmoid, NumDense: 1, NumHashed: 3, HashBits: 4, BatchSize: 8}
	m := mustMLP(t, cfg)
	rows, y := mlpRows(m.cfg, 4, 3)
	if err := m.Learn(rows, y); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]int32{
		"out of order":    {5, 2, -1},
		"gap before -1":   {-1, 3, -1},
		"out of range":    {16, -1, -1},
		"other negatives": {-2, -1, -1},
	} {
		copy(m.pending.Hashed[:3], bad)
		data, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalMLP(data); !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s pending indices %v: error %v, want ErrSnapshot", name, bad, err)
		}
	}
}
