package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// adminTestApp opens the demo spec's App (a registry, so an admin API) on
// miniredis, with no reachable broker, and edit applied to its spec.
func adminTestApp(t *testing.T, edit func(*pipeline.Spec)) (*App, *redistest.Redis) {
	t.Helper()
	spec, err := pipeline.ParseSpec("admin.yaml", DemoSpec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Kafka.Brokers = []string{"127.0.0.1:1"}
	t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
	t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
	if edit != nil {
		edit(spec)
	}
	mr := redistest.StartMiniredis(t)
	a, err := Open(context.Background(), spec, Options{Redis: mr.Client(t), Log: slog.New(slog.DiscardHandler), AdminToken: "bootstrap-admin-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a, mr
}

// closedWithin reads from c until the server closes it (or sends
// something, which is read and ignored), and reports how long that took;
// it fails the test when c is still open after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: still open after %s", what, limit)
		}
		return time.Since(start)
	}
}

// The admin server bounds what slow and idle clients can hold: a client
// that never finishes its headers (slow loris) is closed after the header
// timeout, an idle kept-alive connection after the idle timeout, headers
// are capped, and at most MaxConns connections are open at once — yet the
// server keeps serving a well-behaved client throughout. Before issue 11
// only ReadHeaderTimeout was set: idle connections stayed open, headers
// could take 1 MB, and connections were not bounded.
func TestAdminServerBoundsSlowAndIdleClients(t *testing.T) {
	a, _ := adminTestApp(t, nil)
	limits := AdminLimits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond, WriteTimeout: 2 * time.Second,
		IdleTimeout: 500 * time.Millisecond, MaxHeaderBytes: 1 << 10, MaxConns: 4}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := a.serveAdmin(ctx, "127.0.0.1:0", limits)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Slow loris: more half-sent requests than the server takes at once.
	var slow []net.Conn
	for range limits.MaxConns + 2 {
		c := dial()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, c)
	}
	// A well-behaved client is served meanwhile, within the time it takes
	// the server to drop the slow ones.
	start := time.Now()
	cl := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if waited := time.Since(start); resp.StatusCode != http.StatusOK || waited > 3*limits.ReadHeaderTimeout+2*time.Second {
		t.Errorf("a good client waited %s for %d behind slow ones, want 200 within about two header timeouts", waited, resp.StatusCode)
	}
	for i, c := range slow {
		// Past the limit, a connection waits to be accepted, then gets its
		// own header timeout.
		closedWithin(t, c, 3*limits.ReadHeaderTimeout+3*time.Second, "slow client "+string(rune('0'+i)))
	}

	// An idle kept-alive connection is closed after the idle timeout.
	c := dial()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if r, err := http.ReadResponse(br, nil); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("keep-alive request: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if idle := closedWithin(t, c, limits.IdleTimeout+2*time.Second, "idle keep-alive client"); idle < limits.IdleTimeout/2 {
		t.Errorf("idle connection closed after %s, before the idle timeout %s", idle, limits.IdleTimeout)
	}

	// Headers over the cap (net/http allows 4 KiB of slack over it) are
	// refused.
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 16<<10))
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("16 KiB of headers answered %d, want 431", resp.StatusCode)
	}
}

// An admin address without a host listens on loopback only.
func TestServeAdminBindsLoopbackByDefault(t *testing.T) {
	a, _ := adminTestApp(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := a.ServeAdmin(ctx, ":0")
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("admin address %q listens on %s, want loopback", ":0", addr)
	}
	for in, want := range map[string]string{":9464": "127.0.0.1:9464", "0.0.0.0:9464": "0.0.0.0:9464", "10.1.2.3:80": "10.1.2.3:80", "[::]:1": "[::]:1"} {
		if got := loopbackByDefault(in); got != want {
			t.Errorf("loopbackByDefault(%q) = %q, want %q", in, got, want)
		}
	}
}

// With admin.metrics_auth, /metrics wants a viewer token of the admin API;
// without it, /metrics is open, for a scraper on a trusted network.
func TestMetricsAuth(t *testing.T) {
	get := func(addr, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, guarded := range []bool{false, true} {
		a, _ := adminTestApp(t, func(s *pipeline.Spec) { s.Admin.MetricsAuth = guarded })
		ctx, cancel := context.WithCancel(context.Background())
		addr, err := a.ServeAdmin(ctx, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		viewer := createToken(t, addr, "scraper", adminapi.RoleViewer)
		open := get(addr, "")
		if guarded && open != http.StatusUnauthorized || !guarded && open != http.StatusOK {
			t.Errorf("metrics_auth %v: /metrics without a token answered %d", guarded, open)
		}
		if got := get(addr, viewer); got != http.StatusOK {
			t.Errorf("metrics_auth %v: /metrics with a viewer token answered %d", guarded, got)
		}
		if got := get(addr, "not-a-token"); guarded && got != http.StatusUnauthorized {
			t.Errorf("metrics_auth %v: /metrics with a bad token answered %d", guarded, got)
		}
		cancel()
	}
	// metrics_auth needs the admin API's tokens.
	a, _ := adminTestApp(t, func(s *pipeline.Spec) { s.Admin.MetricsAuth = true; s.Rollout = nil; s.Topics.Audit = "" })
	if _, err := a.ServeAdmin(context.Background(), "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "admin.metrics_auth") {
		t.Errorf("metrics_auth without an admin API: %v, want an error naming admin.metrics_auth", err)
	}
}

// createToken makes a token through the admin API with the bootstrap token.
func createToken(t *testing.T, addr, name, role string) string {
	t.Helper()
	body := strings.NewReader(`{"name":"` + name + `","role":"` + role + `"}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/tokens", body)
	req.Header.Set("Authorization", "Bearer bootstrap-admin-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out adminapi.TokenCreated
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("create token: %d %v", resp.StatusCode, err)
	}
	return out.Token
}

// /readyz says why the App is not ready, naming Redis but never its
// address (the body is for anyone).
func TestReadyzNamesTheProblemNotTheAddress(t *testing.T) {
	a, mr := adminTestApp(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := a.ServeAdmin(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mr.Mini.Close()
	a.health.Down(dependencyRedis, "connection refused")
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "redis: connection refused") || strings.Contains(string(b), mr.Addr) {
		t.Errorf("/readyz: %d %q; want 503 naming redis, not %s", resp.StatusCode, b, mr.Addr)
	}
}
