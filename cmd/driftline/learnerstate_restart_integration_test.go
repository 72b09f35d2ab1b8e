//go:build integration

package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// Restart scenario parameters.
const (
	restartLearn   = 5000 // labelled events before the kill
	restartAfter   = 1000 // events predicted after the restart
	restartPreKill = 2000 // the last events before the kill whose served accuracy is the reference
)

// TestIntegrationRestartServesWhatWasLearned: `driftline run` (the demo
// spec with its rollout block and a learner-state log) learns from 5,000
// labels, publishes, and is SIGKILLed. The restarted process is ready only
// after it restored the champion's state from the log: of the next 1,000
// predictions at most 1% have score exactly 0.5 (the untrained model's
// score for every event), and their accuracy is within 1 point of the
// accuracy served before the kill.
func TestIntegrationRestartServesWhatWasLearned(t *testing.T) {
	broker := kafkatest.StartKafka(t)
	rds := redistest.StartRedis(t)
	p := statePipelineSpec(t, broker, rds.Addr, "restart", true, 4, 4, "publish_interval: 200ms", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := buildDriftline(t)
	began := time.Now()

	run1 := startInstance(t, bin, p, "run1")
	waitFor(t, ctx, "run1 ready", run1.ready)
	learn := streams.Config{Concept: streams.ConceptSEA, Seed: 21}
	if _, err := p.produce(ctx, broker, learn, restartLearn, 2000, 50*time.Millisecond, 50*time.Millisecond); err != nil {
		t.Fatalf("produce: %v", err)
	}
	champion := "1" // the spec's model, registered as version 1 at the first start
	waitFor(t, ctx, "every label learned and published", func() bool {
		rec := latestStates(t, broker, p)[champion]
		return rec != nil && rec.Learned == restartLearn
	})
	run1.stop(syscall.SIGKILL)
	killed := time.Now()

	run2 := startInstance(t, bin, p, "run2")
	waitFor(t, ctx, "run2 ready", run2.ready)
	restored := time.Since(killed)
	if got := run2.metrics("driftline_model_state_learned_labels")[p.model(champion)]; got != restartLearn {
		t.Fatalf("ready, run2 serves a state of %v labels, want the %d learned", got, restartLearn)
	}
	after := streams.Config{Concept: streams.ConceptSEA, Seed: 22}
	if _, err := p.produce(ctx, broker, after, restartAfter, 2000, -1, 0); err != nil {
		t.Fatalf("produce: %v", err)
	}
	afterLabels, afterPrefix := streamLabels(t, after, restartAfter)
	waitFor(t, ctx, "every event after the restart predicted", func() bool {
		_, seen := predictionsOf(t, broker, p, afterPrefix, restartAfter)
		for _, s := range seen {
			if !s {
				return false
			}
		}
		return true
	})
	preds, seen := predictionsOf(t, broker, p, afterPrefix, restartAfter)
	cold := 0
	for _, pr := range preds {
		if pr.Score == 0.5 {
			cold++
		}
	}
	accAfter, _ := accuracy(preds, seen, afterLabels, 0, restartAfter)
	learnLabels, learnPrefix := streamLabels(t, learn, restartLearn)
	prePreds, preSeen := predictionsOf(t, broker, p, learnPrefix, restartLearn)
	accBefore, nBefore := accuracy(prePreds, preSeen, learnLabels, restartLearn-restartPreKill, restartLearn)
	t.Logf("restart: run2 ready %s after the SIGKILL; of the %d predictions after it %d have score 0.5; accuracy %.4f after, %.4f over the last %d before the kill (test took %s)",
		restored.Round(time.Millisecond), restartAfter, cold, accAfter, accBefore, nBefore, time.Since(began).Round(time.Second))
	if cold > restartAfter/100 {
		t.Errorf("%d of %d predictions after the restart have score 0.5 (a cold model), want at most 1%%", cold, restartAfter)
	}
	if d := accAfter - accBefore; d < -0.01 || d > 0.01 {
		t.Errorf("accuracy after the restart %.4f, %+.2f points from %.4f before the kill; want within 1 point", accAfter, 100*d, accBefore)
	}
}
