package adminapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/driftline/driftline/models/rollout"
)

// AuditNewest reads the newest limit audit events after since ("0": any),
// of model when it is not empty, oldest first.
func (c *Client) AuditNewest(ctx context.Context, model, since string, limit int) (AuditPage, error) {
	q := url.Values{"since": {since}, "limit": {strconv.Itoa(limit)}, "order": {"newest"}}
	if model != "" {
		q.Set("model", model)
	}
	var p AuditPage
	err := c.do(ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &p)
	return p, err
}

// Rollout returns the rollout status of model's governor on the instance
// that serves the API (a *StatusError 404 when it runs none).
func (c *Client) Rollout(ctx context.Context, model string) (rollout.Status, error) {
	var st rollout.Status
	err := c.do(ctx, http.MethodGet, modelPath(model, "/rollout"), nil, &st)
	return st, err
}

// Abort withdraws model's candidate (canary, else shadow).
func (c *Client) Abort(ctx context.Context, model, reason string) (AbortResult, error) {
	var res AbortResult
	err := c.do(ctx, http.MethodPost, modelPath(model, "/abort"), ReasonRequest{Reason: reason}, &res)
	return res, err
}

// Artifact is a downloaded version artifact.
type Artifact struct {
	// Version is the version number the registry resolved.
	Version int64
	SHA256  string
	Data    []byte
}

// Download fetches artifact ("snapshot" or "onnx") of model's version (a
// number or an alias) and checks its bytes against the sha256 the registry
// recorded.
func (c *Client) Download(ctx context.Context, model, version, artifact string) (Artifact, error) {
	path := modelPath(model, "/versions/"+url.PathEscape(version)+"/"+url.PathEscape(artifact))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return Artifact{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return Artifact{}, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return Artifact{}, statusError(resp.StatusCode, raw)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return Artifact{}, fmt.Errorf("GET %s: read answer: %w", path, err)
	}
	a := Artifact{SHA256: resp.Header.Get("X-Driftline-Sha256"), Data: data}
	if a.Version, err = strconv.ParseInt(resp.Header.Get("X-Driftline-Version"), 10, 64); err != nil {
		return Artifact{}, fmt.Errorf("GET %s: no version number in the answer", path)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != a.SHA256 {
		return Artifact{}, fmt.Errorf("GET %s: the bytes' sha256 is %s, the registry recorded %q", path, got, a.SHA256)
	}
	return a, nil
}
