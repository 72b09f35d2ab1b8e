package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/models/registry"
)

// demoVersion is a registry version as the demo summary lists it.
type demoVersion struct {
	Version   int64              `json:"version"`
	Parent    int64              `json:"parent,omitempty"`
	CreatedBy string             `json:"created_by"`
	Created   time.Time          `json:"created"`
	Aliases   []string           `json:"aliases"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
}

// demoRolloutEvent is an audit event of the governance loop.
type demoRolloutEvent struct {
	When    time.Time         `json:"when"`
	Who     string            `json:"who"`
	What    string            `json:"what"`
	Version int64             `json:"version,omitempty"`
	Why     string            `json:"why,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// rolloutEvent reports whether an audit event belongs to the governance
// loop's story: everything but the governor's holds.
func rolloutEvent(e registry.Event) bool { return e.What != "rollout.hold" }

// governanceSummary reads the model's champion, versions and rollout
// events from the registry for the demo summary.
func governanceSummary(ctx context.Context, reg *registry.Registry, model string) (int64, []demoVersion, []demoRolloutEvent, error) {
	set, err := reg.Aliases(ctx, model)
	if errors.Is(err, registry.ErrNotFound) {
		return 0, []demoVersion{}, []demoRolloutEvent{}, nil
	}
	if err != nil {
		return 0, nil, nil, err
	}
	aliases := map[int64][]string{}
	for a, v := range set.Versions {
		aliases[v] = append(aliases[v], a)
	}
	vs, err := reg.Versions(ctx, model)
	if err != nil {
		return 0, nil, nil, err
	}
	versions := make([]demoVersion, 0, len(vs))
	for _, v := range vs {
		al := aliases[v.Number]
		sort.Strings(al)
		if al == nil {
			al = []string{}
		}
		versions = append(versions, demoVersion{Version: v.Number, Parent: v.Lineage.Parent, CreatedBy: v.CreatedBy,
			Created: v.Created, Aliases: al, Metrics: v.Lineage.Metrics})
	}
	events := []demoRolloutEvent{}
	for from := ""; ; {
		evs, err := reg.ReadAudit(ctx, from, 1000)
		if err != nil {
			return 0, nil, nil, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Model == model && rolloutEvent(e) {
				events = append(events, demoRolloutEvent{When: e.When, Who: e.Who, What: e.What, Version: e.Version, Why: e.Why, Details: e.Details})
			}
		}
		from = evs[len(evs)-1].ID
	}
	return set.Versions[registry.AliasChampion], versions, events, nil
}

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
		if e.Model != t.model || !rolloutEvent(e) {
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
			trimFloat(d["candidate"]), d["candidateN"], trimFloat(d["champion"]), d["championN"])
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
