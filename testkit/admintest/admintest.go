// Package admintest serves the model admin API (models/adminapi) over a
// registry with a fixed model, for tests of the API and of the CLI that
// talks to it.
package admintest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
)

// BootstrapToken is the fixture server's bootstrap admin token.
const BootstrapToken = "bootstrap-secret-0123456789"

// Model is the fixture's model: versions 1 to 3, champion 1.
const Model = "fraud"

// Fixture is the admin API served over HTTP on a registry in rdb, with
// Model registered and tokens "ops" (operator) and "watcher" (viewer).
type Fixture struct {
	URL      string
	Registry *registry.Registry
	Redis    redis.UniversalClient
	API      *adminapi.API
	Admin    string // the bootstrap admin token
	Operator string
	Viewer   string
}

// Start builds the fixture on rdb; the server stops at t's cleanup.
func Start(t testing.TB, rdb redis.UniversalClient) *Fixture {
	t.Helper()
	return StartWith(t, rdb, nil)
}

// StartWith is Start with edit applied to the API's config (a status
// source, public status) before the API is built.
func StartWith(t testing.TB, rdb redis.UniversalClient, edit func(*adminapi.Config)) *Fixture {
	t.Helper()
	ctx := context.Background()
	reg, err := registry.New(rdb, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		r := registry.Registration{
			Model: Model,
			Signature: registry.Signature{
				Inputs:  []registry.Tensor{{Name: "dense", DType: "float32", Shape: []int64{-1, 4}}},
				Outputs: []registry.Tensor{{Name: "score", DType: "float32", Shape: []int64{-1, 1}}},
			},
			Lineage:  registry.Lineage{Parent: int64(i - 1), Metrics: map[string]float64{"accuracy": 0.8 + float64(i)/100}},
			Snapshot: fmt.Appendf(nil, "snapshot %d", i),
			Who:      "trainer", Why: "test setup",
		}
		if _, err := reg.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: Model, Alias: registry.AliasChampion, Version: 1, Expect: 0, Who: "trainer", Why: "first champion"}); err != nil {
		t.Fatal(err)
	}
	cfg := adminapi.Config{Registry: reg, Redis: rdb, BootstrapToken: BootstrapToken}
	if edit != nil {
		edit(&cfg)
	}
	api, err := adminapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f := &Fixture{URL: srv.URL, Registry: reg, Redis: rdb, API: api, Admin: BootstrapToken}
	f.Operator = f.CreateToken(t, "ops", adminapi.RoleOperator)
	f.Viewer = f.CreateToken(t, "watcher", adminapi.RoleViewer)
	return f
}

// CreateToken makes a token with role through the API and returns it.
func (f *Fixture) CreateToken(t testing.TB, name, role string) string {
	t.Helper()
	var out adminapi.TokenCreated
	f.MustCall(t, f.Admin, http.MethodPost, "/api/v1/tokens", map[string]string{"name": name, "role": role}, http.StatusCreated, &out)
	if out.Name != name || out.Role != role || !strings.HasPrefix(out.Token, "dl_") {
		t.Fatalf("token create answered %+v", out)
	}
	return out.Token
}

// Call sends body as JSON with token (none when empty) and returns the
// status, the raw answer and the headers. Every answer must be JSON.
func (f *Fixture) Call(t testing.TB, token, method, path string, body any) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return resp.StatusCode, raw, resp.Header
}

// MustCall is Call that wants status want and decodes the answer into out
// (when not nil).
func (f *Fixture) MustCall(t testing.TB, token, method, path string, body any, want int, out any) {
	t.Helper()
	status, raw, _ := f.Call(t, token, method, path, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}

// WantError checks the status and that the {"error"} message contains
// each of parts.
func (f *Fixture) WantError(t testing.TB, token, method, path string, body any, want int, parts ...string) {
	t.Helper()
	status, raw, _ := f.Call(t, token, method, path, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
		t.Fatalf("%s %s: error body %q is not {\"error\": ...}", method, path, raw)
	}
	for _, p := range parts {
		if !strings.Contains(e.Error, p) {
			t.Errorf("%s %s: error %q does not mention %q", method, path, e.Error, p)
		}
	}
}

// Champion is the model's champion version in the registry.
func (f *Fixture) Champion(t testing.TB) int64 {
	t.Helper()
	v, err := f.Registry.Resolve(context.Background(), Model, registry.AliasChampion)
	if err != nil {
		t.Fatal(err)
	}
	return v.Number
}

// LastAudit is the newest audit event.
func (f *Fixture) LastAudit(t testing.TB) registry.Event {
	t.Helper()
	evs := f.AllAudit(t)
	if len(evs) == 0 {
		t.Fatal("audit stream is empty")
	}
	return evs[len(evs)-1]
}

// AllAudit is the whole audit stream, oldest first.
func (f *Fixture) AllAudit(t testing.TB) []registry.Event {
	t.Helper()
	evs, err := f.Registry.ReadAudit(context.Background(), "0", 10000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
