package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/internal/app"
)

// TestDemoEndToEnd runs `driftline demo` on kfake and miniredis and checks
// its summary, which it computes by reading the output topics back, and the
// governance loop it shows: alert, retrain, canary steps, promotion.
func TestDemoEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	// The drift is at event 50,000. The governance loop after it (alert,
	// retrain, shadow, canary, 1,000 outcomes as champion) runs on
	// wall-clock ticks while the stream runs at CPU speed: on a loaded
	// machine 50,000 events after the drift were too few for it 4 times in
	// 40 runs (load average 6-7; 75,000 once in 30), so the stream goes on
	// for 100,000.
	const events, driftAt = 150000, 50000
	code := runMain(ctx, []string{"demo", "--events", strconv.Itoa(events), "--drift-at", strconv.Itoa(driftAt), "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("demo exit code %d; stderr:\n%s", code, tail(stderr.String(), 2000))
	}
	var sum demoSummary
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &sum); err != nil {
		t.Fatalf("summary is not one JSON line: %v\n%s", err, stdout.String())
	}
	if sum.Produced != events || sum.Lost == nil || *sum.Lost != 0 || sum.PIILeaks != 0 {
		t.Fatalf("produced %d lost %v pii leaks %d, want %d, 0, 0", sum.Produced, sum.Lost, sum.PIILeaks, events)
	}
	if sum.Predicted != sum.Valid || sum.DLQ != sum.Malformed || sum.Deduped != sum.Duplicates {
		t.Fatalf("predicted %d of %d valid, dlq %d of %d malformed, deduplicated %d of %d duplicates",
			sum.Predicted, sum.Valid, sum.DLQ, sum.Malformed, sum.Deduped, sum.Duplicates)
	}
	if sum.Malformed == 0 || sum.Duplicates == 0 {
		t.Fatalf("the stream should hold malformed rows and duplicates: %+v", sum)
	}
	// One concept drift gives one drift alert, on the error stream.
	var drifts []demoAlert
	for _, a := range sum.Alerts {
		if a.State == "drift" {
			drifts = append(drifts, a)
		}
	}
	if len(drifts) != 1 || drifts[0].Subject != "error" || sum.DriftAlerts != 1 || sum.DriftAt != driftAt {
		t.Errorf("want exactly one drift alert, on subject error; got %+v", sum.Alerts)
	}
	if sum.AlertsDelivered != int64(len(sum.Alerts)) {
		t.Errorf("the alerts router received %d of %d alerts", sum.AlertsDelivered, len(sum.Alerts))
	}
	if !(sum.Accuracy > sum.Baseline) {
		t.Fatalf("prequential accuracy %.3f is not above the majority baseline %.3f", sum.Accuracy, sum.Baseline)
	}
	checkDemoGovernance(t, sum)
}

// checkDemoGovernance: the drift alert made a retrain register a candidate,
// which went through shadow and the canary steps to champion, and the
// summary lists both versions and those rollout events in order.
func checkDemoGovernance(t *testing.T, sum demoSummary) {
	t.Helper()
	var retrained int64
	for _, v := range sum.Versions {
		if v.CreatedBy == "retrain" {
			retrained = v.Version
		}
	}
	if len(sum.Versions) < 2 || retrained == 0 || sum.Champion != retrained {
		var steps []string
		for _, e := range sum.RolloutEvents {
			steps = append(steps, fmt.Sprintf("%s %s v%d: %s %v", e.Who, e.What, e.Version, e.Why, e.Details))
		}
		t.Fatalf("versions %+v, champion %d: want the bootstrap version and a retrained one, which is champion; rollout events:\n%s",
			sum.Versions, sum.Champion, strings.Join(steps, "\n"))
	}
	want := []string{"register retrain", "alias.set retrain", "rollout.advance governor", "alias.set governor",
		"traffic.set governor", "rollout.promote governor", "alias.set governor", "rollout.stable governor"}
	var got []string
	for _, e := range sum.RolloutEvents {
		got = append(got, e.What+" "+e.Who)
	}
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	if i < len(want) {
		t.Fatalf("rollout events %q do not show, in order, %q", got, want)
	}
}

func TestHelpExplainsEveryCommand(t *testing.T) {
	for _, c := range commands() {
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), []string{c.name, "--help"}, &stdout, &stderr); code != 0 {
			t.Errorf("%s --help: exit %d", c.name, code)
		}
		if !strings.Contains(stderr.String(), "Usage: driftline "+c.name) {
			t.Errorf("%s --help does not print its usage:\n%s", c.name, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), []string{"no-such-command"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestValidateSpecNamesFileLineAndField(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	writeFile(t, bad, strings.Replace(string(app.DemoSpec), "type: float, required: true}", "type: flaot, required: true}", 1))
	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), []string{"validate-spec", bad}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if msg := stderr.String(); !strings.Contains(msg, "bad.yaml:") || !strings.Contains(msg, "schema.fields[8].type") || !strings.Contains(msg, `"flaot"`) {
		t.Fatalf("error does not name file, line and field: %s", msg)
	}
	// The blocks other packages own are checked too: the gate, the model.
	for _, tc := range []struct{ edit, field string }{
		{"    min_samples: 1000\n", "    min_samples: 1000\n    metric: auc\n"},
		{"  kind: logistic\n", "  kind: forest\n"},
	} {
		writeFile(t, bad, strings.Replace(string(app.DemoSpec), tc.edit, tc.field, 1))
		stderr.Reset()
		if code := runMain(context.Background(), []string{"validate-spec", bad}, &stdout, &stderr); code != 1 ||
			!strings.Contains(stderr.String(), "bad.yaml:") || !(strings.Contains(stderr.String(), "rollout.gate.metric") || strings.Contains(stderr.String(), "model.kind")) {
			t.Fatalf("validate-spec with %q: exit %d, stderr %s", tc.field, code, stderr.String())
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestDemoEveryFamily: the demo runs with every classifier family of the
// models factory (--model), softmax included, accounting for every event and learning above
// the majority baseline; a regressor is refused for the demo's accuracy
// gate, naming the field.
func TestDemoEveryFamily(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		params []string
	}{
		{"hoeffding_tree", nil},
		{"hat", []string{"--param", "grace_period=100"}},
		{"arf", []string{"--param", "n_models=3"}},
		{"mlp", []string{"--param", "learning_rate=0.01"}},
		{"softmax", nil}, // two outputs per row: P(y=1) is the served score
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := append([]string{"demo", "--events", "12000", "--rate", "4000", "--json", "--model", tc.kind}, tc.params...)
			if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", code, tail(stderr.String(), 2000))
			}
			var sum demoSummary
			if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &sum); err != nil {
				t.Fatalf("summary: %v\n%s", err, stdout.String())
			}
			if sum.Lost == nil || *sum.Lost != 0 || sum.Predicted != sum.Valid || !(sum.Accuracy > sum.Baseline) {
				t.Fatalf("lost %v, predicted %d of %d, accuracy %.3f vs baseline %.3f", sum.Lost, sum.Predicted, sum.Valid, sum.Accuracy, sum.Baseline)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), []string{"demo", "--events", "10", "--model", "arf_regressor"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "rollout.gate.metric") {
		t.Fatalf("a regressor in the demo: exit %d, stderr %s", code, stderr.String())
	}
}
