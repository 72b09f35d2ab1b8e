package learnersuite

import (
	"math"
	"math/rand/v2"

	"github.com/driftline/driftline/models"
)

// vocabulary is the number of categories per hashed field in the streams.
const vocabulary = 16

// margin is how far every row lies from the teacher's decision boundary (in
// score units for ConceptLinear, in standardized dense units for
// ConceptAxisAligned); rows closer are redrawn, so classification streams
// are separable.
const (
	linearMargin      = 0.5
	axisAlignedMargin = 0.1
)

// teacher labels rows in the space the learner sees: dense values of
// arbitrary offset and scale, and hash buckets.
type teacher struct {
	offset, scale []float64   // dense column j is offset[j] + scale[j]·N(0,1)
	a             [][]float64 // ConceptLinear: [class][dense column]
	vocab         [][]int32   // [hashed field][category] bucket
	effect        [][]float64 // ConceptLinear: [class][bucket]
	bias          []float64
}

func newTeacher(k, nd, nh, bits int) teacher {
	rng := rand.New(rand.NewPCG(42, 7))
	var th teacher
	for range nd {
		th.offset = append(th.offset, 100*rng.NormFloat64())
		th.scale = append(th.scale, math.Exp(3*rng.NormFloat64()))
	}
	buckets := int32(1) << bits
	for range nh {
		field := make([]int32, vocabulary)
		for v := range field {
			field[v] = rng.Int32N(buckets)
		}
		th.vocab = append(th.vocab, field)
	}
	for range k {
		a := make([]float64, nd)
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
	return th
}

// stream returns n rows from the teacher and their labels.
func (s *suite) stream(seed uint64, n int) (*models.Rows, []float32) {
	rng := rand.New(rand.NewPCG(seed, 99))
	rows := &models.Rows{N: n, NumDense: s.nd, NumHashed: s.nh,
		Dense: make([]float32, n*s.nd), Hashed: make([]int32, n*s.nh)}
	y := make([]float32, n)
	scores := make([]float64, s.k)
	z := make([]float64, s.nd)
	for i := range n {
		for {
			dense, hashed := rows.DenseRow(i), rows.HashedRow(i)
			for j := range dense {
				z[j] = rng.NormFloat64()
				dense[j] = float32(s.teacher.offset[j] + s.teacher.scale[j]*z[j])
			}
			for c := range hashed {
				v := rng.IntN(vocabulary)
				if s.concept == ConceptAxisAligned && c == 0 && rng.IntN(2) == 0 {
					v = 0 // the tree's bucket test is on category 0 of field 0
				}
				hashed[c] = s.teacher.vocab[c][v]
			}
			var label float32
			var gap float64
			if s.concept == ConceptAxisAligned {
				label, gap = s.axisAligned(rows, i)
			} else {
				label, gap = s.linearLabel(rows, i, scores)
			}
			if (s.link == models.LinkIdentity && s.concept == ConceptLinear) || gap >= s.margin() {
				y[i] = label
				break
			}
		}
	}
	return rows, y
}

func (s *suite) margin() float64 {
	if s.concept == ConceptAxisAligned {
		return axisAlignedMargin
	}
	return linearMargin
}

// linearLabel is the linear teacher's label for row i, and how far the row
// is from its decision boundary.
func (s *suite) linearLabel(rows *models.Rows, i int, scores []float64) (float32, float64) {
	dense, hashed := rows.DenseRow(i), rows.HashedRow(i)
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
	return s.label(scores)
}

// axisAlignedLeaves are the teacher tree's six leaves: a regression value,
// and a class for the binary and the multiclass links.
var axisAlignedLeaves = [6]struct {
	value         float32
	binary, multi int
}{
	{3, 0, 0}, {-1, 1, 1}, {1, 1, 2}, {-2, 0, 0}, {0.5, 1, 1}, {-3, 0, 2},
}

// axisAligned is the tree teacher's label for row i, and the smallest
// distance of a standardized value it tested to that test's threshold:
//
//	z0 > 0?
//	  yes: bucket of field 0's category 0 present?
//	         yes: z1 > 0.5?  leaf 0 : leaf 1
//	         no:  leaf 2
//	  no:  z1 > −0.5?  leaf 3 : (z0 > −1?  leaf 4 : leaf 5)
func (s *suite) axisAligned(rows *models.Rows, i int) (float32, float64) {
	dense, hashed := rows.DenseRow(i), rows.HashedRow(i)
	z := func(j int) float64 { return (float64(dense[j]) - s.teacher.offset[j]) / s.teacher.scale[j] }
	z0, z1 := z(0), z(1)
	gap := math.Abs(z0)
	var leaf int
	switch {
	case z0 > 0:
		present := false
		for _, idx := range hashed {
			present = present || idx == s.teacher.vocab[0][0]
		}
		if present {
			gap = min(gap, math.Abs(z1-0.5))
			leaf = 1
			if z1 > 0.5 {
				leaf = 0
			}
		} else {
			leaf = 2
		}
	default:
		gap = min(gap, math.Abs(z1+0.5))
		if z1 > -0.5 {
			leaf = 3
		} else {
			gap = min(gap, math.Abs(z0+1))
			leaf = 5
			if z0 > -1 {
				leaf = 4
			}
		}
	}
	l := axisAlignedLeaves[leaf]
	switch s.link {
	case models.LinkIdentity:
		return l.value, gap
	case models.LinkSigmoid:
		return float32(l.binary), gap
	}
	return float32(l.multi % s.k), gap
}

// label is the linear teacher's label for scores, and how far the row is
// from the decision boundary.
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

// predicted is the class a row's outputs pick (the argmax; P(y=1) ≥ 0.5
// for the sigmoid link).
func (s *suite) predicted(out []float32) float32 {
	if s.link == models.LinkSigmoid {
		if out[0] >= 0.5 {
			return 1
		}
		return 0
	}
	best := 0
	for k := range out {
		if out[k] > out[best] {
			best = k
		}
	}
	return float32(best)
}
