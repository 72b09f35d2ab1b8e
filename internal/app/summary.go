package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/models/registry"
)

// VersionSummary is a registry version as the demo's summary lists it.
type VersionSummary struct {
	Version   int64              `json:"version"`
	Parent    int64              `json:"parent,omitempty"`
	CreatedBy string             `json:"created_by"`
	Created   time.Time          `json:"created"`
	Aliases   []string           `json:"aliases"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
}

// RolloutEvent is an audit event of the governance loop.
type RolloutEvent struct {
	When    time.Time         `json:"when"`
	Who     string            `json:"who"`
	What    string            `json:"what"`
	Version int64             `json:"version,omitempty"`
	Why     string            `json:"why,omitempty"`
	Details map[string]string `json:"details,omitempty"`
}

// IsRolloutStory reports whether an audit event belongs to the governance
// loop's story: everything but the governor's holds.
func IsRolloutStory(e registry.Event) bool { return e.What != "rollout.hold" }

// GovernanceSummary reads model's champion, its versions (with lineage and
// aliases) and the rollout events of its audit log, oldest first. A model
// the registry does not hold has none of them.
func GovernanceSummary(ctx context.Context, reg *registry.Registry, model string) (int64, []VersionSummary, []RolloutEvent, error) {
	set, err := reg.Aliases(ctx, model)
	if errors.Is(err, registry.ErrNotFound) {
		return 0, []VersionSummary{}, []RolloutEvent{}, nil
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
	versions := make([]VersionSummary, 0, len(vs))
	for _, v := range vs {
		al := aliases[v.Number]
		slices.Sort(al)
		if al == nil {
			al = []string{}
		}
		versions = append(versions, VersionSummary{Version: v.Number, Parent: v.Lineage.Parent, CreatedBy: v.CreatedBy,
			Created: v.Created, Aliases: al, Metrics: v.Lineage.Metrics})
	}
	events := []RolloutEvent{}
	for from := ""; ; {
		evs, err := reg.ReadAudit(ctx, from, 1000)
		if err != nil {
			return 0, nil, nil, err
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Model == model && IsRolloutStory(e) {
				events = append(events, RolloutEvent{When: e.When, Who: e.Who, What: e.What, Version: e.Version, Why: e.Why, Details: e.Details})
			}
		}
		from = evs[len(evs)-1].ID
	}
	return set.Versions[registry.AliasChampion], versions, events, nil
}

// DescribeRolloutEvent is one line about a governance audit event, as the
// demo prints it: alias and traffic moves, registrations, and the gate's
// decisions with their evidence.
func DescribeRolloutEvent(e registry.Event) string {
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
