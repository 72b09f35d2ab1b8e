package rollout

import (
	"testing"
	"time"
)

func TestControllerProgress(t *testing.T) {
	c, err := NewController(Gate{MinSamples: 100, MaxDelta: 0.05, Steps: []int{50, 100}, BakeSamples: 40}, "test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	champ := Stats{N: 1000, Value: 0.8}
	if d, n := c.Progress(); d != 0 || n != 100 {
		t.Fatalf("fresh: %d of %d, want 0 of 100", d, n)
	}
	c.Evaluate(Stats{N: 60, Value: 0.9}, champ, false, now)
	if d, n := c.Progress(); d != 60 || n != 100 {
		t.Fatalf("shadow: %d of %d, want 60 of 100", d, n)
	}
	if dec := c.Evaluate(Stats{N: 120, Value: 0.9}, champ, false, now); dec.Phase != PhaseCanary {
		t.Fatalf("decision %+v, want canary", dec)
	}
	if d, n := c.Progress(); d != 0 || n != 100 {
		t.Fatalf("canary step start: %d of %d, want 0 of 100", d, n)
	}
	c.Evaluate(Stats{N: 150, Value: 0.9}, champ, false, now)
	if d, _ := c.Progress(); d != 30 {
		t.Fatalf("canary: %d done, want 30", d)
	}
	if dec := c.Evaluate(Stats{N: 230, Value: 0.9}, champ, false, now); dec.Phase != PhasePromoted {
		t.Fatalf("decision %+v, want promoted", dec)
	}
	if d, n := c.Progress(); d != 0 || n != 40 {
		t.Fatalf("bake start: %d of %d, want 0 of 40", d, n)
	}
}
