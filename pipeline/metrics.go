package pipeline

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the data plane's counters and stage latencies. They register
// on the registry the caller passes, never the global one, and keep atomic
// totals for progress displays.
type Metrics struct {
	eventsIn    prometheus.Counter
	predictions prometheus.Counter
	duplicates  prometheus.Counter
	dlq         *prometheus.CounterVec
	// dlqTruncated counts DLQ records that carry a prefix of their input.
	dlqTruncated prometheus.Counter
	stageTime    *prometheus.HistogramVec
	batchSize    prometheus.Histogram

	in, out, dup, dlqTotal atomic.Int64
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		eventsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_pipeline_events_in_total", Help: "Input events whose micro-batch got through the stages (a retried batch counts once).",
		}),
		predictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_pipeline_events_out_total", Help: "Predictions produced and acknowledged.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_pipeline_events_duplicate_total", Help: "Input events dropped as duplicates of an earlier event id.",
		}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_pipeline_events_dlq_total", Help: "Input events sent to the DLQ, by reason.",
		}, []string{"reason"}),
		dlqTruncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_pipeline_dlq_truncated_total",
			Help: "DLQ records whose input was too large for the DLQ topic and that carry a prefix of it (driftline.payload.truncated).",
		}),
		stageTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "driftline_pipeline_stage_batch_duration_seconds", Help: "Time one stage spent on one micro-batch.",
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}, []string{"stage"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "driftline_pipeline_batch_size_events", Help: "Events per micro-batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
	}
	for _, c := range []prometheus.Collector{m.eventsIn, m.predictions, m.duplicates, m.dlq, m.dlqTruncated, m.stageTime, m.batchSize} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Totals is a snapshot of the data plane's counters.
type Totals struct {
	In, Out, Duplicates, DLQ int64
}

// Totals returns the counters so far.
func (m *Metrics) Totals() Totals {
	return Totals{In: m.in.Load(), Out: m.out.Load(), Duplicates: m.dup.Load(), DLQ: m.dlqTotal.Load()}
}
