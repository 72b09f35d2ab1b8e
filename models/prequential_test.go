package models

import (
	"math"
	"testing"
)

func TestPrequentialWindowedMetrics(t *testing.T) {
	p := NewPrequential(4)
	if !math.IsNaN(p.Accuracy()) || !math.IsNaN(p.AUC()) {
		t.Fatal("empty metrics must be NaN")
	}
	for _, o := range [][2]float64{{0.9, 1}, {0.2, 0}, {0.6, 0}, {0.4, 1}} {
		p.Update(o[0], o[1])
	}
	if got := p.Accuracy(); got != 0.5 {
		t.Fatalf("accuracy = %v, want 0.5", got)
	}
	// positives {0.9, 0.4}, negatives {0.2, 0.6}: pairs won 0.9>0.2, 0.9>0.6, 0.4>0.2 → 3/4
	if got := p.AUC(); got != 0.75 {
		t.Fatalf("auc = %v, want 0.75", got)
	}
	wantLL := (-math.Log(0.9) - math.Log(0.8) - math.Log(0.4) - math.Log(0.4)) / 4
	if got := p.LogLoss(); math.Abs(got-wantLL) > 1e-12 {
		t.Fatalf("log loss = %v, want %v", got, wantLL)
	}
	// Sliding: four perfect outcomes push the old ones out.
	for i := 0; i < 4; i++ {
		p.Update(0.99, 1)
	}
	if p.Accuracy() != 1 || p.Count() != 8 || p.Len() != 4 {
		t.Fatalf("after sliding: acc %v count %d len %d", p.Accuracy(), p.Count(), p.Len())
	}
	p.Update(math.NaN(), 1)
	if p.Count() != 8 {
		t.Fatal("NaN outcome must be ignored")
	}
}

func TestPrequentialRegression(t *testing.T) {
	p := NewPrequential(10)
	p.Update(3, 1)
	p.Update(1, 2)
	if p.MAE() != 1.5 {
		t.Fatalf("mae = %v", p.MAE())
	}
	if got, want := p.RMSE(), math.Sqrt(2.5); math.Abs(got-want) > 1e-12 {
		t.Fatalf("rmse = %v, want %v", got, want)
	}
}

func BenchmarkPrequentialUpdate(b *testing.B) {
	p := NewPrequential(1000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Update(float64(i%100)/100, float64(i%2))
	}
}
