package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// entityState is an entity's aggregates in memory (Featurize.entities).
// It is there while it is in the local cache (cached) or while its latest
// write is not seen acknowledged (write): memory is then the truth, as
// Redis may not hold it yet. Once neither holds, it leaves the map.
type entityState struct {
	// redisKey is the prefix and the entity key; the key is its suffix.
	redisKey string
	agg      cachedAgg
	cached   bool
	write    *pendingWrite
	// batch is the last batch (Featurize.batch) the entity had a row in.
	batch uint64
}

// pendingWrite is a batch's deferred write and the entities it carries.
type pendingWrite struct {
	aggWrite
	entities []*entityState
	// live counts the entities whose latest write this is: a write that
	// never runs (its batch failed after featurize) is dropped once later
	// writes carry all of them.
	live int
	// flushFn is the deferred work, made once per pendingWrite.
	flushFn pipeline.DeferredFunc
}

// cachedAgg is an entity's aggregates as this partition loop last wrote
// them, and when the Redis key's TTL it last set runs out.
type cachedAgg struct {
	entityAgg
	expiresAt time.Time
}

type entityAgg struct {
	n    float64
	mean float64
	last float64 // unix seconds, 0 = never
}

// aggColumns are the columns entityAgg.step reads: the time field's
// (nil when there is none or it is not a timestamp) and mean_of's (nil
// when there is none); a column index below 0 is none.
func aggColumns(rec arrow.RecordBatch, timeCol, meanOfCol int) (times *array.Timestamp, meanOf arrow.Array) {
	if timeCol >= 0 {
		times, _ = rec.Column(timeCol).(*array.Timestamp)
	}
	if meanOfCol >= 0 {
		meanOf = rec.Column(meanOfCol)
	}
	return times, meanOf
}

// step writes into row the entity's aggregates before row i's event (its
// count, mean and seconds since its last event; NaN where there is none)
// and adds the event to them: at its time field's value (times; nil or
// null: the record's timestamp), with its mean_of value (meanOf; nil: no
// mean). The live stage and the replay kernel both step with it, so that
// their features agree bit for bit.
func (agg *entityAgg) step(row []float32, times *array.Timestamp, meanOf arrow.Array, b *pipeline.Batch, i int) {
	var now float64
	if times != nil && !times.IsNull(i) {
		now = float64(times.Value(i)) / 1e6
	} else {
		now = float64(b.Messages[i].Timestamp.UnixMicro()) / 1e6
	}
	nan := float32(math.NaN())
	row[0], row[1], row[2] = float32(agg.n), nan, nan
	if agg.n > 0 {
		row[1] = float32(agg.mean)
		row[2] = float32(math.Max(0, now-agg.last))
	}
	agg.n++
	if meanOf != nil {
		if x := float64(numericValue(meanOf, i)); !math.IsNaN(x) {
			agg.mean += (x - agg.mean) / agg.n
		}
	}
	agg.last = math.Max(agg.last, now)
}

// addEntityAggregates writes each row's three entity aggregates into
// dst[j*NumDense:] (rows are b's feature rows), updates the entities row
// by row in order, and defers their write. Per row it makes one map
// lookup; per entity of the batch, none (the cache, the unflushed state
// and the batch's grouping are one entityState).
func (f *Featurize) addEntityAggregates(ctx context.Context, b *pipeline.Batch, dst []float32, rows []int) error {
	stride := b.Features.NumDense
	rec := b.Record
	f.batch++
	f.releaseWrites()
	f.groupRows(rec.Column(f.entityCol), rows)
	if err := f.readEntities(ctx); err != nil {
		f.dropUnheld(f.reads)
		return err
	}
	times, meanOf := aggColumns(rec, f.timeCol, f.meanOfCol)
	nan := float32(math.NaN())
	for j, i := range rows {
		row := dst[j*stride : j*stride+3]
		s := f.rowEntity[j]
		if s == nil {
			row[0], row[1], row[2] = 0, nan, nan
			continue
		}
		agg := &s.agg.entityAgg
		agg.step(row, times, meanOf, b, i)
	}
	p := f.writeEntities()
	if f.maxCache > 0 {
		for _, s := range f.misses {
			if f.cached >= f.maxCache {
				f.uncacheAll()
			}
			if !s.cached {
				s.cached = true
				f.cached++
			}
		}
	}
	// Deferred work runs one batch's after another's: one writer at a time.
	return b.Defer(ctx, p.flushFn)
}

// groupRows finds each row's entity (f.rowEntity), the batch's entities
// in order of their first row (f.order), and, on an entity's first row,
// where its aggregates come from: the local cache while the TTL it set
// lives (checked against one clock reading per batch, taken before any
// row: an entry is never used past the key's expiry in Redis, which is
// later than expiresAt); memory while its latest write is in flight (cached again after
// the batch, like a read: f.misses); else Redis (f.reads, and f.misses).
// A new entity enters f.entities here; the caller removes it again
// (dropUnheld) if the batch fails before it is written.
func (f *Featurize) groupRows(col arrow.Array, rows []int) {
	now := f.now()
	f.rowEntity, f.order = f.rowEntity[:0], f.order[:0]
	f.reads, f.misses = f.reads[:0], f.misses[:0]
	strs, _ := col.(*array.String)
	ints, _ := col.(*array.Int64)
	for _, i := range rows {
		var s *entityState
		switch {
		case col.IsNull(i):
		case strs != nil:
			if k := strs.Value(i); k != "" {
				if s = f.entities[k]; s == nil {
					s = f.newEntity(k)
				}
			}
		case ints != nil:
			f.keyBuf = strconv.AppendInt(f.keyBuf[:0], ints.Value(i), 10)
			if s = f.entities[string(f.keyBuf)]; s == nil {
				s = f.newEntity(string(f.keyBuf))
			}
		}
		f.rowEntity = append(f.rowEntity, s)
		if s == nil || s.batch == f.batch {
			continue
		}
		s.batch = f.batch
		f.order = append(f.order, s)
		switch {
		case s.cached && now.Before(s.agg.expiresAt):
		case s.write != nil:
			// Written by an earlier batch, not acknowledged yet: Redis
			// may not hold it, so memory is the truth.
			f.misses = append(f.misses, s)
		default:
			f.reads = append(f.reads, s)
			f.misses = append(f.misses, s)
		}
	}
}

// newEntity adds entity key k (copied) to f.entities, neither cached nor
// written yet.
func (f *Featurize) newEntity(k string) *entityState {
	s := &entityState{redisKey: f.prefix + k}
	f.entities[s.redisKey[len(f.prefix):]] = s
	return s
}

// key is s's entity key, f.entities' key for it.
func (f *Featurize) key(s *entityState) string { return s.redisKey[len(f.prefix):] }

// dropUnheld removes from f.entities those of ss that are neither cached
// nor written.
func (f *Featurize) dropUnheld(ss []*entityState) {
	for _, s := range ss {
		if !s.cached && s.write == nil {
			delete(f.entities, f.key(s))
		}
	}
}

// uncacheAll empties the local cache (when it is full, as a map cleared
// whole); entities with a write in flight stay in memory.
func (f *Featurize) uncacheAll() {
	for k, s := range f.entities {
		s.cached = false
		if s.write == nil {
			delete(f.entities, k)
		}
	}
	f.cached = 0
}

// releaseWrites forgets the in-flight state of the writes Redis
// acknowledged since the last batch (their entities leave memory unless
// cached), and drops writes whose entities all have a later write.
func (f *Featurize) releaseWrites() {
	kept := f.pending[:0]
	for _, p := range f.pending {
		switch {
		case p.done.Load():
			for _, s := range p.entities {
				if s.write == p {
					s.write = nil
					if !s.cached {
						delete(f.entities, f.key(s))
					}
				}
			}
			clear(p.entities)
			p.entities, p.live = p.entities[:0], 0
			p.reset()
			f.spare = append(f.spare, p)
		case p.live == 0:
			// Its batch failed after featurize, so it never runs (see
			// pipeline.Batch.Defer); it is not reused, in case it does.
		default:
			kept = append(kept, p)
		}
	}
	clear(f.pending[len(kept):])
	f.pending = kept
}

// writeEntities builds the batch's write of f.order's aggregates, with
// the TTL refreshed where less than half of it is left, and makes it each
// entity's latest write.
func (f *Featurize) writeEntities() *pendingWrite {
	var p *pendingWrite
	if n := len(f.spare); n > 0 {
		p, f.spare = f.spare[n-1], f.spare[:n-1]
	} else {
		p = &pendingWrite{aggWrite: aggWrite{ttl: f.ttl}}
		p.flushFn = func(ctx context.Context) error { return p.flush(ctx, f.rdb, &f.writer) }
		n := len(f.order)
		p.keys, p.packed, p.ends = make([]string, 0, n), make([]byte, 0, n*aggPackedBytes), make([]int, 0, n)
		p.entities = make([]*entityState, 0, n)
	}
	wall := f.now()
	refreshBy, expiresAt := wall.Add(f.ttl/2), wall.Add(f.ttl)
	for _, s := range f.order {
		if refreshBy.After(s.agg.expiresAt) {
			s.agg.expiresAt = expiresAt
			p.add(s.redisKey, &s.agg.entityAgg, true)
		} else {
			p.add(s.redisKey, &s.agg.entityAgg, false)
		}
		if s.write != nil {
			s.write.live--
		}
		s.write = p
		p.live++
		p.entities = append(p.entities, s)
	}
	f.pending = append(f.pending, p)
	return p
}

// aggPackedBytes is a typical entity's share of aggWrite.packed (a count,
// a mean of 18 digits, unix seconds with a fraction, quoted, with commas),
// to size it at once.
const aggPackedBytes = 56

// readEntities reads f.reads' aggregates from Redis in one pipelined
// round trip.
func (f *Featurize) readEntities(ctx context.Context) error {
	if len(f.reads) == 0 {
		return nil
	}
	pipe := f.rdb.Pipeline()
	f.gets = f.gets[:0]
	for _, s := range f.reads {
		f.gets = append(f.gets, pipe.HMGet(ctx, s.redisKey, "n", "mean", "last"))
	}
	_, err := pipe.Exec(ctx)
	defer clear(f.gets)
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("featurize: read entity aggregates: %w", err)
	}
	for n, s := range f.reads {
		vals, err := f.gets[n].Result()
		if err != nil {
			return fmt.Errorf("featurize: read entity %s: %w", f.key(s), err)
		}
		s.agg = cachedAgg{entityAgg: entityAgg{n: parseAgg(vals[0]), mean: parseAgg(vals[1]), last: parseAgg(vals[2])}}
	}
	return nil
}

// entityKey is row i's entity key: the string, or the integer in decimal
// ("" for null).
func entityKey(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return ""
	}
	switch a := col.(type) {
	case *array.String:
		return a.Value(i)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	}
	return ""
}

func parseAgg(v any) float64 {
	s, ok := v.(string)
	if !ok {
		return 0
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return x
}
