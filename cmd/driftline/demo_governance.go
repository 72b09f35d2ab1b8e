package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/registry"
)

// rolloutTail prints the governance loop's new audit events as the demo
// runs, one line each.
type rolloutTail struct {
	reg    *registry.Registry
	model  string
	w      io.Writer
	cursor string
}

// print writes the events since the last call; p's status line is ended
// first on a terminal.
func (t *rolloutTail) print(ctx context.Context, p *progress) {
	evs, err := t.reg.ReadAudit(ctx, t.cursor, 1000)
	if err != nil || len(evs) == 0 {
		return
	}
	t.cursor = evs[len(evs)-1].ID
	for _, e := range evs {
		if e.Model != t.model || !app.IsRolloutStory(e) {
			continue
		}
		p.done()
		fmt.Fprintf(t.w, "ROLLOUT %s\n", describeRolloutEvent(e))
	}
}

// describeRolloutEvent is one line about a governance audit event.
func describeRolloutEvent(e registry.Event) string {
	d := e.Details
	switch e.What {
	case registry.WhatRegister:
		return fmt.Sprintf("version %d registered by %s: %s", e.Version, e.Who, e.Why)
	case registry.WhatAliasSet:
		return fmt.Sprintf("%s → version %s (by %s)", d["alias"], d["to"], e.Who)
	case registry.WhatAliasDelete:
		return fmt.Sprintf("%s alias removed from version %s (by %s)", d["alias"], d["from"], e.Who)
	case registry.WhatTrafficSet:
		return fmt.Sprintf("canary traffic %s%% → %s%%", d["from"], d["to"])
	}
	line := fmt.Sprintf("%s version %d: %s", strings.TrimPrefix(e.What, "rollout."), e.Version, e.Why)
	if d["metric"] != "" {
		line += fmt.Sprintf(" [%s: candidate %s on %s outcomes, champion %s on %s]", d["metric"],
			trimFloat(d["candidate"]), d["candidate_n"], trimFloat(d["champion"]), d["champion_n"])
	}
	return line
}

// trimFloat prints a decimal string with at most 4 decimals.
func trimFloat(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return strconv.FormatFloat(f, 'f', 4, 64)
}
