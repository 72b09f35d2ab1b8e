package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/testkit/admintest"
	"github.com/driftline/driftline/testkit/redistest"
)

// cli runs driftline with args and returns the exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// modelsCLI runs `driftline models SUB ...` against f with token.
func modelsCLI(t *testing.T, f *admintest.Fixture, token string, args ...string) (int, string, string) {
	t.Helper()
	full := append([]string{"models"}, args...)
	full = append(full, "--admin-url", f.URL, "--token", token)
	return cli(t, full...)
}

func wantCLI(t *testing.T, code int, stdout, stderr string, wantCode int, wantOut ...string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, stdout, stderr)
	}
	for _, w := range wantOut {
		if !strings.Contains(stdout+stderr, w) {
			t.Errorf("output does not contain %q\nstdout:\n%s\nstderr:\n%s", w, stdout, stderr)
		}
	}
}

func TestModelsCLIListAndShow(t *testing.T) {
	t.Setenv(envToken, "")
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	code, out, errOut := modelsCLI(t, f, f.Viewer, "list")
	wantCLI(t, code, out, errOut, 0)
	if !regexp.MustCompile(`(?m)^MODEL +VERSIONS +LATEST +CHAMPION +ALIASES +PAUSED\nfraud +3 +3 +1 +champion=1 +false\n$`).MatchString(out) {
		t.Fatalf("list printed:\n%s", out)
	}

	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "fraud")
	wantCLI(t, code, out, errOut, 0, "model:   fraud", "aliases: champion=1 (epoch 1)\ntraffic: canary share never set", "paused:  no")
	for _, re := range []string{
		`(?m)^VERSION +CREATED +BY +ALIASES +PARENT +SOURCE +METRICS$`,
		`(?m)^1 +\S+Z +trainer +champion +- +- +accuracy=0\.81$`,
		`(?m)^3 +\S+Z +trainer +- +2 +- +accuracy=0\.83$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("show output does not match %s:\n%s", re, out)
		}
	}

	// A retrain trigger queued for the governor shows on its own line.
	since := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	if _, err := f.Registry.QueueRetrain(context.Background(), "fraud", registry.QueuedRetrain{Kind: "drift", Key: "ADWIN/error/fraud@1/1", Reason: "ADWIN drift on error", Since: since}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "fraud")
	wantCLI(t, code, out, errOut, 0, "paused:  no\nretrain: queued since 2026-12-06T09:00:00Z, drift ADWIN/error/fraud@1/1: ADWIN drift on error\n")

	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "fraud", "--json")
	wantCLI(t, code, out, errOut, 0, `"name": "fraud"`, `"number": 3`, `"parent": 2`)

	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "nope")
	wantCLI(t, code, out, errOut, 1, "driftline models: 404 Not Found")
}

func TestModelsCLIPromoteRollback(t *testing.T) {
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	code, out, errOut := modelsCLI(t, f, f.Operator, "promote", "fraud", "2", "--reason", "canary passed")
	wantCLI(t, code, out, errOut, 0)
	if out != "promoted fraud: champion 1 -> 2 (alias epoch 2)\n" {
		t.Fatalf("promote printed %q", out)
	}
	if f.Champion(t) != 2 {
		t.Fatalf("champion %d after CLI promote", f.Champion(t))
	}
	if e := f.LastAudit(t); e.Who != "ops" || e.Why != "canary passed" {
		t.Fatalf("audit %+v", e)
	}
	// Flags before the positional arguments work too.
	code, out, errOut = modelsCLI(t, f, f.Operator, "promote", "--reason", "next", "fraud", "3")
	wantCLI(t, code, out, errOut, 0, "champion 2 -> 3")

	code, out, errOut = modelsCLI(t, f, f.Operator, "rollback", "fraud", "--reason", "v3 regressed")
	wantCLI(t, code, out, errOut, 0)
	if out != "rolled back fraud: champion 3 -> 2 (alias epoch 4)\n" {
		t.Fatalf("rollback printed %q", out)
	}
	code, out, errOut = modelsCLI(t, f, f.Operator, "rollback", "fraud", "--to", "3", "--reason", "pin")
	wantCLI(t, code, out, errOut, 0, "champion 2 -> 3")

	// CAS conflict: the champion is not what --expect says.
	code, out, errOut = modelsCLI(t, f, f.Operator, "promote", "fraud", "1", "--expect", "2", "--reason", "r")
	wantCLI(t, code, out, errOut, 1, "409 Conflict", "no longer points at version 2")
	if f.Champion(t) != 3 {
		t.Fatalf("champion %d after a refused promote", f.Champion(t))
	}
}

func TestModelsCLIPromoteAlias(t *testing.T) {
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	ctx := context.Background()
	code, out, errOut := modelsCLI(t, f, f.Operator, "promote", "--model", "fraud", "--version", "2", "--alias", "canary", "--reason", "hand-picked")
	wantCLI(t, code, out, errOut, 0)
	if out != "promoted fraud: canary none -> 2 (alias epoch 2)\nversion 2 goes to the rollout gate: the governor measures it against the champion, then advances or rolls it back\n" {
		t.Fatalf("promote --alias canary printed %q", out)
	}
	set, err := f.Registry.Aliases(ctx, "fraud")
	if err != nil || set.Versions["canary"] != 2 || set.Versions["champion"] != 1 {
		t.Fatalf("aliases %+v, %v after CLI promote --alias canary", set, err)
	}
	if e := f.LastAudit(t); e.Who != "ops" || e.Why != "hand-picked" || e.Details["alias"] != "canary" || e.Details["action"] != "promote" {
		t.Fatalf("audit %+v", e)
	}
	// Positional NAME VERSION, or one of them by flag, work the same.
	code, out, errOut = modelsCLI(t, f, f.Operator, "promote", "fraud", "3", "--alias", "shadow", "--reason", "r")
	wantCLI(t, code, out, errOut, 0, "promoted fraud: shadow none -> 3")
	code, out, errOut = modelsCLI(t, f, f.Operator, "promote", "fraud", "--version", "3", "--alias", "canary", "--expect", "2", "--reason", "r")
	wantCLI(t, code, out, errOut, 0, "promoted fraud: canary 2 -> 3")
	code, out, errOut = modelsCLI(t, f, f.Operator, "promote", "fraud", "1", "--alias", "canary", "--reason", "r")
	wantCLI(t, code, out, errOut, 1, "409 Conflict", "champion of fraud")
	code, out, errOut = modelsCLI(t, f, f.Operator, "promote", "fraud", "2", "--alias", "challenger", "--reason", "r")
	wantCLI(t, code, out, errOut, 1, `--alias: "challenger" is not one of champion, canary, shadow`)
	code, out, errOut = modelsCLI(t, f, f.Operator, "promote", "fraud", "2", "--model", "fraud", "--reason", "r")
	wantCLI(t, code, out, errOut, 2, `unexpected argument "2"`)
	if f.Champion(t) != 1 {
		t.Fatalf("champion %d after candidate promotes", f.Champion(t))
	}

	// show prints the canary's traffic share next to the aliases.
	if _, err := f.Registry.SetTraffic(ctx, registry.TrafficMove{Model: "fraud", Percent: 25, Who: "governor", Why: "step"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "fraud")
	wantCLI(t, code, out, errOut, 0, "aliases: canary=3,champion=1,shadow=3 (epoch 5)\ntraffic: canary 25%\n")
	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "fraud", "--json")
	wantCLI(t, code, out, errOut, 0, `"canary_percent": 25`, `"traffic_set": true`)
	// show says where the rollout's state lives (this API serves no governor).
	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "fraud")
	wantCLI(t, code, out, errOut, 0, "rollout: the instance at --admin-url runs no governor of this model")

	// abort withdraws the candidate: the canary (and shadow) alias of version 3 go, the share drops to 0.
	code, out, errOut = modelsCLI(t, f, f.Viewer, "abort", "fraud", "--reason", "r")
	wantCLI(t, code, out, errOut, 1, "403 Forbidden")
	code, out, errOut = modelsCLI(t, f, f.Operator, "abort", "fraud", "--reason", "bad canary")
	wantCLI(t, code, out, errOut, 0, "aborted the rollout of fraud: version 3 lost canary and shadow")
	code, out, errOut = modelsCLI(t, f, f.Viewer, "show", "fraud")
	wantCLI(t, code, out, errOut, 0, "aliases: champion=1 (epoch 8)\ntraffic: canary 0%\n")
}

func TestModelsCLIErrors(t *testing.T) {
	t.Setenv(envToken, "")
	t.Setenv(envAdminURL, "")
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"viewer promotes", []string{"models", "promote", "fraud", "2", "--reason", "r", "--admin-url", f.URL, "--token", f.Viewer},
			1, []string{"403 Forbidden", "role viewer", "needs operator"}},
		{"bad token", []string{"models", "list", "--admin-url", f.URL, "--token", "dl_wrong"},
			1, []string{"401 Unauthorized", "invalid token", "--token"}},
		{"no token", []string{"models", "list", "--admin-url", f.URL}, 1, []string{"--token: required", envToken}},
		{"no url", []string{"models", "list", "--token", f.Viewer}, 1, []string{"--admin-url: required"}},
		{"bad url", []string{"models", "list", "--admin-url", "localhost:1", "--token", f.Viewer}, 1, []string{"--admin-url", "not an http(s) URL"}},
		{"no reason", []string{"models", "promote", "fraud", "2", "--admin-url", f.URL, "--token", f.Operator}, 2, []string{"--reason is required", "Usage: driftline models promote NAME VERSION"}},
		{"missing version", []string{"models", "promote", "fraud", "--reason", "r", "--admin-url", f.URL, "--token", f.Operator}, 2, []string{"missing VERSION"}},
		{"bad version", []string{"models", "promote", "fraud", "two", "--reason", "r", "--admin-url", f.URL, "--token", f.Operator}, 1, []string{`VERSION: "two" is not a version number`}},
		{"extra argument", []string{"models", "pause", "fraud", "extra", "--reason", "r"}, 2, []string{`unexpected argument "extra"`}},
		{"bad --to", []string{"models", "rollback", "fraud", "--to", "0", "--reason", "r", "--token", "x", "--admin-url", f.URL}, 1, []string{"--to:"}},
		{"bad role", []string{"models", "token", "create", "--role", "root", "--name", "x", "--admin-url", f.URL, "--token", f.Admin}, 1, []string{"--role:"}},
		{"no name", []string{"models", "token", "create", "--role", "viewer", "--admin-url", f.URL, "--token", f.Admin}, 2, []string{"--name is required"}},
		{"unknown subcommand", []string{"models", "frobnicate"}, 2, []string{`unknown subcommand "frobnicate"`, "promote"}},
		{"unknown token subcommand", []string{"models", "token", "mint"}, 2, []string{`unknown subcommand "mint"`, "create"}},
		{"bad detail", []string{"models", "retrain", "fraud", "--detail", "novalue", "--reason", "r"}, 2, []string{"want key=value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			wantCLI(t, code, out, errOut, tc.code, tc.want...)
		})
	}
	if f.Champion(t) != 1 {
		t.Fatalf("champion %d after refused calls", f.Champion(t))
	}
}

func TestModelsCLIHelp(t *testing.T) {
	for _, args := range [][]string{
		{"models", "--help"},
		{"models", "promote", "--help"},
		{"models", "rollback", "--help"},
		{"models", "token", "create", "--help"},
		{"audit", "--help"},
	} {
		code, out, errOut := cli(t, args...)
		wantCLI(t, code, out, errOut, 0)
		if !strings.Contains(errOut, "Usage: driftline") {
			t.Errorf("%v: no usage:\n%s", args, errOut)
		}
		if len(args) > 2 && (!strings.Contains(errOut, "--admin-url") || !strings.Contains(errOut, "DRIFTLINE_ADMIN_TOKEN")) {
			t.Errorf("%v: help does not explain --admin-url and $DRIFTLINE_ADMIN_TOKEN:\n%s", args, errOut)
		}
	}
	_, _, errOut := cli(t, "models", "promote", "--help")
	for _, w := range []string{"--alias", "direct override", "canary or shadow hands VERSION to the governed rollout", "rollout gate"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("models promote --help does not say %q:\n%s", w, errOut)
		}
	}
	_, _, errOut = cli(t, "models", "--help")
	for _, sub := range []string{"list", "show", "promote", "rollback", "pause", "retrain", "token"} {
		if !strings.Contains(errOut, "\n  "+sub) {
			t.Errorf("models --help does not list %s:\n%s", sub, errOut)
		}
	}
}

func TestModelsCLIPauseResumeRetrain(t *testing.T) {
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	code, out, errOut := modelsCLI(t, f, f.Operator, "pause", "fraud", "--reason", "incident")
	wantCLI(t, code, out, errOut, 0)
	if out != "paused the rollout of fraud\n" {
		t.Fatalf("pause printed %q", out)
	}
	code, out, errOut = modelsCLI(t, f, f.Viewer, "list")
	wantCLI(t, code, out, errOut, 0)
	if !regexp.MustCompile(`(?m)^fraud .* true$`).MatchString(out) {
		t.Fatalf("list while paused:\n%s", out)
	}
	code, out, errOut = modelsCLI(t, f, f.Operator, "resume", "fraud", "--reason", "over")
	wantCLI(t, code, out, errOut, 0, "resumed the rollout of fraud")
	if p, err := f.API.Paused(context.Background(), "fraud"); err != nil || p {
		t.Fatalf("paused %v, %v after CLI resume", p, err)
	}
	code, out, errOut = modelsCLI(t, f, f.Operator, "retrain", "fraud", "--reason", "drift", "--detail", "window=2h", "--detail", "warm=true")
	wantCLI(t, code, out, errOut, 0, "retrain of fraud requested: request ")
	e := f.LastAudit(t)
	if e.What != adminapi.WhatRetrainRequest || e.Why != "drift" || e.Details["req.window"] != "2h" || e.Details["req.warm"] != "true" {
		t.Fatalf("retrain audit %+v", e)
	}
}

func TestModelsCLITokenCreate(t *testing.T) {
	t.Setenv(envToken, "")
	f := admintest.Start(t, redistest.StartMiniredis(t).Client(t))
	code, out, errOut := modelsCLI(t, f, f.Admin, "token", "create", "--role", "operator", "--name", "deployer")
	wantCLI(t, code, out, errOut, 0, `created operator token "deployer"`, "not shown again")
	tok := strings.TrimSpace(out)
	if !regexp.MustCompile(`^dl_[0-9a-f]{64}$`).MatchString(tok) {
		t.Fatalf("token create printed %q on stdout", out)
	}
	// The new token authenticates with its role, from the environment too.
	t.Setenv(envToken, tok)
	code, out, errOut = cli(t, "models", "promote", "fraud", "2", "--reason", "deploy", "--admin-url", f.URL)
	wantCLI(t, code, out, errOut, 0, "champion 1 -> 2")
	if e := f.LastAudit(t); e.Who != "deployer" {
		t.Fatalf("audit who %q, want deployer", e.Who)
	}
	code, out, errOut = cli(t, "models", "token", "create", "--role", "viewer", "--name", "x", "--admin-url", f.URL)
	wantCLI(t, code, out, errOut, 1, "403 Forbidden")

	code, out, errOut = modelsCLI(t, f, f.Admin, "token", "list")
	wantCLI(t, code, out, errOut, 0)
	if !regexp.MustCompile(`(?m)^deployer +operator +\S+ +bootstrap-admin$`).MatchString(out) || strings.Contains(out, tok) {
		t.Fatalf("token list:\n%s", out)
	}
	code, out, errOut = modelsCLI(t, f, f.Admin, "token", "revoke", "deployer", "--reason", "rotate")
	wantCLI(t, code, out, errOut, 0, "revoked token deployer")
	code, out, errOut = cli(t, "models", "list", "--admin-url", f.URL)
	wantCLI(t, code, out, errOut, 1, "401 Unauthorized")
}
