package app

import (
	"context"
	"slices"
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

// BenchmarkLabelPlaneLake is the label plane's throughput in `run` (the
// demo spec on kfake and miniredis) with the live lake off and on. Each op
// is one round of both sides, alternating which goes first: each side
// feeds 60,000 events, waits until they are scored (and, with the lake,
// in committed files of the events table), then times 60,000
// labels (late: each joins its cached prediction) from the first produce
// to the last processed. It reports each side's median labels/s over the
// rounds and the median of the rounds' on/off ratios. Run with
// -benchtime Nx (N rounds).
func BenchmarkLabelPlaneLake(b *testing.B) {
	const events = 60_000
	var off, on, ratio []float64
	for i := range b.N {
		var rates [2]float64 // off, on
		for k := range 2 {
			side := (i + k) % 2
			rates[side] = float64(events) / labelPlaneRun(b, side == 1, events).Seconds()
		}
		b.Logf("round %d: off %.0f, on %.0f labels/s, on/off %.3f", i, rates[0], rates[1], rates[1]/rates[0])
		off, on, ratio = append(off, rates[0]), append(on, rates[1]), append(ratio, rates[1]/rates[0])
	}
	median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(median(off), "off-labels/s")
	b.ReportMetric(median(on), "on-labels/s")
	b.ReportMetric(median(ratio), "on/off")
}

// labelPlaneRun runs one op of BenchmarkLabelPlaneLake and returns the
// labels' time.
func labelPlaneRun(b *testing.B, withLake bool, events int) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	broker := kafkatest.StartKfake(b, kfake.GroupMinSessionTimeout(time.Second))
	mr := redistest.StartMiniredis(b)
	spec := outageSpec(b, broker, mr.Addr)
	if withLake {
		spec.Lake = &pipeline.LakeSpec{Dir: b.TempDir(), Compression: "zstd", Roll: pipeline.LakeRollSpec{MaxBytes: 64 << 20, MaxAge: pipeline.Duration(time.Second)}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := startFedApp(b, ctx, spec, broker)
	defer a.Close()
	stream := streams.Config{Concept: streams.ConceptSEA, Seed: 53}
	var stats feed.Stats
	if err := feed.Produce(ctx, a.feed, feed.Config{Topic: spec.Topics.Input, Events: int64(events), Rate: 50_000, Stream: stream}, &stats); err != nil {
		b.Fatal(err)
	}
	waitFor(b, a.runErr, 2*time.Minute, "every event scored", func() bool { return a.Totals().Out >= int64(events) })
	if withLake {
		// The events table's encode is behind the scoring (its queue):
		// done before the labels are timed, so that they do not share the
		// CPU with it.
		if err := a.lake.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	gen, err := streams.NewGenerator(stream)
	if err != nil {
		b.Fatal(err)
	}
	var ev streams.Event
	vals := make([][]byte, events)
	for i := range vals {
		gen.Next(&ev)
		vals[i] = streams.AppendLabelJSON(nil, &ev)
	}
	start := time.Now()
	for _, v := range vals {
		a.feed.Produce(ctx, pipeline.OutRecord{Topic: spec.Topics.Labels, Value: v}, func(_ kafka.Produced, err error) {
			if err != nil {
				b.Errorf("produce a label: %v", err)
			}
		})
	}
	waitFor(b, a.runErr, 2*time.Minute, "every label processed", func() bool {
		ls, _ := a.Labels()
		return ls.Counts.Processed >= int64(events)
	})
	took := time.Since(start)
	if ls, _ := a.Labels(); ls.Counts.Joined+ls.Counts.Late < int64(events)*9/10 {
		b.Fatalf("only %d of %d labels joined", ls.Counts.Joined+ls.Counts.Late, events)
	}
	if err := a.Stop(b); err != nil {
		b.Fatalf("Run: %v", err)
	}
	return took
}
