package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// TestLakeLabelIDs: labels that come before their events (joined when the
// event is scored) and labels that come after (joined by the label plane)
// land in the labels table under the same event id as the events table's
// row of their event: an early label's row, found by its source (the
// event's input position), has that row's id, and a late label's row has
// its label record's id.
func TestLakeLabelIDs(t *testing.T) {
	broker := kafkatest.StartKfake(t, kfake.GroupMinSessionTimeout(time.Second))
	mr := redistest.StartMiniredis(t)
	spec := outageSpec(t, broker, mr.Addr)
	dir := t.TempDir()
	spec.Lake = &pipeline.LakeSpec{Dir: dir, Compression: "zstd", Roll: pipeline.LakeRollSpec{MaxBytes: 1 << 20, MaxAge: pipeline.Duration(200 * time.Millisecond)}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startFedApp(t, ctx, spec, broker)
	defer a.Close()

	const events, early = 600, 300
	stream := streams.Config{Concept: streams.ConceptSEA, Seed: 47}
	gen, err := streams.NewGenerator(stream)
	if err != nil {
		t.Fatal(err)
	}
	labels := make([][]byte, events)
	ids := map[string]bool{}
	var ev streams.Event
	for i := range labels {
		gen.Next(&ev)
		labels[i] = streams.AppendLabelJSON(nil, &ev)
		ids[ev.ID] = true
	}
	produceLabels := func(vals [][]byte) {
		for _, v := range vals {
			a.feed.Produce(ctx, pipeline.OutRecord{Topic: spec.Topics.Labels, Value: v}, func(_ kafka.Produced, err error) {
				if err != nil {
					t.Errorf("produce a label: %v", err)
				}
			})
		}
		if err := a.feed.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The first events' labels come first, and are parked.
	produceLabels(labels[:early])
	waitFor(t, a.runErr, time.Minute, "the early labels parked", func() bool {
		ls, _ := a.Labels()
		return ls.Counts.Processed >= early
	})
	var stats feed.Stats
	if err := feed.Produce(ctx, a.feed, feed.Config{Topic: spec.Topics.Input, Events: events, Rate: 5000, Stream: stream}, &stats); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a.runErr, time.Minute, "every event scored", func() bool { return a.Totals().Out >= events })
	produceLabels(labels[early:])
	waitFor(t, a.runErr, time.Minute, "every label processed", func() bool {
		ls, _ := a.Labels()
		return ls.Counts.Processed >= events
	})
	if err := a.Stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	eventAt := map[[2]int64]string{}
	inEvents := map[string]bool{}
	for _, r := range readLake(t, dir, spec.Schema.IDField) {
		eventAt[[2]int64{int64(r.partition), r.offset}] = r.id
		inEvents[r.id] = true
	}
	var fromEvents, fromLabels int
	for _, r := range readLabelRows(t, dir) {
		switch r.source.Topic {
		case spec.Topics.Input:
			fromEvents++
			if id := eventAt[[2]int64{int64(r.source.Partition), r.source.Offset}]; id != r.id {
				t.Errorf("early label row of event id %q, but the events table's row at its source %+v has id %q", r.id, r.source, id)
			}
		case spec.Topics.Labels:
			fromLabels++
			if !inEvents[r.id] || !ids[r.id] {
				t.Errorf("late label row of event id %q: in the events table %v, a label record's id %v", r.id, inEvents[r.id], ids[r.id])
			}
		default:
			t.Errorf("label row of %q from %+v: neither the input nor the labels topic", r.id, r.source)
		}
	}
	t.Logf("%d early and %d late label rows", fromEvents, fromLabels)
	if fromEvents < early/2 || fromLabels < (events-early)/2 {
		t.Errorf("%d early and %d late label rows, want most of %d and %d", fromEvents, fromLabels, early, events-early)
	}
}

// A spec that pseudonymizes (or otherwise anonymizes) schema.id_field is
// refused, lake or not: the events table would hold the pseudonym and the
// labels the raw id (they would never join either).
func TestLakeRefusesAnonymizedIDField(t *testing.T) {
	text := strings.Replace(string(DemoSpec), "      - {field: user_id, op: pseudonymize}\n",
		"      - {field: user_id, op: pseudonymize}\n      - {field: event_id, op: pseudonymize}\n", 1)
	text += "lake:\n  dir: /tmp/unused\n"
	_, err := pipeline.ParseSpec("ids.yaml", []byte(text))
	if err == nil || !strings.Contains(err.Error(), "stages.anonymize.fields[1].field") || !strings.Contains(err.Error(), `the id field "event_id" cannot be anonymized`) {
		t.Fatalf("ParseSpec = %v, want the anonymized id field refused by name", err)
	}
}

// A lake with the learner-state log is refused, naming both fields.
func TestLakeRefusesLearnerStateLog(t *testing.T) {
	text := strings.Replace(string(DemoSpec), "  labels: ", "  model_state: demo.model-state\n  labels: ", 1)
	if !strings.Contains(text, "model_state:") {
		t.Fatal("demo.yaml has no topics.labels line to put topics.model_state before")
	}
	_, err := pipeline.ParseSpec("state.yaml", []byte(text+"lake:\n  dir: /tmp/unused\n"))
	if err == nil || !strings.Contains(err.Error(), "lake") || !strings.Contains(err.Error(), "topics.model_state") {
		t.Fatalf("ParseSpec = %v, want the lake refused with topics.model_state, naming both", err)
	}
	if _, err := pipeline.ParseSpec("state.yaml", []byte(text)); err != nil {
		t.Fatalf("without the lake the spec is refused: %v", err)
	}
}
