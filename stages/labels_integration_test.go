//go:build integration

package stages

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationParkedLabelsMemory measures, on a real redis-server, the
// memory that 20,000 labels with 1 KB ids for events not predicted yet
// take when ids of 1 KB are allowed and at most 5,000 are parked: Redis's
// used_memory grows by at most labels.max_parked × the per-label bound
// that LabelsSpec.MaxParked documents; the 15,000 others go to the DLQ.
func TestIntegrationParkedLabelsMemory(t *testing.T) {
	const n, idBytes, maxParked = 20_000, 1024, 5000
	spec := parseTestSpec(t, false, map[string]string{"labels: {field: label, ttl: 10m, max_pending: 1000}": "labels: {field: label, ttl: 10m, max_pending: 1000, max_id_bytes: 1024, max_parked: 5000}"})
	r := redistest.StartRedis(t)
	rdb := r.Client(t)
	ctx := context.Background()
	m, err := NewJoinMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cache := NewPredictionCache(spec, rdb, spec.Model.Version, m)
	rig := &joinRig{chain: newChain(t, spec, nil), r: r, metrics: m, cache: cache, now: time.Now()}
	rig.join = NewLabelJoin(spec, cache, rig.champion)
	sink := rig.withDLQ(t)
	before := usedMemory(t, ctx, rdb)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i) + "-" + strings.Repeat("x", idBytes-len(strconv.Itoa(i))-1)
	}
	for lo := 0; lo < n; lo += 1000 {
		rig.handle(t, labelMsgs(ids[lo:lo+1000], func(int) int { return 1 }))
	}
	grown := usedMemory(t, ctx, rdb) - before
	parked := len(parkedIndex(t, cache))
	bound := int64(maxParked * ParkedLabelBytes(spec))
	t.Logf("%d labels with %d-byte ids: %d parked, %d to the DLQ; Redis used_memory grew by %d bytes (%.0f per parked label), bound %d",
		n, idBytes, parked, len(sink.recs), grown, float64(grown)/float64(max(parked, 1)), bound)
	if parked != maxParked || len(sink.recs) != n-maxParked {
		t.Errorf("%d parked, %d to the DLQ; want %d and %d", parked, len(sink.recs), maxParked, n-maxParked)
	}
	if grown > bound {
		t.Errorf("parked labels took %d bytes of Redis memory, over the bound %d", grown, bound)
	}
}

func usedMemory(t *testing.T, ctx context.Context, rdb redis.UniversalClient) int64 {
	t.Helper()
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}
