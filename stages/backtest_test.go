package stages

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/streams"
)

// backtestBatches featurizes n SEA events, one a second from
// streams.DefaultStart, in batches of 100.
func backtestBatches(t *testing.T, spec *pipeline.Spec, fz *Featurize, seed uint64, n int) ([]*pipeline.Batch, []streams.Event) {
	t.Helper()
	g, err := streams.NewGenerator(streams.Config{Concept: streams.ConceptSEA, Seed: seed, Step: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]streams.Event, n)
	var out []*pipeline.Batch
	for lo := 0; lo < n; lo += 100 {
		var rows [][]byte
		for i := lo; i < min(lo+100, n); i++ {
			g.Next(&evs[i])
			rows = append(rows, streams.AppendJSON(nil, &evs[i]))
		}
		b := newBatch(int64(lo), rows...)
		mustProcess(t, b, NewDecode(spec), NewValidate(spec), fz)
		out = append(out, b)
	}
	return out, evs
}

func TestBacktestMetricsPerBucket(t *testing.T) {
	spec := testSpec(t, false)
	fz, err := NewFeaturize(spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The candidate learned the concept; the champion is a fresh learner,
	// whose every score is 0.5.
	train, trainEvs := backtestBatches(t, spec, fz, 3, 3000)
	cand, err := NewLearner(spec, fz)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for _, b := range train {
			rows := FeatureRows(&b.Features)
			y := make([]float32, 0, len(b.Features.Row))
			for _, i := range b.Features.Row {
				y = append(y, float32(trainEvs[int(b.Messages[i].Offset)].Label))
			}
			if err := cand.Learn(&rows, y); err != nil {
				t.Fatal(err)
			}
		}
	}
	champ, err := NewLearner(spec, fz)
	if err != nil {
		t.Fatal(err)
	}
	batches, evs := backtestBatches(t, spec, fz, 4, 600)
	labels := map[string]float32{}
	perBucket := map[time.Time]int{}
	for i, e := range evs {
		if i%10 == 9 {
			continue // unlabelled
		}
		labels[e.ID] = float32(e.Label)
		perBucket[e.Time.UTC().Truncate(2*time.Minute)]++
	}
	bt := NewBacktest(spec, NewServedModel("m", "cand", ArmShadow, cand), NewServedModel("m", "champ", ArmChampion, champ), 2*time.Minute, labels)
	for _, b := range batches {
		if err := bt.Visit(b, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	rep := bt.Report()
	if rep.Scored != 600 || rep.Labelled != int64(len(labels)) || rep.Candidate != "cand" || rep.Champion != "champ" || rep.Bucket != 2*time.Minute {
		t.Fatalf("report %d scored, %d labelled, %s vs %s; want 600, %d", rep.Scored, rep.Labelled, rep.Candidate, rep.Champion, len(labels))
	}
	if len(rep.Buckets) != len(perBucket) || rep.Total.N != len(labels) {
		t.Fatalf("%d buckets with %d rows, want %d with %d", len(rep.Buckets), rep.Total.N, len(perBucket), len(labels))
	}
	for i, b := range rep.Buckets {
		if i > 0 && !b.Start.After(rep.Buckets[i-1].Start) {
			t.Errorf("bucket %v after %v: not in time order", b.Start, rep.Buckets[i-1].Start)
		}
		if b.N != perBucket[b.Start] {
			t.Errorf("bucket %v: %d rows, want the %d labelled events of its two minutes", b.Start, b.N, perBucket[b.Start])
		}
		// A constant score of 0.5 has log loss ln 2 whatever the labels.
		if math.Abs(b.Champion.LogLoss-math.Ln2) > 1e-6 {
			t.Errorf("bucket %v: the fresh champion's log loss %v, want ln 2", b.Start, b.Champion.LogLoss)
		}
		if b.Candidate.LogLoss >= math.Ln2 || b.Candidate.Accuracy < 0.75 || b.Candidate.AUC < 0.8 {
			t.Errorf("bucket %v: candidate %+v; want it to beat a coin", b.Start, b.Candidate)
		}
	}

	// The batches' own labels (a lake's) give the same report.
	lakeBT := NewBacktest(spec, NewServedModel("m", "cand", ArmShadow, cand), NewServedModel("m", "champ", ArmChampion, champ), 2*time.Minute, nil)
	for _, b := range batches {
		y, ok := make([]float32, b.Len()), make([]bool, b.Len())
		for i, m := range b.Messages {
			y[i], ok[i] = float32(evs[m.Offset].Label), m.Offset%10 != 9
		}
		if err := lakeBT.Visit(b, y, ok); err != nil {
			t.Fatal(err)
		}
	}
	if got := lakeBT.Report(); got.Total != rep.Total || len(got.Buckets) != len(rep.Buckets) {
		t.Errorf("with the batches' labels: total %+v, want %+v", got.Total, rep.Total)
	}

	var text bytes.Buffer
	rep.WriteText(&text)
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if len(lines) != 2+len(rep.Buckets)+1 || !strings.HasPrefix(lines[0], "backtest: candidate cand vs champion champ, 600 rows scored, 540 with labels, buckets of 2m0s") ||
		!strings.HasPrefix(lines[2], rep.Buckets[0].Start.Format("2006-01-02T15:04Z")) || !strings.HasPrefix(lines[len(lines)-1], "total") {
		t.Errorf("text report:\n%s", text.String())
	}
	var page bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-series="candidate"`, `data-series="champion"`, "<svg", "Backtest: candidate cand vs champion champ"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("HTML report lacks %s", want)
		}
	}
}

func TestBacktestUndefinedMetricsPrintAsDash(t *testing.T) {
	r := BacktestReport{Candidate: "c", Champion: "f", Bucket: time.Hour,
		Total: BacktestBucket{N: 1, Candidate: BacktestMetrics{Accuracy: 1, LogLoss: 0.1, AUC: math.NaN()}, Champion: BacktestMetrics{Accuracy: 0, LogLoss: 0.7, AUC: math.NaN()}}}
	var text bytes.Buffer
	r.WriteText(&text)
	if !strings.Contains(text.String(), "total                           1     1.0000    0.0000     0.1000    0.7000          -         -") {
		t.Errorf("text report:\n%q", text.String())
	}
}

// Bucket labels have the resolution of the bucket width, so that no two
// buckets of a report read alike.
func TestBacktestBucketLabels(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	for w, want := range map[time.Duration]string{
		24 * time.Hour:         "2026-03-04",
		time.Hour:              "2026-03-04T05:06Z",
		5 * time.Minute:        "2026-03-04T05:06Z",
		10 * time.Second:       "2026-03-04T05:06:07Z",
		250 * time.Millisecond: "2026-03-04T05:06:07.890Z",
	} {
		r := BacktestReport{Bucket: w}
		if got := r.BucketLabel(at); got != want {
			t.Errorf("bucket %s: label %q, want %q", w, got, want)
		}
	}
}
