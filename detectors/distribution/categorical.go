package distribution

import "fmt"

// CategoryProfile is the reference distribution of a categorical subject:
// a hashed categorical field, or the words of a free-text field. Its
// values are non-negative integer codes (feature hashes), folded into a
// fixed number of bins by code mod bins, so that its memory is bounded
// whatever the cardinality. Unlike a Profile its bins have no order: it is
// compared with a window by the chi-square test of homogeneity
// (CompareCategories), not by KS.
type CategoryProfile struct {
	// Subject names what was profiled, e.g. a categorical field's name.
	Subject string `json:"subject"`
	// Counts holds the reference count of each bin; len(Counts) is the
	// number of bins.
	Counts []uint64 `json:"counts"`
	// Total is the number of reference values, the sum of Counts.
	Total uint64 `json:"total"`
}

// NewCategoryProfile returns an empty profile of bins bins, to be filled
// by Observe. It needs at least two bins.
func NewCategoryProfile(subject string, bins int) (CategoryProfile, error) {
	if bins < 2 {
		return CategoryProfile{}, fmt.Errorf("category profile %q: %d bins, need at least 2: %w", subject, bins, ErrInvalidProfile)
	}
	return CategoryProfile{Subject: subject, Counts: make([]uint64, bins)}, nil
}

// Bin returns the bin of code, which must not be negative.
func (p *CategoryProfile) Bin(code int64) int { return int(uint64(code) % uint64(len(p.Counts))) }

// Observe counts code into the reference; a negative code (absent value) is
// ignored. It does not allocate.
func (p *CategoryProfile) Observe(code int64) {
	if code < 0 {
		return
	}
	p.Counts[p.Bin(code)]++
	p.Total++
}

// Validate checks the invariants a decoded or filled profile must hold.
func (p *CategoryProfile) Validate() error {
	if len(p.Counts) < 2 {
		return fmt.Errorf("category profile %q: %d bins, need at least 2: %w", p.Subject, len(p.Counts), ErrInvalidProfile)
	}
	var total uint64
	for _, c := range p.Counts {
		total += c
	}
	if total != p.Total || total == 0 {
		return fmt.Errorf("category profile %q: counts sum to %d, total is %d: %w", p.Subject, total, p.Total, ErrInvalidProfile)
	}
	return nil
}

// CategoryWindow counts current codes into a category profile's bins. Its
// memory is fixed by the number of bins.
type CategoryWindow struct {
	profile *CategoryProfile
	counts  []uint64
	total   uint64
}

// NewCategoryWindow returns an empty window over p's bins. p must not change
// its number of bins while the window uses it.
func NewCategoryWindow(p *CategoryProfile) *CategoryWindow {
	return &CategoryWindow{profile: p, counts: make([]uint64, len(p.Counts))}
}

// Observe counts code; a negative code (absent value) is ignored. It does
// not allocate.
func (w *CategoryWindow) Observe(code int64) {
	if code < 0 {
		return
	}
	w.counts[w.profile.Bin(code)]++
	w.total++
}

// Total is the number of codes observed since the last Reset.
func (w *CategoryWindow) Total() uint64 { return w.total }

// Reset empties the window, keeping its profile and storage.
func (w *CategoryWindow) Reset() {
	clear(w.counts)
	w.total = 0
}

// Counts copies the window's per-bin counts into dst (grown to the number of
// bins if needed) and returns it.
func (w *CategoryWindow) Counts(dst []uint64) []uint64 {
	if cap(dst) < len(w.counts) {
		dst = make([]uint64, len(w.counts))
	}
	dst = dst[:len(w.counts)]
	copy(dst, w.counts)
	return dst
}

// CompareCategories compares w with its profile by Pearson's chi-square
// test of homogeneity of the two histograms: a 2×k contingency table over
// the k bins non-empty in either, with k-1 degrees of freedom and no
// continuity correction (scipy.stats.chi2_contingency(table,
// correction=False)). It also sets PSI and Jensen-Shannon over the bins.
// The bins have no order, so KS and Wasserstein are left 0 and KSPValue 1.
// The test assumes that the values are independent draws: feed it one
// value per row (a row's several words are not independent). With an empty
// window or reference every statistic is 0 and every p-value 1. It does not
// allocate.
func CompareCategories(w *CategoryWindow) Result {
	return compareBins(w.profile.Counts, w.counts, w.profile.Total, w.total)
}
