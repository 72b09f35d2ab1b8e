package stages

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/detectors"
	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// The distribution tests, as alerts and metrics name them: KS for the
// dense features and the prediction score, chi-square for the categorical
// subjects.
const (
	DetectorKS        = "KS"
	DetectorChiSquare = "ChiSquare"
)

// Error detector kinds accepted by DriftConfig.ErrorDetector. KSWIN is not
// offered: its Kolmogorov-Smirnov test on a 0/1 stream alarms on noise.
const (
	ErrorADWIN       = "adwin"
	ErrorDDM         = "ddm"
	ErrorEDDM        = "eddm"
	ErrorHDDMA       = "hddm_a"
	ErrorHDDMW       = "hddm_w"
	ErrorPageHinkley = "page_hinkley"
)

// Multiple-testing corrections accepted by DriftConfig.Correction.
const (
	CorrectionBH         = "bh"
	CorrectionBonferroni = "bonferroni"
)

// ErrInvalidDriftConfig is wrapped by every DriftConfig validation error.
var ErrInvalidDriftConfig = errors.New("invalid drift monitor config")

// CategorySubject is one categorical subject of a DriftMonitor: a
// categorical field (one hashed column) or a free-text field (its word
// slots, pooled). See CategorySubjects for a spec's.
type CategorySubject struct {
	// Name is the subject in alerts and metrics, usually Field.
	Name string
	// Field is the input field whose values the subject holds.
	Field string
	// Columns are the subject's positions in the feature block's hashed
	// columns (FeatureBlock.Hashed); a negative value there is absent.
	Columns []int
}

// DriftConfig configures a DriftMonitor. Start from DefaultDriftConfig and
// set Features (and Categories).
type DriftConfig struct {
	// ModelVersion is copied into every alert; "" when none.
	ModelVersion string
	// Watch names the subjects to test: feature names, category names,
	// "prediction" (the score distribution) and "error" (the error stream),
	// each at most once. nil watches every feature, the prediction and the
	// error stream, which suits a model that does not learn online. A
	// continually learning model's score distribution moves while it
	// learns, so its prediction drift is no sign of a changed stream: watch
	// its inputs (features, categories) and its errors instead.
	Watch []string
	// Features names the dense columns of the feature blocks, in the
	// featurize stage's order: column k is subject Features[k]; columns
	// past len(Features) are not watched. Names must be non-empty, unique,
	// and neither "prediction" nor "error".
	Features []string
	// Categories are the categorical subjects (watched only when named in
	// Watch). A subject's values are hash codes; each row gives the subject
	// one value: a categorical field's code, or one of a text field's
	// present words, drawn uniformly at random (a row's words are not
	// independent draws, which the chi-square test needs; the rows are).
	// Rows without a present value are skipped. Names follow the rules of
	// Features, and are unique across both.
	Categories []CategorySubject
	// CategoryBins is the number of bins a categorical subject's codes are
	// folded into (code mod CategoryBins), in [2, 4096]. Default 64.
	CategoryBins int

	// ErrorDetector is the detector kind on the 0/1 error stream, with
	// River's default parameters. Default "adwin".
	ErrorDetector string
	// ErrorSignalEvery is how many outcomes without a drift or a new warning
	// make one clear signal to the alert gate, so that GateConfig.ResolveAfter
	// counts blocks of outcomes rather than single outcomes. Default 1000.
	ErrorSignalEvery int
	// Threshold is the decision threshold that turns an outcome's score
	// into the class the error stream compares with the label
	// (models.PredictedClass), in (0, 1); 0 takes models.Threshold.
	// Default models.Threshold.
	Threshold float64
	// Classes is the model's number of classes (model.classes): above 2,
	// an outcome's score is its predicted class (models.Decision).
	Classes int
	// WarmUpRows are the rows ObserveBatch ignores before it starts building
	// references, and the outcomes ObserveOutcome ignores, so that a
	// cold-started online model's first, untrained scores and errors are
	// neither the prediction reference nor an error drift. Default 0.
	WarmUpRows int

	// Profiles are reference profiles (a model version's training profiles),
	// one at most per subject (a feature name or "prediction"). A subject
	// without one builds it from its first ReferenceSize finite values (a
	// categorical subject always does, from its first ReferenceSize values).
	Profiles []distribution.Profile
	// ReferenceSize is the size of a reference sample taken from the stream.
	// Default 5000.
	ReferenceSize int
	// Bins is the number of quantile bins of a reference profile built from
	// the stream. Default 10.
	Bins int
	// WindowSize is the number of rows in one evaluation round: every
	// WindowSize rows, each subject's current window is compared with its
	// reference, and emptied. Default 5000.
	WindowSize int
	// Alpha is the level of the KS tests after correction across the
	// subjects of a round (false discovery rate for "bh", family-wise error
	// rate for "bonferroni"). Default 0.001.
	Alpha float64
	// Correction is "bh" (Benjamini-Hochberg, default) or "bonferroni".
	Correction string
	// MinPSI is the effect-size floor: a significant shift is a drift only
	// when its PSI is at least MinPSI, and a warning otherwise. 0 makes
	// every significant shift a drift. Default 0.1.
	MinPSI float64

	// Gate holds the alert hygiene rules. Default alert.DefaultGateConfig().
	Gate alert.GateConfig
	// Metrics, when set, receives the statistics, states and alert counts.
	Metrics *DriftMetrics
}

// DefaultDriftConfig returns the defaults stated on DriftConfig, with no
// features.
func DefaultDriftConfig() DriftConfig {
	return DriftConfig{
		CategoryBins:     64,
		ErrorDetector:    ErrorADWIN,
		ErrorSignalEvery: 1000,
		Threshold:        models.Threshold,
		ReferenceSize:    5000,
		Bins:             10,
		WindowSize:       5000,
		Alpha:            0.001,
		Correction:       CorrectionBH,
		MinPSI:           0.1,
		Gate:             alert.DefaultGateConfig(),
	}
}

// Validate reports the first invalid setting, wrapping ErrInvalidDriftConfig.
func (c DriftConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("drift monitor: %s: %w", fmt.Sprintf(format, args...), ErrInvalidDriftConfig)
	}
	subjects := make(map[string]bool, len(c.Features)+len(c.Categories)+2)
	name := func(kind, f string) error {
		switch {
		case f == "":
			return bad("empty %s name", kind)
		case f == alert.SubjectPrediction || f == alert.SubjectError:
			return bad("%s name %q is reserved", kind, f)
		case subjects[f]:
			return bad("duplicate subject %q", f)
		}
		subjects[f] = true
		return nil
	}
	for _, f := range c.Features {
		if err := name("feature", f); err != nil {
			return err
		}
	}
	columns := map[int]string{}
	for _, cs := range c.Categories {
		if err := name("category", cs.Name); err != nil {
			return err
		}
		if len(cs.Columns) == 0 {
			return bad("category %q has no hashed columns", cs.Name)
		}
		for _, col := range cs.Columns {
			if other, ok := columns[col]; ok || col < 0 {
				return bad("category %q: hashed column %d is negative or also %q's", cs.Name, col, other)
			}
			columns[col] = cs.Name
		}
	}
	if c.CategoryBins < 2 || c.CategoryBins > 4096 {
		return bad("category bins %d not in [2, 4096]", c.CategoryBins)
	}
	subjects[alert.SubjectPrediction], subjects[alert.SubjectError] = true, true
	if c.Watch != nil && len(c.Watch) == 0 {
		return bad("watch nothing")
	}
	for i, w := range c.Watch {
		if !subjects[w] || slices.Contains(c.Watch[:i], w) {
			return bad("watch %q: not a feature, category, %q or %q, or listed twice", w, alert.SubjectPrediction, alert.SubjectError)
		}
	}
	if _, err := newErrorDetector(c.ErrorDetector); err != nil {
		return bad("%v", err)
	}
	switch {
	case c.ErrorSignalEvery < 1:
		return bad("error signal every %d < 1", c.ErrorSignalEvery)
	case c.ReferenceSize < 1:
		return bad("reference size %d < 1", c.ReferenceSize)
	case c.Bins < 2:
		return bad("bins %d < 2", c.Bins)
	case c.WindowSize < 1:
		return bad("window size %d < 1", c.WindowSize)
	case !(c.Alpha > 0 && c.Alpha < 1):
		return bad("alpha %v not in (0, 1)", c.Alpha)
	case c.Correction != CorrectionBH && c.Correction != CorrectionBonferroni:
		return bad("unknown correction %q", c.Correction)
	case !(c.MinPSI >= 0) || math.IsInf(c.MinPSI, 1):
		return bad("min PSI %v not finite and >= 0", c.MinPSI)
	case !(c.Threshold >= 0 && c.Threshold < 1):
		return bad("threshold %v not in (0, 1)", c.Threshold)
	}
	if err := c.Gate.Validate(); err != nil {
		return fmt.Errorf("drift monitor: %w", err)
	}
	seen := make(map[string]bool, len(c.Profiles))
	for i := range c.Profiles {
		p := &c.Profiles[i]
		if !slices.Contains(c.Features, p.Subject) && p.Subject != alert.SubjectPrediction {
			return bad("profile for %q, which is neither a feature nor the prediction", p.Subject)
		}
		if seen[p.Subject] {
			return bad("two profiles for subject %q", p.Subject)
		}
		seen[p.Subject] = true
		if err := p.Validate(); err != nil {
			return fmt.Errorf("drift monitor: profile %q: %w", p.Subject, err)
		}
	}
	return nil
}

func newErrorDetector(kind string) (detectors.Detector, error) {
	switch kind {
	case ErrorADWIN:
		return detectors.NewADWIN(detectors.DefaultADWINConfig())
	case ErrorDDM:
		return detectors.NewDDM(detectors.DefaultDDMConfig())
	case ErrorEDDM:
		return detectors.NewEDDM(detectors.DefaultEDDMConfig())
	case ErrorHDDMA:
		return detectors.NewHDDMA(detectors.DefaultHDDMAConfig())
	case ErrorHDDMW:
		return detectors.NewHDDMW(detectors.DefaultHDDMWConfig())
	case ErrorPageHinkley:
		return detectors.NewPageHinkley(detectors.DefaultPageHinkleyConfig())
	}
	return nil, fmt.Errorf("unknown error detector %q", kind)
}

// DriftMetrics are the drift monitor's Prometheus series:
//
//   - driftline_drift_statistic{detector,subject}: the statistic of the last
//     signal (the test's p-value for distribution subjects: KS for features
//     and the prediction, chi-square for categorical subjects; the
//     detector's Statistic for "error"); absent until the subject's first
//     signal;
//   - driftline_drift_state{detector,subject}: the alert episode's state,
//     0 ok (none open), 1 warning, 2 drift;
//   - driftline_drift_alerts_total{detector,severity}: warning and drift
//     alerts raised (resolutions are not counted).
//
// Subjects are bounded: the configured feature and category names,
// "prediction" and "error". The series carry no model version, so give each DriftMetrics to
// one DriftMonitor (or to monitors with distinct feature names).
type DriftMetrics struct {
	statistic *prometheus.GaugeVec
	state     *prometheus.GaugeVec
	alerts    *prometheus.CounterVec
}

// NewDriftMetrics creates the metrics and registers them on reg.
func NewDriftMetrics(reg prometheus.Registerer) (*DriftMetrics, error) {
	m := &DriftMetrics{
		statistic: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_drift_statistic",
			Help: "Statistic of a drift detector's last signal: the test's p-value for distribution subjects (KS for features and prediction, chi-square for categorical subjects), detector statistic for error.",
		}, []string{"detector", "subject"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_drift_state",
			Help: "Drift episode state per detector and subject: 0 ok, 1 warning, 2 drift.",
		}, []string{"detector", "subject"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_drift_alerts_total",
			Help: "Drift alerts raised (warning and drift, not resolutions).",
		}, []string{"detector", "severity"}),
	}
	for _, c := range []prometheus.Collector{m.statistic, m.state, m.alerts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("drift metrics: %w", err)
		}
	}
	return m, nil
}

// series holds one (detector, subject)'s gauges; all nil without metrics.
type series struct {
	detector, subject string
	statistic         prometheus.Gauge
	state             prometheus.Gauge
	// episode is the state of the subject's alert episode: "" (none
	// open), warning or drift.
	episode alert.State
}

func (s *series) init(m *DriftMetrics, detector, subject string) {
	s.detector, s.subject = detector, subject
	if m != nil {
		s.state = m.state.WithLabelValues(detector, subject)
		s.state.Set(0)
		// The alert counters start at 0, so that increase() counts the
		// first alert (alert rules watch the counter: an episode can end
		// between two scrapes of the state gauge).
		m.alerts.WithLabelValues(detector, string(alert.SeverityWarning))
		m.alerts.WithLabelValues(detector, string(alert.SeverityCritical))
	}
}

// setStatistic sets the statistic gauge, creating the series on first use.
func (s *series) setStatistic(m *DriftMetrics, x float64) {
	if m == nil {
		return
	}
	if s.statistic == nil {
		s.statistic = m.statistic.WithLabelValues(s.detector, s.subject)
	}
	s.statistic.Set(x)
}

// record updates the state gauge and alert counter for an alert raised.
func (s *series) record(m *DriftMetrics, a alert.Alert) {
	s.episode = a.State
	if a.State == alert.StateResolved {
		s.episode = ""
	}
	if m == nil {
		return
	}
	switch a.State {
	case alert.StateWarning:
		s.state.Set(1)
	case alert.StateDrift:
		s.state.Set(2)
	case alert.StateResolved:
		s.state.Set(0)
		return
	}
	m.alerts.WithLabelValues(a.Detector, string(a.Severity)).Inc()
}

// distSubject is one watched distribution: a feature column or the score
// (dense: a quantile-binned profile, KS), or a categorical subject (cat
// set: hash codes folded into bins, chi-square; drift_categories.go).
type distSubject struct {
	series
	column  int       // a feature's dense column
	ref     []float64 // reference sample being taken; nil once profiled
	profile distribution.Profile
	window  *distribution.Window // nil until profiled
	cat     *categorySubject     // nil for a dense subject
	last    driftRound           // the last round's test (drift_snapshot.go)
}

// profiled reports whether the subject has its reference.
func (s *distSubject) profiled() bool {
	if s.cat != nil {
		return s.cat.window != nil
	}
	return s.window != nil
}

// total is the number of values in the current window.
func (s *distSubject) total() uint64 {
	if s.cat != nil {
		return s.cat.window.Total()
	}
	return s.window.Total()
}

// compare tests the current window against the reference, returning the
// comparison and its p-value (KS, or chi-square for a categorical subject).
func (s *distSubject) compare() (distribution.Result, float64) {
	if s.cat != nil {
		r := distribution.CompareCategories(s.cat.window)
		return r, r.ChiSquarePValue
	}
	r := distribution.Compare(s.window)
	return r, r.KSPValue
}

// counts copies the current window's counts per bin into dst.
func (s *distSubject) counts(dst []uint64) []uint64 {
	if s.cat != nil {
		return s.cat.window.Counts(dst)
	}
	return s.window.Counts(dst)
}

func (s *distSubject) reset() {
	if s.cat != nil {
		s.cat.window.Reset()
		return
	}
	s.window.Reset()
}

// observe counts one value, skipping NaN and ±Inf (missing values).
func (s *distSubject) observe(x float64, refSize, bins int) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	if s.window != nil {
		s.window.Observe(x)
		return
	}
	s.ref = append(s.ref, x)
	if len(s.ref) < refSize {
		return
	}
	p, err := distribution.NewProfile(s.subject, s.ref, bins)
	if err != nil {
		// Unreachable: bins >= 2 was validated and every value is finite.
		panic(fmt.Sprintf("drift monitor: %v", err))
	}
	s.setProfile(p)
}

func (s *distSubject) setProfile(p distribution.Profile) {
	s.profile, s.ref = p, nil
	s.window = distribution.NewWindow(&s.profile)
}

func cloneProfile(p *distribution.Profile) distribution.Profile {
	c := *p
	c.Edges = slices.Clone(p.Edges)
	c.Counts = slices.Clone(p.Counts)
	c.Sums = slices.Clone(p.Sums)
	return c
}

// DriftMonitor watches a model's inputs, predictions and errors and turns
// drift into alerts. DriftConfig.Watch chooses which.
//
// Distribution drift: each watched feature column, categorical subject and
// the prediction score feed a per-subject window. A dense subject's
// reference profile is given in DriftConfig.Profiles or built from its
// first ReferenceSize finite values; a categorical subject's from its first
// ReferenceSize values. Every WindowSize rows (a round), each profiled
// subject with a non-empty window is compared with its reference: a dense
// one by a two-sample Kolmogorov-Smirnov test on the reference's quantile
// bins (distribution.Compare; conservative), a categorical one by the
// chi-square test of homogeneity over its CategoryBins bins
// (distribution.CompareCategories). The round's p-values, of both tests,
// are corrected across subjects (Benjamini-Hochberg or Bonferroni at
// Alpha); a rejected subject signals a drift when its PSI is at least
// MinPSI, else a warning. The signal's Statistic is the test's p-value, its
// Threshold the corrected cut-off (rejected ⇔ p-value <= Threshold), and
// its Window the number of current values. Then the windows are emptied.
//
// Error drift: each outcome feeds 1 (wrong) or 0 (right) to the error
// detector, whose drift and warning become signals for subject "error". The
// signal's Window is the number of outcomes seen by the monitor; its
// Threshold is 0, as the detectors compare with no single scalar.
//
// All signals pass through one alert.Gate per stream (MinSamples,
// hysteresis, cool-down, one drift alert per episode); the alerts it lets
// through are returned for the caller to publish.
//
// SetModelVersion points the monitor at a new model version (a champion
// swap): later alerts carry it, and the error stream restarts.
//
// A DriftMonitor is safe for concurrent use: batches and outcomes are
// serialized by two mutexes, one per stream; SetModelVersion takes both
// (distMu, then errMu; no other path holds both). In the steady state
// (every subject profiled) ObserveBatch does not allocate per row; a round
// allocates Benjamini-Hochberg's index slice, and an alert its slice.
type DriftMonitor struct {
	// cfg.ModelVersion is written under both distMu and errMu
	// (SetModelVersion), so either one is enough to read it.
	cfg DriftConfig

	distMu    sync.Mutex
	subjects  []distSubject // features, then categories, then the prediction
	nf, nc    int           // watched features and categories
	maxHashed int           // the categories' highest hashed column, -1 when none
	pred      *distSubject  // the prediction, nil when unwatched
	watchErr  bool          // the error stream is watched
	sampler   *rand.Rand    // draws a text subject's word of a row
	rows      int           // rows of the current round
	tested    []int         // subject indices of a round's tests
	pValues   []float64
	psi       []float64
	reject    []bool
	results   []distribution.Result // the round's comparisons, by test
	adjusted  []float64             // the round's corrected p-values, by test
	order     []int                 // scratch for adjust
	rounds    int                   // rounds evaluated
	distGate  *alert.Gate

	errMu     sync.Mutex
	errDet    detectors.Detector
	errSeries series
	outcomes  uint64
	since     int // outcomes since the last error signal
	// errLong and errShort are slow and fast moving averages of the error
	// stream; a detector drift counts only when errShort > errLong.
	errLong, errShort float64
	warmedUp          int  // rows ignored so far, up to WarmUpRows
	outcomesSkipped   int  // outcomes ignored so far, up to WarmUpRows
	warning           bool // the error detector's warning at the last outcome
	errGate           *alert.Gate

	// The model's own drift episode: a concept drift shows on both of the
	// model's own subjects, "error" (its errors rise) and "prediction" (its
	// scores shift as it adapts). The first of the two to drift opens the
	// episode; a drift of the other within Gate.CoolDown is related and
	// reported as a warning, so one concept drift gives one drift alert.
	// Feature drifts are causes, not symptoms, and always alert on their own.
	episodeMu      sync.Mutex
	episodeSubject string
	episodeOpened  time.Time

	// seen counts the rows ObserveBatch took, warm-up included (under
	// distMu); seenAtomic is seen after the last batch, for the error
	// stream's alerts.
	seen       uint64
	seenAtomic atomic.Uint64
	raisedMu   sync.Mutex
	raised     []distribution.RaisedAlert // the newest maxRaised alerts
}

// maxRaised bounds the alerts a monitor keeps for Snapshot.
const maxRaised = 256

// keep records an alert raised after rows rows.
func (m *DriftMonitor) keep(a alert.Alert, rows uint64) {
	m.raisedMu.Lock()
	defer m.raisedMu.Unlock()
	if len(m.raised) == maxRaised {
		m.raised = append(m.raised[:0], m.raised[1:]...)
	}
	m.raised = append(m.raised, distribution.RaisedAlert{Alert: a, Rows: rows})
}

// relate applies the model-level episode rule to an alert the gate let
// through.
func (m *DriftMonitor) relate(a alert.Alert) alert.Alert {
	if a.State != alert.StateDrift || (a.Subject != alert.SubjectError && a.Subject != alert.SubjectPrediction) {
		return a
	}
	m.episodeMu.Lock()
	defer m.episodeMu.Unlock()
	if m.episodeSubject != "" && m.episodeSubject != a.Subject && a.LastSeen.Sub(m.episodeOpened) < m.cfg.Gate.CoolDown {
		a.State, a.Severity = alert.StateWarning, alert.SeverityWarning
		return a
	}
	m.episodeSubject, m.episodeOpened = a.Subject, a.LastSeen
	return a
}

// NewDriftMonitor validates cfg and returns a monitor.
func NewDriftMonitor(cfg DriftConfig) (*DriftMonitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Features = append([]string(nil), cfg.Features...)
	if cfg.Threshold == 0 {
		cfg.Threshold = models.Threshold
	}
	given := cfg.Profiles
	cfg.Profiles = nil // copied into the subjects below
	m := &DriftMonitor{cfg: cfg}
	var err error
	if m.distGate, err = alert.NewGate(cfg.Gate); err != nil {
		return nil, fmt.Errorf("drift monitor: %w", err)
	}
	if m.errGate, err = alert.NewGate(cfg.Gate); err != nil {
		return nil, fmt.Errorf("drift monitor: %w", err)
	}
	if m.errDet, err = newErrorDetector(cfg.ErrorDetector); err != nil {
		return nil, fmt.Errorf("drift monitor: %w", err)
	}
	watched := func(name string) bool { return cfg.Watch == nil || slices.Contains(cfg.Watch, name) }
	if m.watchErr = watched(alert.SubjectError); m.watchErr {
		m.errSeries.init(cfg.Metrics, m.errDet.Name(), alert.SubjectError)
	}

	// Subjects: the watched features, then the watched categories, then
	// the prediction.
	m.maxHashed = maxColumn(cfg.Categories)
	for k, name := range cfg.Features {
		if watched(name) {
			m.subjects = append(m.subjects, distSubject{column: k})
			m.subjects[len(m.subjects)-1].init(cfg.Metrics, DetectorKS, name)
		}
	}
	m.nf = len(m.subjects)
	for _, cs := range cfg.Categories {
		if cfg.Watch == nil || !slices.Contains(cfg.Watch, cs.Name) {
			continue
		}
		s := distSubject{}
		s.init(cfg.Metrics, DetectorChiSquare, cs.Name)
		if s.cat, err = newCategorySubject(cs, cfg.CategoryBins); err != nil {
			return nil, fmt.Errorf("drift monitor: %w", err)
		}
		m.subjects = append(m.subjects, s)
	}
	m.nc = len(m.subjects) - m.nf
	if watched(alert.SubjectPrediction) {
		m.subjects = append(m.subjects, distSubject{})
		m.pred = &m.subjects[len(m.subjects)-1]
		m.pred.init(cfg.Metrics, DetectorKS, alert.SubjectPrediction)
	}
	for i := range m.subjects {
		s := &m.subjects[i]
		if s.cat != nil {
			continue
		}
		if j := slices.IndexFunc(given, func(p distribution.Profile) bool { return p.Subject == s.subject }); j >= 0 {
			s.setProfile(cloneProfile(&given[j]))
		} else {
			s.ref = make([]float64, 0, cfg.ReferenceSize)
		}
	}
	n := len(m.subjects)
	m.tested = make([]int, 0, n)
	m.pValues = make([]float64, 0, n)
	m.psi = make([]float64, 0, n)
	m.reject = make([]bool, n)
	m.sampler = rand.New(rand.NewPCG(0x6472696674, 0x776f726473))
	return m, nil
}

// Profiles returns copies of the reference profiles in use of the watched
// dense subjects, features first and then the prediction, leaving out
// subjects still taking their reference sample (and the categorical
// subjects, whose references are always taken from the stream). Saved with
// a model version, they can be given back in DriftConfig.Profiles.
func (m *DriftMonitor) Profiles() []distribution.Profile {
	m.distMu.Lock()
	defer m.distMu.Unlock()
	var out []distribution.Profile
	for i := range m.subjects {
		s := &m.subjects[i]
		if s.cat != nil || s.window == nil {
			continue
		}
		out = append(out, cloneProfile(&s.profile))
	}
	return out
}

// SetModelVersion makes v the model version of later alerts. When v
// differs from the current version, the error stream restarts for the new
// model, whose error rate is a new series: the error detector, the rise
// and fall moving averages and the outcome count (an alert's Window, so
// GateConfig.MinSamples outcomes of the new model pass before it can
// alert) start afresh, and the error gate drops its episodes, an open one
// included (no "resolved" is published for it; the error state gauge goes
// back to 0). The warm-up (WarmUpRows) is not repeated. The distribution
// subjects keep their references and windows (the prediction's reference
// is still the old model's scores), and the model-level episode that
// relates error and prediction drifts is kept; later signals carry v.
// It is safe for concurrent use with ObserveBatch and ObserveOutcome.
func (m *DriftMonitor) SetModelVersion(v string) {
	m.distMu.Lock()
	defer m.distMu.Unlock()
	m.errMu.Lock()
	defer m.errMu.Unlock()
	if v == m.cfg.ModelVersion {
		return
	}
	m.cfg.ModelVersion = v
	gate, err := alert.NewGate(m.cfg.Gate)
	if err != nil {
		// Unreachable: NewDriftMonitor built a gate from the same config.
		panic(fmt.Sprintf("drift monitor: %v", err))
	}
	m.errGate = gate
	m.errDet.Reset()
	m.outcomes, m.since = 0, 0
	m.errLong, m.errShort = 0, 0
	m.warning = false
	if m.errSeries.state != nil {
		m.errSeries.state.Set(0)
	}
}

// ObserveBatch feeds the watched subjects of fb and the scores (scores[j]
// is feature row j's prediction) into the distribution windows: the first
// len(Features) dense columns, where NaN and ±Inf values are missing and
// skipped, and the categorical subjects' hashed columns, where negative
// codes are absent. When a round completes it tests every subject and
// returns the alerts to publish, in subject order; usually it returns nil.
// It panics when fb has fewer dense columns than Features, too few hashed
// columns for Categories, or len(scores) != fb.Len(), which are wiring
// errors.
func (m *DriftMonitor) ObserveBatch(fb *pipeline.FeatureBlock, scores []float32, now time.Time) []alert.Alert {
	nf, nc := m.nf, m.nc
	if fb.NumDense < len(m.cfg.Features) || fb.NumHashed <= m.maxHashed || len(scores) != fb.Len() {
		panic(fmt.Sprintf("drift monitor: block with %d dense and %d hashed columns and %d scores for %d rows, want >= %d dense and > %d hashed columns and one score per row",
			fb.NumDense, fb.NumHashed, len(scores), fb.Len(), len(m.cfg.Features), m.maxHashed))
	}
	m.distMu.Lock()
	defer m.distMu.Unlock()
	defer func() { m.seenAtomic.Store(m.seen) }()
	if m.warmedUp < m.cfg.WarmUpRows {
		skip := min(m.cfg.WarmUpRows-m.warmedUp, len(scores))
		m.warmedUp += skip
		m.seen += uint64(skip)
		if skip == len(scores) {
			return nil
		}
		sub := *fb
		sub.Dense = fb.Dense[skip*fb.NumDense:]
		sub.Hashed = fb.Hashed[skip*fb.NumHashed:]
		sub.Row = fb.Row[skip:]
		fb, scores = &sub, scores[skip:]
	}
	refSize, bins := m.cfg.ReferenceSize, m.cfg.Bins
	var out []alert.Alert
	for j, score := range scores {
		row := fb.Dense[j*fb.NumDense : (j+1)*fb.NumDense]
		for k := range nf {
			s := &m.subjects[k]
			s.observe(float64(row[s.column]), refSize, bins)
		}
		if nc > 0 {
			codes := fb.Hashed[j*fb.NumHashed : (j+1)*fb.NumHashed]
			for k := nf; k < nf+nc; k++ {
				m.subjects[k].cat.observe(codes, refSize, m.sampler)
			}
		}
		if m.pred != nil {
			m.pred.observe(float64(score), refSize, bins)
		}
		m.seen++
		m.rows++
		if m.rows == m.cfg.WindowSize {
			out = m.evaluate(out, now)
			m.rows = 0
		}
	}
	return out
}

// evaluate runs one round's tests, appends the gate's alerts to out, and
// empties the windows. distMu is held.
func (m *DriftMonitor) evaluate(out []alert.Alert, now time.Time) []alert.Alert {
	m.tested, m.pValues, m.psi, m.results = m.tested[:0], m.pValues[:0], m.psi[:0], m.results[:0]
	for i := range m.subjects {
		s := &m.subjects[i]
		if !s.profiled() || s.total() == 0 {
			continue
		}
		r, p := s.compare()
		m.results = append(m.results, r)
		m.tested = append(m.tested, i)
		m.pValues = append(m.pValues, p)
		m.psi = append(m.psi, r.PSI)
	}
	if len(m.tested) == 0 {
		return out
	}
	cut := m.cutoff()
	m.adjust()
	m.rounds++
	for t, i := range m.tested {
		s := &m.subjects[i]
		p := m.pValues[t]
		rejected := m.reject[t]
		drift := rejected && m.psi[t] >= m.cfg.MinPSI
		s.setStatistic(m.cfg.Metrics, p)
		a, ok := m.distGate.Observe(alert.Signal{
			Detector: s.detector, Subject: s.subject, ModelVersion: m.cfg.ModelVersion,
			Statistic: p, Threshold: cut, Window: s.total(),
			Drift: drift, Warning: rejected && !drift, At: now,
		})
		s.remember(m.results[t], m.adjusted[t], cut, rejected, drift, now)
		s.reset()
		if ok {
			a = m.relate(a)
			s.record(m.cfg.Metrics, a)
			m.keep(a, m.seen)
			out = append(out, a)
		}
	}
	return out
}

// cutoff applies the correction to m.pValues, setting m.reject, and returns
// the p-value cut-off: hypothesis t is rejected exactly when its p-value is
// at most the cut-off. For Benjamini-Hochberg with k rejections out of m it
// is max(k,1)·Alpha/m: the rejected p-values are those <= k·Alpha/m, and
// with none rejected every p-value exceeds Alpha/m.
func (m *DriftMonitor) cutoff() float64 {
	n := float64(len(m.pValues))
	if m.cfg.Correction == CorrectionBonferroni {
		m.reject = distribution.Bonferroni(m.reject, m.pValues, m.cfg.Alpha)
		return m.cfg.Alpha / n
	}
	m.reject = distribution.BenjaminiHochberg(m.reject, m.pValues, m.cfg.Alpha)
	k := 0
	for _, r := range m.reject {
		if r {
			k++
		}
	}
	return float64(max(k, 1)) * m.cfg.Alpha / n
}

// Spans (in outcomes) of the moving averages that tell whether an error
// drift is a rise or a fall of the error rate.
const (
	errLongSpan  = 2000
	errShortSpan = 200
)

// ObserveOutcome feeds one labelled prediction to the error detector: the
// error is 1 when the predicted class (models.PredictedClass at
// DriftConfig.Threshold) is not the label, else 0. An outcome with a
// NaN score or label is skipped, and every outcome when the error stream
// is not watched. It signals the gate on a drift, when a warning starts,
// and otherwise every ErrorSignalEvery outcomes, and returns the alerts to
// publish (usually nil).
func (m *DriftMonitor) ObserveOutcome(score, label float64, now time.Time) []alert.Alert {
	if !m.watchErr || math.IsNaN(score) || math.IsNaN(label) {
		return nil
	}
	e := 0.0
	if float64(models.Decision{Threshold: m.cfg.Threshold, Classes: m.cfg.Classes}.Class(score)) != label {
		e = 1
	}
	m.errMu.Lock()
	defer m.errMu.Unlock()
	if m.outcomesSkipped < m.cfg.WarmUpRows {
		m.outcomesSkipped++
		return nil
	}
	m.errDet.Update(e)
	m.outcomes++
	m.since++
	// Until an average has seen its span, it is the plain mean of the
	// outcomes so far: an average started at the first outcome (0 or 1)
	// would take thousands of outcomes to forget it, and a still-learning
	// model's falling error rate would look like a rise.
	n := float64(m.outcomes)
	m.errLong += (e - m.errLong) / min(n, errLongSpan)
	m.errShort += (e - m.errShort) / min(n, errShortSpan)
	drift, warning := m.errDet.DriftDetected(), m.errDet.WarningDetected()
	if drift && m.errShort <= m.errLong {
		// The error rate fell: the model got better (e.g. it is still
		// learning after a cold start). That is no drift to alert on.
		drift = false
	}
	stat := m.errDet.Statistic()
	m.errSeries.setStatistic(m.cfg.Metrics, stat)
	newWarning := warning && !m.warning
	m.warning = warning
	if !drift && !newWarning && m.since < m.cfg.ErrorSignalEvery {
		return nil
	}
	m.since = 0
	a, ok := m.errGate.Observe(alert.Signal{
		Detector: m.errDet.Name(), Subject: alert.SubjectError, ModelVersion: m.cfg.ModelVersion,
		Statistic: stat, Window: m.outcomes,
		Drift: drift, Warning: warning, At: now,
	})
	if !ok {
		return nil
	}
	a = m.relate(a)
	m.errSeries.record(m.cfg.Metrics, a)
	m.keep(a, m.seenAtomic.Load())
	return []alert.Alert{a}
}
