package detectors_test

import (
	"testing"

	"github.com/driftline/driftline/detectors"
	"github.com/driftline/driftline/testkit/detectorsuite"
)

// benchUpdate measures Update on a 65,536-value stream with an abrupt change
// in its middle, replayed cyclically, so that resets after drift are included.
func benchUpdate(b *testing.B, d detectors.Detector, err error, in detectorsuite.Input) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	stream := detectorsuite.AbruptChange(in, 1, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Update(stream[i&(1<<16-1)])
	}
}

func BenchmarkADWINUpdate(b *testing.B) {
	d, err := detectors.NewADWIN(detectors.DefaultADWINConfig())
	benchUpdate(b, d, err, detectorsuite.Continuous)
}

func BenchmarkKSWINUpdate(b *testing.B) {
	d, err := detectors.NewKSWIN(detectors.DefaultKSWINConfig())
	benchUpdate(b, d, err, detectorsuite.Continuous)
}

func BenchmarkPageHinkleyUpdate(b *testing.B) {
	d, err := detectors.NewPageHinkley(detectors.DefaultPageHinkleyConfig())
	benchUpdate(b, d, err, detectorsuite.Continuous)
}

func BenchmarkDDMUpdate(b *testing.B) {
	d, err := detectors.NewDDM(detectors.DefaultDDMConfig())
	benchUpdate(b, d, err, detectorsuite.Binary)
}

func BenchmarkEDDMUpdate(b *testing.B) {
	d, err := detectors.NewEDDM(detectors.DefaultEDDMConfig())
	benchUpdate(b, d, err, detectorsuite.Binary)
}

func BenchmarkHDDMAUpdate(b *testing.B) {
	d, err := detectors.NewHDDMA(detectors.DefaultHDDMAConfig())
	benchUpdate(b, d, err, detectorsuite.Binary)
}

func BenchmarkHDDMWUpdate(b *testing.B) {
	d, err := detectors.NewHDDMW(detectors.DefaultHDDMWConfig())
	benchUpdate(b, d, err, detectorsuite.Binary)
}

// BenchmarkADWINUpdateStationary keeps one window growing without a drift,
// the worst case for the size of the histogram.
func BenchmarkADWINUpdateStationary(b *testing.B) {
	d, err := detectors.NewADWIN(detectors.DefaultADWINConfig())
	if err != nil {
		b.Fatal(err)
	}
	stream := detectorsuite.Stationary(detectorsuite.Continuous, 1, 1<<16)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.Update(stream[i&(1<<16-1)])
	}
}
