package stages

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// commandCounter is a go-redis hook that counts the commands a client
// sends: a script call is one, a pipeline counts each of its commands.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// serverCalls is the number of commands a redis-server ran, the calls
// scripts made included (INFO commandstats), less the INFO calls; -1 on
// miniredis, which keeps no such statistics.
func serverCalls(tb testing.TB, r *redistest.Redis, rdb redis.UniversalClient) int64 {
	tb.Helper()
	if r.Mini != nil {
		return -1
	}
	var total int64
	for name, s := range redistest.CommandStats(tb, rdb) {
		if name != "info" {
			total += s.Calls
		}
	}
	return total
}

// BenchmarkLabelPlane measures the label plane's Redis work on miniredis
// (the demo's default) and on a real redis-server (on PATH, see
// scripts/setup.sh), per batch of 256 events: "put" caches a scored
// batch's predictions (PredictionCache.PutServed, the data plane's share;
// the labels that follow are joined untimed, so that the cache stays
// small), "put-early" is put when the batch's labels came first (parked,
// untimed) and the Put joins them, "join" joins a batch of 256 labels to cached predictions
// (the labels topic's Handle), "park" joins a batch of 256 labels whose
// predictions have not come (each is parked). It reports ns/label, the Redis commands the
// client sent per label (cmds/label; a script call is one) and, on
// redis-server, the commands the server ran per label, those inside
// scripts included (srv-cmds/label), and the server's CPU time per label
// (srv-cpu-ns/label, INFO cpu, 1 ms resolution per op), and the test
// process's CPU time per label (cpu-ns/label: the client, and on
// miniredis the server too). The "-kept" sides are the same with
// the marks kept until their records are committed, as driftline run
// does (LabelJoin.KeepMarksUntilCommitted), the commits trailing by two
// batches.
func BenchmarkLabelPlane(b *testing.B) {
	for _, backend := range []string{"miniredis", "redis-server"} {
		for _, side := range []string{"put", "put-early", "join", "park", "put-kept", "put-early-kept", "join-kept", "park-kept"} {
			b.Run(backend+"/"+side, func(b *testing.B) {
				var r *redistest.Redis
				if backend == "miniredis" {
					r = redistest.StartMiniredis(b)
				} else {
					r = redistest.StartRedis(b)
				}
				rdb := r.Client(b)
				counter := &commandCounter{}
				rdb.AddHook(counter)
				spec := parseTestSpec(b, false, map[string]string{"max_pending: 1000": "max_pending: 100000, max_parked: 1000000"})
				rig := newJoinRigOn(b, spec, r, rdb)
				rig.join.OnOutcome, rig.join.OnLearned = nil, nil
				var commits func()
				side, kept := strings.CutSuffix(side, "-kept")
				if kept {
					labelsC, inputC := &CommittedOffsets{}, &CommittedOffsets{}
					rig.join.KeepMarksUntilCommitted(labelsC, inputC)
					commits = func() {
						labelsC.Committed("labels", 0, rig.labelOffset-2*256)
						inputC.Committed("events", 3, rig.offset-2*256)
					}
				}
				benchLabelPlane(b, rig, r, rdb, counter, side, commits)
			})
		}
	}
}

// benchLabelPlane times side; commits, when set, reports commits before
// each timed call.
func benchLabelPlane(b *testing.B, rig *joinRig, r *redistest.Redis, rdb redis.UniversalClient, counter *commandCounter, side string, commits func()) {
	const n = 256
	ctx := context.Background()
	observe := rig.score.Observe
	var cmds, srv int64
	var cpu, client time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		evs := ids("b"+strconv.Itoa(i)+"-", n)
		msgs := labelMsgs(evs, labelRule)
		var batch *pipeline.Batch
		if side == "put-early" {
			rig.handle(b, msgs)
		}
		if side == "park" {
			// Labels before their predictions: each is parked.
		} else if side != "join" {
			rig.score.Observe = nil
			batch = rig.scored(b, evs)
			rig.score.Observe = observe
		} else {
			rig.predict(b, evs...)
		}
		if commits != nil {
			commits()
		}
		s0 := serverCalls(b, r, rdb)
		u0 := redisCPU(b, r, rdb)
		c0 := counter.n.Load()
		p0 := processCPU(b)
		b.StartTimer()
		if side != "join" && side != "park" {
			if _, err := rig.cache.PutServed(ctx, batch, Served{}); err != nil {
				b.Fatal(err)
			}
		} else if err := rig.handler.Handle(ctx, msgs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		client += processCPU(b) - p0
		cmds += counter.n.Load() - c0
		cpu += redisCPU(b, r, rdb) - u0
		srv += serverCalls(b, r, rdb) - s0 // its INFO is not counted
		if side == "put" {
			rig.handle(b, msgs)
		}
		b.StartTimer()
	}
	b.StopTimer()
	labels := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/labels, "ns/label")
	b.ReportMetric(float64(cmds)/labels, "cmds/label")
	b.ReportMetric(float64(client.Nanoseconds())/labels, "cpu-ns/label")
	if r.Mini == nil {
		b.ReportMetric(float64(srv)/labels, "srv-cmds/label")
		b.ReportMetric(float64(cpu.Nanoseconds())/labels, "srv-cpu-ns/label")
	}
}

// redisCPU is serverCPU on redis-server, 0 on miniredis.
func redisCPU(b *testing.B, r *redistest.Redis, rdb redis.UniversalClient) time.Duration {
	if r.Mini != nil {
		return 0
	}
	c, ok := rdb.(*redis.Client)
	if !ok {
		b.Fatalf("redisCPU: a %T, want a *redis.Client", rdb)
	}
	return serverCPU(b, c)
}

// scored runs the rig's chain on events with the given ids and returns the
// scored batch.
func (rig *joinRig) scored(t testing.TB, ids []string) *pipeline.Batch {
	t.Helper()
	rows := make([][]byte, len(ids))
	for i, id := range ids {
		rows[i] = row(map[string]string{"event_id": `"` + id + `"`, "f0": strconv.Itoa(i % 3)})
	}
	b := newBatch(rig.offset, rows...)
	rig.offset += int64(len(ids))
	mustProcess(t, b, rig.stages()...)
	return b
}

// BenchmarkLabelPlaneRunner runs the data plane with the label plane on
// (decode, validate, anonymize, featurize, score with the label join's
// Observe) in a pipeline.Runner over a sink that acknowledges at once,
// batches of 256 events, on miniredis and redis-server: "put" caches
// every batch's predictions, "put-early" does so when every event's label
// came first (parked before the timer starts), so that each put also
// joins and teaches 256 labels. One op is one batch through HandleAsync,
// the last batch's acknowledgement included. It reports ns/event and the
// score stage's time per batch (score-µs/batch, the runner's stage
// histogram: the batch's critical path in the score stage, the
// prediction-cache write included when it is not deferred).
func BenchmarkLabelPlaneRunner(b *testing.B) {
	for _, backend := range []string{"miniredis", "redis-server"} {
		for _, side := range []string{"put", "put-early"} {
			b.Run(backend+"/"+side, func(b *testing.B) {
				var r *redistest.Redis
				if backend == "miniredis" {
					r = redistest.StartMiniredis(b)
				} else {
					r = redistest.StartRedis(b)
				}
				rdb := r.Client(b)
				spec := parseTestSpec(b, false, map[string]string{"max_pending: 1000": "max_pending: 100000, max_parked: 1000000"})
				rig := newJoinRigOn(b, spec, r, rdb)
				rig.join.OnOutcome, rig.join.OnLearned = nil, nil
				benchLabelPlaneRunner(b, rig, side)
			})
		}
	}
}

func benchLabelPlaneRunner(b *testing.B, rig *joinRig, side string) {
	const n = 256
	reg := prometheus.NewRegistry()
	m, err := pipeline.NewMetrics(reg)
	if err != nil {
		b.Fatal(err)
	}
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Stages: rig.stages(), Sink: asyncNopSink{}, DLQTopic: "dlq", Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	batches := make([][]pipeline.Message, b.N)
	for i := range batches {
		evs := ids("r"+strconv.Itoa(i)+"-", n)
		rows := make([][]byte, n)
		for k, id := range evs {
			rows[k] = row(map[string]string{"event_id": `"` + id + `"`, "f0": strconv.Itoa((i + k) % 7)})
		}
		batches[i] = newBatch(int64(i*n), rows...).Messages
		if side == "put-early" {
			rig.handle(b, labelMsgs(evs, labelRule))
		}
	}
	var wg sync.WaitGroup
	var failed atomic.Value
	ack := func(err error) {
		if err != nil {
			failed.Store(err)
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range batches {
		wg.Add(1)
		if err := r.HandleAsync(context.Background(), batches[i], ack); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	b.ReportMetric(stageMicros(b, reg, "score"), "score-µs/batch")
}

// stageMicros is a stage's mean time per batch in µs, from the runner's
// stage histogram.
func stageMicros(tb testing.TB, reg *prometheus.Registry, stage string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "driftline_pipeline_stage_batch_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage && m.GetHistogram().GetSampleCount() > 0 {
					h := m.GetHistogram()
					return h.GetSampleSum() / float64(h.GetSampleCount()) * 1e6
				}
			}
		}
	}
	tb.Fatalf("no time for stage %s", stage)
	return 0
}
