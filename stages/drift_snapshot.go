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
	s.last.counts = s.counts(s.last.counts)
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

// Snapshot returns copies of every watched distribution subject's
// reference and current histograms (a categorical subject's over its
// folded bins, without edges) and its last round's statistics, most
// drifted first, with the rows observed and the alerts raised (of every
// subject, the error stream's included) and where. It is
// safe for concurrent use with ObserveBatch (it holds distMu while it
// copies).
func (m *DriftMonitor) Snapshot() distribution.Report {
	m.distMu.Lock()
	defer m.distMu.Unlock()
	snap := distribution.Report{ModelVersion: m.cfg.ModelVersion, Correction: m.cfg.Correction, Alpha: m.cfg.Alpha,
		MinPSI: m.cfg.MinPSI, WindowSize: m.cfg.WindowSize, Rounds: m.rounds,
		Subjects: make([]distribution.SubjectReport, 0, len(m.subjects))}
	for i := range m.subjects {
		s := &m.subjects[i]
		v := distribution.SubjectReport{Subject: s.subject, Detector: s.detector, Feature: s != m.pred, Categorical: s.cat != nil,
			ReferenceSize: m.cfg.ReferenceSize, State: "ok"}
		if s.episode != "" {
			v.State = string(s.episode)
		}
		switch {
		case !s.profiled() && s.cat != nil:
			v.Profiling, v.ReferenceSampled = true, int(s.cat.profile.Total)
		case !s.profiled():
			v.Profiling, v.ReferenceSampled = true, len(s.ref)
		case s.cat != nil:
			v.ReferenceSampled = int(s.cat.profile.Total)
			v.Reference = slices.Clone(s.cat.profile.Counts)
		default:
			v.ReferenceSampled = int(s.profile.Total)
			v.Edges = slices.Clone(s.profile.Edges)
			v.Reference = slices.Clone(s.profile.Counts)
		}
		if v.Profiling {
			snap.Subjects = append(snap.Subjects, v)
			continue
		}
		if s.last.counts != nil {
			v.Current = slices.Clone(s.last.counts)
			r := s.last.result
			v.PSI, v.KS, v.ChiSquare, v.PValue, v.CorrectedPValue = r.PSI, r.KS, r.ChiSquare, r.KSPValue, s.last.adjusted
			if s.cat != nil {
				v.PValue = r.ChiSquarePValue
			}
			v.Cutoff, v.Rejected, v.Drift, v.EvaluatedAt = s.last.cutoff, s.last.rejected, s.last.drift, s.last.at
		} else {
			v.Current, v.Live, v.PValue, v.CorrectedPValue = s.counts(nil), true, 1, 1
		}
		snap.Subjects = append(snap.Subjects, v)
	}
	slices.SortStableFunc(snap.Subjects, compareDrifted)
	snap.Rows = m.seen
	m.raisedMu.Lock()
	snap.Raised = slices.Clone(m.raised)
	m.raisedMu.Unlock()
	if snap.Raised == nil {
		snap.Raised = []distribution.RaisedAlert{}
	}
	return snap
}

// compareDrifted orders subjects most drifted first.
func compareDrifted(a, b distribution.SubjectReport) int {
	rank := func(v distribution.SubjectReport) int {
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
