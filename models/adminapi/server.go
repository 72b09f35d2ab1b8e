// Package adminapi is driftline's model admin API, served under /api/v1 on
// the admin address, and a typed client for it.
//
// Every call carries "Authorization: Bearer <token>". A token has one role:
//
//	viewer    GET  /api/v1/models                      list models with their aliases
//	          GET  /api/v1/models/{name}               a model: versions, lineage, aliases, canary traffic, pause, policy
//	          GET  /api/v1/models/{name}/policy        the model's rollout gate policy
//	          GET  /api/v1/audit?model=&since=&limit=&order=  audit events after since, oldest first
//	                                                   (order=newest: the newest limit of them)
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
package adminapi

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
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/models/rollout"
)

// Roles, lowest first.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleAdmin    = "admin"
)

// RoleRank orders the roles, lowest first from 1; 0 means role is not a role.
func RoleRank(role string) int {
	switch role {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Audit What values written by the admin API. Promotions and rollbacks are alias
// moves, recorded by the registry as "alias.set" with details alias (champion,
// canary or shadow) and action=promote or action=rollback.
const (
	WhatRolloutPause   = "rollout.pause"
	WhatRolloutResume  = "rollout.resume"
	WhatRetrainRequest = "retrain.request"
	WhatTokenCreate    = "token.create"
	WhatTokenRevoke    = "token.revoke"
	WhatPolicySet      = "policy.set"
)

const (
	// DefaultKeyPrefix starts the admin API's Redis keys: tokens, pause flags,
	// policies and the retrain-requests stream.
	DefaultKeyPrefix = "{driftline:admin}"
	// BootstrapTokenName is who the DRIFTLINE_ADMIN_TOKEN token acts as.
	BootstrapTokenName = "bootstrap-admin"
	// EnvAdminToken names the environment variable that holds the server's
	// bootstrap admin token ("driftline run" and "demo" read it).
	EnvAdminToken = "DRIFTLINE_ADMIN_TOKEN"
	// maxBody bounds request bodies.
	maxBody = 1 << 20
	// AuditPageMax caps one audit answer; auditScanMax caps the entries one audit
	// request scans when it filters by model.
	AuditPageMax = 1000
	auditScanMax = 10000
)

// Config configures the admin API handler.
type Config struct {
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
	// Status, when set, serves the status page's read calls (status.go).
	Status StatusSource
	// PublicStatus lets read calls answer without a token, as the viewer
	// "anonymous" (admin.public_status in the spec).
	PublicStatus bool
	// Log receives the details of 500 and 503 answers, under their error id.
	// Default slog.Default().
	Log *slog.Logger
	// Unavailable, when set, tells a failure that means a dependency is down
	// (Redis), answered 503 with Retry-After, from a fault, answered 500.
	Unavailable func(error) bool
}

// API is the /api/v1 handler. It is safe for concurrent use.
type API struct {
	reg       *registry.Registry
	rdb       redis.UniversalClient
	prefix    string
	bootstrap []byte // sha256 of the bootstrap token, nil when none
	now       func() time.Time
	mux       *http.ServeMux
	status    StatusSource
	public    bool
	log       *slog.Logger
	// unavailable tells a dependency outage (503) from a fault (500); may be nil.
	unavailable func(error) bool
}

// newAdminAPI validates cfg and builds the handler. It does no I/O.
func New(cfg Config) (*API, error) {
	if cfg.Registry == nil {
		return nil, errors.New("admin api: no registry")
	}
	if cfg.Redis == nil {
		return nil, errors.New("admin api: no redis client")
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	a := &API{reg: cfg.Registry, rdb: cfg.Redis, prefix: cfg.KeyPrefix, now: cfg.Now, mux: http.NewServeMux(),
		status: cfg.Status, public: cfg.PublicStatus, log: cfg.Log, unavailable: cfg.Unavailable}
	if cfg.BootstrapToken != "" {
		if len(cfg.BootstrapToken) < 16 {
			return nil, fmt.Errorf("admin api: %s is shorter than 16 characters", EnvAdminToken)
		}
		h := sha256.Sum256([]byte(cfg.BootstrapToken))
		a.bootstrap = h[:]
	}
	a.route("GET /api/v1/whoami", RoleViewer, a.whoami)
	a.route("GET /api/v1/models", RoleViewer, a.listModels)
	a.route("GET /api/v1/models/{name}", RoleViewer, a.showModel)
	a.route("GET /api/v1/models/{name}/policy", RoleViewer, a.getPolicy)
	a.route("GET /api/v1/audit", RoleViewer, a.audit)
	a.route("POST /api/v1/models/{name}/promote", RoleOperator, a.promote)
	a.route("POST /api/v1/models/{name}/rollback", RoleOperator, a.rollback)
	a.route("POST /api/v1/models/{name}/pause", RoleOperator, a.pause)
	a.route("POST /api/v1/models/{name}/resume", RoleOperator, a.resume)
	a.route("POST /api/v1/models/{name}/retrain", RoleOperator, a.retrain)
	a.route("GET /api/v1/tokens", RoleAdmin, a.listTokens)
	a.route("POST /api/v1/tokens", RoleAdmin, a.createToken)
	a.route("DELETE /api/v1/tokens/{name}", RoleAdmin, a.revokeToken)
	a.route("PUT /api/v1/models/{name}/policy", RoleAdmin, a.setPolicy)
	a.routeModelOps() // abort, snapshot downloads (model_ops.go)
	if a.status != nil {
		a.routeStatus() // the status page's reads (status.go)
	}
	a.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.authenticate(w, r); !ok {
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return a, nil
}

// ServeHTTP serves the API; mount it under /api/v1/.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Redis keys.
func (a *API) tokensKey() string             { return a.prefix + ":tokens" }      // hash: sha256 hex → TokenInfo
func (a *API) tokenNamesKey() string         { return a.prefix + ":token-names" } // hash: name → sha256 hex
func (a *API) pausedKey(model string) string { return a.prefix + ":paused:" + model }
func (a *API) policyKey(model string) string { return a.prefix + ":policy:" + model }

// retrainStreamKey is the Redis stream of retrain requests that the governor consumes
// (RetrainRequests). Entries have fields model, who, why, when, audit (the audit event
// ID) and d.<key> for each detail.
func (a *API) retrainStreamKey() string { return a.prefix + ":retrain-requests" }

// RetrainRequests returns up to n retrain requests after the cursor after, oldest
// first, and the cursor to pass next; after "" returns none and the cursor of the newest
// request, so that a loop that starts now does not replay older requests. It implements
// governance.AdminRequests (a pause flag, a policy and retrain requests, as the governor reads them).
func (a *API) RetrainRequests(ctx context.Context, after string, n int) ([]registry.RetrainRequest, string, error) {
	if after == "" {
		tail, err := a.rdb.XRevRangeN(ctx, a.retrainStreamKey(), "+", "-", 1).Result()
		if err != nil {
			return nil, "", fmt.Errorf("admin api: read retrain requests: %w", err)
		}
		if len(tail) == 0 {
			return nil, "0-0", nil
		}
		return nil, tail[0].ID, nil
	}
	msgs, err := a.rdb.XRangeN(ctx, a.retrainStreamKey(), "("+after, "+", int64(n)).Result()
	if err != nil {
		return nil, after, fmt.Errorf("admin api: read retrain requests: %w", err)
	}
	out := make([]registry.RetrainRequest, 0, len(msgs))
	for _, m := range msgs {
		after = m.ID
		r := registry.RetrainRequest{ID: m.ID}
		r.Model, _ = m.Values["model"].(string)
		r.Who, _ = m.Values["who"].(string)
		r.Why, _ = m.Values["why"].(string)
		out = append(out, r)
	}
	return out, after, nil
}

// Paused reports whether an operator paused model's rollout, for the rollout loop.
func (a *API) Paused(ctx context.Context, model string) (bool, error) {
	n, err := a.rdb.Exists(ctx, a.pausedKey(model)).Result()
	if err != nil {
		return false, fmt.Errorf("admin api: read pause flag of %s: %w", model, err)
	}
	return n == 1, nil
}

// Policy returns the gate an admin set for model, or ok false when none was set.
func (a *API) Policy(ctx context.Context, model string) (g rollout.Gate, ok bool, err error) {
	raw, err := a.rdb.Get(ctx, a.policyKey(model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return rollout.Gate{}, false, nil
	}
	if err != nil {
		return rollout.Gate{}, false, fmt.Errorf("admin api: read policy of %s: %w", model, err)
	}
	var p PolicyRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return rollout.Gate{}, false, fmt.Errorf("admin api: policy of %s does not decode: %w", model, err)
	}
	return p.Gate, true, nil
}

// Identity is the authenticated caller.
type Identity struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// TokenInfo is what Redis keeps of a token, and what the token list answers: never
// the token itself.
type TokenInfo struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
}

func (a *API) route(pattern, role string, h func(w http.ResponseWriter, r *http.Request, who Identity)) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		who, ok := a.caller(w, r, pattern)
		if !ok || !permitted(w, who, role) {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		h(w, r, who)
	})
}

// Protect serves h to callers whose bearer token has role or a higher one,
// as the API's own calls are: 401 without a valid token, 403 with a lower
// role. The admin server guards /metrics with it (admin.metrics_auth).
func (a *API) Protect(role string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.authorize(w, r, role); ok {
			h.ServeHTTP(w, r)
		}
	})
}

// authorize authenticates r and checks its role; it answers 401 or 403
// itself when it returns false.
func (a *API) authorize(w http.ResponseWriter, r *http.Request, role string) (Identity, bool) {
	who, ok := a.authenticate(w, r)
	if !ok || !permitted(w, who, role) {
		return Identity{}, false
	}
	return who, true
}

// permitted tells whether who has role or a higher one; it answers 403
// itself when not.
func permitted(w http.ResponseWriter, who Identity, role string) bool {
	if RoleRank(who.Role) < RoleRank(role) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has role %s; this call needs %s", who.Name, who.Role, role))
		return false
	}
	return true
}

// authenticate answers 401 itself when the request has no valid bearer token.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (Identity, bool) {
	unauthorized := func(msg string) (Identity, bool) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="driftline"`)
		writeError(w, http.StatusUnauthorized, msg)
		return Identity{}, false
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
		return Identity{Name: BootstrapTokenName, Role: RoleAdmin}, true
	}
	raw, err := a.rdb.HGet(r.Context(), a.tokensKey(), hex.EncodeToString(sum[:])).Bytes()
	if errors.Is(err, redis.Nil) {
		return unauthorized("invalid token")
	}
	if err != nil {
		a.internalError(w, fmt.Errorf("read token store: %w", err))
		return Identity{}, false
	}
	var rec TokenInfo
	if err := json.Unmarshal(raw, &rec); err != nil || RoleRank(rec.Role) == 0 {
		a.internalError(w, fmt.Errorf("a token record does not decode (role %q): %v", rec.Role, err))
		return Identity{}, false
	}
	return Identity{Name: rec.Name, Role: rec.Role}, true
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
// anything else 503 (Config.Unavailable: a dependency is down) or 500. A 503 or
// 500 answers a generic message with an error id, never err's text (it may name
// internal addresses); the log has err under that id.
func (a *API) fail(w http.ResponseWriter, err error) {
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
		a.internalError(w, err)
	}
}

// internalError answers 503 or 500 with a fresh error id, and logs err under it.
func (a *API) internalError(w http.ResponseWriter, err error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	if a.unavailable != nil && a.unavailable(err) {
		a.log.Warn("admin api: a dependency is unavailable", "error_id", id, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "service unavailable: a dependency does not answer; retry later", "id": id})
		return
	}
	a.log.Error("admin api: internal error", "error_id", id, "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error; the server log has the details under this id", "id": id})
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

// Bounds of the free text a call may send; it goes to the audit log, the
// audit topic (one record per event) and the retrain requests.
const (
	// MaxReasonBytes bounds a reason.
	MaxReasonBytes = 1024
	// MaxDetails bounds the details of a retrain request, MaxDetailKeyBytes
	// and MaxDetailValueBytes each key and value.
	MaxDetails          = 16
	MaxDetailKeyBytes   = 64
	MaxDetailValueBytes = 256
)

func requireReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return badRequest("reason: required (say why)")
	}
	return checkText("reason", reason, MaxReasonBytes)
}

// checkText refuses free text longer than limit bytes, or not UTF-8.
func checkText(field, text string, limit int) error {
	if len(text) > limit {
		return badRequest("%s: %d bytes, longer than the limit of %d", field, len(text), limit)
	}
	if !utf8.ValidString(text) {
		return badRequest("%s: not valid UTF-8", field)
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

func (a *API) whoami(w http.ResponseWriter, _ *http.Request, who Identity) {
	writeJSON(w, http.StatusOK, who)
}

// ModelSummary is one entry of GET /api/v1/models.
type ModelSummary struct {
	Name     string           `json:"name"`
	Versions int              `json:"versions"`
	Latest   int64            `json:"latest"`
	Aliases  map[string]int64 `json:"aliases"`
	Paused   bool             `json:"paused"`
}

func (a *API) listModels(w http.ResponseWriter, r *http.Request, _ Identity) {
	ctx := r.Context()
	names, err := a.reg.Models(ctx)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]ModelSummary, 0, len(names))
	for _, name := range names {
		s, err := a.summary(ctx, name)
		if err != nil {
			a.fail(w, err)
			return
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": out})
}

func (a *API) summary(ctx context.Context, name string) (ModelSummary, error) {
	vs, err := a.reg.Versions(ctx, name)
	if err != nil {
		return ModelSummary{}, err
	}
	as, err := a.reg.Aliases(ctx, name)
	if err != nil {
		return ModelSummary{}, err
	}
	paused, err := a.Paused(ctx, name)
	if err != nil {
		return ModelSummary{}, err
	}
	s := ModelSummary{Name: name, Versions: len(vs), Aliases: as.Versions, Paused: paused}
	if s.Aliases == nil {
		s.Aliases = map[string]int64{}
	}
	if len(vs) > 0 {
		s.Latest = vs[len(vs)-1].Number
	}
	return s, nil
}

// VersionView is a registry.Version with its number and the aliases on it.
type VersionView struct {
	Number    int64              `json:"number"`
	Created   time.Time          `json:"created"`
	CreatedBy string             `json:"created_by"`
	Aliases   []string           `json:"aliases,omitempty"`
	Signature registry.Signature `json:"signature"`
	Lineage   registry.Lineage   `json:"lineage"`
	Snapshot  registry.Artifact  `json:"snapshot,omitzero"`
	ONNX      registry.Artifact  `json:"onnx,omitzero"`
}

// ModelView is GET /api/v1/models/{name}. CanaryPercent is the canary's share of
// traffic as last set in the registry (registry.SetTraffic); TrafficSet is false,
// and CanaryPercent 0, when it was never set, and instances then serve the spec's
// rollout.canary_percent.
type ModelView struct {
	Name          string           `json:"name"`
	Epoch         int64            `json:"epoch"`
	Aliases       map[string]int64 `json:"aliases"`
	CanaryPercent int              `json:"canary_percent"`
	TrafficSet    bool             `json:"traffic_set"`
	Paused        *PauseRecord     `json:"paused,omitempty"`
	Policy        *PolicyRecord    `json:"policy,omitempty"`
	// RetrainsQueued are the retrain triggers (error-drift alerts and
	// retrain requests) queued for the model's governor and not yet done:
	// waiting for the governor lease's holder, or, with since_drift, for
	// enough rows labelled after the alert.
	RetrainsQueued []registry.QueuedRetrain `json:"retrains_queued,omitempty"`
	Versions       []VersionView            `json:"versions"`
}

type PauseRecord struct {
	Who  string    `json:"who"`
	Why  string    `json:"why"`
	When time.Time `json:"when"`
}

type PolicyRecord struct {
	Gate rollout.Gate `json:"gate"`
	Who  string       `json:"who"`
	Why  string       `json:"why"`
	When time.Time    `json:"when"`
}

func (a *API) showModel(w http.ResponseWriter, r *http.Request, _ Identity) {
	ctx := r.Context()
	name, err := modelName(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	vs, err := a.reg.Versions(ctx, name)
	if err != nil {
		a.fail(w, err)
		return
	}
	as, err := a.reg.Aliases(ctx, name)
	if err != nil {
		a.fail(w, err)
		return
	}
	view := ModelView{Name: name, Epoch: as.Epoch, Aliases: as.Versions, CanaryPercent: as.CanaryPercent, TrafficSet: as.TrafficSet,
		Versions: make([]VersionView, 0, len(vs))}
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
		view.Versions = append(view.Versions, VersionView{
			Number: v.Number, Created: v.Created, CreatedBy: v.CreatedBy, Aliases: aliases,
			Signature: v.Signature, Lineage: v.Lineage, Snapshot: v.Snapshot, ONNX: v.ONNX,
		})
	}
	if view.Paused, err = a.pauseRecord(ctx, name); err != nil {
		a.fail(w, err)
		return
	}
	if view.Policy, err = a.policyRecord(ctx, name); err != nil {
		a.fail(w, err)
		return
	}
	if view.RetrainsQueued, err = a.reg.QueuedRetrains(ctx, name); err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

func (a *API) pauseRecord(ctx context.Context, model string) (*PauseRecord, error) {
	raw, err := a.rdb.Get(ctx, a.pausedKey(model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pause flag of %s: %w", model, err)
	}
	var p PauseRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("pause flag of %s does not decode: %w", model, err)
	}
	return &p, nil
}

func (a *API) policyRecord(ctx context.Context, model string) (*PolicyRecord, error) {
	raw, err := a.rdb.Get(ctx, a.policyKey(model)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read policy of %s: %w", model, err)
	}
	var p PolicyRecord
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("policy of %s does not decode: %w", model, err)
	}
	return &p, nil
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request, _ Identity) {
	name, err := modelName(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	p, err := a.policyRecord(r.Context(), name)
	if err != nil {
		a.fail(w, err)
		return
	}
	if p == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %s has no policy set", name))
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// AuditPage is GET /api/v1/audit. Next is the ID to pass as since to read on; it may
// be past the last event returned when a model filter skipped entries.
type AuditPage struct {
	Events []registry.Event `json:"events"`
	Next   string           `json:"next"`
}

func (a *API) audit(w http.ResponseWriter, r *http.Request, _ Identity) {
	q := r.URL.Query()
	model := q.Get("model")
	if model != "" && !registry.ValidName(model) {
		a.fail(w, badRequest("model: %q is not a valid model name", model))
		return
	}
	since := q.Get("since")
	if since == "" {
		since = "0"
	}
	if !ValidStreamID(since) {
		a.fail(w, badRequest("since: %q is not a stream ID (ms or ms-seq)", since))
		return
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > AuditPageMax {
			a.fail(w, badRequest("limit: %q is not a number from 1 to %d", s, AuditPageMax))
			return
		}
		limit = n
	}
	read := ReadAudit
	switch o := q.Get("order"); o {
	case "", "oldest":
	case "newest":
		read = ReadAuditNewest
	default:
		a.fail(w, badRequest("order: %q is not oldest or newest", o))
		return
	}
	page, err := read(r.Context(), a.reg, model, since, limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// ValidStreamID reports whether s is an audit event id: ms or ms-seq.
func ValidStreamID(s string) bool {
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
// ReadAudit reads up to limit audit events of reg after since ("0": from the start), of
// model when it is not empty, as GET /api/v1/audit answers. It scans at most 10,000
// entries per call; Next says where to go on.
func ReadAudit(ctx context.Context, reg *registry.Registry, model, since string, limit int) (AuditPage, error) {
	page := AuditPage{Events: []registry.Event{}, Next: since}
	for scanned := 0; scanned < auditScanMax && len(page.Events) < limit; {
		want := limit - len(page.Events)
		if model != "" {
			want = min(AuditPageMax, auditScanMax-scanned)
		}
		evs, err := reg.ReadAudit(ctx, page.Next, int64(want))
		if err != nil {
			return AuditPage{}, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			scanned++
			page.Next = e.ID
			if model == "" || e.Model == model {
				page.Events = append(page.Events, e)
				if len(page.Events) == limit {
					break
				}
			}
		}
	}
	return page, nil
}

// ---- operator calls

type PromoteRequest struct {
	Version int64  `json:"version"`
	Reason  string `json:"reason"`
	// Alias is the alias to point at Version: champion (the default; a direct
	// override that bypasses the rollout gate), or canary or shadow, which hand
	// Version to the governed rollout (see PromotableAliases).
	Alias string `json:"alias,omitempty"`
	// Expect, when set, is the version Alias must point at now (0: unset);
	// without it the API expects what it reads just before the move.
	Expect *int64 `json:"expect,omitempty"`
}

// PromotableAliases are the aliases promote may move. Champion serves at once.
// Canary and shadow name the candidate of the governed rollout: the governor
// measures the canary alias, else the shadow alias, against the champion on the
// rollout gate and advances it to champion or rolls it back (governor.evaluate).
var PromotableAliases = []string{registry.AliasChampion, registry.AliasCanary, registry.AliasShadow}

// MoveResult answers promote and rollback.
type MoveResult struct {
	Model string `json:"model"`
	Alias string `json:"alias"`
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	Epoch int64  `json:"epoch"`
}

func (a *API) promote(w http.ResponseWriter, r *http.Request, who Identity) {
	name, err := modelName(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req PromoteRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if req.Version < 1 {
		a.fail(w, badRequest("version: required, a version number ≥ 1"))
		return
	}
	if req.Alias == "" {
		req.Alias = registry.AliasChampion
	}
	if !slices.Contains(PromotableAliases, req.Alias) {
		a.fail(w, badRequest("alias: %q is not one of %s", req.Alias, strings.Join(PromotableAliases, ", ")))
		return
	}
	if err := requireReason(req.Reason); err != nil {
		a.fail(w, err)
		return
	}
	res, err := a.moveAlias(r.Context(), name, req.Alias, req.Version, req.Expect, who, req.Reason, "promote")
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// moveAlias moves alias of model to version by compare-and-set against expect, or
// against the alias read now when expect is nil. A canary or shadow may not be the
// champion's version: the governor would have nothing to measure (409).
func (a *API) moveAlias(ctx context.Context, model, alias string, version int64, expect *int64, who Identity, why, action string) (MoveResult, error) {
	if expect != nil && *expect < 0 {
		return MoveResult{}, badRequest("expect: %d is not a version (0 means unset)", *expect)
	}
	var set registry.AliasSet
	if expect == nil || alias != registry.AliasChampion {
		var err error
		if set, err = a.reg.Aliases(ctx, model); err != nil {
			return MoveResult{}, err
		}
	}
	from := set.Versions[alias]
	if expect != nil {
		from = *expect
	}
	if from == version {
		return MoveResult{}, &apiError{http.StatusConflict, fmt.Sprintf("%s of %s is already version %d", alias, model, version)}
	}
	if alias != registry.AliasChampion && set.Versions[registry.AliasChampion] == version {
		return MoveResult{}, &apiError{http.StatusConflict, fmt.Sprintf("version %d is the champion of %s: a %s must be another version for the rollout gate to measure", version, model, alias)}
	}
	epoch, err := a.reg.MoveAlias(ctx, registry.AliasMove{
		Model: model, Alias: alias, Version: version, Expect: from,
		Who: who.Name, Why: why, Details: map[string]string{"action": action, "role": who.Role},
	})
	if errors.Is(err, registry.ErrConflict) {
		return MoveResult{}, &apiError{http.StatusConflict, fmt.Sprintf("%s of %s moved: it no longer points at version %d (%v); re-read and retry", alias, model, from, err)}
	}
	if err != nil {
		return MoveResult{}, err
	}
	return MoveResult{Model: model, Alias: alias, From: from, To: version, Epoch: epoch}, nil
}

type RollbackRequest struct {
	// To is the version to roll back to; without it, the previous champion recorded
	// in the audit trail.
	To     *int64 `json:"to,omitempty"`
	Reason string `json:"reason"`
	Expect *int64 `json:"expect,omitempty"`
}

func (a *API) rollback(w http.ResponseWriter, r *http.Request, who Identity) {
	ctx := r.Context()
	var req RollbackRequest
	name, err := decodeModelRequest(r, &req, func() string { return req.Reason })
	if err != nil {
		a.fail(w, err)
		return
	}
	var to int64
	if req.To != nil {
		if *req.To < 1 {
			a.fail(w, badRequest("to: %d is not a version number ≥ 1", *req.To))
			return
		}
		to = *req.To
	} else {
		as, err := a.reg.Aliases(ctx, name)
		if err != nil {
			a.fail(w, err)
			return
		}
		cur := as.Versions[registry.AliasChampion]
		if cur == 0 {
			a.fail(w, &apiError{http.StatusConflict, fmt.Sprintf("model %s has no champion to roll back", name)})
			return
		}
		prev, err := a.reg.PreviousChampion(ctx, name, cur)
		if err != nil {
			a.fail(w, err)
			return
		}
		if prev == 0 {
			a.fail(w, &apiError{http.StatusConflict, fmt.Sprintf("the audit trail records no champion of %s before version %d; pass to", name, cur)})
			return
		}
		to = prev
		if req.Expect == nil {
			req.Expect = &cur
		}
	}
	res, err := a.moveAlias(ctx, name, registry.AliasChampion, to, req.Expect, who, req.Reason, "rollback")
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.reg.SettleAfterRollback(ctx, name, who.Name, req.Reason); err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

type ReasonRequest struct {
	Reason string `json:"reason"`
}

func (a *API) pause(w http.ResponseWriter, r *http.Request, who Identity) {
	a.setPaused(w, r, who, true)
}

func (a *API) resume(w http.ResponseWriter, r *http.Request, who Identity) {
	a.setPaused(w, r, who, false)
}

func (a *API) setPaused(w http.ResponseWriter, r *http.Request, who Identity, paused bool) {
	ctx := r.Context()
	var req ReasonRequest
	name, err := decodeModelRequest(r, &req, func() string { return req.Reason })
	if err != nil {
		a.fail(w, err)
		return
	}
	if _, err := a.reg.Aliases(ctx, name); err != nil { // 404 for an unknown model
		a.fail(w, err)
		return
	}
	now := a.now().UTC()
	what := WhatRolloutResume
	if paused {
		what = WhatRolloutPause
		rec, _ := json.Marshal(PauseRecord{Who: who.Name, Why: req.Reason, When: now})
		err = a.rdb.Set(ctx, a.pausedKey(name), rec, 0).Err()
	} else {
		err = a.rdb.Del(ctx, a.pausedKey(name)).Err()
	}
	if err != nil {
		a.fail(w, fmt.Errorf("write pause flag of %s: %w", name, err))
		return
	}
	id, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: what, Model: name, Why: req.Reason, When: now,
		Details: map[string]string{"role": who.Role}})
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model": name, "paused": paused, "audit": id})
}

type RetrainBody struct {
	Reason string `json:"reason"`
	// Details are passed to the retrain job, e.g. window or warm-start hints.
	Details map[string]string `json:"details,omitempty"`
}

func (a *API) retrain(w http.ResponseWriter, r *http.Request, who Identity) {
	ctx := r.Context()
	var req RetrainBody
	name, err := decodeModelRequest(r, &req, func() string { return req.Reason })
	if err != nil {
		a.fail(w, err)
		return
	}
	if len(req.Details) > MaxDetails {
		a.fail(w, badRequest("details: %d entries, more than the limit of %d", len(req.Details), MaxDetails))
		return
	}
	for k, v := range req.Details {
		if k == "" || len(k) > MaxDetailKeyBytes {
			a.fail(w, badRequest("details: a key of %d bytes; keys are 1 to %d bytes", len(k), MaxDetailKeyBytes))
			return
		}
		if err := checkText("details key", k, MaxDetailKeyBytes); err != nil {
			a.fail(w, err)
			return
		}
		if err := checkText("details."+k, v, MaxDetailValueBytes); err != nil {
			a.fail(w, err)
			return
		}
	}
	if _, err := a.reg.Aliases(ctx, name); err != nil {
		a.fail(w, err)
		return
	}
	now := a.now().UTC()
	details := map[string]string{"role": who.Role}
	for k, v := range req.Details {
		details["req."+k] = v
	}
	auditID, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: WhatRetrainRequest, Model: name, Why: req.Reason, When: now, Details: details})
	if err != nil {
		a.fail(w, err)
		return
	}
	values := []any{"model", name, "who", who.Name, "why", req.Reason, "when", now.Format(time.RFC3339Nano), "audit", auditID}
	for k, v := range req.Details {
		values = append(values, "d."+k, v)
	}
	reqID, err := a.rdb.XAdd(ctx, &redis.XAddArgs{Stream: a.retrainStreamKey(), MaxLen: 10000, Approx: true, Values: values}).Result()
	if err != nil {
		a.fail(w, fmt.Errorf("append retrain request: %w", err))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"model": name, "request": reqID, "audit": auditID})
}

// ---- admin calls

type TokenRequest struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Reason string `json:"reason,omitempty"`
}

// TokenCreated answers POST /api/v1/tokens; Token is shown only here.
type TokenCreated struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Token string `json:"token"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, who Identity) {
	ctx := r.Context()
	var req TokenRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if !registry.ValidName(req.Name) || req.Name == BootstrapTokenName {
		a.fail(w, badRequest("name: %q is not a valid token name (1 to 128 letters, digits, '.', '_', '-'; not %s)", req.Name, BootstrapTokenName))
		return
	}
	if RoleRank(req.Role) == 0 {
		a.fail(w, badRequest("role: %q is not one of viewer, operator, admin", req.Role))
		return
	}
	if err := checkText("reason", req.Reason, MaxReasonBytes); err != nil {
		a.fail(w, err)
		return
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		a.fail(w, err)
		return
	}
	token := "dl_" + hex.EncodeToString(secret)
	sum := sha256.Sum256([]byte(token))
	hash := hex.EncodeToString(sum[:])
	now := a.now().UTC()
	rec, _ := json.Marshal(TokenInfo{Name: req.Name, Role: req.Role, Created: now, CreatedBy: who.Name})
	ok, err := a.rdb.HSetNX(ctx, a.tokenNamesKey(), req.Name, hash).Result()
	if err != nil {
		a.fail(w, fmt.Errorf("write token store: %w", err))
		return
	}
	if !ok {
		a.fail(w, &apiError{http.StatusConflict, fmt.Sprintf("name: a token named %q exists; revoke it first", req.Name)})
		return
	}
	if err := a.rdb.HSet(ctx, a.tokensKey(), hash, rec).Err(); err != nil {
		a.rdb.HDel(context.WithoutCancel(ctx), a.tokenNamesKey(), req.Name)
		a.fail(w, fmt.Errorf("write token store: %w", err))
		return
	}
	why := req.Reason
	if why == "" {
		why = "token created"
	}
	if _, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: WhatTokenCreate, Why: why, When: now,
		Details: map[string]string{"token": req.Name, "role": req.Role}}); err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, TokenCreated{Name: req.Name, Role: req.Role, Token: token})
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, _ Identity) {
	all, err := a.rdb.HGetAll(r.Context(), a.tokensKey()).Result()
	if err != nil {
		a.fail(w, fmt.Errorf("read token store: %w", err))
		return
	}
	out := make([]TokenInfo, 0, len(all))
	for _, raw := range all {
		var rec TokenInfo
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			a.fail(w, fmt.Errorf("token record does not decode: %w", err))
			return
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(x, y TokenInfo) int { return strings.Compare(x.Name, y.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, who Identity) {
	ctx := r.Context()
	name := r.PathValue("name")
	if !registry.ValidName(name) {
		a.fail(w, badRequest("name: not a valid token name (1 to 128 letters, digits, '.', '_', '-')"))
		return
	}
	reason := r.URL.Query().Get("reason")
	if err := requireReason(reason); err != nil {
		a.fail(w, err)
		return
	}
	hash, err := a.rdb.HGet(ctx, a.tokenNamesKey(), name).Result()
	if errors.Is(err, redis.Nil) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no token named %q", name))
		return
	}
	if err != nil {
		a.fail(w, fmt.Errorf("read token store: %w", err))
		return
	}
	if _, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, a.tokensKey(), hash)
		p.HDel(ctx, a.tokenNamesKey(), name)
		return nil
	}); err != nil {
		a.fail(w, fmt.Errorf("write token store: %w", err))
		return
	}
	if _, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: WhatTokenRevoke, Why: reason, When: a.now().UTC(),
		Details: map[string]string{"token": name}}); err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": name})
}

type PolicyRequest struct {
	// Gate is the policy's gate; absent fields take their defaults
	// (rollout.GateSpec).
	Gate   *rollout.GateSpec `json:"gate"`
	Reason string            `json:"reason"`
}

func (a *API) setPolicy(w http.ResponseWriter, r *http.Request, who Identity) {
	ctx := r.Context()
	name, err := modelName(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req PolicyRequest
	if err := decodeBody(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if req.Gate == nil {
		a.fail(w, badRequest("gate: required, a rollout gate object"))
		return
	}
	gate, _, err := req.Gate.Resolve(false)
	if err != nil {
		fes := rollout.FieldErrors(err)
		msgs := make([]string, len(fes))
		for i, fe := range fes {
			msgs[i] = "gate." + fe.Field + ": " + fe.Msg
		}
		a.fail(w, badRequest("%s", strings.Join(msgs, "; ")))
		return
	}
	if err := requireReason(req.Reason); err != nil {
		a.fail(w, err)
		return
	}
	if _, err := a.reg.Aliases(ctx, name); err != nil {
		a.fail(w, err)
		return
	}
	now := a.now().UTC()
	rec := PolicyRecord{Gate: gate, Who: who.Name, Why: req.Reason, When: now}
	raw, _ := json.Marshal(rec)
	if err := a.rdb.Set(ctx, a.policyKey(name), raw, 0).Err(); err != nil {
		a.fail(w, fmt.Errorf("write policy of %s: %w", name, err))
		return
	}
	if _, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: WhatPolicySet, Model: name, Why: req.Reason, When: now,
		Details: map[string]string{"gate": string(mustJSON(rec.Gate))}}); err != nil {
		a.fail(w, err)
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
