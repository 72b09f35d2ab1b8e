// Package distribution compares the distribution of a feature (or of the
// prediction score) in a current window with a reference profile: PSI,
// two-sample Kolmogorov-Smirnov with p-value, chi-square with p-value,
// Jensen-Shannon divergence and Wasserstein-1 distance, plus Bonferroni and
// Benjamini-Hochberg corrections across features. Categorical subjects
// (hashed categorical fields, the words of a text field) have their own
// unordered histograms, CategoryProfile and CategoryWindow, compared by the
// chi-square test of homogeneity with PSI as the effect size
// (CompareCategories).
//
// Memory is bounded: the reference is a histogram whose bin edges are
// quantiles of the reference sample, and the current window only counts
// values into the same bins. Statistics are therefore computed on binned
// data: KS is evaluated at the bin edges (a lower bound of the raw statistic,
// so its test is conservative) and Wasserstein-1 places each bin's mass at the
// mean of the values that fell into it.
//
// Like package detectors, nothing here does I/O, starts goroutines or is safe
// for concurrent use.
package distribution

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// ErrInvalidProfile is wrapped by every error about a malformed profile or
// reference sample.
var ErrInvalidProfile = errors.New("invalid reference profile")

// Profile is a reference distribution: a histogram over bins whose edges were
// fixed from the reference sample. It is what a model version carries as its
// training profile; encode it with encoding/json and decode it with
// ParseProfile.
//
// Bin 0 is (-∞, Edges[0]], bin i is (Edges[i-1], Edges[i]], and the last bin
// is (Edges[len-1], +∞).
type Profile struct {
	// Subject names what was profiled: a feature name, "prediction" or "error".
	Subject string `json:"subject"`
	// Edges are the strictly ascending inner bin edges.
	Edges []float64 `json:"edges"`
	// Counts holds len(Edges)+1 reference counts, one per bin.
	Counts []uint64 `json:"counts"`
	// Sums holds the sum of the reference values in each bin.
	Sums []float64 `json:"sums"`
	// Total is the number of reference values, the sum of Counts.
	Total uint64 `json:"total"`
}

// NewProfile builds a profile of reference with at most bins bins whose edges
// are the reference's i/bins quantiles (ties merge bins). Non-finite values
// are skipped. It needs at least two bins and one finite value.
func NewProfile(subject string, reference []float64, bins int) (Profile, error) {
	if bins < 2 {
		return Profile{}, fmt.Errorf("profile %q: %d bins, need at least 2: %w", subject, bins, ErrInvalidProfile)
	}
	sorted := make([]float64, 0, len(reference))
	for _, x := range reference {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			sorted = append(sorted, x)
		}
	}
	if len(sorted) == 0 {
		return Profile{}, fmt.Errorf("profile %q: no finite reference value: %w", subject, ErrInvalidProfile)
	}
	slices.Sort(sorted)
	edges := make([]float64, 0, bins-1)
	for i := 1; i < bins; i++ {
		q := sorted[min(len(sorted)-1, i*len(sorted)/bins)]
		if len(edges) == 0 || q > edges[len(edges)-1] {
			edges = append(edges, q)
		}
	}
	p := Profile{
		Subject: subject,
		Edges:   edges,
		Counts:  make([]uint64, len(edges)+1),
		Sums:    make([]float64, len(edges)+1),
	}
	for _, x := range sorted {
		b := p.Bin(x)
		p.Counts[b]++
		p.Sums[b] += x
	}
	p.Total = uint64(len(sorted))
	return p, nil
}

// Bin returns the index of the bin x falls into.
func (p *Profile) Bin(x float64) int { return sort.SearchFloat64s(p.Edges, x) }

// Validate checks the invariants a decoded profile must hold.
func (p *Profile) Validate() error {
	if len(p.Edges) == 0 {
		return fmt.Errorf("profile %q: no bin edges: %w", p.Subject, ErrInvalidProfile)
	}
	for i, e := range p.Edges {
		if math.IsNaN(e) || math.IsInf(e, 0) || i > 0 && e <= p.Edges[i-1] {
			return fmt.Errorf("profile %q: edges not finite and strictly ascending at %d: %w", p.Subject, i, ErrInvalidProfile)
		}
	}
	if len(p.Counts) != len(p.Edges)+1 || len(p.Sums) != len(p.Counts) {
		return fmt.Errorf("profile %q: %d edges need %d counts and sums, have %d and %d: %w",
			p.Subject, len(p.Edges), len(p.Edges)+1, len(p.Counts), len(p.Sums), ErrInvalidProfile)
	}
	var total uint64
	for _, c := range p.Counts {
		total += c
	}
	if total != p.Total || total == 0 {
		return fmt.Errorf("profile %q: counts sum to %d, total is %d: %w", p.Subject, total, p.Total, ErrInvalidProfile)
	}
	return nil
}

// ParseProfile decodes a JSON profile and validates it.
func ParseProfile(data []byte) (Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return Profile{}, fmt.Errorf("decode profile: %w", err)
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// Window counts current values into a profile's bins. Its memory is fixed by
// the number of bins, whatever the number of values.
type Window struct {
	profile  *Profile
	counts   []uint64
	sums     []float64
	total    uint64
	rejected uint64
}

// NewWindow returns an empty window over p's bins. p must be valid and must
// not change while the window uses it.
func NewWindow(p *Profile) *Window {
	return &Window{profile: p, counts: make([]uint64, len(p.Counts)), sums: make([]float64, len(p.Counts))}
}

// Observe counts x. Non-finite values are rejected and counted by Rejected.
func (w *Window) Observe(x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		w.rejected++
		return
	}
	b := w.profile.Bin(x)
	w.counts[b]++
	w.sums[b] += x
	w.total++
}

// Total is the number of values observed since the last Reset.
func (w *Window) Total() uint64 { return w.total }

// Rejected is the number of non-finite values rejected since the last Reset.
func (w *Window) Rejected() uint64 { return w.rejected }

// Reset empties the window, keeping its profile and storage.
func (w *Window) Reset() {
	clear(w.counts)
	clear(w.sums)
	w.total, w.rejected = 0, 0
}
