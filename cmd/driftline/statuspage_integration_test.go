//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/browsertest"
)

// EnvScreenshots names a folder where TestStatusPageInChromium saves its
// screenshots (default: the test's temporary folder, logged).
const envScreenshots = "DRIFTLINE_SCREENSHOTS"

// TestStatusPageInChromium drives the status page of a running demo (in
// process, on kfake and miniredis) in headless Chromium: the rollout
// timeline shows the canary step and the promotion, the per-feature drift
// view shows the shifted feature first, an operator's rollback click moves
// the champion, and a viewer sees no action buttons. Then it interrupts
// the demo, which must stop within 2 s with counts that add up.
func TestStatusPageInChromium(t *testing.T) {
	testStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const model = "demo-logistic"
	token := "dl_test_" + strings.Repeat("ab", 16)
	t.Setenv(adminapi.EnvAdminToken, token)

	// The demo: the concept drifts at event 60,000 (a retrain, then shadow,
	// canary and promotion), and f2 shifts from event 150,000 on, after the
	// promotion, so that its open drift alert does not hold the rollout.
	demoCtx, stopDemo := context.WithCancel(ctx)
	defer stopDemo()
	var stdout bytes.Buffer
	var stderr lockedBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("demo stderr (tail):\n%s", tail(stderr.String(), 4000))
		}
	})
	done := make(chan int, 1)
	go func() {
		done <- runMain(demoCtx, []string{"demo", "--events", "0", "--rate", "25000", "--drift-at", "60000", "--shift", "f2=3@150000", "--json"}, &stdout, &stderr)
	}()
	addr := pollFor(t, ctx, 60*time.Second, "the demo's status page URL", func() (string, bool) {
		m := regexp.MustCompile(`status page http://([^/\s]+)/#token=`).FindStringSubmatch(stderr.String())
		if m == nil {
			return "", false
		}
		return m[1], true
	})
	base := "http://" + addr
	admin, err := adminapi.NewClient(base, token, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(name, role string) string {
		res, err := admin.CreateToken(ctx, adminapi.TokenRequest{Name: name, Role: role, Reason: "status page test"})
		if err != nil {
			t.Fatal(err)
		}
		return res.Token
	}
	operator, viewer := mint("page-operator", adminapi.RoleOperator), mint("page-viewer", adminapi.RoleViewer)

	// Wait, through the API, for the promotion and for f2's drift.
	pollFor(t, ctx, 150*time.Second, "the retrained candidate's promotion", func() (bool, bool) {
		p, err := admin.AuditNewest(ctx, model, "0", 1000)
		if err != nil {
			return false, false
		}
		for _, e := range p.Events {
			if e.What == "rollout.promote" {
				return true, true
			}
		}
		return false, false
	})
	pollFor(t, ctx, 90*time.Second, "a drift alert on f2", func() (bool, bool) {
		var dv adminapi.DriftView
		if err := getJSON(ctx, base+"/api/v1/drift", token, &dv); err != nil {
			return false, false
		}
		return true, len(dv.Report.Subjects) > 0 && dv.Report.Subjects[0].Subject == "f2" && dv.Report.Subjects[0].State == "drift"
	})
	t.Logf("demo ready for the browser after %s", time.Since(testStart).Round(time.Millisecond))

	browserStart := time.Now()
	shots := os.Getenv(envScreenshots)
	if shots == "" {
		shots = t.TempDir()
	}
	bctx := browsertest.Start(t, ctx, 1400, 1000)

	// The operator's page.
	eval := func(tab context.Context, what, js string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	waitPage := func(tab context.Context, what, js string) {
		t.Helper()
		pollFor(t, ctx, 30*time.Second, what, func() (bool, bool) { return true, eval(tab, what, js) == "true" })
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/#token="+operator)); err != nil {
		t.Fatal(err)
	}
	card := fmt.Sprintf(`.model[data-model=%q]`, model)
	waitPage(bctx, "the model card with its timeline", fmt.Sprintf(`String(document.querySelectorAll('%s .timeline li').length > 3)`, card))
	timeline := eval(bctx, "timeline", fmt.Sprintf(`Array.from(document.querySelectorAll('%s .timeline li')).map(li => li.className + ': ' + Array.from(li.childNodes).filter(n => n.nodeName !== 'TIME').map(n => n.textContent).join('')).join('\n')`, card))
	if !regexp.MustCompile(`(?m)^canary: .*advance v\d+ to canary step 1 \(50%\)`).MatchString(timeline) ||
		!regexp.MustCompile(`(?m)^canary: canary traffic 0% → 50%`).MatchString(timeline) {
		t.Errorf("the timeline does not show the 50%% canary step:\n%s", timeline)
	}
	if !regexp.MustCompile(`(?m)^promote: promote v\d+: `).MatchString(timeline) || !regexp.MustCompile(`(?m)^promote: champion → v\d+`).MatchString(timeline) {
		t.Errorf("the timeline does not show the promotion:\n%s", timeline)
	}
	waitPage(bctx, "the drift view", `String(document.querySelectorAll('#drift-subjects .subject').length > 5)`)
	first := eval(bctx, "first drift card", `(() => { const c = document.querySelector('#drift-subjects .subject'); return c.dataset.subject + ' ' + c.dataset.state + ' ' + c.querySelectorAll('rect').length + ' ' + c.querySelector('dd.corrected').textContent })()`)
	if f := strings.Fields(first); len(f) != 4 || f[0] != "f2" || f[1] != "drift" || f[2] == "0" {
		t.Errorf("first drift card %q, want f2 in drift with its histograms and corrected p-value", first)
	}
	saveScreenshot(t, bctx, filepath.Join(shots, "status-page.png"), true)
	saveScreenshot(t, bctx, filepath.Join(shots, "status-page-top.png"), false)
	for _, section := range []string{"models", "drift"} {
		eval(bctx, "scroll", fmt.Sprintf(`document.getElementById(%q).scrollIntoView(); 'ok'`, section))
		saveScreenshot(t, bctx, filepath.Join(shots, "status-page-"+section+".png"), false)
	}
	eval(bctx, "scroll", `window.scrollTo(0, 0); 'ok'`)

	// The operator rolls back: the champion changes, on the page and in the registry.
	before := eval(bctx, "champion", fmt.Sprintf(`document.querySelector('%s .champion').textContent`, card))
	if err := chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS(card+" input.reason"), "rollback drill from the status page test"),
		chromedp.Click(chromedp.CSS(card+` button[data-action="rollback"]`)),
	); err != nil {
		t.Fatal(err)
	}
	pollFor(t, ctx, 15*time.Second, "the champion to change on the page after the rollback click", func() (string, bool) {
		now := eval(bctx, "champion", fmt.Sprintf(`document.querySelector('%s .champion').textContent`, card))
		return now, now != before && now != "none"
	})
	m, err := admin.Model(ctx, model)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("v%d", m.Aliases[registry.AliasChampion]); got == before || m.Aliases[registry.AliasPrevious] == m.Aliases[registry.AliasChampion] {
		t.Errorf("registry aliases after the click %v, champion was %s", m.Aliases, before)
	}
	if e, err := admin.AuditNewest(ctx, model, "0", 20); err == nil {
		found := false
		for _, ev := range e.Events {
			found = found || ev.Who == "page-operator" && ev.Details["action"] == "rollback" && ev.Why == "rollback drill from the status page test"
		}
		if !found {
			t.Errorf("no rollback by page-operator in the audit log: %+v", e.Events)
		}
	}

	// A viewer sees the same page without a single action button.
	vtab := browsertest.NewTab(t, bctx)
	if err := chromedp.Do(vtab, chromedp.Navigate(base+"/#token="+viewer)); err != nil {
		t.Fatal(err)
	}
	waitPage(vtab, "the viewer's model card", fmt.Sprintf(`String(document.querySelectorAll('%s .timeline li').length > 3 && document.querySelector('#who').textContent.includes('viewer'))`, card))
	if n := eval(vtab, "action buttons", `String(document.querySelectorAll('button[data-action], .actions, input.reason').length)`); n != "0" {
		t.Errorf("the viewer's page has %s action controls, want none", n)
	}
	t.Logf("browser part took %s", time.Since(browserStart).Round(time.Millisecond))

	// Ctrl-C: the demo stops within 2 s, and its counts add up.
	interrupted := time.Now()
	stopDemo()
	select {
	case code := <-done:
		if took := time.Since(interrupted); took > 2*time.Second {
			t.Errorf("the demo took %s to stop after the interrupt, want at most 2s", took.Round(time.Millisecond))
		}
		if code != 0 {
			t.Fatalf("demo exit code %d:\n%s", code, tail(stderr.String(), 3000))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop within 30s of the interrupt")
	}
	var sum demoSummary
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, stdout.String())
	}
	if !sum.Incomplete || sum.Produced != sum.Predicted+sum.DLQ+sum.Deduped+sum.Unprocessed || sum.Unprocessed < 0 {
		t.Errorf("interrupted summary: produced %d, predicted %d + dlq %d + deduplicated %d + unprocessed %d (incomplete %t)",
			sum.Produced, sum.Predicted, sum.DLQ, sum.Deduped, sum.Unprocessed, sum.Incomplete)
	}
	t.Logf("whole test %s", time.Since(testStart).Round(time.Millisecond))
}

// pollFor polls check every 100 ms until it reports ok, for at most limit
// (and not past ctx), and fails t naming what it waited for.
func pollFor[T any](t *testing.T, ctx context.Context, limit time.Duration, what string, check func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v, ok := check()
		if ok {
			return v
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waited %s for %s; last value %v", limit, what, v)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func saveScreenshot(t *testing.T, tab context.Context, path string, full bool) {
	t.Helper()
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(90)
	}
	png, err := chromedp.Run(tab, shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}
