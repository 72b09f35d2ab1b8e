//go:build integration

package stages

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// TestIntegrationScriptsOnCluster runs dedupe and entity aggregates, whose
// per-batch scripts are sent by scriptCall (the first key a string, the
// others pointers), on a 3-node Redis Cluster with the key prefix in a
// hash tag: each call reaches the node of its keys' slot, batches of more
// than scriptChunkRows keys take several calls (dedupe's in flight
// together), a batch seen again at the same offsets is all live and at
// other offsets all duplicates.
func TestIntegrationScriptsOnCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.Options{}, 3)
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	spec := testSpec(t, true)
	spec.Redis.KeyPrefix += "scriptcall:"
	spec.Redis.HashTag = true
	off := 0
	spec.Stages.Featurize.Entity.LocalCache = &off
	fz, err := NewFeaturize(spec, rdb)
	must(t, err)
	const n = scriptChunkRows + 88
	rows := make([][]byte, n)
	for i := range rows {
		rows[i] = row(map[string]string{"event_id": `"ev` + strconv.Itoa(i) + `"`, "user_id": `"u` + strconv.Itoa(i) + `"`})
	}
	first := newBatch(0, rows...)
	for _, st := range []pipeline.Stage{NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb), fz} {
		if err := st.Process(ctx, first); err != nil { // Defer runs at once outside a Runner
			t.Fatalf("%s: %v", st.Name(), err)
		}
	}
	for i := range n {
		if !first.OK(i) {
			t.Fatalf("row %d not live after the first batch: %v", i, first.State[i])
		}
		key := spec.Redis.Prefix() + "entity:u" + strconv.Itoa(i)
		if got, err := rdb.HGet(ctx, key, "n").Result(); err != nil || got != "1" {
			t.Fatalf("%s n = %q, %v; want 1", key, got, err)
		}
	}
	// The same events at the same offsets (a redelivery), through a fresh
	// Dedupe (whose in-process filter does not know them): Redis answers
	// that each key holds this very position, so every row lives.
	redelivered := newBatch(0, rows...)
	for _, st := range []pipeline.Stage{NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)} {
		if err := st.Process(ctx, redelivered); err != nil {
			t.Fatalf("%s: %v", st.Name(), err)
		}
	}
	for i := range n {
		if !redelivered.OK(i) {
			t.Fatalf("row %d redelivered: %v, want live", i, redelivered.State[i])
		}
	}
	// The same events at other offsets, through a fresh Dedupe: Redis
	// answers that they are duplicates.
	again := newBatch(n, rows...)
	for _, st := range []pipeline.Stage{NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)} {
		if err := st.Process(ctx, again); err != nil {
			t.Fatalf("%s: %v", st.Name(), err)
		}
	}
	for i := range n {
		if again.State[i] != pipeline.RowDuplicate {
			t.Fatalf("row %d seen again: %v, want a duplicate", i, again.State[i])
		}
	}
}
