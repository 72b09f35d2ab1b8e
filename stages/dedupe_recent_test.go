package stages

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
)

// fakeClock replaces d's monotonic clock with one the test moves, as
// miniredis's FastForward moves Redis's.
func fakeClock(d *Dedupe) *time.Duration {
	var now time.Duration
	d.now = func() time.Duration { return now }
	return &now
}

// withRecentIDs is the unit spec with stages.dedupe.recent_ids set.
func withRecentIDs(t testing.TB, n int) *pipeline.Spec {
	spec := testSpec(t, false)
	spec.Stages.Dedupe.RecentIDs = &n
	return spec
}

func idRow(s string) []byte { return row(map[string]string{"event_id": `"` + s + `"`}) }

// batchOf builds a batch of the given ids at offsets base.. of topic
// "events", partition p.
func batchOf(p int32, base int64, ids ...string) *pipeline.Batch {
	rows := make([][]byte, len(ids))
	for i, id := range ids {
		rows[i] = idRow(id)
	}
	b := newBatch(base, rows...)
	for i := range b.Messages {
		b.Messages[i].Partition = p
	}
	return b
}

// TestDedupeRecentIDsAgreesWithRedis is the filter's exactness contract:
// a seeded stream of batches (repeats within and across batches, several
// partitions, redeliveries of earlier batches, time passing across the TTL
// and inside its margin) gets the same row states with the filter on as
// with Redis alone, while the filter spares Redis work.
func TestDedupeRecentIDsAgreesWithRedis(t *testing.T) {
	off, on := withRecentIDs(t, 0), withRecentIDs(t, 64)
	rOff, rdbOff := startRedis(t)
	rOn, rdbOn := startRedis(t)
	dec, val := NewDecode(on), NewValidate(on)
	ddOff, ddOn := NewDedupe(off, rdbOff), NewDedupe(on, rdbOn)
	if ddOff.recent != nil || ddOn.recent == nil {
		t.Fatalf("recent_ids 0 must turn the filter off and 64 on: off %v, on %v", ddOff.recent != nil, ddOn.recent != nil)
	}
	clockOff, clockOn := fakeClock(ddOff), fakeClock(ddOn)
	redisOff, redisOn := newRedisClock(rOff), newRedisClock(rOn)
	askedOff, askedOn := countDedupeIDs(rdbOff), countDedupeIDs(rdbOn)
	ttl := on.Stages.Dedupe.TTL.D()
	rng := rand.New(rand.NewPCG(15, 1))
	next := map[int32]int64{}
	type sent struct {
		p    int32
		base int64
		ids  []string
	}
	var history []sent
	local := 0
	for n := range 400 {
		var s sent
		if len(history) > 0 && rng.IntN(10) == 0 {
			s = history[rng.IntN(len(history))] // a redelivery
		} else {
			s.p = int32(rng.IntN(3))
			s.base = next[s.p]
			s.ids = make([]string, 1+rng.IntN(12))
			for i := range s.ids {
				s.ids[i] = fmt.Sprintf("id-%d", rng.IntN(150))
			}
			next[s.p] += int64(len(s.ids))
			history = append(history, s)
		}
		switch rng.IntN(40) {
		case 0: // past twice the TTL: every id is forgotten
			step := 2*ttl + time.Second
			redisOff.advance(step)
			redisOn.advance(step)
			*clockOff += step
			*clockOn += step
		case 1: // into the margin of the keys written a moment ago
			step := ttl - ttlMargin(ttl)/2
			redisOff.advance(step)
			redisOn.advance(step)
			*clockOff += step
			*clockOn += step
		default:
			step := time.Duration(rng.IntN(1000)) * time.Millisecond
			redisOff.advance(step)
			redisOn.advance(step)
			*clockOff += step
			*clockOn += step
		}
		bOff, bOn := batchOf(s.p, s.base, s.ids...), batchOf(s.p, s.base, s.ids...)
		mustProcess(t, bOff, dec, val, ddOff)
		mustProcess(t, bOn, dec, val, ddOn)
		if !slices.Equal(bOff.State, bOn.State) {
			t.Fatalf("batch %d (partition %d, offsets from %d, ids %v): filter on %v, Redis alone %v", n, s.p, s.base, s.ids, bOn.State, bOff.State)
		}
		if ddOn.recent.len() > 64 {
			t.Fatalf("batch %d: the filter holds %d ids, more than its 64", n, ddOn.recent.len())
		}
		local += countDuplicates(bOn)
	}
	if *askedOn >= *askedOff {
		t.Errorf("the filter spared Redis no ids: %d asked with it, %d without", *askedOn, *askedOff)
	}
	if local == 0 {
		t.Error("the stream had no duplicates")
	}
}

func countDuplicates(b *pipeline.Batch) int {
	n := 0
	for _, s := range b.State {
		if s == pipeline.RowDuplicate {
			n++
		}
	}
	return n
}

// TestDedupeRecentIDsSkipsRedis: a batch whose rows are all ids this
// process wrote a moment ago is answered without any Redis command; the
// same offsets again (a redelivery) and another partition still ask Redis.
func TestDedupeRecentIDsSkipsRedis(t *testing.T) {
	spec := withRecentIDs(t, 16)
	r, rdb := startRedis(t)
	dec, val, dd := NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)
	fakeClock(dd)
	mustProcess(t, batchOf(0, 0, "a", "b", "c"), dec, val, dd)

	before := r.Mini.CommandCount()
	dup := batchOf(0, 3, "a", "b", "c")
	mustProcess(t, dup, dec, val, dd)
	if countDuplicates(dup) != 3 {
		t.Fatalf("states %v, want 3 duplicates", dup.State)
	}
	if got := r.Mini.CommandCount() - before; got != 0 {
		t.Errorf("an all-duplicate batch of remembered ids sent %d Redis commands, want 0", got)
	}

	before = r.Mini.CommandCount()
	again := batchOf(0, 0, "a", "b", "c")
	mustProcess(t, again, dec, val, dd)
	if countDuplicates(again) != 0 {
		t.Errorf("a redelivery of the same offsets: states %v, want all OK", again.State)
	}
	if r.Mini.CommandCount() == before {
		t.Error("a redelivery was answered in process; Redis must confirm it")
	}

	before = r.Mini.CommandCount()
	other := batchOf(1, 0, "a")
	mustProcess(t, other, dec, val, dd)
	if other.State[0] != pipeline.RowDuplicate {
		t.Errorf("same id, other partition: state %v, want duplicate (from Redis)", other.State[0])
	}
	if r.Mini.CommandCount() == before {
		t.Error("another partition's batch was answered by this partition's filter")
	}
	if dd.recent.len() != 0 {
		t.Errorf("after a batch of another partition with no new id the filter holds %d ids, want 0", dd.recent.len())
	}
}

// TestRecentIDsBounded: the filter never holds more than its capacity and
// forgets the oldest first, including ids remembered twice.
func TestRecentIDsBounded(t *testing.T) {
	r := newRecentIDs(4, time.Hour)
	r.bind("events", 0)
	for i := range 10 {
		k := fmt.Sprintf("k%d", i)
		r.remember(testKeyHash(k), k, int64(i), 0)
		if r.len() > 4 {
			t.Fatalf("after %d ids the filter holds %d, more than 4", i+1, r.len())
		}
	}
	for i := range 10 {
		k := []byte(fmt.Sprintf("k%d", i))
		got := r.duplicate(testKeyHash(string(k)), k, 100, time.Minute)
		if want := i >= 6; got != want {
			t.Errorf("k%d: duplicate %v, want %v (the 4 newest remembered)", i, got, want)
		}
	}
	// k9 remembered again takes a new slot; its old slot's eviction must
	// not forget it.
	k9 := []byte("k9")
	r.remember(testKeyHash(string(k9)), "k9", 50, 0)
	for i := range 3 {
		k := fmt.Sprintf("n%d", i)
		r.remember(testKeyHash(k), k, int64(i), 0)
	}
	if !r.duplicate(testKeyHash(string(k9)), k9, 100, time.Minute) {
		t.Error("k9, remembered again, was forgotten with its older slot")
	}
	if r.len() > 4 {
		t.Errorf("the filter holds %d ids, more than 4", r.len())
	}
	// The window: TTL less the margin, on the entry's time.
	if r.duplicate(testKeyHash(string(k9)), k9, 100, time.Hour-ttlMargin(time.Hour)) {
		t.Error("an id at the end of the window is still a duplicate")
	}
	// Two keys of one hash: the later replaces the earlier, and a lookup
	// of the earlier by that hash is no duplicate.
	r.remember(7, "x", 1, 0)
	r.remember(7, "y", 2, 0)
	if r.duplicate(7, []byte("x"), 100, time.Minute) || !r.duplicate(7, []byte("y"), 100, time.Minute) {
		t.Error("a hash shared by two keys answered for the wrong key")
	}
	if newRecentIDs(0, time.Hour) != nil || newRecentIDs(8, time.Second) != nil {
		t.Error("capacity 0, or a TTL with no window after the margin, must give no filter")
	}
}

func TestDedupeRecentIDsSpec(t *testing.T) {
	spec := testSpec(t, false)
	if d := NewDedupe(spec, nil); d.recent == nil || d.recent.capacity != pipeline.DefaultDedupeRecentIDs {
		t.Errorf("default filter %+v, want capacity %d", d.recent, pipeline.DefaultDedupeRecentIDs)
	}
	bad := -1
	spec.Stages.Dedupe.RecentIDs = &bad
	err := spec.Validate()
	if err == nil || !strings.Contains(err.Error(), "stages.dedupe.recent_ids") {
		t.Errorf("recent_ids -1: error %v, want one naming stages.dedupe.recent_ids", err)
	}
}

var testSeed = maphash.MakeSeed()

// testKeyHash hashes a key as Dedupe does (with a seed of the test's).
func testKeyHash(k string) uint64 { return maphash.String(testSeed, k) }

// TestRecentIndexAgreesWithMap drives the filter's hash index and a Go map
// with the same seeded puts, conditional deletes and lookups, over hashes
// drawn from a small range so that many share a home slot and probe runs
// wrap around the table's end: every lookup and the count must agree.
func TestRecentIndexAgreesWithMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2))
	var x recentIndex
	x.init(64) // 128 slots
	want := map[uint64]int32{}
	for op := range 200_000 {
		// Hashes near the top of the table's range wrap its probe runs.
		h := uint64(rng.IntN(160)) + 100
		if rng.IntN(2) == 0 {
			h |= 1 << 40 // same home slot, another hash
		}
		switch k := rng.IntN(3); {
		case k == 0 && len(want) < 64:
			slot := int32(rng.IntN(64))
			x.put(h, slot)
			want[h] = slot
		case k == 1:
			slot := int32(rng.IntN(64))
			if s, ok := want[h]; !ok || rng.IntN(4) > 0 {
				slot = s // mostly the slot h maps to, sometimes another
			}
			x.deleteIf(h, slot)
			if s, ok := want[h]; ok && s == slot {
				delete(want, h)
			}
		}
		probe := uint64(rng.IntN(160)) + 100
		if rng.IntN(2) == 0 {
			probe |= 1 << 40
		}
		got, w := x.get(probe), int32(-1)
		if s, ok := want[probe]; ok {
			w = s
		}
		if got != w || x.n != len(want) {
			t.Fatalf("op %d: get(%#x) = %d, want %d; %d entries, want %d", op, probe, got, w, x.n, len(want))
		}
	}
	for h, s := range want {
		if got := x.get(h); got != s {
			t.Fatalf("at the end get(%#x) = %d, want %d", h, got, s)
		}
	}
}
