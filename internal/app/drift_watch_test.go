package app

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/detectors/alert"
)

// drift.watch picks the monitor's subjects: the shipped specs' (the
// scenarios watch their inputs, the fraud example and the demo keep the
// default: features and prediction), and single fields expand to their
// subjects.
func TestDriftWatchPicksMonitorSubjects(t *testing.T) {
	subjects := func(t *testing.T, path string, edit func(*[]string)) []string {
		t.Helper()
		spec, err := LoadSpec(path)
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(&spec.Drift.Watch)
		}
		mon, err := newDriftMonitor(spec, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range mon.Snapshot().Subjects {
			out = append(out, s.Subject)
		}
		slices.Sort(out)
		return out
	}
	examples := func(name string) string { return filepath.Join("../../deploy/examples", name+".yaml") }
	for _, tc := range []struct {
		path string
		edit func(*[]string)
		want []string
	}{
		{examples("customer-service"), nil, []string{"channel", "message"}},
		{examples("financial-sentiment"), nil, []string{"headline"}},
		{examples("click-through"), nil, []string{"ad_id", "device", "position", "site", "user_id"}},
		{examples("payments-fraud"), nil, []string{"amount", "card_present", "installments", alert.SubjectPrediction}},
		{"demo.yaml", nil, []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", alert.SubjectPrediction}},
		{examples("financial-sentiment"), func(w *[]string) { *w = []string{"ticker", "prediction"} }, []string{alert.SubjectPrediction, "ticker"}},
		{examples("click-through"), func(w *[]string) { *w = []string{"position", "device"} }, []string{"device", "position"}},
	} {
		if got := subjects(t, tc.path, tc.edit); !slices.Equal(got, tc.want) {
			t.Errorf("%s: subjects %v, want %v", tc.path, got, tc.want)
		}
	}
}
