package main

// The backtest: a candidate and the champion score the same history, the
// labels are joined by event id, and the metrics are reported per time
// bucket of event time.

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages"
)

// backtestMetrics are one model's metrics over one bucket.
type backtestMetrics struct {
	Accuracy float64 `json:"accuracy"`
	LogLoss  float64 `json:"logloss"`
	AUC      float64 `json:"auc"`
}

// backtestBucket is one row of the report.
type backtestBucket struct {
	Start     time.Time       `json:"start"`
	N         int             `json:"n"`
	Candidate backtestMetrics `json:"candidate"`
	Champion  backtestMetrics `json:"champion"`
}

// backtestReport is the whole report.
type backtestReport struct {
	Candidate string           `json:"candidate"`
	Champion  string           `json:"champion"`
	Bucket    time.Duration    `json:"bucket"`
	Scored    int64            `json:"scored"`
	Labelled  int64            `json:"labelled"`
	Total     backtestBucket   `json:"total"`
	Buckets   []backtestBucket `json:"buckets"`
}

// backtester collects, per bucket, both models' scores of labelled rows.
type backtester struct {
	candidate, champion *stages.ServedModel
	bucket              time.Duration
	labels              map[string]float32 // by event id; nil: the lake's label column
	idCol, timeCol      int
	scored, labelled    int64
	acc                 map[int64]*bucketAcc
	candBuf, champBuf   []float32
}

type bucketAcc struct{ cand, champ, y []float64 }

func newBacktester(spec *pipeline.Spec, candidate, champion *stages.ServedModel, bucket time.Duration, labels map[string]float32) *backtester {
	bt := &backtester{candidate: candidate, champion: champion, bucket: bucket, labels: labels,
		idCol: spec.FieldIndex(spec.Schema.IDField), timeCol: -1, acc: map[int64]*bucketAcc{}}
	if spec.Schema.TimeField != "" {
		bt.timeCol = spec.FieldIndex(spec.Schema.TimeField)
	}
	return bt
}

// eventID is row i's event id as text.
func eventID(b *pipeline.Batch, col, i int) string {
	switch a := b.Record.Column(col).(type) {
	case *array.String:
		return a.Value(i)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	}
	return ""
}

// eventTime is row i's event time: the spec's time field, else the
// message timestamp (for lake rows: driftline_event_time).
func (bt *backtester) eventTime(b *pipeline.Batch, i int) time.Time {
	if bt.timeCol >= 0 {
		if ts, ok := b.Record.Column(bt.timeCol).(*array.Timestamp); ok && !ts.IsNull(i) {
			return ts.Value(i).ToTime(arrow.Microsecond)
		}
	}
	return b.Messages[i].Timestamp
}

// visit scores a featurized batch with both models and keeps the
// labelled rows. lakeLabels, when not empty, are the batch's own labels.
func (bt *backtester) visit(b *pipeline.Batch, lakeLabels []float32, lakeOK []bool) error {
	fb := &b.Features
	n := fb.Len()
	if n == 0 {
		return nil
	}
	rows := stages.FeatureRows(fb)
	bt.candBuf, bt.champBuf = slices.Grow(bt.candBuf[:0], n)[:n], slices.Grow(bt.champBuf[:0], n)[:n]
	if err := bt.candidate.Predict(bt.candBuf, &rows); err != nil {
		return fmt.Errorf("--snapshot: %w", err)
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
			y, ok = bt.labels[eventID(b, bt.idCol, i)]
		} else if i < len(lakeOK) {
			y, ok = lakeLabels[i], lakeOK[i]
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

func metricsOf(scores, y []float64) backtestMetrics {
	p := models.NewPrequential(len(scores))
	for i := range scores {
		p.Update(scores[i], y[i])
	}
	return backtestMetrics{Accuracy: p.Accuracy(), LogLoss: p.LogLoss(), AUC: p.AUC()}
}

func (bt *backtester) report() backtestReport {
	r := backtestReport{Candidate: bt.candidate.Version, Champion: bt.champion.Version, Bucket: bt.bucket, Scored: bt.scored, Labelled: bt.labelled}
	keys := make([]int64, 0, len(bt.acc))
	for k := range bt.acc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var all bucketAcc
	for _, k := range keys {
		a := bt.acc[k]
		r.Buckets = append(r.Buckets, backtestBucket{Start: time.UnixMicro(k).UTC(), N: len(a.y), Candidate: metricsOf(a.cand, a.y), Champion: metricsOf(a.champ, a.y)})
		all.cand, all.champ, all.y = append(all.cand, a.cand...), append(all.champ, a.champ...), append(all.y, a.y...)
	}
	r.Total = backtestBucket{N: len(all.y), Candidate: metricsOf(all.cand, all.y), Champion: metricsOf(all.champ, all.y)}
	return r
}

func fmtMetric(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', 4, 64)
}

// writeText prints the report as a table.
func (r *backtestReport) writeText(w io.Writer) {
	fmt.Fprintf(w, "backtest: candidate %s vs champion %s, %d rows scored, %d with labels, buckets of %s\n", r.Candidate, r.Champion, r.Scored, r.Labelled, r.Bucket)
	fmt.Fprintf(w, "%-20s %8s  %9s %9s  %9s %9s  %9s %9s\n", "bucket", "n", "acc.cand", "acc.champ", "ll.cand", "ll.champ", "auc.cand", "auc.champ")
	row := func(name string, b backtestBucket) {
		fmt.Fprintf(w, "%-20s %8d  %9s %9s  %9s %9s  %9s %9s\n", name, b.N,
			fmtMetric(b.Candidate.Accuracy), fmtMetric(b.Champion.Accuracy),
			fmtMetric(b.Candidate.LogLoss), fmtMetric(b.Champion.LogLoss),
			fmtMetric(b.Candidate.AUC), fmtMetric(b.Champion.AUC))
	}
	for _, b := range r.Buckets {
		row(b.Start.Format("2006-01-02T15:04Z"), b)
	}
	row("total", r.Total)
}

// readLabels reads every label record of topic (up to its end offsets
// now), by event id; a later label for the same id wins.
func readLabels(ctx context.Context, brokers []string, topic, idField, labelField string) (map[string]float32, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("--brokers: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("--labels-topic %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("--labels-topic %s: %w", topic, err)
	}
	want := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	var lerr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = o.Err
			return
		}
		s, _ := starts.Lookup(topic, o.Partition)
		if o.Offset > s.Offset {
			want[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(s.Offset)
		}
	})
	if lerr != nil {
		return nil, fmt.Errorf("--labels-topic %s: %w", topic, lerr)
	}
	if len(ends) == 0 {
		return nil, fmt.Errorf("--labels-topic %s does not exist", topic)
	}
	out := map[string]float32{}
	if len(want) == 0 {
		return out, nil
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("--labels-topic %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(r.Value, &m) != nil {
				return
			}
			var y float32
			if json.Unmarshal(m[labelField], &y) != nil {
				return
			}
			id := strings.TrimSpace(string(m[idField]))
			var s string
			if json.Unmarshal(m[idField], &s) == nil {
				id = s
			}
			if id != "" {
				out[id] = y
			}
		})
	}
	return out, nil
}

// writeHTML writes a self-contained report: a table and an inline SVG
// chart of accuracy per bucket for both models.
func (r *backtestReport) writeHTML(path string) error {
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
	points := func(pick func(backtestBucket) float64) string {
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
		"Cand":  points(func(b backtestBucket) float64 { return b.Candidate.Accuracy }),
		"Champ": points(func(b backtestBucket) float64 { return b.Champion.Accuracy }),
		"First": firstLast(r.Buckets, true), "Last": firstLast(r.Buckets, false),
		"F": fmtMetric,
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	if err := backtestHTML.Execute(f, data); err != nil {
		f.Close()
		return fmt.Errorf("--report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

func firstLast(bs []backtestBucket, first bool) string {
	if len(bs) == 0 {
		return ""
	}
	if first {
		return bs[0].Start.Format("2006-01-02 15:04Z")
	}
	return bs[len(bs)-1].Start.Format("2006-01-02 15:04Z")
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
{{range .R.Buckets}}<tr><td>{{.Start.Format "2006-01-02 15:04Z"}}</td><td>{{.N}}</td><td>{{f .Candidate.Accuracy}}</td><td>{{f .Champion.Accuracy}}</td><td>{{f .Candidate.LogLoss}}</td><td>{{f .Champion.LogLoss}}</td><td>{{f .Candidate.AUC}}</td><td>{{f .Champion.AUC}}</td></tr>
{{end}}</table></body></html>
`))
