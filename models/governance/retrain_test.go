package governance

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/admintest"
	"github.com/driftline/driftline/testkit/redistest"
)

const testModel = "gov-test"

var testSignature = registry.Signature{
	Inputs:  []registry.Tensor{{Name: "features", DType: "float32", Shape: []int64{-1, 2}}},
	Outputs: []registry.Tensor{{Name: "probability", DType: "float32", Shape: []int64{-1, 1}}},
}

func newTestLearner() (models.Learner, error) {
	cfg := models.LinearConfig{NumDense: 2, Link: models.LinkSigmoid}
	cfg.Optimizer.Kind = models.OptimizerAdaGrad
	cfg.Optimizer.LearningRate = 0.1
	return models.NewLinear(cfg)
}

// newTestRegistry returns a registry on miniredis with version 1 of
// testModel registered and aliased champion.
func newTestRegistry(t *testing.T) (*registry.Registry, redis.UniversalClient) {
	t.Helper()
	reg, r := newTestRegistryMini(t)
	return reg, r.Client(t)
}

// newTestRegistryMini is newTestRegistry that also returns its miniredis,
// for tests that move Redis time (lease expiry).
func newTestRegistryMini(t *testing.T) (*registry.Registry, *redistest.Redis) {
	t.Helper()
	r := redistest.StartMiniredis(t)
	reg, err := registry.New(r.Client(t), registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := newTestLearner()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := reg.Register(ctx, registry.Registration{Model: testModel, Signature: testSignature, Snapshot: snap, Who: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: testModel, Alias: registry.AliasChampion, Version: v.Number, Expect: 0, Who: "test"}); err != nil {
		t.Fatal(err)
	}
	return reg, r
}

// fillWindow adds n rows of a separable concept (label = x0 > x1), as the
// label join's OnLearned hook does.
func fillWindow(t *testing.T, w *Window, n int, seed uint64) {
	t.Helper()
	fillWindowAt(w, n, seed, time.Now())
}

// fillWindowAt is fillWindow with the rows learned at at.
func fillWindowAt(w *Window, n int, seed uint64, at time.Time) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for range n {
		x0, x1 := rng.Float32(), rng.Float32()
		y := float32(0)
		if x0 > x1 {
			y = 1
		}
		w.addAt(&models.Rows{N: 1, NumDense: 2, Dense: []float32{x0, x1}}, []float32{y}, at)
	}
}

func TestRetrainWindowRing(t *testing.T) {
	w := NewWindow("events", 3, 1, 0)
	for i := range 5 {
		w.addAt(&models.Rows{N: 1, NumDense: 1, Dense: []float32{float32(i)}}, []float32{float32(i % 2)}, time.Unix(int64(i), 0))
	}
	rows, y, from, to := w.rows(time.Time{})
	if rows.N != 3 || rows.Dense[0] != 2 || rows.Dense[2] != 4 || y[0] != 0 || y[1] != 1 {
		t.Fatalf("window %+v labels %v, want the last 3 rows oldest first", rows, y)
	}
	if from.Unix() != 2 || to.Unix() != 4 {
		t.Fatalf("span %v–%v, want 2–4", from.Unix(), to.Unix())
	}
	// Rows since a time: the ring's newest, found across the wrap.
	if n := w.LenSince(time.Unix(3, 0)); n != 2 {
		t.Fatalf("LenSince(3) = %d, want 2", n)
	}
	rows, y, from, _ = w.rows(time.Unix(3, 0))
	if rows.N != 2 || rows.Dense[0] != 3 || rows.Dense[1] != 4 || y[0] != 1 || from.Unix() != 3 {
		t.Fatalf("rows since 3: %+v labels %v from %v, want 3 and 4", rows, y, from.Unix())
	}
	if n := w.LenSince(time.Unix(9, 0)); n != 0 {
		t.Fatalf("LenSince(9) = %d, want 0", n)
	}
}

// TestRetrainOnDriftAlert: an error-drift alert on the champion registers
// version 2 with parent 1 and its holdout accuracy, and moves shadow to it
// with who "retrain" and why the alert's dedupe key.
func TestRetrainOnDriftAlert(t *testing.T) {
	ctx := context.Background()
	reg, _ := newTestRegistry(t)
	w := NewWindow("events", 2000, 2, 0)
	fillWindow(t, w, 1500, 7)
	job := &RetrainJob{reg: reg, model: testModel, newLearner: newTestLearner, rows: w, signature: testSignature, minRows: 200, holdout: 0.2}
	raised := []alert.Alert{
		{Detector: "ks", Subject: "x0", State: alert.StateDrift, DedupeKey: "x0-key"},
		{Detector: "adwin", Subject: "error", ModelVersion: testModel + "@1", State: alert.StateDrift, DedupeKey: "err-key"},
	}
	src := &retrainSource{model: testModel, onDrift: true, alerts: func() []alert.Alert { r := raised; raised = nil; return r }}
	triggers, seen := src.alertTriggers()
	if len(triggers) != 1 || triggers[0].Key != "err-key" || len(seen) != 2 {
		t.Fatalf("triggers %+v (seen %d), want one for err-key", triggers, len(seen))
	}
	if again, _ := src.alertTriggers(); len(again) != 0 {
		t.Fatalf("alert retriggered: %+v", again)
	}
	v, err := job.run(ctx, triggers[0], time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Number != 2 || v.Lineage.Parent != 1 || v.CreatedBy != whoRetrain {
		t.Fatalf("version %d parent %d by %q, want 2, 1, retrain", v.Number, v.Lineage.Parent, v.CreatedBy)
	}
	if acc := v.Lineage.Metrics["accuracy"]; acc < 0.9 {
		t.Fatalf("holdout accuracy %v < 0.9 on a separable concept", acc)
	}
	if v.Lineage.Source.Topic != "events" || v.Lineage.Source.From.IsZero() {
		t.Fatalf("source %+v", v.Lineage.Source)
	}
	set, err := reg.Aliases(ctx, testModel)
	if err != nil {
		t.Fatal(err)
	}
	if set.Versions[registry.AliasShadow] != 2 || set.Versions[registry.AliasChampion] != 1 {
		t.Fatalf("aliases %v, want shadow 2, champion 1", set.Versions)
	}
	evs, err := reg.ReadAudit(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.What != registry.WhatAliasSet || last.Who != whoRetrain || last.Why != "err-key" || last.Details["alias"] != registry.AliasShadow {
		t.Fatalf("last audit event %+v", last)
	}
	data, err := reg.Artifact(ctx, testModel, 2, registry.ArtifactSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := models.UnmarshalLearner(data); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
}

// TestRetrainRequestStream: requests already made at start are not
// replayed; a new request for the model triggers, others do not.
func TestRetrainRequestStream(t *testing.T) {
	ctx := context.Background()
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	request := func(model string) string {
		var res struct{ Request string }
		f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/"+model+"/retrain", map[string]string{"reason": "stale"}, http.StatusAccepted, &res)
		return res.Request
	}
	request(admintest.Model)
	src := &retrainSource{model: admintest.Model, admin: f.API}
	for range 2 {
		if tr, err := src.requestTriggers(ctx); err != nil || len(tr) != 0 {
			t.Fatalf("old request triggered: %+v %v", tr, err)
		}
	}
	registerOther(t, f.Registry, "other-model")
	request("other-model")
	id := request(admintest.Model)
	tr, err := src.requestTriggers(ctx)
	if err != nil || len(tr) != 1 || tr[0].Key != id || tr[0].Kind != "request" {
		t.Fatalf("triggers %+v %v, want one for %s", tr, err, id)
	}
	if tr, _ := src.requestTriggers(ctx); len(tr) != 0 {
		t.Fatalf("request replayed: %+v", tr)
	}
}

// registerOther registers a version of model, so the admin API knows it.
func registerOther(t *testing.T, reg *registry.Registry, model string) {
	t.Helper()
	ctx := context.Background()
	v, err := reg.Register(ctx, registry.Registration{Model: model, Signature: testSignature, Snapshot: []byte("x"), Who: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: model, Alias: registry.AliasChampion, Version: v.Number, Expect: 0, Who: "test"}); err != nil {
		t.Fatal(err)
	}
}

// TestRetrainTooFewRows: an empty window registers nothing.
func TestRetrainTooFewRows(t *testing.T) {
	reg, _ := newTestRegistry(t)
	job := &RetrainJob{reg: reg, model: testModel, newLearner: newTestLearner, rows: NewWindow("events", 10, 2, 0), signature: testSignature}
	if _, err := job.run(context.Background(), retrainTrigger{Kind: "drift", Key: "k"}, time.Time{}); err == nil {
		t.Fatal("retrained on an empty window")
	}
}
