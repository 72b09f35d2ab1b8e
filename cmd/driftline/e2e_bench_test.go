//go:build integration

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// e2eEvents is the stream size of one throughput measurement.
const e2eEvents = 200_000

// e2eSideLimit bounds how long one side may take over e2eEvents (or a
// latency run's load) before the benchmark fails: at 2,000 events/s
// something is broken, not slow.
const e2eSideLimit = 100 * time.Second

// e2eRounds counts BenchmarkEndToEnd's calls in this process, so that
// successive -count rounds start with a different side.
var e2eRounds atomic.Int64

// BenchmarkEndToEnd measures three sides, in one run on one real Kafka
// broker and one redis-server, over the same 200,000-event stream (the
// integration tests' SEA stream, 1% malformed, 1% duplicates, its labels
// 300 ms after their events on the labels topic):
//   - full: `driftline run` with the integration spec as it is: the data
//     plane, the label topic joined in Redis, drift detection and the
//     rollout gate;
//   - dataplane: the same spec with the labels and alerts topics off;
//   - passthrough: a bare franz-go consume → produce copy built like
//     driftline's connector (see passthrough).
//
// Before timing, the broker is warmed: one throwaway consumer-group join
// on the input topic, and one throwaway produce to each topic the timed
// sides write (predictions, DLQ, shadow predictions, the passthrough's
// output). Each side then reads the whole input in a fresh consumer group
// (and, for driftline, a flushed Redis) and is timed from its start to the
// acknowledgement of the output of its last input row; the sides run in
// turn, starting with a different side in each successive -count round
// (passthrough, dataplane, full; then dataplane, full, passthrough; ...).
// It reports each side's events/s and the ratios full/passthrough and
// dataplane/passthrough.
//
// Then, with the timer stopped, it measures each side's event latency at
// half of the throughput it just measured for that side: the side runs on
// a fresh input topic (and, for full, a fresh labels topic), the stream is
// produced into it at that steady rate for DRIFTLINE_BENCH_LATENCY_SECONDS
// (default 10), and the latency of an event is its output record's
// broker-append time minus its input record's broker-append time (both
// topics use message.timestamp.type=LogAppendTime; see measureLatency).
// It reports p50 and p99 in milliseconds per side, and the rate the load
// generator reached.
//
// The load generator (every input and label row, for the throughput runs'
// pre-filled topic and for the latency runs' steady load alike, the same
// for all three sides) runs in a process of its own: this test binary
// re-run with DRIFTLINE_E2E_GENERATOR set (see produceLabelledStream),
// under `nice -n 10` (DRIFTLINE_BENCH_GENERATOR_NICE) with GOMAXPROCS 1,
// so that it shares neither the measured side's heap, scheduler and
// GOMAXPROCS nor more of the cores than it needs. It still runs on the
// same cores (no cgroup or CPU of its own: the machine's cgroups are not
// writable here); the benchmark logs where it runs and, per latency run,
// the CPU time it used beside the measured process's CPU time and how long
// the measured process's threads waited for a CPU. The outputs are read
// back after each run, so no reader runs beside the measured side.
//
//	go test -tags integration -run '^$' -bench EndToEnd -benchtime 1x -count 3 ./cmd/driftline/
//
// DRIFTLINE_BENCH_NO_REDIS_STAGES=1 turns dedupe and the entity aggregates
// off in both driftline sides, to show what the Redis round trips cost.
//
// To iterate on latency alone: DRIFTLINE_BENCH_LATENCY_RATE=N leaves the
// throughput runs (and so the ratios) out, writing 1,000 rows for the
// warm-up only, and loads every latency side at N events/s;
// DRIFTLINE_BENCH_SIDES lists the sides whose latency is measured
// (comma-separated: passthrough, dataplane, full; unset: all three).
// Throughput runs, when there are any, always time all three sides.
// DRIFTLINE_BENCH_LINGER=D (a Go duration) runs every side, the
// passthrough included, with batch.linger D instead of the spec's.
// DRIFTLINE_BENCH_COMPRESSION=codec runs every side, the passthrough
// included, with kafka.compression codec (snappy, lz4, zstd, gzip, none)
// instead of the default; the load generator keeps the default.
// DRIFTLINE_BENCH_EXACTLY_ONCE=1 runs both driftline sides with
// kafka.exactly_once (a transaction per batch; the passthrough has none).
// DRIFTLINE_BENCH_BROKER_WARMUP=D runs every side untimed for D before
// the timed runs (see warmBrokerJIT).
// DRIFTLINE_BENCH_PROFILE=dir profiles each timed side (see sideProfile)
// and logs redis-server's CPU and the broker's by thread (and, with
// DRIFTLINE_BENCH_JMX=1, its requests) per output of each latency run: the
// whole run, with the load generator's produce and the read-back of the
// outputs and inputs in it.
func BenchmarkEndToEnd(b *testing.B) {
	broker := kafkatest.StartKafka(b)
	rds := redistest.StartRedis(b)
	spec, specPath := integrationSpec(b, broker, rds.Addr)
	broker.CreateTopic(b, passthroughTopic, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	setLogAppendTime(b, ctx, broker, spec.Topics.Predictions, passthroughTopic)
	fixed := latencyRate(b)
	events := int64(e2eEvents)
	if fixed > 0 {
		events = 1000 // the warm-up's records: no throughput run
	}
	if linger, ok := batchLinger(b); ok {
		spec.Batch.Linger = linger // the passthrough's; startDriftline sets driftline's
	}
	b.Logf("%s; batch.linger %s", generatorPlacement(b), spec.Batch.Linger.D())
	rows := produceLabelledStream(b, ctx, broker.Addr, spec.Topics.Input, spec.Topics.Labels, events, 0).Rows
	warmBroker(b, ctx, broker, spec.Topics.Input, spec.Topics.Predictions, spec.Topics.DLQ, spec.Rollout.ShadowTopic, passthroughTopic)
	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	b.Cleanup(func() { _ = rdb.Close() })
	sides := e2eSides(broker, spec, specPath, rdb)
	round := int(e2eRounds.Add(1) - 1)
	order := selectSides(b, sides, rotation(len(sides), round))
	warmBrokerJIT(b, ctx, sides, spec.Topics.Input, spec.Topics.Labels, rows)

	report := func(name string, v float64) {
		b.ReportMetric(v, name)
		e2eHistory.add(name, v)
	}
	defer e2eHistory.logMedians(b)
	b.ReportAllocs()
	b.ResetTimer()
	rate := make([]float64, len(sides))
	if fixed > 0 {
		for _, k := range order {
			rate[k] = 2 * fixed
		}
	} else {
		elapsed := make([]time.Duration, len(sides))
		for i := 0; i < b.N; i++ {
			for _, k := range rotation(len(sides), round+i) {
				prof := startSideProfile(b, rdb, sides[k].name)
				elapsed[k] += timeSide(b, ctx, sides[k], spec.Topics.Input, spec.Topics.Labels, rows)
				prof.stop(b, sides[k].name, rows)
			}
		}
		for k, s := range sides {
			rate[k] = float64(rows) * float64(b.N) / elapsed[k].Seconds()
			report(s.name+"-events/s", rate[k])
		}
		pt := rate[sidePassthrough]
		report("full/passthrough", rate[sideFull]/pt)
		report("dataplane/passthrough", rate[sideDataPlane]/pt)
		b.Logf("round %d order %v: %d rows; events/s passthrough %.0f, dataplane %.0f, full %.0f",
			round, sideNames(sides, rotation(len(sides), round)), rows, pt, rate[sideDataPlane], rate[sideFull])
	}
	b.StopTimer()

	seconds := latencySeconds(b)
	for _, k := range order {
		redis0 := familyCPU()["redis-server"]
		var broker0 brokerSnapshot
		if profileDir() != "" {
			broker0 = takeBrokerSnapshot(b)
		}
		lat := measureLatency(b, ctx, broker, sides[k], rate[k]/2, seconds)
		if profileDir() != "" {
			used := familyCPU()["redis-server"] - redis0
			var out strings.Builder
			fmt.Fprintf(&out, "%s latency run: redis-server CPU %s, %.2f µs per output", sides[k].name, used.Round(time.Millisecond),
				float64(used.Nanoseconds())/1e3/float64(lat.matched))
			takeBrokerSnapshot(b).logSince(&out, broker0, int64(lat.matched))
			b.Log(out.String())
		}
		report(sides[k].name+"-p50-ms", lat.p50)
		report(sides[k].name+"-p99-ms", lat.p99)
		report(sides[k].name+"-load-events/s", lat.achieved)
		b.Logf("%s at %.0f events/s (target %.0f) for %s: %d events matched, p50 %.1f ms, p99 %.1f ms; this process's CPU %s (%.1f µs per output), its run-queue wait %s; generator CPU %s",
			sides[k].name, lat.achieved, rate[k]/2, seconds, lat.matched, lat.p50, lat.p99,
			lat.sideCPU.Round(time.Millisecond), float64(lat.sideCPU.Microseconds())/float64(lat.matched),
			lat.runQueueWait.Round(time.Millisecond), lat.generatorCPU.Round(time.Millisecond))
	}
}

// e2eHistory holds every round's metrics in this process, for the
// medians logged after each round.
var e2eHistory metricHistory

// metricHistory is each metric's values, in the order first reported.
// Rounds run one at a time: it takes no lock.
type metricHistory struct {
	names  []string
	values map[string][]float64
}

func (h *metricHistory) add(name string, v float64) {
	if h.values == nil {
		h.values = map[string][]float64{}
	}
	if _, ok := h.values[name]; !ok {
		h.names = append(h.names, name)
	}
	h.values[name] = append(h.values[name], v)
}

// logMedians logs each metric's median over the rounds so far (with
// -count 3, the third round's log holds the medians of all three).
func (h *metricHistory) logMedians(b *testing.B) {
	var out strings.Builder
	for _, name := range h.names {
		v := slices.Sorted(slices.Values(h.values[name]))
		m := v[len(v)/2]
		if len(v)%2 == 0 {
			m = (v[len(v)/2-1] + m) / 2
		}
		fmt.Fprintf(&out, "\n\t%-28s %10.4g  of", name, m)
		for _, x := range h.values[name] {
			fmt.Fprintf(&out, " %.4g", x)
		}
	}
	b.Logf("medians over %d rounds:%s", e2eRounds.Load(), out.String())
}

// passthroughTopic is the passthrough side's output topic.
const passthroughTopic = "passthrough"

// The sides, in the order of the first round.
const (
	sidePassthrough = iota
	sideDataPlane
	sideFull
)

// e2eSide is one measured consumer of the input topic.
type e2eSide struct {
	name string
	// start starts the side on input topic in (and labels, for full) in a
	// fresh consumer group.
	start func(tb testing.TB, in, labels string) e2eRun
	// out is the topic of its per-event outputs, and eventID an output
	// record's event id.
	out     string
	eventID func(key, value []byte) string
	// labelled sides are fed labels in the latency runs.
	labelled bool
}

// e2eRun is one running side.
type e2eRun interface {
	Ready() bool
	// Done is how many input rows have their outputs acknowledged (or,
	// for driftline, were counted as duplicates).
	Done() int64
	Stop() error
}

func e2eSides(broker *kafkatest.Broker, spec *pipeline.Spec, specPath string, rdb *redis.Client) []e2eSide {
	predictionID := func(key, _ []byte) string { return string(key) } // the prediction's key is the event id
	return []e2eSide{
		sidePassthrough: {name: "passthrough", out: passthroughTopic, eventID: func(_, value []byte) string { return inputEventID(value) },
			start: func(tb testing.TB, in, _ string) e2eRun {
				cc := broker.ClientConfig("passthrough")
				cc.Compression = benchCompression()
				p, err := startPassthrough(cc, spec, in, passthroughTopic, uniqueName("passthrough"))
				if err != nil {
					tb.Fatal(err)
				}
				return passthroughRun{p}
			}},
		sideDataPlane: {name: "dataplane", out: spec.Topics.Predictions, eventID: predictionID,
			start: func(tb testing.TB, in, _ string) e2eRun { return startDriftline(tb, specPath, rdb, in, "") }},
		sideFull: {name: "full", out: spec.Topics.Predictions, eventID: predictionID, labelled: true,
			start: func(tb testing.TB, in, labels string) e2eRun { return startDriftline(tb, specPath, rdb, in, labels) }},
	}
}

type passthroughRun struct{ *passthrough }

func (r passthroughRun) Done() int64 { return r.Acked() }

// rotation is the order of n sides in round r: 0..n-1 rotated left by r.
func rotation(n, r int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i + r) % n
	}
	return out
}

func sideNames(sides []e2eSide, order []int) []string {
	var out []string
	for _, k := range order {
		out = append(out, sides[k].name)
	}
	return out
}

// timeSide runs side over the n rows of topic in (and labels) from the
// start, and returns the time from its start to its last output's
// acknowledgement.
func timeSide(b *testing.B, ctx context.Context, side e2eSide, in, labels string, n int64) time.Duration {
	start := time.Now()
	run := side.start(b, in, labels)
	waitDone(b, ctx, side.name, run, n)
	elapsed := time.Since(start)
	if r, ok := run.(*driftlineRun); ok && profileDir() != "" {
		if s, ok := r.app.Labels(); ok {
			b.Logf("%s: labels when its last output was acknowledged: %+v", side.name, s.Counts)
		}
	}
	if err := run.Stop(); err != nil {
		b.Fatalf("%s: %v", side.name, err)
	}
	return elapsed
}

// waitDone waits, at most e2eSideLimit, until run has done n rows.
func waitDone(b *testing.B, ctx context.Context, name string, run e2eRun, n int64) {
	deadline := time.Now().Add(e2eSideLimit)
	for run.Done() < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = run.Stop()
			b.Fatalf("%s: %d of %d rows done within %s", name, run.Done(), n, e2eSideLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// driftlineRun is the data plane (labels "") or the full spec (labels
// set) running in a fresh group on a flushed Redis.
type driftlineRun struct {
	app    *app.App
	cancel context.CancelFunc
	done   chan error
}

// startDriftline opens the spec at specPath reading topic in, with the
// labels topic labels, or with the labels and alerts off when labels is
// "", and runs it.
func startDriftline(tb testing.TB, specPath string, rdb *redis.Client, in, labels string) *driftlineRun {
	spec, err := pipeline.LoadSpec(specPath)
	if err != nil {
		tb.Fatal(err)
	}
	spec.Topics.Input, spec.Topics.Labels = in, labels
	if labels == "" {
		spec.Topics.Alerts = "" // the data plane alone
	}
	if os.Getenv("DRIFTLINE_BENCH_NO_REDIS_STAGES") != "" {
		off := false
		spec.Stages.Dedupe.Enabled = &off
		spec.Stages.Featurize.Entity = nil
	}
	if linger, ok := batchLinger(tb); ok {
		spec.Batch.Linger = linger
	}
	if c := benchCompression(); c != "" {
		spec.Kafka.Compression = c
	}
	if os.Getenv("DRIFTLINE_BENCH_EXACTLY_ONCE") != "" {
		spec.Kafka.ExactlyOnce = true
	}
	spec.Kafka.Group = uniqueName("driftline")
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		tb.Fatal(err)
	}
	dp, err := app.Open(context.Background(), spec, app.Options{Redis: rdb, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &driftlineRun{app: dp, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- dp.Run(ctx) }()
	return r
}

func (r *driftlineRun) Ready() bool { return r.app.Ready() }

func (r *driftlineRun) Done() int64 {
	t := r.app.Totals()
	return t.Out + t.DLQ + t.Duplicates
}

// Stop stops the run (it commits and leaves the group) and closes the app.
func (r *driftlineRun) Stop() error {
	r.cancel()
	err := <-r.done
	r.done <- err // a second Stop returns the same
	r.app.Close()
	return err
}

var uniqueNames atomic.Int64

// uniqueName is prefix with a number no other call in this process gets.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixMilli(), uniqueNames.Add(1))
}

// latencySeconds is DRIFTLINE_BENCH_LATENCY_SECONDS (default 10): how long
// each latency run's steady load lasts.
func latencySeconds(tb testing.TB) time.Duration {
	v := os.Getenv("DRIFTLINE_BENCH_LATENCY_SECONDS")
	if v == "" {
		return 10 * time.Second
	}
	s, err := strconv.ParseFloat(v, 64)
	if err != nil || s <= 0 || s > 60 {
		tb.Fatalf("DRIFTLINE_BENCH_LATENCY_SECONDS=%q: want seconds in (0, 60]", v)
	}
	return time.Duration(s * float64(time.Second))
}

// batchLinger is DRIFTLINE_BENCH_LINGER (a Go duration, e.g. 2ms), when
// set: the batch.linger every side runs with instead of the spec's.
func batchLinger(tb testing.TB) (pipeline.Duration, bool) {
	v := os.Getenv("DRIFTLINE_BENCH_LINGER")
	if v == "" {
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > time.Second {
		tb.Fatalf("DRIFTLINE_BENCH_LINGER=%q: want a duration in (0, 1s]", v)
	}
	return pipeline.Duration(d), true
}

// warmBrokerJIT runs every side over the input, untimed, again and again
// for DRIFTLINE_BENCH_BROKER_WARMUP (a Go duration; unset: not at all),
// so that the broker's JIT has compiled more of its request path before
// the timed runs. Each BenchmarkEndToEnd call starts a broker of its own,
// so every round pays it again.
func warmBrokerJIT(b *testing.B, ctx context.Context, sides []e2eSide, in, labels string, rows int64) {
	v := os.Getenv("DRIFTLINE_BENCH_BROKER_WARMUP")
	if v == "" {
		return
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("DRIFTLINE_BENCH_BROKER_WARMUP=%q: want a duration > 0", v)
	}
	start, passes := time.Now(), 0
	for time.Since(start) < d {
		for _, s := range sides {
			timeSide(b, ctx, s, in, labels, rows)
		}
		passes++
	}
	b.Logf("broker warmed: %d passes of every side in %s", passes, time.Since(start).Round(time.Second))
}

// benchCompression is DRIFTLINE_BENCH_COMPRESSION ("" when unset: the
// default codec); a codec the connector does not know fails at start.
func benchCompression() string { return os.Getenv("DRIFTLINE_BENCH_COMPRESSION") }

// latencyRate is DRIFTLINE_BENCH_LATENCY_RATE: when set, the latency runs
// use that rate (events/s) for every side and the throughput runs are
// left out.
func latencyRate(tb testing.TB) float64 {
	v := os.Getenv("DRIFTLINE_BENCH_LATENCY_RATE")
	if v == "" {
		return 0
	}
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r <= 0 {
		tb.Fatalf("DRIFTLINE_BENCH_LATENCY_RATE=%q: want events/s > 0", v)
	}
	return r
}

// selectSides keeps the sides of order named in DRIFTLINE_BENCH_SIDES
// (comma-separated; unset: all).
func selectSides(tb testing.TB, sides []e2eSide, order []int) []int {
	v := os.Getenv("DRIFTLINE_BENCH_SIDES")
	if v == "" {
		return order
	}
	want := strings.Split(v, ",")
	var out []int
	for _, k := range order {
		if slices.Contains(want, sides[k].name) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		tb.Fatalf("DRIFTLINE_BENCH_SIDES=%q names no side", v)
	}
	return out
}
