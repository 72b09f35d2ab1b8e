package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/registry"
	"github.com/driftline/driftline/stages"
	"github.com/driftline/driftline/testkit/kafkatest"
	"github.com/driftline/driftline/testkit/redistest"
	"github.com/driftline/driftline/testkit/replaytest"
	"github.com/driftline/driftline/testkit/streams"
)

// reportRow is one bucket line of the backtest's text report.
type reportRow struct {
	start             time.Time
	n                 int
	accCand, accChamp float64
	llCand, llChamp   float64
	aucCand, aucChamp float64
}

func parseReport(t *testing.T, out string) []reportRow {
	t.Helper()
	var rows []reportRow
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 8 {
			continue
		}
		start, err := time.Parse("2006-01-02T15:04Z", f[0])
		if err != nil {
			continue
		}
		num := func(s string) float64 {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("report value %q: %v", s, err)
			}
			return v
		}
		n, _ := strconv.Atoi(f[1])
		rows = append(rows, reportRow{start, n, num(f[2]), num(f[3]), num(f[4]), num(f[5]), num(f[6]), num(f[7])})
	}
	return rows
}

func TestBacktestCandidateBeatsChampionAfterDrift(t *testing.T) {
	broker := kafkatest.StartKfake(t)
	env := loadReplayEnv(t, broker.Addr, redistest.StartMiniredis(t))
	rdb := env.Redis
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// History: SEA concept A (variant 0) switching abruptly to concept B
	// (variant 2) at event 3000, one event per second: drift at 00:50.
	const n, drift = 6000, 3000
	start := streams.DefaultStart
	history := replaytest.SeededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 21, Step: time.Second,
		Drift: streams.Drift{Kind: streams.DriftAbrupt, Position: drift}}, n)
	// The champion learned concept A, the candidate concept B.
	champPath, candPath := filepath.Join(dir, "champion.snapshot"), filepath.Join(dir, "candidate.snapshot")
	replaytest.TrainOn(t, env.Spec, rdb, replaytest.SeededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 22}, 8000), 3, champPath)
	replaytest.TrainOn(t, env.Spec, rdb, replaytest.SeededEvents(t, streams.Config{Concept: streams.ConceptSEA, Seed: 23, Variant: 2, DriftVariant: 2}, 8000), 3, candPath)

	// The lake as the live pipeline wrote it (scored by the champion), and
	// the labels on their topic.
	src := filepath.Join(dir, "lake")
	champ, err := servedSnapshot(env, champPath)
	if err != nil {
		t.Fatal(err)
	}
	replaytest.WriteLiveLake(t, env.Spec, rdb, src, champ, history, 2)
	broker.CreateTopic(t, "labels", 2)
	cl := replaytest.Client(t, env.Brokers)
	var recs []*kgo.Record
	for i := range history {
		recs = append(recs, &kgo.Record{Topic: "labels", Value: streams.AppendLabelJSON(nil, &history[i])})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	report := filepath.Join(dir, "report.html")
	var stdout, stderr bytes.Buffer
	args := []string{"replay", "--spec", env.SpecPath, "--lake", src, "--backtest", "--labels-topic", "labels",
		"--snapshot", candPath, "--model-version", "2", "--champion-snapshot", champPath, "--bucket", "10m", "--report", report}
	if code := runMain(ctx, args, &stdout, &stderr); code != 0 {
		t.Fatalf("backtest exit %d: %s\n%s", code, stdout.String(), tail(stderr.String(), 2000))
	}
	t.Log(stdout.String())
	rows := parseReport(t, stdout.String())
	if len(rows) != 10 {
		t.Fatalf("%d buckets in the report, want 10 (100 minutes in buckets of 10m)", len(rows))
	}
	total := 0
	driftAt := start.Add(drift * time.Second)
	for _, r := range rows {
		total += r.n
		switch {
		case !r.start.Add(10 * time.Minute).After(driftAt): // before the drift
			if r.accChamp < r.accCand+0.03 {
				t.Errorf("bucket %s before the drift: champion accuracy %.4f, candidate %.4f; want the champion ahead", r.start, r.accChamp, r.accCand)
			}
		case !r.start.Before(driftAt): // after it
			if r.accCand < r.accChamp+0.03 || r.llCand >= r.llChamp {
				t.Errorf("bucket %s after the drift: candidate accuracy %.4f logloss %.4f, champion %.4f %.4f; want the candidate ahead",
					r.start, r.accCand, r.llCand, r.accChamp, r.llChamp)
			}
		}
		if r.aucCand < 0.5 || r.aucChamp < 0.5 {
			t.Errorf("bucket %s: AUC %.4f / %.4f", r.start, r.aucCand, r.aucChamp)
		}
	}
	if total < n*95/100 || total > n {
		t.Errorf("%d labelled rows in the buckets, want about %d", total, n)
	}

	// The HTML report is one well-formed page with the chart and both series.
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(page))
	dec.Strict, dec.AutoClose, dec.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	series := map[string]int{}
	svgs := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "svg":
				svgs++
			case "polyline":
				for _, a := range se.Attr {
					if a.Name.Local == "data-series" {
						series[a.Value] = len(strings.Fields(attr(se, "points")))
					}
				}
			case "script", "link":
				t.Errorf("report is not self-contained: <%s>", se.Name.Local)
			}
		}
	}
	if svgs != 1 || series["candidate"] != 10 || series["champion"] != 10 {
		t.Errorf("report has %d svg and points per series %v; want 1 svg and 10 points each", svgs, series)
	}
	if bytes.Contains(page, []byte("http://")) && !bytes.Contains(page, []byte(`xmlns="http://www.w3.org/2000/svg"`)) {
		t.Error("report refers to an external resource")
	}

	// Without --champion-snapshot the champion is the registry's champion:
	// the same snapshot, registered and aliased, gives the same figures.
	snap, err := os.ReadFile(champPath)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(rdb, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.Register(ctx, registry.Registration{Model: env.Spec.Model.Name, Snapshot: snap, Who: "test",
		Signature: registry.Signature{Inputs: []registry.Tensor{{Name: "x", DType: "float32"}}, Outputs: []registry.Tensor{{Name: "y", DType: "float32"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias(ctx, registry.AliasMove{Model: env.Spec.Model.Name, Alias: registry.AliasChampion, Version: v.Number, Who: "test"}); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	args = []string{"replay", "--spec", env.SpecPath, "--lake", src, "--backtest", "--labels-topic", "labels", "--snapshot", candPath, "--model-version", "2", "--bucket", "10m"}
	if code := runMain(ctx, args, &again, &stderr); code != 0 {
		t.Fatalf("backtest against the registry's champion: exit %d\n%s", code, tail(stderr.String(), 2000))
	}
	if head := strings.SplitN(again.String(), "\n", 2)[0]; !strings.Contains(head, fmt.Sprintf("vs champion %d,", v.Number)) {
		t.Errorf("header %q does not name the registry's champion, version %d", head, v.Number)
	}
	if got := parseReport(t, again.String()); len(got) != len(rows) || got[0].accChamp != rows[0].accChamp {
		t.Errorf("the registry's champion scored %+v, the same snapshot from a file %+v", got, rows)
	}
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// servedSnapshot is the learner snapshot at path, served as version 1 of
// the env's model, as replay --snapshot path --model-version 1 serves it.
func servedSnapshot(env *replaytest.Env, path string) (*stages.ServedModel, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l, err := models.UnmarshalLearner(data)
	if err != nil {
		return nil, err
	}
	return stages.NewServedModel(env.Spec.Model.Name, "1", stages.ArmShadow, l), nil
}

func TestBacktestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	writeFile(t, spec, replaySpecText(t, "127.0.0.1:1", "127.0.0.1:1"))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--backtest", "--from-time", "2026-01-01T00:00:00Z", "--to-time", "2026-01-02T00:00:00Z"}, "--labels-topic is required"},
		{[]string{"--backtest", "--lake", dir, "--to-lake", dir + "/x"}, "--backtest writes no predictions"},
		{[]string{"--lake", dir}, "a target is required"},
		{[]string{"--lake", dir, "--from-offsets", "0:1", "--to-offsets", "0:2", "--to-lake", dir + "/x"}, "--lake and --from-offsets"},
		{[]string{"--backtest", "--lake", dir, "--bucket", "0s"}, "--bucket must be positive"},
		{[]string{"--to-topic", "b", "--from-offsets", "0:1", "--to-offsets", "0:2", "--report", "r.html"}, "go with --backtest"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), append([]string{"replay", "--spec", spec}, c.args...), &stdout, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2", c.args, code)
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", c.args, c.want, tail(stderr.String(), 300))
		}
	}
}
