package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/internal/app"
)

// TestDemoUnboundedHoldsFlatMemory runs `driftline demo --events 0` (until
// Ctrl-C) with its producer unthrottled (--rate 0), on the embedded
// defaults, and samples the process's live Go heap, which holds kfake's
// records, miniredis's keys and the pipeline. It must stay within a budget
// made of those bounds: kfake keeps app.DemoRetainBytes (in segments of a
// quarter), miniredis a dedupe window (5 s of events, about 300 bytes an
// event), the pipeline and its batches in flight the rest; and the
// producer stays at most app.DemoMaxBacklog ahead. Without backpressure
// the heap passed the budget within seconds (the producer wrote 36k events
// a second, the pipeline took 1–3k), and grew by tens of MB a second. (A
// budget, not the heap's growth after a warm-up: how long kfake takes to
// fill its retention depends on the machine's speed.)
func TestDemoUnboundedHoldsFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 50 s")
	}
	const (
		run   = 50 * time.Second
		every = time.Second
		// fixed: kfake's retention and its active segments, and 256 MiB
		// for the pipeline and the rest (measured: about 220 MiB at 48k
		// events/s, once the batched label plane made the demo that
		// fast: batches in flight, pending predictions, parked labels);
		// on top, miniredis holds the dedupe window (demo.yaml: 5 s) of
		// events at the fastest rate seen (at least 20k a second), about
		// 300 bytes an event. The old demo passed 1.9 GB in 31 s.
		fixed = app.DemoRetainBytes*5/4 + 256<<20
	)
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	start := time.Now()
	go func() { done <- runMain(ctx, []string{"demo", "--events", "0", "--rate", "0"}, &stdout, stderr) }()

	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	var trace []string
	tick := time.NewTicker(every)
	defer tick.Stop()
	code := -1
wait:
	for {
		select {
		case code = <-done:
			break wait
		case <-tick.C:
			metrics.Read(sample)
			live := sample[0].Value.Uint64()
			peak = max(peak, live)
			trace = append(trace, fmt.Sprintf("%3.0fs %4d MiB", time.Since(start).Seconds(), live>>20))
		}
	}
	if code != 0 {
		t.Fatalf("demo exit code %d; stderr:\n%s", code, tail(stderr.String(), 2000))
	}
	t.Logf("live heap each second:\n%s", strings.Join(trace, "\n"))
	if len(trace) < int(run/every)-5 {
		t.Fatalf("the demo ran %s, too short to sample", time.Since(start))
	}
	rate := max(20_000, slices.Max(append(progressRates(stderr.String()), 0)))
	if budget := uint64(fixed + rate*5*300); peak > budget {
		t.Errorf("live heap peaked at %d MiB, over the budget of %d MiB (fastest rate %d events/s)", peak>>20, budget>>20, rate)
	}
	// The producer was held back: the backlog on the input topic stayed
	// about the bound (app.DemoMaxBacklog), where an unthrottled producer
	// leads by hundreds of thousands of events.
	lags := progressLags(stderr.String())
	if len(lags) < 10 {
		t.Fatalf("want a progress line a second, got %d:\n%s", len(lags), tail(stderr.String(), 2000))
	}
	spec, err := app.DemoSpecOf("")
	if err != nil {
		t.Fatal(err)
	}
	bound := 2 * app.DemoMaxBacklog(spec)
	for i, lag := range lags {
		if lag > bound {
			t.Errorf("progress line %d: lag %d events, want at most %d", i+1, lag, bound)
		}
	}
}

var (
	progressLag  = regexp.MustCompile(`produced \d+ .* lag (\d+) `)
	progressRate = regexp.MustCompile(`produced \d+ .* (\d+) ev/s`)
)

// progressRates returns the rate (events/s) of each progress line.
func progressRates(stderr string) []int {
	var out []int
	for _, m := range progressRate.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// progressLags returns the lag of each of the demo's progress lines.
func progressLags(stderr string) []int64 {
	var out []int64
	for _, m := range progressLag.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}
