package models

import (
	"math"
	"slices"
)

// leafModel is the linear model of a regression tree's leaf: River's
// linear_model.LinearRegression with its defaults (squared loss, plain SGD
// at LeafLearningRate for the weights and the intercept, gradient clipped
// to ±1e12, weights from zero), on the row's raw values. A hash bucket
// that is present is the value 1; an absent one contributes nothing.
type leafModel struct {
	w         []float64 // by dense column
	buckets   []bucketWeight
	intercept float64
}

type bucketWeight struct {
	bucket int32
	w      float64
}

func newLeafModel(nd int) *leafModel { return &leafModel{w: make([]float64, nd)} }

func (m *leafModel) clone() *leafModel {
	if m == nil {
		return nil
	}
	return &leafModel{w: slices.Clone(m.w), buckets: slices.Clone(m.buckets), intercept: m.intercept}
}

func (m *leafModel) bucketIndex(b int32) (int, bool) {
	return slices.BinarySearchFunc(m.buckets, b, func(bw bucketWeight, b int32) int {
		switch {
		case bw.bucket < b:
			return -1
		case bw.bucket > b:
			return 1
		}
		return 0
	})
}

// predict is LinearRegression.predict_one.
func (m *leafModel) predict(r *treeRow) float64 {
	dot := 0.0
	for j, w := range m.w {
		if x, ok := r.value(j); ok {
			dot += w * x
		}
	}
	for _, b := range r.buckets {
		if i, ok := m.bucketIndex(b); ok {
			dot += m.buckets[i].w
		}
	}
	return dot + m.intercept
}

// learn is LinearRegression.learn_one(x, y, w).
func (m *leafModel) learn(r *treeRow, y, sw, rate float64) {
	g := 2 * (m.predict(r) - y)
	g *= sw
	g = max(-DefaultClipGradient, min(DefaultClipGradient, g))
	if math.IsNaN(g) {
		return
	}
	m.intercept -= rate * g
	for j := range m.w {
		if x, ok := r.value(j); ok {
			m.w[j] -= rate * (x * g)
		}
	}
	for _, b := range r.buckets {
		i, ok := m.bucketIndex(b)
		if !ok {
			m.buckets = slices.Insert(m.buckets, i, bucketWeight{bucket: b})
		}
		m.buckets[i].w -= rate * g
	}
}
