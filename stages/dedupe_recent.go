package stages

import (
	"math"
	"time"
)

// recentIDs is the dedupe stage's in-process filter in front of Redis: the
// event ids this process itself wrote to Redis (setIfNew answered "new"),
// for one topic partition, with the offset it wrote and when.
//
// Contract (exact, never a guess):
//   - It answers "duplicate" only for an id this process wrote with a
//     different offset of the same partition less than the window ago.
//     Redis holds that very value for at least the TTL (its bucket is read
//     until the next bucket ends, and setIfNew never overwrites an id it
//     finds), so Redis would answer "duplicate" too: the filter produces
//     no duplicate Redis would not. (If Redis lost the bucket early, by
//     eviction or a failover, Redis would miss a true duplicate; the
//     filter does not.)
//   - It never answers "new": every id it does not know, and every id it
//     knows with this very offset (a redelivery, which Redis must confirm),
//     goes to Redis as before. Skipping Redis for a duplicate skips no
//     write: setIfNew writes no id it finds.
//   - The window is the TTL less a margin (ttlMargin), measured on this
//     process's monotonic clock from before the call was sent, so the id
//     was written after the entry's time and is remembered until at least
//     the time plus the TTL, within the clock rates' difference. On record
//     time (Dedupe.UseRecordTime) the times are the rows' buckets and the
//     window is 2: a hit is at most one bucket away, as in setIfNewAt.
//   - Per partition: a batch of another topic or partition empties it
//     (the chains are per partition loop, so that happens only when a
//     chain is used for several partitions, e.g. in tests).
//   - Bounded: at most capacity ids, the oldest forgotten first (a ring of
//     entries beside an index of their key hashes). The index is keyed by
//     the key's hash and points at the entry, whose key a hit must equal:
//     two keys of one hash share an index slot (the later one replaces the
//     earlier, which is then forgotten), never an answer.
//
// A recentIDs is used by one goroutine at a time, as its Dedupe is.
type recentIDs struct {
	capacity  int
	window    time.Duration
	topic     string
	partition int32
	bound     bool
	// index maps a key's hash to the ring slot of its entry: open
	// addressing with linear probing, at most half full, whose slots hold
	// the hash beside the ring slot so that a probe reads no entry. It is
	// probed two or three times per event.
	index recentIndex
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
	if capacity > math.MaxInt32-1 { // ring slots are int32s (+1) in the index
		capacity = math.MaxInt32 - 1
	}
	return &recentIDs{capacity: capacity, window: window}
}

// bind makes the filter the given partition's, emptying it when it held
// another's.
func (r *recentIDs) bind(topic string, partition int32) {
	if r.bound && r.topic == topic && r.partition == partition {
		return
	}
	r.index.clear()
	clear(r.ring)
	r.next = 0
	r.topic, r.partition, r.bound = topic, partition, true
}

// duplicate reports whether key (of hash h), seen now at offset, is
// provably a duplicate (see the type's contract). It does not allocate.
func (r *recentIDs) duplicate(h uint64, key []byte, offset int64, now time.Duration) bool {
	slot := r.index.get(h)
	if slot < 0 {
		return false
	}
	e := &r.ring[slot]
	// On Redis's clock now >= e.at; on record time (buckets) a row's may
	// be one bucket behind an earlier row's.
	age := now - e.at
	return e.key == string(key) && e.offset != offset && age < r.window && -age < r.window
}

// remember records that this process created key (of hash h) with
// offset, having sent the SET at time at. key is kept, not copied.
func (r *recentIDs) remember(h uint64, key string, offset int64, at time.Duration) {
	if r.ring == nil {
		r.ring = make([]recentID, r.capacity)
		r.index.init(r.capacity)
	}
	// The slot's entry is forgotten unless its hash was remembered again
	// since, at another slot.
	if old := &r.ring[r.next]; old.key != "" {
		r.index.deleteIf(old.hash, int32(r.next))
	}
	r.ring[r.next] = recentID{hash: h, key: key, offset: offset, at: at}
	r.index.put(h, int32(r.next))
	r.next++
	if r.next == r.capacity {
		r.next = 0
	}
}

// len is the number of ids remembered.
func (r *recentIDs) len() int { return r.index.n }

// recentIndex maps 64-bit hashes to ring slots: open addressing with
// linear probing and backward-shift deletion (no tombstones), sized to at
// most half full.
type recentIndex struct {
	slots []indexSlot
	mask  uint64
	n     int
}

// indexSlot is one hash's ring slot, stored +1 so that 0 marks it free.
type indexSlot struct {
	hash uint64
	ring int32
}

// init sizes the index for up to capacity hashes.
func (x *recentIndex) init(capacity int) {
	size := 16
	for size < 2*capacity {
		size <<= 1
	}
	x.slots, x.mask, x.n = make([]indexSlot, size), uint64(size-1), 0
}

func (x *recentIndex) clear() {
	clear(x.slots)
	x.n = 0
}

// find returns h's slot index, or the free slot where it would go.
func (x *recentIndex) find(h uint64) (i uint64, found bool) {
	for i = h & x.mask; x.slots[i].ring != 0; i = (i + 1) & x.mask {
		if x.slots[i].hash == h {
			return i, true
		}
	}
	return i, false
}

// get returns h's ring slot, or -1.
func (x *recentIndex) get(h uint64) int32 {
	if x.n == 0 {
		return -1
	}
	i, ok := x.find(h)
	if !ok {
		return -1
	}
	return x.slots[i].ring - 1
}

// put maps h to ring slot slot, replacing h's earlier slot.
func (x *recentIndex) put(h uint64, slot int32) {
	i, ok := x.find(h)
	if !ok {
		x.n++
	}
	x.slots[i] = indexSlot{hash: h, ring: slot + 1}
}

// deleteIf removes h when it maps to ring slot slot.
func (x *recentIndex) deleteIf(h uint64, slot int32) {
	i, ok := x.find(h)
	if !ok || x.slots[i].ring != slot+1 {
		return
	}
	x.n--
	// Backward shift: move each later slot of the probe run whose home is
	// not between the hole and itself into the hole.
	for j := i; ; {
		j = (j + 1) & x.mask
		if x.slots[j].ring == 0 {
			x.slots[i] = indexSlot{}
			return
		}
		home := x.slots[j].hash & x.mask
		if (j-home)&x.mask >= (j-i)&x.mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
}
