// Package textmodeltest finds the text-model fixtures that
// scripts/setup-textmodel.sh builds (a tokenizer.json, two tiny BERT ONNX
// models and the Python reference outputs of `tokenizers` and
// `onnxruntime`), for the tokenizer's and the ONNX text engine's tests.
package textmodeltest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Labels are the token classification model's BIO labels.
var Labels = []string{"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}

// Dir returns the fixtures folder, failing t with what to run when it is
// missing or was built from another corpus.
func Dir(t testing.TB) string {
	t.Helper()
	root := os.Getenv("DRIFTLINE_CACHE")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		root = filepath.Join(home, ".cache", "driftline")
	}
	dir := filepath.Join(root, "textmodel")
	f, err := os.Open(filepath.Join(dir, "tokenizer_golden.jsonl"))
	if err != nil {
		t.Fatalf("text-model fixtures missing (%v): run scripts/setup-textmodel.sh (part of scripts/setup.sh), which needs python3 and PyPI", err)
	}
	defer f.Close()
	var head struct {
		Sha string `json:"corpus_sha256"`
	}
	sc := bufio.NewScanner(f)
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &head) != nil {
		t.Fatalf("%s: bad header; rerun scripts/setup-textmodel.sh", f.Name())
	}
	data, err := os.ReadFile(CorpusPath())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != head.Sha {
		t.Fatalf("the fixtures in %s were built from another corpus: rerun scripts/setup-textmodel.sh", dir)
	}
	return dir
}

// CorpusPath is the committed tokenizer corpus: one JSON string per line.
func CorpusPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "models", "tokenizer", "testdata", "corpus.jsonl")
}

// Corpus reads the committed tokenizer corpus.
func Corpus(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(CorpusPath())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range splitLines(data) {
		var s string
		if err := json.Unmarshal(l, &s); err != nil {
			t.Fatalf("corpus: %v", err)
		}
		lines = append(lines, s)
	}
	return lines
}

func splitLines(data []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range data {
		if c == '\n' {
			out = append(out, data[start:i])
			start = i + 1
		}
	}
	if start < len(data) {
		out = append(out, data[start:])
	}
	return out
}
