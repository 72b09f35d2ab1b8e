package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/redis/go-redis/v9"

	"github.com/driftline/driftline/pipeline"
)

// Featurize turns each live row into model features, in the layout of
// pipeline.FeatureBlock:
//   - dense values: the spec's numeric fields as raw float32 (bool is 0/1,
//     null is NaN, which models read as "missing"); the learner's online
//     scaler standardizes them, so the raw values can be replayed when the
//     label arrives and exported with the model;
//   - then, when entity aggregates are on, three values per row: the
//     entity's previous event count, the running mean of mean_of over its
//     previous events, and the seconds since its previous event (NaN for a
//     first event);
//   - hashed indices: one per categorical field, FNV-1a of the field's
//     position and value, masked to hash_bits; null is -1 (absent).
//
// Entity aggregates are Feast-style Redis hashes (fields n, mean, last),
// one per entity with a TTL. A batch reads the entities it does not hold in
// memory in one pipelined round trip, updates them in process, and writes
// them behind: the write (one script call per batch, see writeAggregates:
// HSET, and PEXPIRE when the TTL needs a refresh, per entity) is deferred with pipeline.Batch.Defer, so under a
// Runner it is in flight while the next batch is processed, and the batch
// is acknowledged (its offsets committed) only once Redis acknowledged it.
// Read-your-writes holds across batches: an entity whose write is not
// acknowledged yet is read from memory, never from Redis. A Featurize is
// used by one partition loop at a time; when partitions are keyed by
// entity, each entity's aggregates have one writer.
type Featurize struct {
	numeric     []int
	categorical []int
	tokens      []textTokens
	mask        uint32
	entityCol   int
	meanOfCol   int
	timeCol     int
	rdb         redis.UniversalClient
	prefix      string
	ttl         time.Duration
	ent         map[string]*cachedAgg
	cache       map[string]*cachedAgg
	maxCache    int
	now         func() time.Time
	entOrder    []string
	// unflushed holds, by entity, the aggregates of the latest write not
	// yet acknowledged by Redis (written behind; see Process).
	unflushed map[string]unflushedAgg
	// writer runs writeAggregates for the deferred writes.
	writer scriptCall
}

// unflushedAgg is an entity's aggregates as a deferred write sends them.
type unflushedAgg struct {
	cachedAgg
	write *aggWrite
}

// aggWrite is one batch's deferred write of entity aggregates; done is set
// once Redis acknowledged it (from the deferred work's goroutine).
type aggWrite struct {
	keys []string
	// packed holds "<n> <mean> <last> <refresh> " per key, the floats as
	// go-redis writes them (strconv 'f', -1), refresh 1 or 0 (see
	// writeAggregates).
	packed []byte
	// ends[n] is the end of key n's fields in packed.
	ends []int
	ttl  time.Duration
	done atomic.Bool
}

// add appends key k's aggregates to the write.
func (w *aggWrite) add(k string, v *entityAgg, refresh bool) {
	w.keys = append(w.keys, k)
	w.packed = strconv.AppendFloat(w.packed, v.n, 'f', -1, 64)
	w.packed = append(w.packed, ' ')
	w.packed = strconv.AppendFloat(w.packed, v.mean, 'f', -1, 64)
	w.packed = append(w.packed, ' ')
	w.packed = strconv.AppendFloat(w.packed, v.last, 'f', -1, 64)
	if refresh {
		w.packed = append(w.packed, " 1 "...)
	} else {
		w.packed = append(w.packed, " 0 "...)
	}
	w.ends = append(w.ends, len(w.packed))
}

// flush sends the write: one script call per scriptChunkRows entities
// (one round trip for a batch of up to 512 entities). It writes absolute
// values, so running it again (a retry) is harmless.
func (w *aggWrite) flush(ctx context.Context, rdb redis.UniversalClient, call *scriptCall) error {
	ttl := w.ttl.Milliseconds()
	for lo := 0; lo < len(w.keys); lo += scriptChunkRows {
		hi := min(lo+scriptChunkRows, len(w.keys))
		start := 0
		if lo > 0 {
			start = w.ends[lo-1]
		}
		n, err := call.run(ctx, rdb, w.keys[lo:hi], ttl, w.packed[start:w.ends[hi-1]]).Int()
		if err != nil {
			return fmt.Errorf("featurize: write entity aggregates: %w", err)
		}
		if n != hi-lo {
			return fmt.Errorf("featurize: redis wrote %d entities of %d", n, hi-lo)
		}
	}
	w.done.Store(true)
	return nil
}

// writeAggregates writes a batch's entity aggregates in one call: for
// each key, HSET key n <n> mean <mean> last <last>, and PEXPIRE key <ttl>
// when its refresh flag is 1. KEYS: the entities' keys. ARGV: the TTL in
// ms, then "<n> <mean> <last> <refresh> " per key. The hash holds the
// same strings as one HSET per entity from go-redis did. It returns how
// many keys it wrote. One script instead of one or two commands per
// entity saves most of the client's work per entity (on Redis Cluster the
// keys must then share a slot: give key_prefix a {hash tag}, as for
// dedupe).
var writeAggregates = redis.NewScript(`
local i = 0
for n, mean, last, refresh in string.gmatch(ARGV[2], '(%S+) (%S+) (%S+) (%d) ') do
  i = i + 1
  redis.call('HSET', KEYS[i], 'n', n, 'mean', mean, 'last', last)
  if refresh == '1' then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return i
`)

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

// NewFeaturize builds the stage. rdb may be nil when entity aggregates are off.
func NewFeaturize(spec *pipeline.Spec, rdb redis.UniversalClient) (*Featurize, error) {
	fz := &spec.Stages.Featurize
	f := &Featurize{
		mask:      uint32(1)<<fz.HashBits - 1,
		entityCol: -1,
		meanOfCol: -1,
		timeCol:   -1,
		writer:    scriptCall{script: writeAggregates},
	}
	for _, n := range fz.Numeric {
		f.numeric = append(f.numeric, spec.FieldIndex(n))
	}
	for _, n := range fz.Categorical {
		f.categorical = append(f.categorical, spec.FieldIndex(n))
	}
	f.tokens = newTextTokens(spec, len(f.categorical))
	if e := fz.Entity; e != nil {
		if rdb == nil {
			return nil, errors.New("featurize: entity aggregates need redis")
		}
		f.entityCol = spec.FieldIndex(e.Field)
		if e.MeanOf != "" {
			f.meanOfCol = spec.FieldIndex(e.MeanOf)
		}
		if spec.Schema.TimeField != "" {
			f.timeCol = spec.FieldIndex(spec.Schema.TimeField)
		}
		f.rdb, f.ttl = rdb, e.TTL.D()
		f.prefix = spec.Redis.Prefix() + "entity:"
		f.ent = map[string]*cachedAgg{}
		f.now = time.Now
		if e.LocalCache == nil {
			f.maxCache = pipeline.DefaultEntityLocalCache
		} else {
			f.maxCache = *e.LocalCache
		}
		f.cache = make(map[string]*cachedAgg)
		f.unflushed = make(map[string]unflushedAgg)
	}
	return f, nil
}

// NumDense is the number of dense values per row.
func (f *Featurize) NumDense() int {
	if f.entityCol >= 0 {
		return len(f.numeric) + 3
	}
	return len(f.numeric)
}

// NumHashed is the number of hashed indices per row: one per categorical
// field, then stages.text.tokens' max_tokens per text field.
func (f *Featurize) NumHashed() int {
	n := len(f.categorical)
	for _, t := range f.tokens {
		n += t.max
	}
	return n
}

// Name implements pipeline.Stage.
func (f *Featurize) Name() string { return "featurize" }

// Process implements pipeline.Stage.
func (f *Featurize) Process(ctx context.Context, b *pipeline.Batch) error {
	fb := &b.Features
	fb.NumDense, fb.NumHashed = f.NumDense(), f.NumHashed()
	rec := b.Record
	for i := 0; i < b.Len(); i++ {
		if !b.OK(i) {
			continue
		}
		fb.Row = append(fb.Row, i)
		for _, c := range f.numeric {
			fb.Dense = append(fb.Dense, numericValue(rec.Column(c), i))
		}
		if f.entityCol >= 0 {
			fb.Dense = append(fb.Dense, 0, 0, 0) // filled by addEntityAggregates
		}
		for k, c := range f.categorical {
			fb.Hashed = append(fb.Hashed, f.hashValue(rec.Column(c), i, k))
		}
		for k := range f.tokens {
			t := &f.tokens[k]
			fb.Hashed = t.appendHashes(fb.Hashed, rec.Column(t.col).(*array.String), i, f.mask)
		}
	}
	if f.entityCol >= 0 && fb.Len() > 0 {
		return f.addEntityAggregates(ctx, b)
	}
	return nil
}

func numericValue(col arrow.Array, i int) float32 {
	if col.IsNull(i) {
		return float32(math.NaN())
	}
	switch a := col.(type) {
	case *array.Float64:
		return float32(a.Value(i))
	case *array.Int64:
		return float32(a.Value(i))
	case *array.Boolean:
		if a.Value(i) {
			return 1
		}
	}
	return 0
}

const (
	fnvOffset32 = 2166136261
	fnvPrime32  = 16777619
)

// hashValue hashes categorical field k's value at row i.
func (f *Featurize) hashValue(col arrow.Array, i, k int) int32 {
	if col.IsNull(i) {
		return -1
	}
	h := uint32(fnvOffset32)
	h = (h ^ uint32(k)) * fnvPrime32
	h = (h ^ 0xff) * fnvPrime32
	switch a := col.(type) {
	case *array.String:
		s := a.Value(i)
		for j := 0; j < len(s); j++ {
			h = (h ^ uint32(s[j])) * fnvPrime32
		}
	case *array.Int64:
		v := uint64(a.Value(i))
		for j := 0; j < 8; j++ {
			h = (h ^ uint32(v&0xff)) * fnvPrime32
			v >>= 8
		}
	case *array.Boolean:
		if a.Value(i) {
			h = (h ^ 1) * fnvPrime32
		}
	}
	return int32(h & f.mask)
}

func (f *Featurize) addEntityAggregates(ctx context.Context, b *pipeline.Batch) error {
	fb := &b.Features
	rec := b.Record
	clear(f.ent)
	f.entOrder = f.entOrder[:0]
	for k, u := range f.unflushed {
		if u.write.done.Load() {
			delete(f.unflushed, k)
		}
	}
	keys := make([]string, fb.Len())
	var misses []string
	for j, i := range fb.Row {
		k := entityKey(rec.Column(f.entityCol), i)
		keys[j] = k
		if _, ok := f.ent[k]; ok || k == "" {
			continue
		}
		f.entOrder = append(f.entOrder, k)
		if c, ok := f.cache[k]; ok && f.now().Before(c.expiresAt) {
			f.ent[k] = c
			continue
		}
		if u, ok := f.unflushed[k]; ok {
			// Written by an earlier batch, not acknowledged yet: Redis
			// may not hold it, so memory is the truth.
			c := u.cachedAgg
			f.ent[k] = &c
			misses = append(misses, k) // cached below like a read
			continue
		}
		f.ent[k] = nil
		misses = append(misses, k)
	}
	if err := f.readEntities(ctx, misses); err != nil {
		return err
	}
	base := fb.NumDense - 3
	for j, i := range fb.Row {
		row := fb.Dense[j*fb.NumDense : (j+1)*fb.NumDense]
		c := f.ent[keys[j]]
		if c == nil {
			row[base], row[base+1], row[base+2] = 0, float32(math.NaN()), float32(math.NaN())
			continue
		}
		agg := &c.entityAgg
		now := eventSeconds(rec, f.timeCol, b.Messages[i].Timestamp, i)
		row[base] = float32(agg.n)
		row[base+1], row[base+2] = float32(math.NaN()), float32(math.NaN())
		if agg.n > 0 {
			row[base+1] = float32(agg.mean)
			row[base+2] = float32(math.Max(0, now-agg.last))
		}
		agg.n++
		if f.meanOfCol >= 0 {
			if x := float64(numericValue(rec.Column(f.meanOfCol), i)); !math.IsNaN(x) {
				agg.mean += (x - agg.mean) / agg.n
			}
		}
		agg.last = math.Max(agg.last, now)
	}
	wall := f.now()
	w := &aggWrite{ttl: f.ttl, keys: make([]string, 0, len(f.entOrder)),
		packed: make([]byte, 0, len(f.entOrder)*aggPackedBytes), ends: make([]int, 0, len(f.entOrder))}
	for _, k := range f.entOrder {
		c := f.ent[k]
		// The TTL is refreshed when less than half of it is left.
		refresh := wall.Add(f.ttl / 2).After(c.expiresAt)
		if refresh {
			c.expiresAt = wall.Add(f.ttl)
		}
		w.add(f.prefix+k, &c.entityAgg, refresh) // a fresh key string: the write owns it
		f.unflushed[w.keys[len(w.keys)-1][len(f.prefix):]] = unflushedAgg{cachedAgg: *c, write: w}
	}
	if f.maxCache > 0 {
		for _, k := range misses {
			if len(f.cache) >= f.maxCache {
				clear(f.cache)
			}
			f.cache[strings.Clone(k)] = f.ent[k]
		}
	}
	// Deferred work runs one batch's after another's: one writer at a time.
	return b.Defer(ctx, func(ctx context.Context) error { return w.flush(ctx, f.rdb, &f.writer) })
}

// aggPackedBytes is a typical entity's share of aggWrite.packed (a count,
// a mean of 18 digits, unix seconds with a fraction), to size it at once.
const aggPackedBytes = 48

// readEntities reads the aggregates of the entities misses names that
// f.ent does not hold yet, in one pipelined round trip.
func (f *Featurize) readEntities(ctx context.Context, misses []string) error {
	var read []string
	for _, k := range misses {
		if f.ent[k] == nil {
			read = append(read, k)
		}
	}
	if len(read) == 0 {
		return nil
	}
	pipe := f.rdb.Pipeline()
	gets := make([]*redis.SliceCmd, len(read))
	for n, k := range read {
		gets[n] = pipe.HMGet(ctx, f.prefix+k, "n", "mean", "last")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("featurize: read entity aggregates: %w", err)
	}
	for n, k := range read {
		vals, err := gets[n].Result()
		if err != nil {
			return fmt.Errorf("featurize: read entity %s: %w", k, err)
		}
		f.ent[k] = &cachedAgg{entityAgg: entityAgg{n: parseAgg(vals[0]), mean: parseAgg(vals[1]), last: parseAgg(vals[2])}}
	}
	return nil
}

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

// eventSeconds is the row's event time in unix seconds: the time field when
// the spec has one and it is set, else the record's timestamp.
func eventSeconds(rec arrow.RecordBatch, timeCol int, fallback time.Time, i int) float64 {
	if timeCol >= 0 {
		if a, ok := rec.Column(timeCol).(*array.Timestamp); ok && !a.IsNull(i) {
			return float64(a.Value(i)) / 1e6
		}
	}
	return float64(fallback.UnixMicro()) / 1e6
}

// FeatureNames names the dense and hashed columns the featurize stage
// produces for spec, in order: the numeric fields, then the entity
// aggregates (count, mean of mean_of, seconds since the previous event);
// the categorical fields, then each text field's word slots.
func FeatureNames(spec *pipeline.Spec) (dense, hashed []string) {
	fz := &spec.Stages.Featurize
	dense = append(dense, fz.Numeric...)
	if e := fz.Entity; e != nil {
		mean := e.Field + ".mean"
		if e.MeanOf != "" {
			mean = e.Field + ".mean_" + e.MeanOf
		}
		dense = append(dense, e.Field+".count", mean, e.Field+".seconds_since_last")
	}
	hashed = append(hashed, fz.Categorical...)
	for _, t := range spec.Stages.Text.Tokens {
		for k := range t.MaxTokens {
			hashed = append(hashed, t.Field+".token"+strconv.Itoa(k))
		}
	}
	return dense, hashed
}
