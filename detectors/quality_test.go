package detectors_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/driftline/driftline/detectors"
)

// Detection-quality evaluation on seeded streams. Run with
//
//	go test ./detectors/ -run TestDetectionQuality -v
//
// Each drifting stream has 10 changes, one every 10,000 events. Continuous
// streams alternate between N(0, 1) and N(1, 1). Binary streams model a
// model's errors: at each change the error rate rises from 0.1 to 0.3, and it
// falls back to 0.1 abruptly 5,000 events later; the fall is not scored (the
// binary detectors watch increases only, as in River) but drifts on it count
// as false alarms. An abrupt change switches at once; a
// gradual one draws from the new concept with a probability rising linearly
// over 2,000 events; an incremental one moves the mean (or rate) linearly over
// 2,000 events. A change is detected by the first drift within 5,000 events of
// its start; delay is counted from the start. Every other drift is a false
// alarm. The stationary stream has 500,000 events of the first concept.
const (
	qualityPeriod     = 10_000
	qualityChanges    = 10
	qualityTransition = 2_000
	qualityHorizon    = 5_000
	qualityQuiet      = 500_000
)

type driftShape int

const (
	shapeAbrupt driftShape = iota
	shapeGradual
	shapeIncremental
	shapeNone
)

func (s driftShape) String() string {
	return [...]string{"abrupt", "gradual", "incremental", "none"}[s]
}

// qualityStream returns the stream and the indices where changes start.
func qualityStream(shape driftShape, binary bool, seed uint64) ([]float64, []int) {
	rng := rand.New(rand.NewPCG(seed, seed^0xa5a5a5a5))
	lo, hi := 0.0, 1.0
	if binary {
		lo, hi = 0.1, 0.3
	}
	n := qualityPeriod * (qualityChanges + 1)
	if shape == shapeNone {
		n = qualityQuiet
	}
	var starts []int
	out := make([]float64, n)
	for i := range out {
		level := lo
		if shape != shapeNone && i >= qualityPeriod {
			k := i/qualityPeriod - 1 // change k started at (k+1)·period
			if i%qualityPeriod == 0 {
				starts = append(starts, i)
			}
			from, to := lo, hi
			if !binary && k%2 == 1 {
				from, to = hi, lo
			}
			progress := min(1, float64(i%qualityPeriod)/qualityTransition)
			switch shape {
			case shapeAbrupt:
				level = to
			case shapeGradual:
				level = from
				if rng.Float64() < progress {
					level = to
				}
			case shapeIncremental:
				level = from + (to-from)*progress
			}
			if binary && i%qualityPeriod >= qualityHorizon {
				level = lo
			}
		}
		if binary {
			if rng.Float64() < level {
				out[i] = 1
			}
		} else {
			out[i] = level + rng.NormFloat64()
		}
	}
	return out, starts
}

type quality struct {
	detected, missed, falseAlarms int
	totalDelay                    int
	events                        int
}

func (q quality) String() string {
	delay := "-"
	if q.detected > 0 {
		delay = fmt.Sprintf("%d", q.totalDelay/q.detected)
	}
	return fmt.Sprintf("delay %6s  missed %2d  false alarms/100k %6.1f",
		delay, q.missed, float64(q.falseAlarms)*100_000/float64(q.events))
}

func evaluate(d detectors.Detector, stream []float64, starts []int) quality {
	q := quality{events: len(stream)}
	next := 0 // first change not yet detected or expired
	for i, x := range stream {
		for next < len(starts) && i >= starts[next]+qualityHorizon {
			q.missed++
			next++
		}
		d.Update(x)
		if !d.DriftDetected() {
			continue
		}
		if next < len(starts) && i >= starts[next] {
			q.detected++
			q.totalDelay += i - starts[next]
			next++
		} else {
			q.falseAlarms++
		}
	}
	q.missed += len(starts) - next
	return q
}

func TestDetectionQuality(t *testing.T) {
	type candidate struct {
		binary bool
		make   func() (detectors.Detector, error)
	}
	candidates := []candidate{
		{false, func() (detectors.Detector, error) { return detectors.NewADWIN(detectors.DefaultADWINConfig()) }},
		{false, func() (detectors.Detector, error) { return detectors.NewKSWIN(detectors.DefaultKSWINConfig()) }},
		{false, func() (detectors.Detector, error) {
			return detectors.NewPageHinkley(detectors.DefaultPageHinkleyConfig())
		}},
		{true, func() (detectors.Detector, error) { return detectors.NewDDM(detectors.DefaultDDMConfig()) }},
		{true, func() (detectors.Detector, error) { return detectors.NewEDDM(detectors.DefaultEDDMConfig()) }},
		{true, func() (detectors.Detector, error) { return detectors.NewHDDMA(detectors.DefaultHDDMAConfig()) }},
		{true, func() (detectors.Detector, error) { return detectors.NewHDDMW(detectors.DefaultHDDMWConfig()) }},
	}
	var table strings.Builder
	results := map[string]quality{}
	for _, c := range candidates {
		for _, shape := range []driftShape{shapeAbrupt, shapeGradual, shapeIncremental, shapeNone} {
			d, err := c.make()
			if err != nil {
				t.Fatal(err)
			}
			stream, starts := qualityStream(shape, c.binary, 2024)
			q := evaluate(d, stream, starts)
			results[d.Name()+"/"+shape.String()] = q
			fmt.Fprintf(&table, "| %-11s | %-11s | %s |\n", d.Name(), shape, q)
		}
	}
	t.Logf("\n%s", table.String())

	// Bounds that hold with margin at seed 2024, so a regression fails.
	for _, name := range []string{"ADWIN", "KSWIN", "PageHinkley", "DDM", "HDDM_A", "HDDM_W"} {
		if q := results[name+"/abrupt"]; q.missed > 2 {
			t.Errorf("%s missed %d of %d abrupt changes", name, q.missed, qualityChanges)
		}
	}
	if q := results["ADWIN/none"]; q.falseAlarms > 5 {
		t.Errorf("ADWIN raised %d false alarms on %d stationary events", q.falseAlarms, q.events)
	}
}
