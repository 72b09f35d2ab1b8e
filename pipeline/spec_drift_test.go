package pipeline_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/spectest"
)

// drift.watch and drift.category_bins: each bad value is named with its
// file, line and field path.
func TestDriftWatchErrorsArePositioned(t *testing.T) {
	const tail = "labels:\n  ttl: 30m\n"
	for _, tc := range []struct {
		name     string
		old, new string // an edit of the base spec besides the drift block
		drift    string
		field    string
		at       string
		msg      string
	}{
		{"unknown subject", "", "", "drift:\n  watch: [features, inputs]\n", "drift.watch[1]", "watch: [features, inputs]", `unknown subject "inputs"`},
		{"unknown subject, block list", "", "", "drift:\n  watch:\n    - features\n    - bogus\n", "drift.watch[1]", "- bogus", `unknown subject "bogus"`},
		{"listed twice", "", "", "drift:\n  watch: [features, prediction, features]\n", "drift.watch[2]", "watch: [features", "listed twice"},
		{"empty list", "", "", "drift:\n  watch: []\n", "drift.watch", "watch: []", "at least one of features, categories, prediction, error"},
		{"error without labels", "", "", "drift:\n  watch: [categories, error]\n", "drift.watch[1]", "watch: [categories, error]", "needs topics.labels"},
		{"categories without any", "    categorical: [country]\n", "", "drift:\n  watch:\n    - categories\n", "drift.watch[0]", "- categories", "no category to watch"},
		{"features without numeric", "    numeric: [amount]\n", "", "drift:\n  watch: [features]\n", "drift.watch[0]", "watch: [features]", "no feature to watch"},
		{"category bins", "", "", "drift:\n  category_bins: 1\n", "drift.category_bins", "category_bins: 1", "[2, 4096]"},
		{"min PSI", "", "", "drift:\n  min_psi: -0.5\n", "drift.min_psi", "min_psi: -0.5", "[0, 10)"},
		{"field not featurized", "", "", "drift:\n  watch: [card]\n", "drift.watch[0]", "watch: [card]", `unknown subject "card"`},
		{"field already watched", "", "", "drift:\n  watch: [categories, amount, country]\n", "drift.watch[2]", "watch: [categories", `field "country" is already watched by "categories"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := baseSpec
			if tc.old != "" {
				text = edit(t, tc.old, tc.new)
			}
			text = strings.Replace(text, tail, tail+tc.drift, 1)
			_, err := pipeline.ParseSpec(specFile, []byte(text))
			if err == nil {
				t.Fatal("accepted")
			}
			var hit *pipeline.SpecError
			for _, e := range spectest.Errors(t, err) {
				if e.Field == tc.field {
					hit = e
				}
			}
			if hit == nil {
				t.Fatalf("no error names field %s: %v", tc.field, err)
			}
			if want := spectest.LineOf(t, text, tc.at); hit.File != specFile || hit.Line != want {
				t.Errorf("at %s:%d, want %s:%d (%q)", hit.File, hit.Line, specFile, want, tc.at)
			}
			if !strings.Contains(hit.Msg, tc.msg) {
				t.Errorf("message %q does not say %q", hit.Msg, tc.msg)
			}
		})
	}
}

func TestDriftWatchParses(t *testing.T) {
	s, err := pipeline.ParseSpec(specFile, []byte(baseSpec))
	if err != nil {
		t.Fatal(err)
	}
	if s.Drift.Watch != nil || s.Drift.CategoryBins != 0 {
		t.Errorf("absent drift block: watch %v, bins %d; want both unset (the defaults)", s.Drift.Watch, s.Drift.CategoryBins)
	}
	text := strings.Replace(baseSpec, "labels:\n", "drift:\n  watch: [categories, features]\n  category_bins: 128\nlabels:\n", 1)
	if s, err = pipeline.ParseSpec(specFile, []byte(text)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Drift.Watch, []string{"categories", "features"}) || s.Drift.CategoryBins != 128 {
		t.Errorf("watch %v, bins %d", s.Drift.Watch, s.Drift.CategoryBins)
	}
	// Single fields: a numeric one and a categorical one.
	text = strings.Replace(baseSpec, "labels:\n", "drift:\n  watch: [country, amount, prediction]\n  min_psi: 0.05\nlabels:\n", 1)
	if s, err = pipeline.ParseSpec(specFile, []byte(text)); err != nil {
		t.Fatal(err)
	}
	if s.Drift.MinPSI != 0.05 || s.DriftWatchKindOf("country") != pipeline.DriftWatchCategories ||
		s.DriftWatchKindOf("amount") != pipeline.DriftWatchFeatures || s.DriftWatchKindOf("card") != "" {
		t.Errorf("min_psi %v; kinds of country, amount, card: %q %q %q", s.Drift.MinPSI,
			s.DriftWatchKindOf("country"), s.DriftWatchKindOf("amount"), s.DriftWatchKindOf("card"))
	}
}
