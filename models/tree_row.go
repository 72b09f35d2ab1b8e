package models

import (
	"math"
	"slices"
)

// treeRow is one row as the trees read it: its dense values as float64
// with their presence (finite), and its valid hashed indices sorted and
// without repeats — the hash buckets present. id is the same for two loads
// of equal rows in a row, so the trees can reuse what they computed for
// the previous call on it (predict, then learn, the same row).
type treeRow struct {
	x       []float64
	ok      []bool
	buckets []int32
	id      uint64

	dense   []float32 // the last row loaded, to recognize it again
	scratch []int32
}

// load reads a row; the row's slices are reused from call to call.
func (r *treeRow) load(dense []float32, hashed []int32, bits int) {
	fresh := r.x == nil || len(r.x) != len(dense)
	if fresh {
		r.x, r.ok, r.dense = make([]float64, len(dense)), make([]bool, len(dense)), make([]float32, len(dense))
	}
	limit := int32(1) << bits
	b := r.scratch[:0]
	for _, idx := range hashed {
		if idx >= 0 && idx < limit {
			b = append(b, idx)
		}
	}
	slices.Sort(b)
	b = slices.Compact(b)
	r.scratch = b
	if fresh || !sameBits(dense, r.dense) || !slices.Equal(b, r.buckets) {
		r.id++
		copy(r.dense, dense)
		r.buckets = append(r.buckets[:0], b...)
		for j, v := range dense {
			f := float64(v)
			r.x[j], r.ok[j] = f, !math.IsNaN(f) && !math.IsInf(f, 0)
		}
	}
}

func sameBits(a, b []float32) bool {
	for i, v := range a {
		if math.Float32bits(v) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// value is dense column j, and whether it is present (finite).
func (r *treeRow) value(j int) (float64, bool) { return r.x[j], r.ok[j] }

// has reports whether hash bucket b is present.
func (r *treeRow) has(b int32) bool {
	_, found := slices.BinarySearch(r.buckets, b)
	return found
}
