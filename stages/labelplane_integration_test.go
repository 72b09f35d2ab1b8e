//go:build integration

package stages

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationLabelPlaneCommands: on a real redis-server, a batch of
// 256 predictions and a batch of 256 labels are one script call each; the
// server runs a few dozen commands inside them, none per event (the put
// caches its rows with one MGET and one MSET), and no early-label lookup
// while nothing is parked (the put reads two values with GET: the pending
// count, and the partition's high-water mark of held labels; the label
// batch one: the parked count; the MGETs are the put's, of its rows'
// earlier entries, and the labels', of their predictions).
func TestIntegrationLabelPlaneCommands(t *testing.T) {
	r := redistest.StartRedis(t)
	rdb := r.Client(t)
	counter := &commandCounter{}
	rdb.AddHook(counter)
	spec := testSpec(t, false)
	rig := newJoinRigOn(t, spec, r, rdb)
	ctx := context.Background()
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	evs := ids("i", 256)
	c0 := counter.n.Load()
	rig.predict(t, evs...)
	rig.label(t, evs...)
	if got := counter.n.Load() - c0; got > 4 { // each script at most NOSCRIPT, then EVAL
		t.Errorf("the client sent %d commands for a batch of predictions and one of labels, want one script call each", got)
	}
	stats := commandStats(t, rdb)
	if stats["get"] > 3 { // the pending count, the held labels' high-water mark, the parked count
		t.Errorf("%d GETs with no label parked: Put looked for early labels", stats["get"])
	}
	if stats["mget"] > 2 { // the put's rows' earlier entries, the labels' predictions
		t.Errorf("%d MGETs with no label parked: Put, or the labels, looked for early labels", stats["mget"])
	}
	if got := serverCalls(t, r, rdb); got > 64 {
		t.Errorf("the server ran %d commands for 256 predictions and their labels (%v), want a few dozen, none per event", got, stats)
	}
	if c := rig.counts(); c.joined != 256 {
		t.Errorf("counts %+v, want 256 joined", c)
	}
	t.Logf("server commands for 256 predictions and 256 labels: %v", stats)
}

// commandStats is INFO commandstats: calls per command.
func commandStats(t *testing.T, rdb redis.UniversalClient) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var calls int64
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				for _, ch := range v {
					calls = 10*calls + int64(ch-'0')
				}
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = calls
	}
	return out
}

// TestIntegrationLabelPlaneOnCluster runs the batched label plane on a
// 3-node Redis Cluster with the key prefix in a hash tag (redis.hash_tag):
// every script's keys, given and built inside it, share the prefix's
// slot. Labels join, park and join on Put, predictions expire as missing,
// and log mode's marks and early-label stream work as on one server.
func TestIntegrationLabelPlaneOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.Options{}, 3)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	for _, logged := range []bool{false, true} {
		// A short label TTL: expiry is on the servers' clock, which the
		// test waits out (predictions are cached for twice the TTL).
		spec := parseTestSpec(t, false, map[string]string{"ttl: 10m": "ttl: 2s"})
		spec.Redis.KeyPrefix += map[bool]string{false: "inline", true: "log"}[logged] + ":"
		spec.Redis.HashTag = true
		m, err := NewJoinMetrics(prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		rig := &joinRig{chain: newChain(t, spec, nil), metrics: m, now: time.Now()}
		if logged {
			rig.cache = NewLoggedPredictionCache(spec, rdb, spec.Model.Version, m)
		} else {
			rig.cache = NewPredictionCache(spec, rdb, spec.Model.Version, m)
		}
		rig.cache.now = rig.clock
		rig.join = NewLabelJoin(spec, rig.cache, rig.champion)
		rig.score.Observe = rig.join.Observe
		if rig.handler, err = rig.join.Open("labels", 0); err != nil {
			t.Fatal(err)
		}
		rig.predict(t, ids("a", 100)...)
		rig.handleCounted(t, labelMsgs(append(ids("a", 50), ids("b", 20)...), labelRule))
		rig.predict(t, ids("b", 20)...)
		want := joinCounts{joined: 50, early: 20}
		if !logged {
			want.joined = 70 // the parked labels join on Put
		} else {
			ready, err := rig.cache.ReadEarlyReady(ctx, "", 100)
			if err != nil || len(ready) != 20 {
				t.Fatalf("early-label stream: %d entries, %v; want 20", len(ready), err)
			}
			joined, err := rig.join.JoinEarlyReady(ctx, ready)
			if err != nil || len(joined) != 20 {
				t.Fatalf("early joins: %d, %v; want 20", len(joined), err)
			}
			want.joined = 70
			if err := rig.cache.ReleaseJoined(ctx, append(rig.join.TakeJoined(), joined...), nil); err != nil {
				t.Fatal(err)
			}
		}
		rig.expect(t, "on the cluster", want)
		time.Sleep(2*rig.cache.ttl + 100*time.Millisecond)
		rig.now = time.Now()
		rig.predict(t, "z")
		want.missing = 50
		rig.expect(t, "expired on the cluster", want)
	}
}
