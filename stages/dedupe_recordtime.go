package stages

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// UseRecordTime makes the stage's window follow the records' own time
// instead of Redis's clock, for a replay (internal/app's `driftline
// replay`), whose outputs must not depend on the clock: call it before
// the first Process. An id's bucket is then floor(the Kafka record's
// timestamp / TTL), so whether an event is a duplicate of an earlier one
// depends on the two records (and the partition's order), never on how
// fast the replay ran or how long it stalled between them.
//
// The record's timestamp, not the event's time field: it is what the live
// stage's Redis clock stands for (when the event reached the log, give or
// take the live pipeline's lag), so a replay drops what a live run without
// lag drops; every record has one (the time field may be absent from the
// schema or a row); and a replay's range is chosen by it. An exact repeat
// carries its original's time field, so keying on that would catch a
// repeat however late it came, which the live stage does not.
//
// The rules, per partition (rows in offset order):
//   - A row's bucket is m = floor(timestamp in ms / TTL), raised to top-1
//     when lower, where top is the highest m of the partition's rows so
//     far: a timestamp that steps back more than one bucket (a producer's
//     skewed clock, an explicit old timestamp) counts as one bucket
//     behind the newest, as it would on the live stage's clock.
//   - A row is a duplicate when an earlier row of the partition with its
//     id (at another position: a redelivery is not its own duplicate) was
//     kept in bucket m-1, m or m+1 (a timestamp may step back by one
//     bucket). So a repeat stamped within the TTL of its original is
//     always caught, one stamped two TTLs or more after it never.
//   - The buckets are per partition, <prefix>dedupe-bucket:<topic>/<partition>/<m>,
//     so that partitions replayed in any order or in parallel, or resumed
//     apart (a resumed replay re-runs each partition from its start under
//     a fresh prefix), give the same answers; an id repeated on another
//     partition is not caught (the live stage's buckets are shared).
//   - At each batch's start the buckets no later row can read (below
//     top-2 of the earlier batches) are unlinked; every call sets the
//     buckets it writes, and every bucket this stage wrote and has not
//     unlinked, to expire recordTimeExpiry(TTL) later in Redis time
//     (PEXPIRE: a bucket named after last month must still live after
//     its write). That expiry only collects the state of a replay that
//     died. Should a bucket the stage wrote be gone (a stall longer than
//     the expiry, an eviction, Redis losing data), the call fails with
//     ErrDedupeStateLost instead of answering "new": a replay run again
//     resumes after its last committed chunk and rebuilds its state.
func (d *Dedupe) UseRecordTime() {
	d.rt = &recordTime{ttlMs: d.ttl.Milliseconds(), expiry: recordTimeExpiry(d.ttl)}
	if d.recent != nil {
		// The filter's times are buckets: a hit must be within one.
		d.recent.window = 2
	}
}

// ErrDedupeStateLost is the error of a dedupe stage on record time
// (UseRecordTime) that finds a bucket it wrote gone from Redis.
var ErrDedupeStateLost = errors.New("dedupe: a bucket this replay wrote is gone from Redis (expired after a stall, evicted, or lost by Redis); run the replay again: it resumes after its last committed chunk and rebuilds its state")

// recordTimeExpiry is how long a record-time bucket lives after the last
// call that wrote or checked it, in Redis time: three TTLs (the live
// buckets' most) and at least an hour, so that a replay that waits that
// long (a broker outage it rides out, a paused process) keeps its state.
func recordTimeExpiry(ttl time.Duration) time.Duration {
	return max(3*ttl, time.Hour)
}

// recordTime is a record-time Dedupe's state for its partition.
type recordTime struct {
	ttlMs  int64
	expiry time.Duration
	// base is the bound partition's buckets' name without the number:
	// buckets (the stage's) then pos, "<topic>/<partition>/".
	base, buckets, pos string
	// top is the highest bucket of the partition's rows (valid once
	// started); batchTop is top when the batch began.
	top, batchTop int64
	started       bool
	// written are the buckets the stage wrote and has not unlinked;
	// gone those to unlink with the next call sent.
	written, gone []int64
	// liveArg and goneArg are written and gone as the script's JSON
	// arrays, for the batch; goneSent says a call of the batch took gone.
	liveArg, goneArg []byte
	goneSent         bool
}

// bind makes the state the partition's of pos ("<topic>/<partition>/"),
// starting over when it was another's.
func (r *recordTime) bind(buckets string, pos []byte) {
	if r.started && r.pos == string(pos) && r.buckets == buckets {
		return
	}
	r.buckets, r.pos = buckets, string(pos)
	r.base = buckets + r.pos
	r.started = false
	r.written, r.gone = r.written[:0], r.gone[:0]
}

// begin starts a batch: the buckets below top-2 are unlinked with the
// batch's first call (no row from now on reads them: each row's bucket is
// at least top-1), and the rest must still exist.
func (r *recordTime) begin() {
	r.batchTop = r.top
	if r.started {
		r.written = slices.DeleteFunc(r.written, func(n int64) bool {
			if n < r.top-2 {
				r.gone = append(r.gone, n)
				return true
			}
			return false
		})
	}
	r.liveArg = appendJSONInts(r.liveArg[:0], r.written)
	r.goneArg = appendJSONInts(r.goneArg[:0], r.gone)
	r.goneSent = false
}

// bucket is the bucket of a row of timestamp ts (see UseRecordTime),
// raising top.
func (r *recordTime) bucket(ts time.Time) int64 {
	ms := ts.UnixMilli()
	m := ms / r.ttlMs
	if ms%r.ttlMs < 0 {
		m-- // floor
	}
	if !r.started || m > r.top {
		r.top, r.started = m, true
	}
	return max(m, r.top-1)
}

// nextGone returns the buckets to unlink as a JSON array for the batch's
// first call sent, and none ("[]") for the others.
func (r *recordTime) nextGone() []byte {
	if r.goneSent {
		return emptyJSONArray
	}
	r.goneSent = true
	r.gone = r.gone[:0]
	return r.goneArg
}

var emptyJSONArray = []byte("[]")

// wrote records that bucket n holds an id the stage wrote.
func (r *recordTime) wrote(n int64) {
	if !slices.Contains(r.written, n) {
		r.written = append(r.written, n)
	}
}

func appendJSONInts(dst []byte, ns []int64) []byte {
	dst = append(dst, '[')
	for i, n := range ns {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, n, 10)
	}
	return append(dst, ']')
}

// sendRecordTime calls setIfNewAt on the chunk's ids: the bound
// partition's buckets, the expiry, "<topic>/<partition>/" pos, and the
// buckets that must exist (r's, for the batch) and to unlink (gone), JSON
// arrays.
func (c *dedupeChunk) sendRecordTime(ctx context.Context, rdb redis.UniversalClient, r *recordTime, pos, gone []byte) {
	c.call.script = setIfNewAt
	c.bucket[0] = r.base
	elems := c.offsets[:max(len(c.offsets)-1, 0)]
	c.array = append(append(append(c.array[:0], '['), elems...), ']')
	c.bucketsArg = appendJSONInts(c.bucketsArg[:0], c.buckets)
	a := append(c.argv[:0], r.expiry.Milliseconds(), pos, c.array, c.bucketsArg, r.liveArg, gone, c.top)
	for i := range c.ids {
		a = append(a, &c.ids[i])
	}
	c.answer, c.err = c.call.run(ctx, rdb, c.bucket[:], a...).Text()
	if c.err != nil && strings.HasPrefix(c.err.Error(), "DEDUPELOST") {
		c.err = fmt.Errorf("%w (%v)", ErrDedupeStateLost, c.err)
	}
	clear(a)
	c.argv = a[:0]
}

// setIfNewAt is the record-time dedupe script (UseRecordTime), one call
// per chunk. KEYS[1]: the partition's buckets' name without the number.
// ARGV: the expiry in ms, "<topic>/<partition>/", the offsets (a JSON
// array of strings), each id's bucket (a JSON array of numbers), the
// buckets that must exist, the buckets to unlink (JSON arrays), the
// partition's top bucket after the call's rows, then the ids. It fails
// with DEDUPELOST when a bucket that must exist does not, and sets the
// others' expiry; then, per bucket m of its ids, it reads buckets m-1, m
// and, when m is below the top (no earlier row can be in m+1 otherwise),
// m+1 (HMGET); an id is already set when one holds
// it, or an earlier id of the call in a bucket at most one away (a
// holder of this very position wins: a redelivery). Every other id is set
// in its bucket (HSET), which then expires. The answer is setIfNew's.
var setIfNewAt = redis.NewScript(`
local call, expiry, pos, base = redis.call, ARGV[1], ARGV[2], KEYS[1]
local function key(n) return base .. string.format('%.0f', n) end
local live, gone = cjson.decode(ARGV[5]), cjson.decode(ARGV[6])
for i = 1, #live do
  if call('PEXPIRE', key(live[i]), expiry) == 0 then
    return redis.error_reply('DEDUPELOST bucket ' .. key(live[i]))
  end
end
for i = 1, #gone do call('UNLINK', key(gone[i])) end
local offs, bks = cjson.decode(ARGV[3]), cjson.decode(ARGV[4])
local groups, order = {}, {}
for i = 1, #offs do
  local g = groups[bks[i]]
  if not g then
    g = {}
    groups[bks[i]] = g
    order[#order + 1] = bks[i]
  end
  g[#g + 1] = i
end
local found, top = {}, tonumber(ARGV[7])
for _, m in ipairs(order) do
  local g, ids = groups[m], {}
  for j = 1, #g do ids[j] = ARGV[7 + g[j]] end
  local ahead = 0
  if m < top then ahead = 1 end
  for d = -1, ahead do
    local vals = call('HMGET', key(m + d), unpack(ids))
    for j = 1, #g do
      local i, v = g[j], vals[j]
      if v and (not found[i] or v == pos .. offs[i]) then found[i] = v end
    end
  end
end
local out, dups, sets, setOrder, seen = {''}, 1, {}, {}, {}
for i = 1, #offs do
  local id, v, m = ARGV[7 + i], pos .. offs[i], bks[i]
  local was, s = found[i], seen[id]
  if not was and s and math.abs(s[2] - m) <= 1 then was = s[1] end
  if was then
    dups = dups + 1
    if was == v then out[dups] = -i else out[dups] = i end
  else
    seen[id] = {v, m}
    local set = sets[m]
    if not set then
      set = {}
      sets[m] = set
      setOrder[#setOrder + 1] = m
    end
    set[#set + 1] = id
    set[#set + 1] = v
  end
end
for _, m in ipairs(setOrder) do
  call('HSET', key(m), unpack(sets[m]))
  call('PEXPIRE', key(m), expiry)
end
out[1] = tostring(#offs)
return table.concat(out, ' ')
`)
