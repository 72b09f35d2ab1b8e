package adminapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/admintest"
	"github.com/driftline/driftline/testkit/redistest"
)

func newMiniAdminFixture(t *testing.T) *admintest.Fixture {
	t.Helper()
	return admintest.Start(t, redistest.StartMiniredis(t).Client(t))
}

func TestAdminAPIUnauthenticated(t *testing.T) {
	f := newMiniAdminFixture(t)
	for _, tc := range []struct {
		name, method, path, header string
		want                       string
	}{
		{"no token", http.MethodGet, "/api/v1/models", "", "missing bearer token"},
		{"no token, mutating", http.MethodPost, "/api/v1/models/fraud/promote", "", "missing bearer token"},
		{"no token, unknown path", http.MethodGet, "/api/v1/nothing", "", "missing bearer token"},
		{"bad token", http.MethodGet, "/api/v1/models", "Bearer dl_not-a-token", "invalid token"},
		{"basic scheme", http.MethodGet, "/api/v1/models", "Basic " + admintest.BootstrapToken, "malformed"},
		{"empty bearer", http.MethodGet, "/api/v1/models", "Bearer ", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.URL+tc.path, strings.NewReader(`{"version":2,"reason":"x"}`))
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, raw)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if !strings.Contains(string(raw), tc.want) {
				t.Errorf("body %s does not say %q", raw, tc.want)
			}
		})
	}
	if got := f.Champion(t); got != 1 {
		t.Fatalf("champion moved to %d without a token", got)
	}
}

func TestAdminAPIRoles(t *testing.T) {
	f := newMiniAdminFixture(t)
	// A viewer reads but may not promote: 403, and nothing moves or is audited.
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/models", nil, http.StatusOK, nil)
	before := len(f.AllAudit(t))
	f.WantError(t, f.Viewer, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "try"}, http.StatusForbidden, "viewer", "operator")
	if got := f.Champion(t); got != 1 {
		t.Fatalf("viewer moved champion to %d", got)
	}
	if after := len(f.AllAudit(t)); after != before {
		t.Fatalf("a refused call wrote %d audit events", after-before)
	}
	for _, tok := range []string{f.Viewer, f.Operator} {
		f.WantError(t, tok, http.MethodPost, "/api/v1/tokens", map[string]string{"name": "x", "role": "admin"}, http.StatusForbidden, "needs admin")
		f.WantError(t, tok, http.MethodPut, "/api/v1/models/fraud/policy", map[string]any{"gate": map[string]any{}, "reason": "r"}, http.StatusForbidden, "needs admin")
	}
	f.WantError(t, f.Viewer, http.MethodPost, "/api/v1/models/fraud/pause", map[string]string{"reason": "r"}, http.StatusForbidden)
	f.WantError(t, f.Viewer, http.MethodPost, "/api/v1/models/fraud/retrain", map[string]string{"reason": "r"}, http.StatusForbidden)
	// Higher roles inherit the lower ones.
	f.MustCall(t, f.Operator, http.MethodGet, "/api/v1/models/fraud", nil, http.StatusOK, nil)
	f.MustCall(t, f.Admin, http.MethodGet, "/api/v1/audit", nil, http.StatusOK, nil)
}

func TestAdminAPIPromoteMovesAliasAndAudits(t *testing.T) {
	f := newMiniAdminFixture(t)
	var res adminapi.MoveResult
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "canary passed"}, http.StatusOK, &res)
	if res.From != 1 || res.To != 2 || res.Alias != "champion" || res.Epoch < 2 {
		t.Fatalf("promote answered %+v", res)
	}
	if got := f.Champion(t); got != 2 {
		t.Fatalf("champion is %d after promote, want 2", got)
	}
	e := f.LastAudit(t)
	if e.What != registry.WhatAliasSet || e.Who != "ops" || e.Why != "canary passed" || e.Model != "fraud" ||
		e.Details["action"] != "promote" || e.Details["from"] != "1" || e.Details["to"] != "2" || e.Details["role"] != adminapi.RoleOperator || e.When.IsZero() {
		t.Fatalf("audit event %+v", e)
	}

	var m adminapi.ModelView
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud", nil, http.StatusOK, &m)
	if m.Aliases["champion"] != 2 || len(m.Versions) != 3 || m.Versions[1].Number != 2 ||
		len(m.Versions[1].Aliases) != 1 || m.Versions[1].Aliases[0] != "champion" || m.Versions[2].Lineage.Parent != 2 {
		t.Fatalf("show after promote: %+v", m)
	}
}

func TestAdminAPIPromoteAlias(t *testing.T) {
	f := newMiniAdminFixture(t)
	ctx := context.Background()
	aliases := func() map[string]int64 {
		t.Helper()
		set, err := f.Registry.Aliases(ctx, "fraud")
		if err != nil {
			t.Fatal(err)
		}
		return set.Versions
	}
	const path = "/api/v1/models/fraud/promote"
	before := len(f.AllAudit(t))
	// A viewer may not move a candidate alias either; a bad alias names the field.
	f.WantError(t, f.Viewer, http.MethodPost, path, map[string]any{"version": 2, "alias": "canary", "reason": "try"}, http.StatusForbidden, "viewer", "operator")
	f.WantError(t, f.Operator, http.MethodPost, path, map[string]any{"version": 2, "alias": "challenger", "reason": "r"}, http.StatusBadRequest, "alias:", `"challenger"`, "champion, canary, shadow")
	f.WantError(t, f.Operator, http.MethodPost, path, map[string]any{"version": 2, "alias": "Canary", "reason": "r"}, http.StatusBadRequest, "alias:")
	// The champion's version is no candidate: the governor would have nothing to measure.
	f.WantError(t, f.Operator, http.MethodPost, path, map[string]any{"version": 1, "alias": "canary", "reason": "r"}, http.StatusConflict, "champion of fraud")
	if got := aliases(); len(got) != 1 || got["champion"] != 1 {
		t.Fatalf("aliases %v after refused calls", got)
	}
	if after := len(f.AllAudit(t)); after != before {
		t.Fatalf("refused calls wrote %d audit events", after-before)
	}

	var res adminapi.MoveResult
	f.MustCall(t, f.Operator, http.MethodPost, path, map[string]any{"version": 2, "alias": "canary", "reason": "hand-picked candidate"}, http.StatusOK, &res)
	if res != (adminapi.MoveResult{Model: "fraud", Alias: "canary", From: 0, To: 2, Epoch: 2}) {
		t.Fatalf("promote canary answered %+v", res)
	}
	if got := aliases(); got["canary"] != 2 || got["champion"] != 1 {
		t.Fatalf("aliases %v after promote canary, want canary 2 and champion 1", got)
	}
	e := f.LastAudit(t)
	if e.What != registry.WhatAliasSet || e.Who != "ops" || e.Why != "hand-picked candidate" || e.Model != "fraud" || e.Version != 2 ||
		e.Details["alias"] != "canary" || e.Details["action"] != "promote" || e.Details["role"] != adminapi.RoleOperator ||
		e.Details["from"] != "0" || e.Details["to"] != "2" {
		t.Fatalf("audit event %+v", e)
	}

	// Compare-and-set against the named alias, not the champion.
	f.WantError(t, f.Operator, http.MethodPost, path, map[string]any{"version": 3, "alias": "canary", "reason": "r", "expect": 1}, http.StatusConflict, "canary of fraud moved", "no longer points at version 1")
	f.WantError(t, f.Operator, http.MethodPost, path, map[string]any{"version": 2, "alias": "canary", "reason": "r"}, http.StatusConflict, "canary of fraud is already version 2")
	f.MustCall(t, f.Operator, http.MethodPost, path, map[string]any{"version": 3, "alias": "canary", "reason": "newer", "expect": 2}, http.StatusOK, &res)
	if res.From != 2 || res.To != 3 || aliases()["canary"] != 3 {
		t.Fatalf("promote canary with expect answered %+v, aliases %v", res, aliases())
	}
	f.MustCall(t, f.Operator, http.MethodPost, path, map[string]any{"version": 2, "alias": "shadow", "reason": "shadow it"}, http.StatusOK, &res)
	if e := f.LastAudit(t); res.Alias != "shadow" || aliases()["shadow"] != 2 || e.Details["alias"] != "shadow" || e.Who != "ops" {
		t.Fatalf("promote shadow answered %+v, audit %+v", res, e)
	}
	// An explicit champion is the old promote; candidate moves leave the champion's
	// rollback history alone.
	if f.Champion(t) != 1 {
		t.Fatalf("champion %d after candidate moves", f.Champion(t))
	}
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"reason": "r"}, http.StatusConflict, "no champion of fraud before version 1")
	f.MustCall(t, f.Operator, http.MethodPost, path, map[string]any{"version": 3, "alias": "champion", "reason": "override"}, http.StatusOK, &res)
	if res.Alias != "champion" || res.From != 1 || f.Champion(t) != 3 {
		t.Fatalf("promote champion answered %+v, champion %d", res, f.Champion(t))
	}
}

func TestAdminAPIShowTraffic(t *testing.T) {
	f := newMiniAdminFixture(t)
	var m adminapi.ModelView
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud", nil, http.StatusOK, &m)
	if m.TrafficSet || m.CanaryPercent != 0 {
		t.Fatalf("traffic before any set: %d%%, set %v", m.CanaryPercent, m.TrafficSet)
	}
	if _, err := f.Registry.SetTraffic(context.Background(), registry.TrafficMove{Model: "fraud", Percent: 25, Who: "governor", Why: "step"}); err != nil {
		t.Fatal(err)
	}
	status, raw, _ := f.Call(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud", nil)
	if status != http.StatusOK || !strings.Contains(string(raw), `"canary_percent": 25,`) || !strings.Contains(string(raw), `"traffic_set": true,`) {
		t.Fatalf("show after SetTraffic: %d %s", status, raw)
	}
	if err := json.Unmarshal(raw, &m); err != nil || !m.TrafficSet || m.CanaryPercent != 25 || m.Epoch != 2 {
		t.Fatalf("show after SetTraffic: %+v, %v", m, err)
	}
}

func TestAdminAPIRollbackReturnsToPreviousChampion(t *testing.T) {
	f := newMiniAdminFixture(t)
	promote := func(v int) {
		f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": v, "reason": "up"}, http.StatusOK, nil)
	}
	rollback := func(body map[string]any, want int64) {
		t.Helper()
		var res adminapi.MoveResult
		f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", body, http.StatusOK, &res)
		if res.To != want || f.Champion(t) != want {
			t.Fatalf("rollback %v: answered %+v, champion %d, want %d", body, res, f.Champion(t), want)
		}
		e := f.LastAudit(t)
		if e.Details["action"] != "rollback" || e.Who != "ops" || e.Why != body["reason"] {
			t.Fatalf("rollback audit event %+v", e)
		}
	}
	promote(2)
	promote(3)
	rollback(map[string]any{"reason": "v3 regressed"}, 2)
	rollback(map[string]any{"reason": "v2 regressed too"}, 1)
	// Nothing recorded before version 1: 409, and no move.
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"reason": "again"}, http.StatusConflict, "no champion of fraud before version 1")
	// An explicit target.
	rollback(map[string]any{"reason": "pin", "to": 3}, 3)
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"reason": "r", "to": 9}, http.StatusNotFound)
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"reason": "r", "to": 0}, http.StatusBadRequest, "to:")
}

func TestAdminAPIPreviousChampionAfterControllerRollback(t *testing.T) {
	f := newMiniAdminFixture(t)
	ctx := context.Background()
	// The rollout controller promotes 2 and 3, then rolls 3 back itself (details
	// action=rollback): the previous champion of 2 is then 1, not 3.
	for _, m := range []registry.AliasMove{
		{Version: 2, Expect: 1, Details: map[string]string{"action": "promote"}},
		{Version: 3, Expect: 2, Details: map[string]string{"action": "promote"}},
		{Version: 2, Expect: 3, Details: map[string]string{"action": "rollback"}},
	} {
		m.Model, m.Alias, m.Who, m.Why = "fraud", registry.AliasChampion, "rollout-controller", "gate"
		if _, err := f.Registry.MoveAlias(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var res adminapi.MoveResult
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"reason": "r"}, http.StatusOK, &res)
	if res.From != 2 || res.To != 1 {
		t.Fatalf("rollback answered %+v, want 2 -> 1", res)
	}
}

func TestAdminAPICASConflict(t *testing.T) {
	f := newMiniAdminFixture(t)
	// The caller saw champion 1, but someone else moved it to 3 meanwhile.
	if _, err := f.Registry.MoveAlias(context.Background(), registry.AliasMove{Model: "fraud", Alias: "champion", Version: 3, Expect: 1, Who: "someone", Why: "race"}); err != nil {
		t.Fatal(err)
	}
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "r", "expect": 1}, http.StatusConflict, "no longer points at version 1")
	if got := f.Champion(t); got != 3 {
		t.Fatalf("champion %d after a conflict, want 3", got)
	}
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"reason": "r", "to": 1, "expect": 2}, http.StatusConflict)
	// Promoting the champion again is a conflict too.
	f.WantError(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 3, "reason": "r"}, http.StatusConflict, "already version 3")
}

func TestAdminAPIInvalidInput(t *testing.T) {
	f := newMiniAdminFixture(t)
	post := func(path string, body any, want int, parts ...string) {
		t.Helper()
		f.WantError(t, f.Operator, http.MethodPost, path, body, want, parts...)
	}
	post("/api/v1/models/fraud/promote", map[string]any{"version": 2}, http.StatusBadRequest, "reason")
	post("/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "  "}, http.StatusBadRequest, "reason")
	post("/api/v1/models/fraud/promote", map[string]any{"reason": "r"}, http.StatusBadRequest, "version")
	post("/api/v1/models/fraud/promote", map[string]any{"version": "two", "reason": "r"}, http.StatusBadRequest, "version")
	post("/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "r", "force": true}, http.StatusBadRequest, "force")
	post("/api/v1/models/fraud/promote", nil, http.StatusBadRequest, "empty body")
	post("/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "r", "expect": -3}, http.StatusBadRequest, "expect")
	post("/api/v1/models/fraud/promote", map[string]any{"version": 7, "reason": "r"}, http.StatusNotFound)
	post("/api/v1/models/nope/promote", map[string]any{"version": 1, "reason": "r"}, http.StatusNotFound)
	post("/api/v1/models/bad%20name/pause", map[string]any{"reason": "r"}, http.StatusBadRequest, "name")
	post("/api/v1/models/nope/pause", map[string]any{"reason": "r"}, http.StatusNotFound)
	post("/api/v1/models/fraud/retrain", map[string]any{}, http.StatusBadRequest, "reason")
	f.WantError(t, f.Viewer, http.MethodGet, "/api/v1/models/nope", nil, http.StatusNotFound)
	f.WantError(t, f.Viewer, http.MethodGet, "/api/v1/audit?limit=0", nil, http.StatusBadRequest, "limit")
	f.WantError(t, f.Viewer, http.MethodGet, "/api/v1/audit?since=yesterday", nil, http.StatusBadRequest, "since")
	f.WantError(t, f.Viewer, http.MethodGet, "/api/v1/nothing", nil, http.StatusNotFound, "no such endpoint")
	f.WantError(t, f.Admin, http.MethodPost, "/api/v1/tokens", map[string]string{"name": "x", "role": "root"}, http.StatusBadRequest, "role")
	f.WantError(t, f.Admin, http.MethodPost, "/api/v1/tokens", map[string]string{"name": "", "role": "viewer"}, http.StatusBadRequest, "name")
	f.WantError(t, f.Admin, http.MethodPost, "/api/v1/tokens", map[string]string{"name": "ops", "role": "viewer"}, http.StatusConflict, "exists")
	if got := f.Champion(t); got != 1 {
		t.Fatalf("champion moved to %d by invalid calls", got)
	}
}

func TestAdminAPITokens(t *testing.T) {
	f := newMiniAdminFixture(t)
	tok := f.CreateToken(t, "ci-bot", adminapi.RoleOperator)
	var who adminapi.Identity
	f.MustCall(t, tok, http.MethodGet, "/api/v1/whoami", nil, http.StatusOK, &who)
	if who != (adminapi.Identity{Name: "ci-bot", Role: adminapi.RoleOperator}) {
		t.Fatalf("whoami %+v", who)
	}
	// Its role: it may promote, but not create tokens.
	f.MustCall(t, tok, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "ci"}, http.StatusOK, nil)
	if e := f.LastAudit(t); e.Who != "ci-bot" {
		t.Fatalf("audit who %q, want ci-bot", e.Who)
	}
	f.WantError(t, tok, http.MethodPost, "/api/v1/tokens", map[string]string{"name": "y", "role": "viewer"}, http.StatusForbidden)

	// Redis holds only sha256 hashes, never a token.
	ctx := context.Background()
	keys, err := f.Redis.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		dump := redisContent(t, f.Redis, k)
		for _, secret := range []string{tok, f.Operator, f.Viewer, admintest.BootstrapToken} {
			if strings.Contains(dump, secret) {
				t.Fatalf("key %s holds a plaintext token", k)
			}
		}
	}

	var list struct {
		Tokens []adminapi.TokenInfo `json:"tokens"`
	}
	f.MustCall(t, f.Admin, http.MethodGet, "/api/v1/tokens", nil, http.StatusOK, &list)
	if len(list.Tokens) != 3 || list.Tokens[0].Name != "ci-bot" || list.Tokens[0].CreatedBy != adminapi.BootstrapTokenName {
		t.Fatalf("token list %+v", list.Tokens)
	}
	f.WantError(t, f.Admin, http.MethodDelete, "/api/v1/tokens/ci-bot", nil, http.StatusBadRequest, "reason")
	f.MustCall(t, f.Admin, http.MethodDelete, "/api/v1/tokens/ci-bot?reason=rotated", nil, http.StatusOK, nil)
	f.WantError(t, tok, http.MethodGet, "/api/v1/whoami", nil, http.StatusUnauthorized, "invalid token")
	f.WantError(t, f.Admin, http.MethodDelete, "/api/v1/tokens/ci-bot?reason=again", nil, http.StatusNotFound)
	if e := f.LastAudit(t); e.What != adminapi.WhatTokenRevoke || e.Who != adminapi.BootstrapTokenName || e.Details["token"] != "ci-bot" || e.Why != "rotated" {
		t.Fatalf("revoke audit event %+v", e)
	}
	// The name is free again.
	f.CreateToken(t, "ci-bot", adminapi.RoleViewer)
}

func TestAdminAPIBootstrapToken(t *testing.T) {
	rdb := redistest.StartMiniredis(t).Client(t)
	reg, err := registry.New(rdb, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(token string) *admintest.Fixture {
		api, err := adminapi.New(adminapi.Config{Registry: reg, Redis: rdb, BootstrapToken: token})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(api)
		t.Cleanup(srv.Close)
		return &admintest.Fixture{URL: srv.URL}
	}
	f := serve(admintest.BootstrapToken)
	var who adminapi.Identity
	f.MustCall(t, admintest.BootstrapToken, http.MethodGet, "/api/v1/whoami", nil, http.StatusOK, &who)
	if who != (adminapi.Identity{Name: adminapi.BootstrapTokenName, Role: adminapi.RoleAdmin}) {
		t.Fatalf("bootstrap whoami %+v", who)
	}
	// Without one there is no bootstrap token.
	serve("").WantError(t, admintest.BootstrapToken, http.MethodGet, "/api/v1/whoami", nil, http.StatusUnauthorized, "invalid token")
	if _, err := adminapi.New(adminapi.Config{Registry: reg, Redis: rdb, BootstrapToken: "short"}); err == nil || !strings.Contains(err.Error(), adminapi.EnvAdminToken) {
		t.Fatalf("short bootstrap token: err %v, want one naming %s", err, adminapi.EnvAdminToken)
	}
}

func TestAdminAPIPauseResumeRetrain(t *testing.T) {
	f := newMiniAdminFixture(t)
	ctx := context.Background()
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/pause", map[string]string{"reason": "incident 42"}, http.StatusOK, nil)
	if p, err := f.API.Paused(ctx, "fraud"); err != nil || !p {
		t.Fatalf("Paused = %v, %v after pause", p, err)
	}
	if e := f.LastAudit(t); e.What != adminapi.WhatRolloutPause || e.Who != "ops" || e.Why != "incident 42" || e.Model != "fraud" {
		t.Fatalf("pause audit event %+v", e)
	}
	var m adminapi.ModelView
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud", nil, http.StatusOK, &m)
	if m.Paused == nil || m.Paused.Who != "ops" || m.Paused.Why != "incident 42" {
		t.Fatalf("show while paused: %+v", m.Paused)
	}
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/resume", map[string]string{"reason": "fixed"}, http.StatusOK, nil)
	if p, err := f.API.Paused(ctx, "fraud"); err != nil || p {
		t.Fatalf("Paused = %v, %v after resume", p, err)
	}
	if e := f.LastAudit(t); e.What != adminapi.WhatRolloutResume || e.Why != "fixed" {
		t.Fatalf("resume audit event %+v", e)
	}

	var res struct{ Request, Audit string }
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/retrain", map[string]any{"reason": "error drift", "details": map[string]string{"window": "1h"}}, http.StatusAccepted, &res)
	reqs, cursor, err := f.API.RetrainRequests(ctx, "0-0", 10)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("retrain requests: %v, %v", reqs, err)
	}
	if r := reqs[0]; r.ID != res.Request || cursor != r.ID || r.Model != "fraud" || r.Who != "ops" || r.Why != "error drift" {
		t.Fatalf("retrain request %+v, cursor %s (answer %+v)", r, cursor, res)
	}
	if _, tail, err := f.API.RetrainRequests(ctx, "", 10); err != nil || tail != res.Request {
		t.Fatalf("tail of the retrain requests: %s, %v; want %s", tail, err, res.Request)
	}
	if e := f.LastAudit(t); e.ID != res.Audit || e.What != adminapi.WhatRetrainRequest || e.Details["req.window"] != "1h" {
		t.Fatalf("retrain audit event %+v", e)
	}
	// A governor queues the request; the model's view shows it until done.
	queued := registry.QueuedRetrain{Kind: "request", Key: res.Request, Reason: "ops: error drift", Since: time.Unix(1_700_000_000, 0).UTC()}
	if _, err := f.Registry.QueueRetrain(ctx, "fraud", queued); err != nil {
		t.Fatal(err)
	}
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud", nil, http.StatusOK, &m)
	if got := m.RetrainsQueued; len(got) != 1 || got[0].Kind != queued.Kind || got[0].Key != queued.Key || got[0].Reason != queued.Reason || !got[0].Since.Equal(queued.Since) {
		t.Fatalf("retrains queued %+v, want %+v", m.RetrainsQueued, queued)
	}
	if err := f.Registry.FinishRetrain(ctx, "fraud", res.Request); err != nil {
		t.Fatal(err)
	}
	m.RetrainsQueued = nil
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud", nil, http.StatusOK, &m)
	if len(m.RetrainsQueued) != 0 {
		t.Fatalf("retrains queued after it was done: %+v", m.RetrainsQueued)
	}
}

func TestAdminAPIPolicy(t *testing.T) {
	f := newMiniAdminFixture(t)
	ctx := context.Background()
	if _, ok, err := f.API.Policy(ctx, "fraud"); err != nil || ok {
		t.Fatalf("Policy before any: ok %v, err %v", ok, err)
	}
	f.WantError(t, f.Viewer, http.MethodGet, "/api/v1/models/fraud/policy", nil, http.StatusNotFound, "no policy")
	f.WantError(t, f.Admin, http.MethodPut, "/api/v1/models/fraud/policy", map[string]any{"reason": "r"}, http.StatusBadRequest, "gate")
	f.WantError(t, f.Admin, http.MethodPut, "/api/v1/models/fraud/policy", map[string]any{"gate": map[string]any{"steps": []int{50, 10}}, "reason": "r"}, http.StatusBadRequest, "gate.steps:")
	// AUC is no gate metric: the governor measures from outcome sums, which cannot give it.
	f.WantError(t, f.Admin, http.MethodPut, "/api/v1/models/fraud/policy", map[string]any{"gate": map[string]any{"metric": "auc"}, "reason": "r"}, http.StatusBadRequest, "gate.metric:", "auc")
	f.MustCall(t, f.Admin, http.MethodPut, "/api/v1/models/fraud/policy", map[string]any{"gate": map[string]any{"min_samples": 500, "max_delta": 0.02, "steps": []int{10, 100}}, "reason": "faster canary"}, http.StatusOK, nil)
	g, ok, err := f.API.Policy(ctx, "fraud")
	if err != nil || !ok || g.MinSamples != 500 || g.MaxDelta != 0.02 || len(g.Steps) != 2 || g.Confidence != 0.95 {
		t.Fatalf("Policy after set: %+v, %v, %v", g, ok, err)
	}
	if e := f.LastAudit(t); e.What != adminapi.WhatPolicySet || e.Who != adminapi.BootstrapTokenName || e.Why != "faster canary" || !strings.Contains(e.Details["gate"], `"min_samples":500`) {
		t.Fatalf("policy audit event %+v", e)
	}
}

func TestAdminAPIAuditEndpoint(t *testing.T) {
	f := newMiniAdminFixture(t)
	ctx := context.Background()
	if _, err := f.Registry.AppendAudit(ctx, registry.Event{Who: "x", What: "other", Model: "spam", Why: "noise"}); err != nil {
		t.Fatal(err)
	}
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "r"}, http.StatusOK, nil)
	all := f.AllAudit(t)

	var page adminapi.AuditPage
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/audit?limit=2", nil, http.StatusOK, &page)
	if len(page.Events) != 2 || page.Events[0].ID != all[0].ID || page.Next != all[1].ID {
		t.Fatalf("first page %+v", page)
	}
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/audit?since="+page.Next, nil, http.StatusOK, &page)
	if len(page.Events) != len(all)-2 || page.Events[0].ID != all[2].ID || page.Next != all[len(all)-1].ID {
		t.Fatalf("second page %+v", page)
	}
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/audit?model=spam", nil, http.StatusOK, &page)
	if len(page.Events) != 1 || page.Events[0].Why != "noise" || page.Next != all[len(all)-1].ID {
		t.Fatalf("model filter %+v", page)
	}
	f.MustCall(t, f.Viewer, http.MethodGet, "/api/v1/audit?since="+all[len(all)-1].ID, nil, http.StatusOK, &page)
	if len(page.Events) != 0 || page.Next != all[len(all)-1].ID {
		t.Fatalf("past the end %+v", page)
	}
}

// redisContent renders every field and value of key k (string, hash or stream).
func redisContent(t *testing.T, rdb redis.UniversalClient, k string) string {
	t.Helper()
	ctx := context.Background()
	typ, err := rdb.Type(ctx, k).Result()
	if err != nil {
		t.Fatal(err)
	}
	switch typ {
	case "string":
		return rdb.Get(ctx, k).Val()
	case "hash":
		return fmt.Sprint(rdb.HGetAll(ctx, k).Val())
	case "stream":
		return fmt.Sprint(rdb.XRange(ctx, k, "-", "+").Val())
	case "set":
		return fmt.Sprint(rdb.SMembers(ctx, k).Val())
	case "zset":
		return fmt.Sprint(rdb.ZRange(ctx, k, 0, -1).Val())
	case "list":
		return fmt.Sprint(rdb.LRange(ctx, k, 0, -1).Val())
	}
	t.Fatalf("key %s has type %s", k, typ)
	return ""
}
