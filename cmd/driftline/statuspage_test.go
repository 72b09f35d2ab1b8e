package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/models/adminapi"
)

// TestDemoServesTheStatusPage runs the demo for a few seconds and reads
// what the status page reads: the page and its assets from the binary, the
// data plane's status (per-partition counts that add up to the totals, lag
// and DLQ reasons), the history, the drift report, and the model. The
// browser test (TestStatusPageInChromium, integration) drives the page.
func TestDemoServesTheStatusPage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	token := "dl_test_" + strings.Repeat("cd", 16)
	t.Setenv(adminapi.EnvAdminToken, token)
	demoCtx, stop := context.WithCancel(ctx)
	defer stop()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(demoCtx, []string{"demo", "--events", "0", "--rate", "5000"}, &stdout, &stderr)
	}()
	var base string
	for deadline := time.Now().Add(time.Minute); base == ""; time.Sleep(50 * time.Millisecond) {
		if m := regexp.MustCompile(`status page (http://[^/\s]+)/#token=` + token).FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no status page URL with the token:\n%s", tail(stderr.String(), 2000))
		}
	}
	get := func(path, tok string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	// The page is embedded, self-contained and locked to its own origin.
	code, page, h := get("/", "")
	if code != http.StatusOK || !strings.Contains(page, `<script src="/status/app.js"`) || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: %d %q, CSP %q", code, tail(page, 200), h.Get("Content-Security-Policy"))
	}
	for _, asset := range []string{"/status/app.js", "/status/style.css"} {
		code, body, _ := get(asset, "")
		body = strings.ReplaceAll(body, "'http://www.w3.org/2000/svg'", "") // the SVG namespace, not a fetch
		if code != http.StatusOK || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("GET %s: %d, or it refers to another origin", asset, code)
		}
	}
	if code, _, _ := get("/nothing-here", ""); code != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %d, want 404", code)
	}
	if code, _, _ := get("/api/v1/status", ""); code != http.StatusUnauthorized {
		t.Errorf("status without a token: %d, want 401 (the demo spec has no public_status)", code)
	}

	c, err := adminapi.NewClient(base, token, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st adminapi.PipelineStatus
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if err := getJSON(ctx, base+"/api/v1/status", token, &st); err != nil {
			t.Fatal(err)
		}
		if st.In > 5000 && st.DLQ > 0 && len(st.DLQReasons) > 0 && !st.SampledAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after a minute: %+v", st)
		}
	}
	var sum int64
	inputs := 0
	for _, p := range st.Partitions {
		if p.Topic == st.InputTopic {
			sum += p.In
			inputs++
		}
	}
	// The per-partition counts and the total are read at nearly the same
	// moment, not atomically: they may differ by the batches handled in
	// between (the demo's batch.size is 1,024).
	if inputs != 2 || sum < st.In-2*1024 || sum > st.In+2*1024 || st.Model != "demo-logistic" || st.Champion == "" {
		t.Errorf("status %+v: want 2 input partitions whose counts add up to %d (± 2 batches)", st, st.In)
	}
	var hist adminapi.History
	if err := getJSON(ctx, base+"/api/v1/history", token, &hist); err != nil || len(hist.Points) == 0 || hist.Capacity == 0 {
		t.Errorf("history %+v, %v", hist, err)
	}
	var dv adminapi.DriftView
	if err := getJSON(ctx, base+"/api/v1/drift", token, &dv); err != nil || len(dv.Report.Subjects) != 11 {
		t.Errorf("drift report with %d subjects (%v), want the 10 features and the prediction", len(dv.Report.Subjects), err)
	}
	if _, err := c.Rollout(ctx, "demo-logistic"); err != nil {
		t.Errorf("rollout status: %v", err)
	}
	stop()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop")
	}
}

// getJSON GETs url with a bearer token and decodes the JSON answer.
func getJSON(ctx context.Context, url, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
