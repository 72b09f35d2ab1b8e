package rollout

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestQuantile(t *testing.T) {
	for c, want := range map[float64]float64{0.5: 0, 0.95: 1.6448536, 0.975: 1.9599640, 0.99: 2.3263479} {
		if got := quantile(c); !near(got, want, 1e-6) {
			t.Errorf("quantile(%v) = %v; want %v", c, got, want)
		}
	}
}

func TestCompareReferenceValues(t *testing.T) {
	z := quantile(0.975)
	for _, tc := range []struct {
		name               string
		m                  Metric
		cand, champ        Stats
		diff, lower, upper float64
		tol                float64
	}{
		// Newcombe (1998), Statistics in Medicine 17:873, method 10: 56/70 vs 48/80
		// gives 0.2000 with 95% interval (0.0524, 0.3339).
		{"newcombe", MetricAccuracy, Stats{N: 70, Value: 56.0 / 70}, Stats{N: 80, Value: 48.0 / 80}, 0.2, 0.0524, 0.3339, 1e-4},
		// Mean loss, lower is better: SE = sqrt(0.5²/400 + 0.5²/400) = 0.035355.
		{"logloss", MetricLogLoss, Stats{N: 400, Value: 0.30, SD: 0.5}, Stats{N: 400, Value: 0.35, SD: 0.5},
			0.05, 0.05 - z*0.0353553, 0.05 + z*0.0353553, 1e-6},
		{"mae", MetricMAE, Stats{N: 100, Value: 2, SD: 1}, Stats{N: 100, Value: 1, SD: 0}, -1, -1 - z*0.1, -1 + z*0.1, 1e-9},
		// RMSE by the delta method: SE(MSE)=SD/√N=0.1, SE(RMSE)=0.1/(2·2)=0.025.
		{"rmse", MetricRMSE, Stats{N: 100, Value: 2, SD: 1}, Stats{N: 100, Value: 2, SD: 0}, 0, -z * 0.025, z * 0.025, 1e-9},
		{"rmse zero", MetricRMSE, Stats{N: 100, Value: 0, SD: 0}, Stats{N: 100, Value: 0, SD: 0}, 0, 0, 0, 0},
		// Paired: the mean difference and its SE, SD/√N = 0.3/20 = 0.015, whatever the
		// two arms' own values (which alone would give a far wider interval).
		{"paired accuracy", MetricAccuracy, Stats{N: 400, Value: 0.91, Paired: &Paired{N: 400, Mean: 0.01, SD: 0.3}}, Stats{N: 400, Value: 0.90},
			0.01, 0.01 - z*0.015, 0.01 + z*0.015, 1e-9},
		{"paired logloss", MetricLogLoss, Stats{N: 400, Value: 0.30, SD: 0.5, Paired: &Paired{N: 100, Mean: -0.02, SD: 0.1}}, Stats{N: 400, Value: 0.35, SD: 0.5},
			-0.02, -0.02 - z*0.01, -0.02 + z*0.01, 1e-9},
		// Not a mean (rmse), or a single pair: the arms compared as independent samples.
		{"paired rmse", MetricRMSE, Stats{N: 100, Value: 2, SD: 1, Paired: &Paired{N: 100, Mean: 5, SD: 0}}, Stats{N: 100, Value: 2, SD: 0}, 0, -z * 0.025, z * 0.025, 1e-9},
		{"one pair", MetricMAE, Stats{N: 100, Value: 2, SD: 1, Paired: &Paired{N: 1, Mean: 5}}, Stats{N: 100, Value: 1, SD: 0}, -1, -1 - z*0.1, -1 + z*0.1, 1e-9},
	} {
		d, lo, hi := compare(tc.m, tc.cand, tc.champ, z)
		if !near(d, tc.diff, tc.tol) || !near(lo, tc.lower, tc.tol) || !near(hi, tc.upper, tc.tol) {
			t.Errorf("%s: compare = %.5f [%.5f, %.5f]; want %.5f [%.5f, %.5f]", tc.name, d, lo, hi, tc.diff, tc.lower, tc.upper)
		}
	}
}

func TestWilsonAtExtremes(t *testing.T) {
	// Wilson stays informative at p = 0 and 1, where the Wald interval collapses.
	lo, hi := wilson(1, 50, quantile(0.975))
	if !near(hi, 1, 1e-12) || !near(lo, 0.92865, 1e-4) {
		t.Errorf("wilson(1, 50) = [%v, %v]; want [0.92865, 1]", lo, hi)
	}
	lo, hi = wilson(0, 50, quantile(0.975))
	if !near(lo, 0, 1e-12) || !near(hi, 0.07135, 1e-4) {
		t.Errorf("wilson(0, 50) = [%v, %v]; want [0, 0.07135]", lo, hi)
	}
}

func TestStatsCheck(t *testing.T) {
	for _, tc := range []struct {
		m  Metric
		s  Stats
		ok bool
	}{
		{MetricAccuracy, Stats{N: 10, Value: 0.5}, true},
		{MetricAccuracy, Stats{N: 10, Value: 1.5}, false},
		{MetricAccuracy, Stats{N: 10, Value: math.NaN()}, false},
		{MetricAccuracy, Stats{N: -1, Value: 0.5}, false},
		{MetricLogLoss, Stats{N: 10, Value: 0.3, SD: -1}, false},
		{MetricLogLoss, Stats{N: 10, Value: math.Inf(1)}, false},
		{MetricRMSE, Stats{N: 10, Value: -0.1}, false},
	} {
		if err := tc.s.check(tc.m); (err == nil) != tc.ok {
			t.Errorf("check(%s, %+v) = %v; want ok=%v", tc.m, tc.s, err, tc.ok)
		}
	}
}
