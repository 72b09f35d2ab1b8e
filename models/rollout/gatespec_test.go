package rollout_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/driftline/driftline/models/rollout"
)

func TestGateSpecDefaults(t *testing.T) {
	g, interval, err := rollout.GateSpec{}.Resolve(false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, rollout.DefaultGate()) || interval != rollout.DefaultInterval {
		t.Fatalf("empty spec resolves to %+v every %s, want DefaultGate every %s", g, interval, rollout.DefaultInterval)
	}
	// Explicit zeros stay zeros.
	zero, none := 0.0, 0
	g, _, err = rollout.GateSpec{MaxDelta: &zero, ConsecutiveErrorLimit: &none}.Resolve(false)
	if err != nil || g.MaxDelta != 0 || g.ConsecutiveErrorLimit != 0 {
		t.Fatalf("explicit zeros: %+v, %v", g, err)
	}
}

// TestGateSpecReadsYAMLAndJSON: the spec's snake_case YAML and the admin
// API's JSON, with the same snake_case keys, give the same gate.
func TestGateSpecReadsYAMLAndJSON(t *testing.T) {
	var fromYAML, fromJSON rollout.GateSpec
	if err := yaml.Unmarshal([]byte("{min_samples: 50, metric: rmse, max_delta: 0, steps: [50, 100], interval: 250ms}"), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"min_samples": 50, "metric": "rmse", "max_delta": 0, "steps": [50, 100], "interval": "250ms"}`), &fromJSON); err != nil {
		t.Fatal(err)
	}
	gy, iy, err1 := fromYAML.Resolve(true)
	gj, ij, err2 := fromJSON.Resolve(true)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(gy, gj) || iy != ij || iy != 250*time.Millisecond || gy.MaxDelta != 0 || gy.MinSamples != 50 {
		t.Fatalf("yaml %+v %s %v; json %+v %s %v", gy, iy, err1, gj, ij, err2)
	}
}

// TestGateSpecErrorsNameTheField: every bad field is reported, named as
// YAML and JSON write it; auc and a classification metric on a regression
// model are refused.
func TestGateSpecErrorsNameTheField(t *testing.T) {
	neg := -1.0
	for _, tc := range []struct {
		name       string
		spec       rollout.GateSpec
		regression bool
		want       []string // YAML names of the fields at fault
	}{
		{"auc is not a gate metric", rollout.GateSpec{Metric: "auc"}, false, []string{"metric"}},
		{"accuracy on a regression", rollout.GateSpec{}, true, []string{"metric"}},
		{"logloss on a regression", rollout.GateSpec{Metric: rollout.MetricLogLoss}, true, []string{"metric"}},
		{"several", rollout.GateSpec{MinSamples: -3, MaxDelta: &neg, Confidence: 1, Steps: []int{50, 10}, Interval: rollout.Duration(time.Hour)}, false,
			[]string{"min_samples", "max_delta", "confidence", "steps", "interval"}},
	} {
		_, _, err := tc.spec.Resolve(tc.regression)
		if !errors.Is(err, rollout.ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", tc.name, err)
			continue
		}
		var got []string
		for _, fe := range rollout.FieldErrors(err) {
			got = append(got, fe.Field)
			if fe.Field == "" || fe.Msg == "" {
				t.Errorf("%s: field error %+v lacks a name or message", tc.name, fe)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: fields %v, want %v (%v)", tc.name, got, tc.want, err)
		}
	}
}
