package evaluate

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/driftline/driftline/models"
)

// Options configure Run.
type Options struct {
	// Every records the metrics every Every rows (a learning curve); 0
	// records none.
	Every int
}

// Point is the metrics over the first Rows rows. Classification fills
// Accuracy and LogLoss (and AUC, for two classes with both seen);
// regression fills MAE and RMSE.
type Point struct {
	Rows     int      `json:"rows"`
	Accuracy *float64 `json:"accuracy,omitempty"`
	LogLoss  *float64 `json:"logloss,omitempty"`
	AUC      *float64 `json:"auc,omitempty"`
	MAE      *float64 `json:"mae,omitempty"`
	RMSE     *float64 `json:"rmse,omitempty"`
}

// Report is the outcome of a prequential run: the metrics over every row,
// the learning curve, and the speed of predicting and learning (reading
// the data is not timed).
type Report struct {
	Point
	Task    string `json:"task"`
	Classes int    `json:"classes,omitempty"`
	// Skipped counts rows without a label, which are neither predicted
	// nor learned.
	Skipped    int     `json:"skipped,omitempty"`
	Seconds    float64 `json:"seconds"`
	EventsPerS float64 `json:"events_per_s"`
	Curve      []Point `json:"curve,omitempty"`
}

// Run is River's progressive_val_score for driftline: for each row of d in
// order, l predicts it, then learns it (a models.MiniBatchLearner predicts
// a whole mini-batch, then learns it as one update), and the predictions
// are scored against the labels. y holds the targets (Dataset.Targets) and
// classes K for classification, 0 for regression; rows whose label is NaN
// are skipped.
func Run(l models.Learner, d *Dataset, y []float32, classes int, opts Options) (Report, error) {
	if len(y) != d.Rows.N {
		return Report{}, fmt.Errorf("evaluate: %d targets for %d rows", len(y), d.Rows.N)
	}
	if opts.Every < 0 {
		return Report{}, errors.New("evaluate: every must not be negative")
	}
	batch := 1
	if mb, ok := l.(models.MiniBatchLearner); ok && mb.MiniBatch() > 1 {
		batch = mb.MiniBatch()
	}
	k := l.Classes()
	s := scores{classes: classes}
	rep := Report{Task: models.TaskRegression.String()}
	if classes > 0 {
		rep.Task, rep.Classes = models.TaskClassification.String(), classes
	}
	rows := &models.Rows{NumDense: d.Rows.NumDense, NumHashed: d.Rows.NumHashed}
	dense := make([]float32, 0, batch*rows.NumDense)
	hashed := make([]int32, 0, batch*rows.NumHashed)
	labels := make([]float32, 0, batch)
	out := make([]float32, batch*k)
	var curveTime time.Duration // the curve's metrics are not part of the speed
	runtime.GC()                // the reading's garbage is not either
	start := time.Now()
	for i := 0; i < d.Rows.N; {
		dense, hashed, labels = dense[:0], hashed[:0], labels[:0]
		for ; i < d.Rows.N && len(labels) < batch; i++ {
			if y[i] != y[i] { // NaN: no label
				rep.Skipped++
				continue
			}
			dense = append(dense, d.Rows.DenseRow(i)...)
			hashed = append(hashed, d.Rows.HashedRow(i)...)
			labels = append(labels, y[i])
		}
		n := len(labels)
		if n == 0 {
			break
		}
		rows.N, rows.Dense, rows.Hashed = n, dense, hashed
		if err := l.Predict(out[:n*k], rows); err != nil {
			return rep, fmt.Errorf("evaluate: predict row %d: %w", s.n, err)
		}
		for r := range n {
			s.add(out[r*k:(r+1)*k], labels[r])
			if opts.Every > 0 && s.n%opts.Every == 0 {
				t := time.Now()
				rep.Curve = append(rep.Curve, s.point())
				curveTime += time.Since(t)
			}
		}
		if err := l.Learn(rows, labels); err != nil {
			return rep, fmt.Errorf("evaluate: learn row %d: %w", s.n, err)
		}
	}
	elapsed := time.Since(start) - curveTime
	rep.Point = s.point()
	rep.Seconds = elapsed.Seconds()
	if rep.Seconds > 0 {
		rep.EventsPerS = float64(s.n) / rep.Seconds
	}
	return rep, nil
}
