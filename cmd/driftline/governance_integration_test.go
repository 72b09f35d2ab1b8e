//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// Governance scenario parameters. The stream has an abrupt concept drift
// (SEA variant 0 → 3, which changes the label of about 13% of the events)
// at a known event.
const (
	govEvents  = 200_000 // phase 1: events, with the drift at govDriftAt
	govDriftAt = 60_000
	govRate    = 10_000 // events per second
	// govPreWindow is the span before the drift whose served accuracy is the
	// pre-drift level; govRecoveryWindow the span over which accuracy is
	// measured after it.
	govPreWindow      = 20_000
	govRecoveryWindow = 5_000
	// govRecoveryBound is the test's bound: served prequential accuracy is
	// back within govRecoveryPoints of its pre-drift level within this many
	// events after the drift.
	govRecoveryBound  = 30_000
	govRecoveryPoints = 0.02
	govPhase2Events   = 60_000 // phase 2: the bad candidate
	govNoise          = 0.05   // share of labels flipped at random
	// govTailEvents bounds the drifted concept's traffic after phase 1,
	// written until the retrained candidate is stable (see the test).
	govTailEvents = 240 * govRate
)

// TestIntegrationGovernanceLoop runs the whole model-governance loop of
// issue 5 on a real Apache Kafka broker and a real redis-server, with
// `driftline run` as a real process:
//
//  1. an abrupt concept drift at a known event raises an error-drift alert;
//  2. a retrain job, replaying the events and labels since the alert from
//     Kafka offsets (rollout.retrain.source: kafka), registers a candidate,
//     which enters shadow;
//  3. the candidate goes shadow → canary 50% → champion through the gates
//     (the demo spec's steps), and is stable after its bake;
//  4. served prequential accuracy (read back from the predictions topic and
//     scored against the stream's labels) recovers to within 2 points of its
//     pre-drift level within govRecoveryBound events after the drift;
//  5. a deliberately bad candidate (a model that cannot learn), handed to the
//     rollout by an operator through `driftline models promote --alias
//     shadow`, is rolled back automatically;
//  6. the audit log shows each step in order, in the Redis stream and on the
//     audit topic alike.
func TestIntegrationGovernanceLoop(t *testing.T) {
	broker := kafkatest.StartKafka(t)
	rds := redistest.StartRedis(t)
	spec, specPath := integrationSpec(t, broker, rds.Addr)
	// Retrain jobs replay recent events and labels from Kafka offsets, and
	// warm-start their candidates (see warmRetrain).
	text, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	kafkaSource := warmRetrain(t, strings.Replace(string(text), "  retrain:\n", "  retrain:\n    source: kafka\n    lookback: 2m\n", 1))
	if kafkaSource == string(text) {
		t.Fatal("the demo spec has no rollout.retrain block to edit")
	}
	writeFile(t, specPath, kafkaSource)
	admin := freeAddr(t)
	token := strings.Repeat("t", 32)
	t.Setenv(adminapi.EnvAdminToken, token)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rdb := rds.Client(t)
	reg, err := registry.New(rdb, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	model := spec.Model.Name
	bin := buildDriftline(t)
	run := startProcess(t, bin, []string{"run", "--spec", specPath, "--admin", admin}, "run")
	defer func() { _ = run.Process.Signal(syscall.SIGTERM); _ = run.Wait() }()

	// Phase 1: the drifting stream, at a steady rate with delayed labels.
	// Then, until the retrained candidate is stable, the tail: more of the
	// drifted concept. Alert → retrain → shadow → canary → champion →
	// stable takes wall time, which a slow machine stretches past phase
	// 1's 20 seconds, and a rollout without traffic gathers no samples; in
	// production the traffic goes on. The recovery bound is read on phase
	// 1's events alone.
	phase1 := streams.Config{Concept: streams.ConceptSEA, Seed: 11, Variant: 0, DriftVariant: 3, Noise: govNoise,
		Drift: streams.Drift{Kind: streams.DriftAbrupt, Position: govDriftAt},
		Start: time.Now().UTC().Truncate(time.Second), Step: time.Millisecond}
	tail := streams.Config{Concept: streams.ConceptSEA, Seed: 13, Variant: 3, Noise: govNoise,
		Start: phase1.Start.Add(time.Duration(govEvents) * time.Millisecond), Step: time.Millisecond}
	tailCtx, stopTail := context.WithCancel(ctx)
	defer stopTail()
	var tailStats feed.Stats
	prodErr := make(chan error, 1)
	go func() {
		err := produceGoverned(ctx, broker, spec, phase1, govEvents, &feed.Stats{})
		if err == nil {
			err = produceGoverned(tailCtx, broker, spec, tail, govTailEvents, &tailStats)
			if tailCtx.Err() != nil && ctx.Err() == nil {
				err = nil // stopped once the rollout was stable
			}
		}
		prodErr <- err
	}()

	// 1–3: alert, retrain, shadow → canary → champion → stable.
	var candidate int64
	waitFor(t, ctx, "a retrained candidate to become a stable champion", func() bool {
		evs := auditWhats(t, reg, model)
		for _, e := range evs {
			if e.What == registry.WhatRegister && e.Who == "retrain" {
				candidate = e.Version
			}
		}
		return candidate > 0 && slices.ContainsFunc(evs, func(e registry.Event) bool {
			return e.What == "rollout.stable" && e.Version == candidate
		})
	})
	stopTail()
	if err := <-prodErr; err != nil {
		t.Fatalf("produce: %v", err)
	}
	t.Logf("the tail after phase 1: %d events", tailStats.Rows.Load())
	logRolloutMeasurements(t, reg, model)
	set, err := reg.Aliases(ctx, model)
	if err != nil {
		t.Fatal(err)
	}
	if set.Versions[registry.AliasChampion] != candidate {
		t.Fatalf("champion %d, want the retrained version %d (aliases %v)", set.Versions[registry.AliasChampion], candidate, set.Versions)
	}
	v, err := reg.Version(ctx, model, candidate)
	if err != nil {
		t.Fatal(err)
	}
	if v.Lineage.Parent != 1 || v.Lineage.Source.Topic != spec.Topics.Input || v.Lineage.Source.From.IsZero() || v.Lineage.SpecHash == "" ||
		len(v.Lineage.Source.Partitions) == 0 || v.Lineage.Metrics["trainRows"] < 1 || !strings.Contains(string(v.Lineage.Profile), `"subject":"f0"`) {
		t.Errorf("candidate lineage %+v: want parent 1, source topic %s with its offset and time ranges, a spec hash, its training rows and a feature profile",
			v.Lineage, spec.Topics.Input)
	}

	// 4: served accuracy recovers within the bound.
	var acc servedOutcomes
	waitFor(t, ctx, "every phase-1 event predicted", func() bool {
		acc = servedAccuracy(t, broker, spec, phase1, govEvents)
		return !slices.Contains(acc.seen, false)
	})
	pre := acc.rate(govDriftAt-govPreWindow, govDriftAt)
	recoveredAt := -1
	for k := govDriftAt; k+govRecoveryWindow <= govEvents; k += 1000 {
		if acc.rate(k, k+govRecoveryWindow) >= pre-govRecoveryPoints {
			recoveredAt = k
			break
		}
	}
	t.Logf("served accuracy: %.4f before the drift; %.4f over the 2000 events after it; back within %.0f points %d events after the drift; last %d events %.4f",
		pre, acc.rate(govDriftAt, govDriftAt+2000), govRecoveryPoints*100, recoveredAt-govDriftAt,
		govRecoveryWindow, acc.rate(govEvents-govRecoveryWindow, govEvents))
	var buckets []string
	for k := govDriftAt - 2000; k < govDriftAt+20000; k += 1000 {
		buckets = append(buckets, fmt.Sprintf("%d:%.3f", k-govDriftAt, acc.rate(k, k+1000)))
	}
	t.Logf("served accuracy per 1000 events around the drift: %s", strings.Join(buckets, " "))
	if drop := pre - acc.rate(govDriftAt, govDriftAt+2000); drop < 0.05 {
		t.Errorf("the drift cost only %.3f accuracy: the scenario does not test recovery", drop)
	}
	if recoveredAt < 0 || recoveredAt-govDriftAt > govRecoveryBound {
		t.Errorf("accuracy did not recover to within %.0f points of %.4f within %d events of the drift (at %d)",
			govRecoveryPoints*100, pre, govRecoveryBound, recoveredAt-govDriftAt)
	}

	// 5: a deliberately bad candidate is rolled back automatically.
	bad := registerUnlearnableVersion(t, ctx, reg, spec, rdb)
	var out, errOut strings.Builder
	if code := runMain(ctx, []string{"models", "promote", "--admin-url", "http://" + admin, "--token", token, "--model", model,
		"--version", strconv.FormatInt(bad, 10), "--alias", registry.AliasShadow, "--reason", "hand-picked candidate"}, &out, &errOut); code != 0 {
		t.Fatalf("models promote --alias shadow: exit %d: %s", code, errOut.String())
	}
	phase2 := streams.Config{Concept: streams.ConceptSEA, Seed: 12, Variant: 3, Noise: govNoise,
		Start: tail.Start.Add(time.Duration(tailStats.Rows.Load()) * time.Millisecond), Step: time.Millisecond}
	go func() { prodErr <- produceGoverned(ctx, broker, spec, phase2, govPhase2Events, &feed.Stats{}) }()
	waitFor(t, ctx, "the bad candidate rolled back", func() bool {
		return slices.ContainsFunc(auditWhats(t, reg, model), func(e registry.Event) bool {
			return e.What == "rollout.rollback" && e.Version == bad
		})
	})
	if err := <-prodErr; err != nil {
		t.Fatalf("produce phase 2: %v", err)
	}
	if set, err = reg.Aliases(ctx, model); err != nil {
		t.Fatal(err)
	}
	if set.Versions[registry.AliasChampion] != candidate || set.Versions[registry.AliasShadow] != 0 || set.Versions[registry.AliasCanary] != 0 {
		t.Errorf("aliases after the rollback %v: want champion %d and no shadow or canary", set.Versions, candidate)
	}

	// 6: the audit log, in order.
	c, b := strconv.FormatInt(candidate, 10), strconv.FormatInt(bad, 10)
	want := []string{
		"register " + c + " retrain", "alias.set shadow=" + c,
		"rollout.advance " + c, "alias.set canary=" + c, "traffic.set 50",
		"rollout.promote " + c, "alias.set champion=" + c, "alias.set baking=" + c, "traffic.set 0",
		"rollout.stable " + c, "alias.delete baking=0",
		"register " + b, "alias.set shadow=" + b,
		"rollout.rollback " + b, "alias.delete shadow=0",
	}
	var got []string
	for _, e := range auditWhats(t, reg, model) {
		got = append(got, auditStep(e))
	}
	if !isSubsequence(want, got) {
		t.Errorf("audit log %q\ndoes not show, in order, %q", got, want)
	}
	alert := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "register "+c) })
	registered := auditEventAt(t, reg, model, alert)
	if !strings.HasPrefix(registered.Why, "drift: ") {
		t.Errorf("candidate registered for %q, want an error-drift alert", registered.Why)
	}
	// The audit topic carries the same events as the stream.
	stream, err := reg.ReadAudit(ctx, "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the audit topic to carry the audit stream", func() bool {
		return len(readAuditTopic(t, broker, spec)) >= len(stream)
	})
	topic := readAuditTopic(t, broker, spec)
	for i, e := range stream {
		if topic[i].ID != e.ID || topic[i].What != e.What {
			t.Fatalf("audit topic record %d is %s %s, stream has %s %s", i, topic[i].ID, topic[i].What, e.ID, e.What)
		}
	}
}

// produceGoverned writes n events of cfg with their labels 100–200 ms later,
// at govRate, without malformed rows or duplicates (so that event index i of
// the stream is event i of the predictions), counting them into stats.
func produceGoverned(ctx context.Context, broker *kafkatest.Broker, spec *pipeline.Spec, cfg streams.Config, n int64, stats *feed.Stats) error {
	cl, err := kafka.NewProducer(kafka.ProducerConfig{Client: kafka.ClientConfig{Brokers: []string{broker.Addr}}, Linger: 2 * time.Millisecond})
	if err != nil {
		return err
	}
	defer cl.Close()
	pcfg := feed.Config{Topic: spec.Topics.Input, LabelsTopic: spec.Topics.Labels, Stream: cfg, Events: n, Rate: govRate,
		LabelDelay: 100 * time.Millisecond, LabelJitter: 100 * time.Millisecond}
	if err := pcfg.Validate(); err != nil {
		return err
	}
	return feed.Produce(ctx, cl, pcfg, stats)
}

// registerUnlearnableVersion registers a version of the spec's model that
// cannot learn (a learning rate of 1e-12: it predicts 0.5, class 1, for
// every event), as an external trainer would, and returns its number.
func registerUnlearnableVersion(t *testing.T, ctx context.Context, reg *registry.Registry, spec *pipeline.Spec, rdb redis.UniversalClient) int64 {
	t.Helper()
	badSpec := *spec
	badSpec.Model.LearnRate = 1e-12
	badSpec.Model.Optimizer = "sgd"
	fz, err := stages.NewFeaturize(&badSpec, rdb)
	if err != nil {
		t.Fatal(err)
	}
	l, err := stages.NewLearner(&badSpec, fz)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Register(ctx, registry.Registration{Model: spec.Model.Name, Signature: app.LearnerSignature(fz), Snapshot: snap,
		Who: "external-trainer", Why: "a deliberately bad candidate"})
	if err != nil {
		t.Fatal(err)
	}
	return v.Number
}

// warmRetrain switches the demo spec's retrain mode from reset to warm, for
// the tests whose claim is that the governance loop completes. A reset
// candidate learns ~3,000 post-drift rows from scratch, with the spec's
// 2^16 hashed weights. Without rollout.retrain.warmup (off here, as by
// default) its entity aggregates also start empty at the replay's start
// while live ones count each user's history; in shadow one measured 0.894
// against the adapted champion's 0.935 (n 1,392 and 11,665) and the gate,
// rightly, rolled it back. With a warm-up, reset candidates here measured
// about 0.5 points below the champion (within the gate's 1 point), but a
// reset candidate is not always as good as an online learner that has
// already adapted, so the loop's completion should not hang on it. A warm candidate (the
// champion plus those rows) is at least as good, and the loop it goes
// through is the same.
func warmRetrain(t *testing.T, spec string) string {
	t.Helper()
	warm := strings.Replace(spec, "    mode: reset\n", "    mode: warm\n", 1)
	if warm == spec {
		t.Fatal("the demo spec's rollout.retrain block has no mode: reset to edit")
	}
	return warm
}

// logRolloutMeasurements logs the measurement behind each of the model's
// rollout decisions that had one.
func logRolloutMeasurements(t *testing.T, reg *registry.Registry, model string) {
	t.Helper()
	for _, e := range auditWhats(t, reg, model) {
		if strings.HasPrefix(e.What, "rollout.") && e.Details["metric"] != "" {
			t.Logf("%s %s version %d: %s candidate %s (n %s) vs champion %s (n %s), bounds [%s, %s]", model, e.What, e.Version, e.Details["metric"],
				e.Details["candidate"], e.Details["candidate_n"], e.Details["champion"], e.Details["champion_n"], e.Details["lower"], e.Details["upper"])
		}
	}
}

// auditWhats is the model's audit log but the governor's holds.
func auditWhats(t *testing.T, reg *registry.Registry, model string) []registry.Event {
	t.Helper()
	evs, err := reg.ReadAudit(context.Background(), "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []registry.Event
	for _, e := range evs {
		if e.Model == model && e.What != "rollout.hold" {
			out = append(out, e)
		}
	}
	return out
}

func auditEventAt(t *testing.T, reg *registry.Registry, model string, i int) registry.Event {
	t.Helper()
	evs := auditWhats(t, reg, model)
	if i < 0 || i >= len(evs) {
		t.Fatalf("no audit event %d", i)
	}
	return evs[i]
}

// auditStep is an audit event in a few words: what, then the alias move,
// the traffic share, or the version (and who, for registrations; why, for
// rollbacks).
func auditStep(e registry.Event) string {
	switch e.What {
	case registry.WhatAliasSet, registry.WhatAliasDelete:
		return e.What + " " + e.Details["alias"] + "=" + e.Details["to"]
	case registry.WhatTrafficSet:
		return e.What + " " + e.Details["to"]
	case registry.WhatRegister:
		return fmt.Sprintf("register %d %s", e.Version, e.Who)
	case "rollout.rollback":
		return fmt.Sprintf("%s %d (%s)", e.What, e.Version, e.Why)
	}
	return fmt.Sprintf("%s %d", e.What, e.Version)
}

// isSubsequence reports whether every want appears in got in order; a want
// matches a got that starts with it.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && strings.HasPrefix(g, want[i]) {
			i++
		}
	}
	return i == len(want)
}

// servedOutcomes are the served predictions' hits by event index.
type servedOutcomes struct{ right, seen []bool }

// rate is the served accuracy over events [lo, hi).
func (s servedOutcomes) rate(lo, hi int) float64 {
	n, r := 0, 0
	for i := max(lo, 0); i < min(hi, len(s.seen)); i++ {
		if s.seen[i] {
			n++
			if s.right[i] {
				r++
			}
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return float64(r) / float64(n)
}

// servedAccuracy reads the predictions topic back and scores each of the
// stream's first n events' served prediction against its label.
func servedAccuracy(t *testing.T, broker *kafkatest.Broker, spec *pipeline.Spec, cfg streams.Config, n int) servedOutcomes {
	t.Helper()
	labels, prefix := streamLabels(t, cfg, n)
	out := servedOutcomes{right: make([]bool, n), seen: make([]bool, n)}
	forEachRecord(t, broker, spec.Topics.Predictions, func(r *kgo.Record) {
		var p struct {
			EventID string  `json:"event_id"`
			Score   float64 `json:"score"`
		}
		if json.Unmarshal(r.Value, &p) != nil || !strings.HasPrefix(p.EventID, prefix) {
			return
		}
		i, ok := feed.EventIndex(p.EventID)
		if !ok || i >= int64(n) {
			return
		}
		out.seen[i] = true
		out.right[i] = (p.Score >= 0.5) == (labels[i] == 1)
	})
	return out
}

func readAuditTopic(t *testing.T, broker *kafkatest.Broker, spec *pipeline.Spec) []registry.Event {
	t.Helper()
	var out []registry.Event
	forEachRecord(t, broker, spec.Topics.Audit, func(r *kgo.Record) {
		var e registry.Event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Errorf("audit record %s is not an audit event: %v", r.Value, err)
		}
		out = append(out, e)
	})
	slices.SortStableFunc(out, func(a, b registry.Event) int { return compareStreamIDs(a.ID, b.ID) })
	return out
}

// compareStreamIDs orders Redis stream IDs ("ms-seq").
func compareStreamIDs(a, b string) int {
	split := func(s string) (int64, int64) {
		ms, seq, _ := strings.Cut(s, "-")
		m, _ := strconv.ParseInt(ms, 10, 64)
		q, _ := strconv.ParseInt(seq, 10, 64)
		return m, q
	}
	am, aq := split(a)
	bm, bq := split(b)
	if am != bm {
		return int(math.Copysign(1, float64(am-bm)))
	}
	if aq != bq {
		return int(math.Copysign(1, float64(aq-bq)))
	}
	return 0
}

// forEachRecord hands every record of topic, up to its end offsets now, to fn.
func forEachRecord(t *testing.T, broker *kafkatest.Broker, topic string, fn func(*kgo.Record)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := broker.Client(t)
	ends := endOffsets(t, ctx, cl, topic)
	remaining := map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			remaining[p] = end
			parts[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(parts) == 0 {
		return
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts})
	defer cl.Close()
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %v", topic, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			fn(r)
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// endOffsets is each partition's end offset of topic.
func endOffsets(t testing.TB, ctx context.Context, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Partition] = o.Offset
		}
	})
	return out
}
