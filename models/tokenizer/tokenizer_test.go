package tokenizer_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/driftline/driftline/models/tokenizer"
	"github.com/driftline/driftline/testkit/textmodeltest"
)

type goldenLine struct {
	IDs     []int64    `json:"ids"`
	Offsets [][2]int32 `json:"offsets"`
}

func readGolden(t *testing.T, dir string) (maxLen int, lines []goldenLine) {
	f, err := os.Open(filepath.Join(dir, "tokenizer_golden.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sc.Scan()
	var head struct {
		MaxLength int `json:"max_length"`
	}
	if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		var g goldenLine
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, g)
	}
	return head.MaxLength, lines
}

// TestIDsEqualHuggingFaceTokenizers encodes the committed corpus (English,
// Chinese, accents, control and zero-width characters, emoji, long words,
// truncation) and compares ids and byte offsets with what the `tokenizers`
// package gave for the same tokenizer.json (scripts/setup-textmodel.sh).
func TestIDsEqualHuggingFaceTokenizers(t *testing.T) {
	dir := textmodeltest.Dir(t)
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	maxLen, golden := readGolden(t, dir)
	corpus := textmodeltest.Corpus(t)
	if len(golden) != len(corpus) {
		t.Fatalf("%d golden lines for %d corpus lines", len(golden), len(corpus))
	}
	var b tokenizer.Batch
	bad := 0
	for i, text := range corpus {
		if err := tok.Encode(&b, []string{text}, maxLen); err != nil {
			t.Fatal(err)
		}
		want := golden[i]
		got := b.IDs[:b.Len]
		same := len(got) == len(want.IDs)
		for k := 0; same && k < len(got); k++ {
			same = got[k] == want.IDs[k] && b.Start[k] == want.Offsets[k][0] && b.End[k] == want.Offsets[k][1]
		}
		if !same && bad < 5 {
			bad++
			var gotOff [][2]int32
			for k := range got {
				gotOff = append(gotOff, [2]int32{b.Start[k], b.End[k]})
			}
			t.Errorf("line %d %q:\n got %v %v\nwant %v %v", i, text, got, gotOff, want.IDs, want.Offsets)
		}
	}
}

// Batches are padded to their longest row, with a mask of 0 on padding.
func TestEncodeBatchPadsPerBatch(t *testing.T) {
	dir := textmodeltest.Dir(t)
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b tokenizer.Batch
	texts := []string{"hello", "the server at 10.0.0.1 please, thanks", ""}
	if err := tok.Encode(&b, texts, 8); err != nil {
		t.Fatal(err)
	}
	if b.N != 3 || b.Len != 8 {
		t.Fatalf("N %d Len %d, want 3 and 8 (truncated to max length)", b.N, b.Len)
	}
	for r := range b.N {
		row := b.IDs[r*b.Len : (r+1)*b.Len]
		mask := b.Mask[r*b.Len : (r+1)*b.Len]
		n := 0
		for k := range row {
			if mask[k] == 1 {
				n++
			} else if row[k] != tok.PadID() {
				t.Errorf("row %d slot %d: padding id %d, want %d", r, k, row[k], tok.PadID())
			}
		}
		if tok.Token(row[0]) != "[CLS]" || tok.Token(row[n-1]) != "[SEP]" {
			t.Errorf("row %d: %v does not run [CLS] … [SEP]", r, row[:n])
		}
	}
	if err := tok.Encode(&b, texts[2:], 8); err != nil || b.Len != 2 {
		t.Fatalf("a batch of one empty text: Len %d, err %v; want 2 ([CLS] [SEP])", b.Len, err)
	}
}

func BenchmarkEncode(b *testing.B) {
	dir := textmodeltest.Dir(b)
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		b.Fatal(err)
	}
	corpus := textmodeltest.Corpus(b)[:64]
	var batch tokenizer.Batch
	tokens := 0
	for i := 0; i < len(corpus); i += 16 {
		_ = tok.Encode(&batch, corpus[i:i+16], 128)
		for _, m := range batch.Mask {
			tokens += int(m)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := 0; i < len(corpus); i += 16 {
			_ = tok.Encode(&batch, corpus[i:i+16], 128)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tokens), "ns/token")
}
