package stages

import (
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A replaced version's gauges go away, and its late labels do not bring
// them back; a version that serves again starts afresh.
func TestJoinMetricsSetServingDropsReplacedVersions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewJoinMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	series := func() int { return testutil.CollectAndCount(m.accuracy) }
	for range 10 {
		m.observe("fraud", "1", 0.9, 1, models.Decision{Threshold: 0.5})
		m.observe("fraud", "2", 0.2, 1, models.Decision{Threshold: 0.5})
	}
	m.publish()
	if series() != 2 {
		t.Fatalf("%d accuracy series, want 2", series())
	}
	m.SetServing("2")
	m.observe("fraud", "1", 0.9, 1, models.Decision{Threshold: 0.5}) // a late label of v1's prediction
	m.publish()
	if n := series(); n != 1 {
		t.Fatalf("%d accuracy series after v1 stopped serving, want 1", n)
	}
	if got := testutil.ToFloat64(m.accuracy.WithLabelValues("fraud", "2")); got != 0 {
		t.Errorf("v2 accuracy %v, want 0 (all its outcomes wrong)", got)
	}
	for _, s := range m.Summaries() {
		if s.Version == "1" {
			t.Errorf("summaries still hold v1: %+v", s)
		}
	}
	m.SetServing("1", "2")
	m.observe("fraud", "1", 0.9, 1, models.Decision{Threshold: 0.5})
	m.publish()
	if got := testutil.ToFloat64(m.accuracy.WithLabelValues("fraud", "1")); got != 1 {
		t.Errorf("v1 serving again: accuracy %v, want 1 from its one new outcome", got)
	}
	if problems, err := testutil.CollectAndLint(m.accuracy); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
