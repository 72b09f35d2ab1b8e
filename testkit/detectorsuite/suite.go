// Package detectorsuite is the conformance suite every driftline drift
// detector passes. Call Run from the detector's own test.
package detectorsuite

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/detectors"
)

// Input says which values a detector accepts.
type Input int

const (
	// Continuous detectors take any finite value.
	Continuous Input = iota
	// Binary detectors take 0 (correct) or 1 (error).
	Binary
)

// Options configures Run.
type Options struct {
	// Input is the kind of stream fed to the detector.
	Input Input
	// QuietSamples is N: a fresh detector must raise no drift during the
	// first N values of a stationary stream.
	QuietSamples int
	// Seed seeds the generated streams; runs with the same seed are equal.
	Seed uint64
}

// streamLength is the length of the generated streams; the change, in the
// drifting stream, is at its middle.
const streamLength = 4000

// Stationary returns n values with no change: N(0, 1) for Continuous,
// Bernoulli(0.1) for Binary.
func Stationary(in Input, seed uint64, n int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]float64, n)
	for i := range out {
		out[i] = draw(rng, in, false)
	}
	return out
}

// AbruptChange returns n values whose first half is Stationary's and whose
// second half is N(3, 1) for Continuous and Bernoulli(0.6) for Binary.
func AbruptChange(in Input, seed uint64, n int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0xc4a9))
	out := make([]float64, n)
	for i := range out {
		out[i] = draw(rng, in, i >= n/2)
	}
	return out
}

func draw(rng *rand.Rand, in Input, changed bool) float64 {
	if in == Binary {
		p := 0.1
		if changed {
			p = 0.6
		}
		if rng.Float64() < p {
			return 1
		}
		return 0
	}
	mean := 0.0
	if changed {
		mean = 3
	}
	return mean + rng.NormFloat64()
}

// step is what a detector reports after one update.
type step struct {
	drift, warning bool
	statistic      float64
}

func observe(d detectors.Detector, x float64) step {
	d.Update(x)
	return step{d.DriftDetected(), d.WarningDetected(), d.Statistic()}
}

func trace(d detectors.Detector, stream []float64) []step {
	out := make([]step, len(stream))
	for i, x := range stream {
		out[i] = observe(d, x)
	}
	return out
}

func sameStep(a, b step) bool {
	return a.drift == b.drift && a.warning == b.warning &&
		(a.statistic == b.statistic || math.IsNaN(a.statistic) && math.IsNaN(b.statistic))
}

func firstDifference(a, b []step) int {
	for i := range a {
		if !sameStep(a[i], b[i]) {
			return i
		}
	}
	return -1
}

// Run checks the detector contract of package detectors on detectors made by
// factory, which must return a fresh, independent detector on every call:
//
//   - Name is not empty.
//   - Determinism: two fresh detectors fed the same stream report the same
//     drift, warning and statistic after every update, and so does a detector
//     after Reset.
//   - Drift and automatic reset: on a stream with an abrupt change the
//     detector reports a drift; after each drift, it behaves exactly like a
//     fresh detector fed the rest of the stream.
//   - Quiet start: no drift in the first QuietSamples values of a stationary
//     stream.
//   - Non-finite input: NaN, +Inf and -Inf do not panic, are counted by
//     Rejected, report no drift, and do not change what the detector reports
//     on the valid values around them. Reset zeroes Rejected.
func Run(t *testing.T, factory func() detectors.Detector, opts Options) {
	t.Helper()
	changing := AbruptChange(opts.Input, opts.Seed, streamLength)
	stationary := Stationary(opts.Input, opts.Seed, max(opts.QuietSamples, streamLength))

	t.Run("Name", func(t *testing.T) {
		if factory().Name() == "" {
			t.Fatal("Name is empty")
		}
	})

	t.Run("Determinism", func(t *testing.T) {
		d := factory()
		first := trace(d, changing)
		if i := firstDifference(first, trace(factory(), changing)); i >= 0 {
			t.Fatalf("two fresh detectors differ at update %d: %+v vs another", i, first[i])
		}
		d.Reset()
		if i := firstDifference(first, trace(d, changing)); i >= 0 {
			t.Fatalf("after Reset the detector differs from a fresh one at update %d", i)
		}
	})

	t.Run("DriftThenAutomaticReset", func(t *testing.T) {
		d := factory()
		for i, x := range changing {
			if !observe(d, x).drift {
				continue
			}
			rest := changing[i+1:]
			want := trace(factory(), rest)
			if j := firstDifference(want, trace(d, rest)); j >= 0 {
				t.Fatalf("after the drift at update %d the detector differs from a fresh one at update %d", i, i+1+j)
			}
			return
		}
		t.Fatalf("no drift on a stream with an abrupt change at update %d", len(changing)/2)
	})

	t.Run("QuietStart", func(t *testing.T) {
		d := factory()
		for i, x := range stationary[:opts.QuietSamples] {
			if observe(d, x).drift {
				t.Fatalf("drift at update %d of a stationary stream, before %d", i, opts.QuietSamples)
			}
		}
	})

	t.Run("NonFinite", func(t *testing.T) {
		clean := trace(factory(), changing)
		d := factory()
		bad := []float64{math.NaN(), math.Inf(1), math.Inf(-1)}
		var rejected uint64
		for i, x := range changing {
			if i%7 == 0 {
				d.Update(bad[i%3])
				rejected++
				if d.DriftDetected() {
					t.Fatalf("drift reported on the non-finite value fed before update %d", i)
				}
			}
			if got := observe(d, x); !sameStep(got, clean[i]) {
				t.Fatalf("with non-finite values interleaved, update %d reports %+v, want %+v", i, got, clean[i])
			}
		}
		if d.Rejected() != rejected {
			t.Fatalf("Rejected() = %d, want %d", d.Rejected(), rejected)
		}
		d.Reset()
		if d.Rejected() != 0 {
			t.Fatalf("Rejected() = %d after Reset, want 0", d.Rejected())
		}
	})
}
