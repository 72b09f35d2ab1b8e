package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/pipeline"
)

// screen is an in-test Stage: it rejects rows whose value starts with
// "bad", drops rows starting with "dup" as duplicates, and emits one
// prediction per row still live.
type screen struct {
	err error // returned instead of processing, when set
}

func (screen) Name() string { return "screen" }

func (s screen) Process(_ context.Context, b *pipeline.Batch) error {
	if s.err != nil {
		return s.err
	}
	for i := range b.Len() {
		v := b.Messages[i].Value
		switch {
		case bytes.HasPrefix(v, []byte("bad")):
			b.Reject(i, "screen", "screen.bad", "field value")
			b.Reject(i, "later", "later.reason", "") // the first rejection wins
		case bytes.HasPrefix(v, []byte("dup")):
			b.MarkDuplicate(i)
		}
	}
	for i := range b.Len() {
		if b.OK(i) {
			b.Outputs = append(b.Outputs, pipeline.OutRecord{Topic: "predictions", Key: b.Messages[i].Key, Value: append([]byte("pred:"), b.Messages[i].Value...)})
		}
	}
	return nil
}

// recordingSink is an in-test Sink that keeps copies of what it is given,
// or fails with err.
type recordingSink struct {
	mu     sync.Mutex
	err    error
	writes [][]pipeline.OutRecord
}

func (s *recordingSink) Write(_ context.Context, recs []pipeline.OutRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	cp := make([]pipeline.OutRecord, len(recs))
	for i, r := range recs {
		cp[i] = pipeline.OutRecord{Topic: r.Topic, Key: bytes.Clone(r.Key), Value: bytes.Clone(r.Value), Headers: append([]pipeline.Header(nil), r.Headers...)}
		for j, h := range cp[i].Headers {
			cp[i].Headers[j].Value = bytes.Clone(h.Value)
		}
	}
	s.writes = append(s.writes, cp)
	return nil
}

func (s *recordingSink) byTopic(topic string) []pipeline.OutRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []pipeline.OutRecord
	for _, w := range s.writes {
		for _, r := range w {
			if r.Topic == topic {
				out = append(out, r)
			}
		}
	}
	return out
}

func header(r pipeline.OutRecord, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func msgs(topic string, part int32, first int64, values ...string) []pipeline.Message {
	out := make([]pipeline.Message, len(values))
	for i, v := range values {
		out[i] = pipeline.Message{Topic: topic, Partition: part, Offset: first + int64(i), Key: fmt.Appendf(nil, "k%d", first+int64(i)), Value: []byte(v)}
	}
	return out
}

func newRunner(t *testing.T, cfg pipeline.RunnerConfig) (*pipeline.Runner, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := pipeline.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stages == nil {
		cfg.Stages = []pipeline.Stage{screen{}}
	}
	if cfg.DLQTopic == "" {
		cfg.DLQTopic = "events.dlq"
	}
	cfg.Metrics = m
	r, err := pipeline.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, reg
}

func TestRunnerDLQRecordsCarryHeadersAndInput(t *testing.T) {
	sink := &recordingSink{}
	r, reg := newRunner(t, pipeline.RunnerConfig{Sink: sink})
	ctx := context.Background()
	if err := r.Handle(ctx, msgs("events", 3, 100, "ok-1", "bad-1", "dup-1", "ok-2", "bad-2")); err != nil {
		t.Fatal(err)
	}
	// The batch is reused: the second batch must not repeat the first's outputs.
	if err := r.Handle(ctx, msgs("events", 3, 105, "bad-3", "ok-3")); err != nil {
		t.Fatal(err)
	}
	if len(sink.writes) != 2 {
		t.Fatalf("%d sink writes, want one per batch", len(sink.writes))
	}
	if n := len(sink.writes[1]); n != 2 {
		t.Errorf("second batch wrote %d records, want 2", n)
	}
	preds := sink.byTopic("predictions")
	if len(preds) != 3 || string(preds[0].Value) != "pred:ok-1" || string(preds[2].Value) != "pred:ok-3" {
		t.Errorf("predictions %v", preds)
	}
	dlq := sink.byTopic("events.dlq")
	wantOffsets := []string{"101", "104", "105"}
	wantValues := []string{"bad-1", "bad-2", "bad-3"}
	if len(dlq) != len(wantOffsets) {
		t.Fatalf("%d DLQ records, want %d", len(dlq), len(wantOffsets))
	}
	for i, rec := range dlq {
		if string(rec.Value) != wantValues[i] {
			t.Errorf("DLQ record %d carries %q, want the input %q", i, rec.Value, wantValues[i])
		}
		if want := "k" + wantOffsets[i]; string(rec.Key) != want {
			t.Errorf("DLQ record %d key %q, want %q", i, rec.Key, want)
		}
		for key, want := range map[string]string{
			pipeline.HeaderReason:       "screen.bad: field value",
			pipeline.HeaderStage:        "screen",
			pipeline.HeaderSourceOffset: wantOffsets[i],
			pipeline.HeaderSourceTopic:  "events",
			pipeline.HeaderSourcePart:   "3",
		} {
			if got, ok := header(rec, key); !ok || got != want {
				t.Errorf("DLQ record %d: header %s = %q (present %v), want %q", i, key, got, ok, want)
			}
		}
	}

	tot := r2totals(t, reg)
	if tot["driftline_pipeline_events_in_total"] != 7 || tot["driftline_pipeline_events_out_total"] != 3 ||
		tot["driftline_pipeline_events_duplicate_total"] != 1 || tot["driftline_pipeline_events_dlq_total"] != 3 {
		t.Errorf("metrics %v", tot)
	}
	if n := testutil.CollectAndCount(reg, "driftline_pipeline_stage_batch_duration_seconds"); n != 2 {
		t.Errorf("%d stage latency series, want screen and produce", n)
	}
	lint(t, reg)
}

// r2totals sums every series of each metric family (counter values, or
// histogram sample counts).
func r2totals(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[mf.GetName()] += m.GetCounter().GetValue()
			case m.Histogram != nil:
				out[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func lint(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	problems, err := testutil.CollectAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

func TestRunnerDLQPayloadShapesTheRecord(t *testing.T) {
	sink := &recordingSink{}
	payload := func(dst []byte, m *pipeline.Message) ([]byte, []byte, []pipeline.Header, error) {
		dst = append(dst, "sealed("...)
		dst = append(dst, bytes.ToUpper(m.Value)...)
		dst = append(dst, ')')
		return dst, nil, []pipeline.Header{{Key: pipeline.HeaderKeyID, Value: []byte("key-7")}}, nil
	}
	r, _ := newRunner(t, pipeline.RunnerConfig{Sink: sink, DLQPayload: payload})
	if err := r.Handle(context.Background(), msgs("events", 0, 0, "bad-a", "ok", "bad-bb")); err != nil {
		t.Fatal(err)
	}
	dlq := sink.byTopic("events.dlq")
	if len(dlq) != 2 {
		t.Fatalf("%d DLQ records", len(dlq))
	}
	for i, want := range []string{"sealed(BAD-A)", "sealed(BAD-BB)"} {
		rec := dlq[i]
		if string(rec.Value) != want {
			t.Errorf("DLQ value %q, want %q", rec.Value, want)
		}
		if rec.Key != nil {
			t.Errorf("DLQ key %q, want the payload func's nil", rec.Key)
		}
		if got, _ := header(rec, pipeline.HeaderKeyID); got != "key-7" {
			t.Errorf("key id header %q", got)
		}
		if got, _ := header(rec, pipeline.HeaderSourceOffset); got != fmt.Sprint(2*i) {
			t.Errorf("offset header %q, want %d", got, 2*i)
		}
	}

	boom := errors.New("no key")
	failing, _ := newRunner(t, pipeline.RunnerConfig{Sink: sink, DLQPayload: func([]byte, *pipeline.Message) ([]byte, []byte, []pipeline.Header, error) {
		return nil, nil, nil, boom
	}})
	if err := failing.Handle(context.Background(), msgs("events", 0, 0, "bad")); !errors.Is(err, boom) {
		t.Errorf("payload error: Handle returned %v", err)
	}
}

func TestRunnerFailures(t *testing.T) {
	ctx := context.Background()
	sinkErr := errors.New("broker down")
	sink := &recordingSink{err: sinkErr}
	r, reg := newRunner(t, pipeline.RunnerConfig{Sink: sink})
	err := r.Handle(ctx, msgs("events", 0, 0, "ok", "bad"))
	if !errors.Is(err, sinkErr) {
		t.Fatalf("sink error: Handle returned %v", err)
	}
	if tot := r2totals(t, reg); tot["driftline_pipeline_events_out_total"] != 0 || tot["driftline_pipeline_events_dlq_total"] != 0 {
		t.Errorf("a failed batch was counted as written: %v", tot)
	}

	stageErr := errors.New("redis down")
	sink2 := &recordingSink{}
	r2, _ := newRunner(t, pipeline.RunnerConfig{Sink: sink2, Stages: []pipeline.Stage{screen{err: stageErr}}})
	err = r2.Handle(ctx, msgs("events", 0, 0, "ok"))
	if !errors.Is(err, stageErr) || !strings.Contains(err.Error(), "screen") {
		t.Fatalf("stage error: Handle returned %v", err)
	}
	if len(sink2.writes) != 0 {
		t.Error("outputs written after a stage failed")
	}
}

func TestNewRunnerValidates(t *testing.T) {
	m, err := pipeline.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ok := pipeline.RunnerConfig{Stages: []pipeline.Stage{screen{}}, Sink: &recordingSink{}, DLQTopic: "dlq", Metrics: m}
	if _, err := pipeline.NewRunner(ok); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*pipeline.RunnerConfig){
		"no stages":  func(c *pipeline.RunnerConfig) { c.Stages = nil },
		"no sink":    func(c *pipeline.RunnerConfig) { c.Sink = nil },
		"no dlq":     func(c *pipeline.RunnerConfig) { c.DLQTopic = "" },
		"no metrics": func(c *pipeline.RunnerConfig) { c.Metrics = nil },
	} {
		c := ok
		mut(&c)
		if _, err := pipeline.NewRunner(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMetricsLintAndRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := pipeline.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: []pipeline.Stage{screen{}}, Sink: &recordingSink{}, DLQTopic: "dlq", Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Handle(context.Background(), msgs("events", 0, 0, "ok", "bad", "dup")); err != nil {
		t.Fatal(err)
	}
	lint(t, reg)
	if got := m.Totals(); got != (pipeline.Totals{In: 3, Out: 1, Duplicates: 1, DLQ: 1}) {
		t.Errorf("totals %+v", got)
	}
	for _, name := range []string{
		"driftline_pipeline_events_in_total", "driftline_pipeline_events_out_total",
		"driftline_pipeline_events_duplicate_total", "driftline_pipeline_events_dlq_total",
		"driftline_pipeline_stage_batch_duration_seconds", "driftline_pipeline_batch_size_events",
	} {
		if testutil.CollectAndCount(reg, name) == 0 {
			t.Errorf("%s not registered", name)
		}
	}
	// The reason label is the bounded code, never the detail.
	if got := dlqByReason(t, reg); len(got) != 1 || got["screen.bad"] != 1 {
		t.Errorf("dlq by reason %v, want screen.bad: 1", got)
	}
}

// dlqByReason gathers the DLQ counter per reason label.
func dlqByReason(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "driftline_pipeline_events_dlq_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func TestBatchRowStates(t *testing.T) {
	var b pipeline.Batch
	b.Reset(msgs("t", 2, 10, "a", "b", "c"))
	if b.Len() != 3 || b.Topic != "t" || b.Partition != 2 {
		t.Fatalf("reset: %+v", b)
	}
	b.MarkDuplicate(0)
	b.Reject(0, "s", "r", "") // a duplicate is not rejected
	b.Reject(1, "s1", "r1", "d1")
	b.MarkDuplicate(1) // a rejected row stays rejected
	if b.State[0] != pipeline.RowDuplicate || b.State[1] != pipeline.RowRejected || !b.OK(2) {
		t.Errorf("states %v", b.State)
	}
	if b.Rejections[1] != (pipeline.Rejection{Stage: "s1", Reason: "r1", Detail: "d1"}) {
		t.Errorf("rejection %+v", b.Rejections[1])
	}
	b.Outputs = append(b.Outputs, pipeline.OutRecord{Topic: "x"})
	b.Reset(msgs("t", 2, 13, "d"))
	if b.Len() != 1 || !b.OK(0) || len(b.Outputs) != 0 || b.Rejections[0] != (pipeline.Rejection{}) {
		t.Errorf("reset kept old state: %+v", b)
	}
}

// shadowCopy is an in-test Stage: it adds a copy of every "predictions"
// output to topic, as the shadow arm's predictions.
type shadowCopy struct{ topic string }

func (shadowCopy) Name() string { return "shadow" }

func (s shadowCopy) Process(_ context.Context, b *pipeline.Batch) error {
	for i, n := 0, len(b.Outputs); i < n; i++ {
		if o := b.Outputs[i]; o.Topic == "predictions" {
			b.Outputs = append(b.Outputs, pipeline.OutRecord{Topic: s.topic, Key: o.Key, Value: append([]byte("shadow:"), o.Value...)})
		}
	}
	return nil
}

// TestRunnerShadowOutputsNotCounted: outputs to RunnerConfig.ShadowTopic
// are written like every output but not counted as events out; without a
// ShadowTopic they are.
func TestRunnerShadowOutputsNotCounted(t *testing.T) {
	const shadow = "predictions.shadow"
	for _, tc := range []struct {
		name        string
		shadowTopic string
		wantOut     int64
	}{{"shadow topic set", shadow, 3}, {"no shadow topic", "", 6}} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			reg := prometheus.NewRegistry()
			m, err := pipeline.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := pipeline.NewRunner(pipeline.RunnerConfig{Sink: sink, ShadowTopic: tc.shadowTopic, DLQTopic: "events.dlq", Metrics: m,
				Stages: []pipeline.Stage{screen{}, shadowCopy{topic: shadow}}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(r.Close)
			if err := r.Handle(context.Background(), msgs("events", 0, 0, "a", "bad", "b", "dup", "c")); err != nil {
				t.Fatal(err)
			}
			if p, s := len(sink.byTopic("predictions")), len(sink.byTopic(shadow)); p != 3 || s != 3 {
				t.Fatalf("wrote %d predictions and %d shadow predictions, want 3 and 3", p, s)
			}
			if got := string(sink.byTopic(shadow)[0].Value); got != "shadow:pred:a" {
				t.Fatalf("first shadow output %q", got)
			}
			tot := m.Totals()
			if tot.Out != tc.wantOut || tot.In != 5 || tot.DLQ != 1 || tot.Duplicates != 1 {
				t.Fatalf("totals %+v, want out %d, in 5, dlq 1, duplicates 1", tot, tc.wantOut)
			}
			if got := r2totals(t, reg)["driftline_pipeline_events_out_total"]; got != float64(tc.wantOut) {
				t.Fatalf("driftline_pipeline_events_out_total %v, want %d", got, tc.wantOut)
			}
		})
	}
}
