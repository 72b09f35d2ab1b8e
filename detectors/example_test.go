package detectors_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/driftline/driftline/detectors"
)

// shiftedNormal is 1000 draws of N(0, 1) followed by 1000 draws of N(2, 1).
func shiftedNormal() []float64 {
	rng := rand.New(rand.NewPCG(42, 0))
	out := make([]float64, 2000)
	for i := range out {
		out[i] = rng.NormFloat64()
		if i >= 1000 {
			out[i] += 2
		}
	}
	return out
}

// errorBits is 1000 draws of Bernoulli(0.2) followed by 1000 of Bernoulli(0.5):
// a model whose error rate jumps from 20% to 50%.
func errorBits() []float64 {
	rng := rand.New(rand.NewPCG(42, 0))
	out := make([]float64, 2000)
	for i := range out {
		p := 0.2
		if i >= 1000 {
			p = 0.5
		}
		if rng.Float64() < p {
			out[i] = 1
		}
	}
	return out
}

func report(d detectors.Detector, stream []float64) {
	warned := false
	for i, x := range stream {
		d.Update(x)
		if d.WarningDetected() && !warned {
			fmt.Printf("%s: warning at index %d\n", d.Name(), i)
			warned = true
		}
		if d.DriftDetected() {
			fmt.Printf("%s: drift at index %d\n", d.Name(), i)
			warned = false
		}
	}
}

func ExampleADWIN() {
	d, err := detectors.NewADWIN(detectors.DefaultADWINConfig())
	if err != nil {
		panic(err)
	}
	report(d, shiftedNormal())
	fmt.Printf("window %d, mean %.2f\n", d.Width(), d.Estimation())
	// Output:
	// ADWIN: drift at index 1023
	// window 976, mean 2.00
}

func ExampleKSWIN() {
	cfg := detectors.DefaultKSWINConfig()
	cfg.Alpha = 0.0001
	d, err := detectors.NewKSWIN(cfg)
	if err != nil {
		panic(err)
	}
	report(d, shiftedNormal())
	// Output:
	// KSWIN: drift at index 1016
}

func ExamplePageHinkley() {
	d, err := detectors.NewPageHinkley(detectors.DefaultPageHinkleyConfig())
	if err != nil {
		panic(err)
	}
	report(d, shiftedNormal())
	// Output:
	// PageHinkley: drift at index 1018
}

func ExampleDDM() {
	d, err := detectors.NewDDM(detectors.DefaultDDMConfig())
	if err != nil {
		panic(err)
	}
	report(d, errorBits())
	// Output:
	// DDM: warning at index 1027
	// DDM: drift at index 1070
}

func ExampleEDDM() {
	// As in River's doctest, lower levels than the defaults (0.95, 0.9)
	// keep EDDM from firing on the noise of the stationary part.
	d, err := detectors.NewEDDM(detectors.EDDMConfig{WarmStart: 30, Alpha: 0.8, Beta: 0.75})
	if err != nil {
		panic(err)
	}
	report(d, errorBits())
	// Output:
	// EDDM: warning at index 1198
	// EDDM: drift at index 1291
	// EDDM: warning at index 1974
}

func ExampleHDDMA() {
	d, err := detectors.NewHDDMA(detectors.DefaultHDDMAConfig())
	if err != nil {
		panic(err)
	}
	report(d, errorBits())
	// Output:
	// HDDM_A: warning at index 1051
	// HDDM_A: drift at index 1056
}

func ExampleHDDMW() {
	d, err := detectors.NewHDDMW(detectors.DefaultHDDMWConfig())
	if err != nil {
		panic(err)
	}
	report(d, errorBits())
	// Output:
	// HDDM_W: warning at index 1028
	// HDDM_W: drift at index 1033
}
