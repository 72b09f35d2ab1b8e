package stages

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/pipeline"
)

// catFeed drives a monitor with seeded categorical rows: hashed column 0
// is a categorical field "channel" (3 values, uniform), columns 1..4 a
// text field "message" (2 to 4 words of a 40-word vocabulary, the rest
// absent). From row shiftFrom on (when shiftFrom >= 0) the messages draw
// 70% of their words from the vocabulary's first 5 words; before, they
// draw uniformly. The dense column is a uniform noise feature "f0".
type catFeed struct {
	seed      uint64
	rows      int
	batch     int
	shiftFrom int // -1: never
}

var catSubjects = []CategorySubject{
	{Name: "channel", Field: "channel", Columns: []int{0}},
	{Name: "message", Field: "message", Columns: []int{1, 2, 3, 4}},
}

func (f catFeed) block(r *rand.Rand, fb *pipeline.FeatureBlock, scores []float32, from int) []float32 {
	fb.NumDense, fb.NumHashed = 1, 5
	fb.Dense, fb.Hashed, fb.Row, scores = fb.Dense[:0], fb.Hashed[:0], fb.Row[:0], scores[:0]
	for j := range f.batch {
		fb.Dense = append(fb.Dense, r.Float32())
		fb.Hashed = append(fb.Hashed, int32(1000+r.IntN(3)))
		words := 2 + r.IntN(3)
		for k := range 4 {
			code := int32(-1)
			if k < words {
				code = int32(5000 + 7*r.IntN(40))
				if f.shiftFrom >= 0 && from+j >= f.shiftFrom && r.Float64() < 0.7 {
					code = int32(5000 + 7*r.IntN(5))
				}
			}
			fb.Hashed = append(fb.Hashed, code)
		}
		fb.Row = append(fb.Row, j)
		scores = append(scores, r.Float32())
	}
	return scores
}

// run feeds the rows and returns each alert with the rows fed when it was
// raised.
func (f catFeed) run(t testing.TB, m *DriftMonitor) []fedAlert {
	t.Helper()
	r := rand.New(rand.NewPCG(f.seed, 0x636174))
	var fb pipeline.FeatureBlock
	scores := make([]float32, 0, f.batch)
	var out []fedAlert
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < f.rows; i += f.batch {
		scores = f.block(r, &fb, scores, i)
		for _, a := range m.ObserveBatch(&fb, scores, now) {
			out = append(out, fedAlert{a, i + f.batch})
		}
		now = now.Add(time.Second)
	}
	return out
}

func newCategoryMonitor(t testing.TB, watch ...string) *DriftMonitor {
	t.Helper()
	m, _ := newTestMonitor(t, func(c *DriftConfig) {
		c.Features = []string{"f0"}
		c.Categories = catSubjects
		c.Watch = watch
		c.ReferenceSize, c.WindowSize = 4000, 4000
	})
	return m
}

// A shift of a text field's word mix raises one chi-square drift alert on
// that field, in the first round after the shift; the categorical field
// and the feature, which do not move, raise none; the same stream without
// the shift raises nothing.
func TestDriftMonitorWordShiftRaisesOneCategoryAlert(t *testing.T) {
	const shiftFrom = 20_000
	m := newCategoryMonitor(t, "f0", "channel", "message")
	got := catFeed{seed: 3, rows: 40_000, batch: 500, shiftFrom: shiftFrom}.run(t, m)
	var drifts []fedAlert
	for _, a := range got {
		if a.State == alert.StateDrift {
			drifts = append(drifts, a)
		}
	}
	if len(drifts) != 1 {
		t.Fatalf("drift alerts: %s; want one", states(got))
	}
	a := drifts[0]
	if a.Detector != DetectorChiSquare || a.Subject != "message" || a.event <= shiftFrom || a.event > shiftFrom+2*4000 {
		t.Errorf("drift alert %s on %q after %d rows; want %s on message within two rounds after row %d", a.Detector, a.Subject, a.event, DetectorChiSquare, shiftFrom)
	}
	snap := m.Snapshot()
	if len(snap.Raised) != len(got) || snap.Rows != 40_000 {
		t.Fatalf("snapshot: %d raised after %d rows; want %d after 40000", len(snap.Raised), snap.Rows, len(got))
	}
	for i, r := range snap.Raised {
		if r.Alert != got[i].Alert || r.Rows != uint64(got[i].event) {
			t.Errorf("raised[%d] = %s on %q after %d rows; want %s on %q after %d", i, r.Detector, r.Subject, r.Rows, got[i].Detector, got[i].Subject, got[i].event)
		}
	}
	var message, channel bool
	for _, s := range snap.Subjects {
		switch s.Subject {
		case "message":
			message = s.Categorical && s.Detector == DetectorChiSquare && s.State == "drift" && len(s.Edges) == 0 && len(s.Reference) == 64
		case "channel":
			channel = s.Categorical && s.State == "ok" && !s.Rejected
		}
	}
	if !message || !channel {
		t.Errorf("snapshot subjects %+v: want message in drift and channel ok, both categorical over 64 bins", snap.Subjects)
	}

	control := newCategoryMonitor(t, "f0", "channel", "message")
	if got := (catFeed{seed: 3, rows: 40_000, batch: 500, shiftFrom: -1}).run(t, control); len(got) != 0 {
		t.Errorf("without the shift: %s; want no alert", states(got))
	}
}

// Watch chooses the subjects: nil is the features, the prediction and the
// error stream (no category); a list is exactly its names.
func TestDriftMonitorWatchChoosesSubjects(t *testing.T) {
	subjects := func(m *DriftMonitor) []string {
		var out []string
		for _, s := range m.Snapshot().Subjects {
			out = append(out, s.Subject)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		watch     []string
		want      []string
		watchErrs bool
	}{
		{nil, []string{"f0", alert.SubjectPrediction}, true},
		{[]string{"message", alert.SubjectError}, []string{"message"}, true},
		{[]string{"channel", "f0"}, []string{"channel", "f0"}, false},
		{[]string{alert.SubjectPrediction}, []string{alert.SubjectPrediction}, false},
	} {
		m := newCategoryMonitor(t, tc.watch...)
		if tc.watch == nil {
			m = newCategoryMonitor(t)
		}
		if got := subjects(m); !slices.Equal(got, tc.want) {
			t.Errorf("watch %v: subjects %v, want %v", tc.watch, got, tc.want)
		}
		if m.watchErr != tc.watchErrs {
			t.Errorf("watch %v: error stream watched %v, want %v", tc.watch, m.watchErr, tc.watchErrs)
		}
	}
}

func TestDriftConfigValidateWatchAndCategories(t *testing.T) {
	good := DefaultDriftConfig()
	good.Features = []string{"f0"}
	good.Categories = catSubjects
	good.Watch = []string{"f0", "channel", "message", alert.SubjectPrediction, alert.SubjectError}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*DriftConfig)
	}{
		{"watch nothing", func(c *DriftConfig) { c.Watch = []string{} }},
		{"watch unknown", func(c *DriftConfig) { c.Watch = []string{"f0", "nope"} }},
		{"watch twice", func(c *DriftConfig) { c.Watch = []string{"channel", "channel"} }},
		{"category named like a feature", func(c *DriftConfig) {
			c.Categories = []CategorySubject{{Name: "f0", Columns: []int{0}}}
		}},
		{"category reserved name", func(c *DriftConfig) {
			c.Categories = []CategorySubject{{Name: alert.SubjectError, Columns: []int{0}}}
		}},
		{"category without columns", func(c *DriftConfig) { c.Categories = []CategorySubject{{Name: "x"}} }},
		{"shared column", func(c *DriftConfig) {
			c.Categories = []CategorySubject{{Name: "a", Columns: []int{0}}, {Name: "b", Columns: []int{1, 0}}}
		}},
		{"negative column", func(c *DriftConfig) { c.Categories = []CategorySubject{{Name: "a", Columns: []int{-1}}} }},
		{"one bin", func(c *DriftConfig) { c.CategoryBins = 1 }},
		{"too many bins", func(c *DriftConfig) { c.CategoryBins = 4097 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidDriftConfig) {
				t.Fatalf("Validate() = %v, want %v", err, ErrInvalidDriftConfig)
			}
			if _, err := NewDriftMonitor(c); !errors.Is(err, ErrInvalidDriftConfig) {
				t.Fatalf("NewDriftMonitor() = %v, want %v", err, ErrInvalidDriftConfig)
			}
		})
	}
}

// CategorySubjects lays the subjects out as the featurize stage lays out
// its hashed columns: the categorical fields, then each token list's
// max_tokens slots; a text field listed twice pools its slots, and one
// named like a categorical field is "<field>.tokens".
func TestCategorySubjectsFollowTheHashedLayout(t *testing.T) {
	var spec pipeline.Spec
	spec.Stages.Featurize.Categorical = []string{"channel", "subject"}
	spec.Stages.Text.Tokens = []pipeline.TextTokensSpec{
		{Field: "message", MaxTokens: 3},
		{Field: "subject", MaxTokens: 2},
		{Field: "message", MaxTokens: 1},
	}
	got := CategorySubjects(&spec)
	want := []CategorySubject{
		{Name: "channel", Field: "channel", Columns: []int{0}},
		{Name: "subject", Field: "subject", Columns: []int{1}},
		{Name: "message", Field: "message", Columns: []int{2, 3, 4, 7}},
		{Name: "subject.tokens", Field: "subject", Columns: []int{5, 6}},
	}
	if !slices.EqualFunc(got, want, func(a, b CategorySubject) bool {
		return a.Name == b.Name && a.Field == b.Field && slices.Equal(a.Columns, b.Columns)
	}) {
		t.Errorf("CategorySubjects = %+v, want %+v", got, want)
	}
}

// In the steady state (every subject profiled) the categorical path does
// not allocate per row; a round allocates at most BH's index slice.
func TestDriftMonitorCategoriesSteadyStateAllocations(t *testing.T) {
	for _, tc := range []struct {
		window int
		most   float64
	}{
		{1 << 30, 0}, // rows only
		{500, 1},     // a round per call: at most BH's index slice
	} {
		m, _ := newTestMonitor(t, func(c *DriftConfig) {
			c.Features, c.Categories = []string{"f0"}, catSubjects
			c.Watch = []string{"channel", "message"}
			c.ReferenceSize, c.WindowSize = 500, tc.window
		})
		f := catFeed{seed: 1, batch: 500, shiftFrom: -1}
		var fb pipeline.FeatureBlock
		scores := f.block(rand.New(rand.NewPCG(1, 2)), &fb, nil, 0)
		m.ObserveBatch(&fb, scores, time.Now()) // takes the references
		now := time.Now()
		if got := testing.AllocsPerRun(20, func() { m.ObserveBatch(&fb, scores, now) }); got > tc.most {
			t.Errorf("window %d: %v allocs per 500-row batch, want at most %v", tc.window, got, tc.most)
		}
	}
}

// BenchmarkDriftMonitorObserveBatchCategories measures a 500-row batch of
// a categorical field and a four-slot text field (the monitor draws one
// present word per row), in the steady state with 5,000-row rounds.
func BenchmarkDriftMonitorObserveBatchCategories(b *testing.B) {
	m, _ := newTestMonitor(b, func(c *DriftConfig) {
		c.Features, c.Categories = []string{"f0"}, catSubjects
		c.Watch = []string{"channel", "message"}
	})
	f := catFeed{seed: 1, batch: 500, shiftFrom: -1}
	var fb pipeline.FeatureBlock
	scores := f.block(rand.New(rand.NewPCG(1, 2)), &fb, nil, 0)
	now := time.Now()
	for range 10 {
		m.ObserveBatch(&fb, scores, now) // takes the references
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m.ObserveBatch(&fb, scores, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*fb.Len()), "ns/row")
}
