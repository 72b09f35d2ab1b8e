package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// predictor is an in-test Stage that answers every live row with one
// prediction (Batch.AppendOutput), rejects rows starting with "bad", and
// makes the prediction of a row "wide-N" N bytes long.
type predictor struct{}

func (predictor) Name() string { return "predictor" }

func (predictor) Process(_ context.Context, b *pipeline.Batch) error {
	for i := range b.Len() {
		v := b.Messages[i].Value
		if bytes.HasPrefix(v, []byte("bad")) {
			b.Reject(i, "predictor", "predictor.bad", "")
			continue
		}
		value := append([]byte("pred:"), v...)
		if n, ok := bytes.CutPrefix(v, []byte("wide-")); ok {
			size, _ := strconv.Atoi(string(n))
			value = bytes.Repeat([]byte("p"), size)
		}
		b.AppendOutput(i, pipeline.OutRecord{Topic: "predictions", Key: b.Messages[i].Key, Value: value,
			Headers: []pipeline.Header{{Key: "own", Value: []byte("1")}}})
	}
	return nil
}

// base64Payload is a DLQ payload function that grows the input by a third,
// as dlq_payload encrypt does.
func base64Payload(dst []byte, msg *pipeline.Message) ([]byte, []byte, []pipeline.Header, error) {
	return base64.StdEncoding.AppendEncode(dst, msg.Value), nil, nil, nil
}

func limits(byTopic map[string]int) func(string) int {
	return func(topic string) int { return byTopic[topic] }
}

// TestRunnerTruncatesOversizeDLQRecords: the poison pill, in
// unit form. A malformed input of 800,000 bytes whose DLQ payload grows by
// a third is over a DLQ topic limit of 1,048,588 bytes; the record carries
// the longest prefix that fits instead, with the input's size and SHA-256,
// and the batch goes through.
func TestRunnerTruncatesOversizeDLQRecords(t *testing.T) {
	const limit = 1_048_588
	poison := "bad{" + strings.Repeat("y", 799_996)
	for _, tc := range []struct {
		name    string
		payload pipeline.DLQPayloadFunc
		key     []byte
		wantKey bool
	}{
		{"raw payload fits", nil, []byte("k"), true},
		{"encrypted payload", base64Payload, []byte("k"), true},
		{"key too large as well", nil, bytes.Repeat([]byte("k"), limit), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &recordingSink{}
			r, reg := newRunner(t, pipeline.RunnerConfig{Sink: sink, Stages: []pipeline.Stage{predictor{}}, DLQPayload: tc.payload,
				RecordLimit: limits(map[string]int{"events.dlq": limit, "predictions": limit})})
			in := msgs("events", 0, 7, "ok-1", poison, "ok-2")
			in[1].Key = tc.key
			if err := r.Handle(context.Background(), in); err != nil {
				t.Fatalf("a DLQ record over the limit failed the batch: %v", err)
			}
			if n := len(sink.byTopic("predictions")); n != 2 {
				t.Errorf("%d predictions, want 2", n)
			}
			dlq := sink.byTopic("events.dlq")
			if len(dlq) != 1 {
				t.Fatalf("%d DLQ records, want 1", len(dlq))
			}
			rec := dlq[0]
			if rec.Size() > limit {
				t.Errorf("DLQ record of %d bytes, over the limit %d", rec.Size(), limit)
			}
			_, truncated := header(rec, pipeline.HeaderPayloadTruncated)
			if tc.payload == nil && tc.wantKey {
				// 800,000 raw bytes fit: nothing is cut.
				if truncated || string(rec.Value) != poison {
					t.Errorf("raw input that fits was cut (truncated header %v, %d bytes)", truncated, len(rec.Value))
				}
				return
			}
			sum := sha256.Sum256([]byte(poison))
			kept, _ := header(rec, pipeline.HeaderPayloadKept)
			n, err := strconv.Atoi(kept)
			if err != nil || n <= 0 || n > len(poison) || (tc.wantKey && n == len(poison)) {
				t.Fatalf("kept %q, want a prefix length (all of the input only when the key was left out)", kept)
			}
			for key, want := range map[string]string{
				pipeline.HeaderPayloadTruncated: "true",
				pipeline.HeaderPayloadSize:      "800000",
				pipeline.HeaderPayloadSHA256:    hex.EncodeToString(sum[:]),
				pipeline.HeaderReason:           "predictor.bad",
				pipeline.HeaderSourceOffset:     "8",
			} {
				if got, ok := header(rec, key); got != want {
					t.Errorf("header %s = %q (present %v), want %q", key, got, ok, want)
				}
			}
			value := rec.Value
			if tc.payload != nil {
				if value, err = base64.StdEncoding.DecodeString(string(rec.Value)); err != nil {
					t.Fatal(err)
				}
			}
			if string(value) != poison[:n] {
				t.Errorf("payload is not the input's first %d bytes", n)
			}
			if n < limit*7/10 {
				t.Errorf("kept %d bytes: the prefix should nearly fill the limit", n)
			}
			got, ok := header(rec, pipeline.HeaderSourceKeySize)
			switch {
			case tc.wantKey && ok:
				t.Errorf("key size header %q on a record whose key fits", got)
			case !tc.wantKey && (!ok || got != strconv.Itoa(len(tc.key)) || len(rec.Key) != 0):
				t.Errorf("key %d bytes, key size header %q (present %v); want the key left out and its size", len(rec.Key), got, ok)
			}
			tot := r2totals(t, reg)
			if tot["driftline_pipeline_dlq_truncated_total"] != 1 || tot["driftline_pipeline_events_dlq_total"] != 1 || tot["driftline_pipeline_events_out_total"] != 2 {
				t.Errorf("metrics %v", tot)
			}
		})
	}
}

// TestRunnerSendsOversizePredictionsToDLQ: a row whose prediction is over
// the predictions topic's limit goes to the DLQ (output.too_large); the
// other rows are predicted, and every row is accounted for.
func TestRunnerSendsOversizePredictionsToDLQ(t *testing.T) {
	sink := &recordingSink{}
	r, reg := newRunner(t, pipeline.RunnerConfig{Sink: sink, Stages: []pipeline.Stage{predictor{}},
		RecordLimit: limits(map[string]int{"predictions": 10_000, "events.dlq": 1 << 20})})
	if err := r.Handle(context.Background(), msgs("events", 0, 0, "ok-1", "wide-20000", "ok-2", "wide-9000")); err != nil {
		t.Fatal(err)
	}
	preds := sink.byTopic("predictions")
	if len(preds) != 3 || string(preds[0].Value) != "pred:ok-1" || string(preds[1].Value) != "pred:ok-2" || len(preds[2].Value) != 9000 {
		t.Fatalf("predictions %d, want ok-1, ok-2 and the 9,000-byte one", len(preds))
	}
	dlq := sink.byTopic("events.dlq")
	if len(dlq) != 1 || string(dlq[0].Value) != "wide-20000" {
		t.Fatalf("DLQ %v, want the wide row", dlq)
	}
	if got, _ := header(dlq[0], pipeline.HeaderReason); !strings.HasPrefix(got, pipeline.ReasonOutputTooLarge+": a record of ") {
		t.Errorf("reason %q", got)
	}
	tot := r2totals(t, reg)
	if tot["driftline_pipeline_events_out_total"] != 3 || tot["driftline_pipeline_events_dlq_total"] != 1 {
		t.Errorf("metrics %v", tot)
	}
}

// TestRunnerPropagatesAllowListedHeaders: the input's traceparent and
// tracestate reach the row's prediction and DLQ record, after their own
// headers; other input headers and over-long values do not.
func TestRunnerPropagatesAllowListedHeaders(t *testing.T) {
	sink := &recordingSink{}
	r, _ := newRunner(t, pipeline.RunnerConfig{Sink: sink, Stages: []pipeline.Stage{predictor{}},
		PropagateHeaders: []string{"traceparent", "tracestate"}})
	in := msgs("events", 0, 0, "ok-1", "bad-1", "ok-2")
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	in[0].Headers = []pipeline.Header{{Key: "traceparent", Value: []byte(tp)}, {Key: "authorization", Value: []byte("secret")}}
	in[1].Headers = []pipeline.Header{{Key: "tracestate", Value: []byte("a=1")}, {Key: "traceparent", Value: []byte(tp)}}
	in[2].Headers = []pipeline.Header{{Key: "tracestate", Value: bytes.Repeat([]byte("x"), pipeline.MaxPropagatedHeaderBytes+1)}}
	if err := r.Handle(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	preds := sink.byTopic("predictions")
	if len(preds) != 2 {
		t.Fatalf("%d predictions", len(preds))
	}
	keys := func(rec pipeline.OutRecord) string {
		var ks []string
		for _, h := range rec.Headers {
			ks = append(ks, h.Key)
		}
		return strings.Join(ks, ",")
	}
	if got := keys(preds[0]); got != "own,traceparent" {
		t.Errorf("first prediction's headers %s, want own,traceparent", got)
	}
	if v, _ := header(preds[0], "traceparent"); v != tp {
		t.Errorf("traceparent %q", v)
	}
	if got := keys(preds[1]); got != "own" {
		t.Errorf("second prediction's headers %s: an over-long tracestate was copied", got)
	}
	dlq := sink.byTopic("events.dlq")
	if len(dlq) != 1 || !strings.HasSuffix(keys(dlq[0]), ",tracestate,traceparent") {
		t.Errorf("DLQ headers %s, want the rejection's then tracestate,traceparent", keys(dlq[0]))
	}
}
