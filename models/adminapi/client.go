package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls the admin API with a bearer token. It is safe for
// concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient checks baseURL (the admin address, e.g. http://127.0.0.1:9464)
// and returns a client whose calls each take at most timeout. Errors name
// what is wrong with baseURL or token.
func NewClient(baseURL, token string, timeout time.Duration) (*Client, error) {
	base := strings.TrimRight(baseURL, "/")
	if base == "" {
		return nil, errors.New("admin url: required, e.g. http://127.0.0.1:9464")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin url: %q is not an http(s) URL", baseURL)
	}
	if token == "" {
		return nil, errors.New("token: required")
	}
	return &Client{base: base, token: token, hc: &http.Client{Timeout: timeout}}, nil
}

// StatusError is a non-2xx answer; Msg is the API's {"error"} message.
type StatusError struct {
	Status int
	Msg    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Msg)
}

// Models lists the models with their aliases.
func (c *Client) Models(ctx context.Context) ([]ModelSummary, error) {
	var out struct {
		Models []ModelSummary `json:"models"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/models", nil, &out)
	return out.Models, err
}

// Model shows one model: versions, lineage, aliases, traffic, pause, policy.
func (c *Client) Model(ctx context.Context, name string) (ModelView, error) {
	var m ModelView
	err := c.do(ctx, http.MethodGet, modelPath(name, ""), nil, &m)
	return m, err
}

// Promote points an alias of model at a version.
func (c *Client) Promote(ctx context.Context, model string, req PromoteRequest) (MoveResult, error) {
	var res MoveResult
	err := c.do(ctx, http.MethodPost, modelPath(model, "/promote"), req, &res)
	return res, err
}

// Rollback moves model's champion back.
func (c *Client) Rollback(ctx context.Context, model string, req RollbackRequest) (MoveResult, error) {
	var res MoveResult
	err := c.do(ctx, http.MethodPost, modelPath(model, "/rollback"), req, &res)
	return res, err
}

// SetPaused pauses (true) or resumes (false) model's rollout.
func (c *Client) SetPaused(ctx context.Context, model string, paused bool, reason string) error {
	verb := "/resume"
	if paused {
		verb = "/pause"
	}
	return c.do(ctx, http.MethodPost, modelPath(model, verb), ReasonRequest{Reason: reason}, nil)
}

// Retrain requests a retrain of model; it returns the request's and the
// audit event's IDs.
func (c *Client) Retrain(ctx context.Context, model string, req RetrainBody) (request, audit string, err error) {
	var res struct {
		Request string `json:"request"`
		Audit   string `json:"audit"`
	}
	err = c.do(ctx, http.MethodPost, modelPath(model, "/retrain"), req, &res)
	return res.Request, res.Audit, err
}

// CreateToken makes a token; the answer holds it, shown once.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (TokenCreated, error) {
	var res TokenCreated
	err := c.do(ctx, http.MethodPost, "/api/v1/tokens", req, &res)
	return res, err
}

// Tokens lists the tokens (never their secrets).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var out struct {
		Tokens []TokenInfo `json:"tokens"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/tokens", nil, &out)
	return out.Tokens, err
}

// RevokeToken stops the token named name working.
func (c *Client) RevokeToken(ctx context.Context, name, reason string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(name)+"?reason="+url.QueryEscape(reason), nil, nil)
}

// Audit reads up to limit audit events after since ("0": from the start),
// of model when it is not empty.
func (c *Client) Audit(ctx context.Context, model, since string, limit int) (AuditPage, error) {
	q := url.Values{"since": {since}, "limit": {strconv.Itoa(limit)}}
	if model != "" {
		q.Set("model", model)
	}
	var p AuditPage
	err := c.do(ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &p)
	return p, err
}

func modelPath(name, suffix string) string { return "/api/v1/models/" + url.PathEscape(name) + suffix }

// do sends body (when not nil) as JSON and decodes a 2xx answer into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return statusError(resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: answer does not decode: %w", method, path, err)
	}
	return nil
}

// statusError is the *StatusError of a non-2xx answer with body raw.
func statusError(status int, raw []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(raw))
	}
	return &StatusError{Status: status, Msg: e.Error}
}
