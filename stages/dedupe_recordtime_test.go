package stages

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/redistest"
)

// recordTimeT0 is an hour's start (the unit spec's TTL is 1h) long before
// the miniredis clock of newRedisClock: a replay of old records.
var recordTimeT0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// recordTimeDedupe is a Dedupe on record time (a replay's).
func recordTimeDedupe(spec *pipeline.Spec, rdb redis.UniversalClient) *Dedupe {
	d := NewDedupe(spec, rdb)
	d.UseRecordTime()
	return d
}

// stamped is a batch of ids at offsets base.. of partition 0, the row of
// each id stamped at at(i).
func stamped(base int64, at func(i int) time.Time, ids ...string) *pipeline.Batch {
	b := batchOf(0, base, ids...)
	for i := range b.Messages {
		b.Messages[i].Timestamp = at(i)
	}
	return b
}

func at(t time.Time) func(int) time.Time { return func(int) time.Time { return t } }

// recordBucketKey is the record-time bucket of partition 0 holding time t.
func recordBucketKey(spec *pipeline.Spec, t time.Time) string {
	n := t.UnixMilli() / spec.Stages.Dedupe.TTL.D().Milliseconds()
	return spec.Redis.Prefix() + "dedupe-bucket:events/0/" + strconv.FormatInt(n, 10)
}

// TestDedupeRecordTimeOutlivesAStall: on record time, a repeat stamped a
// second after its original is dropped although Redis's clock moved past
// the window (2h 1m, a stall) between them, with the filter on or off, and
// through a fresh Dedupe; the bucket, named after last year, lives its
// expiry after each call in Redis time. On Redis's clock (the live stage)
// the same repeat passes as new.
func TestDedupeRecordTimeOutlivesAStall(t *testing.T) {
	stall := 2*time.Hour + time.Minute
	for _, recent := range []int{0, 64} {
		t.Run("recent_ids="+strconv.Itoa(recent), func(t *testing.T) {
			spec := withRecentIDs(t, recent)
			r, rdb := startRedis(t)
			clock := newRedisClock(r)
			dec, val, dd := NewDecode(spec), NewValidate(spec), recordTimeDedupe(spec, rdb)
			mustProcess(t, stamped(0, at(recordTimeT0.Add(30*time.Minute)), "a", "b"), dec, val, dd)
			key := recordBucketKey(spec, recordTimeT0)
			if got, want := r.Mini.TTL(key), recordTimeExpiry(time.Hour); got != want {
				t.Fatalf("bucket %s of last year: TTL %v, want %v after the write (keys %v)", key, got, want, r.Mini.Keys())
			}
			clock.advance(stall)
			again := stamped(2, at(recordTimeT0.Add(30*time.Minute+time.Second)), "a", "c")
			mustProcess(t, again, dec, val, dd)
			if want := []pipeline.RowState{pipeline.RowDuplicate, pipeline.RowOK}; !slices.Equal(again.State, want) {
				t.Fatalf("after a stall of %v in Redis time: states %v, want %v", stall, again.State, want)
			}
			fresh := stamped(4, at(recordTimeT0.Add(40*time.Minute)), "b", "c")
			mustProcess(t, fresh, dec, val, recordTimeDedupe(spec, rdb))
			if countDuplicates(fresh) != 2 {
				t.Fatalf("through a fresh Dedupe: states %v, want 2 duplicates", fresh.State)
			}
			if got, want := r.Mini.TTL(key), recordTimeExpiry(time.Hour); got != want {
				t.Errorf("after the stall and a call: TTL %v, want %v", got, want)
			}
		})
	}
	t.Run("redis clock", func(t *testing.T) {
		spec := withRecentIDs(t, 0)
		r, rdb := startRedis(t)
		clock := newRedisClock(r)
		dec, val, dd := NewDecode(spec), NewValidate(spec), NewDedupe(spec, rdb)
		mustProcess(t, stamped(0, at(recordTimeT0), "a"), dec, val, dd)
		clock.advance(stall)
		again := stamped(1, at(recordTimeT0.Add(time.Second)), "a")
		mustProcess(t, again, dec, val, dd)
		if !again.OK(0) {
			t.Fatal("the live stage (Redis's clock) dropped a repeat after a stall past its window: the contrast this test draws is gone")
		}
	})
}

// TestDedupeRecordTimeWindowIsTheData: within one Redis second, whether a
// row is a duplicate follows the rows' timestamps alone (1h buckets from
// T0 = bucket B): two buckets apart are both kept, one bucket apart
// either way is a duplicate, and a row stamped far behind the newest
// counts as one bucket behind it. One batch or a batch per row, filter on
// or off: the same states.
func TestDedupeRecordTimeWindowIsTheData(t *testing.T) {
	rows := []struct {
		id   string
		at   time.Duration // after T0
		want pipeline.RowState
		why  string
	}{
		{"x", 10 * time.Minute, pipeline.RowOK, "new (B)"},
		{"x", 2*time.Hour + 10*time.Minute, pipeline.RowOK, "two buckets after its first (B+2)"},
		{"y", 2*time.Hour + 50*time.Minute, pipeline.RowOK, "new (B+2)"},
		{"y", 3*time.Hour + 5*time.Minute, pipeline.RowDuplicate, "the next bucket (B+3)"},
		{"z", 3*time.Hour + 5*time.Minute, pipeline.RowOK, "new (B+3)"},
		{"z", 2*time.Hour + 55*time.Minute, pipeline.RowDuplicate, "one bucket back (B+2)"},
		{"w", 0, pipeline.RowOK, "new, stamped far behind: counts as B+2"},
		{"w", 3*time.Hour + 59*time.Minute, pipeline.RowDuplicate, "B+3, next to the B+2 it counted as"},
		{"x", 3*time.Hour + 30*time.Minute, pipeline.RowDuplicate, "B+3, next to its second row's B+2"},
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	stamp := func(i int) time.Time { return recordTimeT0.Add(rows[i].at) }
	for _, recent := range []int{0, 64} {
		for _, perRow := range []bool{false, true} {
			t.Run("recent_ids="+strconv.Itoa(recent)+"/batch_per_row="+strconv.FormatBool(perRow), func(t *testing.T) {
				spec := withRecentIDs(t, recent)
				r, rdb := startRedis(t)
				newRedisClock(r)
				dec, val, dd := NewDecode(spec), NewValidate(spec), recordTimeDedupe(spec, rdb)
				var got []pipeline.RowState
				if perRow {
					for i := range rows {
						b := stamped(int64(i), func(int) time.Time { return stamp(i) }, ids[i])
						mustProcess(t, b, dec, val, dd)
						got = append(got, b.State[0])
					}
				} else {
					b := stamped(0, stamp, ids...)
					mustProcess(t, b, dec, val, dd)
					got = b.State
				}
				for i, r := range rows {
					if got[i] != r.want {
						t.Errorf("row %d (%s at T0+%v, %s): %v, want %v", i, r.id, r.at, r.why, got[i], r.want)
					}
				}
			})
		}
	}
}

// TestDedupeRecordTimeSpansBuckets: a batch of three calls whose rows
// cross a bucket boundary (repeats within and across calls, and across
// the boundary) keeps each id's first row; redelivered at the same
// offsets through a fresh Dedupe it keeps the same rows; at later offsets
// every row is a duplicate. Then the data moves on five buckets: the
// buckets no row can read any more are unlinked.
func TestDedupeRecordTimeSpansBuckets(t *testing.T) {
	for _, recent := range []int{0, 64} {
		t.Run("recent_ids="+strconv.Itoa(recent), func(t *testing.T) {
			spec := withRecentIDs(t, recent)
			r, rdb := startRedis(t)
			newRedisClock(r)
			dec, val := NewDecode(spec), NewValidate(spec)
			const n = 2*scriptChunkRows + 100
			repeats := map[int]int{3: 1, 700: 5, n - 1: scriptChunkRows + 2, 900: 899, 650: 550}
			stamp := func(i int) time.Time { return recordTimeT0.Add(59*time.Minute + time.Duration(i)*100*time.Millisecond) }
			batch := func(base int64) *pipeline.Batch {
				b := idsBatch("ev", n, base, repeats)
				for i := range b.Messages {
					b.Messages[i].Partition, b.Messages[i].Timestamp = 0, stamp(i)
				}
				return b
			}
			dd := recordTimeDedupe(spec, rdb)
			first := batch(0)
			mustProcess(t, first, dec, val, dd)
			if got := countDuplicates(first); got != len(repeats) {
				t.Fatalf("first run: %d duplicates, want %d", got, len(repeats))
			}
			for _, k := range []string{recordBucketKey(spec, recordTimeT0), recordBucketKey(spec, recordTimeT0.Add(time.Hour))} {
				if !r.Mini.Exists(k) {
					t.Fatalf("bucket %s missing: the batch spans two buckets (keys %v)", k, r.Mini.Keys())
				}
			}
			again := batch(0)
			mustProcess(t, again, dec, val, recordTimeDedupe(spec, rdb))
			if !slices.Equal(again.State, first.State) {
				t.Fatal("redelivered: states differ from the first run's")
			}
			later := batch(n)
			mustProcess(t, later, dec, val, dd)
			if got := countDuplicates(later); got != n {
				t.Fatalf("the same ids at later offsets: %d duplicates, want %d", got, n)
			}
			for h := 2; h <= 6; h++ {
				mustProcess(t, stamped(int64(2*n+h), at(recordTimeT0.Add(time.Duration(h)*time.Hour)), "h"+strconv.Itoa(h)), dec, val, dd)
			}
			// The batch at B+6 began with the earlier batches at B+5: B+2
			// and below are unlinked, B+3 to B+6 kept.
			if keys := r.Mini.Keys(); len(keys) != 4 || !r.Mini.Exists(recordBucketKey(spec, recordTimeT0.Add(3*time.Hour))) {
				t.Errorf("buckets left: %v, want B+3 to B+6", keys)
			}
		})
	}
}

// TestDedupeRecordTimeLostStateFails: when a bucket the stage wrote is
// gone (here expired after a stall longer than its expiry), the next
// call fails instead of answering "new".
func TestDedupeRecordTimeLostStateFails(t *testing.T) {
	spec := withRecentIDs(t, 0)
	r, rdb := startRedis(t)
	clock := newRedisClock(r)
	dec, val, dd := NewDecode(spec), NewValidate(spec), recordTimeDedupe(spec, rdb)
	mustProcess(t, stamped(0, at(recordTimeT0), "a"), dec, val, dd)
	clock.advance(recordTimeExpiry(time.Hour) + time.Second)
	b := stamped(1, at(recordTimeT0.Add(time.Second)), "a")
	mustProcess(t, b, dec, val)
	if err := dd.Process(t.Context(), b); !errors.Is(err, ErrDedupeStateLost) {
		t.Fatalf("after its bucket expired: %v, want ErrDedupeStateLost", err)
	}
}

// BenchmarkDedupeRecordTime is BenchmarkDedupe's stage on a redis-server,
// on Redis's clock (the live stage) and on record time (a replay's,
// UseRecordTime: three HMGETs per call instead of two, PEXPIREs of the
// buckets it wrote) side by side, batches of 512.
func BenchmarkDedupeRecordTime(b *testing.B) {
	for _, dups := range []string{"none", "all"} {
		for _, filter := range []int{0, pipeline.DefaultDedupeRecentIDs} {
			for _, clock := range []string{"redis", "record"} {
				b.Run("dups="+dups+"/filter="+strconv.FormatBool(filter > 0)+"/clock="+clock, func(b *testing.B) {
					benchDedupe(b, redistest.StartRedis(b).Client(b), pipeline.DefaultBatchSize, dups, filter, true, clock == "record")
				})
			}
		}
	}
}
