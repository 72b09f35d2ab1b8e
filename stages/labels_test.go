package stages

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/pipeline"
)

// TestLabelDecoder: labels are checked against the served model — binary
// (0 or 1), K classes (an integer in [0, K)), regression (a finite float32
// within labels.min/max) — and a refusal's detail never holds a value.
func TestLabelDecoder(t *testing.T) {
	binary := testSpec(t, false)
	regression := parseTestSpec(t, false, map[string]string{"kind: logistic": "kind: linear",
		"labels: {field: label, ttl: 10m, max_pending: 1000}": "labels: {field: label, ttl: 10m, max_pending: 1000, min: -100, max: 250}"})
	softmax := parseTestSpec(t, false, map[string]string{"kind: logistic": "kind: softmax, classes: 3"})
	long := strings.Repeat("i", 257)
	for _, tc := range []struct {
		name   string
		spec   *pipeline.Spec
		in     string
		id     string
		label  float32
		reason string
		hide   string // must not appear in the detail
	}{
		{"binary 1", binary, `{"event_id":"e-1","label":1}`, "e-1", 1, "", ""},
		{"binary 0 with other keys", binary, `{"x":[1,{"y":null}],"label":0,"event_id":"e-2"}`, "e-2", 0, "", ""},
		{"numeric id", binary, `{"event_id":42,"label":1.0}`, "42", 1, "", ""},
		{"escaped id", binary, `{"event_id":"e\u002d3","label":0}`, "e-3", 0, "", ""},
		{"binary -5", binary, `{"event_id":"e-1","label":-5}`, "", 0, ReasonLabelInvalid, "-5"},
		{"binary 7", binary, `{"event_id":"e-1","label":7}`, "", 0, ReasonLabelInvalid, "7"},
		{"binary 1e38", binary, `{"event_id":"e-1","label":1e38}`, "", 0, ReasonLabelInvalid, "1e38"},
		{"binary 0.5", binary, `{"event_id":"e-1","label":0.5}`, "", 0, ReasonLabelInvalid, "0.5"},
		{"overflowing number", binary, `{"event_id":"e-1","label":1e400}`, "", 0, ReasonLabelInvalid, "1e400"},
		{"label as a string", binary, `{"event_id":"e-1","label":"1"}`, "", 0, ReasonLabelMissing, ""},
		{"null label", binary, `{"event_id":"e-1","label":null}`, "", 0, ReasonLabelMissing, ""},
		{"no label", binary, `{"event_id":"e-1"}`, "", 0, ReasonLabelMissing, ""},
		{"no id", binary, `{"label":1}`, "", 0, ReasonLabelMissing, ""},
		{"id as a bool", binary, `{"event_id":true,"label":1}`, "", 0, ReasonLabelMissing, ""},
		{"empty object", binary, `{}`, "", 0, ReasonLabelMissing, ""},
		{"empty id", binary, `{"event_id":"","label":1}`, "", 0, ReasonLabelIDTooLong, ""},
		{"id too long", binary, `{"event_id":"` + long + `","label":1}`, "", 0, ReasonLabelIDTooLong, long[:20]},
		{"id at the bound", binary, `{"event_id":"` + long[:256] + `","label":1}`, long[:256], 1, "", ""},
		{"not an object", binary, `[1]`, "", 0, ReasonLabelSyntax, ""},
		{"truncated", binary, `{"event_id":"alice@example.com","lab`, "", 0, ReasonLabelSyntax, "alice"},
		{"e-mail as a key", binary, `{"event_id":"e-1","label":1,"bob@example.com":tru}`, "", 0, ReasonLabelSyntax, "bob@"},
		{"trailing data", binary, `{"event_id":"e-1","label":1} x`, "", 0, ReasonLabelSyntax, ""},
		{"regression target", regression, `{"event_id":"e-1","label":-12.5}`, "e-1", -12.5, "", ""},
		{"regression above max", regression, `{"event_id":"e-1","label":250.5}`, "", 0, ReasonLabelOutOfRange, "250.5"},
		{"regression 1e38", regression, `{"event_id":"e-1","label":1e38}`, "", 0, ReasonLabelOutOfRange, "1e38"},
		{"regression past float32", regression, `{"event_id":"e-1","label":1e39}`, "", 0, ReasonLabelInvalid, "1e39"},
		{"class 2 of 3", softmax, `{"event_id":"e-1","label":2}`, "e-1", 2, "", ""},
		{"class 3 of 3", softmax, `{"event_id":"e-1","label":3}`, "", 0, ReasonLabelInvalid, ""},
		{"class 1.5", softmax, `{"event_id":"e-1","label":1.5}`, "", 0, ReasonLabelInvalid, "1.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, label, rej := NewLabelDecoder(tc.spec).Decode([]byte(tc.in))
			if rej.Reason != tc.reason {
				t.Fatalf("reason %q (%s), want %q", rej.Reason, rej.Detail, tc.reason)
			}
			if tc.reason == "" {
				if id != tc.id || label != tc.label {
					t.Errorf("decoded %q %v, want %q %v", id, label, tc.id, tc.label)
				}
				return
			}
			if rej.Stage != StageLabels || rej.Detail == "" {
				t.Errorf("rejection %+v lacks its stage or detail", rej)
			}
			if tc.hide != "" && strings.Contains(rej.Detail, tc.hide) {
				t.Errorf("detail %q holds the value %q", rej.Detail, tc.hide)
			}
		})
	}
}

// memSink is an in-test pipeline.Sink that keeps what it is given.
type memSink struct {
	mu   sync.Mutex
	recs []pipeline.OutRecord
}

func (s *memSink) Write(_ context.Context, recs []pipeline.OutRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		r.Headers = append([]pipeline.Header(nil), r.Headers...)
		s.recs = append(s.recs, r)
	}
	return nil
}

func (s *memSink) reasons() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.recs {
		for _, h := range r.Headers {
			if h.Key == pipeline.HeaderReason {
				code, _, _ := strings.Cut(string(h.Value), ":")
				out[code]++
			}
		}
	}
	return out
}

// withDLQ makes the rig's label handler send refused records to a memSink.
func (rig *joinRig) withDLQ(t testing.TB) *memSink {
	t.Helper()
	sink := &memSink{}
	h, err := rig.join.Opener(LabelDLQ{Sink: sink, Config: pipeline.DLQConfig{Topic: "events.dlq"}})("labels", 0)
	if err != nil {
		t.Fatal(err)
	}
	rig.handler = h
	return sink
}

// TestLabelJoinRefusesLabelsTheModelCannotLearn: the issue's -5, 7 and
// 1e38 for a binary model used to count as joined, and one 1e38 drove MAE
// to 1e35. They go to the DLQ with a reason now, counted as invalid; the
// prediction they were for stays cached for a valid label, and the
// prequential metrics see only valid labels.
func TestLabelJoinRefusesLabelsTheModelCannotLearn(t *testing.T) {
	spec := testSpec(t, false)
	rig := newJoinRig(t, spec)
	sink := rig.withDLQ(t)
	rig.predict(t, "a", "b", "c", "d")
	msgs := []pipeline.Message{
		{Topic: "labels", Partition: 2, Offset: 10, Value: []byte(`{"event_id":"a","label":-5}`)},
		{Topic: "labels", Partition: 2, Offset: 11, Value: []byte(`{"event_id":"b","label":7}`)},
		{Topic: "labels", Partition: 2, Offset: 12, Value: []byte(`{"event_id":"c","label":1e38}`)},
		{Topic: "labels", Partition: 2, Offset: 13, Value: []byte(`{"event_id":"d","label":1}`)},
	}
	rig.handle(t, msgs)
	rig.expect(t, "bad labels", joinCounts{joined: 1, invalid: 3})
	if got := sink.reasons(); got[ReasonLabelInvalid] != 3 || len(sink.recs) != 3 {
		t.Fatalf("DLQ reasons %v, want 3 %s", got, ReasonLabelInvalid)
	}
	for i, r := range sink.recs {
		if r.Topic != "events.dlq" || string(r.Value) != string(msgs[i].Value) {
			t.Errorf("DLQ record %d: topic %s value %s", i, r.Topic, r.Value)
		}
		want := map[string]string{pipeline.HeaderStage: StageLabels, pipeline.HeaderSourceTopic: "labels",
			pipeline.HeaderSourcePart: "2", pipeline.HeaderSourceOffset: strconv.Itoa(10 + i)}
		for _, h := range r.Headers {
			if w, ok := want[h.Key]; ok && string(h.Value) == w {
				delete(want, h.Key)
			}
		}
		if len(want) != 0 {
			t.Errorf("DLQ record %d lacks headers %v", i, want)
		}
	}
	if sum := rig.metrics.Summaries(); len(sum) != 1 || sum[0].Labels != 1 {
		t.Errorf("prequential metrics %+v, want 1 label", sum)
	}
	if mae := testutil.ToFloat64(rig.metrics.mae.WithLabelValues(spec.Model.Name, spec.Model.Version)); mae > 1 {
		t.Errorf("MAE %v, want at most 1", mae)
	}
	// The refused labels' predictions still wait for a valid label.
	rig.label(t, "a")
	rig.expect(t, "a valid label after a bad one", joinCounts{joined: 2, invalid: 3})
}

// TestParkedLabelsAreBounded: 20,000 labels with 1 KB ids for events not
// predicted yet. With the defaults (ids of at most 256 bytes) none is
// parked: all go to the DLQ as labels.id_too_long. With ids of 1 KB
// allowed and at most 5,000 parked, 5,000 are parked and 15,000 go to the
// DLQ as labels.parked_full; the parked keys and their index stay within
// the bound labels.max_parked documents.
func TestParkedLabelsAreBounded(t *testing.T) {
	const n, idBytes = 20_000, 1024
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i) + "-" + strings.Repeat("x", idBytes-len(strconv.Itoa(i))-1)
	}
	for _, tc := range []struct {
		name         string
		edit         string
		parked       int
		reason       string
		overflowWant float64
	}{
		{"default bounds", "labels: {field: label, ttl: 10m, max_pending: 1000}", 0, ReasonLabelIDTooLong, 0},
		{"1 KB ids, 5,000 parked", "labels: {field: label, ttl: 10m, max_pending: 1000, max_id_bytes: 1024, max_parked: 5000}", 5000, ReasonLabelParkedFull, n - 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := parseTestSpec(t, false, map[string]string{"labels: {field: label, ttl: 10m, max_pending: 1000}": tc.edit})
			rig := newJoinRig(t, spec)
			sink := rig.withDLQ(t)
			for lo := 0; lo < n; lo += 1000 {
				rig.handle(t, labelMsgs(ids[lo:lo+1000], func(int) int { return 1 }))
			}
			keys := rig.r.Mini.Keys()
			parked, keyBytes := 0, 0
			for _, k := range keys {
				if strings.HasPrefix(k, spec.Redis.KeyPrefix+"early-label:") {
					parked++
					keyBytes += len(k)
				}
			}
			members := parkedIndex(t, rig.cache)
			for _, m := range members {
				keyBytes += len(m)
			}
			if parked != tc.parked || len(members) != tc.parked {
				t.Errorf("%d parked labels, %d in the index; want %d", parked, len(members), tc.parked)
			}
			perLabel := 2 * (len(spec.Redis.KeyPrefix+"early-label:") + spec.Labels.MaxIDBytes)
			if bound := spec.Labels.MaxParked * perLabel; keyBytes > bound {
				t.Errorf("parked labels hold %d key bytes, over the bound %d", keyBytes, bound)
			}
			if got := sink.reasons(); got[tc.reason] != n-tc.parked || len(sink.recs) != n-tc.parked {
				t.Errorf("DLQ reasons %v, want %d %s", got, n-tc.parked, tc.reason)
			}
			if got := testutil.ToFloat64(rig.metrics.parkedOverflow); got != tc.overflowWant {
				t.Errorf("overflow metric %v, want %v", got, tc.overflowWant)
			}
			if got := testutil.ToFloat64(rig.metrics.parked); got != float64(tc.parked) && tc.parked > 0 {
				t.Errorf("parked gauge %v, want %d", got, tc.parked)
			}
			t.Logf("%d labels with %d-byte ids: %d parked (%d key bytes), %d to the DLQ", n, idBytes, parked, keyBytes, len(sink.recs))
		})
	}
}
