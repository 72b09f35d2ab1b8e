package detectors_test

import (
	"testing"

	"github.com/driftline/driftline/detectors"
	"github.com/driftline/driftline/testkit/detectorsuite"
)

func must[D detectors.Detector](t *testing.T, d D, err error) detectors.Detector {
	t.Helper()
	if err != nil {
		t.Fatalf("new detector: %v", err)
	}
	return d
}

func TestConformanceADWIN(t *testing.T) {
	detectorsuite.Run(t, func() detectors.Detector {
		d, err := detectors.NewADWIN(detectors.DefaultADWINConfig())
		return must(t, d, err)
	}, detectorsuite.Options{Input: detectorsuite.Continuous, QuietSamples: 31, Seed: 1})
}

func TestConformanceKSWIN(t *testing.T) {
	detectorsuite.Run(t, func() detectors.Detector {
		d, err := detectors.NewKSWIN(detectors.DefaultKSWINConfig())
		return must(t, d, err)
	}, detectorsuite.Options{Input: detectorsuite.Continuous, QuietSamples: 99, Seed: 2})
}

func TestConformancePageHinkley(t *testing.T) {
	detectorsuite.Run(t, func() detectors.Detector {
		d, err := detectors.NewPageHinkley(detectors.DefaultPageHinkleyConfig())
		return must(t, d, err)
	}, detectorsuite.Options{Input: detectorsuite.Continuous, QuietSamples: 300, Seed: 3})
}

func TestConformanceDDM(t *testing.T) {
	detectorsuite.Run(t, func() detectors.Detector {
		d, err := detectors.NewDDM(detectors.DefaultDDMConfig())
		return must(t, d, err)
	}, detectorsuite.Options{Input: detectorsuite.Binary, QuietSamples: 30, Seed: 4})
}

func TestConformanceEDDM(t *testing.T) {
	detectorsuite.Run(t, func() detectors.Detector {
		d, err := detectors.NewEDDM(detectors.DefaultEDDMConfig())
		return must(t, d, err)
	}, detectorsuite.Options{Input: detectorsuite.Binary, QuietSamples: 30, Seed: 5})
}

func TestConformanceHDDMA(t *testing.T) {
	detectorsuite.Run(t, func() detectors.Detector {
		d, err := detectors.NewHDDMA(detectors.DefaultHDDMAConfig())
		return must(t, d, err)
	}, detectorsuite.Options{Input: detectorsuite.Binary, QuietSamples: 100, Seed: 6})
}

func TestConformanceHDDMW(t *testing.T) {
	detectorsuite.Run(t, func() detectors.Detector {
		d, err := detectors.NewHDDMW(detectors.DefaultHDDMWConfig())
		return must(t, d, err)
	}, detectorsuite.Options{Input: detectorsuite.Binary, QuietSamples: 100, Seed: 7})
}
