package ortengine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
)

// referenceScore is the LinearParams formula of models/model.go as a plain
// Go loop, in float64: the side of the parity tests that ONNX Runtime must
// match.
func referenceScore(dst []float32, p *models.LinearParams, rows *models.Rows) {
	dim, k := p.Dim(), p.Classes
	margins := make([]float64, k)
	for i := range rows.N {
		dense, hashed := rows.DenseRow(i), rows.HashedRow(i)
		for c := range k {
			w := p.W[c*dim : (c+1)*dim]
			m := float64(p.B[c])
			for j, x := range dense {
				m += float64(w[j]) * float64((x-p.Mean[j])/p.Std[j])
			}
			for _, h := range hashed {
				if h >= 0 {
					m += float64(w[p.NumDense+int(h)])
				}
			}
			margins[c] = m
		}
		out := dst[i*k : (i+1)*k]
		switch p.Link {
		case models.LinkIdentity:
			out[0] = float32(margins[0])
		case models.LinkSigmoid:
			out[0] = float32(1 / (1 + math.Exp(-margins[0])))
		case models.LinkSoftmax:
			top := margins[0]
			for _, m := range margins {
				top = max(top, m)
			}
			var sum float64
			for c, m := range margins {
				margins[c] = math.Exp(m - top)
				sum += margins[c]
			}
			for c := range out {
				out[c] = float32(margins[c] / sum)
			}
		}
	}
}

// randomParams returns a linear model with random weights and scaler.
func randomParams(rng *rand.Rand, link models.Link, classes, numDense, numHashed, hashBits int) *models.LinearParams {
	p := &models.LinearParams{
		NumDense: numDense, NumHashed: numHashed, HashBits: hashBits,
		Classes: classes, Link: link,
	}
	p.W = make([]float32, classes*p.Dim())
	for i := range p.W {
		p.W[i] = float32(rng.NormFloat64() * 0.5)
	}
	p.B = make([]float32, classes)
	for i := range p.B {
		p.B[i] = float32(rng.NormFloat64())
	}
	p.Mean = make([]float32, numDense)
	p.Std = make([]float32, numDense)
	for j := range numDense {
		p.Mean[j] = float32(rng.NormFloat64() * 10)
		p.Std[j] = float32(0.5 + rng.Float64()*5)
	}
	return p
}

// randomRows returns n rows that suit p; about one hashed index in five is
// absent, with a random negative value.
func randomRows(rng *rand.Rand, p *models.LinearParams, n int) *models.Rows {
	r := &models.Rows{N: n, NumDense: p.NumDense, NumHashed: p.NumHashed,
		Dense: make([]float32, n*p.NumDense), Hashed: make([]int32, n*p.NumHashed)}
	for i := range r.Dense {
		j := i % p.NumDense
		r.Dense[i] = p.Mean[j] + p.Std[j]*float32(rng.NormFloat64()*2)
	}
	for i := range r.Hashed {
		if rng.IntN(5) == 0 {
			r.Hashed[i] = -1 - rng.Int32N(1000)
		} else {
			r.Hashed[i] = rng.Int32N(1 << p.HashBits)
		}
	}
	return r
}

func exportLinear(t testing.TB, p *models.LinearParams) []byte {
	t.Helper()
	model, err := onnxexport.Export(p, onnxexport.Metadata{ModelName: "parity", ModelVersion: "1"})
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return model
}

func newLinear(t testing.TB, cfg Config, model []byte) *Linear {
	t.Helper()
	l, err := NewLinear(cfg, model)
	if err != nil {
		t.Fatalf("new linear engine (the ONNX Runtime tests need the real library): %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return l
}

// assertClose fails when any |got-want| exceeds tol, naming the worst one.
func assertClose(t *testing.T, got, want []float32, tol float64) {
	t.Helper()
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(d) || d > worst {
			worst, at = d, i
		}
	}
	if at >= 0 && !(worst <= tol) {
		t.Fatalf("score %d: onnx %v, go %v: |diff| %g > %g", at, got[at], want[at], worst, tol)
	}
	t.Logf("max |onnx - go| = %.3g over %d scores", worst, len(want))
}

func TestLinearParityWithGoScorer(t *testing.T) {
	const n = 10_000
	cases := []struct {
		name                         string
		link                         models.Link
		classes, dense, hashed, bits int
	}{
		{"sigmoid", models.LinkSigmoid, 1, 11, 3, 12},
		{"softmax", models.LinkSoftmax, 4, 11, 3, 10},
		{"identity", models.LinkIdentity, 1, 11, 3, 12},
		{"sigmoid dense only", models.LinkSigmoid, 1, 7, 0, 0},
		{"softmax hashed only", models.LinkSoftmax, 3, 0, 5, 8},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			p := randomParams(rng, tc.link, tc.classes, tc.dense, tc.hashed, tc.bits)
			rows := randomRows(rng, p, n)
			want := make([]float32, n*tc.classes)
			referenceScore(want, p, rows)
			l := newLinear(t, Config{}, exportLinear(t, p))
			if l.Classes() != tc.classes {
				t.Fatalf("classes %d, want %d", l.Classes(), tc.classes)
			}
			got := make([]float32, n*tc.classes)
			if err := l.Score(got, rows); err != nil {
				t.Fatalf("score: %v", err)
			}
			assertClose(t, got, want, 1e-5)
		})
	}
}
