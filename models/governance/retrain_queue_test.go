package governance

import (
	"context"
	"testing"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
)

// slowRows is a Window whose RowsSince holds until release is closed or
// its context ends: a retrain that replays a long history.
type slowRows struct {
	*Window
	started chan struct{}
	release chan struct{}
}

func (s *slowRows) RowsSince(ctx context.Context, since time.Time) (models.Rows, []float32, registry.Source, error) {
	close(s.started)
	select {
	case <-s.release:
	case <-ctx.Done():
		return models.Rows{}, nil, registry.Source{}, context.Cause(ctx)
	}
	return s.Window.RowsSince(ctx, since)
}

// TestGovernorRetrainKeepsTheLeaseAndHandsOverItsTrigger: instance a's
// retrain outlives three intervals; a renews the governor lease while it
// runs, so b cannot take over. Once the lease is lost (b holds it), a's job
// is cancelled and registers nothing, and b, which saw the same alert as a
// non-holder, retrains on the trigger a left queued: one candidate, and
// the trigger done.
func TestGovernorRetrainKeepsTheLeaseAndHandsOverItsTrigger(t *testing.T) {
	ctx := context.Background()
	reg, mini := newTestRegistryMini(t)
	lease := registry.DefaultPrefix + ":lease:" + governorLease(testModel)
	drift := alert.Alert{Detector: "adwin", Subject: alert.SubjectError, ModelVersion: testModel + "@1", State: alert.StateDrift, DedupeKey: "err-1"}
	newInstance := func(holder string, rows RowSource) *Governor {
		g := newTestGovernor(t, reg)
		g.holder, g.interval = holder, 50*time.Millisecond
		g.retrain = &RetrainJob{reg: reg, model: testModel, newLearner: newTestLearner, rows: rows, signature: testSignature, minRows: 200, holdout: 0.2}
		var inbox AlertInbox
		if err := inbox.Receive(ctx, drift); err != nil {
			t.Fatal(err)
		}
		g.source = &retrainSource{model: testModel, onDrift: true, alerts: inbox.Drain}
		return g
	}
	slow := &slowRows{Window: NewWindow("events", 2000, 2, 0), started: make(chan struct{}), release: make(chan struct{})}
	fillWindow(t, slow.Window, 1000, 1)
	fast := NewWindow("events", 2000, 2, 0)
	fillWindow(t, fast, 1000, 2)
	a, b := newInstance("instance-a", slow), newInstance("instance-b", fast)

	aDone := make(chan error, 1)
	go func() { aDone <- a.tick(ctx) }()
	defer close(slow.release)
	select {
	case <-slow.started:
	case <-time.After(10 * time.Second):
		t.Fatal("a's retrain did not start")
	}
	mustTick(t, b) // b sees the alert too, and does not hold the lease
	if b.leader {
		t.Fatal("b took the lease while a held it")
	}

	// Past two of the lease's three intervals: a's renewal brings it back.
	renewed := func() bool {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if mini.Mini.TTL(lease) > 100*time.Millisecond {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
		return false
	}
	for range 3 {
		mini.Mini.FastForward(120 * time.Millisecond)
		if !renewed() {
			t.Fatalf("the lease (ttl %v left) was not renewed while the retrain ran", mini.Mini.TTL(lease))
		}
	}
	mustTick(t, b)
	if b.leader {
		t.Fatal("b took the lease during a's retrain, 360ms (7 intervals) after a's tick")
	}

	// a's lease runs out (a could not renew: say Redis was out of its
	// reach), and b takes it.
	mini.Mini.Del(lease)
	mustTick(t, b)
	if !b.leader {
		t.Fatal("b did not take the free lease")
	}
	select {
	case err := <-aDone:
		if err != nil {
			t.Fatalf("a's tick: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a's retrain went on after a lost the lease")
	}
	if a.leader {
		t.Fatal("a still leads after losing the lease")
	}
	vs, err := reg.Versions(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[1].CreatedBy != whoRetrain || shadowVersion(t, reg) != 2 {
		t.Fatalf("%d versions, shadow %d; want b's one candidate, version 2, in shadow", len(vs), shadowVersion(t, reg))
	}
	if q, err := reg.QueuedRetrains(ctx, testModel); err != nil || len(q) != 0 {
		t.Fatalf("queued after b's retrain: %+v (%v), want none", q, err)
	}
	mustTick(t, b)
	if vs, _ := reg.Versions(ctx, testModel); len(vs) != 2 {
		t.Fatalf("%d versions after another tick, want the trigger retrained once", len(vs))
	}
}

// TestGovernorRetrainStopsWhenTheLeaseCannotBeRenewed: Redis goes away
// during a retrain; once the lease's TTL has passed since its last renewal
// another instance may hold it, so the job is cancelled and the instance
// stops governing.
func TestGovernorRetrainStopsWhenTheLeaseCannotBeRenewed(t *testing.T) {
	ctx := context.Background()
	reg, mini := newTestRegistryMini(t)
	g := newTestGovernor(t, reg)
	g.interval = 50 * time.Millisecond
	slow := &slowRows{Window: NewWindow("events", 2000, 2, 0), started: make(chan struct{}), release: make(chan struct{})}
	defer close(slow.release)
	fillWindow(t, slow.Window, 1000, 1)
	g.retrain = &RetrainJob{reg: reg, model: testModel, newLearner: newTestLearner, rows: slow, signature: testSignature, minRows: 200, holdout: 0.2}
	var inbox AlertInbox
	if err := inbox.Receive(ctx, alert.Alert{Detector: "adwin", Subject: alert.SubjectError, State: alert.StateDrift, DedupeKey: "err-1"}); err != nil {
		t.Fatal(err)
	}
	g.source = &retrainSource{model: testModel, onDrift: true, alerts: inbox.Drain}
	done := make(chan error, 1)
	go func() { done <- g.tick(ctx) }()
	select {
	case <-slow.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the retrain did not start")
	}
	mini.Mini.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the retrain went on with the lease unrenewable")
	}
	if g.leader {
		t.Fatal("the instance still governs")
	}
}
