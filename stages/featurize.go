package stages

import (
	"context"
	"errors"
	"math"
	"strconv"
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
	maxCache    int
	now         func() time.Time
	// entities holds, by entity key, every entity whose aggregates are in
	// memory: those in the local cache (cached, at most maxCache of them)
	// and those whose latest write is not acknowledged yet (written behind;
	// see Process); see entityState.
	entities map[string]*entityState
	// cached counts the entities in the local cache.
	cached int
	// batch numbers the batches with entity aggregates, to find an
	// entity's first row in a batch (entityState.batch).
	batch uint64
	// pending are the deferred writes not seen acknowledged yet, oldest
	// first; spare are acknowledged ones, for reuse.
	pending []*pendingWrite
	spare   []*pendingWrite
	// Per-batch scratch, reused: each feature row's entity (nil: none),
	// the batch's entities in order of their first row, those read from
	// Redis, those to cache, an int key's digits, the reads' commands.
	rowEntity []*entityState
	order     []*entityState
	reads     []*entityState
	misses    []*entityState
	keyBuf    []byte
	gets      []*redis.SliceCmd
	scratch   []int32
	// writer runs writeAggregates for the deferred writes.
	writer scriptCall
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
		f.entities = map[string]*entityState{}
		f.now = time.Now
		if e.LocalCache == nil {
			f.maxCache = pipeline.DefaultEntityLocalCache
		} else {
			f.maxCache = *e.LocalCache
		}
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

// Process implements pipeline.Stage. It computes the features a column
// at a time, with the kernels ReplayFeaturize uses (denseColumn,
// hashColumn: one type switch per column and batch).
func (f *Featurize) Process(ctx context.Context, b *pipeline.Batch) error {
	fb := &b.Features
	fb.NumDense, fb.NumHashed = f.NumDense(), f.NumHashed()
	rows := appendOKRows(fb, b)
	if len(rows) == 0 {
		return nil
	}
	rec := b.Record
	dense := grow(&fb.Dense, len(rows)*fb.NumDense)
	hashed := grow(&fb.Hashed, len(rows)*fb.NumHashed)
	for k, c := range f.numeric {
		denseColumn(dense[k:], fb.NumDense, rec.Column(c), rows)
	}
	for k, c := range f.categorical {
		hashColumn(hashed[k:], fb.NumHashed, rec.Column(c), rows, k, f.mask)
	}
	var err error
	if f.scratch, err = hashTokens(hashed, fb.NumHashed, rec, rows, f.tokens, f.scratch, f.mask); err != nil {
		return err
	}
	if f.entityCol >= 0 {
		return f.addEntityAggregates(ctx, b, dense[len(f.numeric):], rows)
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
