package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
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
// one per entity with a TTL, read, updated and written by one Lua script per
// batch (one round trip, atomic). A Featurize is used by one partition loop
// at a time. On Redis Cluster the batch's keys must share a slot: give
// key_prefix a {hash tag}.
type Featurize struct {
	numeric     []int
	categorical []int
	mask        uint32
	entityCol   int
	meanOfCol   int
	timeCol     int
	rdb         redis.UniversalClient
	prefix      string
	ttl         time.Duration
	ent         map[string]int // entity → index in entOrder, per batch
	entOrder    []string       // entity hash keys, per batch
	rowEntity   []int
	args        []byte
}

// NewFeaturize builds the stage. rdb may be nil when entity aggregates are off.
func NewFeaturize(spec *pipeline.Spec, rdb redis.UniversalClient) (*Featurize, error) {
	fz := &spec.Stages.Featurize
	f := &Featurize{
		mask:      uint32(1)<<fz.HashBits - 1,
		entityCol: -1,
		meanOfCol: -1,
		timeCol:   -1,
	}
	for _, n := range fz.Numeric {
		f.numeric = append(f.numeric, spec.FieldIndex(n))
	}
	for _, n := range fz.Categorical {
		f.categorical = append(f.categorical, spec.FieldIndex(n))
	}
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
		f.prefix = spec.Redis.KeyPrefix + "entity:"
		f.ent = map[string]int{}
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

// NumHashed is the number of hashed indices per row.
func (f *Featurize) NumHashed() int { return len(f.categorical) }

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

// scriptChunkRows bounds the rows one Lua script call handles, so that
// scripts stay within the Lua stack and registry limits of every Redis
// (miniredis's embedded Lua overflows near 3,000 rows).
const scriptChunkRows = 512

func (f *Featurize) addEntityAggregates(ctx context.Context, b *pipeline.Batch) error {
	fb := &b.Features
	base := fb.NumDense - 3
	for j := range fb.Row {
		row := fb.Dense[j*fb.NumDense : (j+1)*fb.NumDense]
		row[base], row[base+1], row[base+2] = 0, float32(math.NaN()), float32(math.NaN())
	}
	for lo := 0; lo < fb.Len(); lo += scriptChunkRows {
		if err := f.entityChunk(ctx, b, lo, min(lo+scriptChunkRows, fb.Len())); err != nil {
			return err
		}
	}
	return nil
}

// entityChunk updates the entity aggregates of feature rows [lo, hi) in one
// script call; later chunks see the state earlier ones wrote.
func (f *Featurize) entityChunk(ctx context.Context, b *pipeline.Batch, lo, hi int) error {
	fb := &b.Features
	rec := b.Record
	clear(f.ent)
	f.entOrder = f.entOrder[:0]
	rowEntity := f.rowEntity[:0]
	args := f.args[:0]
	for _, i := range fb.Row[lo:hi] {
		k := entityKey(rec.Column(f.entityCol), i)
		if k == "" {
			rowEntity = append(rowEntity, -1)
			continue
		}
		idx, ok := f.ent[k]
		if !ok {
			idx = len(f.entOrder)
			f.ent[k] = idx
			f.entOrder = append(f.entOrder, f.prefix+k)
		}
		rowEntity = append(rowEntity, idx)
		x := math.NaN()
		if f.meanOfCol >= 0 {
			x = float64(numericValue(rec.Column(f.meanOfCol), i))
		}
		args = strconv.AppendInt(args, int64(idx+1), 10)
		args = append(args, ' ')
		if math.IsNaN(x) || math.IsInf(x, 0) {
			args = append(args, "nan"...)
		} else {
			args = strconv.AppendFloat(args, x, 'g', -1, 64)
		}
		args = append(args, ' ')
		args = strconv.AppendFloat(args, eventSeconds(rec, f.timeCol, b.Messages[i].Timestamp, i), 'f', 6, 64)
		args = append(args, ';')
	}
	f.rowEntity, f.args = rowEntity, args
	if len(f.entOrder) == 0 {
		return nil
	}
	out, err := entityUpdate.Run(ctx, f.rdb, f.entOrder, f.ttl.Milliseconds(), args).Text()
	if err != nil {
		return fmt.Errorf("featurize: entity aggregates: %w", err)
	}
	base := fb.NumDense - 3
	for j := lo; j < hi; j++ {
		if rowEntity[j-lo] < 0 {
			continue
		}
		var prev string
		prev, out, _ = strings.Cut(out, ";")
		n, mean, last, ok := parseAggregates(prev)
		if !ok {
			return fmt.Errorf("featurize: entity aggregates: malformed reply %q", prev)
		}
		row := fb.Dense[j*fb.NumDense : (j+1)*fb.NumDense]
		row[base] = float32(n)
		if n > 0 {
			i := fb.Row[j]
			now := eventSeconds(rec, f.timeCol, b.Messages[i].Timestamp, i)
			row[base+1] = float32(mean)
			row[base+2] = float32(math.Max(0, now-last))
		}
	}
	return nil
}

// entityUpdate reads, updates and writes a batch's entity aggregates in
// one round trip, atomically. KEYS: the entities' hash keys. ARGV: TTL in
// ms, then the rows in batch order as "entity x t;" (entity: 1-based KEYS
// index; x: the mean_of value or "nan"; t: event time in unix seconds). It
// returns, per row, the entity's aggregates before that row, "n mean last",
// rows joined by ';'.
var entityUpdate = redis.NewScript(`
local state = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'n', 'mean', 'last')
  state[i] = {tonumber(v[1]) or 0, tonumber(v[2]) or 0, tonumber(v[3]) or 0}
end
local out = {}
for e, x, t in string.gmatch(ARGV[2], '(%d+) (%S+) (%S+);') do
  local s = state[tonumber(e)]
  out[#out + 1] = string.format('%.17g %.17g %.17g', s[1], s[2], s[3])
  s[1] = s[1] + 1
  if x ~= 'nan' then s[2] = s[2] + (tonumber(x) - s[2]) / s[1] end
  local tv = tonumber(t)
  if tv > s[3] then s[3] = tv end
end
for i, k in ipairs(KEYS) do
  local s = state[i]
  redis.call('HSET', k, 'n', string.format('%.17g', s[1]), 'mean', string.format('%.17g', s[2]), 'last', string.format('%.17g', s[3]))
  redis.call('PEXPIRE', k, ARGV[1])
end
return table.concat(out, ';')
`)

// parseAggregates parses "n mean last".
func parseAggregates(s string) (n, mean, last float64, ok bool) {
	a, rest, ok1 := strings.Cut(s, " ")
	m, l, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	n, err1 = strconv.ParseFloat(a, 64)
	mean, err2 = strconv.ParseFloat(m, 64)
	last, err3 = strconv.ParseFloat(l, 64)
	return n, mean, last, err1 == nil && err2 == nil && err3 == nil
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
