package main

// The admin HTTP API, served under /api/v1 on the admin address.
//
// Every call carries "Authorization: Bearer <token>". A token has one role:
//
//	viewer    GET  /api/v1/models                      list models with their aliases
//	          GET  /api/v1/models/{name}               a model: versions, lineage, aliases, canary traffic, pause, policy
//	          GET  /api/v1/models/{name}/policy        the model's rollout gate policy
//	          GET  /api/v1/audit?model=&since=&limit=  audit events after since, oldest first
//	          GET  /api/v1/whoami                      the caller's token name and role
//	operator  POST /api/v1/models/{name}/promote       {"version", "reason", "alias"?, "expect"?}
//	          POST /api/v1/models/{name}/rollback      {"reason", "to"?, "expect"?}
//	          POST /api/v1/models/{name}/pause         {"reason"}
//	          POST /api/v1/models/{name}/resume        {"reason"}
//	          POST /api/v1/models/{name}/retrain       {"reason", "details"?}
//	admin     GET  /api/v1/tokens                      token names and roles (never the secrets)
//	          POST /api/v1/tokens                      {"name", "role", "reason"?} → the token, shown once
//	          DELETE /api/v1/tokens/{name}             revoke
//	          PUT  /api/v1/models/{name}/policy        {"gate", "reason"}
//
// Each role may do everything the roles below it may. A call without a valid token
// gets 401, a role too low 403. Bodies and answers are JSON; errors are
// {"error": "..."} with 400 (the message names the field), 404, 409 (compare-and-set
// conflict) or 500. Every mutating call is written to the registry's audit stream with
// who (the token name), what, when and why (the required "reason").

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/models/rollout"
)

// Roles, lowest first.
const (
	roleViewer   = "viewer"
	roleOperator = "operator"
	roleAdmin    = "admin"
)

func roleRank(role string) int {
	switch role {
	case roleViewer:
		return 1
	case roleOperator:
		return 2
	case roleAdmin:
		return 3
	}
	return 0
}

// Audit What values written by the admin API. Promotions and rollbacks are alias
// moves, recorded by the registry as "alias.set" with details alias (champion,
// canary or shadow) and action=promote or action=rollback.
const (
	whatRolloutPause   = "rollout.pause"
	whatRolloutResume  = "rollout.resume"
	whatRetrainRequest = "retrain.request"
	whatTokenCreate    = "token.create"
	whatTokenRevoke    = "token.revoke"
	whatPolicySet      = "policy.set"
)

const (
	// defaultAdminKeyPrefix starts the admin API's Redis keys: tokens, pause flags,
	// policies and the retrain-requests stream.
	defaultAdminKeyPrefix = "{driftline:admin}"
	// bootstrapTokenName is who the DRIFTLINE_ADMIN_TOKEN token acts as.
	bootstrapTokenName = "bootstrap-admin"
	// envAdminToken holds the bootstrap admin token of the server.
	envAdminToken = "DRIFTLINE_ADMIN_TOKEN"
	// maxBody bounds request bodies.
	maxBody = 1 << 20
	// auditPageMax caps one audit answer; auditScanMax caps the entries one audit
	// request scans when it filters by model.
	auditPageMax = 1000
	auditScanMax = 10000
)

// adminAPIConfig configures the admin API handler.
type adminAPIConfig struct {
	// Registry is the model registry (required).
	Registry *registry.Registry
	// Redis holds tokens, pause flags, policies and retrain requests (required).
	Redis redis.UniversalClient
	// KeyPrefix starts those keys. Default "{driftline:admin}".
	KeyPrefix string
	// BootstrapToken, when set, is an admin token named "bootstrap-admin" that is not
	// stored anywhere; set it from DRIFTLINE_ADMIN_TOKEN. Empty disables it.
	BootstrapToken string
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// adminAPI is the /api/v1 handler. It is safe for concurrent use.
type adminAPI struct {
	reg       *registry.Registry
	rdb       redis.UniversalClient
	prefix    string
	bootstrap []byte // sha256 of the bootstrap token, nil when none
	now       func() time.Time
	mux       *http.ServeMux
}

// newAdminAPI validates cfg and builds the handler. It does no I/O.
func newAdminAPI(cfg adminAPIConfig) (*adminAPI, error) {
	if cfg.Registry == nil {
		return nil, errors.New("admin api: no registry")
	}
	if cfg.Redis == nil {
		return nil, errors.New("admin api: no redis client")
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = defaultAdminKeyPrefix
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &adminAPI{reg: cfg.Registry, rdb: cfg.Redis, prefix: cfg.KeyPrefix, now: cfg.Now, mux: http.NewServeMux()}
	if cfg.BootstrapToken != "" {
		if len(cfg.BootstrapToken) < 16 {
			return nil, fmt.Errorf("admin api: %s is shorter than 16 characters", envAdminToken)
		}
		h := sha256.Sum256([]byte(cfg.BootstrapToken))
		a.bootstrap = h[:]
	}
	a.route("GET /api/v1/whoami", roleViewer, a.whoami)
	a.route("GET /api/v1/models", roleViewer, a.listModels)
	a.route("GET /api/v1/models/{name}", roleViewer, a.showModel)
	a.route("GET /api/v1/models/{name}/policy", roleViewer, a.getPolicy)
	a.route("GET /api/v1/audit", roleViewer, a.audit)
	a.route("POST /api/v1/models/{name}/promote", roleOperator, a.promote)
	a.route("POST /api/v1/models/{name}/rollback", roleOperator, a.rollback)
	a.route("POST /api/v1/models/{name}/pause", roleOperator, a.pause)
	a.route("POST /api/v1/models/{name}/resume", roleOperator, a.resume)
	a.route("POST /api/v1/models/{name}/retrain", roleOperator, a.retrain)
	a.route("GET /api/v1/tokens", roleAdmin, a.listTokens)
	a.route("POST /api/v1/tokens", roleAdmin, a.createToken)
	a.route("DELETE /api/v1/tokens/{name}", roleAdmin, a.revokeToken)
	a.route("PUT /api/v1/models/{name}/policy", roleAdmin, a.setPolicy)
	a.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.authenticate(w, r); !ok {
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return a, nil
}

// newAdminAPIFromEnv is newAdminAPI with the default key prefix and the bootstrap
// admin token from $DRIFTLINE_ADMIN_TOKEN, as "driftline run" and "demo" use it.
func newAdminAPIFromEnv(reg *registry.Registry, rdb redis.UniversalClient) (*adminAPI, error) {
	return newAdminAPI(adminAPIConfig{Registry: reg, Redis: rdb, BootstrapToken: os.Getenv(envAdminToken)})
}

// mountAdminAPI returns a serveAdmin hook that serves a under /api/v1/.
func mountAdminAPI(a *adminAPI) func(*http.ServeMux) {
	return func(mux *http.ServeMux) { mux.Handle("/api/v1/", a) }
}

func (a *adminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Redis keys.
func (a *adminAPI) tokensKey() string             { return a.prefix + ":tokens" }      // hash: sha256 hex → tokenRecord
func (a *adminAPI) tokenNamesKey() string         { return a.prefix + ":token-names" } // hash: name → sha256 hex
func (a *adminAPI) pausedKey(model string) string { return a.prefix + ":paused:" + model }
func (a *adminAPI) policyKey(model string) string { return a.prefix + ":policy:" + model }

// retrainStreamKey is the Redis stream of retrain requests that a retrain job consumes.
// Entries have fields model, who, why, when, audit (the audit event ID) and d.<key>
// for each detail.
func (a *adminAPI) retrainStreamKey() string { return a.prefix + ":retrain-requests" }

// Paused reports whether an operator paused model's rollout, for the rollout loop.
func (a *adminAPI) Paused(ctx context.Context, model string) (bool, error) {
	n, err := a.rdb.Exists(ctx, a.pausedKey(model)).Result()
	if err != nil {
		return false, fmt.Errorf("admin api: read pause flag of %s: %w", model, err)
	}
	return n == 1, nil
}

// Policy returns the gate an admin set for model, or ok false when none was set.
func (a *adminAPI) Policy(ctx context.Context, model string) (g rollout.Gate, ok bool, err error) {
	raw, err := a.rdb.Get(ctx, a.policyKey(model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return rollout.Gate{}, false, nil
	}
	if err != nil {
		return rollout.Gate{}, false, fmt.Errorf("admin api: read policy of %s: %w", model, err)
	}
	var p policyRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return rollout.Gate{}, false, fmt.Errorf("admin api: policy of %s does not decode: %w", model, err)
	}
	return p.Gate, true, nil
}

// identity is the authenticated caller.
type identity struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// tokenRecord is what Redis keeps of a token: never the token itself.
type tokenRecord struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"createdBy"`
}

func (a *adminAPI) route(pattern, role string, h func(w http.ResponseWriter, r *http.Request, who identity)) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		who, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if roleRank(who.Role) < roleRank(role) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has role %s; this call needs %s", who.Name, who.Role, role))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r, who)
	})
}

// authenticate answers 401 itself when the request has no valid bearer token.
func (a *adminAPI) authenticate(w http.ResponseWriter, r *http.Request) (identity, bool) {
	unauthorized := func(msg string) (identity, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="driftline"`)
		writeError(w, http.StatusUnauthorized, msg)
		return identity{}, false
	}
	h := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(h, " ")
	if h == "" {
		return unauthorized("missing bearer token: send Authorization: Bearer <token>")
	}
	tok = strings.TrimSpace(tok)
	if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return unauthorized("malformed Authorization header: want Bearer <token>")
	}
	sum := sha256.Sum256([]byte(tok))
	if a.bootstrap != nil && subtle.ConstantTimeCompare(sum[:], a.bootstrap) == 1 {
		return identity{Name: bootstrapTokenName, Role: roleAdmin}, true
	}
	raw, err := a.rdb.HGet(r.Context(), a.tokensKey(), hex.EncodeToString(sum[:])).Bytes()
	if errors.Is(err, redis.Nil) {
		return unauthorized("invalid token")
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "read token store: "+err.Error())
		return identity{}, false
	}
	var rec tokenRecord
	if err := json.Unmarshal(raw, &rec); err != nil || roleRank(rec.Role) == 0 {
		writeError(w, http.StatusInternalServerError, "token record does not decode")
		return identity{}, false
	}
	return identity{Name: rec.Name, Role: rec.Role}, true
}

// ---- helpers

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// fail maps err to a status: apiError as given, registry sentinels to 400/404/409,
// anything else 500.
func fail(w http.ResponseWriter, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.msg)
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, registry.ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, registry.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// decodeBody reads a JSON object into v, rejecting unknown fields.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("empty body: want a JSON object")
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", mbe.Limit)}
		}
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: more than one JSON value")
	}
	return nil
}

func requireReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return badRequest("reason: required (say why)")
	}
	return nil
}

// decodeModelRequest reads a mutating call on a model: the {name} path
// value, the JSON body into req, and the reason that reason returns once
// req is decoded. Errors are apiErrors naming the field at fault.
func decodeModelRequest(r *http.Request, req any, reason func() string) (string, error) {
	name, err := modelName(r)
	if err != nil {
		return "", err
	}
	if err := decodeBody(r, req); err != nil {
		return "", err
	}
	if err := requireReason(reason()); err != nil {
		return "", err
	}
	return name, nil
}

// modelName returns the {name} path value after checking it.
func modelName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if !registry.ValidName(name) {
		return "", badRequest("name: %q is not a valid model name", name)
	}
	return name, nil
}

// ---- read calls

func (a *adminAPI) whoami(w http.ResponseWriter, _ *http.Request, who identity) {
	writeJSON(w, http.StatusOK, who)
}

// modelSummary is one entry of GET /api/v1/models.
type modelSummary struct {
	Name     string           `json:"name"`
	Versions int              `json:"versions"`
	Latest   int64            `json:"latest"`
	Aliases  map[string]int64 `json:"aliases"`
	Paused   bool             `json:"paused"`
}

func (a *adminAPI) listModels(w http.ResponseWriter, r *http.Request, _ identity) {
	ctx := r.Context()
	names, err := a.reg.Models(ctx)
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]modelSummary, 0, len(names))
	for _, name := range names {
		s, err := a.summary(ctx, name)
		if err != nil {
			fail(w, err)
			return
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": out})
}

func (a *adminAPI) summary(ctx context.Context, name string) (modelSummary, error) {
	vs, err := a.reg.Versions(ctx, name)
	if err != nil {
		return modelSummary{}, err
	}
	as, err := a.reg.Aliases(ctx, name)
	if err != nil {
		return modelSummary{}, err
	}
	paused, err := a.Paused(ctx, name)
	if err != nil {
		return modelSummary{}, err
	}
	s := modelSummary{Name: name, Versions: len(vs), Aliases: as.Versions, Paused: paused}
	if s.Aliases == nil {
		s.Aliases = map[string]int64{}
	}
	if len(vs) > 0 {
		s.Latest = vs[len(vs)-1].Number
	}
	return s, nil
}

// versionView is a registry.Version with its number and the aliases on it.
type versionView struct {
	Number    int64              `json:"number"`
	Created   time.Time          `json:"created"`
	CreatedBy string             `json:"createdBy"`
	Aliases   []string           `json:"aliases,omitempty"`
	Signature registry.Signature `json:"signature"`
	Lineage   registry.Lineage   `json:"lineage"`
	Snapshot  registry.Artifact  `json:"snapshot,omitzero"`
	ONNX      registry.Artifact  `json:"onnx,omitzero"`
}

// modelView is GET /api/v1/models/{name}. CanaryPercent is the canary's share of
// traffic as last set in the registry (registry.SetTraffic); TrafficSet is false,
// and CanaryPercent 0, when it was never set, and instances then serve the spec's
// rollout.canary_percent.
type modelView struct {
	Name          string           `json:"name"`
	Epoch         int64            `json:"epoch"`
	Aliases       map[string]int64 `json:"aliases"`
	CanaryPercent int              `json:"canaryPercent"`
	TrafficSet    bool             `json:"trafficSet"`
	Paused        *pauseRecord     `json:"paused,omitempty"`
	Policy        *policyRecord    `json:"policy,omitempty"`
	Versions      []versionView    `json:"versions"`
}

type pauseRecord struct {
	Who  string    `json:"who"`
	Why  string    `json:"why"`
	When time.Time `json:"when"`
}

type policyRecord struct {
	Gate rollout.Gate `json:"gate"`
	Who  string       `json:"who"`
	Why  string       `json:"why"`
	When time.Time    `json:"when"`
}

func (a *adminAPI) showModel(w http.ResponseWriter, r *http.Request, _ identity) {
	ctx := r.Context()
	name, err := modelName(r)
	if err != nil {
		fail(w, err)
		return
	}
	vs, err := a.reg.Versions(ctx, name)
	if err != nil {
		fail(w, err)
		return
	}
	as, err := a.reg.Aliases(ctx, name)
	if err != nil {
		fail(w, err)
		return
	}
	view := modelView{Name: name, Epoch: as.Epoch, Aliases: as.Versions, CanaryPercent: as.CanaryPercent, TrafficSet: as.TrafficSet,
		Versions: make([]versionView, 0, len(vs))}
	if view.Aliases == nil {
		view.Aliases = map[string]int64{}
	}
	byVersion := map[int64][]string{}
	for alias, n := range as.Versions {
		byVersion[n] = append(byVersion[n], alias)
	}
	for _, v := range vs {
		aliases := byVersion[v.Number]
		slices.Sort(aliases)
		view.Versions = append(view.Versions, versionView{
			Number: v.Number, Created: v.Created, CreatedBy: v.CreatedBy, Aliases: aliases,
			Signature: v.Signature, Lineage: v.Lineage, Snapshot: v.Snapshot, ONNX: v.ONNX,
		})
	}
	if view.Paused, err = a.pauseRecord(ctx, name); err != nil {
		fail(w, err)
		return
	}
	if view.Policy, err = a.policyRecord(ctx, name); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (a *adminAPI) pauseRecord(ctx context.Context, model string) (*pauseRecord, error) {
	raw, err := a.rdb.Get(ctx, a.pausedKey(model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pause flag of %s: %w", model, err)
	}
	var p pauseRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("pause flag of %s does not decode: %w", model, err)
	}
	return &p, nil
}

func (a *adminAPI) policyRecord(ctx context.Context, model string) (*policyRecord, error) {
	raw, err := a.rdb.Get(ctx, a.policyKey(model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read policy of %s: %w", model, err)
	}
	var p policyRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("policy of %s does not decode: %w", model, err)
	}
	return &p, nil
}

func (a *adminAPI) getPolicy(w http.ResponseWriter, r *http.Request, _ identity) {
	name, err := modelName(r)
	if err != nil {
		fail(w, err)
		return
	}
	p, err := a.policyRecord(r.Context(), name)
	if err != nil {
		fail(w, err)
		return
	}
	if p == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %s has no policy set", name))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// auditEvent is the JSON form of a registry.Event.
type auditEvent struct {
	ID      string            `json:"id"`
	When    time.Time         `json:"when"`
	Who     string            `json:"who"`
	What    string            `json:"what"`
	Model   string            `json:"model,omitempty"`
	Version int64             `json:"version,omitempty"`
	Why     string            `json:"why,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// auditPage is GET /api/v1/audit. Next is the ID to pass as since to read on; it may
// be past the last event returned when a model filter skipped entries.
type auditPage struct {
	Events []auditEvent `json:"events"`
	Next   string       `json:"next"`
}

func (a *adminAPI) audit(w http.ResponseWriter, r *http.Request, _ identity) {
	q := r.URL.Query()
	model := q.Get("model")
	if model != "" && !registry.ValidName(model) {
		fail(w, badRequest("model: %q is not a valid model name", model))
		return
	}
	since := q.Get("since")
	if since == "" {
		since = "0"
	}
	if !validStreamID(since) {
		fail(w, badRequest("since: %q is not a stream ID (ms or ms-seq)", since))
		return
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > auditPageMax {
			fail(w, badRequest("limit: %q is not a number from 1 to %d", s, auditPageMax))
			return
		}
		limit = n
	}
	page, err := a.readAudit(r.Context(), model, since, limit)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func validStreamID(s string) bool {
	ms, seq, hasSeq := strings.Cut(s, "-")
	if _, err := strconv.ParseUint(ms, 10, 64); err != nil {
		return false
	}
	if hasSeq {
		if _, err := strconv.ParseUint(seq, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// readAudit reads up to limit events after since, of model when set, scanning at most
// auditScanMax entries.
func (a *adminAPI) readAudit(ctx context.Context, model, since string, limit int) (auditPage, error) {
	page := auditPage{Events: []auditEvent{}, Next: since}
	for scanned := 0; scanned < auditScanMax && len(page.Events) < limit; {
		want := limit - len(page.Events)
		if model != "" {
			want = min(auditPageMax, auditScanMax-scanned)
		}
		evs, err := a.reg.ReadAudit(ctx, page.Next, int64(want))
		if err != nil {
			return auditPage{}, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			scanned++
			page.Next = e.ID
			if model == "" || e.Model == model {
				page.Events = append(page.Events, toAuditEvent(e))
				if len(page.Events) == limit {
					break
				}
			}
		}
	}
	return page, nil
}

func toAuditEvent(e registry.Event) auditEvent {
	return auditEvent{ID: e.ID, When: e.When, Who: e.Who, What: e.What, Model: e.Model, Version: e.Version, Why: e.Why, Details: e.Details}
}

// ---- operator calls

type promoteRequest struct {
	Version int64  `json:"version"`
	Reason  string `json:"reason"`
	// Alias is the alias to point at Version: champion (the default; a direct
	// override that bypasses the rollout gate), or canary or shadow, which hand
	// Version to the governed rollout (see promotableAliases).
	Alias string `json:"alias,omitempty"`
	// Expect, when set, is the version Alias must point at now (0: unset);
	// without it the API expects what it reads just before the move.
	Expect *int64 `json:"expect,omitempty"`
}

// promotableAliases are the aliases promote may move. Champion serves at once.
// Canary and shadow name the candidate of the governed rollout: the governor
// measures the canary alias, else the shadow alias, against the champion on the
// rollout gate and advances it to champion or rolls it back (governor.evaluate).
var promotableAliases = []string{registry.AliasChampion, aliasCanary, aliasShadow}

// moveResult answers promote and rollback.
type moveResult struct {
	Model string `json:"model"`
	Alias string `json:"alias"`
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	Epoch int64  `json:"epoch"`
}

func (a *adminAPI) promote(w http.ResponseWriter, r *http.Request, who identity) {
	name, err := modelName(r)
	if err != nil {
		fail(w, err)
		return
	}
	var req promoteRequest
	if err := decodeBody(r, &req); err != nil {
		fail(w, err)
		return
	}
	if req.Version < 1 {
		fail(w, badRequest("version: required, a version number ≥ 1"))
		return
	}
	if req.Alias == "" {
		req.Alias = registry.AliasChampion
	}
	if !slices.Contains(promotableAliases, req.Alias) {
		fail(w, badRequest("alias: %q is not one of %s", req.Alias, strings.Join(promotableAliases, ", ")))
		return
	}
	if err := requireReason(req.Reason); err != nil {
		fail(w, err)
		return
	}
	res, err := a.moveAlias(r.Context(), name, req.Alias, req.Version, req.Expect, who, req.Reason, "promote")
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// moveAlias moves alias of model to version by compare-and-set against expect, or
// against the alias read now when expect is nil. A canary or shadow may not be the
// champion's version: the governor would have nothing to measure (409).
func (a *adminAPI) moveAlias(ctx context.Context, model, alias string, version int64, expect *int64, who identity, why, action string) (moveResult, error) {
	if expect != nil && *expect < 0 {
		return moveResult{}, badRequest("expect: %d is not a version (0 means unset)", *expect)
	}
	var set registry.AliasSet
	if expect == nil || alias != registry.AliasChampion {
		var err error
		if set, err = a.reg.Aliases(ctx, model); err != nil {
			return moveResult{}, err
		}
	}
	from := set.Versions[alias]
	if expect != nil {
		from = *expect
	}
	if from == version {
		return moveResult{}, &apiError{http.StatusConflict, fmt.Sprintf("%s of %s is already version %d", alias, model, version)}
	}
	if alias != registry.AliasChampion && set.Versions[registry.AliasChampion] == version {
		return moveResult{}, &apiError{http.StatusConflict, fmt.Sprintf("version %d is the champion of %s: a %s must be another version for the rollout gate to measure", version, model, alias)}
	}
	epoch, err := a.reg.MoveAlias(ctx, registry.AliasMove{
		Model: model, Alias: alias, Version: version, Expect: from,
		Who: who.Name, Why: why, Details: map[string]string{"action": action, "role": who.Role},
	})
	if errors.Is(err, registry.ErrConflict) {
		return moveResult{}, &apiError{http.StatusConflict, fmt.Sprintf("%s of %s moved: it no longer points at version %d (%v); re-read and retry", alias, model, from, err)}
	}
	if err != nil {
		return moveResult{}, err
	}
	return moveResult{Model: model, Alias: alias, From: from, To: version, Epoch: epoch}, nil
}

type rollbackRequest struct {
	// To is the version to roll back to; without it, the previous champion recorded
	// in the audit trail.
	To     *int64 `json:"to,omitempty"`
	Reason string `json:"reason"`
	Expect *int64 `json:"expect,omitempty"`
}

func (a *adminAPI) rollback(w http.ResponseWriter, r *http.Request, who identity) {
	ctx := r.Context()
	var req rollbackRequest
	name, err := decodeModelRequest(r, &req, func() string { return req.Reason })
	if err != nil {
		fail(w, err)
		return
	}
	var to int64
	if req.To != nil {
		if *req.To < 1 {
			fail(w, badRequest("to: %d is not a version number ≥ 1", *req.To))
			return
		}
		to = *req.To
	} else {
		as, err := a.reg.Aliases(ctx, name)
		if err != nil {
			fail(w, err)
			return
		}
		cur := as.Versions[registry.AliasChampion]
		if cur == 0 {
			fail(w, &apiError{http.StatusConflict, fmt.Sprintf("model %s has no champion to roll back", name)})
			return
		}
		prev, err := a.previousChampion(ctx, name, cur)
		if err != nil {
			fail(w, err)
			return
		}
		if prev == 0 {
			fail(w, &apiError{http.StatusConflict, fmt.Sprintf("the audit trail records no champion of %s before version %d; pass to", name, cur)})
			return
		}
		to = prev
		if req.Expect == nil {
			req.Expect = &cur
		}
	}
	res, err := a.moveAlias(ctx, name, registry.AliasChampion, to, req.Expect, who, req.Reason, "rollback")
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// previousChampion replays model's champion moves in the audit trail as a stack:
// a move pushes its target, a rollback (details action=rollback, from the admin API
// or the rollout controller) pops the version rolled back from. It returns the
// version under cur on the stack, or 0 when there is none.
func (a *adminAPI) previousChampion(ctx context.Context, model string, cur int64) (int64, error) {
	var stack []int64
	from := "0"
	for {
		evs, err := a.reg.ReadAudit(ctx, from, auditPageMax)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			from = e.ID
			if e.Model != model || e.Details["alias"] != registry.AliasChampion {
				continue
			}
			switch e.What {
			case registry.WhatAliasDelete:
				stack = stack[:0]
			case registry.WhatAliasSet:
				prev, _ := strconv.ParseInt(e.Details["from"], 10, 64)
				to, err := strconv.ParseInt(e.Details["to"], 10, 64)
				if err != nil {
					continue
				}
				if len(stack) == 0 && prev != 0 {
					stack = append(stack, prev)
				}
				if e.Details["action"] == "rollback" {
					if n := len(stack); n > 0 && stack[n-1] == prev {
						stack = stack[:n-1]
					}
					if n := len(stack); n > 0 && stack[n-1] == to {
						continue
					}
				}
				stack = append(stack, to)
			}
		}
	}
	if n := len(stack); n >= 2 && stack[n-1] == cur {
		return stack[n-2], nil
	}
	return 0, nil
}

type reasonRequest struct {
	Reason string `json:"reason"`
}

func (a *adminAPI) pause(w http.ResponseWriter, r *http.Request, who identity) {
	a.setPaused(w, r, who, true)
}

func (a *adminAPI) resume(w http.ResponseWriter, r *http.Request, who identity) {
	a.setPaused(w, r, who, false)
}

func (a *adminAPI) setPaused(w http.ResponseWriter, r *http.Request, who identity, paused bool) {
	ctx := r.Context()
	var req reasonRequest
	name, err := decodeModelRequest(r, &req, func() string { return req.Reason })
	if err != nil {
		fail(w, err)
		return
	}
	if _, err := a.reg.Aliases(ctx, name); err != nil { // 404 for an unknown model
		fail(w, err)
		return
	}
	now := a.now().UTC()
	what := whatRolloutResume
	if paused {
		what = whatRolloutPause
		rec, _ := json.Marshal(pauseRecord{Who: who.Name, Why: req.Reason, When: now})
		err = a.rdb.Set(ctx, a.pausedKey(name), rec, 0).Err()
	} else {
		err = a.rdb.Del(ctx, a.pausedKey(name)).Err()
	}
	if err != nil {
		fail(w, fmt.Errorf("write pause flag of %s: %w", name, err))
		return
	}
	id, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: what, Model: name, Why: req.Reason, When: now,
		Details: map[string]string{"role": who.Role}})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": name, "paused": paused, "audit": id})
}

type retrainRequest struct {
	Reason string `json:"reason"`
	// Details are passed to the retrain job, e.g. window or warm-start hints.
	Details map[string]string `json:"details,omitempty"`
}

func (a *adminAPI) retrain(w http.ResponseWriter, r *http.Request, who identity) {
	ctx := r.Context()
	var req retrainRequest
	name, err := decodeModelRequest(r, &req, func() string { return req.Reason })
	if err != nil {
		fail(w, err)
		return
	}
	for k := range req.Details {
		if k == "" || len(k) > 64 {
			fail(w, badRequest("details: key %q must be 1 to 64 characters", k))
			return
		}
	}
	if _, err := a.reg.Aliases(ctx, name); err != nil {
		fail(w, err)
		return
	}
	now := a.now().UTC()
	details := map[string]string{"role": who.Role}
	for k, v := range req.Details {
		details["req."+k] = v
	}
	auditID, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: whatRetrainRequest, Model: name, Why: req.Reason, When: now, Details: details})
	if err != nil {
		fail(w, err)
		return
	}
	values := []any{"model", name, "who", who.Name, "why", req.Reason, "when", now.Format(time.RFC3339Nano), "audit", auditID}
	for k, v := range req.Details {
		values = append(values, "d."+k, v)
	}
	reqID, err := a.rdb.XAdd(ctx, &redis.XAddArgs{Stream: a.retrainStreamKey(), MaxLen: 10000, Approx: true, Values: values}).Result()
	if err != nil {
		fail(w, fmt.Errorf("append retrain request: %w", err))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"model": name, "request": reqID, "audit": auditID})
}

// ---- admin calls

type tokenRequest struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Reason string `json:"reason,omitempty"`
}

// tokenCreated answers POST /api/v1/tokens; Token is shown only here.
type tokenCreated struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Token string `json:"token"`
}

func (a *adminAPI) createToken(w http.ResponseWriter, r *http.Request, who identity) {
	ctx := r.Context()
	var req tokenRequest
	if err := decodeBody(r, &req); err != nil {
		fail(w, err)
		return
	}
	if !registry.ValidName(req.Name) || req.Name == bootstrapTokenName {
		fail(w, badRequest("name: %q is not a valid token name (1 to 128 letters, digits, '.', '_', '-'; not %s)", req.Name, bootstrapTokenName))
		return
	}
	if roleRank(req.Role) == 0 {
		fail(w, badRequest("role: %q is not one of viewer, operator, admin", req.Role))
		return
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		fail(w, err)
		return
	}
	token := "dl_" + hex.EncodeToString(secret)
	sum := sha256.Sum256([]byte(token))
	hash := hex.EncodeToString(sum[:])
	now := a.now().UTC()
	rec, _ := json.Marshal(tokenRecord{Name: req.Name, Role: req.Role, Created: now, CreatedBy: who.Name})
	ok, err := a.rdb.HSetNX(ctx, a.tokenNamesKey(), req.Name, hash).Result()
	if err != nil {
		fail(w, fmt.Errorf("write token store: %w", err))
		return
	}
	if !ok {
		fail(w, &apiError{http.StatusConflict, fmt.Sprintf("name: a token named %q exists; revoke it first", req.Name)})
		return
	}
	if err := a.rdb.HSet(ctx, a.tokensKey(), hash, rec).Err(); err != nil {
		a.rdb.HDel(context.WithoutCancel(ctx), a.tokenNamesKey(), req.Name)
		fail(w, fmt.Errorf("write token store: %w", err))
		return
	}
	why := req.Reason
	if why == "" {
		why = "token created"
	}
	if _, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: whatTokenCreate, Why: why, When: now,
		Details: map[string]string{"token": req.Name, "role": req.Role}}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, tokenCreated{Name: req.Name, Role: req.Role, Token: token})
}

func (a *adminAPI) listTokens(w http.ResponseWriter, r *http.Request, _ identity) {
	all, err := a.rdb.HGetAll(r.Context(), a.tokensKey()).Result()
	if err != nil {
		fail(w, fmt.Errorf("read token store: %w", err))
		return
	}
	out := make([]tokenRecord, 0, len(all))
	for _, raw := range all {
		var rec tokenRecord
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			fail(w, fmt.Errorf("token record does not decode: %w", err))
			return
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(x, y tokenRecord) int { return strings.Compare(x.Name, y.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (a *adminAPI) revokeToken(w http.ResponseWriter, r *http.Request, who identity) {
	ctx := r.Context()
	name := r.PathValue("name")
	reason := r.URL.Query().Get("reason")
	if err := requireReason(reason); err != nil {
		fail(w, err)
		return
	}
	hash, err := a.rdb.HGet(ctx, a.tokenNamesKey(), name).Result()
	if errors.Is(err, redis.Nil) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no token named %q", name))
		return
	}
	if err != nil {
		fail(w, fmt.Errorf("read token store: %w", err))
		return
	}
	if _, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, a.tokensKey(), hash)
		p.HDel(ctx, a.tokenNamesKey(), name)
		return nil
	}); err != nil {
		fail(w, fmt.Errorf("write token store: %w", err))
		return
	}
	if _, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: whatTokenRevoke, Why: reason, When: a.now().UTC(),
		Details: map[string]string{"token": name}}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": name})
}

type policyRequest struct {
	Gate   *rollout.Gate `json:"gate"`
	Reason string        `json:"reason"`
}

func (a *adminAPI) setPolicy(w http.ResponseWriter, r *http.Request, who identity) {
	ctx := r.Context()
	name, err := modelName(r)
	if err != nil {
		fail(w, err)
		return
	}
	var req policyRequest
	if err := decodeBody(r, &req); err != nil {
		fail(w, err)
		return
	}
	if req.Gate == nil {
		fail(w, badRequest("gate: required, a rollout gate object"))
		return
	}
	if err := req.Gate.Validate(); err != nil {
		fail(w, badRequest("gate: %v", err))
		return
	}
	if err := requireReason(req.Reason); err != nil {
		fail(w, err)
		return
	}
	if _, err := a.reg.Aliases(ctx, name); err != nil {
		fail(w, err)
		return
	}
	now := a.now().UTC()
	rec := policyRecord{Gate: req.Gate.WithDefaults(), Who: who.Name, Why: req.Reason, When: now}
	raw, _ := json.Marshal(rec)
	if err := a.rdb.Set(ctx, a.policyKey(name), raw, 0).Err(); err != nil {
		fail(w, fmt.Errorf("write policy of %s: %w", name, err))
		return
	}
	if _, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: whatPolicySet, Model: name, Why: req.Reason, When: now,
		Details: map[string]string{"gate": string(mustJSON(rec.Gate))}}); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
