package models

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/driftline/driftline/models/internal/pyrand"
)

// riverTrees is testdata/river_trees.json, written by
// testdata/gen_river_trees.py from River's trees and forests.
type riverTrees struct {
	Streams []riverStream `json:"streams"`
}

type riverStream struct {
	Name          string               `json:"name"`
	Seed          uint64               `json:"seed"`
	Rows          int                  `json:"rows"`
	Dense         int                  `json:"dense"`
	Categorical   int                  `json:"categorical"`
	Vocabulary    int                  `json:"vocabulary"`
	Missing       float64              `json:"missing"`
	Classes       int                  `json:"classes"`
	Task          string               `json:"task"`
	FirstRows     json.RawMessage      `json:"first_rows"`
	Checksum      float64              `json:"checksum"`
	Y             json.RawMessage      `json:"y"`
	Predictions   []*float64           `json:"predictions"`
	RawStructures [][2]json.RawMessage `json:"structures"`
	Params        map[string]any       `json:"params"`
}

func loadRiverTrees(t *testing.T) map[string]*riverStream {
	t.Helper()
	data, err := os.ReadFile("testdata/river_trees.json")
	if err != nil {
		t.Fatalf("read River's tree golden file (regenerate with testdata/gen_river_trees.py): %v", err)
	}
	var g riverTrees
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*riverStream)
	for i := range g.Streams {
		s := &g.Streams[i]
		out[s.Name] = s
	}
	return out
}

// rows regenerates a stream's features from its seed, as the
// generator script draws them from random.Random, and checks them against
// the rows and checksum River saw.
func (s *riverStream) rows(t *testing.T) (*Rows, []float32) {
	t.Helper()
	rx, rm := pyrand.New(s.Seed), pyrand.New(s.Seed+2)
	rows := &Rows{N: s.Rows, NumDense: s.Dense, NumHashed: s.Categorical,
		Dense: make([]float32, s.Rows*s.Dense), Hashed: make([]int32, s.Rows*s.Categorical)}
	type first struct {
		dense   []float64
		cats    []int32
		present []bool
	}
	var firsts []first
	sum := 0.0
	for i := range s.Rows {
		d, h := rows.DenseRow(i), rows.HashedRow(i)
		f := first{}
		for j := range d {
			v := float64(rx.Below(65537)) / 1024
			d[j] = float32(v)
			f.dense = append(f.dense, v)
		}
		for c := range h {
			h[c] = int32(c*s.Vocabulary + rx.Below(s.Vocabulary))
			f.cats = append(f.cats, h[c])
			sum += float64(h[c])
		}
		for j := range d {
			present := !(s.Missing > 0 && rm.Float64() < s.Missing)
			f.present = append(f.present, present)
			if present {
				sum += f.dense[j]
			} else {
				d[j] = float32(math.NaN())
			}
		}
		if i < 2 {
			firsts = append(firsts, f)
		}
	}
	var want []struct {
		Dense   []float64
		Cats    []int32
		Present []bool
	}
	var raw [][3]json.RawMessage
	if err := json.Unmarshal(s.FirstRows, &raw); err != nil {
		t.Fatal(err)
	}
	for _, r := range raw {
		var w struct {
			Dense   []float64
			Cats    []int32
			Present []bool
		}
		for i, p := range []any{&w.Dense, &w.Cats, &w.Present} {
			if err := json.Unmarshal(r[i], p); err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, w)
	}
	for i, w := range want {
		f := firsts[i]
		if !slices.Equal(w.Dense, f.dense) || !slices.Equal(w.Cats, nonNil(f.cats)) || !slices.Equal(w.Present, f.present) {
			t.Fatalf("%s: regenerated row %d is %v %v %v, River saw %v %v %v", s.Name, i, f.dense, f.cats, f.present, w.Dense, w.Cats, w.Present)
		}
	}
	if sum != s.Checksum {
		t.Fatalf("%s: regenerated rows sum to %v, River's to %v", s.Name, sum, s.Checksum)
	}
	y := make([]float32, s.Rows)
	if s.Task == "regression" {
		var ys []float64
		if err := json.Unmarshal(s.Y, &ys); err != nil {
			t.Fatal(err)
		}
		for i, v := range ys {
			y[i] = float32(v)
		}
	} else {
		var ys string
		if err := json.Unmarshal(s.Y, &ys); err != nil {
			t.Fatal(err)
		}
		for i, c := range ys {
			y[i] = float32(c - '0')
		}
	}
	return rows, y
}

func nonNil(v []int32) []int32 {
	if v == nil {
		return []int32{}
	}
	return v
}

func (s *riverStream) intParam(name string, def int) int {
	if v, ok := s.Params[name]; ok {
		return int(v.(float64))
	}
	return def
}

func (s *riverStream) stringParam(name, def string) string {
	if v, ok := s.Params[name]; ok {
		return v.(string)
	}
	return def
}

// treeStructure is a classification tree in the generator's form: preorder,
// branches as [feature, threshold] or [bucket, child of "present"], leaves
// as nil.
func treeStructure(n *cnode) []any {
	var out []any
	var walk func(*cnode)
	walk = func(n *cnode) {
		if n == nil {
			return
		}
		if !n.isBranch() {
			out = append(out, nil)
			return
		}
		if n.bucket {
			out = append(out, []any{fmt.Sprintf("b%04d", n.feature), float64(n.presentChild)})
		} else {
			out = append(out, []any{fmt.Sprintf("a%02d", n.feature), n.threshold})
		}
		walk(n.children[0])
		walk(n.children[1])
	}
	walk(n)
	return out
}

func (s *riverStream) structures(t *testing.T) map[int][]any {
	t.Helper()
	out := make(map[int][]any)
	for _, raw := range s.RawStructures {
		var row int
		var st []any
		if err := json.Unmarshal(raw[0], &row); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw[1], &st); err != nil {
			t.Fatal(err)
		}
		if st == nil {
			st = []any{}
		}
		out[row] = st
	}
	return out
}

func normalizeStructure(st []any) string {
	b, _ := json.Marshal(st)
	return string(b)
}

// TestHoeffdingTreeMatchesRiver replays River's streams through the
// classification tree: every row's prediction (before learning it) within
// 1e-6 of River's, and the tree's structure — split features, thresholds
// and the rows at which they appear — exactly River's.
func TestHoeffdingTreeMatchesRiver(t *testing.T) {
	golden := loadRiverTrees(t)
	for _, name := range []string{"ht_steps_nba", "ht_regions3_gini_mc", "ht_missing_nb", "ht_nominal_nba"} {
		s := golden[name]
		if s == nil {
			t.Fatalf("golden file has no stream %q", name)
		}
		t.Run(name, func(t *testing.T) {
			rows, y := s.rows(t)
			cfg := HoeffdingTreeConfig{Classes: s.Classes, NumDense: s.Dense, NumHashed: s.Categorical, HashBits: 6,
				GracePeriod: s.intParam("grace_period", 0)}
			switch s.stringParam("split_criterion", "info_gain") {
			case "gini":
				cfg.SplitCriterion = CriterionGini
			}
			switch s.stringParam("leaf_prediction", "nba") {
			case "mc":
				cfg.LeafPrediction = LeafMajorityClass
			case "nb":
				cfg.LeafPrediction = LeafNaiveBayes
			}
			h, err := NewHoeffdingTreeClassifier(cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := s.structures(t)
			k := h.Classes()
			out := make([]float32, k)
			last := normalizeStructure([]any{})
			splits := 0
			for i := range rows.N {
				row := rowsView(rows, i)
				if err := h.Predict(out, row); err != nil {
					t.Fatal(err)
				}
				checkPrediction(t, s, i, out)
				if err := h.Learn(row, y[i:i+1]); err != nil {
					t.Fatal(err)
				}
				got := normalizeStructure(treeStructure(h.t.root))
				if w, ok := want[i]; ok {
					if ws := normalizeStructure(w); ws != got {
						t.Fatalf("after row %d River's tree is %s, driftline's %s", i, ws, got)
					}
					splits++
				} else if got != last {
					t.Fatalf("after row %d driftline's tree changed to %s; River's stayed %s", i, got, last)
				}
				last = got
			}
			if splits < 3 {
				t.Fatalf("River's tree changed only %d times; the stream checks too little", splits)
			}
		})
	}
}

// rowsView is row i of rows as a batch of one.
func rowsView(rows *Rows, i int) *Rows {
	return &Rows{N: 1, NumDense: rows.NumDense, NumHashed: rows.NumHashed, Dense: rows.DenseRow(i), Hashed: rows.HashedRow(i)}
}

// checkPrediction compares the outputs for row i with River's prediction:
// P(y=1) for two classes, else the K probabilities; where River predicted
// nothing, driftline gives the uniform distribution.
func checkPrediction(t *testing.T, s *riverStream, i int, out []float32) {
	t.Helper()
	k := len(out)
	for c := range k {
		w := s.Predictions[i*k+c]
		want := 1 / float64(max(2, k))
		if w != nil {
			want = *w
		}
		if d := math.Abs(float64(out[c]) - want); d > 1e-6 {
			t.Fatalf("row %d: output %d is %v, River's %v (|diff| %.3g > 1e-6)", i, c, out[c], want, d)
		}
	}
}

// prequential replays a golden stream through l, predicting each row
// before learning it, and returns the outputs and the accuracy of the
// predicted classes (argmax, ties to the lowest class, as River's
// predict_one over sorted classes).
func prequential(t *testing.T, l Learner, rows *Rows, y []float32) ([]float32, float64) {
	t.Helper()
	k := l.Classes()
	all := make([]float32, rows.N*k)
	correct := 0
	for i := range rows.N {
		row := rowsView(rows, i)
		out := all[i*k : (i+1)*k]
		if err := l.Predict(out, row); err != nil {
			t.Fatal(err)
		}
		if predictedClass(out) == int(y[i]) {
			correct++
		}
		if err := l.Learn(row, y[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	return all, float64(correct) / float64(rows.N)
}

func predictedClass(out []float32) int {
	if len(out) == 1 {
		if out[0] > 0.5 {
			return 1
		}
		return 0
	}
	best := 0
	for c := range out {
		if out[c] > out[best] {
			best = c
		}
	}
	return best
}

// riverAccuracy is the accuracy of River's recorded predictions (rows it
// predicted nothing for count as wrong, as River's Accuracy does with None).
func riverAccuracy(s *riverStream, y []float32) float64 {
	k := max(1, s.Classes)
	if s.Classes == 2 {
		k = 1
	}
	correct := 0
	for i := range s.Rows {
		if s.Predictions[i*k] == nil {
			continue
		}
		out := make([]float32, k)
		for c := range k {
			out[c] = float32(*s.Predictions[i*k+c])
		}
		if predictedClass(out) == int(y[i]) {
			correct++
		}
	}
	return float64(correct) / float64(s.Rows)
}

// TestHoeffdingAdaptiveTreeMatchesRiver replays River's drifting stream
// through the HAT with River's seed: the prequential accuracy within 0.5
// points of River's, and — since the bootstrap draws River's random
// numbers — every prediction within 1e-6 of River's.
func TestHoeffdingAdaptiveTreeMatchesRiver(t *testing.T) {
	s := loadRiverTrees(t)["hat_drift"]
	if s == nil {
		t.Fatal("golden file has no stream hat_drift")
	}
	rows, y := s.rows(t)
	h, err := NewHoeffdingAdaptiveTreeClassifier(HATConfig{
		HoeffdingTreeConfig: HoeffdingTreeConfig{NumDense: s.Dense, GracePeriod: s.intParam("grace_period", 0)},
		Seed:                uint64(s.intParam("seed", 0)),
	})
	if err != nil {
		t.Fatal(err)
	}
	out, acc := prequential(t, h, rows, y)
	want := riverAccuracy(s, y)
	t.Logf("prequential accuracy %.4f, River's %.4f; %d alternate trees, %d switches, %d pruned",
		acc, want, h.t.nAlt, h.t.nSwitch, h.t.nPruned)
	if math.Abs(acc-want) > 0.005 {
		t.Errorf("prequential accuracy %.4f, River's %.4f: more than 0.5 points apart", acc, want)
	}
	for i := range rows.N {
		checkPrediction(t, s, i, out[i:i+1])
	}
	if h.t.nAlt == 0 {
		t.Error("the drift grew no alternate tree; the stream checks too little")
	}
}

// TestARFClassifierMatchesRiver replays River's drifting stream through the
// forest with River's seed: the prequential accuracy within 0.5 points of
// River's and, since the forest draws River's random numbers, every
// prediction within 1e-6 of River's.
func TestARFClassifierMatchesRiver(t *testing.T) {
	s := loadRiverTrees(t)["arf_drift"]
	if s == nil {
		t.Fatal("golden file has no stream arf_drift")
	}
	rows, y := s.rows(t)
	a, err := NewARFClassifier(ARFConfig{
		HoeffdingTreeConfig: HoeffdingTreeConfig{NumDense: s.Dense},
		Models:              s.intParam("n_models", 0),
		Seed:                uint64(s.intParam("seed", 0)),
	})
	if err != nil {
		t.Fatal(err)
	}
	out, acc := prequential(t, a, rows, y)
	want := riverAccuracy(s, y)
	warnings, drifts := 0, 0
	for i := range a.f.trees {
		warnings += a.f.warnings[i]
		drifts += a.f.drifts[i]
	}
	t.Logf("prequential accuracy %.4f, River's %.4f; %d warnings, %d drifts", acc, want, warnings, drifts)
	if math.Abs(acc-want) > 0.005 {
		t.Errorf("prequential accuracy %.4f, River's %.4f: more than 0.5 points apart", acc, want)
	}
	for i := range rows.N {
		checkPrediction(t, s, i, out[i:i+1])
	}
	if drifts == 0 {
		t.Error("the drift replaced no tree; the stream checks too little")
	}
}

// regressionStructure is a regression tree in the generator's form.
func regressionStructure(n *rnode) []any {
	var out []any
	var walk func(*rnode)
	walk = func(n *rnode) {
		if !n.isBranch() {
			out = append(out, nil)
			return
		}
		if n.bucket {
			out = append(out, []any{fmt.Sprintf("b%04d", n.feature), float64(n.presentChild)})
		} else {
			out = append(out, []any{fmt.Sprintf("a%02d", n.feature), n.threshold})
		}
		walk(n.children[0])
		walk(n.children[1])
	}
	if n != nil {
		walk(n)
	}
	return out
}

// checkValue compares the prediction for row i with River's, within 1e-6
// relative to max(1, |River's|) (the output is a float32).
func checkValue(t *testing.T, s *riverStream, i int, got float32) {
	t.Helper()
	want := *s.Predictions[i]
	if d := math.Abs(float64(got) - want); d > 1e-6*max(1, math.Abs(want)) {
		t.Fatalf("row %d: prediction %v, River's %v (|diff| %.3g)", i, got, want, d)
	}
}

// TestHoeffdingTreeRegressorMatchesRiver replays River's regression streams
// through the regressor: every prediction within 1e-6 (relative) of
// River's, and the tree's structure after every row exactly River's.
func TestHoeffdingTreeRegressorMatchesRiver(t *testing.T) {
	golden := loadRiverTrees(t)
	for _, name := range []string{"htr_adaptive", "htr_mean"} {
		s := golden[name]
		if s == nil {
			t.Fatalf("golden file has no stream %q", name)
		}
		t.Run(name, func(t *testing.T) {
			rows, y := s.rows(t)
			cfg := HoeffdingTreeRegressorConfig{NumDense: s.Dense, GracePeriod: s.intParam("grace_period", 0)}
			if s.stringParam("leaf_prediction", "adaptive") == "mean" {
				cfg.LeafPrediction = RegressionLeafMean
			}
			h, err := NewHoeffdingTreeRegressor(cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := s.structures(t)
			out := make([]float32, 1)
			last := normalizeStructure([]any{})
			for i := range rows.N {
				row := rowsView(rows, i)
				if err := h.Predict(out, row); err != nil {
					t.Fatal(err)
				}
				checkValue(t, s, i, out[0])
				if err := h.Learn(row, y[i:i+1]); err != nil {
					t.Fatal(err)
				}
				got := normalizeStructure(regressionStructure(h.t.root))
				if w, ok := want[i]; ok {
					if ws := normalizeStructure(w); ws != got {
						t.Fatalf("after row %d River's tree is %s, driftline's %s", i, ws, got)
					}
				} else if got != last {
					t.Fatalf("after row %d driftline's tree changed to %s; River's stayed %s", i, got, last)
				}
				last = got
			}
			if len(want) < 4 {
				t.Fatalf("River's tree changed only %d times; the stream checks too little", len(want))
			}
		})
	}
}

// TestARFRegressorMatchesRiver replays River's regression stream through
// the forest with River's seed: every prediction within 1e-6 (relative) of
// River's, and so the same mean absolute error.
func TestARFRegressorMatchesRiver(t *testing.T) {
	s := loadRiverTrees(t)["arf_regressor"]
	if s == nil {
		t.Fatal("golden file has no stream arf_regressor")
	}
	rows, y := s.rows(t)
	a, err := NewARFRegressor(ARFRegressorConfig{
		HoeffdingTreeRegressorConfig: HoeffdingTreeRegressorConfig{NumDense: s.Dense},
		Models:                       s.intParam("n_models", 0),
		Seed:                         uint64(s.intParam("seed", 0)),
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 1)
	var mae, riverMAE float64
	for i := range rows.N {
		row := rowsView(rows, i)
		if err := a.Predict(out, row); err != nil {
			t.Fatal(err)
		}
		checkValue(t, s, i, out[0])
		mae += math.Abs(float64(y[i]-out[0])) / float64(rows.N)
		riverMAE += math.Abs(float64(y[i])-*s.Predictions[i]) / float64(rows.N)
		if err := a.Learn(row, y[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	warnings := 0
	for i := range a.f.trees {
		warnings += a.f.warnings[i]
	}
	t.Logf("MAE %.5f, River's %.5f; %d warnings", mae, riverMAE, warnings)
}
