package adminapi

// Two model calls beside promote and rollback:
//
//	operator  POST /api/v1/models/{name}/abort                        {"reason"}: withdraw the candidate
//	viewer    GET  /api/v1/models/{name}/versions/{version}/snapshot  the learner snapshot's bytes
//	          GET  /api/v1/models/{name}/versions/{version}/onnx      the ONNX model's bytes
//
// {version} is a number or an alias (champion, canary, shadow, …). A
// download answers application/octet-stream with the artifact's sha256 in
// X-Driftline-Sha256 and Digest-style in Repr-Digest; its bytes are what
// the registry stored (checked against that sha256 by the registry).

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/driftline/driftline/models/registry"
)

// WhatRolloutAbort is the audit What of an operator's abort.
const WhatRolloutAbort = "rollout.abort"

// AbortResult answers POST /api/v1/models/{name}/abort.
type AbortResult struct {
	Model string `json:"model"`
	// Candidate is the version withdrawn; Aliases the aliases removed from
	// it.
	Candidate int64    `json:"candidate"`
	Aliases   []string `json:"aliases"`
	Audit     string   `json:"audit"`
}

func (a *API) routeModelOps() {
	a.route("POST /api/v1/models/{name}/abort", RoleOperator, a.abort)
	a.route("GET /api/v1/models/{name}/versions/{version}/{artifact}", RoleViewer, a.download)
}

// abort withdraws the candidate under rollout (the canary alias, else the
// shadow alias): both aliases are removed from it and the canary's share
// goes to 0, by compare-and-set, with the operator's reason in the audit
// log. The champion keeps serving; the governor finds no candidate on its
// next tick. 409 when there is no candidate.
func (a *API) abort(w http.ResponseWriter, r *http.Request, who Identity) {
	ctx := r.Context()
	var req ReasonRequest
	name, err := decodeModelRequest(r, &req, func() string { return req.Reason })
	if err != nil {
		a.fail(w, err)
		return
	}
	set, err := a.reg.Aliases(ctx, name)
	if err != nil {
		a.fail(w, err)
		return
	}
	cand := set.Versions[registry.AliasCanary]
	if cand == 0 {
		cand = set.Versions[registry.AliasShadow]
	}
	if cand == 0 {
		a.fail(w, &apiError{http.StatusConflict, fmt.Sprintf("model %s has no canary or shadow to abort", name)})
		return
	}
	details := map[string]string{"action": "abort", "role": who.Role}
	res := AbortResult{Model: name, Candidate: cand, Aliases: []string{}}
	for _, alias := range []string{registry.AliasCanary, registry.AliasShadow} {
		if set.Versions[alias] != cand {
			continue
		}
		if _, err := a.reg.MoveAlias(ctx, registry.AliasMove{Model: name, Alias: alias, Version: 0, Expect: cand,
			Who: who.Name, Why: req.Reason, Details: details}); err != nil {
			a.fail(w, err)
			return
		}
		res.Aliases = append(res.Aliases, alias)
	}
	if set.TrafficSet && set.CanaryPercent != 0 {
		if _, err := a.reg.SetTraffic(ctx, registry.TrafficMove{Model: name, Percent: 0, Who: who.Name, Why: req.Reason, Details: details}); err != nil {
			a.fail(w, err)
			return
		}
	}
	id, err := a.reg.AppendAudit(ctx, registry.Event{Who: who.Name, What: WhatRolloutAbort, Model: name, Version: cand,
		Why: req.Reason, When: a.now().UTC(), Details: map[string]string{"role": who.Role, "aliases": strings.Join(res.Aliases, ",")}})
	if err != nil {
		a.fail(w, err)
		return
	}
	res.Audit = id
	writeJSON(w, http.StatusOK, res)
}

// download answers a version's artifact bytes.
func (a *API) download(w http.ResponseWriter, r *http.Request, _ Identity) {
	ctx := r.Context()
	name, err := modelName(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var kind registry.ArtifactKind
	switch r.PathValue("artifact") {
	case "snapshot":
		kind = registry.ArtifactSnapshot
	case "onnx":
		kind = registry.ArtifactONNX
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("artifact: %q is not snapshot or onnx", r.PathValue("artifact")))
		return
	}
	v, err := a.resolveVersion(r, name)
	if err != nil {
		a.fail(w, err)
		return
	}
	desc := v.Snapshot
	if kind == registry.ArtifactONNX {
		desc = v.ONNX
	}
	if desc.Size == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("version %d of %s has no %s artifact", v.Number, name, kind))
		return
	}
	data, err := a.reg.Artifact(ctx, name, v.Number, kind)
	if err != nil {
		a.fail(w, err)
		return
	}
	sum, _ := hex.DecodeString(desc.SHA256)
	ext := map[registry.ArtifactKind]string{registry.ArtifactSnapshot: "snapshot", registry.ArtifactONNX: "onnx"}[kind]
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-v%d.%s"`, name, v.Number, ext))
	h.Set("X-Driftline-Version", strconv.FormatInt(v.Number, 10))
	h.Set("X-Driftline-Sha256", desc.SHA256)
	h.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// resolveVersion reads the {version} path value: a number, or an alias.
func (a *API) resolveVersion(r *http.Request, name string) (registry.Version, error) {
	s := r.PathValue("version")
	if n, err := strconv.ParseInt(strings.TrimPrefix(s, "v"), 10, 64); err == nil {
		if n < 1 {
			return registry.Version{}, badRequest("version: %d is not a version number ≥ 1", n)
		}
		return a.reg.Version(r.Context(), name, n)
	}
	if !registry.ValidName(s) {
		return registry.Version{}, badRequest("version: %q is neither a version number nor an alias", s)
	}
	return a.reg.Resolve(r.Context(), name, s)
}
