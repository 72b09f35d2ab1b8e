package distribution

import (
	"time"

	"github.com/driftline/driftline/detectors/alert"
)

// SubjectReport is one watched distribution (a feature, a categorical
// subject or the prediction) as the status page shows it, in the spirit of
// Evidently's data drift report: the reference histogram and the current
// one over the same bins, and the last round's statistics.
type SubjectReport struct {
	Subject  string `json:"subject"`
	Detector string `json:"detector"`
	// Feature is false for the prediction score.
	Feature bool `json:"feature"`
	// Categorical is true for a categorical subject (a CategoryProfile's
	// unordered bins, no Edges, tested by chi-square: KS is 0 and PValue
	// is the chi-square p-value).
	Categorical bool `json:"categorical"`
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
	// KS statistic, the chi-square statistic, the test's p-value (KS, or
	// chi-square for a categorical subject), the p-value corrected across
	// the round's subjects, the round's cut-off on the raw p-value, and the
	// decision.
	PSI             float64   `json:"psi"`
	KS              float64   `json:"ks"`
	ChiSquare       float64   `json:"chi_square"`
	PValue          float64   `json:"p_value"`
	CorrectedPValue float64   `json:"corrected_p_value"`
	Cutoff          float64   `json:"cutoff"`
	Rejected        bool      `json:"rejected"`
	Drift           bool      `json:"drift"`
	EvaluatedAt     time.Time `json:"evaluated_at,omitzero"`
	// State is the subject's open alert episode: "ok", "warning" or "drift".
	State string `json:"state"`
}

// Report is a drift monitor's distribution tests at one moment: every
// watched subject's reference and current histograms and its last round's
// statistics.
type Report struct {
	ModelVersion string  `json:"model_version"`
	Correction   string  `json:"correction"`
	Alpha        float64 `json:"alpha"`
	MinPSI       float64 `json:"min_psi"`
	WindowSize   int     `json:"window_size"`
	Rounds       int     `json:"rounds"`
	// Subjects come most drifted first: open drift, then open warning, then
	// by corrected p-value ascending and PSI descending; subjects still
	// profiling come last.
	Subjects []SubjectReport `json:"subjects"`
	// Rows is the number of rows the monitor has observed, warm-up
	// included.
	Rows uint64 `json:"rows"`
	// Raised are the alerts the monitor raised (the newest ones, oldest
	// first), each with where in the stream it was raised.
	Raised []RaisedAlert `json:"raised"`
}

// RaisedAlert is an alert with the position in the stream at which a
// monitor raised it: Rows, the rows it had observed by then (Report.Rows
// at that moment). Rows are counted in the order the monitor saw them; an
// alert on the error stream is raised when an outcome arrives, which is
// usually well after its row.
type RaisedAlert struct {
	alert.Alert
	Rows uint64 `json:"rows"`
}
