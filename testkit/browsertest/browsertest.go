// Package browsertest starts Debian's Chromium headless for tests that drive
// a web page through the Chrome DevTools protocol (chromedp): the admin
// address's status page.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvChromium names the environment variable that overrides the Chromium
// binary; by default "chromium" (Debian's package) is looked up on PATH.
const EnvChromium = "DRIFTLINE_CHROMIUM"

// Flags are the command-line flags Chromium starts with: headless, no
// sandbox (CI runs as root in containers), no GPU, and nothing that reaches
// the network on its own.
var Flags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync"}

// Start launches Chromium with Flags, a fresh --user-data-dir under t's
// temporary directory and a width × height window, and returns a browser
// context for chromedp (its first tab). The browser stops at t's cleanup;
// every chromedp call on the context ends when ctx does. It fails t, with
// what to install, when Chromium is missing.
func Start(t testing.TB, ctx context.Context, width, height int) context.Context {
	t.Helper()
	bin := os.Getenv(EnvChromium)
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("browsertest: chromium is not on PATH (%v): run scripts/setup.sh, which installs the Debian package chromium, or set $%s", err, EnvChromium)
		}
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(bin), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height)}
	for _, f := range Flags {
		opts = append(opts, chromedp.Flag(f[2:], true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	start := time.Now()
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("browsertest: start %s: %v", bin, err)
	}
	t.Logf("browsertest: %s started in %s", bin, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return bctx
}

// NewTab opens another tab of the browser of ctx (a context from Start),
// with its own page state but the same profile; it closes at t's cleanup.
func NewTab(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx); err != nil {
		t.Fatalf("browsertest: open a tab: %v", err)
	}
	return tctx
}
