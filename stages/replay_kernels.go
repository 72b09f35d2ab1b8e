package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/pipeline"
)

// ReplayFeaturize is the featurize stage (Featurize) for a replay that
// runs one batch at a time in one goroutine over a fresh state, as a
// direct replay does (internal/app's DirectReplay and Backtest): the same
// features, bit for bit, in the same FeatureBlock layout, computed a
// column at a time (one type switch per column and batch, not per value),
// with the entity aggregates kept in process instead of Redis.
//
// Keeping the aggregates in process gives the same values as Featurize
// with Redis under a fresh replay key prefix: that prefix starts empty
// and has one writer, Featurize updates an entity row by row within a
// batch, and Redis round-trips the float64 values exactly. The one
// difference: Redis keys expire ttl after their last write in wall-clock
// time, in-process state does not expire during the run (a replay reads
// history faster than it happened, so wall-clock expiry is no part of its
// semantics). Nothing is left behind when the run ends.
//
// A ReplayFeaturize is not safe for concurrent use; its state grows with
// the number of distinct entities replayed.
type ReplayFeaturize struct {
	numeric     []int
	categorical []int
	tokens      []textTokens
	mask        uint32
	numDense    int
	numHashed   int
	entityCol   int
	meanOfCol   int
	timeCol     int
	aggs        map[string]*entityAgg
	scratch     []int32
}

// NewReplayFeaturize builds the stage for spec (see ReplayFeaturize).
func NewReplayFeaturize(spec *pipeline.Spec) (*ReplayFeaturize, error) {
	fz := &spec.Stages.Featurize
	f := &ReplayFeaturize{mask: uint32(1)<<fz.HashBits - 1, entityCol: -1, meanOfCol: -1, timeCol: -1}
	for _, n := range fz.Numeric {
		f.numeric = append(f.numeric, spec.FieldIndex(n))
	}
	for _, n := range fz.Categorical {
		f.categorical = append(f.categorical, spec.FieldIndex(n))
	}
	f.tokens = newTextTokens(spec, len(f.categorical))
	f.numDense, f.numHashed = len(f.numeric), len(f.categorical)
	for _, t := range f.tokens {
		f.numHashed += t.max
	}
	if e := fz.Entity; e != nil {
		f.numDense += 3
		if f.entityCol = spec.FieldIndex(e.Field); f.entityCol < 0 {
			return nil, fmt.Errorf("featurize: entity field %q is not in the schema", e.Field)
		}
		if e.MeanOf != "" {
			f.meanOfCol = spec.FieldIndex(e.MeanOf)
		}
		if spec.Schema.TimeField != "" {
			f.timeCol = spec.FieldIndex(spec.Schema.TimeField)
		}
		f.aggs = map[string]*entityAgg{}
	}
	return f, nil
}

// Name implements pipeline.Stage.
func (f *ReplayFeaturize) Name() string { return "featurize" }

// NumDense is the number of dense values per row (Featurize.NumDense).
func (f *ReplayFeaturize) NumDense() int { return f.numDense }

// NumHashed is the number of hashed indices per row (Featurize.NumHashed).
func (f *ReplayFeaturize) NumHashed() int { return f.numHashed }

// Process implements pipeline.Stage: it appends the features of b's RowOK
// rows to b.Features, as Featurize does.
func (f *ReplayFeaturize) Process(_ context.Context, b *pipeline.Batch) error {
	fb := &b.Features
	fb.NumDense, fb.NumHashed = f.numDense, f.numHashed
	rows := appendOKRows(fb, b)
	if len(rows) == 0 {
		return nil
	}
	rec := b.Record
	if rec == nil {
		return errors.New("featurize: batch has no record")
	}
	dense := grow(&fb.Dense, len(rows)*f.numDense)
	hashed := grow(&fb.Hashed, len(rows)*f.numHashed)
	for k, c := range f.numeric {
		denseColumn(dense[k:], f.numDense, rec.Column(c), rows)
	}
	if f.entityCol >= 0 {
		if err := f.entityAggregates(dense[len(f.numeric):], b, rows); err != nil {
			return err
		}
	}
	for k, c := range f.categorical {
		hashColumn(hashed[k:], f.numHashed, rec.Column(c), rows, k, f.mask)
	}
	var err error
	if f.scratch, err = hashTokens(hashed, f.numHashed, rec, rows, f.tokens, f.scratch, f.mask); err != nil {
		return err
	}
	return nil
}

// grow extends *s by n values and returns the new ones.
func grow[T any](s *[]T, n int) []T {
	old := len(*s)
	if cap(*s)-old < n {
		next := make([]T, old, old+n+old/4)
		copy(next, *s)
		*s = next
	}
	*s = (*s)[:old+n]
	return (*s)[old:]
}

// denseColumn writes numericValue of col's rows to dst[j*stride].
func denseColumn(dst []float32, stride int, col arrow.Array, rows []int) {
	nan := float32(math.NaN())
	nulls := col.NullN() > 0
	switch a := col.(type) {
	case *array.Float64:
		vs := a.Float64Values()
		for j, i := range rows {
			if nulls && a.IsNull(i) {
				dst[j*stride] = nan
			} else {
				dst[j*stride] = float32(vs[i])
			}
		}
	case *array.Int64:
		vs := a.Int64Values()
		for j, i := range rows {
			if nulls && a.IsNull(i) {
				dst[j*stride] = nan
			} else {
				dst[j*stride] = float32(vs[i])
			}
		}
	default:
		for j, i := range rows {
			dst[j*stride] = numericValue(col, i)
		}
	}
}

// hashColumn writes the hash of categorical field k's rows (hashValue)
// to dst[j*stride].
func hashColumn(dst []int32, stride int, col arrow.Array, rows []int, k int, mask uint32) {
	seed := (uint32(fnvOffset32)^uint32(k))*fnvPrime32 ^ 0xff
	seed *= fnvPrime32
	a, ok := col.(*array.String)
	if !ok {
		f := Featurize{mask: mask}
		for j, i := range rows {
			dst[j*stride] = f.hashValue(col, i, k)
		}
		return
	}
	nulls := a.NullN() > 0
	for j, i := range rows {
		if nulls && a.IsNull(i) {
			dst[j*stride] = -1
			continue
		}
		h := seed
		s := a.Value(i)
		for p := 0; p < len(s); p++ {
			h = (h ^ uint32(s[p])) * fnvPrime32
		}
		dst[j*stride] = int32(h & mask)
	}
}

// appendOKRows appends the indices of b's rows still OK to fb.Row and
// returns them: the rows the featurize stage and the replay kernel write
// features for.
func appendOKRows(fb *pipeline.FeatureBlock, b *pipeline.Batch) []int {
	start := len(fb.Row)
	for i := range b.Len() {
		if b.OK(i) {
			fb.Row = append(fb.Row, i)
		}
	}
	return fb.Row[start:]
}

// hashTokens writes each row's token hashes of the text fields into
// hashed (stride per row, at each field's slot), as the live stage and the
// replay kernel both do; scratch is reused and returned.
func hashTokens(hashed []int32, stride int, rec arrow.RecordBatch, rows []int, tokens []textTokens, scratch []int32, mask uint32) ([]int32, error) {
	for k := range tokens {
		t := &tokens[k]
		col, ok := rec.Column(t.col).(*array.String)
		if !ok {
			return scratch, fmt.Errorf("featurize: text field column %d is %s, not a string", t.col, rec.Column(t.col).DataType())
		}
		for j, i := range rows {
			scratch = t.appendHashes(scratch[:0], col, i, mask)
			copy(hashed[j*stride+t.slot:j*stride+t.slot+t.max], scratch)
		}
	}
	return scratch, nil
}

// entityAggregates writes each row's three entity aggregates into
// dst[j*f.numDense:] and updates the entity, row by row in order, as
// Featurize.addEntityAggregates does.
func (f *ReplayFeaturize) entityAggregates(dst []float32, b *pipeline.Batch, rows []int) error {
	rec := b.Record
	col := rec.Column(f.entityCol)
	times, meanOf := aggColumns(rec, f.timeCol, f.meanOfCol)
	nan := float32(math.NaN())
	for j, i := range rows {
		row := dst[j*f.numDense : j*f.numDense+3]
		k := entityKey(col, i)
		if k == "" {
			row[0], row[1], row[2] = 0, nan, nan
			continue
		}
		agg := f.aggs[k]
		if agg == nil {
			agg = &entityAgg{}
			f.aggs[strings.Clone(k)] = agg
		}
		agg.step(row, times, meanOf, b, i)
	}
	return nil
}

// ScoreBatch writes m's served score (ServedModel.Predict) of each of
// b's feature rows into b.Scores, as Score.Process does, without building
// prediction records: for a target that stores the scores as a column (a
// replay into a lake) and has no use for the JSON.
func ScoreBatch(b *pipeline.Batch, m *ServedModel) error {
	fb := &b.Features
	n := fb.Len()
	if cap(b.Scores) < n {
		b.Scores = make([]float32, n)
	}
	b.Scores = b.Scores[:n]
	if n == 0 {
		return nil
	}
	rows := FeatureRows(fb)
	if err := m.Predict(b.Scores, &rows); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	return nil
}
