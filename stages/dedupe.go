package stages

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// Dedupe drops events whose id was seen within the TTL. It keeps one Redis
// key per event id, written with SET NX GET in one pipelined round trip per
// batch. The key's value is the event's source position, so an event that
// is redelivered after a crash (same topic, partition and offset) is not
// mistaken for its own duplicate and is processed again: at-least-once
// delivery loses nothing.
//
// In front of Redis sits an exact in-process filter (stages.dedupe.
// recent_ids ids per partition loop, see recentIDs): an id whose key this
// process created a moment ago, at another offset, is a duplicate without a
// round trip, and a batch whose live rows are all such duplicates makes
// none. Every other id asks Redis as before. A Dedupe is used by one
// partition loop at a time.
type Dedupe struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	idCol   int
	rows    []int
	key     []byte
	offsets []byte
	pos     []byte
	own     []byte
	res     []string
	// keyBytes holds the batch's keys, converted to one string whose
	// substrings keys holds; setIfNew sends them.
	keyBytes []byte
	keyEnds  []int
	keys     []string
	setIfNew scriptCall
	// recent is the in-process filter; nil when off. hashes holds its
	// hash of each key sent to Redis.
	recent *recentIDs
	hashes []uint64
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
		rdb:      rdb,
		prefix:   spec.Redis.Prefix() + "dedupe:",
		ttl:      ds.TTL.D(),
		idCol:    spec.FieldIndex(spec.Schema.IDField),
		recent:   newRecentIDs(recent, ds.TTL.D()),
		setIfNew: scriptCall{script: setIfNew},
		now:      func() time.Duration { return time.Since(start) },
	}
}

// Name implements pipeline.Stage.
func (d *Dedupe) Name() string { return "dedupe" }

// Process implements pipeline.Stage.
func (d *Dedupe) Process(ctx context.Context, b *pipeline.Batch) error {
	d.rows, d.hashes = d.rows[:0], d.hashes[:0]
	if b.Len() == 0 {
		return nil
	}
	// Every row of a batch comes from one topic and partition.
	topic, partition := b.Messages[0].Topic, b.Messages[0].Partition
	now := d.now() // before the SETs are sent: see recentIDs
	if d.recent != nil {
		d.recent.bind(topic, partition)
	}
	keyBytes := d.keyBytes[:0]
	d.keyEnds = d.keyEnds[:0]
	offsets := d.offsets[:0]
	for i := 0; i < b.Len(); i++ {
		if !b.OK(i) {
			continue
		}
		d.key = appendEventID(append(d.key[:0], d.prefix...), b, d.idCol, i)
		if d.recent != nil {
			h := d.recent.hash(d.key)
			if d.recent.duplicate(h, d.key, b.Messages[i].Offset, now) {
				b.MarkDuplicate(i)
				continue
			}
			d.hashes = append(d.hashes, h)
		}
		keyBytes = append(keyBytes, d.key...)
		d.keyEnds = append(d.keyEnds, len(keyBytes))
		offsets = strconv.AppendInt(offsets, b.Messages[i].Offset, 10)
		offsets = append(offsets, ' ')
		d.rows = append(d.rows, i)
	}
	d.offsets, d.keyBytes = offsets, keyBytes
	if len(d.rows) == 0 {
		return nil
	}
	keys := d.splitKeys(string(keyBytes))
	pos := sourcePosition(d.pos[:0], &pipeline.Message{Topic: topic, Partition: partition, Offset: 0})
	pos = pos[:len(pos)-1] // drop the placeholder offset, keep "topic/partition/"
	d.pos = pos
	res := d.res[:0]
	for lo := 0; lo < len(keys); lo += scriptChunkRows {
		hi := min(lo+scriptChunkRows, len(keys))
		// offsets holds one "<offset> " per key; find the chunk's span.
		chunk, err := d.setIfNew.run(ctx, d.rdb, keys[lo:hi], d.ttl.Milliseconds(), pos, offsetSpan(offsets, lo, hi)).StringSlice()
		if err != nil {
			return fmt.Errorf("dedupe: redis: %w", err)
		}
		if len(chunk) != hi-lo {
			return fmt.Errorf("dedupe: redis answered %d results for %d keys", len(chunk), hi-lo)
		}
		res = append(res, chunk...)
	}
	d.res = res
	for n, prev := range res {
		if prev == "" {
			if d.recent != nil {
				d.recent.remember(d.hashes[n], keys[n], b.Messages[d.rows[n]].Offset, now)
			}
			continue
		}
		// The same source position means a redelivery of this very event.
		m := &b.Messages[d.rows[n]]
		if prev != string(sourcePosition(d.own[:0], m)) {
			b.MarkDuplicate(d.rows[n])
		}
	}
	return nil
}

// splitKeys cuts all, the batch's keys back to back, ending at
// d.keyEnds, into d.keys: one allocation for the batch (the string
// conversion) instead of one per key. The recent filter keeps the keys it
// remembers, and with them the batch's string, until they leave it.
func (d *Dedupe) splitKeys(all string) []string {
	keys, start := d.keys[:0], 0
	for _, end := range d.keyEnds {
		keys = append(keys, all[start:end])
		start = end
	}
	d.keys = keys
	return keys
}

// offsetSpan returns the space-separated offsets lo..hi-1 of offsets.
func offsetSpan(offsets []byte, lo, hi int) []byte {
	start, n := 0, 0
	for i, c := range offsets {
		if c != ' ' {
			continue
		}
		n++
		if n == lo {
			start = i + 1
		}
		if n == hi {
			return offsets[start : i+1]
		}
	}
	return offsets[start:]
}

// scriptChunkRows bounds the keys one Lua script call handles, so that
// scripts stay within the Lua stack and registry limits of every Redis
// (miniredis's embedded Lua overflows near 3,000 rows).
const scriptChunkRows = 512

// setIfNew is the dedupe stage's one round trip per batch: for each key it
// runs SET key "<topic>/<partition>/<offset>" NX GET PX ttl and returns the
// previous value, or "" when the key was new. KEYS: the event ids' keys.
// ARGV: TTL in ms, "<topic>/<partition>/", the offsets separated by spaces.
// One script instead of one command per event saves Redis and client work
// (on Redis Cluster the keys must then share a slot: give key_prefix a
// {hash tag}).
var setIfNew = redis.NewScript(`
local out = {}
local i = 1
for off in string.gmatch(ARGV[3], '%d+') do
  local prev = redis.call('SET', KEYS[i], ARGV[2] .. off, 'NX', 'GET', 'PX', ARGV[1])
  if prev then out[i] = prev else out[i] = '' end
  i = i + 1
end
return out
`)

// sourcePosition appends "topic/partition/offset".
func sourcePosition(dst []byte, m *pipeline.Message) []byte {
	dst = append(dst, m.Topic...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(m.Partition), 10)
	dst = append(dst, '/')
	return strconv.AppendInt(dst, m.Offset, 10)
}
