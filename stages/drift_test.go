package stages

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// driftFeatures are the SEA stream's three concept attributes (the label
// depends on f0+f1 only; f2 is irrelevant) and one noise column.
var driftFeatures = []string{"f0", "f1", "f2", "f3"}

// seaFeed drives a monitor with a seeded SEA stream, the way the score stage
// and the label join would: feature blocks built from Event.F, scores of a
// fixed model that knows concept 0 (label 1 when f0+f1 <= 8), and one
// outcome per event.
type seaFeed struct {
	stream     streams.Config
	events     int
	batch      int
	shiftFrom  int     // from this event on, f2 += shift (covariate shift)
	shift      float64 // 0: none
	missingF3  bool    // f3 is always missing (NaN)
	noOutcomes bool
}

type fedAlert struct {
	alert.Alert
	event int // index of the last event fed when it was raised
}

func (f seaFeed) run(t testing.TB, m *DriftMonitor) []fedAlert {
	t.Helper()
	gen, err := streams.NewGenerator(f.stream)
	if err != nil {
		t.Fatal(err)
	}
	batch := max(f.batch, 1)
	fb := pipeline.FeatureBlock{NumDense: len(driftFeatures)}
	scores := make([]float32, 0, batch)
	labels := make([]int, 0, batch)
	var out []fedAlert
	var e streams.Event
	for i := 0; i < f.events; {
		fb.Dense, fb.Row, scores, labels = fb.Dense[:0], fb.Row[:0], scores[:0], labels[:0]
		for ; fb.Len() < batch && i < f.events; i++ {
			gen.Next(&e)
			x := e.F
			if f.shift != 0 && i >= f.shiftFrom {
				x[2] += f.shift
			}
			f3 := float32(x[3])
			if f.missingF3 {
				f3 = float32(math.NaN())
			}
			fb.Dense = append(fb.Dense, float32(x[0]), float32(x[1]), float32(x[2]), f3)
			fb.Row = append(fb.Row, fb.Len())
			scores = append(scores, float32(1/(1+math.Exp(-4*(8-x[0]-x[1])))))
			labels = append(labels, e.Label)
		}
		for _, a := range m.ObserveBatch(&fb, scores, e.Time) {
			out = append(out, fedAlert{a, i - 1})
		}
		if f.noOutcomes {
			continue
		}
		for j, s := range scores {
			for _, a := range m.ObserveOutcome(float64(s), float64(labels[j]), e.Time) {
				out = append(out, fedAlert{a, i - len(scores) + j})
			}
		}
	}
	return out
}

func newTestMonitor(t testing.TB, edit func(*DriftConfig)) (*DriftMonitor, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := NewDriftMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultDriftConfig()
	cfg.ModelVersion = "sea@1"
	cfg.Features = driftFeatures
	cfg.Metrics = metrics
	if edit != nil {
		edit(&cfg)
	}
	m, err := NewDriftMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func states(as []fedAlert) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Detector + "/" + a.Subject + "/" + string(a.State) + " ")
	}
	return b.String()
}

func gauge(t *testing.T, reg *prometheus.Registry, name, detector, subject string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var d, s string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "detector":
					d = l.GetValue()
				case "subject":
					s = l.GetValue()
				}
			}
			if d == detector && s == subject {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{detector=%q,subject=%q}", name, detector, subject)
	return 0
}

var seaStream = streams.Config{Concept: streams.ConceptSEA, Seed: 7, Noise: 0.1}

func TestDriftMonitorCovariateShiftRaisesOneFeatureAlert(t *testing.T) {
	m, reg := newTestMonitor(t, nil)
	const shiftAt = 40_000
	alerts := seaFeed{stream: seaStream, events: 100_000, batch: 500, shiftFrom: shiftAt, shift: 3}.run(t, m)
	if len(alerts) != 1 {
		t.Fatalf("got alerts %s, want one KS/f2/drift", states(alerts))
	}
	a := alerts[0]
	if a.Detector != DetectorKS || a.Subject != "f2" || a.State != alert.StateDrift || a.Severity != alert.SeverityCritical {
		t.Fatalf("alert %+v, want KS drift on f2", a.Alert)
	}
	if a.ModelVersion != "sea@1" || a.Statistic > a.Threshold || a.Window != 5000 {
		t.Errorf("alert %+v: want model sea@1, p-value <= threshold, window 5000", a.Alert)
	}
	// The shift is caught at the end of the first round that holds it.
	if a.event < shiftAt || a.event >= shiftAt+5000 {
		t.Errorf("raised at event %d, want within the round after %d", a.event, shiftAt)
	}
	if got := gauge(t, reg, "driftline_drift_state", DetectorKS, "f2"); got != 2 {
		t.Errorf("state{f2} = %v, want 2", got)
	}
	if got := gauge(t, reg, "driftline_drift_state", DetectorKS, "f0"); got != 0 {
		t.Errorf("state{f0} = %v, want 0", got)
	}
	if got := gauge(t, reg, "driftline_drift_statistic", DetectorKS, "f2"); got > 1e-6 {
		t.Errorf("statistic{f2} = %v, want a tiny p-value", got)
	}
	if got := gauge(t, reg, "driftline_drift_statistic", DetectorKS, "f0"); got < 0.001 {
		t.Errorf("statistic{f0} = %v, want an unremarkable p-value", got)
	}
}

func TestDriftMonitorStationaryStreamRaisesNone(t *testing.T) {
	m, reg := newTestMonitor(t, nil)
	alerts := seaFeed{stream: seaStream, events: 200_000, batch: 333}.run(t, m)
	if len(alerts) != 0 {
		t.Fatalf("stationary stream raised %s", states(alerts))
	}
	// The tests did run: every subject has a p-value and the error detector
	// its statistic (ADWIN's window mean: the error rate, about the noise).
	for _, s := range append(driftFeatures[:len(driftFeatures):len(driftFeatures)], SubjectPrediction) {
		if p := gauge(t, reg, "driftline_drift_statistic", DetectorKS, s); !(p > 0 && p <= 1) {
			t.Errorf("statistic{%s} = %v, want a p-value in (0, 1]", s, p)
		}
	}
	if e := gauge(t, reg, "driftline_drift_statistic", "ADWIN", SubjectError); e < 0.05 || e > 0.15 {
		t.Errorf("statistic{error} = %v, want about 0.1", e)
	}
}

// errorDriftStream switches SEA concept 0 (θ=8) to concept 3 (θ=9.5) at
// event 60,000: the fixed model's error rate goes from the 10% label noise
// to about 20.5% (P(8 < f0+f1 <= 9.5) = 0.131, times 1-2·0.1).
var errorDriftStream = streams.Config{
	Concept: streams.ConceptSEA, Seed: 11, Noise: 0.1, DriftVariant: 3,
	Drift: streams.Drift{Kind: streams.DriftAbrupt, Position: 60_000},
}

func TestDriftMonitorErrorRateJumpRaisesOneErrorAlert(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		maxDelay int // the detector's own detection delay on this stream
	}{
		{ErrorADWIN, 1000},
		{ErrorHDDMA, 1000},
		// DDM compares with the error rate since its start, so after 60,000
		// stable outcomes it is slow to see the jump.
		{ErrorDDM, 45_000},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			m, reg := newTestMonitor(t, func(c *DriftConfig) {
				c.ErrorDetector = tc.kind
				// The stream has 10 ms between events: a 2-minute
				// cool-down (12,000 events) lets a second alert through
				// if the detector fires again after the episode resolves.
				c.Gate.CoolDown = 2 * time.Minute
			})
			alerts := seaFeed{stream: errorDriftStream, events: 120_000, batch: 500}.run(t, m)
			var drifts []fedAlert
			for _, a := range alerts {
				if a.Subject != SubjectError {
					t.Fatalf("got alerts %s, want error alerts only", states(alerts))
				}
				if a.State == alert.StateDrift {
					drifts = append(drifts, a)
				}
			}
			t.Logf("%s", states(alerts))
			if len(drifts) != 1 {
				t.Fatalf("got alerts %s, want exactly one error drift", states(alerts))
			}
			d := drifts[0]
			if d.event < 60_000 || d.event > 60_000+tc.maxDelay {
				t.Errorf("drift alert at event %d, want within %d events after 60000", d.event, tc.maxDelay)
			}
			if tc.kind == ErrorADWIN {
				// ADWIN has no warning zone: the episode is the drift and
				// its resolution.
				if len(alerts) != 2 || alerts[1].State != alert.StateResolved || alerts[1].DedupeKey != d.DedupeKey {
					t.Errorf("got alerts %s, want the drift and its resolution", states(alerts))
				}
			}
			// The state gauge follows the episode of the last alert.
			last := alerts[len(alerts)-1]
			wantState := map[alert.State]float64{alert.StateWarning: 1, alert.StateDrift: 2, alert.StateResolved: 0}[last.State]
			if got := gauge(t, reg, "driftline_drift_state", d.Detector, SubjectError); got != wantState {
				t.Errorf("state{error} = %v after a %s alert, want %v", got, last.State, wantState)
			}
			if got := testutil.ToFloat64(m.cfg.Metrics.alerts.WithLabelValues(d.Detector, "critical")); got != 1 {
				t.Errorf("alerts_total{critical} = %v, want 1", got)
			}
		})
	}
}
