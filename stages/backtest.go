package stages

// The backtest: a candidate and the champion score the same history, the
// labels are joined by event id, and the metrics are reported per bucket
// of event time.

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
)

// BacktestMetrics are one model's metrics over one bucket (NaN where
// undefined, e.g. the AUC of a bucket with one class).
type BacktestMetrics struct {
	Accuracy float64 `json:"accuracy"`
	LogLoss  float64 `json:"logloss"`
	AUC      float64 `json:"auc"`
}

// BacktestBucket is one row of the report: the labelled rows with event
// times in [Start, Start+bucket).
type BacktestBucket struct {
	Start     time.Time       `json:"start"`
	N         int             `json:"n"`
	Candidate BacktestMetrics `json:"candidate"`
	Champion  BacktestMetrics `json:"champion"`
}

// BacktestReport is the whole report: the models' versions, the row
// counts, the buckets in time order and their total.
type BacktestReport struct {
	Candidate string           `json:"candidate"`
	Champion  string           `json:"champion"`
	Bucket    time.Duration    `json:"bucket"`
	Scored    int64            `json:"scored"`
	Labelled  int64            `json:"labelled"`
	Total     BacktestBucket   `json:"total"`
	Buckets   []BacktestBucket `json:"buckets"`
}

// Backtest collects, per bucket of event time, both models' scores of
// the labelled rows of the featurized batches it visits. It is used by one
// goroutine.
type Backtest struct {
	candidate, champion *ServedModel
	bucket              time.Duration
	labels              map[string]float32 // by event id; nil: the batches' own labels
	idCol, timeCol      int
	scored, labelled    int64
	acc                 map[int64]*bucketAcc
	candBuf, champBuf   []float32
}

type bucketAcc struct{ cand, champ, y []float64 }

// NewBacktest compares candidate with champion over buckets of event
// time (the spec's time field, else the message timestamp) of width
// bucket. labels are the labels by event id (the spec's id field); nil
// means that each batch comes with its own (Visit's lakeLabels).
func NewBacktest(spec *pipeline.Spec, candidate, champion *ServedModel, bucket time.Duration, labels map[string]float32) *Backtest {
	bt := &Backtest{candidate: candidate, champion: champion, bucket: bucket, labels: labels,
		idCol: spec.FieldIndex(spec.Schema.IDField), timeCol: -1, acc: map[int64]*bucketAcc{}}
	if spec.Schema.TimeField != "" {
		bt.timeCol = spec.FieldIndex(spec.Schema.TimeField)
	}
	return bt
}

// eventTime is row i's event time: the spec's time field, else the
// message timestamp (for lake rows: their event time).
func (bt *Backtest) eventTime(b *pipeline.Batch, i int) time.Time {
	if bt.timeCol >= 0 {
		if ts, ok := b.Record.Column(bt.timeCol).(*array.Timestamp); ok && !ts.IsNull(i) {
			return ts.Value(i).ToTime(arrow.Microsecond)
		}
	}
	return b.Messages[i].Timestamp
}

// Visit scores a featurized batch with both models and keeps the labelled
// rows. batchLabels and batchOK, used when the Backtest has no labels by
// id, are the batch's own labels by row (a lake's joined labels).
func (bt *Backtest) Visit(b *pipeline.Batch, batchLabels []float32, batchOK []bool) error {
	fb := &b.Features
	n := fb.Len()
	if n == 0 {
		return nil
	}
	rows := FeatureRows(fb)
	bt.candBuf, bt.champBuf = slices.Grow(bt.candBuf[:0], n)[:n], slices.Grow(bt.champBuf[:0], n)[:n]
	if err := bt.candidate.Predict(bt.candBuf, &rows); err != nil {
		return fmt.Errorf("candidate: %w", err)
	}
	if err := bt.champion.Predict(bt.champBuf, &rows); err != nil {
		return fmt.Errorf("champion: %w", err)
	}
	bt.scored += int64(n)
	for j, i := range fb.Row {
		var (
			y  float32
			ok bool
		)
		if bt.labels != nil {
			y, ok = bt.labels[EventID(b, bt.idCol, i)]
		} else if i < len(batchOK) {
			y, ok = batchLabels[i], batchOK[i]
		}
		if !ok {
			continue
		}
		bt.labelled++
		k := bt.eventTime(b, i).UTC().Truncate(bt.bucket).UnixMicro()
		a := bt.acc[k]
		if a == nil {
			a = &bucketAcc{}
			bt.acc[k] = a
		}
		a.cand = append(a.cand, float64(bt.candBuf[j]))
		a.champ = append(a.champ, float64(bt.champBuf[j]))
		a.y = append(a.y, float64(y))
	}
	return nil
}

func backtestMetricsOf(scores, y []float64) BacktestMetrics {
	p := models.NewPrequential(len(scores))
	for i := range scores {
		p.Update(scores[i], y[i])
	}
	return BacktestMetrics{Accuracy: p.Accuracy(), LogLoss: p.LogLoss(), AUC: p.AUC()}
}

// Report computes the metrics of every bucket and of all of them.
func (bt *Backtest) Report() BacktestReport {
	r := BacktestReport{Candidate: bt.candidate.Version, Champion: bt.champion.Version, Bucket: bt.bucket, Scored: bt.scored, Labelled: bt.labelled}
	keys := make([]int64, 0, len(bt.acc))
	for k := range bt.acc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var all bucketAcc
	for _, k := range keys {
		a := bt.acc[k]
		r.Buckets = append(r.Buckets, BacktestBucket{Start: time.UnixMicro(k).UTC(), N: len(a.y), Candidate: backtestMetricsOf(a.cand, a.y), Champion: backtestMetricsOf(a.champ, a.y)})
		all.cand, all.champ, all.y = append(all.cand, a.cand...), append(all.champ, a.champ...), append(all.y, a.y...)
	}
	r.Total = BacktestBucket{N: len(all.y), Candidate: backtestMetricsOf(all.cand, all.y), Champion: backtestMetricsOf(all.champ, all.y)}
	return r
}

func fmtMetric(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', 4, 64)
}

// BucketLabel is a bucket's start at the resolution of the bucket width:
// a day (2006-01-02) for whole days, minutes (2006-01-02T15:04Z) for whole
// minutes, seconds (…:05Z) for whole seconds, milliseconds below; so that
// no two buckets of a report read alike.
func (r *BacktestReport) BucketLabel(start time.Time) string {
	start = start.UTC()
	switch w := r.Bucket; {
	case w%(24*time.Hour) == 0:
		return start.Format("2006-01-02")
	case w%time.Minute == 0:
		return start.Format("2006-01-02T15:04Z")
	case w%time.Second == 0:
		return start.Format("2006-01-02T15:04:05Z")
	}
	return start.Format("2006-01-02T15:04:05.000Z")
}

// WriteText prints the report as a table: a header line, one line per
// bucket (its start, BucketLabel) and a total line; "-" marks an undefined
// metric.
func (r *BacktestReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "backtest: candidate %s vs champion %s, %d rows scored, %d with labels, buckets of %s\n", r.Candidate, r.Champion, r.Scored, r.Labelled, r.Bucket)
	fmt.Fprintf(w, "%-24s %8s  %9s %9s  %9s %9s  %9s %9s\n", "bucket", "n", "acc.cand", "acc.champ", "ll.cand", "ll.champ", "auc.cand", "auc.champ")
	row := func(name string, b BacktestBucket) {
		fmt.Fprintf(w, "%-24s %8d  %9s %9s  %9s %9s  %9s %9s\n", name, b.N,
			fmtMetric(b.Candidate.Accuracy), fmtMetric(b.Champion.Accuracy),
			fmtMetric(b.Candidate.LogLoss), fmtMetric(b.Champion.LogLoss),
			fmtMetric(b.Candidate.AUC), fmtMetric(b.Champion.AUC))
	}
	for _, b := range r.Buckets {
		row(r.BucketLabel(b.Start), b)
	}
	row("total", r.Total)
}

// WriteHTML writes the report as a self-contained HTML page: a table and
// an inline SVG chart of accuracy per bucket for both models (polylines
// with data-series candidate and champion).
func (r *BacktestReport) WriteHTML(out io.Writer) error {
	const w, h, pad = 800.0, 320.0, 40.0
	n := len(r.Buckets)
	x := func(i int) float64 {
		if n <= 1 {
			return pad + (w-2*pad)/2
		}
		return pad + float64(i)*(w-2*pad)/float64(n-1)
	}
	lo, hi := 1.0, 0.0
	for _, b := range r.Buckets {
		for _, v := range []float64{b.Candidate.Accuracy, b.Champion.Accuracy} {
			if !math.IsNaN(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		lo, hi = 0, 1
	}
	lo, hi = math.Max(0, math.Floor(lo*10)/10), math.Min(1, math.Ceil(hi*10)/10)
	if hi <= lo {
		lo, hi = max(0, lo-0.1), min(1, hi+0.1)
	}
	y := func(v float64) float64 { return h - pad - (v-lo)/(hi-lo)*(h-2*pad) }
	points := func(pick func(BacktestBucket) float64) string {
		var sb strings.Builder
		for i, b := range r.Buckets {
			v := pick(b)
			if math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&sb, "%.1f,%.1f ", x(i), y(v))
		}
		return strings.TrimSpace(sb.String())
	}
	type tick struct {
		Y     float64
		Label string
	}
	var ticks []tick
	for k := 0; k <= 4; k++ {
		v := lo + float64(k)*(hi-lo)/4
		ticks = append(ticks, tick{Y: y(v), Label: strconv.FormatFloat(v, 'f', 3, 64)})
	}
	data := map[string]any{
		"R": r, "W": w, "H": h, "Pad": pad, "Ticks": ticks,
		"Cand":  points(func(b BacktestBucket) float64 { return b.Candidate.Accuracy }),
		"Champ": points(func(b BacktestBucket) float64 { return b.Champion.Accuracy }),
	}
	if n > 0 {
		data["First"], data["Last"] = r.BucketLabel(r.Buckets[0].Start), r.BucketLabel(r.Buckets[n-1].Start)
	}
	return backtestHTML.Execute(out, data)
}

var backtestHTML = template.Must(template.New("backtest").Funcs(template.FuncMap{"f": fmtMetric}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>driftline backtest: {{.R.Candidate}} vs {{.R.Champion}}</title>
<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
.cand{stroke:#d62728}.champ{stroke:#1f77b4}</style></head><body>
<h1>Backtest: candidate {{.R.Candidate}} vs champion {{.R.Champion}}</h1>
<p>{{.R.Scored}} rows scored, {{.R.Labelled}} with labels, buckets of {{.R.Bucket}}.
Overall accuracy: candidate {{f .R.Total.Candidate.Accuracy}}, champion {{f .R.Total.Champion.Accuracy}}.</p>
<svg id="accuracy" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="accuracy per bucket">
<rect x="0" y="0" width="{{.W}}" height="{{.H}}" fill="white"/>
{{range .Ticks}}<line x1="{{$.Pad}}" x2="{{$.W}}" y1="{{.Y}}" y2="{{.Y}}" stroke="#eee"/><text x="2" y="{{.Y}}" font-size="10">{{.Label}}</text>
{{end}}<text x="{{.Pad}}" y="{{.H}}" font-size="10" dy="-4">{{.First}}</text><text x="{{.W}}" y="{{.H}}" font-size="10" dy="-4" text-anchor="end">{{.Last}}</text>
<polyline class="cand" data-series="candidate" fill="none" stroke-width="2" points="{{.Cand}}"/>
<polyline class="champ" data-series="champion" fill="none" stroke-width="2" points="{{.Champ}}"/>
<text x="{{.Pad}}" y="14" font-size="12" fill="#d62728">candidate {{.R.Candidate}}</text>
<text x="{{.Pad}}" y="28" font-size="12" fill="#1f77b4">champion {{.R.Champion}}</text>
</svg>
<table><tr><th>bucket</th><th>n</th><th>accuracy candidate</th><th>accuracy champion</th><th>logloss candidate</th><th>logloss champion</th><th>AUC candidate</th><th>AUC champion</th></tr>
{{range .R.Buckets}}<tr><td>{{$.R.BucketLabel .Start}}</td><td>{{.N}}</td><td>{{f .Candidate.Accuracy}}</td><td>{{f .Champion.Accuracy}}</td><td>{{f .Candidate.LogLoss}}</td><td>{{f .Champion.LogLoss}}</td><td>{{f .Candidate.AUC}}</td><td>{{f .Champion.AUC}}</td></tr>
{{end}}</table></body></html>
`))
