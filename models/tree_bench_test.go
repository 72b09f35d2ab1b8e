package models_test

import (
	"fmt"
	"testing"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/testkit/streams"
)

// treeFamilies builds one learner of each tree family for the nine
// Agrawal attributes (binary) or, for the regressors, for the same rows.
var treeFamilies = []struct {
	name       string
	regression bool
	build      func() (models.Learner, error)
}{
	{"hoeffding_tree", false, func() (models.Learner, error) {
		return models.NewHoeffdingTreeClassifier(models.HoeffdingTreeConfig{NumDense: 9})
	}},
	{"hat", false, func() (models.Learner, error) {
		return models.NewHoeffdingAdaptiveTreeClassifier(models.HATConfig{HoeffdingTreeConfig: models.HoeffdingTreeConfig{NumDense: 9}, Seed: 1})
	}},
	{"arf10", false, func() (models.Learner, error) {
		return models.NewARFClassifier(models.ARFConfig{HoeffdingTreeConfig: models.HoeffdingTreeConfig{NumDense: 9}, Seed: 1})
	}},
	{"hoeffding_tree_regressor", true, func() (models.Learner, error) {
		return models.NewHoeffdingTreeRegressor(models.HoeffdingTreeRegressorConfig{NumDense: 8})
	}},
	{"arf10_regressor", true, func() (models.Learner, error) {
		return models.NewARFRegressor(models.ARFRegressorConfig{HoeffdingTreeRegressorConfig: models.HoeffdingTreeRegressorConfig{NumDense: 8}, Seed: 1})
	}},
}

// agrawalRows draws n rows of an Agrawal stream (function 0, abrupt drift
// to function 4 at the middle): the nine attributes and the label, or, for
// regression, eight attributes and the salary as the target.
func agrawalRows(tb testing.TB, n int, regression bool) (*models.Rows, []float32) {
	tb.Helper()
	gen, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptAgrawal, Seed: 7,
		Drift: streams.Drift{Kind: streams.DriftAbrupt, Position: int64(n / 2)}})
	if err != nil {
		tb.Fatal(err)
	}
	nd := 9
	if regression {
		nd = 8
	}
	rows := &models.Rows{N: n, NumDense: nd, Dense: make([]float32, n*nd)}
	y := make([]float32, n)
	var e streams.Event
	for i := range n {
		gen.Next(&e)
		d := rows.DenseRow(i)
		if regression {
			for j := range d {
				d[j] = float32(e.F[j+1])
			}
			y[i] = float32(e.F[0] / 1000)
			continue
		}
		for j := range d {
			d[j] = float32(e.F[j])
		}
		y[i] = float32(e.Label)
	}
	return rows, y
}

func trainedTree(tb testing.TB, build func() (models.Learner, error), regression bool) (models.Learner, *models.Rows) {
	tb.Helper()
	l, err := build()
	if err != nil {
		tb.Fatal(err)
	}
	rows, y := agrawalRows(tb, 20000, regression)
	if err := l.Learn(rows, y); err != nil {
		tb.Fatal(err)
	}
	return l, rows
}

// TestTreePredictDoesNotAllocate asserts what the predict benchmarks
// report: no allocation per call, for batches of 1 and 64 rows.
func TestTreePredictDoesNotAllocate(t *testing.T) {
	for _, f := range treeFamilies {
		l, rows := trainedTree(t, f.build, f.regression)
		for _, batch := range []int{1, 64} {
			view := &models.Rows{N: batch, NumDense: rows.NumDense, Dense: rows.Dense[:batch*rows.NumDense]}
			dst := make([]float32, batch*l.Classes())
			if n := testing.AllocsPerRun(100, func() {
				if err := l.Predict(dst, view); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("%s: Predict on %d rows allocates %.1f times per call", f.name, batch, n)
			}
		}
	}
}

// BenchmarkTreePredict measures Predict on trained trees and forests, at
// batches of 1 and 64 rows (ns/row and allocs per call):
//
//	go test -run '^$' -bench TreePredict ./models/
func BenchmarkTreePredict(b *testing.B) {
	for _, f := range treeFamilies {
		l, rows := trainedTree(b, f.build, f.regression)
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", f.name, batch), func(b *testing.B) {
				b.ReportAllocs()
				dst := make([]float32, batch*l.Classes())
				view := &models.Rows{N: batch, NumDense: rows.NumDense}
				i := 0
				for b.Loop() {
					lo := (i * batch) % (rows.N - batch)
					view.Dense = rows.Dense[lo*rows.NumDense : (lo+batch)*rows.NumDense]
					if err := l.Predict(dst, view); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/row")
			})
		}
	}
}

// BenchmarkTreePrequential runs predict-then-learn, row by row, over
// 100,000 rows of Agrawal with an abrupt drift at 50,000 (the work
// `driftline eval` does), and reports rows/s:
//
//	go test -run '^$' -bench TreePrequential -benchtime 1x ./models/
func BenchmarkTreePrequential(b *testing.B) {
	for _, f := range treeFamilies {
		b.Run(f.name, func(b *testing.B) {
			rows, y := agrawalRows(b, 100_000, f.regression)
			b.ReportAllocs()
			for b.Loop() {
				l, err := f.build()
				if err != nil {
					b.Fatal(err)
				}
				dst := make([]float32, l.Classes())
				one := &models.Rows{N: 1, NumDense: rows.NumDense}
				for i := range rows.N {
					one.Dense = rows.DenseRow(i)
					if err := l.Predict(dst, one); err != nil {
						b.Fatal(err)
					}
					if err := l.Learn(one, y[i:i+1]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*rows.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
