package app

import (
	"strings"
	"testing"
)

// TestSpecRefusesClassificationMetricForRegression: a linear
// (regression) model cannot be gated on accuracy, the default metric; the
// error names the field.
func TestSpecRefusesClassificationMetricForRegression(t *testing.T) {
	text := strings.Replace(demoSpecWithoutRollout(t), "  kind: logistic\n", "  kind: linear\n", 1) +
		"rollout: {shadow_topic: preds-shadow}\n"
	_, err := ParseSpec("regression.yaml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "rollout.gate.metric: accuracy does not fit a regression model") {
		t.Fatalf("error %v, want one naming rollout.gate.metric", err)
	}
}
