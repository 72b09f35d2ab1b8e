package app

import (
	"context"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/driftline/driftline/detectors/alert"
	"github.com/driftline/driftline/detectors/distribution"
	"github.com/driftline/driftline/models/adminapi"
	"github.com/driftline/driftline/models/rollout"
	"github.com/driftline/driftline/pipeline"
)

// Status page history bounds: one sample a second, the last 15 minutes,
// and the prequential series of at most 8 versions.
const (
	statusInterval    = time.Second
	statusCapacity    = 900
	statusMaxVersions = 8
)

// statusTracker keeps what the status page shows beside the registry: the
// events each partition loop took in, and a bounded in-process history of
// the data plane's rates and of each served version's windowed prequential
// metrics, sampled every second while the admin server runs. The history
// is this instance's: it starts empty at every start, and another
// instance's page shows its own (the registry's outcome sums, shared by
// every instance, are what the gate measures; they are cumulative, so they
// would not show a version's accuracy move over time). The zero value is
// ready to count; run samples.
type statusTracker struct {
	partMu sync.Mutex
	parts  map[partitionKey]*atomic.Int64

	mu       sync.Mutex
	started  time.Time
	prev     statusSample
	last     statusSample
	points   []adminapi.HistoryPoint // ring, oldest first once full
	versions []adminapi.VersionSeries
}

type partitionKey struct {
	topic     string
	partition int32
}

// statusSample is the counters at one moment.
type statusSample struct {
	at     time.Time
	totals pipeline.Totals
	labels int64
	in     map[partitionKey]int64
	lag    map[partitionKey]int64
	dlq    map[string]int64
}

// countIn returns h counting, for the partition, the messages of each batch
// it handled without error: as the pipeline's events-in total, a batch
// retried after a failure counts once.
func (t *statusTracker) countIn(topic string, partition int32, h pipeline.PartitionHandler) pipeline.PartitionHandler {
	t.partMu.Lock()
	if t.parts == nil {
		t.parts = map[partitionKey]*atomic.Int64{}
	}
	k := partitionKey{topic, partition}
	n := t.parts[k]
	if n == nil {
		n = new(atomic.Int64)
		t.parts[k] = n
	}
	t.partMu.Unlock()
	c := countingHandler{PartitionHandler: h, n: n}
	if ah, ok := h.(pipeline.AsyncPartitionHandler); ok {
		return asyncCountingHandler{countingHandler: c, async: ah}
	}
	return c
}

type countingHandler struct {
	pipeline.PartitionHandler
	n *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, msgs []pipeline.Message) error {
	err := h.PartitionHandler.Handle(ctx, msgs)
	if err == nil {
		h.n.Add(int64(len(msgs)))
	}
	return err
}

type asyncCountingHandler struct {
	countingHandler
	async pipeline.AsyncPartitionHandler
}

func (h asyncCountingHandler) HandleAsync(ctx context.Context, msgs []pipeline.Message, ack func(error)) error {
	err := h.async.HandleAsync(ctx, msgs, ack)
	if err == nil {
		h.n.Add(int64(len(msgs)))
	}
	return err
}

// runStatus samples every statusInterval until ctx ends.
func (a *App) runStatus(ctx context.Context) {
	t := &a.status
	t.mu.Lock()
	if t.started.IsZero() {
		t.started = time.Now()
	}
	t.mu.Unlock()
	a.sampleStatus(time.Now())
	tick := time.NewTicker(statusInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			a.sampleStatus(now)
		}
	}
}

// sampleStatus takes one sample and appends it to the history.
func (a *App) sampleStatus(now time.Time) {
	s := statusSample{at: now, totals: a.Totals(), in: map[partitionKey]int64{}, lag: map[partitionKey]int64{}, dlq: map[string]int64{}}
	if ls, ok := a.Labels(); ok {
		s.labels = ls.Joined
	}
	t := &a.status
	t.partMu.Lock()
	for k, n := range t.parts {
		s.in[k] = n.Load()
	}
	t.partMu.Unlock()
	if mfs, err := a.reg.Gather(); err == nil {
		for _, mf := range mfs {
			switch mf.GetName() {
			case "driftline_pipeline_events_dlq_total":
				for _, m := range mf.GetMetric() {
					s.dlq[label(m, "reason")] = int64(m.GetCounter().GetValue())
				}
			case "driftline_kafka_consumer_lag_records":
				for _, m := range mf.GetMetric() {
					p, _ := strconv.ParseInt(label(m, "partition"), 10, 32)
					s.lag[partitionKey{label(m, "topic"), int32(p)}] = int64(m.GetGauge().GetValue())
				}
			}
		}
	}
	var summaries []adminapi.VersionPoint
	var names []string
	var versions []string
	if a.joinMetrics != nil {
		for _, p := range a.joinMetrics.Summaries() {
			if p.Labels == 0 {
				continue
			}
			summaries = append(summaries, adminapi.VersionPoint{At: now, Labels: p.Labels, Accuracy: adminapi.Number(p.Accuracy), LogLoss: adminapi.Number(p.LogLoss)})
			names, versions = append(names, p.Model), append(versions, p.Version)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prev, t.last = t.last, s
	if t.prev.at.IsZero() {
		return
	}
	dt := s.at.Sub(t.prev.at).Seconds()
	point := adminapi.HistoryPoint{At: now, InPerS: rate(s.totals.In, t.prev.totals.In, dt), OutPerS: rate(s.totals.Out, t.prev.totals.Out, dt),
		DLQPerS: rate(s.totals.DLQ, t.prev.totals.DLQ, dt), DuplicatesPerS: rate(s.totals.Duplicates, t.prev.totals.Duplicates, dt), Lag: sum(s.lag)}
	if len(t.points) == statusCapacity {
		t.points = slices.Delete(t.points, 0, 1)
	}
	t.points = append(t.points, point)
	for i, p := range summaries {
		t.addVersionPoint(names[i], versions[i], p)
	}
}

// addVersionPoint appends p to the series of version, keeping at most
// statusCapacity points per series and statusMaxVersions series (the
// longest silent is dropped first). t.mu is held.
func (t *statusTracker) addVersionPoint(model, version string, p adminapi.VersionPoint) {
	i := slices.IndexFunc(t.versions, func(s adminapi.VersionSeries) bool { return s.Model == model && s.Version == version })
	if i < 0 {
		if len(t.versions) == statusMaxVersions {
			oldest := 0
			for j, s := range t.versions {
				if s.Points[len(s.Points)-1].At.Before(t.versions[oldest].Points[len(t.versions[oldest].Points)-1].At) {
					oldest = j
				}
			}
			t.versions = slices.Delete(t.versions, oldest, oldest+1)
		}
		t.versions = append(t.versions, adminapi.VersionSeries{Model: model, Version: version})
		i = len(t.versions) - 1
	}
	s := &t.versions[i]
	cutoff := p.At.Add(-statusCapacity * statusInterval)
	for len(s.Points) > 0 && (len(s.Points) >= statusCapacity || s.Points[0].At.Before(cutoff)) {
		s.Points = s.Points[1:]
	}
	s.Points = append(s.Points, p)
}

func rate(cur, prev int64, dt float64) adminapi.Number {
	if dt <= 0 {
		return adminapi.Number(math.NaN())
	}
	return adminapi.Number(float64(cur-prev) / dt)
}

func sum(m map[partitionKey]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// statusSource is the App as the admin API's adminapi.StatusSource.
type statusSource struct{ a *App }

// Pipeline implements adminapi.StatusSource: the last sample, with rates
// over the interval before it.
func (src statusSource) Pipeline() adminapi.PipelineStatus {
	a := src.a
	t := &a.status
	t.mu.Lock()
	defer t.mu.Unlock()
	s, prev := t.last, t.prev
	st := adminapi.PipelineStatus{Pipeline: a.spec.Name, InputTopic: a.spec.Topics.Input, Model: a.spec.Model.Name,
		Champion: a.championVersion(), Ready: a.Ready(), StartedAt: t.started, SampledAt: s.at,
		In: s.totals.In, Out: s.totals.Out, DLQ: s.totals.DLQ, Duplicates: s.totals.Duplicates, Labels: s.labels,
		Lag: sum(s.lag), Partitions: []adminapi.PartitionStatus{}, DLQReasons: []adminapi.DLQReason{}}
	dt := math.NaN()
	if !prev.at.IsZero() {
		dt = s.at.Sub(prev.at).Seconds()
	}
	st.InPerS, st.OutPerS = rate(s.totals.In, prev.totals.In, dt), rate(s.totals.Out, prev.totals.Out, dt)
	st.DLQPerS, st.DuplicatesPerS = rate(s.totals.DLQ, prev.totals.DLQ, dt), rate(s.totals.Duplicates, prev.totals.Duplicates, dt)
	keys := map[partitionKey]bool{}
	for k := range s.in {
		keys[k] = true
	}
	for k := range s.lag {
		keys[k] = true
	}
	for k := range keys {
		st.Partitions = append(st.Partitions, adminapi.PartitionStatus{Topic: k.topic, Partition: k.partition, In: s.in[k],
			InPerS: rate(s.in[k], prev.in[k], dt), Lag: s.lag[k]})
	}
	slices.SortFunc(st.Partitions, func(x, y adminapi.PartitionStatus) int {
		if x.Topic != y.Topic {
			if x.Topic < y.Topic {
				return -1
			}
			return 1
		}
		return int(x.Partition - y.Partition)
	})
	for reason, n := range s.dlq {
		st.DLQReasons = append(st.DLQReasons, adminapi.DLQReason{Reason: reason, Total: n, PerS: rate(n, prev.dlq[reason], dt)})
	}
	slices.SortFunc(st.DLQReasons, func(x, y adminapi.DLQReason) int { return int(y.Total - x.Total) })
	return st
}

// History implements adminapi.StatusSource.
func (src statusSource) History() adminapi.History {
	a := src.a
	t := &a.status
	t.mu.Lock()
	defer t.mu.Unlock()
	h := adminapi.History{IntervalS: statusInterval.Seconds(), Capacity: statusCapacity,
		Points: slices.Clone(t.points), Versions: make([]adminapi.VersionSeries, len(t.versions))}
	if h.Points == nil {
		h.Points = []adminapi.HistoryPoint{}
	}
	for i, s := range t.versions {
		h.Versions[i] = adminapi.VersionSeries{Model: s.Model, Version: s.Version, Points: slices.Clone(s.Points)}
	}
	return h
}

// Drift implements adminapi.StatusSource.
func (src statusSource) Drift() (distribution.Report, []alert.Alert, bool) {
	a := src.a
	if a.drift == nil {
		return distribution.Report{}, nil, false
	}
	return a.drift.Snapshot(), a.RaisedAlerts(), true
}

// Rollout implements adminapi.StatusSource.
func (src statusSource) Rollout(model string) (rollout.Status, bool) {
	a := src.a
	if a.governor == nil || model != a.spec.Model.Name {
		return rollout.Status{}, false
	}
	return a.governor.Status(), true
}
