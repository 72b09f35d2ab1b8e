package adminapi_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/testkit/admintest"
	"github.com/driftline/driftline/testkit/redistest"
)

// fixedStatus is a StatusSource with fixed answers: a fake for the HTTP
// layer (internal/app's real source is tested there).
type fixedStatus struct{}

func (fixedStatus) Pipeline() adminapi.PipelineStatus {
	return adminapi.PipelineStatus{Pipeline: "fraud", In: 10, Out: 8, DLQ: 1, Duplicates: 1, InPerS: adminapi.Number(math.NaN()),
		Partitions: []adminapi.PartitionStatus{{Topic: "events", Partition: 0, In: 10, Lag: 3}},
		DLQReasons: []adminapi.DLQReason{{Reason: "validate.range", Total: 1, PerS: 0.5}}}
}

func (fixedStatus) History() adminapi.History {
	return adminapi.History{IntervalS: 1, Capacity: 10, Points: []adminapi.HistoryPoint{{At: time.Unix(1, 0), InPerS: 5}}}
}

func (fixedStatus) Drift() (distribution.Report, []alert.Alert, bool) {
	return distribution.Report{Subjects: []distribution.SubjectReport{{Subject: "amount", State: "drift", PSI: 0.4}}},
		[]alert.Alert{{Detector: "KS", Subject: "amount", State: alert.StateDrift}}, true
}

func (fixedStatus) Rollout(model string) (rollout.Status, bool) {
	if model != admintest.Model {
		return rollout.Status{}, false
	}
	return rollout.Status{Model: model, Leader: true, Candidate: 2, Phase: rollout.PhaseCanary, Step: 0, Percent: 50, StepDone: 10, StepNeeded: 100}, true
}

func newStatusFixture(t *testing.T, public bool) *admintest.Fixture {
	t.Helper()
	return admintest.StartWith(t, redistest.StartMiniredis(t).Client(t), func(c *adminapi.Config) {
		c.Status, c.PublicStatus = fixedStatus{}, public
	})
}

func TestStatusEndpointsNeedAViewer(t *testing.T) {
	f := newStatusFixture(t, false)
	for _, path := range []string{"/api/v1/status", "/api/v1/history", "/api/v1/drift", "/api/v1/models/fraud/rollout"} {
		f.WantError(t, "", http.MethodGet, path, nil, http.StatusUnauthorized, "missing bearer token")
	}
	var st adminapi.PipelineStatus
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/status", nil, http.StatusOK, &st)
	if st.In != 10 || len(st.Partitions) != 1 || st.Partitions[0].Lag != 3 || st.DLQReasons[0].Reason != "validate.range" || !math.IsNaN(float64(st.InPerS)) {
		t.Fatalf("status %+v", st)
	}
	_, raw, _ := f.Call(t, f.Viewer, http.MethodGet, "/api/v1/status", nil)
	if !strings.Contains(string(raw), `"in_per_s": null`) {
		t.Errorf("a rate without data is not null: %s", raw)
	}
	var dv adminapi.DriftView
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/drift", nil, http.StatusOK, &dv)
	if len(dv.Report.Subjects) != 1 || dv.Report.Subjects[0].Subject != "amount" || len(dv.Alerts) != 1 {
		t.Fatalf("drift %+v", dv)
	}
	var rs rollout.Status
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud/rollout", nil, http.StatusOK, &rs)
	if rs.Phase != rollout.PhaseCanary || rs.Percent != 50 || rs.StepNeeded != 100 {
		t.Fatalf("rollout %+v", rs)
	}
	f.WantError(t, f.Viewer, http.MethodGet, "/api/v1/models/other/rollout", nil, http.StatusNotFound, "no governor")
}

func TestPublicStatusReadsWithoutAToken(t *testing.T) {
	f := newStatusFixture(t, true)
	var who adminapi.Identity
	f.MustCall(t, "", http.MethodGet, "/api/v1/whoami", nil, http.StatusOK, &who)
	if who.Name != "anonymous" || who.Role != adminapi.RoleViewer {
		t.Fatalf("whoami without a token: %+v", who)
	}
	for _, path := range []string{"/api/v1/status", "/api/v1/history", "/api/v1/drift", "/api/v1/models", "/api/v1/models/fraud", "/api/v1/audit"} {
		f.MustCall(t, "", http.MethodGet, path, nil, http.StatusOK, nil)
	}
	// Writes, token lists and downloads still need a token; a token still counts.
	f.WantError(t, "", http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "x"}, http.StatusUnauthorized)
	f.WantError(t, "", http.MethodPost, "/api/v1/models/fraud/abort", map[string]any{"reason": "x"}, http.StatusUnauthorized)
	f.WantError(t, "", http.MethodGet, "/api/v1/tokens", nil, http.StatusUnauthorized)
	c, err := adminapi.NewClient(f.URL, "x", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var se *adminapi.StatusError
	if _, err := c.Download(context.Background(), "fraud", "1", "snapshot"); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("download with a bad token: %v, want 401", err)
	}
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/whoami", nil, http.StatusOK, &who)
	if who.Name != "watcher" {
		t.Fatalf("whoami with a token under public status: %+v", who)
	}
}

func TestAbortWithdrawsTheCandidate(t *testing.T) {
	f := newStatusFixture(t, false)
	ctx := context.Background()
	if _, err := f.Registry.MoveAlias(ctx, registry.AliasMove{Model: "fraud", Alias: registry.AliasCanary, Version: 3, Who: "governor"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Registry.SetTraffic(ctx, registry.TrafficMove{Model: "fraud", Percent: 25, Who: "governor"}); err != nil {
		t.Fatal(err)
	}
	f.WantError(t, f.Viewer, http.MethodPost, "/api/v1/models/fraud/abort", map[string]string{"reason": "r"}, http.StatusForbidden)
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/abort", map[string]string{}, http.StatusBadRequest, "reason")
	var res adminapi.AbortResult
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/abort", map[string]string{"reason": "error budget burned"}, http.StatusOK, &res)
	if res.Candidate != 3 || len(res.Aliases) != 1 || res.Aliases[0] != registry.AliasCanary {
		t.Fatalf("abort answered %+v", res)
	}
	set, err := f.Registry.Aliases(ctx, "fraud")
	if err != nil {
		t.Fatal(err)
	}
	if set.Versions[registry.AliasCanary] != 0 || set.CanaryPercent != 0 || set.Versions[registry.AliasChampion] != 1 {
		t.Fatalf("aliases after abort %+v", set)
	}
	if e := f.LastAudit(t); e.What != adminapi.WhatRolloutAbort || e.Who != "ops" || e.Version != 3 || e.Why != "error budget burned" {
		t.Fatalf("last audit %+v", e)
	}
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/abort", map[string]string{"reason": "again"}, http.StatusConflict, "no canary or shadow")
}

func TestDownloadSnapshot(t *testing.T) {
	f := newStatusFixture(t, false)
	ctx := context.Background()
	c, err := adminapi.NewClient(f.URL, f.Viewer, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Download(ctx, "fraud", "2", "snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if a.Version != 2 || string(a.Data) != "snapshot 2" {
		t.Fatalf("downloaded %+v", a)
	}
	if a, err = c.Download(ctx, "fraud", "champion", "snapshot"); err != nil || a.Version != 1 || string(a.Data) != "snapshot 1" {
		t.Fatalf("download of the champion alias: %+v, %v", a, err)
	}
	var se *adminapi.StatusError
	for _, tc := range []struct{ version, artifact string }{{"2", "onnx"}, {"9", "snapshot"}, {"canary", "snapshot"}, {"2", "weights"}} {
		if _, err := c.Download(ctx, "fraud", tc.version, tc.artifact); !errors.As(err, &se) || se.Status != http.StatusNotFound {
			t.Errorf("download %s/%s: %v, want 404", tc.version, tc.artifact, err)
		}
	}
}

func TestAuditNewest(t *testing.T) {
	f := newStatusFixture(t, false)
	ctx := context.Background()
	for _, why := range []string{"a", "b", "c"} {
		if _, err := f.Registry.AppendAudit(ctx, registry.Event{Who: "w", What: "note", Model: "fraud", Why: why}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.Registry.AppendAudit(ctx, registry.Event{Who: "w", What: "note", Model: "other", Why: "d"}); err != nil {
		t.Fatal(err)
	}
	c, err := adminapi.NewClient(f.URL, f.Viewer, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	whys := func(p adminapi.AuditPage) string {
		var b strings.Builder
		for _, e := range p.Events {
			b.WriteString(e.Why)
		}
		return b.String()
	}
	p, err := c.AuditNewest(ctx, "", "0", 2)
	if err != nil || whys(p) != "cd" {
		t.Fatalf("newest 2: %q, %v; want cd", whys(p), err)
	}
	all := f.AllAudit(t)
	if p.Next != all[len(all)-1].ID {
		t.Errorf("next %s, want the newest id %s", p.Next, all[len(all)-1].ID)
	}
	if p, err = c.AuditNewest(ctx, "fraud", "0", 2); err != nil || whys(p) != "bc" {
		t.Fatalf("newest 2 of fraud: %q, %v; want bc", whys(p), err)
	}
	// since bounds the scan: only what came after it.
	since := all[len(all)-3].ID // the event "b"
	if p, err = c.AuditNewest(ctx, "", since, 10); err != nil || whys(p) != "cd" {
		t.Fatalf("newest after b: %q, %v; want cd", whys(p), err)
	}
	f.WantError(t, f.Viewer, http.MethodGet, "/api/v1/audit?order=sideways", nil, http.StatusBadRequest, "order")
}

// After a rollback the bookkeeping aliases tell the truth: "previous" is
// the champion before the restored one, never the champion itself, and a
// bake of the withdrawn version ends.
func TestRollbackSettlesPreviousAndBaking(t *testing.T) {
	f := newStatusFixture(t, false)
	ctx := context.Background()
	move := func(alias string, v int64) {
		t.Helper()
		if _, err := f.Registry.MoveAlias(ctx, registry.AliasMove{Model: "fraud", Alias: alias, Version: v, Expect: registry.AnyVersion, Who: "governor"}); err != nil {
			t.Fatal(err)
		}
	}
	// As the governor promotes: 1 → 2 → 3, marking previous and baking.
	move(registry.AliasChampion, 2)
	move(registry.AliasPrevious, 1)
	move(registry.AliasChampion, 3)
	move(registry.AliasPrevious, 2)
	move(registry.AliasBaking, 3)
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]string{"reason": "v3 burns the error budget"}, http.StatusOK, nil)
	set, err := f.Registry.Aliases(ctx, "fraud")
	if err != nil {
		t.Fatal(err)
	}
	if got := set.Versions; got[registry.AliasChampion] != 2 || got[registry.AliasPrevious] != 1 || got[registry.AliasBaking] != 0 {
		t.Fatalf("aliases after rollback %v, want champion 2, previous 1, no baking", got)
	}
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]string{"reason": "again"}, http.StatusOK, nil)
	if set, err = f.Registry.Aliases(ctx, "fraud"); err != nil {
		t.Fatal(err)
	}
	if got := set.Versions; got[registry.AliasChampion] != 1 || got[registry.AliasPrevious] != 0 {
		t.Fatalf("aliases after the second rollback %v, want champion 1 and no previous", got)
	}
}
