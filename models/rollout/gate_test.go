package rollout_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/driftline/driftline/models/rollout"
)

func TestGateValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    rollout.Gate
		ok   bool
	}{
		{"zero uses defaults", rollout.Gate{}, true},
		{"default gate", rollout.DefaultGate(), true},
		{"custom", rollout.Gate{MinSamples: 10, Metric: rollout.MetricRMSE, MaxDelta: 0.5, Confidence: 0.5, Steps: []int{100}}, true},
		{"negative samples", rollout.Gate{MinSamples: -1}, false},
		{"unknown metric", rollout.Gate{Metric: "f1"}, false},
		{"negative delta", rollout.Gate{MaxDelta: -0.01}, false},
		{"NaN delta", rollout.Gate{MaxDelta: math.NaN()}, false},
		{"infinite delta", rollout.Gate{MaxDelta: math.Inf(1)}, false},
		{"confidence 1", rollout.Gate{Confidence: 1}, false},
		{"confidence below half", rollout.Gate{Confidence: 0.4}, false},
		{"negative failure limit", rollout.Gate{FailureLimit: -1}, false},
		{"negative error limit", rollout.Gate{ConsecutiveErrorLimit: -1}, false},
		{"negative bake", rollout.Gate{BakeSamples: -5}, false},
		{"steps not ending at 100", rollout.Gate{Steps: []int{5, 50}}, false},
		{"steps not increasing", rollout.Gate{Steps: []int{50, 25, 100}}, false},
		{"step repeated", rollout.Gate{Steps: []int{5, 5, 100}}, false},
		{"step zero", rollout.Gate{Steps: []int{0, 100}}, false},
		{"step above 100", rollout.Gate{Steps: []int{50, 101}}, false},
	} {
		err := tc.g.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, rollout.ErrInvalid)) {
			t.Errorf("%s: Validate = %v; want ok=%v", tc.name, err, tc.ok)
		}
		if _, err := rollout.NewController(tc.g, "c"); (err == nil) != tc.ok {
			t.Errorf("%s: NewController = %v; want ok=%v", tc.name, err, tc.ok)
		}
	}
	if _, err := rollout.NewController(rollout.Gate{}, ""); !errors.Is(err, rollout.ErrInvalid) {
		t.Errorf("NewController without a name = %v; want ErrInvalid", err)
	}
}

func TestDefaultGate(t *testing.T) {
	want := rollout.Gate{MinSamples: 1000, Metric: rollout.MetricAccuracy, MaxDelta: 0.01, Confidence: 0.95,
		ConsecutiveErrorLimit: 4, Steps: []int{5, 25, 50, 100}, BakeSamples: 1000, BlockOnOpenDrift: true}
	if got := rollout.DefaultGate(); !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultGate() = %+v; want %+v", got, want)
	}
}

// TestGateDecodes checks the spec's field names in YAML and JSON.
func TestGateDecodes(t *testing.T) {
	want := rollout.Gate{MinSamples: 500, Metric: rollout.MetricLogLoss, MaxDelta: 0.02, Confidence: 0.9,
		FailureLimit: 1, ConsecutiveErrorLimit: 3, Steps: []int{10, 50, 100}, BakeSamples: 200, BlockOnOpenDrift: true}
	const y = `
min_samples: 500
metric: logloss
max_delta: 0.02
confidence: 0.9
failure_limit: 1
consecutive_error_limit: 3
steps: [10, 50, 100]
bake_samples: 200
block_on_open_drift: true
`
	var fromYAML rollout.Gate
	if err := yaml.Unmarshal([]byte(y), &fromYAML); err != nil || !reflect.DeepEqual(fromYAML, want) {
		t.Fatalf("YAML gate = %+v, %v; want %+v", fromYAML, err, want)
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON rollout.Gate
	if err := json.Unmarshal(b, &fromJSON); err != nil || !reflect.DeepEqual(fromJSON, want) {
		t.Fatalf("JSON round trip = %+v, %v; want %+v (%s)", fromJSON, err, want, b)
	}
}
