package stages

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// Dedupe drops events whose id was seen within the TTL. It remembers ids
// as fields of time-bucketed Redis hashes, <prefix>dedupe-bucket:<n> with
// n = floor(Redis TIME / TTL): one script call per chunk of at most
// scriptChunkRows rows reads the chunk's ids from bucket n and n-1 (HMGET)
// and writes the new ones to bucket n (HSET), and unlinks bucket n-2. An
// id is so remembered for at least the TTL and at most twice it,
// and an id seen at the end of bucket n and again early in n+1 is still
// caught. A field's value is the event's source position, so an event that
// is redelivered after a crash (same topic, partition and offset) is not
// mistaken for its own duplicate and is processed again: at-least-once
// delivery loses nothing.
//
// Instances from before the buckets kept one key per id
// (<prefix>dedupe:<id>) and do not read the buckets: during a rolling
// upgrade, an id seen by an old instance and again by a new one (or the
// other way round) within the TTL is not caught.
//
// A batch of more than scriptChunkRows rows is cut into even chunks whose
// calls are in flight together: a chunk is sent as soon as its ids are
// gathered, while the next chunk's are, and the answers are read once the
// last chunk is sent (see dedupeChunk), so the batch waits about one round
// trip, not one per chunk. A chunk that repeats an id of an earlier chunk
// is sent only once the earlier ones answered, so that the first of the
// batch's rows with an id is always the one kept, as with one call.
//
// In front of Redis sits an exact in-process filter (stages.dedupe.
// recent_ids ids per partition loop, see recentIDs): an id this process
// wrote to Redis a moment ago, at another offset, is a duplicate without a
// round trip, and a batch whose live rows are all such duplicates makes
// none. Every other id asks Redis as before. A Dedupe is used by one
// partition loop at a time.
//
// A replay's Dedupe keeps its window on the records' time instead of
// Redis's clock: see UseRecordTime.
type Dedupe struct {
	rdb redis.UniversalClient
	// prefix+id is an id's name in process (the filter and the batch's
	// hash set); an id's field in Redis is the id alone, in the hashes
	// buckets+"<n>".
	prefix  string
	buckets string
	ttl     time.Duration
	idCol   int
	seed    maphash.Seed
	key     []byte
	pos     []byte
	// chunks are the batch's script calls, reused from batch to batch;
	// sent holds the hashes of the keys of the chunks already sent, and
	// inFlight counts the calls sent on their own goroutines.
	chunks   []dedupeChunk
	sent     hashSet
	inFlight sync.WaitGroup
	// recent is the in-process filter; nil when off.
	recent *recentIDs
	// now reads the monotonic clock the filter's times are on.
	now func() time.Duration
	// rt is the record-time state (UseRecordTime); nil on Redis's clock.
	rt *recordTime
}

// NewDedupe builds the stage; its hashes are prefix+"dedupe-bucket:"+n
// (never a name an id's key of an older instance, prefix+"dedupe:"+id,
// can take).
func NewDedupe(spec *pipeline.Spec, rdb redis.UniversalClient) *Dedupe {
	ds := &spec.Stages.Dedupe
	recent := pipeline.DefaultDedupeRecentIDs
	if ds.RecentIDs != nil {
		recent = *ds.RecentIDs
	}
	start := time.Now()
	return &Dedupe{
		rdb:     rdb,
		prefix:  spec.Redis.Prefix() + "dedupe:",
		buckets: spec.Redis.Prefix() + "dedupe-bucket:",
		ttl:     ds.TTL.D(),
		idCol:   spec.FieldIndex(spec.Schema.IDField),
		seed:    maphash.MakeSeed(),
		recent:  newRecentIDs(recent, ds.TTL.D()),
		now:     func() time.Duration { return time.Since(start) },
	}
}

// Name implements pipeline.Stage.
func (d *Dedupe) Name() string { return "dedupe" }

// Process implements pipeline.Stage.
func (d *Dedupe) Process(ctx context.Context, b *pipeline.Batch) error {
	n := b.Len()
	if n == 0 {
		return nil
	}
	if d.ttl < time.Millisecond {
		// The buckets are TTL-long in ms (as PX took whole ms before them).
		return fmt.Errorf("dedupe: stages.dedupe.ttl %v is under 1ms", d.ttl)
	}
	// Every row of a batch comes from one topic and partition.
	topic, partition := b.Messages[0].Topic, b.Messages[0].Partition
	now := d.now() // before the SETs are sent: see recentIDs
	if d.recent != nil {
		d.recent.bind(topic, partition)
	}
	pos := sourcePosition(d.pos[:0], &pipeline.Message{Topic: topic, Partition: partition, Offset: 0})
	d.pos = pos[:len(pos)-1] // drop the placeholder offset, keep "topic/partition/"
	if d.rt != nil {
		d.rt.bind(d.buckets, d.pos)
		d.rt.begin()
	}
	parts := (n + scriptChunkRows - 1) / scriptChunkRows
	for len(d.chunks) < parts {
		d.chunks = append(d.chunks, dedupeChunk{call: scriptCall{script: setIfNew}})
	}
	if parts > 1 {
		d.sent.reset(n)
	}
	lo := 0
	for p := range parts {
		hi := n * (p + 1) / parts
		c := &d.chunks[p]
		c.reset()
		for i := lo; i < hi; i++ {
			if !b.OK(i) {
				continue
			}
			d.key = appendEventID(append(d.key[:0], d.prefix...), b, d.idCol, i)
			h := maphash.Bytes(d.seed, d.key)
			offset, at := b.Messages[i].Offset, now
			if d.rt != nil {
				at = time.Duration(d.rt.bucket(b.Messages[i].Timestamp))
			}
			if d.recent != nil && d.recent.duplicate(h, d.key, offset, at) {
				b.MarkDuplicate(i)
				continue
			}
			if p > 0 && d.sent.has(h) {
				c.after = true
			}
			c.add(d.key, h, i, offset)
			if d.rt != nil {
				c.buckets = append(c.buckets, int64(at))
			}
		}
		lo = hi
		if len(c.rows) == 0 {
			continue
		}
		if d.rt != nil {
			c.top = d.rt.top
		}
		c.finish(len(d.prefix))
		if c.after {
			d.inFlight.Wait()
		}
		var gone []byte
		if d.rt != nil {
			gone = d.rt.nextGone()
		}
		if p == parts-1 {
			d.sendChunk(ctx, c, gone)
			break
		}
		for _, h := range c.hashes {
			d.sent.add(h)
		}
		d.inFlight.Add(1)
		go func() {
			defer d.inFlight.Done()
			d.sendChunk(ctx, c, gone)
		}()
	}
	d.inFlight.Wait()
	var err error
	for p := range parts {
		c := &d.chunks[p]
		if len(c.rows) == 0 {
			continue
		}
		if cerr := c.apply(b, d.recent, now, d.rt); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// sendChunk calls chunk c's script: setIfNew on Redis's clock, setIfNewAt
// on record time (gone: the buckets it unlinks).
func (d *Dedupe) sendChunk(ctx context.Context, c *dedupeChunk, gone []byte) {
	if d.rt == nil {
		c.send(ctx, d.rdb, d.buckets, d.ttl, d.pos)
		return
	}
	c.sendRecordTime(ctx, d.rdb, d.rt, d.pos, gone)
}

// scriptChunkRows bounds the keys one Lua script call handles, so that
// scripts stay within the Lua stack and registry limits of every Redis
// (miniredis's embedded Lua overflows near 3,000 rows).
const scriptChunkRows = 512

// setIfNew is the dedupe stage's script, one call per chunk. KEYS[1]: the
// buckets' name without the number (with the key prefix's hash tag, every
// bucket is in its slot). ARGV: TTL in ms, "<topic>/<partition>/", the
// offsets as a JSON array of strings (one cjson.decode per call: on
// miniredis, a string.gmatch per id cost more), then the ids. With bucket
// n = floor(TIME in ms / TTL), an id is already set when bucket n or n-1 holds it as a field
// (or an earlier id of the call is the same); every other id is set in
// bucket n to "<topic>/<partition>/<offset>" (one HSET). Bucket n-2, which
// nothing reads any more, is removed with UNLINK, which frees a large hash
// off Redis's main thread (an expiring or deleted hash of 2M fields blocked
// redis-server 7.0 for 1.4-2 s; UNLINK, 1 ms); bucket n also expires when
// bucket n+3 begins (PEXPIREAT), should no call come to unlink it. It
// answers one string: the number of ids, then, in id order, the 1-based
// index of each id that was already set, negated when it held this very
// position (a redelivery), all separated by spaces: "512" when every id
// was new, "512 3 -7" when id 3 is a duplicate and id 7 a redelivery. One
// script instead of commands per event saves Redis and client work, and
// the short answer saves reading one reply per event.
var setIfNew = redis.NewScript(`
local call, ttl, pos = redis.call, tonumber(ARGV[1]), ARGV[2]
local t = call('TIME')
local n = math.floor((t[1] * 1000 + math.floor(t[2] / 1000)) / ttl)
local cur = KEYS[1] .. string.format('%.0f', n)
local inCur = call('HMGET', cur, unpack(ARGV, 4))
local inPrev = call('HMGET', KEYS[1] .. string.format('%.0f', n - 1), unpack(ARGV, 4))
local offs = cjson.decode(ARGV[3])
local out, dups, set, seen = {''}, 1, {}, {}
for i = 1, #offs do
  local id, v = ARGV[3 + i], pos .. offs[i]
  local was = inCur[i] or inPrev[i] or seen[id]
  if was then
    dups = dups + 1
    if was == v then out[dups] = -i else out[dups] = i end
  else
    seen[id] = v
    set[#set + 1] = id
    set[#set + 1] = v
  end
end
if #set > 0 then
  call('HSET', cur, unpack(set))
  call('PEXPIREAT', cur, string.format('%.0f', (n + 3) * ttl))
end
call('UNLINK', KEYS[1] .. string.format('%.0f', n - 2))
out[1] = tostring(#offs)
return table.concat(out, ' ')
`)

// sourcePosition appends "topic/partition/offset".
func sourcePosition(dst []byte, m *pipeline.Message) []byte {
	dst = append(dst, m.Topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(m.Partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, m.Offset, 10)
}
