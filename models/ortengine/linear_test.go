//go:build cgo && !noonnx

package ortengine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
)

// referenceScore is the LinearParams formula of models/model.go as a plain
// Go loop in float64, with the Learner contract's input rules (a NaN or ±Inf
// dense value and an out-of-range hashed index contribute nothing; identity
// outputs are clamped to the float32 range): the Go side of the parity tests
// that do not train a learner.
func referenceScore(dst []float32, p *models.LinearParams, rows *models.Rows) {
	dim, k := p.Dim(), p.Classes
	margins := make([]float64, k)
	for i := range rows.N {
		dense, hashed := rows.DenseRow(i), rows.HashedRow(i)
		for c := range k {
			w := p.W[c*dim : (c+1)*dim]
			m := float64(p.B[c])
			for j, x := range dense {
				v := float64(x)
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					m += float64(w[j]) * (v - float64(p.Mean[j])) / float64(p.Std[j])
				}
			}
			for _, h := range hashed {
				if h >= 0 && int(h) < 1<<p.HashBits {
					m += float64(w[p.NumDense+int(h)])
				}
			}
			margins[c] = m
		}
		out := dst[i*k : (i+1)*k]
		switch p.Link {
		case models.LinkIdentity:
			out[0] = float32(max(-math.MaxFloat32, min(margins[0], math.MaxFloat32)))
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

// randomRows returns n rows with numDense values around mean ± 2·std and
// numHashed indices in [0, 2^hashBits). When withMissing is set, about one
// dense value in 50 is NaN or ±Inf, and one hashed index in five is out of
// range (negative, or 2^hashBits and above).
func randomRows(rng *rand.Rand, n, numDense, numHashed, hashBits int, mean, std []float32, withMissing bool) *models.Rows {
	r := &models.Rows{N: n, NumDense: numDense, NumHashed: numHashed,
		Dense: make([]float32, n*numDense), Hashed: make([]int32, n*numHashed)}
	missing := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	for i := range r.Dense {
		j := i % numDense
		r.Dense[i] = mean[j] + std[j]*float32(rng.NormFloat64()*2)
		if withMissing && rng.IntN(50) == 0 {
			r.Dense[i] = missing[rng.IntN(len(missing))]
		}
	}
	buckets := int32(1) << hashBits
	for i := range r.Hashed {
		r.Hashed[i] = rng.Int32N(buckets)
		if withMissing && rng.IntN(5) == 0 {
			if rng.IntN(2) == 0 {
				r.Hashed[i] = -1 - rng.Int32N(1000)
			} else {
				r.Hashed[i] = buckets + rng.Int32N(1000)
			}
		}
	}
	return r
}

// rowsFor returns n rows that suit p, with missing values.
func rowsFor(rng *rand.Rand, p *models.LinearParams, n int) *models.Rows {
	return randomRows(rng, n, p.NumDense, p.NumHashed, p.HashBits, p.Mean, p.Std, true)
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
			rows := rowsFor(rng, p, n)
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

// TestLinearParityWithTrainedLearners trains each learner of package models
// on a random stream, exports it, and checks that ONNX Runtime scores 10,000
// fresh rows (with missing values) as the learner's Predict does.
func TestLinearParityWithTrainedLearners(t *testing.T) {
	const numDense, numHashed, hashBits, train, n = 9, 4, 10, 20_000, 10_000
	cases := []struct {
		name      string
		link      models.Link
		classes   int
		optimizer models.OptimizerKind
	}{
		{"logistic sgd", models.LinkSigmoid, 1, models.OptimizerSGD},
		{"logistic adagrad", models.LinkSigmoid, 1, models.OptimizerAdaGrad},
		{"logistic ftrl", models.LinkSigmoid, 1, models.OptimizerFTRL},
		{"softmax adagrad", models.LinkSoftmax, 3, models.OptimizerAdaGrad},
		{"softmax ftrl", models.LinkSoftmax, 3, models.OptimizerFTRL},
		{"linear regression sgd", models.LinkIdentity, 1, models.OptimizerSGD},
		{"linear regression adagrad", models.LinkIdentity, 1, models.OptimizerAdaGrad},
	}
	mean := []float32{0, 5, -3, 100, 0.5, 1e3, -40, 2, 7}
	std := []float32{1, 2, 0.5, 30, 0.1, 200, 10, 1, 3}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(100+i), 7))
			var l1 float64
			if tc.optimizer == models.OptimizerFTRL {
				l1 = 0.01 // exercise the L1 path: some weights become exactly zero
			}
			learner, err := models.NewLinear(models.LinearConfig{
				Link: tc.link, Classes: tc.classes,
				NumDense: numDense, NumHashed: numHashed, HashBits: hashBits,
				Optimizer: models.OptimizerConfig{Kind: tc.optimizer},
				L1:        l1,
			})
			if err != nil {
				t.Fatalf("new learner: %v", err)
			}
			rows := randomRows(rng, train, numDense, numHashed, hashBits, mean, std, false)
			labels := make([]float32, train)
			for r := range train {
				x := rows.DenseRow(r)
				signal := float64(x[0]) - float64(x[3]-100)/30 + float64(rows.HashedRow(r)[0]%3)
				switch tc.link {
				case models.LinkSigmoid:
					if signal > 0.5 {
						labels[r] = 1
					}
				case models.LinkSoftmax:
					labels[r] = float32(min(max(int(signal+1), 0), tc.classes-1))
				default:
					labels[r] = float32(3*signal + rng.NormFloat64())
				}
			}
			if err := learner.Learn(rows, labels); err != nil {
				t.Fatalf("learn: %v", err)
			}
			params := learner.Params()
			l := newLinear(t, Config{}, exportLinear(t, &params))

			test := randomRows(rng, n, numDense, numHashed, hashBits, mean, std, true)
			want := make([]float32, n*tc.classes)
			if err := learner.Predict(want, test); err != nil {
				t.Fatalf("predict: %v", err)
			}
			got := make([]float32, n*tc.classes)
			if err := l.Score(got, test); err != nil {
				t.Fatalf("score: %v", err)
			}
			assertClose(t, got, want, 1e-5)
		})
	}
}
