package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/connectors/watermillkafka"
	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// alertQueueSize bounds the alerts waiting to be published. Alerts are rate
// limited by the gate, so a full queue means the alerts topic is down.
const alertQueueSize = 1024

// alertPublisher publishes drift alerts to the alerts topic through
// watermill, off the hot path: Raise enqueues without blocking, and Run
// publishes until ctx ends, then flushes what is queued.
type alertPublisher struct {
	pub     *watermillkafka.Publisher
	topic   string
	queue   chan alert.Alert
	dropped prometheus.Counter
	log     *slog.Logger
	// onRaise, when set, sees every alert raised (Options.OnAlert).
	onRaise func(alert.Alert)

	mu     sync.Mutex
	raised []alert.Alert
}

func newAlertPublisher(spec *pipeline.Spec, cc kafka.ClientConfig, reg prometheus.Registerer, onRaise func(alert.Alert), log *slog.Logger) (*alertPublisher, error) {
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Client: cc})
	if err != nil {
		return nil, fmt.Errorf("alerts publisher: %w", err)
	}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_alerts_dropped_total", Help: "Alerts dropped because the publish queue was full.",
	})
	if err := reg.Register(dropped); err != nil {
		return nil, err
	}
	return &alertPublisher{pub: pub, topic: spec.Topics.Alerts, queue: make(chan alert.Alert, alertQueueSize), dropped: dropped, log: log, onRaise: onRaise}, nil
}

// Raise queues alerts for publishing; it never blocks.
func (p *alertPublisher) Raise(alerts []alert.Alert) {
	for _, a := range alerts {
		p.mu.Lock()
		p.raised = append(p.raised, a)
		p.mu.Unlock()
		if p.onRaise != nil {
			p.onRaise(a)
		}
		select {
		case p.queue <- a:
		default:
			p.dropped.Inc()
			p.log.Error("alert queue full; alert dropped", "detector", a.Detector, "subject", a.Subject)
		}
	}
}

// Raised returns every alert raised so far.
func (p *alertPublisher) Raised() []alert.Alert {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]alert.Alert(nil), p.raised...)
}

// Run publishes queued alerts until ctx ends, then flushes the queue and
// closes the publisher.
func (p *alertPublisher) Run(ctx context.Context) {
	defer p.pub.Close()
	publish := func(ctx context.Context, a alert.Alert) {
		if err := watermillkafka.PublishJSON(ctx, p.pub, p.topic, a.DedupeKey, a); err != nil {
			p.log.Error("publish alert", "err", err, "detector", a.Detector, "subject", a.Subject)
		}
	}
	for {
		select {
		case a := <-p.queue:
			publish(ctx, a)
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for {
				select {
				case a := <-p.queue:
					publish(flushCtx, a)
				default:
					return
				}
			}
		}
	}
}

// newDriftMonitor builds the champion's drift monitor from the spec.
func newDriftMonitor(spec *pipeline.Spec, reg prometheus.Registerer) (*stages.DriftMonitor, error) {
	cfg := stages.DefaultDriftConfig()
	cfg.ModelVersion = spec.Model.Name + "@" + spec.Model.Version
	cfg.Features = spec.Stages.Featurize.Numeric
	d := spec.Drift
	cfg.Watch = driftSubjects(spec, stages.CategorySubjects(spec))
	for _, c := range stages.CategorySubjects(spec) {
		if slices.Contains(cfg.Watch, c.Name) {
			cfg.Categories = append(cfg.Categories, c)
		}
	}
	if d.CategoryBins > 0 {
		cfg.CategoryBins = d.CategoryBins
	}
	if d.MinPSI > 0 {
		cfg.MinPSI = d.MinPSI
	}
	if d.ErrorDetector != "" {
		cfg.ErrorDetector = d.ErrorDetector
	}
	if d.Window > 0 {
		cfg.WindowSize, cfg.ReferenceSize = d.Window, d.Window
	}
	if d.Alpha > 0 {
		cfg.Alpha = d.Alpha
	}
	if d.MinSamples > 0 {
		cfg.Gate.MinSamples = uint64(d.MinSamples)
	}
	cfg.WarmUpRows = d.WarmUp
	decision := stages.DecisionOf(spec)
	cfg.Threshold, cfg.Classes = decision.Threshold, decision.Classes
	if d.CoolDown > 0 {
		cfg.Gate.CoolDown = d.CoolDown.D()
	}
	m, err := stages.NewDriftMetrics(reg)
	if err != nil {
		return nil, err
	}
	cfg.Metrics = m
	mon, err := stages.NewDriftMonitor(cfg)
	if err != nil {
		return nil, fmt.Errorf("drift: %w", err)
	}
	return mon, nil
}

// driftSubjects expands drift.watch (kinds and fields; absent: the
// default kinds) into the monitor's subject names.
func driftSubjects(spec *pipeline.Spec, categories []stages.CategorySubject) []string {
	watch := spec.Drift.Watch
	if watch == nil {
		watch = pipeline.DriftWatchDefault
	}
	var out []string
	for _, w := range watch {
		switch w {
		case pipeline.DriftWatchPrediction, pipeline.DriftWatchError:
			out = append(out, w)
			continue
		}
		numeric := w == pipeline.DriftWatchFeatures || spec.DriftWatchKindOf(w) == pipeline.DriftWatchFeatures
		for _, f := range spec.Stages.Featurize.Numeric {
			if numeric && (w == f || w == pipeline.DriftWatchFeatures) {
				out = append(out, f)
			}
		}
		for _, c := range categories {
			if w == c.Field || w == pipeline.DriftWatchCategories {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// StartAlertRouter consumes the spec's alerts topic through a watermill
// router (retry, poison queue alerts.poison, recoverer) over franz-go,
// handing each alert to handle, until ctx ends. group is the consumer group
// ("" for none: every partition is read, from the end, and nothing
// committed).
func StartAlertRouter(ctx context.Context, spec *pipeline.Spec, cc kafka.ClientConfig, group string, handle func(context.Context, alert.Alert) error, log *slog.Logger) error {
	cfg := watermillkafka.SubscriberConfig{Client: cc, ConsumerGroup: group}
	if group == "" {
		cfg.InitialOffset = watermillkafka.FromEnd
	}
	sub, err := watermillkafka.NewSubscriber(cfg)
	if err != nil {
		return err
	}
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Client: cc})
	if err != nil {
		sub.Close()
		return err
	}
	router, err := watermillkafka.NewJSONRouter(sub, pub, spec.Topics.Alerts, spec.Topics.Alerts+".poison", handle, nil)
	if err != nil {
		pub.Close()
		sub.Close()
		return err
	}
	go func() {
		if err := router.Run(ctx); err != nil {
			log.Error("alert router", "err", err)
		}
		router.Close()
		pub.Close()
		sub.Close()
	}()
	return nil
}
