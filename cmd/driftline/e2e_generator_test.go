//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// generatorEnv, when set in a process's environment, makes this test
// binary the end-to-end benchmark's load generator instead of a test run:
// its value is a generatorJob in JSON; the process writes the stream,
// prints a generated in JSON on stdout and exits (see init below).
const generatorEnv = "DRIFTLINE_E2E_GENERATOR"

// generatorNiceDefault is the generator process's niceness unless
// DRIFTLINE_BENCH_GENERATOR_NICE says otherwise: at nice 10 the kernel
// gives it about a tenth of the CPU share of a nice-0 thread when they
// compete, so it takes little from the measured side, yet it still runs
// whenever a core is idle.
const generatorNiceDefault = 10

// generatorProcs is the generator process's GOMAXPROCS: one thread runs
// its Go code, so that it cannot take both cores at once.
const generatorProcs = 1

// generatorJob is what one generator process writes: the integration
// tests' stream of Events rows to Topic at Rate rows/s (0: as fast as
// the broker takes them), and labels to Labels ("" none).
type generatorJob struct {
	Broker string  `json:"broker"`
	Topic  string  `json:"topic"`
	Labels string  `json:"labels"`
	Events int64   `json:"events"`
	Rate   float64 `json:"rate"`
}

// generated is what a generator process reports when it is done: feed's
// counters, and the CPU time the process used (user + system).
type generated struct {
	Rows, Valid, Malformed, Duplicates, Labels, Errors int64
	CPU                                                time.Duration
}

func init() {
	v, ok := os.LookupEnv(generatorEnv)
	if !ok {
		return
	}
	if err := runGenerator(v); err != nil {
		fmt.Fprintf(os.Stderr, "e2e generator: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runGenerator is the generator process: it writes the job in spec and
// prints what it wrote.
func runGenerator(spec string) error {
	var job generatorJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		return fmt.Errorf("%s: %w", generatorEnv, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := labelledStreamConfig(job.Topic, job.Labels, job.Events, job.Rate)
	if err := cfg.Validate(); err != nil {
		return err
	}
	cl, err := kafka.NewProducer(kafka.ProducerConfig{Client: kafka.ClientConfig{Brokers: []string{job.Broker}}, Linger: 5 * time.Millisecond})
	if err != nil {
		return err
	}
	defer cl.Close()
	var stats feed.Stats
	if err := feed.Produce(ctx, cl, cfg, &stats); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	cpu, err := processCPU()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(generated{
		Rows: stats.Rows.Load(), Valid: stats.Valid.Load(), Malformed: stats.Malformed.Load(),
		Duplicates: stats.Duplicates.Load(), Labels: stats.Labels.Load(), Errors: stats.Errors.Load(),
		CPU: cpu,
	})
}

// processCPU is the CPU time (user + system) this process has used.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// labelledStreamConfig is the integration tests' stream (SEA with an
// abrupt drift halfway, 1% malformed rows, 1% duplicates) of events rows
// to topic in at rate rows/s (0: as fast as the broker takes them) and,
// when labels is set, each valid event's label to labels 300 ms after it,
// as the fault suite feeds the full spec (startChaosLoad).
func labelledStreamConfig(in, labels string, events int64, rate float64) feed.Config {
	return feed.Config{
		Topic: in, LabelsTopic: labels, Events: events, Rate: rate, MalformedRate: 0.01, DuplicateRate: 0.01,
		LabelDelay: 300 * time.Millisecond,
		Stream:     streams.Config{Concept: streams.ConceptSEA, Seed: 7, Drift: streams.Drift{Kind: streams.DriftAbrupt, Position: events / 2}},
	}
}

// generatorNice is DRIFTLINE_BENCH_GENERATOR_NICE (default
// generatorNiceDefault): the niceness the generator process runs at.
func generatorNice(tb testing.TB) int {
	v := os.Getenv("DRIFTLINE_BENCH_GENERATOR_NICE")
	if v == "" {
		return generatorNiceDefault
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 19 {
		tb.Fatalf("DRIFTLINE_BENCH_GENERATOR_NICE=%q: want a niceness in [0, 19]", v)
	}
	return n
}

// generatorPlacement says, for the benchmark's log, where the load
// generator runs.
func generatorPlacement(tb testing.TB) string {
	return fmt.Sprintf("load generator: its own process (this test binary re-run with %s), nice %d, GOMAXPROCS %d, same %d cores as the measured side (no cgroup or CPU of its own)",
		generatorEnv, generatorNice(tb), generatorProcs, runtime.NumCPU())
}

// produceLabelledStream writes labelledStreamConfig's stream to the broker
// at addr from a generator process of its own (this test binary re-run
// under `nice`, with GOMAXPROCS generatorProcs), so that the load
// generator shares neither the measured side's process (heap, scheduler,
// GOMAXPROCS) nor more of the cores than it must. It returns when the
// process has written every row and its labels, or fails tb.
func produceLabelledStream(tb testing.TB, ctx context.Context, addr, in, labels string, events int64, rate float64) generated {
	tb.Helper()
	job, err := json.Marshal(generatorJob{Broker: addr, Topic: in, Labels: labels, Events: events, Rate: rate})
	if err != nil {
		tb.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatalf("load generator: the test binary's path: %v", err)
	}
	nice, err := exec.LookPath("nice")
	if err != nil {
		tb.Fatalf("load generator: %v (the generator process runs under nice, from coreutils)", err)
	}
	cmd := exec.CommandContext(ctx, nice, "-n", strconv.Itoa(generatorNice(tb)), exe)
	cmd.Env = append(os.Environ(), generatorEnv+"="+string(job), "GOMAXPROCS="+strconv.Itoa(generatorProcs))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("load generator (%s → %s): %v\n%s", in, labels, err, stderr.Bytes())
	}
	var g generated
	if err := json.Unmarshal(stdout.Bytes(), &g); err != nil {
		tb.Fatalf("load generator: its report %q: %v\n%s", stdout.Bytes(), err, stderr.Bytes())
	}
	if g.Errors > 0 {
		tb.Fatalf("load generator: %d records failed\n%s", g.Errors, stderr.Bytes())
	}
	return g
}

// runQueueWait is how long this process's threads have waited in the OS
// run queue, runnable but not run, summed over its live threads (the
// second field of /proc/self/task/*/schedstat), or 0 where /proc has no
// schedstat. Over a latency run it says how much of the run the measured
// side waited for a CPU.
func runQueueWait() time.Duration {
	tasks, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum
}

// TestLoadGeneratorProcess runs the benchmark's load generator process
// against a kfake broker and checks that what it reports is what the
// broker holds: every row on the input topic, a label for every valid
// event on the labels topic, and its CPU time.
func TestLoadGeneratorProcess(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	broker.CreateTopic(t, "gen-in", 4)
	broker.CreateTopic(t, "gen-labels", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const events = 3000
	g := produceLabelledStream(t, ctx, broker.Addr, "gen-in", "gen-labels", events, 20000)
	if g.Rows != events || g.Valid+g.Malformed+g.Duplicates != events || g.Malformed == 0 || g.Duplicates == 0 {
		t.Fatalf("generator reported %+v, want %d rows of valid, malformed and duplicate ones", g, events)
	}
	if g.Labels != g.Valid {
		t.Fatalf("generator wrote %d labels for %d valid events", g.Labels, g.Valid)
	}
	if g.CPU <= 0 {
		t.Fatalf("generator reported no CPU time: %+v", g)
	}
	cl := broker.Client(t)
	for topic, want := range map[string]int64{"gen-in": g.Rows, "gen-labels": g.Labels} {
		var n int64
		for _, end := range endOffsets(t, ctx, cl, topic) {
			n += end
		}
		if n != want {
			t.Errorf("%s holds %d records, the generator reported %d", topic, n, want)
		}
	}
}
