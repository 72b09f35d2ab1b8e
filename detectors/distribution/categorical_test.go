package distribution_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/driftline/driftline/detectors/distribution"
)

// chiSquareGolden is testdata/chisquare_golden.json, written by
// testdata/gen_chisquare_golden.py from scipy 1.17.1.
type chiSquareGolden struct {
	Scipy string `json:"scipy"`
	Cases []struct {
		Name          string   `json:"name"`
		Reference     []uint64 `json:"reference"`
		Current       []uint64 `json:"current"`
		ChiSquare     float64  `json:"chi_square"`
		DF            int      `json:"df"`
		PValue        float64  `json:"p_value"`
		PSI           float64  `json:"psi"`
		JensenShannon float64  `json:"jensen_shannon"`
	} `json:"cases"`
}

// categoryWindow fills a profile and a window whose bins hold exactly ref and cur:
// code i lands in bin i.
func categoryWindow(t testing.TB, ref, cur []uint64) *distribution.CategoryWindow {
	t.Helper()
	p, err := distribution.NewCategoryProfile("x", len(ref))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range ref {
		for range n {
			p.Observe(int64(i))
		}
	}
	w := distribution.NewCategoryWindow(&p)
	for i, n := range cur {
		for range n {
			w.Observe(int64(i + len(cur))) // folds back to bin i
		}
	}
	return w
}

func relClose(got, want, tol float64) bool {
	return got == want || math.Abs(got-want) <= tol*math.Abs(want)
}

// The chi-square test of two histograms agrees with scipy's
// chi2_contingency (no continuity correction) to 1e-9 relative, p-values
// down to 1e-93 included, and PSI and Jensen-Shannon with their documented
// formulas.
func TestCompareCategoriesMatchesScipy(t *testing.T) {
	raw, err := os.ReadFile("testdata/chisquare_golden.json")
	if err != nil {
		t.Fatalf("read golden file: %v", err)
	}
	var g chiSquareGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("decode golden file: %v", err)
	}
	if len(g.Cases) < 9 {
		t.Fatalf("golden file holds %d cases, want at least 9", len(g.Cases))
	}
	for _, c := range g.Cases {
		r := distribution.CompareCategories(categoryWindow(t, c.Reference, c.Current))
		if r.ChiSquareDF != c.DF || !relClose(r.ChiSquare, c.ChiSquare, 1e-9) || !relClose(r.ChiSquarePValue, c.PValue, 1e-9) {
			t.Errorf("%s: chi-square %v df %d p %v, scipy %v df %d p %v", c.Name, r.ChiSquare, r.ChiSquareDF, r.ChiSquarePValue, c.ChiSquare, c.DF, c.PValue)
		}
		if !relClose(r.PSI, c.PSI, 1e-9) || !relClose(r.JensenShannon, c.JensenShannon, 1e-9) {
			t.Errorf("%s: PSI %v JS %v, want %v and %v", c.Name, r.PSI, r.JensenShannon, c.PSI, c.JensenShannon)
		}
		if r.KS != 0 || r.KSPValue != 1 || r.Wasserstein != 0 {
			t.Errorf("%s: ordered statistics set on unordered bins: %+v", c.Name, r)
		}
	}
}

func TestCategoryWindowFoldsAndSkipsAbsent(t *testing.T) {
	p, err := distribution.NewCategoryProfile("device", 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int64{0, 1, 5, 6, -1, 1 << 40} {
		p.Observe(code)
	}
	if p.Total != 5 || p.Counts[0] != 2 || p.Counts[1] != 2 || p.Counts[2] != 1 {
		t.Fatalf("profile %+v, want codes folded mod 4 and -1 skipped", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	w := distribution.NewCategoryWindow(&p)
	w.Observe(-1)
	w.Observe(7)
	if w.Total() != 1 || w.Counts(nil)[3] != 1 {
		t.Fatalf("window total %d counts %v", w.Total(), w.Counts(nil))
	}
	w.Reset()
	if r := distribution.CompareCategories(w); w.Total() != 0 || r.ChiSquarePValue != 1 || r.PSI != 0 {
		t.Fatalf("empty window compares as %+v", r)
	}
	if _, err := distribution.NewCategoryProfile("x", 1); !errors.Is(err, distribution.ErrInvalidProfile) {
		t.Errorf("one bin: err %v", err)
	}
	empty, _ := distribution.NewCategoryProfile("x", 8)
	if err := empty.Validate(); !errors.Is(err, distribution.ErrInvalidProfile) {
		t.Errorf("empty profile validates: %v", err)
	}
}

func TestCategoryWindowDoesNotAllocate(t *testing.T) {
	p, _ := distribution.NewCategoryProfile("x", 64)
	for i := range 10000 {
		p.Observe(int64(i * 7919))
	}
	w := distribution.NewCategoryWindow(&p)
	code := int64(0)
	if got := testing.AllocsPerRun(1000, func() { code += 104729; w.Observe(code) }); got != 0 {
		t.Errorf("Observe: %v allocs", got)
	}
	if got := testing.AllocsPerRun(100, func() { distribution.CompareCategories(w) }); got != 0 {
		t.Errorf("CompareCategories: %v allocs", got)
	}
}

// A hashed categorical field whose mix moves: the window's chi-square
// p-value and PSI show it.
func ExampleCompareCategories() {
	p, _ := distribution.NewCategoryProfile("channel", 64)
	w := distribution.NewCategoryWindow(&p)
	// Codes 11, 22 and 33 are three hashed categories; the reference sees
	// them 50/30/20, the window 30/30/40.
	for code, n := range map[int64]int{11: 500, 22: 300, 33: 200} {
		for range n {
			p.Observe(code)
		}
	}
	for code, n := range map[int64]int{11: 300, 22: 300, 33: 400} {
		for range n {
			w.Observe(code)
		}
	}
	r := distribution.CompareCategories(w)
	fmt.Printf("chi-square %.1f, df %d, p-value %.2g, PSI %.3f\n", r.ChiSquare, r.ChiSquareDF, r.ChiSquarePValue, r.PSI)
	// Output: chi-square 116.7, df 2, p-value 4.6e-26, PSI 0.241
}

func BenchmarkCategoryWindowObserve(b *testing.B) {
	p, _ := distribution.NewCategoryProfile("x", 64)
	w := distribution.NewCategoryWindow(&p)
	b.ReportAllocs()
	code := int64(0)
	for b.Loop() {
		code += 104729
		w.Observe(code & (1<<18 - 1))
	}
}

func BenchmarkCompareCategories(b *testing.B) {
	p, _ := distribution.NewCategoryProfile("x", 64)
	for i := range 20000 {
		p.Observe(int64(i * i))
	}
	w := distribution.NewCategoryWindow(&p)
	for i := range 5000 {
		w.Observe(int64(i * 31))
	}
	b.ReportAllocs()
	for b.Loop() {
		distribution.CompareCategories(w)
	}
}
