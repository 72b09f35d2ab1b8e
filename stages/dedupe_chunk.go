package stages

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// dedupeChunk is one setIfNew call of a dedupe batch: the keys of some of
// its live rows, and the call's answer. Its buffers are reused from batch
// to batch. Between send and the end of apply it is used by one goroutine
// at a time: the one that sends it, then the batch's (after waiting for it).
type dedupeChunk struct {
	call scriptCall
	// keyBytes holds the chunk's ids' names in process (the stage's
	// prefix, then the id) back to back, ending at keyEnds; finish converts
	// them to one string whose substrings keys holds, and ids the ids
	// without the prefix (the fields in Redis): one allocation per chunk
	// instead of one per id. The recent filter keeps the keys it
	// remembers, and with them that string, until they leave it.
	keyBytes []byte
	keyEnds  []int
	keys     []string
	ids      []string
	// bucket is the script's one key; argv its arguments, reused.
	bucket [1]string
	argv   []any
	// hashes, rows and offsets are each key's hash, batch row, and offset
	// (offsets: `"<offset>",` per key: the elements of the script's ARGV[3],
	// a JSON array of strings, which send builds in array).
	hashes  []uint64
	rows    []int
	offsets []byte
	array   []byte
	// buckets are each key's bucket on record time (Dedupe.UseRecordTime;
	// empty otherwise), bucketsArg the script's JSON array of them.
	buckets    []int64
	bucketsArg []byte
	top        int64 // the partition's top bucket after the chunk's rows
	// after is set when the chunk repeats a key of an earlier chunk of its
	// batch: it must then be sent after their answers.
	after  bool
	answer string
	err    error
}

// reset empties the chunk for the next batch.
func (c *dedupeChunk) reset() {
	c.keyBytes, c.keyEnds, c.hashes, c.rows, c.offsets = c.keyBytes[:0], c.keyEnds[:0], c.hashes[:0], c.rows[:0], c.offsets[:0]
	c.buckets = c.buckets[:0]
	clear(c.keys) // hold no batch's string between batches
	clear(c.ids)
	c.keys, c.ids = c.keys[:0], c.ids[:0]
	c.after, c.answer, c.err = false, "", nil
}

// add appends the key (of hash h) of row, read at offset.
func (c *dedupeChunk) add(key []byte, h uint64, row int, offset int64) {
	c.keyBytes = append(c.keyBytes, key...)
	c.keyEnds = append(c.keyEnds, len(c.keyBytes))
	c.hashes = append(c.hashes, h)
	c.rows = append(c.rows, row)
	c.offsets = append(c.offsets, '"')
	c.offsets = strconv.AppendInt(c.offsets, offset, 10)
	c.offsets = append(c.offsets, `",`...)
}

// finish cuts the chunk's keys into c.keys, and their ids (each key less
// its first prefixLen bytes) into c.ids, ready to send.
func (c *dedupeChunk) finish(prefixLen int) {
	all, start := string(c.keyBytes), 0
	for _, end := range c.keyEnds {
		c.keys = append(c.keys, all[start:end])
		c.ids = append(c.ids, all[start+prefixLen:end])
		start = end
	}
}

// send calls setIfNew on the chunk's ids, with the buckets' name, the TTL
// and "<topic>/<partition>/" pos, and keeps its answer or error for apply.
func (c *dedupeChunk) send(ctx context.Context, rdb redis.UniversalClient, buckets string, ttl time.Duration, pos []byte) {
	c.bucket[0] = buckets
	elems := c.offsets[:max(len(c.offsets)-1, 0)] // less the last comma
	c.array = append(append(append(c.array[:0], '['), elems...), ']')
	a := append(c.argv[:0], ttl.Milliseconds(), pos, c.array)
	for i := range c.ids {
		a = append(a, &c.ids[i]) // a pointer boxes without allocating
	}
	c.answer, c.err = c.call.run(ctx, rdb, c.bucket[:], a...).Text()
	clear(a)
	c.argv = a[:0]
}

// apply marks the chunk's duplicates in b from its answer, and remembers
// its new keys in recent (when not nil), as sent at time now (on record
// time: at their buckets, which rt is told were written).
func (c *dedupeChunk) apply(b *pipeline.Batch, recent *recentIDs, now time.Duration, rt *recordTime) error {
	if c.err != nil {
		return fmt.Errorf("dedupe: redis: %w", c.err)
	}
	count, rest, ok := nextAnswerInt(c.answer)
	if !ok || count != len(c.keys) {
		return c.badAnswer()
	}
	if rest == "" && recent == nil && rt == nil {
		return nil // every key new, and none to remember
	}
	// set is the next already-set key's index (negated for a redelivery),
	// 0 when none is left.
	next := func() (set int, ok bool) {
		if rest == "" {
			return 0, true
		}
		set, rest, ok = nextAnswerInt(rest)
		return set, ok && set != 0
	}
	set, ok := next()
	for k, row := range c.rows {
		switch k + 1 {
		case set:
			b.MarkDuplicate(row)
		case -set:
			// A redelivery of this very event: live, and not remembered
			// (its key was created before now).
		default:
			at := now
			if rt != nil {
				at = time.Duration(c.buckets[k])
				rt.wrote(c.buckets[k])
			}
			if recent != nil {
				recent.remember(c.hashes[k], c.keys[k], b.Messages[row].Offset, at)
			}
			continue
		}
		set, ok = next()
	}
	if !ok || set != 0 {
		return c.badAnswer()
	}
	return nil
}

func (c *dedupeChunk) badAnswer() error {
	return fmt.Errorf("dedupe: redis answered %q for %d keys", c.answer, len(c.keys))
}

// nextAnswerInt parses the integer at the start of s, which setIfNew's
// answer separates by spaces, and returns the rest after the space. ok is
// false when s does not start with an integer (as when it is empty).
func nextAnswerInt(s string) (v int, rest string, ok bool) {
	i, neg := 0, false
	if i < len(s) && s[i] == '-' {
		neg, i = true, 1
	}
	start := i
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		v = v*10 + int(s[i]-'0')
	}
	if i == start || i-start > 9 || (i < len(s) && s[i] != ' ') {
		return 0, s, false
	}
	if neg {
		v = -v
	}
	if i < len(s) {
		i++ // the space, which another integer must follow
		if i == len(s) {
			return 0, s, false
		}
	}
	return v, s[i:], true
}
