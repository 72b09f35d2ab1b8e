//go:build cgo && !noonnx

package ortengine_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/driftline/driftline/models/ortengine"
	"github.com/driftline/driftline/models/tokenizer"
	"github.com/driftline/driftline/testkit/textmodeltest"
)

type logitsGolden struct {
	MaxLength int             `json:"max_length"`
	Batch     int             `json:"batch"`
	Seq       [][][]float64   `json:"seq"`
	Tok       [][][][]float64 `json:"tok"`
}

// TestTextLogitsEqualPython tokenizes the committed corpus with the Go
// tokenizer, runs the tiny BERT models (sequence and token
// classification) with ONNX Runtime, and compares every logit with what
// Python's tokenizers + onnxruntime gave (scripts/setup-textmodel.sh), to
// 1e-5, batch by batch, each padded to its longest row.
func TestTextLogitsEqualPython(t *testing.T) {
	dir := textmodeltest.Dir(t)
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "logits_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden logitsGolden
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	corpus := textmodeltest.Corpus(t)
	for _, task := range []string{"seq", "tok"} {
		model, err := os.ReadFile(filepath.Join(dir, "bert_"+task+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := ortengine.NewText(ortengine.Config{}, model, "")
		if err != nil {
			t.Fatal(err)
		}
		if m.TokenLevel() != (task == "tok") {
			t.Fatalf("%s: token level %v", task, m.TokenLevel())
		}
		var b tokenizer.Batch
		var dst []float32
		worst := 0.0
		for bi, i := 0, 0; i < len(corpus); bi, i = bi+1, i+golden.Batch {
			texts := corpus[i:min(i+golden.Batch, len(corpus))]
			if err := tok.Encode(&b, texts, golden.MaxLength); err != nil {
				t.Fatal(err)
			}
			n := b.N * m.Classes()
			if m.TokenLevel() {
				n *= b.Len
			}
			dst = append(dst[:0], make([]float32, n)...)
			if err := m.Run(dst, ortengine.TextBatch{N: b.N, T: b.Len, IDs: b.IDs, Mask: b.Mask, TypeIDs: b.TypeID}); err != nil {
				t.Fatal(err)
			}
			k := 0
			check := func(want float64) {
				worst = math.Max(worst, math.Abs(float64(dst[k])-want))
				k++
			}
			if task == "seq" {
				for _, row := range golden.Seq[bi] {
					for _, v := range row {
						check(v)
					}
				}
			} else {
				if len(golden.Tok[bi][0]) != b.Len {
					t.Fatalf("batch %d: padded to %d tokens, Python to %d", bi, b.Len, len(golden.Tok[bi][0]))
				}
				for _, row := range golden.Tok[bi] {
					for _, tokLogits := range row {
						for _, v := range tokLogits {
							check(v)
						}
					}
				}
			}
			if k != n {
				t.Fatalf("batch %d: %d logits, Python has %d", bi, n, k)
			}
		}
		t.Logf("%s: largest |Go − Python| logit difference %.3g", task, worst)
		if worst > 1e-5 {
			t.Errorf("%s: logits differ from Python's by up to %.3g, want ≤ 1e-5", task, worst)
		}
		m.Close()
	}
}
