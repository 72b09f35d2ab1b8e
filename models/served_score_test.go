package models

import (
	"math"
	"testing"
)

func TestServedScore(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		out  []float32
		want float32
	}{
		{[]float32{0.7}, 0.7},
		{[]float32{0.3, 0.7}, 0.7},
		{[]float32{0.2, 0.5, 0.3}, 1},
		{[]float32{0.4, 0.2, 0.4}, 0}, // a tie: the first class
		{[]float32{nan, 0.1, 0.9}, 2},
		{[]float32{nan, nan, nan}, 0},
	} {
		if got := ServedScore(c.out); got != c.want {
			t.Errorf("ServedScore(%v) = %v, want %v", c.out, got, c.want)
		}
	}
}

func TestDecisionClass(t *testing.T) {
	bin := Decision{Threshold: 0.5, Classes: 2}
	if bin.Class(0.5) != 0 || bin.Class(0.51) != 1 || bin.MultiClass() {
		t.Error("binary decision: a tie must be class 0, above the threshold class 1")
	}
	multi := Decision{Threshold: 0.5, Classes: 3}
	if multi.Class(2) != 2 || multi.Class(0) != 0 || !multi.MultiClass() {
		t.Error("multi-class decision: the served score is the class")
	}
	if ClassOfOutputs([]float32{0.1, 0.2, 0.7}, 0.5) != 2 || ClassOfOutputs([]float32{0.5, 0.5}, 0.5) != 0 || ClassOfOutputs([]float32{0.8}, 0.5) != 1 {
		t.Error("ClassOfOutputs")
	}
}

func TestPrequentialMultiClass(t *testing.T) {
	p := NewPrequentialFor(10, Decision{Threshold: Threshold, Classes: 3})
	for _, o := range [][2]float64{{2, 2}, {1, 2}, {0, 0}, {1, 1}} {
		p.Update(o[0], o[1])
	}
	if got := p.Accuracy(); got != 0.75 {
		t.Errorf("accuracy %v, want 0.75", got)
	}
	if !math.IsNaN(p.LogLoss()) || !math.IsNaN(p.AUC()) || !math.IsNaN(p.MAE()) || !math.IsNaN(p.RMSE()) {
		t.Errorf("log loss %v, AUC %v, MAE %v, RMSE %v: want NaN for class-index scores", p.LogLoss(), p.AUC(), p.MAE(), p.RMSE())
	}
}
