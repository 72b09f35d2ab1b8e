package app

import (
	"fmt"
	"testing"
	"time"
)

// TestEmbeddedRedisForgetsKeyVersions: Housekeep expires miniredis's keys
// as the wall clock passes their TTLs, and miniredis then remembers
// nothing of them (it keeps a WATCH version per key ever written unless
// pruned), so that a demo writing keys per event holds flat memory.
func TestEmbeddedRedisForgetsKeyVersions(t *testing.T) {
	spec, err := DemoSpecOf("")
	if err != nil {
		t.Fatal(err)
	}
	e, err := StartEmbedded(spec, EmbeddedConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if !e.versions.ok {
		t.Fatal("miniredis's database layout changed: keyVersions cannot reach its key versions, and a long demo grows an entry per key")
	}
	const n = 1000
	for i := range n {
		k := fmt.Sprintf("dedupe:e-%d", i)
		if err := e.redis.Set(k, "x"); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			e.redis.SetTTL(k, time.Second) // expires
		} else if i%4 == 1 {
			e.redis.Del(k) // deleted
		} // else kept
	}
	// A clock step of wall time has passed.
	e.mu.Lock()
	e.clock = e.clock.Add(-redisClockStep)
	e.mu.Unlock()
	e.Housekeep()
	keys := e.redis.Keys()
	if len(keys) != n/4 {
		t.Fatalf("%d keys left, want the %d without a TTL nor deleted", len(keys), n/4)
	}
	e.redis.Lock()
	_, versions := e.versions.maps()
	left := len(versions)
	e.redis.Unlock()
	if left != n/4 {
		t.Fatalf("miniredis remembers %d key versions, want %d (the keys that exist)", left, n/4)
	}
}
