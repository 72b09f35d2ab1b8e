package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
)

// TestLabelPlaneSendsRefusedLabelsToDLQ runs the demo spec (without
// rollout) on kfake and miniredis: after three events are predicted, their
// labels -5 and 1e38 (a binary model learns 0 and 1) and a label whose id
// is over labels.max_id_bytes go to the DLQ topic, from the labels topic,
// with the data plane's DLQ headers and its encrypted payload; the valid
// label joins; the input's traceparent reaches the prediction.
func TestLabelPlaneSendsRefusedLabelsToDLQ(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	text := strings.Replace(demoSpecWithoutRollout(t), "output:\n", "output:\n  propagate_headers: [traceparent]\n", 1)
	dp, spec, b := runLabelsApp(t, ctx, text)

	cl := b.Client(t)
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	events := make([]streams.Event, 3)
	tp := []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	for i := range events {
		gen.Next(&events[i])
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: spec.Topics.Input, Value: streams.AppendJSON(nil, &events[i]),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: tp}}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, ctx, "3 predictions", func() bool { return dp.Totals().Out == 3 })
	labels := []string{
		`{"event_id":"` + events[0].ID + `","label":-5}`,
		`{"event_id":"` + events[1].ID + `","label":1e38}`,
		`{"event_id":"` + events[2].ID + `","label":1}`,
		`{"event_id":"` + strings.Repeat("x", spec.Labels.MaxIDBytes+1) + `","label":1}`,
	}
	for _, l := range labels {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: spec.Topics.Labels, Value: []byte(l)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, ctx, "4 labels processed", func() bool { s, _ := dp.Labels(); return s.Processed == 4 })
	s, _ := dp.Labels()
	if s.Joined != 1 {
		t.Errorf("%d labels joined, want the 1 valid one", s.Joined)
	}

	rd := b.Client(t, kgo.ConsumeTopics(spec.Topics.DLQ, spec.Topics.Predictions), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var dlq, preds []*kgo.Record
	for len(dlq) < 3 || len(preds) < len(events) {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d DLQ records, %d predictions", len(dlq), len(preds))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic == spec.Topics.DLQ {
				dlq = append(dlq, r)
			} else {
				preds = append(preds, r)
			}
		})
	}
	// The one joined label (1, of events[2]) is the run's log loss; the
	// base rate of labels all 1 has none.
	var joined struct {
		ID    string  `json:"event_id"`
		Score float64 `json:"score"`
	}
	if err := json.Unmarshal(preds[2].Value, &joined); err != nil || joined.ID != events[2].ID {
		t.Fatalf("third prediction %s (%v): want events[2]'s", preds[2].Value, err)
	}
	if want := -math.Log(joined.Score); !(math.Abs(s.LogLoss-want) <= 1e-6 && s.BaseRateLogLoss <= 1e-9) {
		t.Errorf("log loss %v (base rate %v) for label 1 scored %v: want %v (0)", s.LogLoss, s.BaseRateLogLoss, joined.Score, want)
	}
	pred := preds[2]
	wantReasons := []string{stages.ReasonLabelInvalid, stages.ReasonLabelInvalid, stages.ReasonLabelIDTooLong}
	for i, r := range dlq {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		if !strings.HasPrefix(h[pipeline.HeaderReason], wantReasons[i]+": ") || h[pipeline.HeaderStage] != stages.StageLabels ||
			h[pipeline.HeaderSourceTopic] != spec.Topics.Labels || h[pipeline.HeaderKeyID] != spec.Stages.Anonymize.EncryptionKeyID {
			t.Errorf("DLQ record %d headers %v, want reason %s from the labels topic, encrypted", i, h, wantReasons[i])
		}
		if strings.Contains(string(r.Value), "label") {
			t.Errorf("DLQ record %d holds the label record in plaintext", i)
		}
	}
	if len(pred.Headers) == 0 || pred.Headers[len(pred.Headers)-1].Key != "traceparent" || string(pred.Headers[len(pred.Headers)-1].Value) != string(tp) {
		t.Errorf("prediction headers %v, want the input's traceparent last", pred.Headers)
	}
}

// runLabelsApp opens specText (the demo spec's topics) on a fresh kfake
// broker, its topics created with one partition, and miniredis, and runs
// the App until the test ends, failing it if Run fails.
func runLabelsApp(t *testing.T, ctx context.Context, specText string) (*App, *pipeline.Spec, *kafkatest.Broker) {
	t.Helper()
	spec, err := pipeline.ParseSpec("labels.yaml", []byte(specText))
	if err != nil {
		t.Fatal(err)
	}
	b := kafkatest.StartKfake(t)
	spec.Kafka.Brokers = []string{b.Addr}
	for _, topic := range []string{spec.Topics.Input, spec.Topics.Predictions, spec.Topics.DLQ, spec.Topics.Labels, spec.Topics.Alerts, spec.Topics.Audit} {
		b.CreateTopic(t, topic, 1)
	}
	t.Setenv(spec.Stages.Anonymize.HMACKeyEnv, strings.Repeat("ab", 32))
	t.Setenv(spec.Stages.Anonymize.EncryptionKeyEnv, strings.Repeat("cd", 32))
	dp, err := Open(ctx, spec, Options{Redis: redistest.StartMiniredis(t).Client(t), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- dp.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		dp.Close()
	})
	return dp, spec, b
}

// waitUntil polls cond every 20ms until it holds, failing t when ctx ends.
func waitUntil(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
