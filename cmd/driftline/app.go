package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// dataPlane is one running pipeline: a Kafka client, the stages built per
// partition, the champion model and the metrics.
type dataPlane struct {
	spec     *pipeline.Spec
	rdb      redis.UniversalClient
	kc       *kafka.Client
	reg      *prometheus.Registry
	metrics  *pipeline.Metrics
	keys     stages.Keys
	champion *stages.ServedModel
	// onnx is the user's ONNX model when the spec sets model.onnx; it
	// scores, the champion's Learn is a no-op.
	onnx     *stages.ONNXModel
	log      *slog.Logger
	dlqCrypt *stages.Anonymize
	// join caches scored rows' features until their labels arrive.
	join        *stages.LabelJoin
	joinMetrics *stages.JoinMetrics
	// drift watches features, scores and errors; alerts publishes what it raises.
	drift  *stages.DriftMonitor
	alerts *alertPublisher
	// outcomeHooks see every joined label after the drift monitor.
	outcomeHooks []func(stages.Outcome)
	// arms and rollout are set when the spec has a rollout block: the
	// registry's aliases serve as arms, hot-swapped (rollout.go).
	arms     *stages.Arms
	rollout  *rolloutWatcher
	governor *governor // retrain and rollout loop (governor.go)
	// alertInbox receives the alerts topic for the governor (with a rollout
	// block and an alerts topic).
	alertInbox *alertInbox
	// audit forwards the registry's audit stream to topics.audit, when set.
	audit *auditForwarder
	// holder names this instance on the registry's leases.
	holder string
}

// newDataPlane wires the spec's data plane over a Redis client and brokers.
func newDataPlane(spec *pipeline.Spec, rdb redis.UniversalClient, log *slog.Logger) (*dataPlane, error) {
	keys, err := stages.LoadKeys(&spec.Stages.Anonymize)
	if err != nil {
		return nil, fmt.Errorf("stages.anonymize: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := pipeline.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	fz, err := stages.NewFeaturize(spec, rdb)
	if err != nil {
		return nil, err
	}
	var learner models.Learner
	var byo *stages.ONNXModel
	if spec.Model.ONNX != nil {
		if byo, err = stages.OpenONNXModel(spec); err != nil {
			return nil, err
		}
		learner = byo.Learner()
		log.Info("bring-your-own ONNX model", "path", spec.Model.ONNX.Path, "provider", spec.Model.ONNX.ExecutionProvider, "onnxruntime", byo.Library().Version)
	} else if learner, err = stages.NewLearner(spec, fz); err != nil {
		return nil, err
	}
	version := spec.Model.Version
	var modelReg *registry.Registry
	if spec.Rollout != nil {
		if modelReg, err = registry.New(rdb, registry.Config{WatchInterval: spec.Rollout.WatchInterval.D()}); err != nil {
			return nil, fmt.Errorf("rollout: %w", err)
		}
		if learner, version, err = servedChampion(modelReg, spec, learner, learnerSignature(fz), log); err != nil {
			return nil, err
		}
	}
	dp := &dataPlane{
		spec: spec, rdb: rdb, reg: reg, metrics: metrics, keys: keys, log: log, onnx: byo,
		champion: stages.NewServedModel(spec.Model.Name, version, stages.ArmChampion, learner),
		holder:   instanceName(),
	}
	if dp.joinMetrics, err = stages.NewJoinMetrics(reg); err != nil {
		return nil, err
	}
	if spec.Topics.Labels != "" {
		cache := stages.NewPredictionCache(spec, rdb, spec.Model.Version, dp.joinMetrics)
		dp.join = stages.NewLabelJoin(spec, cache, dp.champion)
	}
	if spec.Topics.Alerts != "" {
		if dp.drift, err = newDriftMonitor(spec, reg); err != nil {
			return nil, err
		}
		if dp.alerts, err = newAlertPublisher(spec, reg, log); err != nil {
			return nil, err
		}
	}
	if spec.Rollout != nil {
		dp.arms = stages.NewArms(dp.champion)
		dp.rollout = newRolloutWatcher(spec, modelReg, dp.arms, fz.NumDense(), fz.NumHashed(), log)
		if dp.drift != nil {
			dp.rollout.onChampion = func(v string) { dp.drift.SetModelVersion(spec.Model.Name + "@" + v) }
		}
		if dp.join != nil {
			dp.join.Arms = dp.arms
		}
		if spec.Topics.Alerts != "" {
			dp.alertInbox = &alertInbox{}
		}
		if dp.governor, err = newGovernor(dp, fz, dp.holder); err != nil {
			return nil, err
		}
	}
	if spec.Topics.Audit != "" {
		if modelReg == nil {
			if modelReg, err = registry.New(rdb, registry.Config{}); err != nil {
				return nil, err
			}
		}
		if dp.audit, err = newAuditForwarder(modelReg, rdb, spec.Kafka.Brokers, spec.Topics.Audit, dp.holder, log); err != nil {
			return nil, err
		}
	}
	if dp.join != nil {
		dp.join.OnOutcome = dp.onOutcome
	}
	if spec.Stages.Anonymize.DLQPayload == "encrypt" {
		if dp.dlqCrypt, err = stages.NewAnonymize(spec, keys); err != nil {
			return nil, err
		}
	}
	// kafka.exactly_once: one transaction per round covers the outputs and
	// the input offsets; the id defaults to one per host, stable across
	// restarts (pipeline.KafkaSpec.TransactionalID).
	var txnID string
	if spec.Kafka.ExactlyOnce {
		if txnID = spec.Kafka.TransactionalID; txnID == "" {
			host, err := os.Hostname()
			if err == nil && host == "" {
				err = errors.New("empty hostname")
			}
			if err != nil {
				return nil, fmt.Errorf("kafka.transactional_id is unset and its default needs the hostname: %w", err)
			}
			txnID = spec.Kafka.ClientID + "-" + spec.Kafka.Group + "-" + host
		}
	}
	kc, err := kafka.New(kafka.Config{
		Client:          kafka.ClientConfig{Brokers: spec.Kafka.Brokers, ClientID: spec.Kafka.ClientID},
		Group:           spec.Kafka.Group,
		Topics:          []string{spec.Topics.Input},
		SessionTimeout:  spec.Kafka.SessionTimeout.D(),
		BatchSize:       spec.Batch.Size,
		Linger:          spec.Batch.Linger.D(),
		MaxInFlight:     spec.Batch.MaxInFlight,
		TransactionalID: txnID,
		Registerer:      reg,
		Logger:          log,
	})
	if err != nil {
		return nil, err
	}
	if txnID != "" {
		log.Info("exactly-once data plane", "transactional_id", txnID)
	}
	dp.kc = kc
	return dp, nil
}

// openPartition builds one partition's stages and runner.
func (dp *dataPlane) openPartition(_ string, _ int32) (pipeline.PartitionHandler, error) {
	spec := dp.spec
	stageList, err := stages.PreparationChain(spec, dp.rdb, dp.keys)
	if err != nil {
		return nil, err
	}
	var score pipeline.Stage
	if dp.onnx != nil {
		bs, err := stages.NewONNXScore(spec, dp.onnx, dp.champion, dp.keys.AESKeyID)
		if err != nil {
			return nil, err
		}
		bs.Observe = dp.observeScored
		score = bs
	} else if dp.arms != nil {
		score = dp.armsScore()
	} else {
		s := stages.NewScore(spec, dp.champion, dp.keys.AESKeyID)
		s.Observe = dp.observeScored
		score = s
	}
	stageList = append(stageList, score)
	cfg := pipeline.RunnerConfig{Stages: stageList, Sink: dp.kc, DLQTopic: spec.Topics.DLQ, Metrics: dp.metrics}
	if spec.Rollout != nil {
		cfg.ShadowTopic = spec.Rollout.ShadowTopic
	}
	if dp.dlqCrypt != nil {
		crypt := dp.dlqCrypt.Clone()
		cfg.DLQPayload = crypt.EncryptDLQ
	}
	return pipeline.NewRunner(cfg)
}


// observeScored sees every scored batch: it caches the predictions for the
// label join and feeds the drift monitor.
func (dp *dataPlane) observeScored(ctx context.Context, b *pipeline.Batch) error {
	return dp.observeServed(ctx, b, nil)
}

// observeServed is observeScored with the version that served each row
// (nil: the champion's).
func (dp *dataPlane) observeServed(ctx context.Context, b *pipeline.Batch, versions []string) error {
	if dp.join != nil {
		if err := dp.join.ObserveVersions(ctx, b, versions); err != nil {
			return err
		}
	}
	if dp.drift != nil && b.Features.Len() > 0 {
		dp.alerts.Raise(dp.drift.ObserveBatch(&b.Features, b.Scores, time.Now()))
	}
	return nil
}

// onOutcome sees every joined label.
func (dp *dataPlane) onOutcome(o stages.Outcome) {
	if dp.drift != nil && o.Version == dp.championVersion() {
		dp.alerts.Raise(dp.drift.ObserveOutcome(float64(o.Score), float64(o.Label), o.At))
	}
	for _, h := range dp.outcomeHooks {
		h(o)
	}
}

// run consumes until ctx ends, then drains, commits and closes; the alert
// publisher flushes after the data plane stops.
func (dp *dataPlane) run(ctx context.Context) error {
	if dp.onnx != nil {
		defer dp.onnx.Close()
	}
	if dp.rollout != nil || dp.audit != nil {
		watchCtx, stopWatch := context.WithCancel(ctx)
		var loops sync.WaitGroup
		defer func() { stopWatch(); loops.Wait() }()
		if dp.alertInbox != nil {
			if err := startAlertRouter(watchCtx, dp.spec, "", dp.alertInbox.receive, dp.log); err != nil {
				return fmt.Errorf("governor alerts: %w", err)
			}
		}
		if dp.rollout != nil {
			loops.Go(func() { dp.rollout.Run(watchCtx) })
			loops.Go(func() { dp.governor.Run(watchCtx) })
		}
		if dp.audit != nil {
			loops.Go(func() { dp.audit.Run(watchCtx) })
		}
	}
	if dp.alerts == nil {
		return dp.kc.Run(ctx, dp.openPartition)
	}
	alertCtx, stopAlerts := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { dp.alerts.Run(alertCtx); close(done) }()
	err := dp.kc.Run(ctx, dp.openPartition)
	stopAlerts()
	<-done
	return err
}

// serveAdmin serves /metrics, /healthz and /readyz on addr until ctx ends, plus
// what each of mounts registers (mountAdminAPI adds /api/v1/).
// It returns the address it listens on.
func serveAdmin(ctx context.Context, addr string, reg *prometheus.Registry, ready func() bool, log *slog.Logger, mounts ...func(*http.ServeMux)) (string, error) {
	mux := http.NewServeMux()
	for _, m := range mounts { // e.g. mountAdminAPI
		m(mux)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: no partition assignment yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("admin.addr: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	return ln.Addr().String(), nil
}
