package streams

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// riverAgrawal is testdata/river_agrawal.json, written by
// testdata/gen_river_agrawal.py from River's datasets.synth.Agrawal.
type riverAgrawal struct {
	Functions []struct {
		Function    int          `json:"function"`
		X           [][9]float64 `json:"x"`
		Y           []int        `json:"y"`
		ShareOfOnes float64      `json:"share_of_ones"`
	} `json:"functions"`
	Perturbed []struct {
		Perturbation float64      `json:"perturbation"`
		X            [][9]float64 `json:"x"`
	} `json:"perturbed"`
}

func loadRiverAgrawal(t *testing.T) riverAgrawal {
	t.Helper()
	data, err := os.ReadFile("testdata/river_agrawal.json")
	if err != nil {
		t.Fatalf("read River's Agrawal golden file (regenerate with testdata/gen_river_agrawal.py): %v", err)
	}
	var g riverAgrawal
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Functions) != len(agrawalFuncs) || len(g.Perturbed) == 0 {
		t.Fatalf("golden file has %d functions and %d perturbed streams", len(g.Functions), len(g.Perturbed))
	}
	return g
}

// TestAgrawalFunctionsMatchRiver labels River's own rows with each of the ten
// classification functions and expects River's labels.
func TestAgrawalFunctionsMatchRiver(t *testing.T) {
	for _, f := range loadRiverAgrawal(t).Functions {
		for i, x := range f.X {
			var a [10]float64
			copy(a[:], x[:])
			got := 0
			if agrawalFuncs[f.Function](&a) {
				got = 1
			}
			if got != f.Y[i] {
				t.Fatalf("function %d, River's row %d %v: label %d, River says %d", f.Function, i, x, got, f.Y[i])
			}
		}
	}
}

// TestAgrawalShareOfOnesMatchesRiver compares the share of label 1 of each
// function over 20,000 rows with River's over as many: the attributes'
// distributions must agree for the shares to.
func TestAgrawalShareOfOnesMatchesRiver(t *testing.T) {
	for _, f := range loadRiverAgrawal(t).Functions {
		const n = 20_000
		ones := 0
		for _, e := range take(mustGenerator(t, Config{Concept: ConceptAgrawal, Variant: f.Function, Seed: 5}), n) {
			ones += e.Label
		}
		// Two independent shares of 20,000 Bernoulli draws: 4 standard errors.
		p := f.ShareOfOnes
		tol := 4 * math.Sqrt(2*max(p*(1-p), 1e-3)/n)
		if got := float64(ones) / n; math.Abs(got-p) > tol {
			t.Errorf("function %d: %.4f of labels are 1, River gives %.4f (tolerance %.4f)", f.Function, got, p, tol)
		}
	}
}

// TestAgrawalPerturbationLikeRiver checks the perturbed attributes against
// River's: the same ranges, integral age and hyears, and hvalue always
// (9 − zipcode)·100,000 or 0 (River's clamping quirk).
func TestAgrawalPerturbationLikeRiver(t *testing.T) {
	check := func(who string, p float64, x [9]float64) {
		t.Helper()
		hvalueOK := x[agHvalue] == 0 || x[agHvalue] == (9-x[agZipcode])*100_000
		if x[agSalary] < 20_000 || x[agSalary] > 150_000 || x[agAge] != math.Round(x[agAge]) || x[agAge] < 20 || x[agAge] > 80 ||
			x[agHyears] != math.Round(x[agHyears]) || x[agHyears] < 1 || x[agHyears] > 30 || x[agLoan] < 0 || x[agLoan] > 500_000 ||
			(x[agCommission] != 0 && (x[agCommission] < 10_000 || x[agCommission] > 75_000)) || !hvalueOK {
			t.Fatalf("%s, perturbation %v: row %v out of River's perturbed ranges", who, p, x)
		}
	}
	for _, s := range loadRiverAgrawal(t).Perturbed {
		for _, x := range s.X {
			check("River", s.Perturbation, x)
		}
		for _, e := range take(mustGenerator(t, Config{Concept: ConceptAgrawal, Seed: 7, Perturbation: s.Perturbation}), 5000) {
			var x [9]float64
			copy(x[:], e.F[:9])
			check("driftline", s.Perturbation, x)
		}
	}
}
