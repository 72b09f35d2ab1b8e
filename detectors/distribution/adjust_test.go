package distribution

import (
	"math"
	"testing"
)

// The adjusted p-values agree with the rejections of the step procedures at
// every level, and match R's p.adjust(method = "BH") on a textbook case.
func TestAdjustedPValues(t *testing.T) {
	p := []float64{0.01, 0.04, 0.03, 0.005, 0.2}
	// R: p.adjust(c(0.01, 0.04, 0.03, 0.005, 0.2), "BH")
	want := []float64{0.025, 0.05, 0.05, 0.025, 0.2}
	got, _ := AdjustBenjaminiHochberg(nil, nil, p)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("BH adjusted[%d] = %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
	for _, q := range []float64{0.001, 0.01, 0.025, 0.04, 0.05, 0.1, 0.3} {
		rej := BenjaminiHochberg(nil, p, q)
		bon := Bonferroni(nil, p, q)
		adjB := AdjustBonferroni(nil, p)
		for i := range p {
			if rej[i] != (got[i] <= q) {
				t.Errorf("q=%v: BH rejects %d = %v, adjusted %v", q, i, rej[i], got[i])
			}
			if bon[i] != (adjB[i] <= q) {
				t.Errorf("q=%v: Bonferroni rejects %d = %v, adjusted %v", q, i, bon[i], adjB[i])
			}
		}
	}
}

func TestWindowCounts(t *testing.T) {
	p, err := NewProfile("x", []float64{1, 2, 3, 4}, 2)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWindow(&p)
	for _, x := range []float64{0, 10, 10} {
		w.Observe(x)
	}
	c := w.Counts(nil)
	if len(c) != len(p.Counts) || c[0] != 1 || c[len(c)-1] != 2 {
		t.Fatalf("counts %v", c)
	}
}
