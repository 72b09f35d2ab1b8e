package adminapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/admintest"
)

// Every free-text field a call sends is bounded: a longer one is refused
// with 400 naming the field, and nothing reaches the audit log. Before
// issue 11 a 1 MB reason was written to the audit stream, and the audit
// forwarder could never publish it.
func TestAdminAPIBoundsFreeText(t *testing.T) {
	f := newMiniAdminFixture(t)
	ctx := context.Background()
	before, err := f.Registry.ReadAudit(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("y", adminapi.MaxReasonBytes+1)
	okReason := strings.Repeat("y", adminapi.MaxReasonBytes)
	manyDetails := map[string]string{}
	for i := range adminapi.MaxDetails + 1 {
		manyDetails[strings.Repeat("k", i+1)] = "v"
	}
	for _, tc := range []struct {
		token, method, path string
		body                any
		field               string
	}{
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": long}, "reason"},
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"to": 2, "reason": long}, "reason"},
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/pause", map[string]any{"reason": long}, "reason"},
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/resume", map[string]any{"reason": long}, "reason"},
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/retrain", map[string]any{"reason": long}, "reason"},
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/retrain", map[string]any{"reason": "r", "details": manyDetails}, "details"},
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/retrain", map[string]any{"reason": "r", "details": map[string]string{strings.Repeat("k", 65): "v"}}, "details"},
		{f.Operator, http.MethodPost, "/api/v1/models/fraud/retrain", map[string]any{"reason": "r", "details": map[string]string{"window": strings.Repeat("v", adminapi.MaxDetailValueBytes+1)}}, "details.window"},
		{f.Admin, http.MethodPut, "/api/v1/models/fraud/policy", map[string]any{"gate": map[string]any{}, "reason": long}, "reason"},
		{f.Admin, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "n", "role": "viewer", "reason": long}, "reason"},
		{f.Admin, http.MethodPost, "/api/v1/tokens", map[string]any{"name": strings.Repeat("n", 129), "role": "viewer"}, "name"},
		{f.Admin, http.MethodDelete, "/api/v1/tokens/watcher?reason=" + url.QueryEscape(long), nil, "reason"},
		{f.Admin, http.MethodDelete, "/api/v1/tokens/" + strings.Repeat("n", 129) + "?reason=r", nil, "name"},
	} {
		f.WantError(t, tc.token, tc.method, tc.path, tc.body, http.StatusBadRequest, tc.field)
	}
	after, err := f.Registry.ReadAudit(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d audit events written by refused calls", len(after)-len(before))
	}
	// At the bound, a call goes through.
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/pause", map[string]any{"reason": okReason}, http.StatusOK, nil)
}

// A failure of the API's store answers 503 (the store is down) or 500 with
// a generic message and an error id, never the error's text, which names
// the internal Redis address; the server's log has the detail under the
// id. An unauthenticated caller with a made-up token sees the same.
func TestAdminAPIErrorsHideInternals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there: Redis is down
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	reg, err := registry.New(rdb, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	for _, unavailable := range []func(error) bool{nil, func(error) bool { return true }} {
		logged.Reset()
		api, err := adminapi.New(adminapi.Config{Registry: reg, Redis: rdb, BootstrapToken: admintest.BootstrapToken,
			Log: slog.New(slog.NewTextHandler(&logged, nil)), Unavailable: unavailable})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(api)
		for _, token := range []string{"made-up-token", admintest.BootstrapToken} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/models", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			want := http.StatusInternalServerError
			if unavailable != nil {
				want = http.StatusServiceUnavailable
			}
			if resp.StatusCode != want || body["id"] == "" {
				t.Errorf("status %d, body %v; want %d with an error id", resp.StatusCode, body, want)
			}
			for _, v := range body {
				if strings.Contains(v, addr) || strings.Contains(v, "127.0.0.1") || strings.Contains(v, "dial") {
					t.Errorf("the answer names internals: %q", v)
				}
			}
			if !strings.Contains(logged.String(), body["id"]) || !strings.Contains(logged.String(), addr) {
				t.Errorf("the log has no line with error id %s and the detail: %s", body["id"], logged.String())
			}
		}
		srv.Close()
	}
}

// Protect guards another handler with the API's tokens: /metrics with
// admin.metrics_auth.
func TestAdminAPIProtect(t *testing.T) {
	f := newMiniAdminFixture(t)
	h := f.API.Protect(adminapi.RoleOperator, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("secret")) }))
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong", http.StatusUnauthorized}, {f.Viewer, http.StatusForbidden}, {f.Operator, http.StatusOK}, {f.Admin, http.StatusOK}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want || (tc.want == http.StatusOK) != (rec.Body.String() == "secret") {
			t.Errorf("token %q: %d %q, want %d", tc.token, rec.Code, rec.Body.String(), tc.want)
		}
	}
}
