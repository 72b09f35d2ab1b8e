package stages

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/pipeline"
)

// TestScoreWithArms routes p% of events, sticky by event id, to the
// canary, whose predictions carry its arm and version instead of the
// champion's; the shadow scores every event to its own topic only; and a
// Set is seen by the next batch.
func TestScoreWithArms(t *testing.T) {
	spec := testSpec(t, false)
	c := newChain(t, spec, nil)
	newModel := func(version, arm string) *ServedModel {
		l, err := NewLearner(spec, c.fz)
		if err != nil {
			t.Fatal(err)
		}
		return NewServedModel(spec.Model.Name, version, arm, l)
	}
	arms := NewArms(c.champion)
	if err := arms.Set(ArmCanary, newModel("7", ArmShadow)); err == nil {
		t.Fatal("Set accepted a model of another arm")
	}
	if err := arms.Set(ArmChampion, nil); err == nil {
		t.Fatal("Set cleared the champion")
	}
	mustSet := func(arm string, m *ServedModel) {
		t.Helper()
		if err := arms.Set(arm, m); err != nil {
			t.Fatal(err)
		}
	}
	mustSet(ArmCanary, newModel("2", ArmCanary))
	mustSet(ArmShadow, newModel("3", ArmShadow))
	arms.SetCanaryPercent(30)
	score := NewScoreWithArms(spec, arms, "preds-shadow", testKeys().AESKeyID)
	const n = 2000
	_, rows := genEvents(t, 11, n, 50)
	b := newBatch(0, rows...)
	var versions []string
	score.Observe = func(_ context.Context, b *pipeline.Batch) error {
		versions = append([]string(nil), score.Versions()...)
		return nil
	}
	mustProcess(t, b, c.decode, c.validate, c.anon, c.fz, score)
	live := b.Features.Len()
	if live < n*9/10 || len(b.Outputs) != 2*live || len(versions) != live {
		t.Fatalf("%d live rows, %d outputs, %d versions", live, len(b.Outputs), len(versions))
	}
	armOf := map[string]string{}
	canary := 0
	for j, out := range b.Outputs {
		var p prediction
		if err := json.Unmarshal(out.Value, &p); err != nil {
			t.Fatal(err)
		}
		if string(out.Key) != p.EventID {
			t.Fatalf("key %s for event %s", out.Key, p.EventID)
		}
		if j >= live {
			if out.Topic != "preds-shadow" || p.Arm != ArmShadow || p.Version != "3" {
				t.Fatalf("shadow output %d: topic %s arm %s version %s", j, out.Topic, p.Arm, p.Version)
			}
			continue
		}
		want := ArmChampion
		wantV := spec.Model.Version
		if rollout.InCanary([]byte(p.EventID), 30) {
			want, wantV = ArmCanary, "2"
			canary++
		}
		if out.Topic != spec.Topics.Predictions || p.Arm != want || p.Version != wantV || versions[j] != wantV {
			t.Fatalf("event %s: topic %s arm %s version %s (cached %s), want arm %s version %s",
				p.EventID, out.Topic, p.Arm, p.Version, versions[j], want, wantV)
		}
		armOf[p.EventID] = p.Arm
	}
	if share := float64(canary) / float64(live); share < 0.25 || share > 0.35 {
		t.Fatalf("canary share %.3f, want ≈ 0.30", share)
	}

	// Swap: the next batch sees the new champion and no canary or shadow;
	// the same events, replayed, keep their arm while the canary stays.
	mustSet(ArmChampion, newModel("5", ArmChampion))
	mustSet(ArmCanary, nil)
	mustSet(ArmShadow, nil)
	b = newBatch(0, rows...)
	mustProcess(t, b, c.decode, c.validate, c.anon, c.fz, score)
	for _, out := range b.Outputs {
		var p prediction
		if err := json.Unmarshal(out.Value, &p); err != nil {
			t.Fatal(err)
		}
		if out.Topic != spec.Topics.Predictions || p.Arm != ArmChampion || p.Version != "5" {
			t.Fatalf("after swap: topic %s arm %s version %s", out.Topic, p.Arm, p.Version)
		}
	}
	if got := arms.ByVersion("5"); got == nil || got.Arm != ArmChampion {
		t.Fatal("ByVersion does not find the champion")
	}
	if arms.ByVersion("3") != nil {
		t.Fatal("ByVersion finds a cleared arm")
	}
}
