package app

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/lake"
	"github.com/driftline/driftline/connectors/redis"
	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// DemoSpec is the pipeline spec `driftline demo` runs (demo.yaml): the
// SEA stream's schema, every stage, a logistic model, labels, drift
// detection and the governance loop.
//
//go:embed demo.yaml
var DemoSpec []byte

// Options are what a caller adds to a spec when it opens an App. Every
// field is optional.
type Options struct {
	// Log defaults to slog.Default().
	Log *slog.Logger
	// Redis, when set, is used instead of a client built from the spec's
	// redis block (tests); the App does not close it, and adds a hook that
	// marks its errors (connectors/redis.MarkErrors).
	Redis goredis.UniversalClient
	// OnAlert sees every alert the drift monitor raises, before it is
	// published (the demo prints them). It must not block.
	OnAlert func(alert.Alert)
	// AdminToken is the admin API's bootstrap admin token (from
	// $DRIFTLINE_ADMIN_TOKEN); empty: none.
	AdminToken string
	// Holder names this instance on the registry's leases (default
	// host:pid:random).
	Holder string
}

// App is one running pipeline: the data plane (input topic → predictions
// and DLQ), the label plane (labels topic → label join → learning), the
// control plane (drift alerts, the governance loop, the audit forwarder)
// and the admin server's handlers. Open builds it; Run runs it until its
// context ends; Close releases what Open opened.
type App struct {
	spec     *pipeline.Spec
	rdb      goredis.UniversalClient
	ownRedis bool
	kcc      kafka.ClientConfig
	kc       *kafka.Client
	reg      *prometheus.Registry
	metrics  *pipeline.Metrics
	status   statusTracker // the status page's samples (status.go)
	keys     stages.Keys
	champion *stages.ServedModel
	// signature is the spec learner's registry signature.
	signature registry.Signature
	// onnx is the user's ONNX model when the spec sets model.onnx; it
	// scores, the champion's Learn is a no-op.
	onnx *stages.ONNXModel
	// chain holds what every partition's preparation chain shares: the
	// text PII metrics and stages.text.model's sessions.
	chain    stages.ChainOptions
	log      *slog.Logger
	dlqCrypt *stages.Anonymize
	// join caches scored rows' features until their labels arrive; labels
	// consumes the labels topic into it.
	join *stages.LabelJoin
	// inputCommitted is the data plane's committed offsets (inputCommits).
	inputCommitted *stages.CommittedOffsets
	joinMetrics    *stages.JoinMetrics
	labels         *labelPlane
	// drift watches features, scores and errors; alerts publishes what it raises.
	drift  *stages.DriftMonitor
	alerts *alertPublisher
	// outcomeHooks see every joined label after the drift monitor.
	outcomeHooks []func(stages.Outcome)
	// models is the model registry (with a rollout block or an admin address).
	models *registry.Registry
	// arms and rollout are set when the spec has a rollout block: the
	// registry's aliases serve as arms, hot-swapped (rollout.go).
	arms     *stages.Arms
	rollout  *rolloutWatcher
	governor *governance.Governor
	// alertInbox receives the alerts topic for the governor (with a rollout
	// block and an alerts topic).
	alertInbox *governance.AlertInbox
	// audit forwards the registry's audit stream to topics.audit, when set.
	audit *governance.AuditForwarder
	// state is the learner-state log, with topics.model_state
	// (learnerstate.go).
	state *learnerState
	// holder names this instance on the registry's leases.
	holder     string
	adminToken string
	// health tracks Redis (the prober and every loop report to it); retry
	// is the partition loops' policy on a Redis failure (health.go).
	health *pipeline.Health
	retry  *pipeline.RetryPolicy
	// started is set once Run has reached Redis and, with a rollout block,
	// served the registry's champion (start).
	started atomic.Bool
	// lake is the live lake, with a lake block (lake.go).
	lake *lake.Live
	// closers run at Close, after the Kafka clients (control-plane
	// publishers).
	closers []func() error

	closeOnce sync.Once
	// limitsOnce learns the output topics' record limits (limits.go).
	limitsOnce sync.Once
}

// Open wires spec's pipeline: it builds the Redis client (unless
// opts.Redis is set), the Kafka clients through the connectors, the
// stages, the model and the control loops. It does no consuming. Wrong
// Redis or Kafka credentials or TLS settings fail here, with a clear
// error; a Redis or a cluster that cannot be reached yet (down, loading its
// dataset) is waited for by Run, not ready meanwhile.
func Open(ctx context.Context, spec *pipeline.Spec, opts Options) (*App, error) {
	a := &App{spec: spec, log: opts.Log, rdb: opts.Redis, holder: opts.Holder, adminToken: opts.AdminToken}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.holder == "" {
		a.holder = instanceName()
	}
	if err := a.open(ctx, opts); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) open(ctx context.Context, opts Options) error {
	spec := a.spec
	var err error
	if a.kcc, err = KafkaClient(spec, ""); err != nil {
		return err
	}
	// Wrong credentials or TLS settings fail now, with a clear error; a
	// cluster that cannot be reached yet is waited for (not ready).
	reachable := true
	if err := kafka.Check(ctx, a.kcc); kafka.Unreachable(err) {
		a.log.Warn("kafka: no broker reachable yet; the pipeline waits for the cluster (not ready)", "err", err)
		reachable = false
	} else if err != nil {
		return err
	}
	if a.rdb != nil {
		redis.MarkErrors(a.rdb) // the retry classifier tells its failures from the brokers'
	} else {
		rc, err := RedisClient(spec)
		if err != nil {
			return err
		}
		if a.rdb, err = redis.New(rc); err != nil {
			return err
		}
		a.ownRedis = true
		if err := redis.Ping(ctx, rc, a.rdb); err != nil {
			if _, ok := redis.Unavailable(err); !ok {
				return err
			}
			a.log.Warn("redis: not reachable yet; the pipeline waits for it (not ready)", "err", err)
		}
	}
	if a.keys, err = stages.LoadKeys(&spec.Stages.Anonymize); err != nil {
		return fmt.Errorf("stages.anonymize: %w", err)
	}
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.metrics, err = pipeline.NewMetrics(a.reg); err != nil {
		return err
	}
	if a.health, err = pipeline.NewHealth(a.reg, a.log, dependencyRedis); err != nil {
		return err
	}
	a.retry = &pipeline.RetryPolicy{Classify: classifyFailure, Health: a.health}
	fz, err := stages.NewFeaturize(spec, a.rdb)
	if err != nil {
		return err
	}
	if err := a.openText(); err != nil {
		return err
	}
	var learner models.Learner
	if spec.Model.ONNX != nil {
		if a.onnx, err = stages.OpenONNXModel(spec); err != nil {
			return err
		}
		learner = a.onnx.Learner()
		a.log.Info("bring-your-own ONNX model", "path", spec.Model.ONNX.Path, "provider", spec.Model.ONNX.ExecutionProvider, "onnxruntime", a.onnx.Library().Version)
	} else if learner, err = stages.NewLearner(spec, fz); err != nil {
		return err
	}
	version := spec.Model.Version
	if spec.Rollout != nil || spec.Topics.Audit != "" || spec.Admin.Addr != "" {
		var watch time.Duration
		if spec.Rollout != nil {
			watch = spec.Rollout.WatchInterval.D()
		}
		if a.models, err = registry.New(a.rdb, registry.Config{WatchInterval: watch}); err != nil {
			return fmt.Errorf("model registry: %w", err)
		}
	}
	// Under a rollout block, Run swaps in the registry's champion before it
	// serves (start).
	a.champion = stages.NewServedModel(spec.Model.Name, version, stages.ArmChampion, learner)
	a.signature = LearnerSignature(fz)
	if a.joinMetrics, err = stages.NewJoinMetrics(a.reg); err != nil {
		return err
	}
	if spec.Topics.Labels != "" {
		a.join = stages.NewLabelJoin(spec, a.newPredictionCache(), a.champion)
	}
	if spec.Topics.Alerts != "" {
		if a.drift, err = newDriftMonitor(spec, a.reg); err != nil {
			return err
		}
		if a.alerts, err = newAlertPublisher(spec, a.kcc, a.reg, opts.OnAlert, a.log); err != nil {
			return err
		}
	}
	if spec.Rollout != nil {
		a.arms = stages.NewArms(a.champion)
		a.rollout = newRolloutWatcher(spec, a.models, a.arms, fz.NumDense(), fz.NumHashed(), a.log, a.onArms, a.loggedState)
		if a.join != nil {
			a.join.Arms = a.arms
		}
		if spec.Topics.Alerts != "" {
			a.alertInbox = &governance.AlertInbox{}
		}
		if a.governor, err = a.newGovernor(fz); err != nil {
			return err
		}
	}
	if spec.Topics.Audit != "" {
		if a.audit, err = a.newAuditForwarder(); err != nil {
			return err
		}
	}
	if a.join != nil {
		a.join.OnOutcome = a.onOutcome
	}
	if spec.Topics.ModelState != "" {
		if a.state, err = a.newLearnerState(func() (models.Learner, error) { return stages.NewLearner(spec, fz) }); err != nil {
			return err
		}
	}
	if spec.Stages.Anonymize.DLQPayload == "encrypt" {
		if a.dlqCrypt, err = stages.NewAnonymize(spec, a.keys); err != nil {
			return err
		}
	}
	txnID, err := transactionalID(spec)
	if err != nil {
		return err
	}
	if err := a.openLake(); err != nil {
		return err
	}
	kcc := a.kcc
	a.kc, err = kafka.New(kafka.Config{
		Client:          kcc,
		Group:           spec.Kafka.Group,
		Topics:          []string{spec.Topics.Input},
		SessionTimeout:  spec.Kafka.SessionTimeout.D(),
		BatchSize:       spec.Batch.Size,
		Linger:          spec.Batch.Linger.D(),
		MaxInFlight:     spec.Batch.MaxInFlight,
		TransactionalID: txnID,
		CommitGate:      a.commitGate(),
		OnCommitted:     a.inputCommits(txnID),
		Retry:           a.retry,
		Registerer:      a.reg,
		Logger:          a.log,
	})
	if err != nil {
		return err
	}
	if txnID != "" {
		a.log.Info("exactly-once data plane", "transactional_id", txnID)
		warnShortDedupeWindow(a.log, spec)
	}
	if a.join != nil {
		if a.labels, err = newLabelPlane(a); err != nil {
			return err
		}
	}
	if reachable {
		a.learnRecordLimits(ctx)
	}
	return nil
}

// transactionalID is the data plane's transactional id under
// kafka.exactly_once ("" otherwise): the spec's, or one per host, stable
// across restarts (pipeline.KafkaSpec.TransactionalID).
func transactionalID(spec *pipeline.Spec) (string, error) {
	if !spec.Kafka.ExactlyOnce {
		return "", nil
	}
	if id := spec.Kafka.TransactionalID; id != "" {
		return id, nil
	}
	host, err := os.Hostname()
	if err == nil && host == "" {
		err = errors.New("empty hostname")
	}
	if err != nil {
		return "", fmt.Errorf("kafka.transactional_id is unset and its default needs the hostname: %w", err)
	}
	return spec.Kafka.ClientID + "-" + spec.Kafka.Group + "-" + host, nil
}

// openPartition builds one partition's stages and runner.
func (a *App) openPartition(topic string, partition int32) (pipeline.PartitionHandler, error) {
	spec := a.spec
	stageList, err := stages.PreparationChainWith(spec, a.rdb, a.keys, a.chain)
	if err != nil {
		return nil, err
	}
	var score pipeline.Stage
	if a.onnx != nil {
		bs, err := stages.NewONNXScore(spec, a.onnx, a.champion, a.keys.AESKeyID)
		if err != nil {
			return nil, err
		}
		bs.Observe = a.observeScored
		score = bs
	} else if a.arms != nil {
		score = a.armsScore()
	} else {
		s := stages.NewScore(spec, a.champion, a.keys.AESKeyID)
		s.Observe = a.observeScored
		score = s
	}
	stageList = append(stageList, score)
	cfg := pipeline.RunnerConfig{Stages: stageList, Sink: a.kc, DLQTopic: spec.Topics.DLQ, Metrics: a.metrics,
		RecordLimit: a.kc.MaxRecordBytes, PropagateHeaders: spec.Output.PropagateHeaders, Retry: a.retry}
	if spec.Rollout != nil {
		cfg.ShadowTopic = spec.Rollout.ShadowTopic
	}
	if a.dlqCrypt != nil {
		crypt := a.dlqCrypt.Clone()
		cfg.DLQPayload = crypt.EncryptDLQ
	}
	r, err := pipeline.NewRunner(cfg)
	if err != nil {
		return nil, err
	}
	return a.status.countIn(topic, partition, r), nil
}

// armsScore builds a partition's score stage over the arms.
func (a *App) armsScore() *stages.Score {
	s := stages.NewScoreWithArms(a.spec, a.arms, a.spec.Rollout.ShadowTopic, a.keys.AESKeyID)
	s.Observe = func(ctx context.Context, b *pipeline.Batch) error {
		return a.observeServed(ctx, b, s.Served())
	}
	return s
}

// observeScored sees every scored batch: it caches the predictions for the
// label join and feeds the drift monitor.
func (a *App) observeScored(ctx context.Context, b *pipeline.Batch) error {
	return a.observeServed(ctx, b, stages.Served{})
}

// observeServed is observeScored with which model served each row (the
// zero Served: the champion).
func (a *App) observeServed(ctx context.Context, b *pipeline.Batch, served stages.Served) error {
	if a.join != nil {
		if err := a.join.ObserveServed(ctx, b, served); err != nil {
			return err
		}
	}
	if a.drift != nil && b.Features.Len() > 0 {
		a.alerts.Raise(a.drift.ObserveBatch(&b.Features, b.Scores, time.Now()))
	}
	return a.lakeBatch(ctx, b, served)
}

// onOutcome sees every joined label.
func (a *App) onOutcome(o stages.Outcome) {
	if a.drift != nil && o.Version == a.championVersion() {
		a.alerts.Raise(a.drift.ObserveOutcome(float64(o.Score), float64(o.Label), o.At))
	}
	for _, h := range a.outcomeHooks {
		h(o)
	}
	a.lakeOutcome(o)
}

// onArms sees the arms after every alias change the rollout watcher
// applied: alerts name the champion's version, and the per-version
// prequential metrics keep only the versions that serve.
func (a *App) onArms(view stages.ArmsView) {
	if a.drift != nil {
		a.drift.SetModelVersion(a.spec.Model.Name + "@" + view.Champion.Version)
	}
	var serving []string
	for _, m := range []*stages.ServedModel{view.Champion, view.Canary, view.Shadow} {
		if m != nil {
			serving = append(serving, m.Version)
		}
	}
	a.joinMetrics.SetServing(serving...)
}

// championVersion is the version serving the predictions topic now.
func (a *App) championVersion() string {
	if a.arms != nil {
		return a.arms.Champion().Version
	}
	return a.champion.Version
}

// Run waits for Redis (and, under a rollout block, serves the registry's
// champion), then consumes until ctx ends or a plane fails, then drains
// and commits. Redis going away does not stop it: the loops pause and
// retry (not ready meanwhile) and go on when it is back. The alert
// publisher flushes after the data plane stops. Call Close after Run
// returns; the registry stays readable until then.
func (a *App) Run(ctx context.Context) error {
	a.learnRecordLimits(ctx)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var loops sync.WaitGroup
	defer func() { stopWatch(); loops.Wait() }()
	loops.Go(func() { a.watchRedis(watchCtx) })
	if err := a.start(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if a.state != nil {
		// Every served version serves its newest logged state before the
		// rollout watcher, the governor and the data plane start, and so
		// before the App is ready.
		followed, err := a.state.restore(watchCtx)
		if err != nil {
			return nil // ctx ended
		}
		loops.Go(func() { <-followed })
	}
	if a.alertInbox != nil {
		if err := StartAlertRouter(watchCtx, a.spec, a.kcc, "", a.alertInbox.Receive, a.log); err != nil {
			return fmt.Errorf("governor alerts: %w", err)
		}
	}
	if a.rollout != nil {
		loops.Go(func() { a.rollout.Run(watchCtx) })
		loops.Go(func() { _ = a.governor.Run(watchCtx) })
	}
	if a.audit != nil {
		loops.Go(func() { _ = a.audit.Run(watchCtx) })
	}
	if a.alerts != nil {
		alertCtx, stopAlerts := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { a.alerts.Run(alertCtx); close(done) }()
		defer func() { stopAlerts(); <-done }()
	}
	return a.runLake(ctx, a.runPlanes)
}

// runPlanes runs the data plane and, when there is one, the label plane
// until ctx ends or either fails; a failure stops the other. It returns the
// first error, after both have drained and committed.
func (a *App) runPlanes(ctx context.Context) error {
	if a.labels == nil {
		return a.kc.Run(ctx, a.openPartition)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- a.kc.Run(ctx, a.openPartition) }()
	go func() { errs <- a.labels.run(ctx) }()
	first := <-errs
	cancel()
	if second := <-errs; first == nil {
		first = second
	}
	return first
}

// Close releases what Open opened: the Kafka clients, the ONNX model, the
// control plane's publishers and the Redis client it built. It is
// idempotent; call it once Run has returned (or instead of Run).
func (a *App) Close() {
	a.closeOnce.Do(func() {
		if a.kc != nil {
			a.kc.Close()
		}
		if a.labels != nil {
			a.labels.close()
		}
		if a.onnx != nil {
			a.onnx.Close()
		}
		if a.lake != nil {
			if err := a.lake.Close(); err != nil {
				a.log.Warn("lake: close", "err", err)
			}
		}
		for _, c := range a.closers {
			_ = c()
		}
		if a.ownRedis && a.rdb != nil {
			_ = a.rdb.Close()
		}
	})
}

// Totals are the data plane's event counts so far.
func (a *App) Totals() pipeline.Totals { return a.metrics.Totals() }

// Ready reports whether the App serves: Run has started, the data plane
// has a partition assignment, Redis answers and, with topics.model_state,
// every served version was restored from the log.
func (a *App) Ready() bool { return len(a.NotReady()) == 0 }

// Registry is the model registry (nil without a rollout block, an audit
// topic or an admin address).
func (a *App) Registry() *registry.Registry { return a.models }

// RaisedAlerts returns every alert raised so far (none without an alerts
// topic).
func (a *App) RaisedAlerts() []alert.Alert {
	if a.alerts == nil {
		return nil
	}
	return a.alerts.Raised()
}

// RaisedAlertsAt returns RaisedAlerts, each with the rows the drift
// monitor had observed when it raised it (Rows 0 for one the monitor no
// longer keeps: it keeps the newest 256).
func (a *App) RaisedAlertsAt() []distribution.RaisedAlert {
	raised := a.RaisedAlerts()
	out := make([]distribution.RaisedAlert, len(raised))
	var kept []distribution.RaisedAlert
	if a.drift != nil {
		kept = a.drift.Snapshot().Raised
	}
	for i, al := range raised {
		out[i].Alert = al
		if j := slices.IndexFunc(kept, func(r distribution.RaisedAlert) bool { return r.Alert == al }); j >= 0 {
			out[i].Rows = kept[j].Rows
		}
	}
	return out
}

// Labels reports the label plane's counts; ok is false without a labels
// topic.
func (a *App) Labels() (s LabelStats, ok bool) {
	if a.labels == nil {
		return LabelStats{}, false
	}
	return a.labels.stats(), true
}

// warnShortDedupeWindow warns when an exactly-once pipeline's dedupe window
// may be shorter than a restart: a duplicate whose first copy was committed
// just before a crash, and which is read again after the restart (its
// transaction aborted), is caught only while the first copy's id is
// remembered. A restart takes a group rebalance (up to the session
// timeout) and the abort of the open transaction; the advice is twice
// their sum, and at least a minute.
func warnShortDedupeWindow(log *slog.Logger, spec *pipeline.Spec) {
	d := spec.Stages.Dedupe
	advised := max(time.Minute, 2*(spec.Kafka.SessionTimeout.D()+kafka.DefaultTransactionTimeout))
	if !d.On() || d.TTL.D() >= advised {
		return
	}
	log.Warn("stages.dedupe.ttl may be shorter than a restart: a duplicate whose first copy was committed just before a crash gets a second prediction when it is read again after its id expired",
		"ttl", d.TTL.D(), "advised_at_least", advised)
}
