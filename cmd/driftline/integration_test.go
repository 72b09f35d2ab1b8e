//go:build integration

package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/connectors/kafka"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/streams"
	"github.com/driftline/driftline/testkit/streams/feed"
)

// integrationSpec is the demo spec pointed at a real broker and Redis, with
// fresh topics of 4 partitions and fixed keys in the env.
func integrationSpec(t testing.TB, broker *kafkatest.Broker, redisAddr string) (*pipeline.Spec, string) {
	t.Helper()
	t.Setenv("DRIFTLINE_DEMO_HMAC_KEY", "integration-hmac-key-0123456789abcdef")
	t.Setenv("DRIFTLINE_DEMO_AES_KEY", strings.Repeat("ab", 32))
	text := strings.Replace(string(app.DemoSpec), "kafka:\n", fmt.Sprintf("kafka:\n  brokers: [%q]\n", broker.Addr), 1)
	text = strings.Replace(text, "name: demo\n", fmt.Sprintf("name: demo\nredis:\n  addr: %q\n", redisAddr), 1)
	// The demo's 5s dedupe window is shorter than a kill-and-restart: a
	// duplicate whose first copy was committed just before a kill, and
	// which is read again (its round aborted) after the restarted process's
	// group join (6 s on a loaded machine), found no mark and got a second
	// prediction. A deployment keeps hours; these tests keep 10 minutes.
	text = strings.Replace(text, "    ttl: 5s\n", "    ttl: 10m\n", 1)
	path := filepath.Join(t.TempDir(), "spec.yaml")
	writeFile(t, path, text)
	spec, err := pipeline.LoadSpec(path)
	if err != nil {
		t.Fatal(err)
	}
	if ttl := spec.Stages.Dedupe.TTL.D(); ttl != 10*time.Minute {
		t.Fatalf("stages.dedupe.ttl is %v, want the 10m set above (the demo spec changed?)", ttl)
	}
	for _, topic := range app.Topics(spec) {
		broker.CreateTopic(t, topic, 4)
	}
	return spec, path
}

func produceStream(t testing.TB, ctx context.Context, broker *kafkatest.Broker, spec *pipeline.Spec, events int64) *feed.Stats {
	t.Helper()
	var stats feed.Stats
	if err := produceStreamAt(ctx, newTestProducer(t, broker.Addr, 5*time.Millisecond), spec, events, 0, &stats); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return &stats
}

// produceStreamAt writes the integration tests' stream (SEA with an
// abrupt drift halfway, 1% malformed rows, 1% duplicates) of events rows at
// rate rows/s (0: as fast as the broker takes them) through cl.
func produceStreamAt(ctx context.Context, cl *kafka.Producer, spec *pipeline.Spec, events int64, rate float64, stats *feed.Stats) error {
	return produceStreamPaced(ctx, cl, spec, events, rate, nil, 0, stats)
}

// produceStreamPaced is produceStreamAt held at most maxAhead rows ahead
// of taken(), the rows the pipeline has dealt with (nil: unpaced), so that
// the stream is still flowing whenever the pipeline is.
func produceStreamPaced(ctx context.Context, cl *kafka.Producer, spec *pipeline.Spec, events int64, rate float64, taken func() int64, maxAhead int64, stats *feed.Stats) error {
	cfg := feed.Config{
		Topic: spec.Topics.Input, Events: events, Rate: rate, MalformedRate: 0.01, DuplicateRate: 0.01,
		Stream: streams.Config{Concept: streams.ConceptSEA, Seed: 7, Drift: streams.Drift{Kind: streams.DriftAbrupt, Position: events / 2}},
	}
	if taken != nil {
		cfg.Taken = func() (int64, int64) { return taken(), 0 }
		cfg.MaxBacklog = maxAhead
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return feed.Produce(ctx, cl, cfg, stats)
}

// produceStreamAhead writes the integration tests' stream at rate rows/s
// on its own goroutine, held at most a second's rows ahead of the outputs
// (outputsWritten, looked at every 100 ms), and returns Produce's result
// channel. A test that kills or faults the pipeline mid-stream uses it:
// however long a restart waits (for a dead member's session to expire, a
// lease, a broker), the input is still flowing once the pipeline runs, so
// every kill point is reached while rows come. Unheld, a run that found
// the whole stream written could drain it between two looks.
func produceStreamAhead(t testing.TB, ctx context.Context, broker *kafkatest.Broker, adm *kadm.Client, spec *pipeline.Spec, events int64, rate float64, stats *feed.Stats) <-chan error {
	t.Helper()
	var outputs atomic.Int64
	go func() {
		for ctx.Err() == nil {
			if n, err := outputsWritten(ctx, adm, spec, adm.ListEndOffsets); err == nil {
				outputs.Store(n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	produced := make(chan error, 1)
	pcl := newTestProducer(t, broker.Addr, 5*time.Millisecond)
	go func() { produced <- produceStreamPaced(ctx, pcl, spec, events, rate, outputs.Load, int64(rate), stats) }()
	return produced
}

// outputsWritten sums the offsets that list (adm.ListEndOffsets: every
// output record written, committed or not; adm.ListCommittedOffsets: up to
// the last stable offsets) gives for spec's predictions and DLQ topics.
func outputsWritten(ctx context.Context, adm *kadm.Client, spec *pipeline.Spec, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
	ends, err := list(ctx, spec.Topics.Predictions, spec.Topics.DLQ)
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, err
}

// TestIntegrationPipelineOnRealKafkaAndRedis sends 200,000 events with 1%
// malformed rows and 1% duplicates through the data plane on a real Apache
// Kafka broker and a real redis-server, then reads every output topic back.
func TestIntegrationPipelineOnRealKafkaAndRedis(t *testing.T) {
	const events = 200_000
	broker := kafkatest.StartKafka(t)
	rds := redistest.StartRedis(t)
	spec, _ := integrationSpec(t, broker, rds.Addr)
	spec.Topics.Labels = "" // this test is about the data plane
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stats := produceStream(t, ctx, broker, spec, events)

	rdb := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer rdb.Close()
	dp, err := app.Open(ctx, spec, app.Options{Redis: rdb, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- dp.Run(runCtx) }()
	for {
		tot := dp.Totals()
		if tot.Out+tot.DLQ+tot.Duplicates >= events {
			break
		}
		select {
		case err := <-runErr:
			t.Fatalf("pipeline stopped early: %v", err)
		case <-ctx.Done():
			t.Fatalf("timed out: %+v", dp.Totals())
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop()
	if err := <-runErr; err != nil {
		t.Fatalf("pipeline run: %v", err)
	}
	res, err := feed.ReadBack(ctx, broker.ClientConfig("readback"), spec, stats)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produced %d rows: %d valid, %d malformed, %d duplicates; read back %d predictions, %d DLQ records",
		stats.Rows.Load(), stats.Valid.Load(), stats.Malformed.Load(), stats.Duplicates.Load(), res.Predictions, res.DLQ)
	if res.Lost != 0 || res.DuplicatePredictions != 0 {
		t.Errorf("lost %d, duplicate predictions %d; want 0 and 0 (each valid, unique event exactly once)", res.Lost, res.DuplicatePredictions)
	}
	if res.Predictions != stats.Valid.Load() || res.DLQ != stats.Malformed.Load() {
		t.Errorf("predictions %d (want %d), DLQ %d (want %d)", res.Predictions, stats.Valid.Load(), res.DLQ, stats.Malformed.Load())
	}
	if res.DLQWithoutReason != 0 {
		t.Errorf("%d DLQ records lack reason, stage or source offset headers", res.DLQWithoutReason)
	}
	if res.PIILeaks != 0 {
		t.Errorf("%d output records carry plaintext PII", res.PIILeaks)
	}
	if got := dp.Totals().Duplicates; got != stats.Duplicates.Load() {
		t.Errorf("deduplicated %d, want %d", got, stats.Duplicates.Load())
	}
}

// TestIntegrationKillAndRestartLosesNothing runs `driftline run` as a real
// process, kills it with SIGKILL mid-stream, restarts it, stops the second
// run gracefully with SIGTERM mid-stream, and lets a third run finish: every
// event must have its output (at-least-once: the kill may repeat some).
func TestIntegrationKillAndRestartLosesNothing(t *testing.T) {
	const events = 100_000
	broker := kafkatest.StartKafka(t)
	rds := redistest.StartRedis(t)
	spec, specPath := integrationSpec(t, broker, rds.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := buildDriftline(t)
	adm := kadm.NewClient(broker.Client(t))
	// The stream is written at a steady rate while the runs are killed, so
	// that a round is in flight at every kill point.
	stats := &feed.Stats{}
	produced := produceStreamAhead(t, ctx, broker, adm, spec, events, 8000, stats)
	outputs := func() int64 { return outputCount(t, ctx, adm, spec) }

	p1 := startRun(t, bin, specPath, "run1")
	waitFor(t, ctx, "30% of the outputs", func() bool { return outputs() >= events*3/10 })
	if err := p1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p1.Wait()
	killedAt := outputs()

	p2 := startRun(t, bin, specPath, "run2")
	waitFor(t, ctx, "60% of the outputs", func() bool { return outputs() >= events*6/10 })
	if err := p2.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p2.Wait(); err != nil {
		t.Fatalf("run2 did not exit cleanly on SIGTERM: %v", err)
	}

	p3 := startRun(t, bin, specPath, "run3")
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	waitFor(t, ctx, "the group to commit the whole input", func() bool { return committedAll(ctx, adm, spec) })
	if err := p3.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p3.Wait(); err != nil {
		t.Fatalf("run3 did not exit cleanly on SIGTERM: %v", err)
	}
	res, err := feed.ReadBack(ctx, broker.ClientConfig("readback"), spec, stats)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed at %d outputs; read back %d predictions (%d repeated after the kill), %d DLQ records", killedAt, res.Predictions, res.DuplicatePredictions, res.DLQ)
	if res.Lost != 0 {
		t.Fatalf("%d events lost across a kill and a restart", res.Lost)
	}
	if res.PIILeaks != 0 {
		t.Fatalf("%d output records carry plaintext PII", res.PIILeaks)
	}
}

// TestIntegrationExactlyOnceKillAndRestart is the kill-and-restart test
// with kafka.exactly_once: true. A SIGKILL leaves a transaction open; the
// restarted process (same host, so the same transactional id) aborts it.
// Read back with read-committed isolation, every valid unique event has
// exactly one prediction and every malformed row exactly one DLQ record:
// no repeats, where the at-least-once test allows them.
func TestIntegrationExactlyOnceKillAndRestart(t *testing.T) {
	const events = 100_000
	broker := kafkatest.StartKafka(t)
	rds := redistest.StartRedis(t)
	spec, specPath := integrationSpec(t, broker, rds.Addr)
	text, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, specPath, strings.Replace(string(text), "kafka:\n", "kafka:\n  exactly_once: true\n", 1))
	if spec, err = pipeline.LoadSpec(specPath); err != nil {
		t.Fatal(err)
	}
	if !spec.Kafka.ExactlyOnce {
		t.Fatal("the spec is not exactly-once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := buildDriftline(t)
	adm := kadm.NewClient(broker.Client(t))
	stats := &feed.Stats{}
	// The stream is written at a steady rate while the runs are killed, so
	// that a round (and its transaction) is open at every kill point.
	produced := produceStreamAhead(t, ctx, broker, adm, spec, events, 8000, stats)
	streamDone := func() bool { return stats.Rows.Load() == events }

	// Each kill lands while a transaction holds written outputs, so that
	// the restart has an open transaction to abort.
	p1 := startRun(t, bin, specPath, "run1")
	killedAt := killWhileATransactionIsOpen(t, ctx, adm, spec, p1, events*3/10, streamDone)
	p2 := startRun(t, bin, specPath, "run2")
	killWhileATransactionIsOpen(t, ctx, adm, spec, p2, events*6/10, streamDone)

	p3 := startRun(t, bin, specPath, "run3")
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	waitFor(t, ctx, "the group to commit the whole input", func() bool { return committedAll(ctx, adm, spec) })
	if err := p3.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p3.Wait(); err != nil {
		t.Fatalf("run3 did not exit cleanly on SIGTERM: %v", err)
	}
	res, err := feed.ReadBackCommitted(ctx, broker.ClientConfig("readback"), spec, stats)
	if err != nil {
		t.Fatal(err)
	}
	all, err := feed.ReadBack(ctx, broker.ClientConfig("readback"), spec, stats)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("produced %d rows: %d valid, %d malformed, %d duplicates; killed twice (first at %d outputs written)",
		stats.Rows.Load(), stats.Valid.Load(), stats.Malformed.Load(), stats.Duplicates.Load(), killedAt)
	t.Logf("read committed: %d predictions, %d DLQ records; read uncommitted: %d predictions (%d repeated, from aborted transactions), %d DLQ records",
		res.Predictions, res.DLQ, all.Predictions, all.DuplicatePredictions, all.DLQ)
	if res.Lost != 0 || res.DuplicatePredictions != 0 || res.DuplicateDLQ != 0 {
		t.Errorf("lost %d, repeated predictions %d, repeated DLQ records %d; want 0, 0 and 0", res.Lost, res.DuplicatePredictions, res.DuplicateDLQ)
	}
	if res.Predictions != stats.Valid.Load() || res.DLQ != stats.Malformed.Load() {
		t.Errorf("predictions %d (want %d, one per valid unique event), DLQ %d (want %d, one per malformed row)", res.Predictions, stats.Valid.Load(), res.DLQ, stats.Malformed.Load())
	}
	if res.DLQWithoutReason != 0 || res.PIILeaks != 0 {
		t.Errorf("%d DLQ records without reason headers, %d records with plaintext PII", res.DLQWithoutReason, res.PIILeaks)
	}
}

// killWhileATransactionIsOpen waits until spec's outputs hold atLeast
// records (written, committed or not), then SIGKILLs p at a moment when
// a transaction holds written outputs (the outputs' high watermarks are
// past their last stable offsets), and returns the outputs written then.
// Looking and then killing a running process races its round's commit: a
// fast machine can run a whole stream through with no look landing inside
// a transaction. So it freezes p (SIGSTOP), lets the requests p had sent
// land (settle), and looks: a frozen process neither ends a transaction
// nor begins one, so an open transaction it sees is the one the kill
// leaves. If none is open, p runs on (SIGCONT) for a random 1-19 ms, no
// longer than a round, so that the looks fall all over the rounds rather
// than in step with them, and it looks again. It fails once the stream is
// all written (streamDone) and the group has committed the whole input,
// for then no transaction will open again.
func killWhileATransactionIsOpen(t *testing.T, ctx context.Context, adm *kadm.Client, spec *pipeline.Spec, p *exec.Cmd, atLeast int64, streamDone func() bool) int64 {
	t.Helper()
	const settle = 100 * time.Millisecond
	waitFor(t, ctx, fmt.Sprintf("%d outputs", atLeast), func() bool { return outputCount(t, ctx, adm, spec) >= atLeast })
	for looks := 1; ; looks++ {
		if err := p.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(settle)
		stable, err := outputsWritten(ctx, adm, spec, adm.ListCommittedOffsets)
		if err != nil {
			t.Fatalf("list the outputs' last stable offsets: %v", err)
		}
		if written := outputCount(t, ctx, adm, spec); written > stable {
			if err := p.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = p.Wait()
			t.Logf("killed with %d outputs written, %d of them committed (look %d)", written, stable, looks)
			return written
		}
		if err := p.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if streamDone() && committedAll(ctx, adm, spec) {
			t.Fatalf("the whole stream was committed with no transaction open at any of %d looks past %d outputs", looks, atLeast)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out looking for an open transaction past %d outputs (%d looks)", atLeast, looks)
		case <-time.After(time.Duration(1+rand.IntN(19)) * time.Millisecond):
		}
	}
}

func buildDriftline(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "driftline")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startRun(t *testing.T, bin, specPath, name string) *exec.Cmd {
	t.Helper()
	return startProcess(t, bin, []string{"run", "--spec", specPath, "--admin", "127.0.0.1:0"}, name)
}

// startProcess starts bin with args, its output in a log file that the
// test prints when it fails; the process is killed at cleanup.
func startProcess(t *testing.T, bin string, args []string, name string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log:\n%s", name, tail(string(b), 3000))
			}
		}
	})
	return cmd
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// committedAll reports whether the spec's consumer group has committed
// every partition of the input topic up to its end.
func committedAll(ctx context.Context, adm *kadm.Client, spec *pipeline.Spec) bool {
	committed, err := adm.FetchOffsets(ctx, spec.Kafka.Group)
	if err != nil || committed.Error() != nil {
		return false
	}
	ends, err := adm.ListEndOffsets(ctx, spec.Topics.Input)
	if err != nil {
		return false
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(o.Topic, o.Partition)
		if !ok || c.At < o.Offset {
			done = false
		}
	})
	return done
}
