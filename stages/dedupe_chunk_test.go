package stages

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// dedupeCalls is a go-redis hook on the dedupe script's calls: it counts
// them and the most in flight at once, and can hold the first call of a
// batch (until release, or for hold).
type dedupeCalls struct {
	calls, inFlight, most atomic.Int32
	// second is closed when a call starts while another is in flight.
	second     chan struct{}
	secondOnce sync.Once
	// hold delays the first call of each armed batch.
	hold  time.Duration
	armed atomic.Bool
}

func newDedupeCalls() *dedupeCalls { return &dedupeCalls{second: make(chan struct{})} }

func (*dedupeCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (*dedupeCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *dedupeCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if cmd.Name() != "evalsha" || len(args) < 2 || args[1] != setIfNew.Hash() {
			return next(ctx, cmd)
		}
		h.calls.Add(1)
		n := h.inFlight.Add(1)
		defer h.inFlight.Add(-1)
		for m := h.most.Load(); n > m && !h.most.CompareAndSwap(m, n); m = h.most.Load() {
		}
		if n > 1 {
			h.secondOnce.Do(func() { close(h.second) })
		}
		if h.armed.CompareAndSwap(true, false) {
			select {
			case <-h.second:
			case <-time.After(h.hold):
			}
		}
		return next(ctx, cmd)
	}
}

// idsBatch is a batch of n rows at offsets base.., row i's id prefix+i
// unless repeats maps it to another row's id.
func idsBatch(prefix string, n int, base int64, repeats map[int]int) *pipeline.Batch {
	ids := make([]string, n)
	for i := range ids {
		src := i
		if r, ok := repeats[i]; ok {
			src = r
		}
		ids[i] = prefix + strconv.Itoa(src)
	}
	return batchOf(3, base, ids...)
}

// TestDedupeSplitBatchOverlaps: a batch of more than scriptChunkRows rows
// goes to Redis in two calls that are in flight together: the hook holds
// the first call until the second starts (or 5 s, which fails the test).
func TestDedupeSplitBatchOverlaps(t *testing.T) {
	spec := testSpec(t, false)
	_, rdb := startRedis(t)
	calls := newDedupeCalls()
	calls.hold = 5 * time.Second
	calls.armed.Store(true)
	rdb.AddHook(calls)
	dec, val, dd := NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)
	b := idsBatch("id", scriptChunkRows+1, 0, nil)
	start := time.Now()
	mustProcess(t, b, dec, val, dd)
	if calls.calls.Load() != 2 || calls.most.Load() != 2 {
		t.Fatalf("%d rows: %d script calls, at most %d in flight; want 2 calls in flight together (took %v)",
			scriptChunkRows+1, calls.calls.Load(), calls.most.Load(), time.Since(start))
	}
	if countDuplicates(b) != 0 {
		t.Errorf("fresh ids: %d duplicates, want 0", countDuplicates(b))
	}
	// Up to scriptChunkRows, one call.
	mustProcess(t, idsBatch("small", scriptChunkRows, 1000, nil), dec, val, dd)
	if calls.calls.Load() != 3 {
		t.Errorf("%d rows took %d calls, want 1", scriptChunkRows, calls.calls.Load()-2)
	}
}

// TestDedupeSplitBatchKeepsFirstRow: an id repeated across the two calls
// of a batch is kept at its first row and dropped at its later one even
// when the first call is slow (held 100 ms), because the call that holds
// the repeat waits for the first.
// Redelivered (same offsets), the batch keeps the same rows.
func TestDedupeSplitBatchKeepsFirstRow(t *testing.T) {
	for _, recent := range []int{0, 64} {
		t.Run("recent_ids="+strconv.Itoa(recent), func(t *testing.T) {
			spec := withRecentIDs(t, recent)
			_, rdb := startRedis(t)
			calls := newDedupeCalls()
			calls.hold = 100 * time.Millisecond
			rdb.AddHook(calls)
			dec, val, dd := NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)
			const n = 600                                       // two calls: rows 0..299 and 300..599
			repeats := map[int]int{400: 10, 590: 299, 301: 300} // 301 repeats within its call
			for _, base := range []int64{0, 0} {                // the batch, then its redelivery
				calls.armed.Store(true)
				b := idsBatch("id", n, base, repeats)
				mustProcess(t, b, dec, val, dd)
				for i := range n {
					_, later := repeats[i]
					if want := !later; b.OK(i) != want {
						t.Fatalf("offsets from %d, row %d (id %s): live %v, want %v; states %v", base, i, "id"+strconv.Itoa(i), b.OK(i), want, b.State)
					}
				}
			}
			if calls.most.Load() != 1 {
				t.Errorf("a call repeating an earlier call's id was in flight beside it (%d at once)", calls.most.Load())
			}
		})
	}
}

// TestDedupeSplitBatchRetriedAfterALostReply: a split batch one of whose
// calls ran in Redis but lost its reply fails; handled again (the same
// offsets, as the partition loop retries it), it keeps exactly the rows
// one clean run keeps, and the same ids at later offsets are duplicates.
func TestDedupeSplitBatchRetriedAfterALostReply(t *testing.T) {
	for _, recent := range []int{0, 64} {
		t.Run("recent_ids="+strconv.Itoa(recent), func(t *testing.T) {
			spec := withRecentIDs(t, recent)
			_, rdbLost := startRedis(t)
			_, rdbOnce := startRedis(t)
			hook := &lostReplies{script: setIfNew}
			rdbLost.AddHook(hook)
			dec, val := NewDecode(spec), NewValidate(spec)
			lost, once := NewDedupe(spec, rdbLost), NewDedupe(spec, rdbOnce)
			repeats := map[int]int{5: 1, 450: 3}
			hook.n.Store(1)
			b := idsBatch("id", 600, 0, repeats)
			mustProcess(t, b, dec, val)
			if err := lost.Process(context.Background(), b); err == nil {
				t.Fatal("a batch whose reply was lost: no error")
			}
			retried, clean := idsBatch("id", 600, 0, repeats), idsBatch("id", 600, 0, repeats)
			mustProcess(t, retried, dec, val, lost)
			mustProcess(t, clean, dec, val, once)
			if countDuplicates(retried) != len(repeats) {
				t.Errorf("retried batch: %d duplicates, want %d (its own rows are no duplicates)", countDuplicates(retried), len(repeats))
			}
			for i := range retried.State {
				if retried.State[i] != clean.State[i] {
					t.Fatalf("row %d: retried %v, one clean run %v", i, retried.State[i], clean.State[i])
				}
			}
			later := idsBatch("id", 600, 1000, repeats)
			mustProcess(t, later, dec, val, lost)
			if countDuplicates(later) != 600 {
				t.Errorf("the batch's ids at later offsets: %d duplicates, want 600", countDuplicates(later))
			}
		})
	}
}

// TestDedupeChunkRejectsBadAnswers: an answer that does not account for
// the chunk's keys fails the batch instead of guessing.
func TestDedupeChunkRejectsBadAnswers(t *testing.T) {
	b := batchOf(0, 0, "a", "b", "c")
	for _, answer := range []string{"", "2", "4", "3 0", "3 4", "3 2 1", "3 x", "3 1 ", "3  1", "3 --1", "-3", "3 1 1"} {
		c := dedupeChunk{keys: []string{"a", "b", "c"}, hashes: []uint64{1, 2, 3}, rows: []int{0, 1, 2}, answer: answer}
		if err := c.apply(b, nil, 0, nil); err == nil {
			t.Errorf("answer %q for 3 keys: no error", answer)
		}
	}
	b = batchOf(0, 0, "a", "b", "c")
	c := dedupeChunk{keys: []string{"a", "b", "c"}, hashes: []uint64{1, 2, 3}, rows: []int{0, 1, 2}, answer: "3 -1 3"}
	if err := c.apply(b, nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	if want := []pipeline.RowState{pipeline.RowOK, pipeline.RowOK, pipeline.RowDuplicate}; !slices.Equal(b.State, want) {
		t.Errorf("answer %q: states %v, want %v", c.answer, b.State, want)
	}
}

// TestDedupeSplitBatchRedisDown: with Redis gone, a batch of two calls
// fails with the client's error (wrapped, for the loop's outage handling)
// after both calls returned, and marks no row.
func TestDedupeSplitBatchRedisDown(t *testing.T) {
	spec := testSpec(t, false)
	r, rdb := startRedis(t)
	dec, val, dd := NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)
	b := idsBatch("id", 2*scriptChunkRows, 0, nil)
	mustProcess(t, b, dec, val)
	r.Mini.Close()
	err := dd.Process(context.Background(), b)
	if err == nil || !strings.HasPrefix(err.Error(), "dedupe: redis: ") {
		t.Fatalf("Redis down: error %v, want one starting %q", err, "dedupe: redis: ")
	}
	if countDuplicates(b) != 0 {
		t.Errorf("Redis down: %d rows marked duplicate, want none", countDuplicates(b))
	}
}
