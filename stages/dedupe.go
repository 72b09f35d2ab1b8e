package stages

import (
	"context"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// Dedupe drops events whose id was seen within the TTL. It keeps one Redis
// key per event id, written with SET NX GET by one script call per chunk of
// at most scriptChunkRows rows. The key's value is the event's source
// position, so an event that is redelivered after a crash (same topic,
// partition and offset) is not mistaken for its own duplicate and is
// processed again: at-least-once delivery loses nothing.
//
// A batch of more than scriptChunkRows rows is cut into even chunks whose
// calls are in flight together: a chunk is sent as soon as its keys are
// built, while the next chunk's keys are built, and the answers are read
// once the last chunk is sent (see dedupeChunk), so the batch waits about
// one round trip, not one per chunk. A chunk that repeats a key of an
// earlier chunk is sent only once the earlier ones answered, so that the
// first of the batch's rows with an id is always the one kept, as with one
// call.
//
// In front of Redis sits an exact in-process filter (stages.dedupe.
// recent_ids ids per partition loop, see recentIDs): an id whose key this
// process created a moment ago, at another offset, is a duplicate without a
// round trip, and a batch whose live rows are all such duplicates makes
// none. Every other id asks Redis as before. A Dedupe is used by one
// partition loop at a time.
type Dedupe struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	idCol  int
	seed   maphash.Seed
	key    []byte
	pos    []byte
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
}

// NewDedupe builds the stage; keys are prefix+"dedupe:"+id.
func NewDedupe(spec *pipeline.Spec, rdb redis.UniversalClient) *Dedupe {
	ds := &spec.Stages.Dedupe
	recent := pipeline.DefaultDedupeRecentIDs
	if ds.RecentIDs != nil {
		recent = *ds.RecentIDs
	}
	start := time.Now()
	return &Dedupe{
		rdb:    rdb,
		prefix: spec.Redis.Prefix() + "dedupe:",
		ttl:    ds.TTL.D(),
		idCol:  spec.FieldIndex(spec.Schema.IDField),
		seed:   maphash.MakeSeed(),
		recent: newRecentIDs(recent, ds.TTL.D()),
		now:    func() time.Duration { return time.Since(start) },
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
	// Every row of a batch comes from one topic and partition.
	topic, partition := b.Messages[0].Topic, b.Messages[0].Partition
	now := d.now() // before the SETs are sent: see recentIDs
	if d.recent != nil {
		d.recent.bind(topic, partition)
	}
	pos := sourcePosition(d.pos[:0], &pipeline.Message{Topic: topic, Partition: partition, Offset: 0})
	d.pos = pos[:len(pos)-1] // drop the placeholder offset, keep "topic/partition/"
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
			offset := b.Messages[i].Offset
			if d.recent != nil && d.recent.duplicate(h, d.key, offset, now) {
				b.MarkDuplicate(i)
				continue
			}
			if p > 0 && d.sent.has(h) {
				c.after = true
			}
			c.add(d.key, h, i, offset)
		}
		lo = hi
		if len(c.rows) == 0 {
			continue
		}
		c.finish()
		if c.after {
			d.inFlight.Wait()
		}
		if p == parts-1 {
			c.send(ctx, d.rdb, d.ttl, d.pos)
			break
		}
		for _, h := range c.hashes {
			d.sent.add(h)
		}
		d.inFlight.Add(1)
		go func() {
			defer d.inFlight.Done()
			c.send(ctx, d.rdb, d.ttl, d.pos)
		}()
	}
	d.inFlight.Wait()
	var err error
	for p := range parts {
		c := &d.chunks[p]
		if len(c.rows) == 0 {
			continue
		}
		if cerr := c.apply(b, d.recent, now); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// scriptChunkRows bounds the keys one Lua script call handles, so that
// scripts stay within the Lua stack and registry limits of every Redis
// (miniredis's embedded Lua overflows near 3,000 rows).
const scriptChunkRows = 512

// setIfNew is the dedupe stage's script, one call per chunk: for each key
// it runs SET key "<topic>/<partition>/<offset>" NX GET PX ttl. KEYS: the
// event ids' keys. ARGV: TTL in ms, "<topic>/<partition>/", the offsets
// separated by spaces. It answers one string: the number of keys set, then,
// in key order, the 1-based index of each key that was already set, negated
// when it held this very position (a redelivery), all separated by spaces:
// "512" when every key was new, "512 3 -7" when key 3 is a duplicate and
// key 7 a redelivery. One script instead of one command per event saves
// Redis and client work, and the short answer saves reading one reply per
// event (on Redis Cluster the keys must then share a slot: give key_prefix
// a {hash tag}).
var setIfNew = redis.NewScript(`
local out, n, i = {''}, 1, 0
local pos, ttl, call = ARGV[2], ARGV[1], redis.call
for off in string.gmatch(ARGV[3], '%d+') do
  i = i + 1
  local v = pos .. off
  local prev = call('SET', KEYS[i], v, 'NX', 'GET', 'PX', ttl)
  if prev then
    n = n + 1
    if prev == v then out[n] = -i else out[n] = i end
  end
end
out[1] = tostring(i)
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
