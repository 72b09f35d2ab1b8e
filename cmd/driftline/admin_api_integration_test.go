//go:build integration

package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/driftline/driftline/testkit/admintest"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestAdminAPIRealRedis runs the admin API, the models CLI and driftline audit on a
// real redis-server: tokens, roles, promote, concurrent promotes (exactly one wins the
// compare-and-set), rollback and the audit log in order.
func TestAdminAPIRealRedis(t *testing.T) {
	r := redistest.StartRedis(t)
	f := admintest.Start(t, r.Client(t))

	f.WantError(t, "", http.MethodGet, "/api/v1/models", nil, http.StatusUnauthorized)
	f.WantError(t, f.Viewer, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": 2, "reason": "r"}, http.StatusForbidden)

	// Two operators race to promote different versions from champion 1.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i, v := range []int{2, 3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = f.Call(t, f.Operator, http.MethodPost, "/api/v1/models/fraud/promote", map[string]any{"version": v, "reason": "race", "expect": 1})
		}()
	}
	wg.Wait()
	if !(codes[0] == http.StatusOK && codes[1] == http.StatusConflict || codes[0] == http.StatusConflict && codes[1] == http.StatusOK) {
		t.Fatalf("concurrent promotes answered %v, want one 200 and one 409", codes)
	}
	winner := f.Champion(t)

	code, out, errOut := modelsCLI(t, f, f.Operator, "rollback", "fraud", "--reason", "undo race")
	wantCLI(t, code, out, errOut, 0, "-> 1")

	code, out, errOut = cli(t, "audit", "--redis", r.Addr, "--model", "fraud", "--details")
	wantCLI(t, code, out, errOut, 0)
	evs := parseAuditOutput(t, out)
	got := whats(evs)
	want := "trainer:register trainer:register trainer:register trainer:alias.set ops:alias.set ops:alias.set"
	if got != want {
		t.Fatalf("audit:\n got %s\nwant %s", got, want)
	}
	if evs[4].version != strconv.FormatInt(winner, 10) || !strings.Contains(evs[5].rest, `action="rollback"`) || evs[5].why != "undo race" {
		t.Fatalf("audit lines %+v", evs[4:])
	}
}
