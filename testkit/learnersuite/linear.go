package learnersuite

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
)

// The checks in this file hold for a models.LinearModel: its weights
// describe it whole.

func params(l models.Learner) models.LinearParams { return l.(models.LinearModel).Params() }

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

func (s *suite) predictMatchesParams(t *testing.T) {
	l := s.newLearner()
	rows, y := s.stream(1, 3000)
	learn(t, l, rows, y, 100)
	test, _ := s.stream(2, 500)
	for _, r := range []*models.Rows{test, s.damage(test)} {
		requireClose(t, "prediction", reference(params(l), r), predict(t, l, r), 1e-6)
	}
}

func (s *suite) denseOrderPermutesWeights(t *testing.T) {
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
	pa, pb := params(a), params(b)
	dim := pa.Dim()
	for j, src := range perm {
		if pa.Mean[src] != pb.Mean[j] || pa.Std[src] != pb.Std[j] {
			t.Fatalf("scaler of permuted column %d (mean %v, std %v) differs from original column %d (mean %v, std %v)",
				j, pb.Mean[j], pb.Std[j], src, pa.Mean[src], pa.Std[src])
		}
		for k := range s.k {
			wa, wb := float64(pa.W[k*dim+src]), float64(pb.W[k*dim+j])
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

func (s *suite) missingFeaturesKeepWeights(t *testing.T) {
	l := s.newLearner()
	p0 := params(l)
	dim := p0.Dim()

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
	p1 := params(l)
	if math.Float32bits(p1.Mean[0]) != math.Float32bits(p0.Mean[0]) || p1.Std[0] != p0.Std[0] {
		t.Fatalf("scaler of an always-missing column moved: mean %v→%v, std %v→%v", p0.Mean[0], p1.Mean[0], p0.Std[0], p1.Std[0])
	}
	for k := range s.k {
		if math.Float32bits(p1.W[k*dim]) != math.Float32bits(p0.W[k*dim]) {
			t.Fatalf("class %d: weight of an always-missing column moved %v→%v", k, p0.W[k*dim], p1.W[k*dim])
		}
		for bucket := range 1 << s.bits {
			i := k*dim + s.nd + bucket
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
	p2 := params(l)
	if p2.Mean[0] == p0.Mean[0] || p2.Std[0] == p0.Std[0] {
		t.Fatalf("scaler of a column that appeared did not move: mean %v, std %v", p2.Mean[0], p2.Std[0])
	}
	moved := false
	for k := range s.k {
		moved = moved || p2.W[k*dim] != p1.W[k*dim]
	}
	if !moved {
		t.Fatal("weight of a column that appeared did not move")
	}
	test, _ := s.stream(18, 300)
	requireClose(t, "prediction after features changed", reference(p2, test), predict(t, l, test), 1e-6)
}
