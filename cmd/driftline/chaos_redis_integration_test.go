//go:build integration

package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
)

// The fault suite's bounds. Detection: /readyz says "not ready" within
// detectBound of Redis going away (the probe runs every second, a hung
// call fails within twice the 2 s Redis timeout). Recovery: once Redis
// answers again, /readyz is ready and new outputs flow within
// recoverBound (the probe's second, one backoff that the probe cuts short,
// and a batch).
const (
	outageLength = 20 * time.Second
	detectBound  = 10 * time.Second
	recoverBound = 15 * time.Second
)

// redisFault is how a test takes Redis away and gives it back.
type redisFault struct {
	name      string
	take      func(t *testing.T, r *redistest.Redis)
	give      func(t *testing.T, r *redistest.Redis)
	readiness string // what /readyz says meanwhile
}

var (
	redisStopped = redisFault{name: "stopped", readiness: "redis",
		take: func(t *testing.T, r *redistest.Redis) { r.Stop(t) },
		give: func(t *testing.T, r *redistest.Redis) { r.Start(t); r.WaitReady(t) }}
	redisHung = redisFault{name: "hung (SIGSTOP)", readiness: "redis",
		take: func(t *testing.T, r *redistest.Redis) { r.Pause(t) },
		give: func(t *testing.T, r *redistest.Redis) { r.Resume(t); r.WaitReady(t) }}
)

// TestChaosRedisOutage stops redis-server (a persistent one, which comes
// back with its data, loading it first) for 20 s under a steady load with
// labels, while every plane runs (data, labels, drift alerts, the
// governance loop, the audit forwarder). driftline run must not exit;
// /readyz goes false, naming Redis but not its address; the loops pause
// and resume by themselves when Redis is back; no offset is committed past
// unprocessed work, so nothing is lost.
func TestChaosRedisOutage(t *testing.T) { chaosRedisFault(t, redisStopped) }

// TestChaosRedisHang is TestChaosRedisOutage with a Redis that hangs
// (SIGSTOP) instead of closing: its port still accepts connections and
// nothing answers, so every call must time out rather than stall.
func TestChaosRedisHang(t *testing.T) { chaosRedisFault(t, redisHung) }

func chaosRedisFault(t *testing.T, fault redisFault) {
	const events, rate = 60_000, 1500
	broker := kafkatest.SharedKafka(t)
	rds := redistest.StartRedisWith(t, redistest.Options{Persist: true})
	spec, specPath := chaosSpec(t, broker, rds, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	adm := kadm.NewClient(broker.Client(t))
	p := startChaosRun(t, specPath)
	waitUntil(t, p, time.Minute, "ready at start", p.ready)
	load := startChaosLoad(t, ctx, broker, spec, events, rate)
	waitUntil(t, p, time.Minute, "a fifth of the outputs", func() bool { return outputCount(t, ctx, adm, spec) >= events/5 })

	fault.take(t, rds)
	down := time.Now()
	detect := waitUntil(t, p, detectBound, "/readyz to say not ready", func() bool { return !p.ready() })
	code, body := p.get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, fault.readiness) || strings.Contains(body, rds.Addr) {
		t.Errorf("/readyz during the outage: %d %q; want 503 naming %s, not its address %s", code, body, fault.readiness, rds.Addr)
	}
	// An unauthenticated caller learns nothing of the internals.
	if code, body := p.get("/api/v1/models", "Authorization", "Bearer not-a-token"); code/100 != 5 || strings.Contains(body, rds.Addr) || !strings.Contains(body, `"id"`) {
		t.Errorf("/api/v1 during the outage: %d %q; want a 5xx with an error id and no address", code, body)
	}
	for time.Since(down) < outageLength {
		p.mustBeAlive(t, "the outage")
		time.Sleep(250 * time.Millisecond)
	}
	if up := p.metric("driftline_pipeline_dependency_up", `dependency="redis"`); up != 0 {
		t.Errorf("driftline_pipeline_dependency_up{dependency=redis} = %v during the outage, want 0", up)
	}
	atOutageEnd := outputCount(t, ctx, adm, spec)

	fault.give(t, rds)
	recovery := waitUntil(t, p, recoverBound, "ready with new outputs after Redis came back", func() bool {
		return p.ready() && outputCount(t, ctx, adm, spec) > atOutageEnd
	})
	retries := p.metric("driftline_pipeline_batch_retries_total", `dependency="redis"`)
	load.wait(t, 2*time.Minute)
	res := finish(t, ctx, broker, p, spec, load, false)
	t.Logf("redis %s for %s: detected in %s; recovered in %s after Redis answered (bound %s); %.0f batch retries",
		fault.name, outageLength, detect.Round(time.Millisecond), recovery.Round(time.Millisecond), recoverBound, retries)
	t.Logf("figures: lost %d, duplicated %d (predictions beyond the first per event), of %d rows (%d valid, %d malformed)",
		res.Lost, res.DuplicatePredictions, load.stats.Rows.Load(), load.stats.Valid.Load(), load.stats.Malformed.Load())
	if retries <= 0 {
		t.Errorf("driftline_pipeline_batch_retries_total = %v, want > 0: the outage should have paused and retried batches", retries)
	}
}

// TestChaosRedisAtStartup starts driftline run while Redis is down, then
// starts Redis with a dataset it takes seconds to load (answering LOADING
// meanwhile). driftline run must wait, not ready (/readyz says it is
// starting), and serve once Redis has loaded; nothing is lost.
func TestChaosRedisAtStartup(t *testing.T) {
	const events, rate = 10_000, 2000
	broker := kafkatest.SharedKafka(t)
	rds := redistest.StartRedisWith(t, redistest.Options{Persist: true, KeyLoadDelay: 100 * time.Microsecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rc := rds.Client(t)
	if err := rc.Eval(ctx, "for i=1,20000 do redis.call('SET', 'ballast:'..i, i) end return 1", nil).Err(); err != nil {
		t.Fatal(err)
	}
	spec, specPath := chaosSpec(t, broker, rds, nil)
	rds.Stop(t)

	p := startChaosRun(t, specPath)
	for start := time.Now(); time.Since(start) < 3*time.Second; time.Sleep(250 * time.Millisecond) {
		p.mustBeAlive(t, "the start without Redis")
	}
	if code, body := p.get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") || strings.Contains(body, rds.Addr) {
		t.Errorf("/readyz before Redis is up: %d %q; want 503 saying it is starting, without the address", code, body)
	}
	rds.Start(t)
	loading := false
	for {
		err := rc.Ping(ctx).Err()
		if err == nil {
			break
		}
		loading = loading || goredis.IsLoadingError(err)
		p.mustBeAlive(t, "Redis loading its dataset")
		time.Sleep(50 * time.Millisecond)
	}
	if !loading {
		t.Error("Redis never answered LOADING: the test did not exercise a start while Redis loads")
	}
	ready := waitUntil(t, p, recoverBound, "ready once Redis has loaded", p.ready)
	load := startChaosLoad(t, ctx, broker, spec, events, rate)
	load.wait(t, time.Minute)
	res := finish(t, ctx, broker, p, spec, load, false)
	t.Logf("start without Redis, then Redis loading: ready %s after Redis answered (bound %s); lost %d, duplicated %d of %d rows",
		ready.Round(time.Millisecond), recoverBound, res.Lost, res.DuplicatePredictions, load.stats.Rows.Load())
}

// TestChaosRedisWrongPasswordFailsFast: a Redis that refuses the
// pipeline's credentials is no outage to wait out; driftline run exits at
// once with an error that names Redis and the refusal.
func TestChaosRedisWrongPasswordFailsFast(t *testing.T) {
	broker := kafkatest.SharedKafka(t)
	rds := redistest.StartRedisWith(t, redistest.Options{Password: "the-right-one"})
	_, specPath := chaosSpec(t, broker, rds, nil)
	p := startChaosRun(t, specPath)
	start := time.Now()
	select {
	case <-p.exited:
		t.Logf("driftline run exited %s after it started: %v", time.Since(start).Round(time.Millisecond), p.waitErr)
	case <-time.After(15 * time.Second):
		t.Fatal("driftline run still runs 15 s after Redis refused its credentials")
	}
	b, _ := os.ReadFile(p.logPath)
	if p.waitErr == nil || !strings.Contains(string(b), "redis") || !strings.Contains(string(b), "NOAUTH") {
		t.Errorf("exit %v, log %q; want a failure naming redis and NOAUTH", p.waitErr, tail(string(b), 500))
	}
}
