package stages

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/driftline/driftline/models"
)

// A softmax model's K outputs per row become one served score per row:
// P(y=1) for two classes, the predicted class for more. Before, the score
// stage gave the learner one value per row and every batch failed
// ("predict destination holds 99 values, want 198").
func TestScoreMultiClass(t *testing.T) {
	for _, k := range []int{2, 3} {
		spec := parseTestSpec(t, false, map[string]string{"kind: logistic": "kind: softmax"})
		spec.Model.Classes = k
		c := newChain(t, spec, nil)
		_, rows := genEvents(t, 5, 40, 20)
		// Teach the champion that every row is of the last class.
		b := newBatch(0, rows...)
		mustProcess(t, b, c.stages()...)
		fr := FeatureRows(&b.Features)
		y := make([]float32, fr.N)
		for i := range y {
			y[i] = float32(k - 1)
		}
		for range 50 {
			if err := c.champion.Learn(&fr, y); err != nil {
				t.Fatal(err)
			}
		}
		b = newBatch(0, rows...)
		mustProcess(t, b, c.stages()...)
		if len(b.Outputs) != fr.N || len(b.Scores) != fr.N {
			t.Fatalf("K=%d: %d outputs, %d scores for %d rows", k, len(b.Outputs), len(b.Scores), fr.N)
		}
		for j, out := range b.Outputs {
			var p prediction
			if err := json.Unmarshal(out.Value, &p); err != nil {
				t.Fatal(err)
			}
			if p.Class == nil || *p.Class != k-1 {
				t.Fatalf("K=%d: row %d: class %v, want %d (taught): %s", k, j, p.Class, k-1, out.Value)
			}
			score := float64(b.Scores[j])
			if k == 2 && !(score > 0.5 && score <= 1) {
				t.Errorf("K=2: served score %v, want P(y=1) above 0.5", score)
			}
			if k > 2 && score != float64(k-1) {
				t.Errorf("K=%d: served score %v, want the class index %d", k, score, k-1)
			}
		}
	}
}

func TestServedModelPredictShape(t *testing.T) {
	spec := parseTestSpec(t, false, map[string]string{"kind: logistic": "kind: softmax"})
	spec.Model.Classes = 4
	c := newChain(t, spec, nil)
	rows := models.Rows{N: 2, NumDense: c.fz.NumDense(), NumHashed: c.fz.NumHashed(),
		Dense: make([]float32, 2*c.fz.NumDense()), Hashed: make([]int32, 2*c.fz.NumHashed())}
	if err := c.champion.Predict(make([]float32, 8), &rows); !errors.Is(err, models.ErrShape) {
		t.Errorf("K outputs per row for a served model: %v, want ErrShape (one served score per row)", err)
	}
	dst := []float32{-1, -1}
	if err := c.champion.Predict(dst, &rows); err != nil || dst[0] < 0 || dst[0] > 3 {
		t.Errorf("served scores %v, %v: want class indexes in [0, 4)", dst, err)
	}
}
