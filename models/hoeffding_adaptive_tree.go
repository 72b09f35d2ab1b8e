package models

import "github.com/driftline/driftline/detectors"

// hatParams are the resolved HAT settings a ctree reads.
type hatParams struct {
	bootstrap          bool
	windowThreshold    float64
	switchSignificance float64
	// adwin is an empty detector of the configured delta; nodes get clones.
	adwin *detectors.ADWIN
}

// newADWIN is a fresh drift detector for a node.
func (h *hatParams) newADWIN() *detectors.ADWIN { return h.adwin.Clone() }
