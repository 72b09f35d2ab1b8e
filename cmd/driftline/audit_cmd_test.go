package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/admintest"
	"github.com/driftline/driftline/testkit/redistest"
)

// auditLine is what `driftline audit` prints for one event.
var auditLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) who=(\S+) what=(\S+) model=(\S+) version=(\S+) why="([^"]*)" id=(\d+-\d+)(.*)$`)

type printedEvent struct{ when, who, what, model, version, why, id, rest string }

func parseAuditOutput(t *testing.T, out string) []printedEvent {
	t.Helper()
	var evs []printedEvent
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := auditLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("audit line %q does not have the documented form", line)
		}
		evs = append(evs, printedEvent{m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]})
	}
	return evs
}

func whats(evs []printedEvent) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.who + ":" + e.what
	}
	return strings.Join(s, " ")
}

// auditScenario runs promote, pause, retrain and rollback through the API.
func auditScenario(t *testing.T, f *admintest.Fixture) {
	t.Helper()
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "canary passed"}, http.StatusOK, nil)
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/pause", map[string]any{"reason": "incident 7"}, http.StatusOK, nil)
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/retrain", map[string]any{"reason": "error drift"}, http.StatusAccepted, nil)
	f.MustCall(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/rollback", map[string]any{"reason": "v2 regressed"}, http.StatusOK, nil)
}

const wantAuditOrder = "trainer:register trainer:register trainer:register trainer:alias.set " +
	"bootstrap-admin:token.create bootstrap-admin:token.create " +
	"ops:alias.set ops:rollout.pause ops:retrain.request ops:alias.set"

func TestAuditPrintsEventsInOrder(t *testing.T) {
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	auditScenario(t, f)
	api := []string{"--admin-url", f.URL, "--token", f.Viewer}

	code, out, errOut := cli(t, append([]string{"audit"}, api...)...)
	wantCLI(t, code, out, errOut, 0)
	evs := parseAuditOutput(t, out)
	if got := whats(evs); got != wantAuditOrder {
		t.Fatalf("audit order:\n got %s\nwant %s\noutput:\n%s", got, wantAuditOrder, out)
	}
	stored := f.AllAudit(t)
	for i, e := range evs {
		if e.id != stored[i].ID || e.when != stored[i].When.UTC().Format("2006-01-02T15:04:05.000Z07:00") {
			t.Fatalf("line %d is %+v, stored event %+v", i, e, stored[i])
		}
	}
	promote := evs[6]
	if promote.model != "fraud" || promote.version != "2" || promote.why != "canary passed" {
		t.Fatalf("promote line %+v", promote)
	}
	if evs[4].model != "-" || evs[4].version != "-" {
		t.Fatalf("token line %+v: empty model and version print as -", evs[4])
	}

	// --model skips events of no or other models; --since starts after an id;
	// --limit prints the newest N; an alias move shows which alias changed;
	// --details appends the details.
	code, out, errOut = cli(t, append([]string{"audit", "--model", "fraud", "--since", evs[3].id}, api...)...)
	wantCLI(t, code, out, errOut, 0)
	if got := whats(parseAuditOutput(t, out)); got != "ops:alias.set ops:rollout.pause ops:retrain.request ops:alias.set" {
		t.Fatalf("--model fraud --since: %s", got)
	}
	code, out, errOut = cli(t, append([]string{"audit", "--limit", "2", "--details"}, api...)...)
	wantCLI(t, code, out, errOut, 0)
	lim := parseAuditOutput(t, out)
	if len(lim) != 2 || lim[0].id != evs[len(evs)-2].id || lim[1].id != evs[len(evs)-1].id ||
		lim[0].rest != ` role="operator"` || !strings.HasPrefix(lim[1].rest, ` alias=champion 2->1 action=rollback action="rollback"`) {
		t.Fatalf("--limit 2 --details, want the newest two:\n%s", out)
	}
	if promote.rest != " alias=champion 1->2 action=promote" {
		t.Fatalf("the promote line does not say which alias moved: %+v", promote)
	}
	code, out, errOut = cli(t, append([]string{"audit", "--details", "--since", evs[8].id}, api...)...)
	wantCLI(t, code, out, errOut, 0)
	if !strings.HasSuffix(strings.TrimSpace(out), `action="rollback" alias="champion" epoch="3" from="2" role="operator" to="1"`) {
		t.Fatalf("--details of the rollback:\n%s", out)
	}
	code, out, errOut = cli(t, append([]string{"audit", "--since", evs[len(evs)-1].id}, api...)...)
	wantCLI(t, code, out, errOut, 0)
	if out != "" {
		t.Fatalf("audit past the last event printed %q", out)
	}
}

func TestAuditFromRedis(t *testing.T) {
	r := redistest.StartMiniredis(t)
	f := admintest.Start(t, r.Client(t))
	auditScenario(t, f)
	t.Setenv(envToken, "")
	t.Setenv(envAdminURL, "")
	code, out, errOut := cli(t, "audit", "--redis", r.Addr)
	wantCLI(t, code, out, errOut, 0)
	if got := whats(parseAuditOutput(t, out)); got != wantAuditOrder {
		t.Fatalf("audit --redis order:\n got %s\nwant %s", got, wantAuditOrder)
	}
	code, out, errOut = cli(t, "audit", "--redis", r.Addr, "--model", "fraud", "--limit", "1")
	wantCLI(t, code, out, errOut, 0)
	if got := whats(parseAuditOutput(t, out)); got != "ops:alias.set" {
		t.Fatalf("audit --redis --model --limit: %s", got)
	}
	// A wrong prefix reads an empty stream, not someone else's.
	code, out, errOut = cli(t, "audit", "--redis", r.Addr, "--registry-prefix", "{other}")
	wantCLI(t, code, out, errOut, 0)
	if out != "" {
		t.Fatalf("other prefix printed %q", out)
	}
}

func TestAuditFollow(t *testing.T) {
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"audit", "--follow", "--interval", "10ms", "--model", "fraud", "--limit", "2",
			"--admin-url", f.URL, "--token", f.Viewer}, &stdout, &stderr)
	}()
	// 4 fraud events exist: the newest 2 print, then the follower waits.
	time.Sleep(50 * time.Millisecond)
	select {
	case code := <-done:
		t.Fatalf("audit --follow exited %d before the events came:\n%s%s", code, stdout.String(), stderr.String())
	default:
	}
	if _, err := f.Registry.AppendAudit(ctx, registry.Event{Who: "x", What: "noise", Model: "other"}); err != nil {
		t.Fatal(err)
	}
	auditScenario(t, f) // 4 more fraud events
	want := "trainer:register trainer:alias.set ops:alias.set ops:rollout.pause ops:retrain.request ops:alias.set"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if got := whats(parseAuditOutput(t, stdout.String())); got == want {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("followed:\n got %s\nwant %s", got, want)
		}
	}
	cancel()
	select {
	case code := <-done:
		wantCLI(t, code, stdout.String(), stderr.String(), 0)
	case <-time.After(10 * time.Second):
		t.Fatal("audit --follow --limit 2 did not stop on interrupt")
	}

	// Without --limit, --follow ends cleanly when interrupted.
	ctx2, cancel2 := context.WithCancel(context.Background())
	var out2, err2 bytes.Buffer
	done2 := make(chan int, 1)
	go func() {
		done2 <- runMain(ctx2, []string{"audit", "--follow", "--interval", "10ms", "--admin-url", f.URL, "--token", f.Viewer}, &out2, &err2)
	}()
	time.Sleep(50 * time.Millisecond)
	cancel2()
	select {
	case code := <-done2:
		if code != 0 || len(parseAuditOutput(t, out2.String())) != 11 {
			t.Fatalf("interrupted follow: exit %d, output:\n%s%s", code, out2.String(), err2.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("audit --follow did not stop on interrupt")
	}
}

func TestAuditFlagErrors(t *testing.T) {
	t.Setenv(envToken, "")
	t.Setenv(envAdminURL, "")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "--since", "yesterday", "--redis", "127.0.0.1:1"}, 1, "--since"},
		{[]string{"audit", "--limit", "-1", "--redis", "127.0.0.1:1"}, 1, "--limit"},
		{[]string{"audit", "--model", "a b", "--redis", "127.0.0.1:1"}, 1, "--model"},
		{[]string{"audit", "--interval", "0s", "--redis", "127.0.0.1:1"}, 1, "--interval"},
		{[]string{"audit"}, 1, "--admin-url: required"},
		{[]string{"audit", "--registry-prefix", "nohashtag", "--redis", "127.0.0.1:1"}, 1, "--registry-prefix"},
		{[]string{"audit", "--redis", "127.0.0.1:1"}, 1, "--redis 127.0.0.1:1"},
		{[]string{"audit", "extra"}, 2, `unexpected argument "extra"`},
	} {
		code, out, errOut := cli(t, tc.args...)
		wantCLI(t, code, out, errOut, tc.code, tc.want)
	}
}
