package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type evalSummary struct {
	Model      string            `json:"model"`
	Params     map[string]string `json:"params"`
	Rows       int               `json:"rows"`
	Accuracy   *float64          `json:"accuracy"`
	MAE        *float64          `json:"mae"`
	EventsPerS float64           `json:"events_per_s"`
	Curve      []struct {
		Rows int `json:"rows"`
	} `json:"curve"`
}

func runEval(t *testing.T, args ...string) (evalSummary, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(context.Background(), append([]string{"eval"}, args...), &out, &errOut)
	var s evalSummary
	if code == 0 && strings.Contains(strings.Join(args, " "), "--json") {
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("eval --json printed %q: %v", out.String(), err)
		}
	}
	return s, out.String() + errOut.String(), code
}

// TestEvalStreamAndSavedFile evaluates a tree on a seeded stream, saves the
// stream, and evaluates the saved file: the same rows give the same
// accuracy.
func TestEvalStreamAndSavedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agrawal.csv")
	s, out, code := runEval(t, "--model", "hoeffding_tree", "--param", "grace_period=100", "--stream", "agrawal",
		"--events", "6000", "--drift", "abrupt", "--save", path, "--every", "2000", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if s.Model != "hoeffding_tree" || s.Rows != 6000 || s.Accuracy == nil || *s.Accuracy < 0.7 || s.EventsPerS <= 0 || len(s.Curve) != 3 {
		t.Fatalf("summary %+v", s)
	}
	f, out, code := runEval(t, "--model", "hoeffding_tree", "--param", "grace_period=100", "--in", path, "--label", "y", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if f.Rows != s.Rows || *f.Accuracy != *s.Accuracy {
		t.Fatalf("the saved stream gives %d rows at accuracy %v; the stream gave %d at %v", f.Rows, *f.Accuracy, s.Rows, *s.Accuracy)
	}
	_, text, code := runEval(t, "--model", "hat", "--stream", "sea", "--events", "2000")
	if code != 0 || !strings.Contains(text, "accuracy") || !strings.Contains(text, "events/s") {
		t.Fatalf("exit %d, output %q", code, text)
	}
}

func TestEvalRegressionFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	var b strings.Builder
	for i := range 3000 {
		x := float64(i%100) / 100
		b.WriteString(`{"x": ` + jsonNum(x) + `, "city": "` + []string{"a", "b", "c"}[i%3] + `", "target": ` + jsonNum(3*x+float64(i%3)) + "}\n")
	}
	writeFile(t, path, b.String())
	s, out, code := runEval(t, "--model", "hoeffding_tree_regressor", "--in", path, "--label", "target", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	if s.Rows != 3000 || s.MAE == nil || s.Accuracy != nil {
		t.Fatalf("summary %+v", s)
	}
}

func TestEvalErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--model", "forest", "--stream", "sea"}, 1, "unknown learner kind"},
		{[]string{"--model", "hat", "--param", "grace=1", "--stream", "sea"}, 1, `no param "grace"`},
		{[]string{"--model", "hat", "--param", "delta=7", "--stream", "sea"}, 1, "delta="},
		{[]string{"--model", "hat", "--in", "x.csv"}, 2, "--label"},
		{[]string{"--model", "hat"}, 2, "required"},
		{[]string{"--model", "linear", "--stream", "sea"}, 1, "classification model"},
		{[]string{"--model", "hat", "--stream", "stagger"}, 1, "unknown stream"},
	} {
		_, out, code := runEval(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("eval %v: exit %d, output %q; want exit %d mentioning %q", tc.args, code, out, tc.code, tc.want)
		}
	}
	_, out, code := runEval(t, "--help")
	if code != 0 || !strings.Contains(out, "progressive_val_score") || !strings.Contains(out, "arf_regressor") || !strings.Contains(out, "grace_period") {
		t.Errorf("eval --help: exit %d, output %q", code, out)
	}
}

func jsonNum(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
