// Package learnersuite is the conformance suite that every models.Learner
// passes, in the spirit of River's check_estimator. A learner's test calls
// Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		learnersuite.Run(t, func() models.Learner { l, _ := models.NewLinear(cfg); return l })
//	}
//
// The suite checks the contract that models.Learner documents:
//   - Predict agrees with the formula that Params describes (what the ONNX
//     exporter relies on);
//   - learning a batch of n rows equals n single-row calls, byte for byte;
//   - the same configuration and stream give the same weights, byte for
//     byte (a learner with a seed must use the same one on every call to
//     newLearner);
//   - a snapshot round-trip gives identical predictions and training, and
//     a damaged snapshot is rejected;
//   - a clone is independent;
//   - feature order does not matter: permuting the hashed indices within
//     rows changes nothing at all, and permuting the dense columns (for a
//     learner trained on the permuted columns) permutes the learned dense
//     weights and keeps predictions, up to float64 summation rounding;
//   - features that appear or disappear mid-stream (a NaN dense value, a
//     hashed index of −1) are handled: a missing feature contributes
//     nothing and its weight and scaler statistics do not move;
//   - a separable stream is learned to above 99% accuracy (R² above 0.99
//     for regression);
//   - extreme inputs (±1e30, ±MaxFloat32, ±Inf, NaN, out-of-range
//     indices) never give NaN or Inf;
//   - bad shapes and invalid labels are reported without partial learning.
package learnersuite

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
)

// Run runs the suite as subtests of t. newLearner must return a fresh,
// untrained learner with the same configuration on every call, with at
// least 2 dense values and 2 hashed indices per row and HashBits ≥ 6. The
// learner must be able to learn the suite's separable stream (60,000 rows
// of a linear teacher over standardized dense values and hashed
// categories) to the accuracy above.
func Run(t *testing.T, newLearner func() models.Learner) {
	t.Helper()
	s := newSuite(t, newLearner)
	t.Run("PredictMatchesParams", s.predictMatchesParams)
	t.Run("BatchEqualsSingleRows", s.batchEqualsSingleRows)
	t.Run("SameSeedSameWeights", s.sameSeedSameWeights)
	t.Run("SnapshotRoundTrip", s.snapshotRoundTrip)
	t.Run("SnapshotRejectsDamage", s.snapshotRejectsDamage)
	t.Run("CloneIsIndependent", s.cloneIsIndependent)
	t.Run("HashedOrderDoesNotMatter", s.hashedOrderDoesNotMatter)
	t.Run("DenseOrderDoesNotMatter", s.denseOrderDoesNotMatter)
	t.Run("MissingFeatures", s.missingFeatures)
	t.Run("LearnsSeparableStream", s.learnsSeparableStream)
	t.Run("ExtremeInputs", s.extremeInputs)
	t.Run("RejectsBadShapes", s.rejectsBadShapes)
	t.Run("SkipsInvalidLabels", s.skipsInvalidLabels)
}

// vocabulary is the number of categories per hashed field in the streams.
const vocabulary = 16

type suite struct {
	newLearner func() models.Learner
	link       models.Link
	k          int // outputs per row
	nd, nh     int
	bits       int
	dim        int
	teacher    teacher
}

// teacher is a linear model in the space the learner sees: standardized
// dense values and hash-bucket indicators.
type teacher struct {
	offset, scale []float64   // dense column j is offset[j] + scale[j]·N(0,1)
	a             [][]float64 // [class][dense column]
	vocab         [][]int32   // [hashed field][category] bucket
	effect        [][]float64 // [class][bucket]
	bias          []float64
}

func newSuite(t *testing.T, newLearner func() models.Learner) *suite {
	t.Helper()
	p := newLearner().Params()
	if p.NumDense < 2 || p.NumHashed < 2 || p.HashBits < 6 {
		t.Fatalf("learnersuite needs >= 2 dense, >= 2 hashed and hash bits >= 6; the learner has %d, %d, %d",
			p.NumDense, p.NumHashed, p.HashBits)
	}
	s := &suite{newLearner: newLearner, link: p.Link, k: p.Classes, nd: p.NumDense, nh: p.NumHashed, bits: p.HashBits, dim: p.Dim()}
	rng := rand.New(rand.NewPCG(42, 7))
	th := &s.teacher
	for range s.nd {
		th.offset = append(th.offset, 100*rng.NormFloat64())
		th.scale = append(th.scale, math.Exp(3*rng.NormFloat64()))
	}
	buckets := int32(1) << s.bits
	for range s.nh {
		field := make([]int32, vocabulary)
		for v := range field {
			field[v] = rng.Int32N(buckets)
		}
		th.vocab = append(th.vocab, field)
	}
	for range s.k {
		a := make([]float64, s.nd)
		for j := range a {
			a[j] = rng.NormFloat64()
		}
		e := make([]float64, buckets)
		for j := range e {
			e[j] = rng.NormFloat64()
		}
		th.a = append(th.a, a)
		th.effect = append(th.effect, e)
		th.bias = append(th.bias, rng.NormFloat64())
	}
	return s
}

// stream returns n rows from the teacher and their labels. Classification
// rows closer than a margin to the teacher's decision boundary are
// redrawn, so the stream is separable.
func (s *suite) stream(seed uint64, n int) (*models.Rows, []float32) {
	rng := rand.New(rand.NewPCG(seed, 99))
	rows := &models.Rows{N: n, NumDense: s.nd, NumHashed: s.nh,
		Dense: make([]float32, n*s.nd), Hashed: make([]int32, n*s.nh)}
	y := make([]float32, n)
	scores := make([]float64, s.k)
	const margin = 0.5
	for i := range n {
		for {
			dense, hashed := rows.DenseRow(i), rows.HashedRow(i)
			for j := range dense {
				z := rng.NormFloat64()
				dense[j] = float32(s.teacher.offset[j] + s.teacher.scale[j]*z)
			}
			for c := range hashed {
				hashed[c] = s.teacher.vocab[c][rng.IntN(vocabulary)]
			}
			for k := range scores {
				sc := s.teacher.bias[k]
				for j, v := range dense {
					sc += s.teacher.a[k][j] * (float64(v) - s.teacher.offset[j]) / s.teacher.scale[j]
				}
				for _, idx := range hashed {
					sc += s.teacher.effect[k][idx]
				}
				scores[k] = sc
			}
			label, gap := s.label(scores)
			if s.link == models.LinkIdentity || gap >= margin {
				y[i] = label
				break
			}
		}
	}
	return rows, y
}

// label is the teacher's label for scores, and how far the row is from the
// decision boundary.
func (s *suite) label(scores []float64) (float32, float64) {
	switch s.link {
	case models.LinkSigmoid:
		if scores[0] > 0 {
			return 1, scores[0]
		}
		return 0, -scores[0]
	case models.LinkSoftmax:
		best, second := 0, -1
		for k := 1; k < len(scores); k++ {
			if scores[k] > scores[best] {
				best, second = k, best
			} else if second < 0 || scores[k] > scores[second] {
				second = k
			}
		}
		return float32(best), scores[best] - scores[second]
	}
	return float32(scores[0]), math.Inf(1)
}

// learn feeds rows to l in batches of size batch and fails on any error.
func learn(t *testing.T, l models.Learner, rows *models.Rows, y []float32, batch int) {
	t.Helper()
	for lo := 0; lo < rows.N; lo += batch {
		hi := min(lo+batch, rows.N)
		if err := l.Learn(slice(rows, lo, hi), y[lo:hi]); err != nil {
			t.Fatalf("learn rows [%d, %d): %v", lo, hi, err)
		}
	}
}

// slice returns the view of rows [lo, hi).
func slice(rows *models.Rows, lo, hi int) *models.Rows {
	return &models.Rows{N: hi - lo, NumDense: rows.NumDense, NumHashed: rows.NumHashed,
		Dense:  rows.Dense[lo*rows.NumDense : hi*rows.NumDense],
		Hashed: rows.Hashed[lo*rows.NumHashed : hi*rows.NumHashed]}
}

func cloneRows(rows *models.Rows) *models.Rows {
	c := *rows
	c.Dense = append([]float32(nil), rows.Dense...)
	c.Hashed = append([]int32(nil), rows.Hashed...)
	return &c
}

func predict(t *testing.T, l models.Learner, rows *models.Rows) []float32 {
	t.Helper()
	dst := make([]float32, rows.N*l.Classes())
	if err := l.Predict(dst, rows); err != nil {
		t.Fatalf("predict: %v", err)
	}
	return dst
}

func snapshot(t *testing.T, l models.Learner) []byte {
	t.Helper()
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

func requireSameBits(t *testing.T, what string, want, got []float32) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
			t.Fatalf("%s[%d] = %v, want bit-identical %v", what, i, got[i], want[i])
		}
	}
}

func requireSameSnapshot(t *testing.T, what string, want, got models.Learner) {
	t.Helper()
	if !bytes.Equal(snapshot(t, want), snapshot(t, got)) {
		t.Fatalf("%s: snapshots differ", what)
	}
}

// reference scores rows from p by the formula LinearParams documents, in
// float64, treating non-finite dense values and out-of-range indices as
// missing, as models.Learner specifies.
func reference(p models.LinearParams, rows *models.Rows) []float64 {
	out := make([]float64, rows.N*p.Classes)
	dim := p.Dim()
	for i := range rows.N {
		m := out[i*p.Classes : (i+1)*p.Classes]
		for k := range m {
			v := float64(p.B[k])
			for j, x := range rows.DenseRow(i) {
				if !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) {
					v += float64(p.W[k*dim+j]) * (float64(x) - float64(p.Mean[j])) / float64(p.Std[j])
				}
			}
			for _, idx := range rows.HashedRow(i) {
				if idx >= 0 && int(idx) < 1<<p.HashBits {
					v += float64(p.W[k*dim+p.NumDense+int(idx)])
				}
			}
			m[k] = v
		}
		switch p.Link {
		case models.LinkIdentity:
			m[0] = max(-math.MaxFloat32, min(math.MaxFloat32, m[0]))
		case models.LinkSigmoid:
			m[0] = 1 / (1 + math.Exp(-m[0]))
		case models.LinkSoftmax:
			top := math.Inf(-1)
			for _, v := range m {
				top = max(top, v)
			}
			sum := 0.0
			for k, v := range m {
				m[k] = math.Exp(v - top)
				sum += m[k]
			}
			for k := range m {
				m[k] /= sum
			}
		}
	}
	return out
}

// requireClose fails when got and want differ by more than tol relative to
// max(1, |want|).
func requireClose(t *testing.T, what string, want []float64, got []float32, tol float64) {
	t.Helper()
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > tol*max(1, math.Abs(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v (|diff| %.3g > tolerance %.1g)", what, i, got[i], want[i], d, tol)
		}
	}
}

// damage returns rows with a few dense values NaN and hashed indices absent
// or out of range.
func (s *suite) damage(rows *models.Rows) *models.Rows {
	d := cloneRows(rows)
	for i := 0; i < d.N; i += 3 {
		d.DenseRow(i)[i%s.nd] = float32(math.NaN())
		d.HashedRow(i)[i%s.nh] = -1
	}
	for i := 1; i < d.N; i += 5 {
		d.HashedRow(i)[0] = 1 << s.bits
	}
	return d
}

func (s *suite) predictMatchesParams(t *testing.T) {
	l := s.newLearner()
	rows, y := s.stream(1, 3000)
	learn(t, l, rows, y, 100)
	test, _ := s.stream(2, 500)
	for _, r := range []*models.Rows{test, s.damage(test)} {
		requireClose(t, "prediction", reference(l.Params(), r), predict(t, l, r), 1e-6)
	}
}

func (s *suite) batchEqualsSingleRows(t *testing.T) {
	batched, single := s.newLearner(), s.newLearner()
	rows, y := s.stream(3, 500)
	rows = s.damage(rows)
	learn(t, batched, rows, y, rows.N)
	learn(t, single, rows, y, 1)
	requireSameSnapshot(t, "batch of 500 vs 500 single rows", batched, single)
	test, _ := s.stream(4, 200)
	requireSameBits(t, "prediction", predict(t, batched, test), predict(t, single, test))
}

func (s *suite) sameSeedSameWeights(t *testing.T) {
	a, b := s.newLearner(), s.newLearner()
	requireSameSnapshot(t, "fresh learners", a, b)
	rows, y := s.stream(5, 1000)
	learn(t, a, rows, y, 64)
	learn(t, b, rows, y, 64)
	pa, pb := a.Params(), b.Params()
	requireSameBits(t, "W", pa.W, pb.W)
	requireSameBits(t, "B", pa.B, pb.B)
	requireSameBits(t, "Mean", pa.Mean, pb.Mean)
	requireSameBits(t, "Std", pa.Std, pb.Std)
	requireSameSnapshot(t, "trained learners", a, b)
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
	test, _ := s.stream(7, 300)
	test = s.damage(test)
	requireSameBits(t, "restored prediction", predict(t, a, test), predict(t, b, test))

	more, yMore := s.stream(8, 500)
	learn(t, a, more, yMore, 64)
	learn(t, b, more, yMore, 64)
	requireSameBits(t, "prediction after training on", predict(t, a, test), predict(t, b, test))
	requireSameSnapshot(t, "after training on", a, b)
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
	for name, bad := range map[string][]byte{
		"empty":           {},
		"header only":     data[:8],
		"truncated by 1":  data[:len(data)-1],
		"truncated half":  data[:len(data)/2],
		"one bit flipped": flipped,
		"unknown version": versioned,
		"trailing byte":   append(append([]byte(nil), data...), 0),
	} {
		err := victim.UnmarshalBinary(bad)
		if !errors.Is(err, models.ErrSnapshot) {
			t.Fatalf("%s snapshot: error %v, want one wrapping models.ErrSnapshot", name, err)
		}
		if !bytes.Equal(before, snapshot(t, victim)) {
			t.Fatalf("%s snapshot: the learner changed although restoring failed", name)
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

func (s *suite) denseOrderDoesNotMatter(t *testing.T) {
	rows, y := s.stream(14, 2000)
	perm := rand.New(rand.NewPCG(14, 1)).Perm(s.nd) // permuted column j is original column perm[j]
	permute := func(r *models.Rows) *models.Rows {
		p := cloneRows(r)
		for i := range p.N {
			src, dst := r.DenseRow(i), p.DenseRow(i)
			for j := range dst {
				dst[j] = src[perm[j]]
			}
		}
		return p
	}
	a, b := s.newLearner(), s.newLearner()
	learn(t, a, rows, y, 64)
	learn(t, b, permute(rows), y, 64)
	pa, pb := a.Params(), b.Params()
	for j, src := range perm {
		if pa.Mean[src] != pb.Mean[j] || pa.Std[src] != pb.Std[j] {
			t.Fatalf("scaler of permuted column %d (mean %v, std %v) differs from original column %d (mean %v, std %v)",
				j, pb.Mean[j], pb.Std[j], src, pa.Mean[src], pa.Std[src])
		}
		for k := range s.k {
			wa, wb := float64(pa.W[k*s.dim+src]), float64(pb.W[k*s.dim+j])
			if math.Abs(wa-wb) > 1e-4*max(1, math.Abs(wa)) {
				t.Fatalf("class %d: weight of permuted column %d is %v, original column %d has %v", k, j, wb, src, wa)
			}
		}
	}
	test, _ := s.stream(15, 300)
	want := predict(t, a, test)
	got := predict(t, b, permute(test))
	for i := range want {
		if d := math.Abs(float64(want[i] - got[i])); d > 1e-4*max(1, math.Abs(float64(want[i]))) {
			t.Fatalf("prediction %d on permuted columns is %v, want %v", i, got[i], want[i])
		}
	}
}

func (s *suite) missingFeatures(t *testing.T) {
	l := s.newLearner()
	p0 := l.Params()

	// Phase 1: dense column 0 is missing and hashed field 0 is absent.
	phase1, y1 := s.stream(16, 1500)
	seen := make(map[int32]bool)
	for i := range phase1.N {
		phase1.DenseRow(i)[0] = float32(math.NaN())
		h := phase1.HashedRow(i)
		h[0] = -1
		for _, idx := range h {
			seen[idx] = true
		}
	}
	learn(t, l, phase1, y1, 64)
	p1 := l.Params()
	if math.Float32bits(p1.Mean[0]) != math.Float32bits(p0.Mean[0]) || p1.Std[0] != p0.Std[0] {
		t.Fatalf("scaler of an always-missing column moved: mean %v→%v, std %v→%v", p0.Mean[0], p1.Mean[0], p0.Std[0], p1.Std[0])
	}
	for k := range s.k {
		if math.Float32bits(p1.W[k*s.dim]) != math.Float32bits(p0.W[k*s.dim]) {
			t.Fatalf("class %d: weight of an always-missing column moved %v→%v", k, p0.W[k*s.dim], p1.W[k*s.dim])
		}
		for bucket := range 1 << s.bits {
			i := k*s.dim + s.nd + bucket
			if !seen[int32(bucket)] && math.Float32bits(p1.W[i]) != math.Float32bits(p0.W[i]) {
				t.Fatalf("class %d: weight of never-seen bucket %d moved %v→%v", k, bucket, p0.W[i], p1.W[i])
			}
		}
	}
	learnedSome := false
	for j := 1; j < s.nd; j++ {
		learnedSome = learnedSome || p1.Mean[j] != p0.Mean[j]
	}
	if !learnedSome {
		t.Fatal("no present dense column updated the scaler")
	}

	// A row with every feature missing scores the intercepts alone.
	empty := &models.Rows{N: 1, NumDense: s.nd, NumHashed: s.nh, Dense: make([]float32, s.nd), Hashed: make([]int32, s.nh)}
	for j := range empty.Dense {
		empty.Dense[j] = float32(math.NaN())
	}
	for c := range empty.Hashed {
		empty.Hashed[c] = -1
	}
	intercepts := p1
	intercepts.W = make([]float32, len(p1.W))
	requireClose(t, "prediction with every feature missing", reference(intercepts, empty), predict(t, l, empty), 1e-6)

	// Phase 2: column 0 appears, field 1 disappears.
	phase2, y2 := s.stream(17, 1500)
	for i := range phase2.N {
		phase2.HashedRow(i)[1] = -1
	}
	learn(t, l, phase2, y2, 64)
	p2 := l.Params()
	if p2.Mean[0] == p0.Mean[0] || p2.Std[0] == p0.Std[0] {
		t.Fatalf("scaler of a column that appeared did not move: mean %v, std %v", p2.Mean[0], p2.Std[0])
	}
	moved := false
	for k := range s.k {
		moved = moved || p2.W[k*s.dim] != p1.W[k*s.dim]
	}
	if !moved {
		t.Fatal("weight of a column that appeared did not move")
	}
	test, _ := s.stream(18, 300)
	requireClose(t, "prediction after features changed", reference(p2, test), predict(t, l, test), 1e-6)
}

func (s *suite) learnsSeparableStream(t *testing.T) {
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
		if r2 := 1 - ssRes/ssTot; r2 <= 0.99 {
			t.Fatalf("R² on a noise-free linear stream is %.4f, want > 0.99", r2)
		}
		return
	}
	correct := 0
	for i, v := range yTest {
		scores := make([]float64, s.k)
		for k := range scores {
			scores[k] = float64(out[i*s.k+k])
		}
		if s.link == models.LinkSigmoid {
			scores[0] -= 0.5
		}
		if label, _ := s.label(scores); label == v {
			correct++
		}
	}
	if acc := float64(correct) / float64(len(yTest)); acc <= 0.99 {
		t.Fatalf("accuracy on a separable stream is %.4f, want > 0.99", acc)
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
	p := l.Params()
	for name, vs := range map[string][]float32{"W": p.W, "B": p.B, "Mean": p.Mean, "Std": p.Std} {
		for i, v := range vs {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || (name == "Std" && v <= 0) {
				t.Fatalf("after extreme inputs, Params.%s[%d] = %v", name, i, v)
			}
		}
	}
}

func (s *suite) requireSaneOutputs(t *testing.T, out []float32) {
	t.Helper()
	for i, v := range out {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("output %d is %v", i, v)
		}
		if s.link != models.LinkIdentity && (v < 0 || v > 1) {
			t.Fatalf("probability %d is %v", i, v)
		}
	}
	if s.link == models.LinkSoftmax {
		for i := 0; i < len(out); i += s.k {
			sum := 0.0
			for _, v := range out[i : i+s.k] {
				sum += float64(v)
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Fatalf("row %d: probabilities sum to %v", i/s.k, sum)
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
