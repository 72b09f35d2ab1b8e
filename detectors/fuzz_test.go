package detectors_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/detectors"
)

// TestADWINOneBucketPerRow is the reproduction: MaxBuckets 1 is
// accepted, then i%2 for i < 308 and the same values + 3 after it made
// Update panic at update 351 (a merge leaves empty rows, and dropping the
// oldest bucket hit one).
func TestADWINOneBucketPerRow(t *testing.T) {
	cfg := detectors.DefaultADWINConfig()
	cfg.MaxBuckets = 1
	d, err := detectors.NewADWIN(cfg)
	if err != nil {
		t.Fatal(err)
	}
	drifts := 0
	for i := range 10_000 {
		x := float64(i % 2)
		if i >= 308 {
			x += 3
		}
		d.Update(x)
		if d.DriftDetected() {
			drifts++
		}
		if w := d.Width(); w < 0 || w > i+1 {
			t.Fatalf("update %d: width %d", i, w)
		}
	}
	if drifts == 0 {
		t.Error("no drift detected across the mean shift at update 308")
	}
	if got := d.Estimation(); math.Abs(got-3.5) > 0.1 {
		t.Errorf("estimation %v after the shift, want about 3.5", got)
	}
}

// FuzzDetectorConfigs builds every detector of the package from fuzzed
// configuration values and, when its constructor accepts them, feeds it
// its first 10,000 updates: binary, continuous, shifting, non-finite and
// huge values. Nothing may panic, and the statistic stays finite while the
// values are bounded.
//
//	go test -run '^$' -fuzz FuzzDetectorConfigs -fuzztime 60s ./detectors/
func FuzzDetectorConfigs(f *testing.F) {
	f.Add(uint8(0), 0.002, 0.0, 0.0, 32, 5, 5, 10, false, uint64(1), uint64(1))
	f.Add(uint8(0), 0.002, 0.0, 0.0, 32, 1, 5, 10, false, uint64(1), uint64(308)) // the MaxBuckets 1
	f.Add(uint8(1), 2.0, 3.0, 0.0, 30, 0, 0, 0, false, uint64(0), uint64(2))
	f.Add(uint8(2), 0.95, 0.9, 0.0, 30, 0, 0, 0, false, uint64(0), uint64(3))
	f.Add(uint8(3), 0.001, 0.005, 0.0, 0, 0, 0, 0, true, uint64(0), uint64(4))
	f.Add(uint8(4), 0.001, 0.005, 0.05, 0, 0, 0, 0, false, uint64(0), uint64(5))
	f.Add(uint8(5), 0.005, 0.0, 0.0, 100, 30, 0, 0, false, uint64(1), uint64(6))
	f.Add(uint8(6), 0.005, 50.0, 0.9999, 30, 0, 0, 0, false, uint64(0), uint64(7))
	f.Add(uint8(5), 0.5, 0.0, 0.0, 2, 1, 0, 0, false, uint64(9), uint64(8))
	f.Add(uint8(0), 1e-300, 0.0, 0.0, 1, 1, 1, 0, false, uint64(0), uint64(9))
	f.Add(uint8(6), 0.0, 1e-300, 1.0, 1, 2, 0, 0, false, uint64(0), uint64(10))
	f.Fuzz(func(t *testing.T, kind uint8, a, b, c float64, n1, n2, n3, n4 int, flag bool, seed, dataSeed uint64) {
		d, binary := newFuzzedDetector(kind, a, b, c, n1, n2, n3, n4, flag, seed)
		if d == nil {
			return
		}
		feedDetector(t, d, binary, dataSeed)
	})
}

// newFuzzedDetector builds detector kind%7 from the fuzzed values; it
// returns nil when the constructor refuses them.
func newFuzzedDetector(kind uint8, a, b, c float64, n1, n2, n3, n4 int, flag bool, seed uint64) (detectors.Detector, bool) {
	var d detectors.Detector
	var err error
	binary := false
	switch kind % 7 {
	case 0:
		d, err = detectors.NewADWIN(detectors.ADWINConfig{Delta: a, Clock: n1, MaxBuckets: n2, MinWindowLength: n3, GracePeriod: n4})
	case 1:
		binary = true
		d, err = detectors.NewDDM(detectors.DDMConfig{WarmStart: n1, WarningThreshold: a, DriftThreshold: b})
	case 2:
		binary = true
		d, err = detectors.NewEDDM(detectors.EDDMConfig{WarmStart: n1, Alpha: a, Beta: b})
	case 3:
		binary = true
		d, err = detectors.NewHDDMA(detectors.HDDMAConfig{DriftConfidence: a, WarningConfidence: b, TwoSided: flag})
	case 4:
		binary = true
		d, err = detectors.NewHDDMW(detectors.HDDMWConfig{DriftConfidence: a, WarningConfidence: b, Lambda: c, TwoSided: flag})
	case 5:
		d, err = detectors.NewKSWIN(detectors.KSWINConfig{Alpha: a, WindowSize: n1, StatSize: n2, Seed: seed})
	case 6:
		d, err = detectors.NewPageHinkley(detectors.PageHinkleyConfig{MinInstances: n1, Delta: a, Threshold: b, Alpha: c,
			Mode: detectors.PageHinkleyMode(n2)})
	}
	if err != nil {
		return nil, false
	}
	return d, binary
}

// feedDetector gives d 10,000 values from dataSeed's stream: phases of
// i%2, of i%2 shifted by 3 (the ADWIN reproduction), of noise whose mean
// and scale shift, and of rare non-finite, huge and (for binary detectors)
// out-of-domain values.
func feedDetector(t *testing.T, d detectors.Detector, binary bool, dataSeed uint64) {
	rng := rand.New(rand.NewPCG(dataSeed, 11))
	odd := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1e300, -1e300, math.MaxFloat64, 0.5, -1, 2}
	shift := 1 + rng.IntN(9_999)
	huge := rng.IntN(4) == 0
	for i := range 10_000 {
		var x float64
		switch {
		case rng.IntN(50) == 0 && (huge || binary):
			x = odd[rng.IntN(len(odd))]
		case binary:
			x = float64(rng.IntN(2))
			if i >= shift && rng.IntN(3) > 0 {
				x = 1
			}
		case rng.IntN(2) == 0:
			x = float64(i % 2)
			if i >= shift {
				x += 3
			}
		default:
			x = rng.NormFloat64()
			if i >= shift {
				x = 10 + 100*x
			}
		}
		d.Update(x)
		if s := d.Statistic(); !huge && (math.IsNaN(s) || math.IsInf(s, 0)) {
			t.Fatalf("update %d: statistic %v on bounded values", i, s)
		}
	}
}
