package pipeline

import (
	"fmt"
	"slices"
	"strings"
)

// The kinds of subject drift.watch may name, besides single fields.
const (
	DriftWatchFeatures   = "features"
	DriftWatchCategories = "categories"
	DriftWatchPrediction = "prediction"
	DriftWatchError      = "error"
)

// DriftWatchKinds lists the kinds of subject drift.watch may name;
// DriftWatchDefault is what an absent drift.watch watches.
var (
	DriftWatchKinds   = []string{DriftWatchFeatures, DriftWatchCategories, DriftWatchPrediction, DriftWatchError}
	DriftWatchDefault = []string{DriftWatchFeatures, DriftWatchPrediction, DriftWatchError}
)

// DriftWatchKindOf is the kind of subject that covers field in
// drift.watch: features for a numeric field of stages.featurize,
// categories for a categorical or text-token field, "" for any other name.
func (s *Spec) DriftWatchKindOf(field string) string {
	fz := &s.Stages.Featurize
	switch {
	case slices.Contains(fz.Numeric, field):
		return DriftWatchFeatures
	case slices.Contains(fz.Categorical, field) ||
		slices.ContainsFunc(s.Stages.Text.Tokens, func(t TextTokensSpec) bool { return t.Field == field }):
		return DriftWatchCategories
	}
	return ""
}

// validateDriftWatch checks drift.watch, drift.category_bins and
// drift.min_psi.
func (s *Spec) validateDriftWatch(add func(path, format string, args ...any)) {
	d := &s.Drift
	if d.CategoryBins != 0 && (d.CategoryBins < 2 || d.CategoryBins > 4096) {
		add("drift.category_bins", "must be in [2, 4096], got %d", d.CategoryBins)
	}
	if !(d.MinPSI >= 0 && d.MinPSI < 10) {
		add("drift.min_psi", "must be in [0, 10), got %v", d.MinPSI)
	}
	if d.Watch != nil && len(d.Watch) == 0 {
		add("drift.watch", "must name at least one of %s, or a field", strings.Join(DriftWatchKinds, ", "))
	}
	fz := &s.Stages.Featurize
	for i, w := range d.Watch {
		p := fmt.Sprintf("drift.watch[%d]", i)
		if slices.Contains(d.Watch[:i], w) {
			add(p, "%q is listed twice", w)
			continue
		}
		switch kind := s.DriftWatchKindOf(w); {
		case w == DriftWatchFeatures && len(fz.Numeric) == 0:
			add(p, "stages.featurize.numeric is empty: no feature to watch")
		case w == DriftWatchCategories && len(fz.Categorical)+len(s.Stages.Text.Tokens) == 0:
			add(p, "stages.featurize.categorical and stages.text.tokens are empty: no category to watch")
		case w == DriftWatchError && s.Topics.Labels == "":
			add(p, "needs topics.labels: without labels there are no errors")
		case slices.Contains(DriftWatchKinds, w):
		case kind == "":
			add(p, "unknown subject %q (want %s, or a numeric, categorical or text-token field of stages)", w, strings.Join(DriftWatchKinds, ", "))
		case slices.Contains(d.Watch, kind):
			add(p, "field %q is already watched by %q", w, kind)
		}
	}
}
