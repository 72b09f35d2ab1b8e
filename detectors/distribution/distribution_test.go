package distribution_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
)

func normals(seed uint64, n int, mean float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1))
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + rng.NormFloat64()
	}
	return out
}

func profileOf(t testing.TB, seed uint64) distribution.Profile {
	t.Helper()
	p, err := distribution.NewProfile("x", normals(seed, 20000, 0), 20)
	if err != nil {
		t.Fatalf("new profile: %v", err)
	}
	return p
}

func compare(p *distribution.Profile, values []float64) distribution.Result {
	w := distribution.NewWindow(p)
	for _, x := range values {
		w.Observe(x)
	}
	return distribution.Compare(w)
}

func TestQuietOnUnshiftedLoudOnShifted(t *testing.T) {
	p := profileOf(t, 1)
	same := compare(&p, normals(2, 5000, 0))
	if same.KSPValue < 0.01 || same.ChiSquarePValue < 0.01 || same.PSI > 0.02 || same.Wasserstein > 0.05 {
		t.Errorf("unshifted window looks shifted: %+v", same)
	}
	shifted := compare(&p, normals(3, 5000, 0.3))
	if shifted.KSPValue > 1e-6 || shifted.ChiSquarePValue > 1e-6 || shifted.PSI < 0.05 {
		t.Errorf("window shifted by 0.3 sd looks unshifted: %+v", shifted)
	}
	if math.Abs(shifted.Wasserstein-0.3) > 0.05 {
		t.Errorf("Wasserstein %v for a 0.3 mean shift, want ≈ 0.3", shifted.Wasserstein)
	}
	if !(shifted.JensenShannon > same.JensenShannon && shifted.JensenShannon < 1) {
		t.Errorf("Jensen-Shannon %v shifted vs %v unshifted", shifted.JensenShannon, same.JensenShannon)
	}
	if shifted.ChiSquareDF != len(p.Counts)-1 {
		t.Errorf("chi-square df %d, want %d", shifted.ChiSquareDF, len(p.Counts)-1)
	}
}

func TestWindowRejectsNonFinite(t *testing.T) {
	p := profileOf(t, 1)
	w := distribution.NewWindow(&p)
	for _, x := range []float64{math.NaN(), math.Inf(1), 0.5, math.Inf(-1)} {
		w.Observe(x)
	}
	if w.Total() != 1 || w.Rejected() != 3 {
		t.Fatalf("total %d rejected %d, want 1 and 3", w.Total(), w.Rejected())
	}
	w.Reset()
	if w.Total() != 0 || w.Rejected() != 0 {
		t.Fatalf("after Reset total %d rejected %d", w.Total(), w.Rejected())
	}
}

func TestProfileJSONRoundTrip(t *testing.T) {
	p := profileOf(t, 5)
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := distribution.ParseProfile(raw)
	if err != nil {
		t.Fatalf("parse profile: %v", err)
	}
	if q.Subject != p.Subject || q.Total != p.Total || !slices.Equal(q.Edges, p.Edges) ||
		!slices.Equal(q.Counts, p.Counts) || !slices.Equal(q.Sums, p.Sums) {
		t.Fatal("profile changed through JSON")
	}
	cur := normals(6, 3000, 0.2)
	if compare(&p, cur) != compare(&q, cur) {
		t.Fatal("decoded profile compares differently")
	}
}

func TestParseProfileRejectsMalformed(t *testing.T) {
	for name, doc := range map[string]string{
		"unsorted edges": `{"subject":"x","edges":[1,0],"counts":[1,1,1],"sums":[0,0,0],"total":3}`,
		"short counts":   `{"subject":"x","edges":[0],"counts":[1],"sums":[0],"total":1}`,
		"wrong total":    `{"subject":"x","edges":[0],"counts":[1,1],"sums":[0,0],"total":5}`,
		"no edges":       `{"subject":"x","edges":[],"counts":[1],"sums":[0],"total":1}`,
	} {
		if _, err := distribution.ParseProfile([]byte(doc)); !errors.Is(err, distribution.ErrInvalidProfile) {
			t.Errorf("%s: err %v, want ErrInvalidProfile", name, err)
		}
	}
	if _, err := distribution.NewProfile("x", []float64{math.NaN()}, 10); !errors.Is(err, distribution.ErrInvalidProfile) {
		t.Errorf("profile of no finite value: err %v", err)
	}
}

func TestCorrections(t *testing.T) {
	p := []float64{0.01, 0.04, 0.03, 0.005, 0.2}
	if got := distribution.Bonferroni(nil, p, 0.05); !slices.Equal(got, []bool{true, false, false, true, false}) {
		t.Errorf("Bonferroni %v", got)
	}
	// Sorted: 0.005(1) 0.01(2) 0.03(3) 0.04(4) 0.2(5); k·q/m = 0.01k: 0.04 <= 0.04, so the 4 smallest.
	if got := distribution.BenjaminiHochberg(nil, p, 0.05); !slices.Equal(got, []bool{true, true, true, true, false}) {
		t.Errorf("Benjamini-Hochberg %v", got)
	}
}

// TestManyFeaturesNoDriftAtMostOneAlert streams 1,000,000 events of 50
// independent, unshifted features. Every 50,000 events each feature's window
// is compared with its profile (KS p-value), Benjamini-Hochberg at q = 0.01
// corrects across the 50 features, and the flags go through an alert gate.
// At most one alert may be raised; it then shifts one feature by 0.25 sd and
// requires exactly that feature to alert.
func TestManyFeaturesNoDriftAtMostOneAlert(t *testing.T) {
	const (
		features = 50
		events   = 1_000_000
		window   = 50_000
	)
	run := func(shiftedFeature int, shiftFrom int) []alert.Alert {
		profiles := make([]distribution.Profile, features)
		windows := make([]*distribution.Window, features)
		for f := range profiles {
			profiles[f] = profileOf(t, uint64(1000+f))
			windows[f] = distribution.NewWindow(&profiles[f])
		}
		gate, err := alert.NewGate(alert.DefaultGateConfig())
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(42, 42))
		pValues := make([]float64, features)
		var flags []bool
		var alerts []alert.Alert
		for i := 1; i <= events; i++ {
			for f, w := range windows {
				x := rng.NormFloat64()
				if f == shiftedFeature && i > shiftFrom {
					x += 0.25
				}
				w.Observe(x)
			}
			if i%window != 0 {
				continue
			}
			results := make([]distribution.Result, features)
			for f, w := range windows {
				results[f] = distribution.Compare(w)
				pValues[f] = results[f].KSPValue
				w.Reset()
			}
			flags = distribution.BenjaminiHochberg(flags, pValues, 0.01)
			at := time.Unix(int64(i), 0)
			for f := range windows {
				a, ok := gate.Observe(alert.Signal{Detector: "KS", Subject: profiles[f].Subject + string(rune('A'+f)),
					Statistic: results[f].KSPValue, Threshold: 0.01, Window: results[f].Current, Drift: flags[f], At: at})
				if ok && a.State == alert.StateDrift {
					alerts = append(alerts, a)
				}
			}
		}
		return alerts
	}
	quiet := run(-1, 0)
	t.Logf("no-drift stream: %d alerts", len(quiet))
	if len(quiet) > 1 {
		t.Fatalf("no-drift stream raised %d alerts: %+v", len(quiet), quiet)
	}
	alerts := run(7, events/2)
	if len(alerts) != 1 || alerts[0].Subject != "x"+string(rune('A'+7)) {
		t.Fatalf("one shifted feature raised %+v, want one alert on feature 7", alerts)
	}
}

func BenchmarkWindowObserve(b *testing.B) {
	p := profileOf(b, 1)
	w := distribution.NewWindow(&p)
	values := normals(2, 1<<12, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.Observe(values[i&(1<<12-1)])
	}
}

func BenchmarkCompare(b *testing.B) {
	p := profileOf(b, 1)
	w := distribution.NewWindow(&p)
	for _, x := range normals(2, 5000, 0.1) {
		w.Observe(x)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		distribution.Compare(w)
	}
}
