package models

import (
	"math/rand/v2"
	"testing"
)

// TestTreeMemoryBound trains the same tree with and without a small memory
// bound on a stream that keeps it growing: the bounded tree deactivates
// leaves (dropping their observers) and stays within a small multiple of
// its bound, as River's memory manager keeps it; the unbounded one does
// not.
func TestTreeMemoryBound(t *testing.T) {
	const nd = 20
	rng := rand.New(rand.NewPCG(5, 6))
	n := 60000
	rows := &Rows{N: n, NumDense: nd, Dense: make([]float32, n*nd)}
	y := make([]float32, n)
	for i := range n {
		d := rows.DenseRow(i)
		s := 0.0
		for j := range d {
			d[j] = float32(rng.Float64())
			if j%2 == 0 {
				s += float64(d[j])
			}
		}
		if s+0.3*rng.NormFloat64() > 5 {
			y[i] = 1
		}
	}
	build := func(maxMiB float64) *HoeffdingTreeClassifier {
		h, err := NewHoeffdingTreeClassifier(HoeffdingTreeConfig{NumDense: nd, GracePeriod: 50, Delta: 0.01, MaxSizeMiB: maxMiB, MemoryEstimatePeriod: 2000})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Learn(rows, y); err != nil {
			t.Fatal(err)
		}
		return h
	}
	const bound = 0.05 // MiB
	free, bounded := build(1000), build(bound)
	freeBytes, boundedBytes := float64(free.t.treeBytes(free.t.root)), float64(bounded.t.treeBytes(bounded.t.root))
	t.Logf("unbounded: %.0f KiB, %d active leaves; bounded to %v MiB: %.0f KiB, %d active and %d inactive leaves",
		freeBytes/1024, free.t.mem.nActive, bound, boundedBytes/1024, bounded.t.mem.nActive, bounded.t.mem.nInactive)
	if freeBytes < 4*bound*(1<<20) {
		t.Fatalf("the unbounded tree holds only %.0f KiB; the stream does not test the bound", freeBytes/1024)
	}
	if bounded.t.mem.nInactive == 0 {
		t.Fatal("the bounded tree deactivated no leaf")
	}
	if boundedBytes > 2*bound*(1<<20) {
		t.Fatalf("the bounded tree holds %.0f KiB, more than twice its %v MiB bound", boundedBytes/1024, bound)
	}
}
