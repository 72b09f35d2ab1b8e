package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/internal/app"
)

// TestDemoUnboundedHoldsFlatMemory runs `driftline demo --events 0` (until
// Ctrl-C) with its producer unthrottled (--rate 0), on the embedded
// defaults, and samples the process's live Go heap, which holds kfake's
// records, miniredis's keys and the pipeline: after a warm-up it must stay
// flat, because the producer waits while the pipeline lags (its backlog
// stays bounded) and kfake and miniredis drop what they no longer need.
// Before the backpressure the heap grew by tens of MB a second.
func TestDemoUnboundedHoldsFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 50 s")
	}
	const (
		run    = 50 * time.Second
		warmUp = 25 * time.Second
		every  = time.Second
		// growth bounds the live heap's peak after the warm-up, as a
		// multiple of its peak during the warm-up's last 10 s (kfake fills
		// its retention and miniredis its dedupe window meanwhile, slowly
		// on a busy machine): a heap that grows with the events produced
		// (1.5k–20k a second here) exceeds it within the run.
		growth = 1.5
	)
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var stdout bytes.Buffer
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	start := time.Now()
	go func() { done <- runMain(ctx, []string{"demo", "--events", "0", "--rate", "0"}, &stdout, stderr) }()

	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var warm, after uint64
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
			at := time.Since(start)
			trace = append(trace, fmt.Sprintf("%3.0fs %4d MiB", at.Seconds(), live>>20))
			switch {
			case at < warmUp-10*time.Second:
			case at < warmUp:
				warm = max(warm, live)
			default:
				after = max(after, live)
			}
		}
	}
	if code != 0 {
		t.Fatalf("demo exit code %d; stderr:\n%s", code, tail(stderr.String(), 2000))
	}
	t.Logf("live heap each second:\n%s", strings.Join(trace, "\n"))
	if warm == 0 || after == 0 {
		t.Fatalf("the demo ran %s, too short to sample", time.Since(start))
	}
	if float64(after) > growth*float64(warm) {
		t.Errorf("live heap grew from %d MiB (warm-up) to %d MiB: want at most %.1f×", warm>>20, after>>20, growth)
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

var progressLag = regexp.MustCompile(`produced \d+ .* lag (\d+) `)

// progressLags returns the lag of each of the demo's progress lines.
func progressLags(stderr string) []int64 {
	var out []int64
	for _, m := range progressLag.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		out = append(out, n)
	}
	return out
}
