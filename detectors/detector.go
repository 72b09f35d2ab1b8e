// Package detectors holds drift detectors as pure, single-goroutine state
// machines: no I/O, no goroutines, no metrics, and no imports from the rest of
// driftline.
//
// Every detector follows River's semantics (river.drift, version 0.26):
//
//   - Update(x) feeds one value. Afterwards DriftDetected reports whether a
//     drift was detected at that very update, and WarningDetected whether the
//     detector is in its warning zone (always false for detectors without one).
//   - After a drift, the next Update first resets the detector (River's
//     automatic reset), then processes its value.
//   - Default parameters are River's, returned by the DefaultXConfig functions.
//
// Non-finite input (NaN, +Inf, -Inf) is rejected: the value is ignored, it is
// counted by Rejected, the statistics do not change, and DriftDetected is false
// after the call (a pending automatic reset after a drift still happens).
// Binary detectors (DDM, EDDM, HDDM_A, HDDM_W) take 0 (correct) or 1 (error)
// and reject every other value in the same way.
//
// None of the types is safe for concurrent use; each instance has one owner.
package detectors

import (
	"errors"
	"math"
)

// Detector is a streaming drift detector.
//
// Implementations are not safe for concurrent use. Update must not allocate in
// the steady state.
type Detector interface {
	// Update feeds one observation. Non-finite values (and, for binary
	// detectors, values other than 0 and 1) are rejected and counted.
	Update(x float64)
	// DriftDetected reports whether the last Update detected a drift.
	DriftDetected() bool
	// WarningDetected reports whether the detector is in its warning zone.
	// Detectors without a warning zone always return false.
	WarningDetected() bool
	// Reset returns the detector to the state New gave it, including the
	// rejected counter.
	Reset()
	// Name is the detector's short, stable name, such as "ADWIN".
	Name() string
	// Rejected is the number of values rejected since New or Reset.
	Rejected() uint64
	// Statistic is the detector's current test statistic, suitable for a
	// gauge; each type documents what it is.
	Statistic() float64
}

// ErrInvalidConfig is wrapped by every configuration validation error.
var ErrInvalidConfig = errors.New("invalid detector config")

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// isBinary reports whether x is 0 or 1, the only inputs of binary detectors.
func isBinary(x float64) bool { return x == 0 || x == 1 }
