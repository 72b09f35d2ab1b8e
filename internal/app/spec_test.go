package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/testkit/spectest"
)

const specFile = "specs/payments.yaml"

// gateSpec is a spec with a full rollout.gate block.
const gateSpec = `name: payments
topics: {input: events, predictions: predictions, dlq: events.dlq, labels: labels, alerts: alerts}
kafka: {brokers: [kafka-0:9092]}
schema:
  id_field: event_id
  fields:
    - {name: event_id, type: string, required: true}
    - {name: amount, type: float, required: true}
stages:
  featurize: {numeric: [amount]}
model:
  name: fraud
  kind: logistic
rollout:
  shadow_topic: preds-shadow
  gate:
    min_samples: 500
    metric: logloss
    max_delta: 0.02
    confidence: 0.9
    failure_limit: 2
    consecutive_error_limit: 3
    steps: [10, 50, 100]
    bake_samples: 700
    block_on_open_drift: false
    interval: 250ms
`

func parseErr(name string, data []byte) error {
	_, err := app.ParseSpec(name, data)
	return err
}

func TestRolloutGateFromSpec(t *testing.T) {
	s, err := app.ParseSpec(specFile, []byte(gateSpec))
	if err != nil {
		t.Fatal(err)
	}
	g, interval, err := app.RolloutGate(s)
	if err != nil {
		t.Fatal(err)
	}
	want := rollout.Gate{MinSamples: 500, Metric: rollout.MetricLogLoss, MaxDelta: 0.02, Confidence: 0.9, FailureLimit: 2,
		ConsecutiveErrorLimit: 3, Steps: []int{10, 50, 100}, BakeSamples: 700, BlockOnOpenDrift: false}
	if g.MinSamples != want.MinSamples || g.Metric != want.Metric || g.MaxDelta != want.MaxDelta || g.Confidence != want.Confidence ||
		g.FailureLimit != want.FailureLimit || g.ConsecutiveErrorLimit != want.ConsecutiveErrorLimit || len(g.Steps) != 3 ||
		g.BakeSamples != want.BakeSamples || g.BlockOnOpenDrift || interval != 250*time.Millisecond {
		t.Fatalf("gate %+v every %s, want %+v every 250ms", g, interval, want)
	}
	// Without a gate block, the default gate.
	s, err = app.ParseSpec(specFile, []byte(gateSpec[:strings.Index(gateSpec, "  gate:\n")]))
	if err != nil {
		t.Fatal(err)
	}
	if g, interval, err = app.RolloutGate(s); err != nil || g.Metric != rollout.MetricAccuracy || g.MaxDelta != rollout.DefaultMaxDelta || interval != rollout.DefaultInterval {
		t.Fatalf("default gate %+v every %s: %v", g, interval, err)
	}
}

// TestRolloutGateErrors: each bad gate field is reported at its line,
// named rollout.gate.<field>.
func TestRolloutGateErrors(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, field, at, msg string
	}{
		{"negative min_samples", "    min_samples: 500", "    min_samples: -1", "rollout.gate.min_samples", "min_samples: -1", "must be at least 1"},
		{"auc metric", "    metric: logloss", "    metric: auc", "rollout.gate.metric", "metric: auc", `"auc" is not one of accuracy, logloss, mae, rmse`},
		{"unknown metric", "    metric: logloss", "    metric: f1", "rollout.gate.metric", "metric: f1", "is not one of"},
		{"accuracy on a regression", "  kind: logistic", "  kind: linear", "rollout.gate.metric", "metric: logloss", "logloss does not fit a regression model; use mae or rmse (model.kind linear is a regression)"},
		{"logloss on a multi-class model", "  kind: logistic", "  kind: softmax\n  classes: 4", "rollout.gate.metric", "metric: logloss", "logloss is not defined for a multi-class model (model.classes 4): use accuracy"},
		{"negative max_delta", "    max_delta: 0.02", "    max_delta: -0.1", "rollout.gate.max_delta", "max_delta: -0.1", "finite number ≥ 0"},
		{"NaN max_delta", "    max_delta: 0.02", "    max_delta: .nan", "rollout.gate.max_delta", "max_delta: .nan", "finite number ≥ 0"},
		{"confidence 1", "    confidence: 0.9", "    confidence: 1", "rollout.gate.confidence", "confidence: 1", "[0.5, 1)"},
		{"negative failure_limit", "    failure_limit: 2", "    failure_limit: -1", "rollout.gate.failure_limit", "failure_limit: -1", "must not be negative"},
		{"negative consecutive_error_limit", "    consecutive_error_limit: 3", "    consecutive_error_limit: -2", "rollout.gate.consecutive_error_limit", "consecutive_error_limit: -2", "must not be negative"},
		{"steps not increasing", "    steps: [10, 50, 100]", "    steps: [5, 3, 100]", "rollout.gate.steps", "steps: [5, 3, 100]", "must increase strictly within 1..100"},
		{"steps not ending at 100", "    steps: [10, 50, 100]", "    steps: [10, 50]", "rollout.gate.steps", "steps: [10, 50]", "end at 100"},
		{"negative bake_samples", "    bake_samples: 700", "    bake_samples: -7", "rollout.gate.bake_samples", "bake_samples: -7", "must be at least 1"},
		{"interval too long", "    interval: 250ms", "    interval: 2m", "rollout.gate.interval", "interval: 2m", "between 1ms and 1m0s, got 2m0s"},
		{"bad interval", "    interval: 250ms", "    interval: often", "rollout.gate.interval", "interval: often", "not a duration"},
		{"block_on_open_drift not a bool", "    block_on_open_drift: false", "    block_on_open_drift: sometimes", "rollout.gate.block_on_open_drift", "block_on_open_drift: sometimes", `"sometimes" is not true or false`},
		{"unknown gate key", "    interval: 250ms", "    interval: 250ms\n    max_failures: 3", "rollout.gate.max_failures", "max_failures: 3", `unknown key "max_failures"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Count(gateSpec, tc.old) != 1 {
				t.Fatalf("%q is not once in the spec", tc.old)
			}
			spectest.CheckError(t, parseErr, specFile, strings.Replace(gateSpec, tc.old, tc.new, 1), tc.field, tc.at, tc.msg)
		})
	}
}

// TestModelKindAndParams: model.kind and model.params are checked by the
// models factory, each error at the line of the field that set it.
func TestModelKindAndParams(t *testing.T) {
	base := gateSpec[:strings.Index(gateSpec, "rollout:\n")]
	for _, tc := range []struct{ name, old, new, field, at, msg string }{
		{"unknown kind", "  kind: logistic", "  kind: forest", "model.kind", "kind: forest", `unknown learner kind "forest"`},
		{"unknown param", "  kind: logistic", "  kind: hat\n  params: {grace: 5}", "model.params.grace", "params: {grace: 5}", `hat has no param "grace"`},
		{"bad param", "  kind: logistic", "  kind: arf\n  params:\n    n_models: many", "model.params.n_models", "n_models: many", "not an integer"},
		{"l1 without ftrl", "  kind: logistic", "  kind: logistic\n  l1: 0.1", "model.l1", "l1: 0.1", "l1 needs the ftrl optimizer"},
		{"onnxruntime for a tree", "  kind: logistic", "  kind: hat\n  engine: onnxruntime", "model.engine", "engine: onnxruntime", "MLP kinds"},
		{"threshold on a regression", "  kind: logistic", "  kind: linear\n  threshold: 0.3", "model.threshold", "threshold: 0.3", "applies to binary models"},
		{"threshold on softmax", "  kind: logistic", "  kind: softmax\n  classes: 3\n  threshold: 0.3", "model.threshold", "threshold: 0.3", "applies to binary models"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spectest.CheckError(t, parseErr, specFile, strings.Replace(base, tc.old, tc.new, 1), tc.field, tc.at, tc.msg)
		})
	}
	for _, ok := range []string{"  kind: hat\n  params: {grace_period: 50, seed: 3}", "  kind: mlp\n  params: {hidden: \"16,8\"}\n  engine: onnxruntime", "  kind: arf_regressor", "  kind: hat\n  threshold: 0.2"} {
		if _, err := app.ParseSpec(specFile, []byte(strings.Replace(base, "  kind: logistic", ok, 1))); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
