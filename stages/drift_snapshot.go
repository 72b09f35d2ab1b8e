package stages

import (
	"cmp"
	"slices"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
)

// driftRound is one subject's part of the last evaluated round: its
// comparison with the reference, the window's counts and the decision.
type driftRound struct {
	result   distribution.Result
	adjusted float64 // corrected p-value
	cutoff   float64 // the round's p-value cut-off
	rejected bool
	drift    bool
	counts   []uint64 // window counts per reference bin; nil before the first round
	at       time.Time
}

// remember keeps the round's test of s before its window is emptied. Its
// counts slice is reused, so a round does not allocate once every subject
// has been tested once.
func (s *distSubject) remember(r distribution.Result, adjusted, cutoff float64, rejected, drift bool, at time.Time) {
	s.last.result, s.last.adjusted, s.last.cutoff = r, adjusted, cutoff
	s.last.rejected, s.last.drift, s.last.at = rejected, drift, at
	s.last.counts = s.window.Counts(s.last.counts)
}

// adjust sets m.adjusted to the round's corrected p-values (the
// correction's adjusted p-values: rejected ⇔ adjusted <= Alpha). distMu is
// held.
func (m *DriftMonitor) adjust() {
	if m.cfg.Correction == CorrectionBonferroni {
		m.adjusted = distribution.AdjustBonferroni(m.adjusted, m.pValues)
		return
	}
	m.adjusted, m.order = distribution.AdjustBenjaminiHochberg(m.adjusted, m.order, m.pValues)
}

// DriftSubjectView is one watched distribution (a feature or the
// prediction) as the status page shows it, in the spirit of Evidently's
// data drift report: the reference histogram and the current one over the
// same bins, and the last round's statistics.
type DriftSubjectView struct {
	Subject  string `json:"subject"`
	Detector string `json:"detector"`
	// Feature is false for the prediction score.
	Feature bool `json:"feature"`
	// Profiling is true while the reference sample is still being taken;
	// ReferenceSampled of ReferenceSize values are in.
	Profiling        bool `json:"profiling"`
	ReferenceSampled int  `json:"reference_sampled"`
	ReferenceSize    int  `json:"reference_size"`
	// Edges are the inner bin edges; Reference and Current hold one count
	// per bin (len(Edges)+1). Current is the last evaluated round's window,
	// or the round in progress before the first evaluation (Live true).
	Edges     []float64 `json:"edges"`
	Reference []uint64  `json:"reference"`
	Current   []uint64  `json:"current"`
	Live      bool      `json:"live"`
	// The last round's statistics (zero before the first round): PSI, the
	// KS statistic and its p-value, the p-value corrected across the round's
	// subjects, the round's cut-off on the raw p-value, and the decision.
	PSI             float64   `json:"psi"`
	KS              float64   `json:"ks"`
	PValue          float64   `json:"p_value"`
	CorrectedPValue float64   `json:"corrected_p_value"`
	Cutoff          float64   `json:"cutoff"`
	Rejected        bool      `json:"rejected"`
	Drift           bool      `json:"drift"`
	EvaluatedAt     time.Time `json:"evaluated_at,omitzero"`
	// State is the subject's open alert episode: "ok", "warning" or "drift".
	State string `json:"state"`
}

// DriftSnapshot is the distribution side of a DriftMonitor at one moment.
type DriftSnapshot struct {
	ModelVersion string  `json:"model_version"`
	Correction   string  `json:"correction"`
	Alpha        float64 `json:"alpha"`
	MinPSI       float64 `json:"min_psi"`
	WindowSize   int     `json:"window_size"`
	Rounds       int     `json:"rounds"`
	// Subjects come most drifted first: open drift, then open warning, then
	// by corrected p-value ascending and PSI descending; subjects still
	// profiling come last.
	Subjects []DriftSubjectView `json:"subjects"`
}

// Snapshot returns copies of every subject's reference and current
// histograms and its last round's statistics, most drifted first. It is
// safe for concurrent use with ObserveBatch (it holds distMu while it
// copies).
func (m *DriftMonitor) Snapshot() DriftSnapshot {
	m.distMu.Lock()
	defer m.distMu.Unlock()
	snap := DriftSnapshot{ModelVersion: m.cfg.ModelVersion, Correction: m.cfg.Correction, Alpha: m.cfg.Alpha,
		MinPSI: m.cfg.MinPSI, WindowSize: m.cfg.WindowSize, Rounds: m.rounds,
		Subjects: make([]DriftSubjectView, 0, len(m.subjects))}
	for i := range m.subjects {
		s := &m.subjects[i]
		v := DriftSubjectView{Subject: s.subject, Detector: s.detector, Feature: i < len(m.cfg.Features),
			ReferenceSize: m.cfg.ReferenceSize, State: "ok"}
		if s.episode != "" {
			v.State = string(s.episode)
		}
		if s.window == nil {
			v.Profiling, v.ReferenceSampled = true, len(s.ref)
			snap.Subjects = append(snap.Subjects, v)
			continue
		}
		v.ReferenceSampled = int(s.profile.Total)
		v.Edges = slices.Clone(s.profile.Edges)
		v.Reference = slices.Clone(s.profile.Counts)
		if s.last.counts != nil {
			v.Current = slices.Clone(s.last.counts)
			r := s.last.result
			v.PSI, v.KS, v.PValue, v.CorrectedPValue = r.PSI, r.KS, r.KSPValue, s.last.adjusted
			v.Cutoff, v.Rejected, v.Drift, v.EvaluatedAt = s.last.cutoff, s.last.rejected, s.last.drift, s.last.at
		} else {
			v.Current, v.Live, v.PValue, v.CorrectedPValue = s.window.Counts(nil), true, 1, 1
		}
		snap.Subjects = append(snap.Subjects, v)
	}
	slices.SortStableFunc(snap.Subjects, compareDrifted)
	return snap
}

// compareDrifted orders subjects most drifted first.
func compareDrifted(a, b DriftSubjectView) int {
	rank := func(v DriftSubjectView) int {
		switch {
		case v.Profiling:
			return 4
		case v.State == string(alert.StateDrift):
			return 0
		case v.State == string(alert.StateWarning):
			return 1
		case v.Live:
			return 3
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.CorrectedPValue, b.CorrectedPValue), cmp.Compare(b.PSI, a.PSI))
}
