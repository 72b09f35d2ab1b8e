package stages

import (
	"hash/maphash"
	"math"
	"time"
)

// recentIDs is the dedupe stage's in-process filter in front of Redis: the
// event ids whose Redis key this process itself created (SET NX answered
// "new"), for one topic partition, with the offset it wrote and when.
//
// Contract (exact, never a guess):
//   - It answers "duplicate" only for an id whose key this process created
//     with a different offset of the same partition less than the window
//     ago. Redis holds that very value until the key's TTL runs out (SET NX
//     never overwrites it), so Redis would answer "duplicate" too: the
//     filter produces no duplicate Redis would not. (If Redis lost the key
//     early, by eviction or a failover, Redis would miss a true duplicate;
//     the filter does not.)
//   - It never answers "new": every id it does not know, and every id it
//     knows with this very offset (a redelivery, which Redis must confirm),
//     goes to Redis as before. Skipping Redis for a duplicate skips no
//     write: SET NX GET on an existing key changes nothing.
//   - The window is the TTL less a margin (ttlMargin), measured on this
//     process's monotonic clock from before the SET was sent, so the key
//     was created after the entry's time and expires no earlier than the
//     time plus the TTL, within the clock rates' difference.
//   - Per partition: a batch of another topic or partition empties it
//     (the chains are per partition loop, so that happens only when a
//     chain is used for several partitions, e.g. in tests).
//   - Bounded: at most capacity ids, the oldest forgotten first (a ring of
//     key hashes beside the map). The map is keyed by the key's hash and
//     holds the key, which a hit must equal: two keys of one hash share a
//     slot (the later one replaces the earlier, which is then forgotten),
//     never an answer.
//
// A recentIDs is used by one goroutine at a time, as its Dedupe is.
type recentIDs struct {
	capacity  int
	window    time.Duration
	topic     string
	partition int32
	bound     bool
	seed      maphash.Seed
	// byHash maps a key's hash to the ring slot of its entry: a small
	// value keeps the map compact (it is probed twice or three times per
	// event), the entries themselves live in ring.
	byHash map[uint64]int32
	// ring holds the entries in insertion order; slot next is
	// overwritten next, evicting its entry unless its hash was
	// remembered again since (at another slot).
	ring []recentID
	next int
}

type recentID struct {
	hash   uint64
	key    string
	offset int64
	at     time.Duration // on the Dedupe's monotonic clock
}

// ttlMargin is what the filter's window leaves of the TTL: 1% of it (for
// clock rate differences and a batch's own duration), at least 1 s.
func ttlMargin(ttl time.Duration) time.Duration {
	return max(ttl/100, time.Second)
}

// newRecentIDs returns a filter of capacity ids for keys of the given TTL,
// or nil (no filter) when capacity is 0 or the TTL leaves no window.
func newRecentIDs(capacity int, ttl time.Duration) *recentIDs {
	window := ttl - ttlMargin(ttl)
	if capacity <= 0 || window <= 0 {
		return nil
	}
	if capacity > math.MaxInt32 { // ring slots are int32 in the map
		capacity = math.MaxInt32
	}
	return &recentIDs{capacity: capacity, window: window, seed: maphash.MakeSeed(), byHash: make(map[uint64]int32, capacity)}
}

// bind makes the filter the given partition's, emptying it when it held
// another's.
func (r *recentIDs) bind(topic string, partition int32) {
	if r.bound && r.topic == topic && r.partition == partition {
		return
	}
	clear(r.byHash)
	clear(r.ring)
	r.next = 0
	r.topic, r.partition, r.bound = topic, partition, true
}

// hash is key's hash for duplicate and remember.
func (r *recentIDs) hash(key []byte) uint64 { return maphash.Bytes(r.seed, key) }

// duplicate reports whether key (of hash h), seen now at offset, is
// provably a duplicate (see the type's contract). It does not allocate.
func (r *recentIDs) duplicate(h uint64, key []byte, offset int64, now time.Duration) bool {
	slot, ok := r.byHash[h]
	if !ok {
		return false
	}
	e := &r.ring[slot]
	return e.key == string(key) && e.offset != offset && now-e.at < r.window
}

// remember records that this process created key (of hash h) with
// offset, having sent the SET at time at. key is kept, not copied.
func (r *recentIDs) remember(h uint64, key string, offset int64, at time.Duration) {
	if r.ring == nil {
		r.ring = make([]recentID, r.capacity)
	}
	// The slot's entry is forgotten unless its hash was remembered again
	// since, at another slot.
	if old := &r.ring[r.next]; old.key != "" {
		if slot, ok := r.byHash[old.hash]; ok && int(slot) == r.next {
			delete(r.byHash, old.hash)
		}
	}
	r.ring[r.next] = recentID{hash: h, key: key, offset: offset, at: at}
	r.byHash[h] = int32(r.next)
	r.next++
	if r.next == r.capacity {
		r.next = 0
	}
}

// len is the number of ids remembered.
func (r *recentIDs) len() int { return len(r.byHash) }
