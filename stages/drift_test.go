package stages

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
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
	shiftCol   int     // column shifted by shift from event shiftFrom on
	shiftFrom  int     // (covariate shift)
	shift      float64 // 0: none
	missingF3  int     // f3 is missing (NaN) in events i with i%missingF3 == 0; 0: never
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
				x[f.shiftCol] += f.shift
			}
			f3 := float32(x[3])
			if f.missingF3 > 0 && i%f.missingF3 == 0 {
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
	alerts := seaFeed{stream: seaStream, events: 100_000, batch: 500, shiftCol: 2, shiftFrom: shiftAt, shift: 3}.run(t, m)
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
	for _, s := range append(driftFeatures[:len(driftFeatures):len(driftFeatures)], alert.SubjectPrediction) {
		if p := gauge(t, reg, "driftline_drift_statistic", DetectorKS, s); !(p > 0 && p <= 1) {
			t.Errorf("statistic{%s} = %v, want a p-value in (0, 1]", s, p)
		}
	}
	if e := gauge(t, reg, "driftline_drift_statistic", "ADWIN", alert.SubjectError); e < 0.05 || e > 0.15 {
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
				if a.Subject != alert.SubjectError {
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
			if got := gauge(t, reg, "driftline_drift_state", d.Detector, alert.SubjectError); got != wantState {
				t.Errorf("state{error} = %v after a %s alert, want %v", got, last.State, wantState)
			}
			if got := testutil.ToFloat64(m.cfg.Metrics.alerts.WithLabelValues(d.Detector, "critical")); got != 1 {
				t.Errorf("alerts_total{critical} = %v, want 1", got)
			}
		})
	}
}

func TestDriftConfigValidate(t *testing.T) {
	good := DefaultDriftConfig()
	good.Features = driftFeatures
	if err := good.Validate(); err != nil {
		t.Fatalf("default config with features: %v", err)
	}
	profile, err := distribution.NewProfile("f0", []float64{1, 2, 3, 4}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*DriftConfig)
		want error
	}{
		{"empty feature", func(c *DriftConfig) { c.Features = []string{"a", ""} }, ErrInvalidDriftConfig},
		{"duplicate feature", func(c *DriftConfig) { c.Features = []string{"a", "a"} }, ErrInvalidDriftConfig},
		{"reserved prediction", func(c *DriftConfig) { c.Features = []string{alert.SubjectPrediction} }, ErrInvalidDriftConfig},
		{"reserved error", func(c *DriftConfig) { c.Features = []string{alert.SubjectError} }, ErrInvalidDriftConfig},
		{"unknown detector", func(c *DriftConfig) { c.ErrorDetector = "kswin" }, ErrInvalidDriftConfig},
		{"signal every", func(c *DriftConfig) { c.ErrorSignalEvery = 0 }, ErrInvalidDriftConfig},
		{"reference size", func(c *DriftConfig) { c.ReferenceSize = 0 }, ErrInvalidDriftConfig},
		{"bins", func(c *DriftConfig) { c.Bins = 1 }, ErrInvalidDriftConfig},
		{"window", func(c *DriftConfig) { c.WindowSize = 0 }, ErrInvalidDriftConfig},
		{"alpha 0", func(c *DriftConfig) { c.Alpha = 0 }, ErrInvalidDriftConfig},
		{"alpha NaN", func(c *DriftConfig) { c.Alpha = math.NaN() }, ErrInvalidDriftConfig},
		{"correction", func(c *DriftConfig) { c.Correction = "holm" }, ErrInvalidDriftConfig},
		{"min PSI", func(c *DriftConfig) { c.MinPSI = -1 }, ErrInvalidDriftConfig},
		{"min PSI Inf", func(c *DriftConfig) { c.MinPSI = math.Inf(1) }, ErrInvalidDriftConfig},
		{"gate", func(c *DriftConfig) { c.Gate.ConfirmDrift = 0 }, alert.ErrInvalidConfig},
		{"profile subject", func(c *DriftConfig) {
			p := profile
			p.Subject = "nope"
			c.Profiles = []distribution.Profile{p}
		}, ErrInvalidDriftConfig},
		{"two profiles", func(c *DriftConfig) { c.Profiles = []distribution.Profile{profile, profile} }, ErrInvalidDriftConfig},
		{"bad profile", func(c *DriftConfig) {
			p := profile
			p.Total++
			c.Profiles = []distribution.Profile{p}
		}, distribution.ErrInvalidProfile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate() = %v, want %v", err, tc.want)
			}
			if _, err := NewDriftMonitor(c); !errors.Is(err, tc.want) {
				t.Fatalf("NewDriftMonitor() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDriftCutoff(t *testing.T) {
	// Sorted: 0.0001 <= 1·0.01/4, 0.004 <= 2·0.01/4, 0.02 > 3·0.01/4.
	p := []float64{0.0001, 0.5, 0.004, 0.02}
	for _, tc := range []struct {
		correction string
		cut        float64
		reject     []bool
	}{
		{CorrectionBH, 0.005, []bool{true, false, true, false}},
		{CorrectionBonferroni, 0.0025, []bool{true, false, false, false}},
	} {
		m := &DriftMonitor{cfg: DriftConfig{Alpha: 0.01, Correction: tc.correction}, pValues: p}
		cut := m.cutoff()
		if math.Abs(cut-tc.cut) > 1e-15 {
			t.Errorf("%s: cut-off %v, want %v", tc.correction, cut, tc.cut)
		}
		for i := range p {
			if m.reject[i] != tc.reject[i] || m.reject[i] != (p[i] <= cut) {
				t.Errorf("%s: p=%v rejected %v, want %v (and p <= cut-off)", tc.correction, p[i], m.reject[i], tc.reject[i])
			}
		}
	}
}

func TestDriftMonitorProfilesRoundTrip(t *testing.T) {
	a, _ := newTestMonitor(t, nil)
	if got := a.Profiles(); len(got) != 0 {
		t.Fatalf("profiles before any data: %d, want 0", len(got))
	}
	seaFeed{stream: seaStream, events: 5000, batch: 1000, noOutcomes: true}.run(t, a)
	profiles := a.Profiles()
	if len(profiles) != len(driftFeatures)+1 || profiles[len(profiles)-1].Subject != alert.SubjectPrediction {
		t.Fatalf("got %d profiles, want one per feature and the prediction last", len(profiles))
	}
	// Save and load them, as a model version would carry them.
	for i := range profiles {
		data, err := json.Marshal(&profiles[i])
		if err != nil {
			t.Fatal(err)
		}
		if profiles[i], err = distribution.ParseProfile(data); err != nil {
			t.Fatal(err)
		}
	}
	// A stream shifted from its start: a monitor that carries the profiles
	// sees it in its first round; one that profiles the stream itself takes
	// the shift as normal.
	shifted := seaFeed{stream: streams.Config{Concept: streams.ConceptSEA, Seed: 99}, events: 20_000, batch: 1000, shiftCol: 2, shift: 2, noOutcomes: true}
	b, _ := newTestMonitor(t, func(c *DriftConfig) { c.Profiles = profiles })
	got := shifted.run(t, b)
	if len(got) != 1 || got[0].Subject != "f2" || got[0].State != alert.StateDrift || got[0].event != 4999 {
		t.Errorf("with profiles: got %s (first at event %v), want one f2 drift at event 4999", states(got), got)
	}
	c, _ := newTestMonitor(t, nil)
	if got := shifted.run(t, c); len(got) != 0 {
		t.Errorf("without profiles: got %s, want none", states(got))
	}
}

func TestDriftMonitorSkipsMissingValues(t *testing.T) {
	t.Run("always missing", func(t *testing.T) {
		m, reg := newTestMonitor(t, nil)
		got := seaFeed{stream: seaStream, events: 30_000, batch: 500, missingF3: 1, noOutcomes: true}.run(t, m)
		if len(got) != 0 {
			t.Fatalf("got %s, want none", states(got))
		}
		// f3 is never tested: no statistic, no profile.
		n, err := testutil.GatherAndCount(reg, "driftline_drift_statistic")
		if err != nil {
			t.Fatal(err)
		}
		if n != len(driftFeatures) {
			t.Errorf("%d statistic series, want %d (f0, f1, f2, prediction)", n, len(driftFeatures))
		}
		if ps := m.Profiles(); len(ps) != len(driftFeatures) {
			t.Errorf("%d profiles, want %d", len(ps), len(driftFeatures))
		}
	})
	t.Run("half missing", func(t *testing.T) {
		m, _ := newTestMonitor(t, nil)
		got := seaFeed{stream: seaStream, events: 30_000, batch: 500, missingF3: 2, shiftCol: 3, shiftFrom: 20_000, shift: 4, noOutcomes: true}.run(t, m)
		if len(got) != 1 || got[0].Subject != "f3" {
			t.Fatalf("got %s, want one f3 alert", states(got))
		}
		if got[0].Window != 2500 {
			t.Errorf("f3 window %d, want 2500 (half the rows)", got[0].Window)
		}
	})
}

func TestDriftMonitorOutcomeSkipsNaN(t *testing.T) {
	m, reg := newTestMonitor(t, func(c *DriftConfig) { c.ErrorSignalEvery = 1 })
	if got := m.ObserveOutcome(math.NaN(), 1, time.Now()); got != nil {
		t.Fatalf("NaN score raised %v", got)
	}
	if got := m.ObserveOutcome(0.9, math.NaN(), time.Now()); got != nil {
		t.Fatalf("NaN label raised %v", got)
	}
	if n, _ := testutil.GatherAndCount(reg, "driftline_drift_statistic"); n != 0 {
		t.Errorf("NaN outcomes reached the detector: %d statistic series", n)
	}
	m.ObserveOutcome(0.9, 0, time.Now()) // wrong: ADWIN's mean is 1
	if got := gauge(t, reg, "driftline_drift_statistic", "ADWIN", alert.SubjectError); got != 1 {
		t.Errorf("error statistic %v after one error, want 1", got)
	}
}

func TestDriftMonitorPanicsOnMismatchedBlock(t *testing.T) {
	m, _ := newTestMonitor(t, nil)
	for name, tc := range map[string]struct {
		fb     pipeline.FeatureBlock
		scores []float32
	}{
		"too few columns": {pipeline.FeatureBlock{NumDense: 3, Dense: make([]float32, 3), Row: []int{0}}, []float32{0.5}},
		"no scores":       {pipeline.FeatureBlock{NumDense: 4, Dense: make([]float32, 4), Row: []int{0}}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			m.ObserveBatch(&tc.fb, tc.scores, time.Now())
		})
	}
}

func TestDriftMonitorConcurrentUse(t *testing.T) {
	m, reg := newTestMonitor(t, func(c *DriftConfig) { c.ReferenceSize, c.WindowSize = 2000, 2000 })
	var wg sync.WaitGroup
	alerts := make([][]fedAlert, 4)
	for g := range alerts {
		wg.Go(func() {
			cfg := seaStream
			cfg.Seed = uint64(100 + g)
			alerts[g] = seaFeed{stream: cfg, events: 10_000, batch: 250}.run(t, m)
		})
	}
	wg.Wait()
	for g, as := range alerts {
		if len(as) != 0 {
			t.Errorf("goroutine %d: stationary streams raised %s", g, states(as))
		}
	}
	if p := gauge(t, reg, "driftline_drift_statistic", DetectorKS, "f0"); !(p > 0 && p <= 1) {
		t.Errorf("statistic{f0} = %v: no round ran", p)
	}
}

func TestDriftMetricsLint(t *testing.T) {
	m, reg := newTestMonitor(t, nil)
	// f0 += 1 from event 50,000 is a drift of f0; through the score it is a
	// significant but small shift of the prediction (PSI < 0.1): a warning.
	// The error rate jumps at 60,000; ADWIN's episode resolves by 70,000.
	seaFeed{stream: errorDriftStream, events: 70_000, batch: 500, shiftCol: 0, shiftFrom: 50_000, shift: 1}.run(t, m)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP driftline_drift_alerts_total Drift alerts raised (warning and drift, not resolutions).
# TYPE driftline_drift_alerts_total counter
driftline_drift_alerts_total{detector="ADWIN",severity="critical"} 1
driftline_drift_alerts_total{detector="ADWIN",severity="warning"} 0
driftline_drift_alerts_total{detector="KS",severity="critical"} 1
driftline_drift_alerts_total{detector="KS",severity="warning"} 1
# HELP driftline_drift_state Drift episode state per detector and subject: 0 ok, 1 warning, 2 drift.
# TYPE driftline_drift_state gauge
driftline_drift_state{detector="ADWIN",subject="error"} 0
driftline_drift_state{detector="KS",subject="f0"} 2
driftline_drift_state{detector="KS",subject="f1"} 0
driftline_drift_state{detector="KS",subject="f2"} 0
driftline_drift_state{detector="KS",subject="f3"} 0
driftline_drift_state{detector="KS",subject="prediction"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "driftline_drift_alerts_total", "driftline_drift_state"); err != nil {
		t.Error(err)
	}
	if _, err := NewDriftMetrics(reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

func TestDriftMonitorSteadyStateAllocations(t *testing.T) {
	for _, tc := range []struct {
		correction string
		window     int
		want       float64
	}{
		{CorrectionBH, 1 << 30, 0},     // rows only
		{CorrectionBonferroni, 500, 0}, // a round per call
		{CorrectionBH, 500, 1},         // a round per call: BH's index slice
	} {
		m, _ := newTestMonitor(t, func(c *DriftConfig) {
			c.Correction, c.ReferenceSize, c.WindowSize = tc.correction, 500, tc.window
		})
		fb, scores := benchBlock(500)
		m.ObserveBatch(&fb, scores, time.Now()) // takes the reference
		now := time.Now()
		if got := testing.AllocsPerRun(20, func() { m.ObserveBatch(&fb, scores, now) }); got != tc.want {
			t.Errorf("%s, window %d: %v allocs per 500-row batch, want %v", tc.correction, tc.window, got, tc.want)
		}
	}
	m, _ := newTestMonitor(t, func(c *DriftConfig) { c.ErrorSignalEvery = 1 })
	now := time.Now()
	if got := testing.AllocsPerRun(1000, func() { m.ObserveOutcome(0.7, 1, now) }); got != 0 {
		t.Errorf("ObserveOutcome: %v allocs, want 0", got)
	}
}

// benchBlock is n rows of the four driftFeatures and their scores, from a
// seeded SEA stream.
func benchBlock(n int) (pipeline.FeatureBlock, []float32) {
	gen, err := streams.NewGenerator(seaStream)
	if err != nil {
		panic(err)
	}
	fb := pipeline.FeatureBlock{NumDense: len(driftFeatures)}
	scores := make([]float32, n)
	var e streams.Event
	for j := range n {
		gen.Next(&e)
		fb.Dense = append(fb.Dense, float32(e.F[0]), float32(e.F[1]), float32(e.F[2]), float32(e.F[3]))
		fb.Row = append(fb.Row, j)
		scores[j] = float32(1 / (1 + math.Exp(-4*(8-e.F[0]-e.F[1]))))
	}
	return fb, scores
}

// BenchmarkDriftMonitorObserveBatch measures a 500-row batch of 4 features
// and the score, in the steady state with the default 5,000-row rounds (so
// one call in ten runs a round).
func BenchmarkDriftMonitorObserveBatch(b *testing.B) {
	m, _ := newTestMonitor(b, nil)
	fb, scores := benchBlock(500)
	now := time.Now()
	for range 10 {
		m.ObserveBatch(&fb, scores, now) // takes the reference
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.ObserveBatch(&fb, scores, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fb.Len()), "ns/row")
}

// BenchmarkDriftMonitorObserveOutcome measures one outcome on the default
// ADWIN error detector.
func BenchmarkDriftMonitorObserveOutcome(b *testing.B) {
	m, _ := newTestMonitor(b, nil)
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		m.ObserveOutcome(float64(i%7)/6, float64(i%2), now)
	}
}

// TestDriftMonitorRelatesErrorAndPredictionDrifts checks the model-level
// episode: a prediction drift soon after an error drift (the model adapting
// to the concept drift that raised its errors) is reported as a warning,
// while feature drifts and later, unrelated drifts still alert.
func TestDriftMonitorRelatesErrorAndPredictionDrifts(t *testing.T) {
	m, _ := newTestMonitor(t, nil)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	drift := func(subject string, when time.Time) alert.Alert {
		return alert.Alert{Subject: subject, State: alert.StateDrift, Severity: alert.SeverityCritical, LastSeen: when}
	}
	if a := m.relate(drift(alert.SubjectError, at)); a.State != alert.StateDrift {
		t.Fatalf("the first drift must alert: %+v", a)
	}
	if a := m.relate(drift("f0", at.Add(time.Minute))); a.State != alert.StateDrift {
		t.Fatalf("a feature drift must alert on its own: %+v", a)
	}
	if a := m.relate(drift(alert.SubjectPrediction, at.Add(2*time.Minute))); a.State != alert.StateWarning || a.Severity != alert.SeverityWarning {
		t.Fatalf("a prediction drift within the cool-down of an error drift must be a related warning: %+v", a)
	}
	if a := m.relate(drift(alert.SubjectPrediction, at.Add(m.cfg.Gate.CoolDown+time.Minute))); a.State != alert.StateDrift {
		t.Fatalf("a prediction drift after the cool-down is a new episode: %+v", a)
	}
}

// outcomeFeed feeds a monitor outcomes of a model that is wrong with
// probability p (score 0.9, label 0 when wrong, else 1), 10 ms apart.
type outcomeFeed struct {
	rng *rand.Rand
	at  time.Time
}

func newOutcomeFeed(seed uint64) *outcomeFeed {
	return &outcomeFeed{rng: rand.New(rand.NewPCG(seed, 1)), at: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *outcomeFeed) run(m *DriftMonitor, n int, p float64) []alert.Alert {
	var out []alert.Alert
	for range n {
		label := 1.0
		if f.rng.Float64() < p {
			label = 0
		}
		f.at = f.at.Add(10 * time.Millisecond)
		out = append(out, m.ObserveOutcome(0.9, label, f.at)...)
	}
	return out
}

func alertStates(as []alert.Alert) string {
	var b strings.Builder
	for _, a := range as {
		b.WriteString(a.Detector + "/" + a.Subject + "/" + a.ModelVersion + "/" + string(a.State) + " ")
	}
	return b.String()
}

// TestDriftMonitorSetModelVersion: a new model version restarts the error
// stream, so that its own error rate is a new series: a higher but steady
// error rate than the old model's raises nothing, a later rise of it raises
// one drift alert stamped with the new version, and a series that
// continues unchanged across the swap raises nothing.
func TestDriftMonitorSetModelVersion(t *testing.T) {
	t.Run("new series", func(t *testing.T) {
		m, _ := newTestMonitor(t, nil)
		f := newOutcomeFeed(1)
		if as := f.run(m, 20_000, 0.05); len(as) != 0 {
			t.Fatalf("old model, steady 5%% errors: %s", alertStates(as))
		}
		m.SetModelVersion("sea@2")
		if as := f.run(m, 20_000, 0.30); len(as) != 0 {
			t.Fatalf("new model, steady 30%% errors: %s", alertStates(as))
		}
		as := f.run(m, 10_000, 0.60)
		drifts := 0
		for _, a := range as {
			if a.ModelVersion != "sea@2" || a.Subject != alert.SubjectError {
				t.Fatalf("alerts %s, want error alerts of sea@2 only", alertStates(as))
			}
			if a.State == alert.StateDrift {
				drifts++
			}
		}
		if drifts != 1 {
			t.Fatalf("new model, errors 30%% → 60%%: alerts %s, want one drift", alertStates(as))
		}
	})
	t.Run("unchanged series", func(t *testing.T) {
		m, _ := newTestMonitor(t, nil)
		f := newOutcomeFeed(2)
		as := f.run(m, 20_000, 0.10)
		m.SetModelVersion("sea@2")
		as = append(as, f.run(m, 20_000, 0.10)...)
		if len(as) != 0 {
			t.Fatalf("steady 10%% errors across the swap: %s", alertStates(as))
		}
	})
	t.Run("open episode", func(t *testing.T) {
		m, reg := newTestMonitor(t, nil)
		f := newOutcomeFeed(3)
		f.run(m, 20_000, 0.05)
		as := f.run(m, 3_000, 0.40)
		if len(as) != 1 || as[0].State != alert.StateDrift || as[0].ModelVersion != "sea@1" {
			t.Fatalf("old model, errors 5%% → 40%%: %s, want one drift of sea@1", alertStates(as))
		}
		if got := gauge(t, reg, "driftline_drift_state", as[0].Detector, alert.SubjectError); got != 2 {
			t.Fatalf("state{error} = %v during the episode, want 2", got)
		}
		m.SetModelVersion("sea@2")
		if got := gauge(t, reg, "driftline_drift_state", as[0].Detector, alert.SubjectError); got != 0 {
			t.Errorf("state{error} = %v after the swap, want 0", got)
		}
		if open := m.errGate.Open(); len(open) != 0 {
			t.Errorf("episodes still open after the swap: %+v", open)
		}
		if as := f.run(m, 20_000, 0.40); len(as) != 0 {
			t.Errorf("new model, steady 40%% errors: %s", alertStates(as))
		}
	})
	t.Run("same version, no repeated warm-up", func(t *testing.T) {
		m, _ := newTestMonitor(t, func(c *DriftConfig) { c.WarmUpRows = 100 })
		f := newOutcomeFeed(4)
		f.run(m, 1_100, 0.1)
		m.SetModelVersion("sea@1")
		if m.outcomes != 1_000 {
			t.Fatalf("the same version restarted the error stream: %d outcomes", m.outcomes)
		}
		m.SetModelVersion("sea@2")
		f.run(m, 10, 0.1)
		if m.outcomes != 10 || m.cfg.ModelVersion != "sea@2" {
			t.Fatalf("after the swap: %d outcomes of %s, want 10 of sea@2 (no second warm-up)", m.outcomes, m.cfg.ModelVersion)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		m, _ := newTestMonitor(t, func(c *DriftConfig) { c.ReferenceSize, c.WindowSize = 500, 500 })
		var wg sync.WaitGroup
		wg.Go(func() { seaFeed{stream: seaStream, events: 5_000, batch: 100, noOutcomes: true}.run(t, m) })
		wg.Go(func() { newOutcomeFeed(5).run(m, 20_000, 0.1) })
		wg.Go(func() {
			for i := range 50 {
				m.SetModelVersion("sea@" + strconv.Itoa(i))
				time.Sleep(100 * time.Microsecond)
			}
		})
		wg.Wait()
	})
}

// The snapshot shows the shifted feature first, with both histograms over
// the same bins and a corrected p-value under the level; the unshifted
// features follow with unremarkable ones.
func TestDriftMonitorSnapshotDriftedFirst(t *testing.T) {
	m, _ := newTestMonitor(t, nil)
	if s := m.Snapshot(); len(s.Subjects) != len(driftFeatures)+1 || !s.Subjects[0].Profiling {
		t.Fatalf("before any row: %+v, want every subject profiling", s.Subjects)
	}
	seaFeed{stream: seaStream, events: 50_000, batch: 500, shiftCol: 2, shiftFrom: 40_000, shift: 3, noOutcomes: true}.run(t, m)
	s := m.Snapshot()
	if s.Rounds == 0 || s.Correction != CorrectionBH {
		t.Fatalf("snapshot %+v", s)
	}
	first := s.Subjects[0]
	if first.Subject != "f2" || first.State != "drift" || !first.Drift || !first.Feature {
		t.Fatalf("first subject %+v, want f2 in drift", first)
	}
	if first.CorrectedPValue > s.Alpha || first.CorrectedPValue < first.PValue || first.PSI < s.MinPSI {
		t.Errorf("f2: p %v, corrected %v, PSI %v; want corrected in [p, alpha], PSI >= %v", first.PValue, first.CorrectedPValue, first.PSI, s.MinPSI)
	}
	for _, v := range s.Subjects {
		if len(v.Reference) != len(v.Edges)+1 || len(v.Current) != len(v.Reference) {
			t.Errorf("%s: %d edges, %d reference and %d current bins", v.Subject, len(v.Edges), len(v.Reference), len(v.Current))
		}
		var n uint64
		for _, c := range v.Current {
			n += c
		}
		if n != 5000 {
			t.Errorf("%s: current window holds %d values, want a round of 5000", v.Subject, n)
		}
		if v.Subject == "f0" && (v.Rejected || v.CorrectedPValue < 0.001) {
			t.Errorf("f0: %+v, want no rejection", v)
		}
	}
}
