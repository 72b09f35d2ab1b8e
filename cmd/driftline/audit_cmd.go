package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/connectors/redis"

	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
)

const auditAbout = `Print the audit log, oldest first, one line per event:

  TIME who=WHO what=WHAT model=MODEL version=N why="WHY" id=ID [change] [details]

Events are registrations, alias moves (promotions and rollbacks), canary
traffic changes, rollout pauses, resumes and aborts, gate decisions,
retrain requests, token and policy changes. An alias move shows which
alias changed, e.g. alias=champion 2->3 action=promote; a traffic change
canary=0%->50%. --limit N prints the newest N events (after --since when
given); pass an event's id as --since to read only what came after it.

By default it reads through the admin API (GET /api/v1/audit) with a viewer
token. With --redis it reads the registry's audit stream in Redis directly
and needs no token (use that when no driftline instance serves the API).

` + apiFlagsAbout

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit", "[--model NAME] [--since ID] [--limit N] [--follow] [flags]", auditAbout, stderr)
	af := addAPIFlags(fs)
	model := fs.String("model", "", "only events of this model")
	since := fs.String("since", "", "only events after this id (as printed)")
	limit := fs.Int("limit", 0, "print the newest N events (0: all); with --since, the newest N after it; with --follow, then keep following")
	follow := fs.Bool("follow", false, "keep printing new events as they arrive, until interrupted")
	interval := fs.Duration("interval", time.Second, "with --follow, how often to poll for new events")
	details := fs.Bool("details", false, "print every event's details as key=value after the id")
	redisAddr := fs.String("redis", "", "read the audit stream from Redis at host:port instead of the admin API")
	redisUser := fs.String("redis-user", "", "Redis ACL user, with --redis")
	redisPasswordEnv := fs.String("redis-password-env", "", "name of the environment variable holding the Redis password, with --redis")
	prefix := fs.String("registry-prefix", registry.DefaultPrefix, "the registry's key prefix, with --redis")
	if _, err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *model != "" && !registry.ValidName(*model) {
		return fmt.Errorf("--model: %q is not a valid model name", *model)
	}
	if *since != "" && !adminapi.ValidStreamID(*since) {
		return fmt.Errorf("--since: %q is not an event id (ms or ms-seq)", *since)
	}
	if *limit < 0 {
		return fmt.Errorf("--limit: %d is negative", *limit)
	}
	if *interval <= 0 {
		return fmt.Errorf("--interval: %v is not positive", *interval)
	}

	var fetch, newest func(ctx context.Context, since string, n int) (adminapi.AuditPage, error)
	if *redisAddr != "" {
		pw, err := pipeline.SecretRef{Env: *redisPasswordEnv}.Resolve()
		if err != nil {
			return fmt.Errorf("--redis-password-env: %w", err)
		}
		rc := redis.Config{Addrs: []string{*redisAddr}, Username: *redisUser, Password: pw}
		rdb, err := redis.New(rc)
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		defer rdb.Close()
		reg, err := registry.New(rdb, registry.Config{Prefix: *prefix})
		if err != nil {
			return fmt.Errorf("--registry-prefix: %w", err)
		}
		read := func(f func(context.Context, *registry.Registry, string, string, int) (adminapi.AuditPage, error)) func(context.Context, string, int) (adminapi.AuditPage, error) {
			return func(ctx context.Context, since string, n int) (adminapi.AuditPage, error) {
				p, err := f(ctx, reg, *model, since, n)
				if err != nil {
					return p, fmt.Errorf("--redis %s: %w", *redisAddr, err)
				}
				return p, nil
			}
		}
		fetch, newest = read(adminapi.ReadAudit), read(adminapi.ReadAuditNewest)
	} else {
		c, err := af.client()
		if err != nil {
			return err
		}
		fetch = func(ctx context.Context, since string, n int) (adminapi.AuditPage, error) {
			p, err := c.Audit(ctx, *model, since, n)
			return p, apiError(err)
		}
		newest = func(ctx context.Context, since string, n int) (adminapi.AuditPage, error) {
			p, err := c.AuditNewest(ctx, *model, since, n)
			return p, apiError(err)
		}
	}

	cursor := *since
	if cursor == "" {
		cursor = "0"
	}
	if *limit > 0 {
		// The newest N, then (with --follow) what comes after them.
		page, err := newest(ctx, cursor, min(*limit, adminapi.AuditPageMax))
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			fmt.Fprintln(stdout, formatAuditLine(e, *details))
		}
		if !*follow {
			return nil
		}
		cursor = page.Next
	}
	for {
		page, err := fetch(ctx, cursor, adminapi.AuditPageMax)
		if err != nil {
			if *follow && ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, e := range page.Events {
			fmt.Fprintln(stdout, formatAuditLine(e, *details))
		}
		advanced := page.Next != "" && page.Next != cursor
		if page.Next != "" {
			cursor = page.Next
		}
		if len(page.Events) > 0 || advanced {
			continue
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// formatAuditLine renders one event: time, who, what, model, version, why, id and,
// with details, the details sorted by key.
func formatAuditLine(e registry.Event, details bool) string {
	var b strings.Builder
	b.WriteString(e.When.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	fmt.Fprintf(&b, " who=%s what=%s model=%s version=%s why=%q id=%s",
		orDash(e.Who), orDash(e.What), orDash(e.Model), versionOrDash(e.Version), e.Why, e.ID)
	d := e.Details
	switch e.What {
	case registry.WhatAliasSet, registry.WhatAliasDelete:
		fmt.Fprintf(&b, " alias=%s %s->%s", d["alias"], versionOrNone(atoi(d["from"])), versionOrNone(atoi(d["to"])))
		if d["action"] != "" {
			fmt.Fprintf(&b, " action=%s", d["action"])
		}
	case registry.WhatTrafficSet:
		fmt.Fprintf(&b, " canary=%s%%->%s%%", orDash(d["from"]), orDash(d["to"]))
	}
	if details && len(e.Details) > 0 {
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%q", k, e.Details[k])
		}
	}
	return b.String()
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func versionOrDash(v int64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatInt(v, 10)
}
