package stat

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"
)

// golden holds scipy 1.17.1's answers, recorded by
// detectors/testdata/gen_river_golden.py.
type golden struct {
	KS []struct {
		A, B      []float64
		Statistic float64
		PValue    float64
	} `json:"ks_2samp"`
	Chi2 []struct {
		X, DF, SF float64
	} `json:"chi2_sf"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/river_golden.json")
	if err != nil {
		t.Fatalf("read golden file: %v", err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("decode golden file: %v", err)
	}
	return g
}

func TestKSMatchesScipyExact(t *testing.T) {
	g := loadGolden(t)
	if len(g.KS) == 0 {
		t.Fatal("golden file has no KS cases")
	}
	for i, c := range g.KS {
		a, b := slices.Sorted(slices.Values(c.A)), slices.Sorted(slices.Values(c.B))
		d := KSStatistic(a, b)
		if math.Abs(d-c.Statistic) > 1e-12 {
			t.Errorf("case %d: statistic %v, scipy %v", i, d, c.Statistic)
		}
		p := KSExactPValueEqual(d, len(a))
		if math.Abs(p-c.PValue) > 1e-12*max(1, c.PValue) {
			t.Errorf("case %d: p-value %v, scipy %v", i, p, c.PValue)
		}
	}
}

func TestChiSquareSFMatchesScipy(t *testing.T) {
	g := loadGolden(t)
	if len(g.Chi2) == 0 {
		t.Fatal("golden file has no chi-square cases")
	}
	for _, c := range g.Chi2 {
		if got := ChiSquareSF(c.X, c.DF); math.Abs(got-c.SF) > 1e-10 {
			t.Errorf("ChiSquareSF(%v, %v) = %v, scipy %v", c.X, c.DF, got, c.SF)
		}
	}
}

func TestKSAsymptoticPValue(t *testing.T) {
	// Q(1.358) ≈ 0.05 and Q(1.628) ≈ 0.01, the classic critical values.
	for _, c := range []struct{ lambda, want float64 }{{1.358, 0.05}, {1.628, 0.01}} {
		if got := KolmogorovSF(c.lambda); math.Abs(got-c.want) > 5e-4 {
			t.Errorf("KolmogorovSF(%v) = %v, want ≈ %v", c.lambda, got, c.want)
		}
	}
	if p := KSAsymptoticPValue(0, 1000, 1000); p != 1 {
		t.Errorf("p-value of D=0 is %v, want 1", p)
	}
}
