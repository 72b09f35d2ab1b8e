package main

import (
	"context"
	"log/slog"
	"math"
	"sync"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// labelPlane consumes the labels topic in its own consumer group and runs
// the label join, which teaches the champion.
type labelPlane struct {
	kc      *kafka.Client
	join    *stages.LabelJoin
	metrics *stages.JoinMetrics

	mu                        sync.Mutex
	total, correct, positives int64
}

func newLabelPlane(spec *pipeline.Spec, dp *dataPlane, log *slog.Logger) (*labelPlane, error) {
	kc, err := kafka.New(kafka.Config{
		Client:         kafka.ClientConfig{Brokers: spec.Kafka.Brokers, ClientID: spec.Kafka.ClientID + "-labels"},
		Group:          spec.Kafka.Group + "-labels",
		Topics:         []string{spec.Topics.Labels},
		SessionTimeout: spec.Kafka.SessionTimeout.D(),
		BatchSize:      spec.Batch.Size,
		Linger:         spec.Batch.Linger.D(),
		MaxInFlight:    spec.Batch.MaxInFlight,
		Registerer:     dp.reg,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	lp := &labelPlane{kc: kc, metrics: dp.joinMetrics}
	lp.join = dp.join
	dp.outcomeHooks = append(dp.outcomeHooks, lp.observe)
	return lp, nil
}

// observe counts the outcomes of served predictions (not the shadow's).
func (lp *labelPlane) observe(o stages.Outcome) {
	if o.Arm == stages.ArmShadow {
		return
	}
	lp.mu.Lock()
	lp.total++
	if (o.Score >= stages.Threshold) == (o.Label == 1) {
		lp.correct++
	}
	if o.Label == 1 {
		lp.positives++
	}
	lp.mu.Unlock()
}

func (lp *labelPlane) run(ctx context.Context) error { return lp.kc.Run(ctx, lp.join.Open) }

func (lp *labelPlane) joined() int64 {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.total
}

// joinedAll reports whether every produced label has been handled (joined,
// or parked until its prediction comes) and joined.
func (lp *labelPlane) joinedAll(labels int64) bool {
	return lp.join.Processed() >= labels && lp.joined() >= labels
}

// overallAccuracy is the prequential accuracy over every joined label.
func (lp *labelPlane) overallAccuracy() float64 {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.total == 0 {
		return math.NaN()
	}
	return float64(lp.correct) / float64(lp.total)
}

// majorityBaseline is the accuracy of always predicting the majority label.
func (lp *labelPlane) majorityBaseline() float64 {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.total == 0 {
		return math.NaN()
	}
	p := float64(lp.positives) / float64(lp.total)
	return math.Max(p, 1-p)
}

// windowAccuracy is the champion's windowed prequential accuracy.
func (lp *labelPlane) windowAccuracy() float64 {
	for _, s := range lp.metrics.Summaries() {
		return s.Accuracy
	}
	return math.NaN()
}

// runPlanes runs the data plane and, when there is one, the label plane
// until ctx ends or either fails; a failure stops the other. It returns the
// first error, after both have drained and committed.
func runPlanes(ctx context.Context, dp *dataPlane, lp *labelPlane) error {
	if lp == nil {
		return dp.run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- dp.run(ctx) }()
	go func() { errs <- lp.run(ctx) }()
	first := <-errs
	cancel()
	if second := <-errs; first == nil {
		first = second
	}
	return first
}
