package rollout

import (
	"encoding/json"
	"testing"
)

// A gate stored in a policy record before the snake_case names still reads.
func TestGateReadsLegacyRecord(t *testing.T) {
	var g Gate
	if err := json.Unmarshal([]byte(`{"minSamples":500,"metric":"logloss","maxDelta":0.02,"blockOnOpenDrift":true,"steps":[10,100]}`), &g); err != nil {
		t.Fatal(err)
	}
	if g.MinSamples != 500 || g.MaxDelta != 0.02 || !g.BlockOnOpenDrift || g.Metric != MetricLogLoss {
		t.Fatalf("legacy gate read as %+v", g)
	}
	b, _ := json.Marshal(g)
	var back Gate
	if err := json.Unmarshal(b, &back); err != nil || back.MinSamples != 500 || back.MaxDelta != 0.02 {
		t.Fatalf("round trip %s: %+v %v", b, back, err)
	}
}
