package streams

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustGenerator(t testing.TB, cfg Config) *Generator {
	t.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		t.Fatalf("NewGenerator(%+v): %v", cfg, err)
	}
	return g
}

// take returns the next n events of g.
func take(g *Generator, n int) []Event {
	out := make([]Event, n)
	for i := range out {
		g.Next(&out[i])
	}
	return out
}

var concepts = []Config{
	{Concept: ConceptSEA},
	{Concept: ConceptHyperplane},
	{Concept: ConceptHyperplane, Features: 4, MagChange: 0.001},
	{Concept: ConceptAgrawal},
}

func TestDeterministic(t *testing.T) {
	for _, base := range concepts {
		t.Run(base.Concept, func(t *testing.T) {
			cfg := base
			cfg.Seed, cfg.Noise = 42, 0.1
			cfg.Drift = Drift{Kind: DriftGradual, Position: 1000, Width: 500}
			a := take(mustGenerator(t, cfg), 3000)
			b := take(mustGenerator(t, cfg), 3000)
			if !slices.Equal(a, b) {
				t.Fatal("two generators with the same config gave different streams")
			}
			cfg.Seed = 43
			c := take(mustGenerator(t, cfg), 3000)
			same := 0
			for i := range a {
				if a[i].F == c[i].F {
					same++
				}
			}
			if same > 0 {
				t.Fatalf("seeds 42 and 43 gave %d identical feature vectors", same)
			}
		})
	}
}

func TestLabelBalance(t *testing.T) {
	var cfgs []Config
	for v := range 4 {
		cfgs = append(cfgs, Config{Concept: ConceptSEA, Variant: v})
	}
	cfgs = append(cfgs, Config{Concept: ConceptHyperplane}, Config{Concept: ConceptHyperplane, Features: 3})
	for v := range 10 {
		if v != 4 && v != 7 && v != 9 { // imbalanced by definition (River: 20%, 2%, 0.2% ones); see agrawalFuncs
			cfgs = append(cfgs, Config{Concept: ConceptAgrawal, Variant: v})
		}
	}
	for _, cfg := range cfgs {
		const n = 20_000
		ones := 0
		for _, e := range take(mustGenerator(t, cfg), n) {
			if e.Label != 0 && e.Label != 1 {
				t.Fatalf("%s/%d: label %d", cfg.Concept, cfg.Variant, e.Label)
			}
			ones += e.Label
		}
		if p := float64(ones) / n; p < 0.2 || p > 0.8 {
			t.Errorf("%s variant %d: %.3f of labels are 1; want within [0.2, 0.8]", cfg.Concept, cfg.Variant, p)
		}
	}
}

func TestNoiseFlipsLabels(t *testing.T) {
	clean := take(mustGenerator(t, Config{Concept: ConceptSEA, Seed: 7}), 20_000)
	noisy := take(mustGenerator(t, Config{Concept: ConceptSEA, Seed: 7, Noise: 0.1}), 20_000)
	if got := agreement(clean, noisy); got < 0.88 || got > 0.92 {
		t.Fatalf("noise 0.1 kept %.3f of labels; want about 0.9", got)
	}
}

// agreement returns the share of events whose labels agree, checking that the
// streams carry the same features.
func agreement(a, b []Event) float64 {
	same := 0
	for i := range a {
		if a[i].F != b[i].F {
			panic(fmt.Sprintf("event %d: features differ", i))
		}
		if a[i].Label == b[i].Label {
			same++
		}
	}
	return float64(same) / float64(len(a))
}

// TestAbruptDrift compares a drifting stream with the same stream without drift, whose
// labels are concept A's oracle: they agree fully before the drift and clearly less after.
func TestAbruptDrift(t *testing.T) {
	const pos, n = 5_000, 15_000
	for _, base := range concepts {
		t.Run(base.Concept, func(t *testing.T) {
			oracle := take(mustGenerator(t, base), n)
			cfg := base
			cfg.Drift = Drift{Kind: DriftAbrupt, Position: pos}
			drifted := take(mustGenerator(t, cfg), n)
			if got := agreement(oracle[:pos], drifted[:pos]); got != 1 {
				t.Fatalf("before the drift, concept A's oracle is right on %.4f; want 1", got)
			}
			if got := agreement(oracle[pos:], drifted[pos:]); got > 0.95 {
				t.Fatalf("after the drift, concept A's oracle is still right on %.4f; want <= 0.95", got)
			}
		})
	}
}

func TestGradualDrift(t *testing.T) {
	const pos, width = 20_000, 4_000
	base := Config{Concept: ConceptAgrawal, Seed: 3}
	cfg := base
	cfg.Drift = Drift{Kind: DriftGradual, Position: pos, Width: width}
	oracle := take(mustGenerator(t, base), 40_000)
	drifted := take(mustGenerator(t, cfg), 40_000)
	abrupt := base
	abrupt.Drift = Drift{Kind: DriftAbrupt}
	conceptB := take(mustGenerator(t, abrupt), 40_000)
	full := 1 - agreement(oracle, conceptB) // disagreement of A and B on every event

	// Share of events taken from concept B in a window, estimated from disagreements.
	shareB := func(from, to int) float64 {
		return (1 - agreement(oracle[from:to], drifted[from:to])) / (1 - agreement(oracle[from:to], conceptB[from:to]))
	}
	if full < 0.2 {
		t.Fatalf("agrawal concepts 0 and 4 disagree on %.3f of events; the test needs more", full)
	}
	for _, w := range []struct {
		from, to int
		lo, hi   float64
	}{
		{0, pos - 2*width, 0, 0.02},               // sigmoid below 0.02
		{pos - 500, pos + 500, 0.35, 0.65},        // midpoint: about half
		{pos + 2*width, pos + 5*width, 0.97, 1.0}, // sigmoid above 0.98
		{pos - width, pos - width/2, 0.03, 0.2},   // ramping up
		{pos + width/2, pos + width, 0.8, 0.97},   // ramping up
	} {
		got := shareB(w.from, w.to)
		t.Logf("events [%d, %d): %.3f from concept B", w.from, w.to, got)
		if got < w.lo || got > w.hi {
			t.Errorf("events [%d, %d): %.3f from concept B; want within [%.2f, %.2f]", w.from, w.to, got, w.lo, w.hi)
		}
	}
}

func TestHyperplaneIncrementalDrift(t *testing.T) {
	cfg := Config{Concept: ConceptHyperplane, Features: 4, DriftFeatures: 2, MagChange: 0.0005, Sigma: 0.0001}
	drifting := take(mustGenerator(t, cfg), 20_000)
	cfg.MagChange = 0
	static := take(mustGenerator(t, cfg), 20_000)
	early, late := agreement(static[:500], drifting[:500]), agreement(static[15_000:], drifting[15_000:])
	t.Logf("agreement with the static hyperplane: %.3f early, %.3f late", early, late)
	if early < 0.95 || late > early-0.1 {
		t.Fatalf("mag change 0.0005: agreement with the static hyperplane %.3f early, %.3f late; want high early, lower late", early, late)
	}
}

func TestEventFields(t *testing.T) {
	start := time.Date(2030, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600))
	g := mustGenerator(t, Config{Concept: ConceptSEA, Seed: 9, Start: start, Step: time.Second, Users: 500})
	seen := map[string]bool{}
	users := map[string]bool{}
	idRe := regexp.MustCompile(`^e-9-\d+$`)
	userRe := regexp.MustCompile(`^u-(\d{6})$`)
	phoneRe := regexp.MustCompile(`^\+1-555-\d{3}-\d{4}$`)
	for i, e := range take(g, 5000) {
		if !idRe.MatchString(e.ID) || seen[e.ID] || e.ID != fmt.Sprintf("e-9-%d", i) {
			t.Fatalf("event %d: id %q is malformed or repeated", i, e.ID)
		}
		seen[e.ID] = true
		if want := start.Add(time.Duration(i) * time.Second); !e.Time.Equal(want) {
			t.Fatalf("event %d: time %v, want %v", i, e.Time, want)
		}
		m := userRe.FindStringSubmatch(e.UserID)
		if m == nil {
			t.Fatalf("event %d: user id %q", i, e.UserID)
		}
		n := strings.TrimLeft(m[1], "0")
		if n == "" {
			n = "0"
		}
		if e.Email != "user"+n+"@example.com" || !phoneRe.MatchString(e.Phone) {
			t.Fatalf("event %d: email %q phone %q for user %q", i, e.Email, e.Phone, e.UserID)
		}
		users[e.UserID] = true
		if !slices.Contains(countries[:], e.Country) || !slices.Contains(devices[:], e.Device) || !slices.Contains(channels[:], e.Channel) {
			t.Fatalf("event %d: categoricals %q %q %q", i, e.Country, e.Device, e.Channel)
		}
		for j, f := range e.F {
			if f < 0 || f > 10 {
				t.Fatalf("event %d: sea f%d = %v outside [0, 10]", i, j, f)
			}
		}
	}
	if len(users) != 500 {
		t.Fatalf("5000 events from a pool of 500 users named %d users; want all 500", len(users))
	}
	if g.Index() != 5000 {
		t.Fatalf("Index after 5000 events = %d", g.Index())
	}
}

func TestPhonesDistinctPerUser(t *testing.T) {
	g := mustGenerator(t, Config{Concept: ConceptSEA})
	phones := map[string]bool{}
	for _, u := range g.users {
		phones[u.phone] = true
	}
	if len(phones) != len(g.users) {
		t.Fatalf("%d users share %d phone numbers", len(g.users), len(phones))
	}
}

func TestAgrawalAttributeRanges(t *testing.T) {
	for i, e := range take(mustGenerator(t, Config{Concept: ConceptAgrawal, Seed: 5}), 20_000) {
		f := e.F
		ok := f[agSalary] >= 20_000 && f[agSalary] <= 150_000 &&
			(f[agSalary] >= 75_000 && f[agCommission] == 0 || f[agSalary] < 75_000 && f[agCommission] >= 10_000 && f[agCommission] <= 85_000) &&
			f[agAge] >= 20 && f[agAge] <= 80 && f[agElevel] >= 0 && f[agElevel] <= 4 &&
			f[agCar] >= 1 && f[agCar] <= 20 && f[agZipcode] >= 0 && f[agZipcode] <= 8 &&
			f[agHvalue] >= (8-f[agZipcode])*50_000 && f[agHvalue] <= (8-f[agZipcode])*150_000 &&
			f[agHyears] >= 1 && f[agHyears] <= 30 && f[agLoan] >= 0 && f[agLoan] <= 500_000
		if !ok {
			t.Fatalf("event %d: agrawal attributes out of range: %v", i, f)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "unknown concept"},
		{Config{Concept: "stagger"}, "unknown concept"},
		{Config{Concept: ConceptSEA, Variant: 4}, "sea variants"},
		{Config{Concept: ConceptAgrawal, DriftVariant: 10}, "agrawal variants"},
		{Config{Concept: ConceptAgrawal, Perturbation: 1.5}, "perturbation"},
		{Config{Concept: ConceptHyperplane, Features: 11}, "hyperplane features"},
		{Config{Concept: ConceptHyperplane, Features: 3, DriftFeatures: 4}, "drift features"},
		{Config{Concept: ConceptHyperplane, MagChange: -1}, "mag change"},
		{Config{Concept: ConceptHyperplane, Sigma: 2}, "sigma"},
		{Config{Concept: ConceptSEA, Noise: 0.6}, "noise"},
		{Config{Concept: ConceptSEA, Step: -time.Second}, "step"},
		{Config{Concept: ConceptSEA, Users: -1}, "users"},
		{Config{Concept: ConceptSEA, Drift: Drift{Kind: DriftGradual}}, "width"},
		{Config{Concept: ConceptSEA, Drift: Drift{Kind: "sudden"}}, "drift kind"},
		{Config{Concept: ConceptSEA, Drift: Drift{Kind: DriftAbrupt, Position: -1}}, "position"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v; want an error mentioning %q", tc.cfg, err, tc.want)
		}
		if _, err := NewGenerator(tc.cfg); err == nil {
			t.Errorf("NewGenerator(%+v) accepted an invalid config", tc.cfg)
		}
	}
	for _, cfg := range concepts {
		if err := cfg.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v; want nil", cfg, err)
		}
	}
}

func TestNextAllocatesOnlyID(t *testing.T) {
	g := mustGenerator(t, Config{Concept: ConceptAgrawal})
	var e Event
	if n := testing.AllocsPerRun(1000, func() { g.Next(&e) }); n > 1 {
		t.Fatalf("Next allocates %.1f times per event; want at most 1 (the id)", n)
	}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(1000, func() { buf = AppendJSON(buf[:0], &e) }); n != 0 {
		t.Fatalf("AppendJSON allocates %.1f times into a large enough buffer; want 0", n)
	}
}

func BenchmarkNextAppendJSON(b *testing.B) {
	g := mustGenerator(b, Config{Concept: ConceptAgrawal, Drift: Drift{Kind: DriftGradual, Position: 1000, Width: 100}})
	var e Event
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		g.Next(&e)
		buf = AppendJSON(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

// A covariate shift moves one feature from its event on and changes
// nothing else: the same draws, the same labels.
func TestShiftMovesOneFeatureOnly(t *testing.T) {
	base := Config{Concept: ConceptSEA, Seed: 3, Drift: Drift{Kind: DriftAbrupt, Position: 50}}
	shifted := base
	shifted.Shift = Shift{Feature: 2, Delta: 3, From: 40}
	a, err := NewGenerator(base)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewGenerator(shifted)
	if err != nil {
		t.Fatal(err)
	}
	var ea, eb Event
	for i := range 100 {
		a.Next(&ea)
		b.Next(&eb)
		want := ea.F
		if i >= 40 {
			want[2] += 3
		}
		if eb.F != want || eb.Label != ea.Label || eb.ID != ea.ID {
			t.Fatalf("event %d: %+v, want %+v with f2 shifted", i, eb, ea)
		}
	}
	bad := base
	bad.Shift = Shift{Feature: 12, Delta: 1}
	if bad.Validate() == nil {
		t.Fatal("a shift of feature 12 validated")
	}
}
