package models

import (
	"math"
	"slices"
)

// treeRow is one row as the trees read it: its dense values, and its valid
// hashed indices sorted and without repeats — the hash buckets present.
type treeRow struct {
	dense   []float32
	buckets []int32
}

// load points r at a row, using buf (of capacity NumHashed) for its
// buckets.
func (r *treeRow) load(dense []float32, hashed []int32, bits int, buf []int32) {
	r.dense = dense
	limit := int32(1) << bits
	b := buf[:0]
	for _, idx := range hashed {
		if idx >= 0 && idx < limit {
			b = append(b, idx)
		}
	}
	slices.Sort(b)
	r.buckets = slices.Compact(b)
}

// value is dense column j, and whether it is present (finite).
func (r *treeRow) value(j int) (float64, bool) {
	v := float64(r.dense[j])
	return v, !math.IsNaN(v) && !math.IsInf(v, 0)
}

// has reports whether hash bucket b is present.
func (r *treeRow) has(b int32) bool {
	_, found := slices.BinarySearch(r.buckets, b)
	return found
}
