package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runScenario runs `driftline demo --spec FILE` and returns its summary,
// after checking that nothing was lost and no plaintext PII came out.
func runScenario(t *testing.T, spec string, args ...string) demoSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := runMain(ctx, append([]string{"demo", "--spec", spec, "--json"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("demo --spec %s exit code %d; stderr:\n%s", spec, code, tail(stderr.String(), 3000))
	}
	var sum demoSummary
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &sum); err != nil {
		t.Fatalf("summary is not one JSON line: %v\n%s", err, stdout.String())
	}
	if sum.Lost == nil || *sum.Lost != 0 || sum.PIILeaks != 0 || sum.Predicted != sum.Valid || sum.DLQ != sum.Malformed || sum.Malformed == 0 {
		t.Fatalf("%s: produced %d, valid %d predicted %d, malformed %d dlq %d, lost %v, pii leaks %d",
			spec, sum.Produced, sum.Valid, sum.Predicted, sum.Malformed, sum.DLQ, sum.Lost, sum.PIILeaks)
	}
	return sum
}

// driftAlerts are the summary's drift alerts, oldest first.
func driftAlerts(sum demoSummary) []demoAlert {
	var out []demoAlert
	for _, a := range sum.Alerts {
		if a.State == "drift" {
			out = append(out, a)
		}
	}
	return out
}

// scenarioDrift is a scenario's run and how its scripted drift shows: the
// detector and subject of the drift alert the monitor must raise for it.
type scenarioDrift struct {
	name              string
	events            string
	detector, subject string
	check             func(t *testing.T, sum demoSummary) // the scenario's own checks of the drift run
}

// The text models beat the majority class.
func beatsBaseline(t *testing.T, sum demoSummary) {
	if !(sum.Accuracy > sum.Baseline) {
		t.Errorf("prequential accuracy %.3f is not above the majority baseline %.3f", sum.Accuracy, sum.Baseline)
	}
}

var scenarioDrifts = []scenarioDrift{
	// The intent mix moves: the message words' distribution.
	{"customer-service", "40000", "ChiSquare", "message", beatsBaseline},
	// ACME's news turns negative: the headline words' distribution.
	{"financial-sentiment", "40000", "ChiSquare", "headline", beatsBaseline},
	// Traffic moves to mobile web, whose click rate triples: the device
	// mix. Hashed high-cardinality ids, FTRL, labels late or never: a CTR
	// with its log loss per version and over the run. No bound on the
	// values: the last window's log loss depends on the order the labels
	// came in (clicks come before non-clicks; the end of a quiet run is
	// the last impressions' non-clicks, a stalled one ends on a mix), and
	// the run's is dominated by the start, where the events predicted
	// before the first non-click came were scored by a model that had
	// learned clicks only.
	{"click-through", "80000", "ChiSquare", "device", func(t *testing.T, sum demoSummary) {
		if len(sum.Prequential) != 1 || sum.Prequential[0].Version != "1" || !(sum.Prequential[0].LogLoss > 0) || math.IsInf(sum.Prequential[0].LogLoss, 0) {
			t.Errorf("per-version prequential metrics %+v: want version 1's windowed log loss", sum.Prequential)
		}
		if !(sum.LogLoss > 0 && sum.BaseRateLogLoss > 0 && sum.BaseRateLogLoss < math.Ln2) || math.IsInf(sum.LogLoss, 0) {
			t.Errorf("log loss over the run %v, base rate's %v: want both, the base rate's below ln 2 (clicks are rare)", sum.LogLoss, sum.BaseRateLogLoss)
		}
		if sum.Labels >= sum.Valid {
			t.Errorf("%d labels for %d valid events: some labels should never come", sum.Labels, sum.Valid)
		}
	}},
}

// Each scenario of deploy/examples runs live twice. With its scripted
// drift (at --events/2): nothing lost, no plaintext PII (free text
// included) in any output, and exactly one drift alert, on the subject the
// drift moves, raised once the monitor had seen at least as many rows as
// the stream had events before the drift, so that its window held drifted
// rows (fewer rows than events reach the monitor: malformed rows and
// duplicates do not). With the drift moved past the end (--drift-at beyond --events),
// the same stream raises no drift alert: the alert is the drift's, not
// the online model's learning (the specs watch their inputs, not the
// predictions, whose distribution moves while a cold model learns, nor
// the errors; see the specs' comments).
func TestScenarioDriftAlerts(t *testing.T) {
	for _, sc := range scenarioDrifts {
		t.Run(sc.name, func(t *testing.T) {
			spec := filepath.Join("../../deploy/examples", sc.name+".yaml")
			sum := runScenario(t, spec, "--events", sc.events)
			t.Logf("drift at event %d: alerts %+v", sum.DriftAt, sum.Alerts)
			got := driftAlerts(sum)
			if len(got) != 1 || sum.DriftAlerts != 1 {
				t.Errorf("want one drift alert for the drift at event %d; got %d", sum.DriftAt, sum.DriftAlerts)
			}
			if len(got) > 0 {
				if a := got[0]; a.Detector != sc.detector || a.Subject != sc.subject || a.Rows < uint64(sum.DriftAt) {
					t.Errorf("first drift alert: %s on %q after %d rows; want %s on %q after at least %d rows (the drift's event)",
						a.Detector, a.Subject, a.Rows, sc.detector, sc.subject, sum.DriftAt)
				}
			}
			sc.check(t, sum)

			control := runScenario(t, spec, "--events", sc.events, "--drift-at", "1000000000")
			t.Logf("no drift: alerts %+v", control.Alerts)
			if control.DriftAlerts != 0 {
				t.Errorf("without the drift: %d drift alerts, want none", control.DriftAlerts)
			}
		})
	}
}

// The customer-service read-back counts leaks: the same stream through the
// spec without its text PII stage leaks personal data from the messages.
func TestScenarioLeakCheckSeesFreeTextPII(t *testing.T) {
	data, err := os.ReadFile("../../deploy/examples/customer-service.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(data)
	start, end := strings.Index(y, "    pii:\n"), strings.Index(y, "    tokens:\n")
	if start < 0 || end < start {
		t.Fatal("customer-service.yaml has no stages.text.pii block before tokens")
	}
	path := filepath.Join(t.TempDir(), "customer-service.yaml")
	if err := os.WriteFile(path, []byte(y[:start]+y[end:]), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if code := runMain(ctx, []string{"demo", "--spec", path, "--events", "5000", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d: %s", code, tail(stderr.String(), 2000))
	}
	var sum demoSummary
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.PIILeaks < 100 {
		t.Fatalf("without the text PII stage the read-back found %d leaks, want hundreds", sum.PIILeaks)
	}
}
