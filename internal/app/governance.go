package app

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v4"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/connectors/watermillkafka"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// newGovernor builds the App's governor (a spec with a rollout block): the
// spec's gate (an admin's policy overrides it) and the operator's pause
// flag, retraining on rollout.retrain.source — the window the label join
// fills, or a replay of the input and labels topics (KafkaRetrainRows) —
// triggered by alerts received from the alerts topic, the schedule and the
// admin API's retrain requests. It adds its outcome hook to a.
func (a *App) newGovernor(fz *stages.Featurize) (*governance.Governor, error) {
	spec := a.spec
	rt := spec.Rollout.RetrainOrDefault()
	gate, interval, err := RolloutGate(spec)
	if err != nil {
		return nil, err
	}
	api, err := adminapi.New(adminapi.Config{Registry: a.models, Redis: a.rdb})
	if err != nil {
		return nil, err
	}
	job, err := a.newRetrainJob(fz)
	if err != nil {
		return nil, err
	}
	cfg := governance.Config{Registry: a.models, Model: spec.Model.Name, Holder: a.holder, Gate: gate, Interval: interval,
		ChampionVersion: func() string { return a.arms.Champion().Version }, Admin: api, Retrain: job,
		RetrainOnDrift: *rt.OnDrift, RetrainEvery: rt.Every.D(), SinceDrift: *rt.SinceDrift, Log: a.log,
		Decision: stages.DecisionOf(spec)}
	if a.alertInbox != nil {
		cfg.Alerts = a.alertInbox.Drain
	}
	g, err := governance.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := a.reg.Register(g.Collector()); err != nil {
		return nil, fmt.Errorf("rollout metrics: %w", err)
	}
	// Each outcome counts for the rollout step that served its prediction
	// (stages.Outcome.ServedArm: the arms are named as the registry's
	// aliases are).
	a.outcomeHooks = append(a.outcomeHooks, func(o stages.Outcome) {
		series := governance.OutcomeSeries(o.Version, o.ServedArm, o.CanaryPercent)
		if o.Paired {
			g.ObservePairedOutcome(series, float64(o.Score), float64(o.PairedScore), float64(o.Label))
		} else {
			g.ObserveOutcome(series, float64(o.Score), float64(o.Label))
		}
	})
	return g, nil
}

// retrainRows is the retrain jobs' row source of rollout.retrain.source:
// a replay of the input and labels topics (kafka) or of the live lake
// (lake), or the window that the
// label join fills (the default), which it hooks to the join.
func (a *App) retrainRows(fz *stages.Featurize) (governance.RowSource, error) {
	spec := a.spec
	rt := spec.Rollout.RetrainOrDefault()
	switch rt.Source {
	case pipeline.RetrainSourceKafka:
		return NewKafkaRetrainRows(spec, a.kcc, a.rdb, fz.NumDense(), fz.NumHashed(), a.log)
	case pipeline.RetrainSourceLake:
		return NewLakeRetrainRows(spec, a.rdb, fz.NumDense(), fz.NumHashed(), a.log)
	}
	window := governance.NewWindow(spec.Topics.Input, rt.Window, fz.NumDense(), fz.NumHashed())
	if a.join != nil {
		a.join.OnLearned = window.Add
	}
	return window, nil
}

// newRetrainJob builds the governor's retrain job: a learner of the spec's
// family (reset mode) or a copy of the serving champion (warm mode), on the
// rows of rollout.retrain.source.
func (a *App) newRetrainJob(fz *stages.Featurize) (*governance.RetrainJob, error) {
	spec := a.spec
	rt := spec.Rollout.RetrainOrDefault()
	newLearner := func() (models.Learner, error) { return stages.NewLearner(spec, fz) }
	if rt.Mode == pipeline.RetrainModeWarm {
		newLearner = func() (models.Learner, error) { return a.arms.Champion().Snapshot(), nil }
	}
	rows, err := a.retrainRows(fz)
	if err != nil {
		return nil, err
	}
	return governance.NewRetrainJob(governance.RetrainConfig{Registry: a.models, Model: spec.Model.Name,
		NewLearner: newLearner, Mode: rt.Mode, Rows: rows, Signature: LearnerSignature(fz), SpecHash: specHash(spec),
		MinRows: rt.MinRows, Holdout: rt.Holdout, Profile: a.driftProfile})
}

// driftProfile is the drift monitor's reference feature profile as JSON,
// for a candidate's lineage (nil without a drift monitor or a profile).
func (a *App) driftProfile() json.RawMessage {
	if a.drift == nil {
		return nil
	}
	b, err := json.Marshal(a.drift.Profiles())
	if err != nil || string(b) == "null" {
		return nil
	}
	return b
}

// auditCursorKey names the audit forwarder's cursor of model's events to
// topic in Redis; legacyAuditCursorKey the one cursor per topic that
// versions before per-model forwarding kept.
func auditCursorKey(topic, model string) string {
	return adminapi.DefaultKeyPrefix + ":audit-forwarder:" + topic + ":" + model
}

func legacyAuditCursorKey(topic string) string {
	return adminapi.DefaultKeyPrefix + ":audit-forwarder:" + topic
}

// newAuditForwarder builds the forwarder of the registry's audit stream to
// topics.audit, through watermill over franz-go: the events of the spec's
// model (and of no model), so that pipelines sharing a Redis do not post
// each other's events.
func (a *App) newAuditForwarder() (*governance.AuditForwarder, error) {
	topic := a.spec.Topics.Audit
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Client: a.kcc})
	if err != nil {
		return nil, fmt.Errorf("audit topic %s: %w", topic, err)
	}
	a.closers = append(a.closers, pub.Close)
	model := a.spec.Model.Name
	return governance.NewAuditForwarder(governance.AuditForwarderConfig{Registry: a.models, Publisher: pub,
		Cursors: redis.Cursors{Client: a.rdb}, CursorKey: auditCursorKey(topic, model), LegacyCursorKey: legacyAuditCursorKey(topic),
		Topic: topic, Model: model, Holder: a.holder, Unpublishable: kafka.RecordTooLarge, Registerer: a.reg, Log: a.log})
}

// LearnerSignature is the registry signature of the spec's online learner:
// its dense and hashed feature inputs and its score.
func LearnerSignature(fz *stages.Featurize) registry.Signature {
	return registry.Signature{
		Inputs: []registry.Tensor{{Name: "dense", DType: "float32", Shape: []int64{-1, int64(fz.NumDense())}},
			{Name: "hashed", DType: "int32", Shape: []int64{-1, int64(fz.NumHashed())}}},
		Outputs: []registry.Tensor{{Name: "score", DType: "float32", Shape: []int64{-1, 1}}}}
}

// specHash is the sha256 (hex) of the spec's canonical YAML, without its
// Kafka, Redis and admin addresses (which differ between environments), for
// a version's lineage.
func specHash(spec *pipeline.Spec) string {
	c := *spec
	c.Kafka.Brokers, c.Redis, c.Admin = nil, pipeline.RedisSpec{}, pipeline.AdminSpec{}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return ""
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
