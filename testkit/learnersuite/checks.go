package learnersuite

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
)

func (s *suite) batchEqualsSingleRows(t *testing.T) {
	batched, single := s.newLearner(), s.newLearner()
	if mb, ok := batched.(models.MiniBatchLearner); ok {
		t.Skipf("%T learns mini-batches of %d rows as one update (models.MiniBatchLearner), not row by row", batched, mb.MiniBatch())
	}
	rows, y := s.stream(3, 500)
	rows = s.damage(rows)
	learn(t, batched, rows, y, rows.N)
	learn(t, single, rows, y, 1)
	requireSameSnapshot(t, "batch of 500 vs 500 single rows", batched, single)
	test, _ := s.stream(4, 200)
	requireSameBits(t, "prediction", predict(t, batched, test), predict(t, single, test))
}

func (s *suite) sameSeedSameState(t *testing.T) {
	a, b := s.newLearner(), s.newLearner()
	requireSameSnapshot(t, "fresh learners", a, b)
	rows, y := s.stream(5, 1000)
	learn(t, a, rows, y, 64)
	learn(t, b, rows, y, 64)
	if s.linear {
		pa, pb := a.(models.LinearModel).Params(), b.(models.LinearModel).Params()
		requireSameBits(t, "W", pa.W, pb.W)
		requireSameBits(t, "B", pa.B, pb.B)
		requireSameBits(t, "Mean", pa.Mean, pb.Mean)
		requireSameBits(t, "Std", pa.Std, pb.Std)
	}
	requireSameSnapshot(t, "trained learners", a, b)
	test, _ := s.stream(2, 300)
	requireSameBits(t, "prediction", predict(t, a, test), predict(t, b, test))
}

func (s *suite) snapshotRoundTrip(t *testing.T) {
	a := s.newLearner()
	rows, y := s.stream(6, 1000)
	learn(t, a, rows, y, 64)
	data := snapshot(t, a)

	b := s.newLearner()
	if err := b.UnmarshalBinary(data); err != nil {
		t.Fatalf("unmarshal a fresh snapshot: %v", err)
	}
	c, err := models.UnmarshalLearner(data)
	if err != nil {
		t.Fatalf("models.UnmarshalLearner on a fresh snapshot: %v", err)
	}
	test, _ := s.stream(7, 300)
	test = s.damage(test)
	want := predict(t, a, test)
	requireSameBits(t, "restored prediction", want, predict(t, b, test))
	requireSameBits(t, "prediction restored by models.UnmarshalLearner", want, predict(t, c, test))

	more, yMore := s.stream(8, 500)
	learn(t, a, more, yMore, 64)
	learn(t, b, more, yMore, 64)
	learn(t, c, more, yMore, 64)
	requireSameBits(t, "prediction after training on", predict(t, a, test), predict(t, b, test))
	requireSameSnapshot(t, "after training on", a, b)
	requireSameSnapshot(t, "after training on, restored by models.UnmarshalLearner", a, c)
}

func (s *suite) snapshotRejectsDamage(t *testing.T) {
	a := s.newLearner()
	rows, y := s.stream(9, 300)
	learn(t, a, rows, y, 64)
	data := snapshot(t, a)
	victim := s.newLearner()
	before := snapshot(t, victim)

	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x10
	versioned := append([]byte(nil), data...)
	versioned[4]++
	retagged := append([]byte(nil), data...)
	retagged[0] ^= 0x20
	for name, bad := range map[string][]byte{
		"empty":           {},
		"header only":     data[:8],
		"truncated by 1":  data[:len(data)-1],
		"truncated half":  data[:len(data)/2],
		"one bit flipped": flipped,
		"unknown version": versioned,
		"unknown kind":    retagged,
		"trailing byte":   append(append([]byte(nil), data...), 0),
	} {
		err := victim.UnmarshalBinary(bad)
		if !errors.Is(err, models.ErrSnapshot) {
			t.Fatalf("%s snapshot: error %v, want one wrapping models.ErrSnapshot", name, err)
		}
		if !bytes.Equal(before, snapshot(t, victim)) {
			t.Fatalf("%s snapshot: the learner changed although restoring failed", name)
		}
		if _, err := models.UnmarshalLearner(bad); !errors.Is(err, models.ErrSnapshot) {
			t.Fatalf("%s snapshot: models.UnmarshalLearner error %v, want one wrapping models.ErrSnapshot", name, err)
		}
	}
}

func (s *suite) cloneIsIndependent(t *testing.T) {
	a := s.newLearner()
	rows, y := s.stream(10, 500)
	learn(t, a, rows, y, 64)
	c := a.Clone()
	requireSameSnapshot(t, "clone", a, c)
	test, _ := s.stream(11, 200)
	want := predict(t, c, test)
	more, yMore := s.stream(12, 500)
	learn(t, a, more, yMore, 64)
	requireSameBits(t, "clone prediction after the original learned", want, predict(t, c, test))
	aBefore := snapshot(t, a)
	learn(t, c, rows, y, 64)
	if !bytes.Equal(aBefore, snapshot(t, a)) {
		t.Fatal("the original changed when its clone learned")
	}
}

func (s *suite) hashedOrderDoesNotMatter(t *testing.T) {
	rows, y := s.stream(13, 1000)
	rows = s.damage(rows)
	permuted := cloneRows(rows)
	rng := rand.New(rand.NewPCG(13, 1))
	for i := range permuted.N {
		h := permuted.HashedRow(i)
		rng.Shuffle(len(h), func(a, b int) { h[a], h[b] = h[b], h[a] })
	}
	a, b := s.newLearner(), s.newLearner()
	learn(t, a, rows, y, 64)
	learn(t, b, permuted, y, 64)
	requireSameSnapshot(t, "trained on permuted hashed indices", a, b)
	requireSameBits(t, "prediction on permuted hashed indices", predict(t, a, rows), predict(t, a, permuted))
}

// missingIsMissing checks that every encoding of a missing value gives the
// same learner and the same outputs, and that a row with every feature
// missing gets sane outputs.
func (s *suite) missingIsMissing(t *testing.T) {
	rows, y := s.stream(24, 1500)
	nan := s.damage(rows)
	other := cloneRows(nan)
	rng := rand.New(rand.NewPCG(24, 1))
	for i, v := range other.Dense {
		if math.IsNaN(float64(v)) {
			other.Dense[i] = float32(math.Inf(1 - 2*rng.IntN(2)))
		}
	}
	absent := []int32{-1, -5, math.MinInt32, 1 << s.bits, math.MaxInt32}
	for i, idx := range other.Hashed {
		if idx < 0 || idx >= 1<<s.bits {
			other.Hashed[i] = absent[rng.IntN(len(absent))]
		}
	}
	a, b := s.newLearner(), s.newLearner()
	learn(t, a, nan, y, 64)
	learn(t, b, other, y, 64)
	requireSameSnapshot(t, "trained with NaN and -1 vs ±Inf and other out-of-range indices", a, b)
	requireSameBits(t, "prediction with NaN and -1 vs ±Inf and other out-of-range indices", predict(t, a, nan), predict(t, a, other))

	empty := &models.Rows{N: 1, NumDense: s.nd, NumHashed: s.nh, Dense: make([]float32, s.nd), Hashed: make([]int32, s.nh)}
	for j := range empty.Dense {
		empty.Dense[j] = float32(math.NaN())
	}
	for c := range empty.Hashed {
		empty.Hashed[c] = -1
	}
	s.requireSaneOutputs(t, predict(t, a, empty))
	s.requireSaneOutputs(t, predict(t, s.newLearner(), empty))
}

func (s *suite) learnsConcept(t *testing.T) {
	l := s.newLearner()
	rows, y := s.stream(19, 60000)
	learn(t, l, rows, y, 64)
	test, yTest := s.stream(20, 2000)
	out := predict(t, l, test)
	if s.link == models.LinkIdentity {
		mean := 0.0
		for _, v := range yTest {
			mean += float64(v) / float64(len(yTest))
		}
		var ssRes, ssTot float64
		for i, v := range yTest {
			ssRes += math.Pow(float64(v)-float64(out[i]), 2)
			ssTot += math.Pow(float64(v)-mean, 2)
		}
		if r2 := 1 - ssRes/ssTot; r2 <= s.target {
			t.Fatalf("R² on a noise-free stream is %.4f, want > %v", r2, s.target)
		}
		return
	}
	correct := 0
	for i, v := range yTest {
		if s.predicted(out[i*s.k:(i+1)*s.k]) == v {
			correct++
		}
	}
	if acc := float64(correct) / float64(len(yTest)); acc <= s.target {
		t.Fatalf("accuracy on a separable stream is %.4f, want > %v", acc, s.target)
	}
}

func (s *suite) extremeInputs(t *testing.T) {
	l := s.newLearner()
	rows, y := s.stream(21, 300)
	learn(t, l, rows, y, 64)

	values := []float32{1e30, -1e30, math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), math.SmallestNonzeroFloat32, 0, 1}
	indices := []int32{-1, -5, 1 << s.bits, math.MaxInt32, math.MinInt32, 0, 3}
	const n = 400
	rng := rand.New(rand.NewPCG(21, 2))
	extreme := &models.Rows{N: n, NumDense: s.nd, NumHashed: s.nh, Dense: make([]float32, n*s.nd), Hashed: make([]int32, n*s.nh)}
	for i := range extreme.Dense {
		extreme.Dense[i] = values[rng.IntN(len(values))]
	}
	for i := range extreme.Hashed {
		extreme.Hashed[i] = indices[rng.IntN(len(indices))]
	}
	labels := make([]float32, n)
	for i := range labels {
		switch s.link {
		case models.LinkIdentity:
			labels[i] = []float32{1e30, -1e30, math.MaxFloat32, 0}[i%4]
		default:
			labels[i] = float32(i % s.k)
			if s.k == 1 {
				labels[i] = float32(i % 2)
			}
		}
	}
	for _, r := range []*models.Rows{extreme, rows} {
		s.requireSaneOutputs(t, predict(t, l, r))
	}
	learn(t, l, extreme, labels, 16)
	s.requireSaneOutputs(t, predict(t, l, extreme))
	s.requireSaneOutputs(t, predict(t, l, rows))
	learn(t, l, rows, y, 64)
	s.requireSaneOutputs(t, predict(t, l, extreme))
	s.requireSaneOutputs(t, predict(t, l, rows))
	if s.linear {
		p := l.(models.LinearModel).Params()
		for name, vs := range map[string][]float32{"W": p.W, "B": p.B, "Mean": p.Mean, "Std": p.Std} {
			for i, v := range vs {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || (name == "Std" && v <= 0) {
					t.Fatalf("after extreme inputs, Params.%s[%d] = %v", name, i, v)
				}
			}
		}
	}
}

func (s *suite) rejectsBadShapes(t *testing.T) {
	l := s.newLearner()
	rows, y := s.stream(22, 10)
	before := snapshot(t, l)
	wider := *rows
	wider.NumDense++
	short := *rows
	short.Hashed = short.Hashed[:len(short.Hashed)-1]
	cases := map[string]error{
		"predict into a short destination": l.Predict(make([]float32, rows.N*s.k-1), rows),
		"predict on too many dense values": l.Predict(make([]float32, rows.N*s.k), &wider),
		"predict on too few hashed values": l.Predict(make([]float32, rows.N*s.k), &short),
		"learn with too few labels":        l.Learn(rows, y[:rows.N-1]),
		"learn on too many dense values":   l.Learn(&wider, y),
		"learn on too few hashed values":   l.Learn(&short, y),
	}
	for name, err := range cases {
		if !errors.Is(err, models.ErrShape) {
			t.Fatalf("%s: error %v, want one wrapping models.ErrShape", name, err)
		}
	}
	if !bytes.Equal(before, snapshot(t, l)) {
		t.Fatal("a rejected call changed the learner")
	}
}

func (s *suite) skipsInvalidLabels(t *testing.T) {
	var invalid []float32
	switch s.link {
	case models.LinkSigmoid:
		invalid = []float32{0.5, 2, -1, float32(math.NaN())}
	case models.LinkSoftmax:
		invalid = []float32{float32(s.k), -1, 0.5, float32(math.NaN())}
	default:
		invalid = []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	}
	rows, y := s.stream(23, 200)
	mixed := append([]float32(nil), y...)
	valid := &models.Rows{NumDense: s.nd, NumHashed: s.nh}
	var validY []float32
	for i := range rows.N {
		if i%7 == 3 {
			mixed[i] = invalid[(i/7)%len(invalid)]
			continue
		}
		valid.N++
		valid.Dense = append(valid.Dense, rows.DenseRow(i)...)
		valid.Hashed = append(valid.Hashed, rows.HashedRow(i)...)
		validY = append(validY, y[i])
	}
	got, want := s.newLearner(), s.newLearner()
	if err := got.Learn(rows, mixed); !errors.Is(err, models.ErrInvalidLabel) {
		t.Fatalf("learning invalid labels: error %v, want one wrapping models.ErrInvalidLabel", err)
	}
	learn(t, want, valid, validY, rows.N)
	requireSameSnapshot(t, "learning with invalid labels vs only the valid rows", want, got)
}
