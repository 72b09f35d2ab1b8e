package app

import (
	"context"
	"math"
	"sync"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/governance"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// labelPlane consumes the labels topic in its own consumer group and runs
// the label join, which teaches the served models. With topics.model_state
// it has no consumer of its own: the learner-state writer consumes the
// labels (run runs it).
type labelPlane struct {
	kc      *kafka.Client
	writer  *governance.StateWriter
	join    *stages.LabelJoin
	metrics *stages.JoinMetrics
	// dlq receives the label records the join refuses.
	dlq stages.LabelDLQ

	decision models.Decision
	// binary is a model of two classes, whose served score is P(y=1): its
	// outcomes add to logLoss.
	binary                    bool
	mu                        sync.Mutex
	total, correct, positives int64
	logLoss                   float64
}

func newLabelPlane(a *App) (*labelPlane, error) {
	spec := a.spec
	if a.state != nil {
		// The learner-state writer consumes the labels; its label feed
		// writes the refused records (learnerState.open).
		a.join.KeepMarksUntilCommitted(nil, a.inputCommitted) // log mode's label marks are the rows'
		lp := &labelPlane{writer: a.state.writer, join: a.join, metrics: a.joinMetrics, decision: stages.DecisionOf(spec), binary: isBinary(spec)}
		a.outcomeHooks = append(a.outcomeHooks, lp.observe)
		return lp, nil
	}
	// The join keeps what it took for a label batch until the batch's
	// offsets are committed: a label delivered again after a crash finds it.
	labelsCommitted := &stages.CommittedOffsets{}
	a.join.KeepMarksUntilCommitted(labelsCommitted, a.inputCommitted)
	cc := a.kcc
	cc.ClientID = spec.Kafka.ClientID + "-labels"
	kc, err := kafka.New(kafka.Config{
		Client:         cc,
		Group:          spec.Kafka.Group + "-labels",
		Topics:         []string{spec.Topics.Labels},
		SessionTimeout: spec.Kafka.SessionTimeout.D(),
		BatchSize:      spec.Batch.Size,
		Linger:         spec.Batch.Linger.D(),
		MaxInFlight:    spec.Batch.MaxInFlight,
		CommitGate:     a.commitGate(), // the lake's labels table first holds what a batch joined
		OnCommitted:    labelsCommitted.Committed,
		Retry:          a.retry,
		Registerer:     a.reg,
		Logger:         a.log,
	})
	if err != nil {
		return nil, err
	}
	lp := &labelPlane{kc: kc, join: a.join, metrics: a.joinMetrics, decision: stages.DecisionOf(spec), binary: isBinary(spec)}
	lp.dlq = a.labelDLQ(kc, kc.MaxRecordBytes)
	a.outcomeHooks = append(a.outcomeHooks, lp.observe)
	return lp, nil
}

// inputCommits is the data plane consumer's kafka.Config.OnCommitted: with
// a label join in at-least-once mode, it records the input offsets
// committed, until which the join keeps each put's marks
// (stages.LabelJoin.KeepMarksUntilCommitted). In exactly-once mode a
// put's marks go with the partition's next put.
func (a *App) inputCommits(txnID string) func(topic string, partition int32, next int64) {
	if a.join == nil || txnID != "" {
		return nil
	}
	a.inputCommitted = &stages.CommittedOffsets{}
	return a.inputCommitted.Committed
}

// labelDLQ writes refused label records to sink, as the data plane's DLQ
// records are built: limit bounds a record, the DLQ key encrypts payloads.
func (a *App) labelDLQ(sink pipeline.Sink, limit func(topic string) int) stages.LabelDLQ {
	spec := a.spec
	dlq := stages.LabelDLQ{Sink: sink, Config: pipeline.DLQConfig{Topic: spec.Topics.DLQ, RecordLimit: limit,
		PropagateHeaders: spec.Output.PropagateHeaders}}
	if a.dlqCrypt != nil {
		crypt := a.dlqCrypt
		dlq.NewPayload = func() pipeline.DLQPayloadFunc { return crypt.Clone().EncryptDLQ }
	}
	return dlq
}

// observe counts the outcomes of served predictions (not the shadow's).
func (lp *labelPlane) observe(o stages.Outcome) {
	if o.Arm == stages.ArmShadow {
		return
	}
	lp.mu.Lock()
	lp.total++
	if float64(lp.decision.Class(float64(o.Score))) == float64(o.Label) {
		lp.correct++
	}
	if o.Label == 1 {
		lp.positives++
	}
	if lp.binary {
		lp.logLoss += models.LogLoss(float64(o.Score), float64(o.Label))
	}
	lp.mu.Unlock()
}

func (lp *labelPlane) run(ctx context.Context) error {
	if lp.writer != nil {
		return lp.writer.Run(ctx)
	}
	return lp.kc.Run(ctx, lp.join.Opener(lp.dlq))
}

func (lp *labelPlane) close() {
	if lp.kc != nil {
		lp.kc.Close()
	}
}

// LabelStats are the label plane's counts of served predictions' labels.
type LabelStats struct {
	// Processed is every label record handled: joined, or parked until
	// its prediction comes.
	Processed int64
	// Joined is the labels joined to a served (not shadow) prediction.
	Joined int64
	// Accuracy is the prequential accuracy over every joined label, and
	// Baseline that of always predicting the majority label (NaN before
	// any label).
	Accuracy, Baseline float64
	// LogLoss is the prequential log loss over every joined label of a
	// binary model, and BaseRateLogLoss that of always predicting the
	// labels' positive share (the share's entropy); NaN before any label,
	// and for other models.
	LogLoss, BaseRateLogLoss float64
	// WindowAccuracy is the champion's windowed prequential accuracy (NaN
	// before any label).
	WindowAccuracy float64
	// Versions are the windowed prequential metrics (accuracy, log loss,
	// AUC) of every model version that served labelled predictions.
	Versions []stages.PrequentialSummary
	// Counts are the label join's counters, where every label ends once.
	Counts stages.LabelCounts
}

func (lp *labelPlane) stats() LabelStats {
	s := LabelStats{Processed: lp.join.Processed(), Counts: lp.join.Counts(), Accuracy: math.NaN(), Baseline: math.NaN(),
		LogLoss: math.NaN(), BaseRateLogLoss: math.NaN(), WindowAccuracy: math.NaN(), Versions: lp.metrics.Summaries()}
	for _, w := range lp.metrics.Summaries() {
		s.WindowAccuracy = w.Accuracy
		break
	}
	lp.mu.Lock()
	defer lp.mu.Unlock()
	s.Joined = lp.total
	if lp.total > 0 {
		s.Accuracy = float64(lp.correct) / float64(lp.total)
		p := float64(lp.positives) / float64(lp.total)
		s.Baseline = math.Max(p, 1-p)
		if lp.binary {
			s.LogLoss = lp.logLoss / float64(lp.total)
			s.BaseRateLogLoss = p*models.LogLoss(p, 1) + (1-p)*models.LogLoss(p, 0)
		}
	}
	return s
}
