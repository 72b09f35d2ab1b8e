package detectors

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// riverGolden is testdata/river_golden.json, written by
// testdata/gen_river_golden.py from River 0.26.1. It stores the streams
// (including River's doctest streams, drawn with Python's random module) and
// the indices at which River reported drifts and warnings on them.
type riverGolden struct {
	RiverVersion string               `json:"river_version"`
	Streams      map[string][]float64 `json:"streams"`
	Results      []struct {
		Detector string `json:"detector"`
		Stream   string `json:"stream"`
		Drifts   []int  `json:"drifts"`
		Warnings []int  `json:"warnings"`
	} `json:"results"`
}

func loadRiverGolden(t *testing.T) riverGolden {
	t.Helper()
	raw, err := os.ReadFile("testdata/river_golden.json")
	if err != nil {
		t.Fatalf("read golden file: %v", err)
	}
	var g riverGolden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("decode golden file: %v", err)
	}
	return g
}

func goldenDetector(t *testing.T, name string) Detector {
	t.Helper()
	var (
		d   Detector
		err error
	)
	switch name {
	case "ADWIN":
		d, err = NewADWIN(DefaultADWINConfig())
	case "PageHinkley":
		d, err = NewPageHinkley(DefaultPageHinkleyConfig())
	case "DDM":
		d, err = NewDDM(DefaultDDMConfig())
	case "EDDM":
		d, err = NewEDDM(DefaultEDDMConfig())
	case "EDDM(alpha=0.8,beta=0.75)":
		d, err = NewEDDM(EDDMConfig{WarmStart: 30, Alpha: 0.8, Beta: 0.75})
	case "HDDM_A":
		d, err = NewHDDMA(DefaultHDDMAConfig())
	case "HDDM_W":
		d, err = NewHDDMW(DefaultHDDMWConfig())
	default:
		t.Fatalf("golden file names unknown detector %q", name)
	}
	if err != nil {
		t.Fatalf("new %s: %v", name, err)
	}
	return d
}

// TestMatchesRiver replays River's recorded runs and requires the same drift
// and warning indices, update for update. It covers River's documented
// doctests: ADWIN drift at 1023, PageHinkley at 1006, DDM warning at 1084 and
// drift at 1334, EDDM(alpha=0.8, beta=0.75) warning at 1059 and drift at 1278,
// HDDM_A warning at 451 and drift at 1206, HDDM_W warning at 451 and drift at
// 1077.
func TestMatchesRiver(t *testing.T) {
	g := loadRiverGolden(t)
	if len(g.Results) < 15 {
		t.Fatalf("golden file holds %d runs, want at least 15", len(g.Results))
	}
	for _, r := range g.Results {
		t.Run(r.Detector+"/"+r.Stream, func(t *testing.T) {
			stream, ok := g.Streams[r.Stream]
			if !ok {
				t.Fatalf("golden file lacks stream %q", r.Stream)
			}
			d := goldenDetector(t, r.Detector)
			var drifts, warnings []int
			for i, x := range stream {
				d.Update(x)
				if d.DriftDetected() {
					drifts = append(drifts, i)
				}
				if d.WarningDetected() {
					warnings = append(warnings, i)
				}
			}
			if !slices.Equal(drifts, r.Drifts) {
				t.Errorf("drifts at %v, River %s reports %v", drifts, g.RiverVersion, r.Drifts)
			}
			if !slices.Equal(warnings, r.Warnings) {
				t.Errorf("%d warnings, River reports %d; first ours %v, River %v",
					len(warnings), len(r.Warnings), head(warnings), head(r.Warnings))
			}
		})
	}
}

func head(s []int) []int { return s[:min(len(s), 8)] }
