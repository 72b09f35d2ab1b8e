package learnersuite

import (
	"bytes"
	"math"
	"testing"

	"github.com/driftline/driftline/models"
)

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
