//go:build cgo && !noonnx

package stages

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/testkit/textmodeltest"
)

func textModelSpec(t *testing.T, task, extra string) *pipeline.Spec {
	t.Helper()
	dir := textmodeltest.Dir(t)
	y := `name: textmodel
topics: {input: events, predictions: predictions, dlq: events.dlq}
schema:
  id_field: id
  fields:
    - {name: id, type: string, required: true}
    - {name: msg, type: string}
    - {name: p0, type: float}
    - {name: p1, type: float}
    - {name: p2, type: float}
stages:
  dedupe: {enabled: false}
  anonymize: {dlq_payload: raw}
  text:
    model:
      field: msg
      path: ` + filepath.Join(dir, "bert_"+task+".onnx") + `
      tokenizer: ` + filepath.Join(dir, "tokenizer.json") + `
      max_length: 64
` + extra + `
  featurize: {numeric: [p0, p1, p2]}
model: {name: m}
`
	spec, err := pipeline.ParseSpec("textmodel.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func jsonRows(t *testing.T, texts []string) [][]byte {
	rows := make([][]byte, len(texts))
	for i, s := range texts {
		b, err := json.Marshal(map[string]string{"id": "r", "msg": s})
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = b
	}
	return rows
}

// The stage's class probabilities are the softmax of the logits Python's
// tokenizers + onnxruntime give for the same rows, to 1e-5; with a
// latency budget the rows are scored in padded sub-batches and still agree.
func TestTextModelSequenceOutputs(t *testing.T) {
	for _, budget := range []string{"", "      latency_budget: 1ms\n"} {
		spec := textModelSpec(t, "seq", "      task: sequence_classification\n      outputs: [p0, p1, p2]\n"+budget)
		m, err := OpenTextModel(spec)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		st, err := NewTextModelStage(spec, m)
		if err != nil {
			t.Fatal(err)
		}
		var golden struct {
			Seq [][][]float64 `json:"seq"`
		}
		data, err := os.ReadFile(filepath.Join(textmodeltest.Dir(t), "logits_golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &golden); err != nil {
			t.Fatal(err)
		}
		texts := textmodeltest.Corpus(t)[:16]
		for round := 0; round < 3; round++ { // let the controller adapt
			b := newBatch(0, jsonRows(t, texts)...)
			mustProcess(t, b, NewDecode(spec), NewValidate(spec), st)
			for i, logits := range golden.Seq[0] {
				hi, sum := math.Inf(-1), 0.0
				for _, v := range logits {
					hi = math.Max(hi, v)
				}
				for _, v := range logits {
					sum += math.Exp(v - hi)
				}
				for c, v := range logits {
					want := math.Exp(v-hi) / sum
					got := b.Record.Column(spec.FieldIndex([]string{"p0", "p1", "p2"}[c])).ValueStr(i)
					var g float64
					if err := json.Unmarshal([]byte(got), &g); err != nil || math.Abs(g-want) > 1e-5 {
						t.Fatalf("budget %q row %d class %d: %s, want %.6f", budget, i, c, got, want)
					}
				}
			}
		}
		if budget != "" && st.SubBatchSize() < 1 {
			t.Errorf("sub-batch size %d", st.SubBatchSize())
		}
	}
}

// A token classification model's BIO spans feed the PII stage: the spans
// it finds for its entity labels are redacted, and only those.
func TestTextModelEntitiesFeedPII(t *testing.T) {
	labels := "[" + strings.Join(textmodeltest.Labels, ", ") + "]"
	spec := textModelSpec(t, "tok", "      task: token_classification\n      labels: "+labels+`
    pii:
      - {field: msg, action: redact, types: [], entities: [PER, LOC]}`)
	rows := jsonRows(t, textmodeltest.Corpus(t)[:32])
	chain, err := PreparationChainWith(spec, nil, testKeys(), ChainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var model *TextModelStage
	for _, s := range chain {
		if m, ok := s.(*TextModelStage); ok {
			model = m
		}
	}
	if model == nil || chain[2] != pipeline.Stage(model) {
		t.Fatalf("the token classification model should run right before the PII stage: %v", chain)
	}
	b := newBatch(0, rows...)
	mustProcess(t, b, chain...)
	spans := model.Spans()
	total := 0
	corpus := textmodeltest.Corpus(t)[:32]
	for i, text := range corpus {
		want := ""
		prev := 0
		for _, s := range spans.Row(i) {
			if s.Start < prev || s.End <= s.Start || s.End > len(text) || (s.Label != "PER" && s.Label != "LOC") {
				t.Fatalf("row %d: bad span %+v of %q", i, s, text)
			}
			want += text[prev:s.Start] + "[ENTITY_" + s.Label + "]"
			prev = s.End
			total++
		}
		want += text[prev:]
		if got := colString(t, b, spec, "msg", i); got != want && !(want == "" && got == "<null>") {
			t.Errorf("row %d: %q, want %q", i, got, want)
		}
	}
	if total == 0 {
		t.Fatal("the random model found no entity in 32 rows; the test checks nothing")
	}
}
