package textpii_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/driftline/driftline/stages/textpii"
	"github.com/driftline/driftline/testkit/streams"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus.jsonl from the seeded generator")

// The corpus: CorpusLines lines from streams.PIIText with CorpusSeed.
const (
	CorpusSeed  = 16
	CorpusLines = 2400
	corpusPath  = "testdata/corpus.jsonl"
)

func generateCorpus() []byte {
	g := streams.NewPIIText(CorpusSeed)
	var buf bytes.Buffer
	for range CorpusLines {
		b, err := json.Marshal(g.Line())
		if err != nil {
			panic(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// The committed corpus is what the seeded generator writes: regenerate it
// with `go test ./stages/textpii -run TestCorpusIsGenerated -update`
// (scripts/gen-pii-corpus.sh).
func TestCorpusIsGenerated(t *testing.T) {
	want := generateCorpus()
	if *update {
		if err := os.WriteFile(corpusPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(corpusPath)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the seeded generator's output; rerun with -update and review the diff", corpusPath)
	}
}

func loadCorpus(t testing.TB) []streams.PIILine {
	t.Helper()
	f, err := os.Open(filepath.FromSlash(corpusPath))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []streams.PIILine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l streams.PIILine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if len(lines) < 2000 {
		t.Fatalf("corpus has %d lines, want at least 2000", len(lines))
	}
	return lines
}

// score counts true and false positives and false negatives per type; a
// finding counts as true only with the labelled type and exact offsets.
type score struct{ tp, fp, fn int }

func (s score) precision() float64 { return float64(s.tp) / float64(max(1, s.tp+s.fp)) }
func (s score) recall() float64    { return float64(s.tp) / float64(max(1, s.tp+s.fn)) }

func scoreCorpus(sc *textpii.Scanner, lines []streams.PIILine) map[string]*score {
	scores := map[string]*score{}
	get := func(t string) *score {
		if scores[t] == nil {
			scores[t] = &score{}
		}
		return scores[t]
	}
	var fs []textpii.Finding
	for _, l := range lines {
		fs = sc.Scan(fs[:0], l.Text)
		want := map[streams.PIISpan]bool{}
		for _, s := range l.Spans {
			want[s] = true
		}
		for _, f := range fs {
			s := streams.PIISpan{Type: string(f.Type), Start: f.Start, End: f.End}
			if want[s] {
				get(s.Type).tp++
				delete(want, s)
			} else {
				get(s.Type).fp++
			}
		}
		for s := range want {
			get(s.Type).fn++
		}
	}
	return scores
}

// TestCorpusPrecisionRecall scores the built-in recognizers on the
// labelled corpus, per type. The corpus mixes English and Chinese, every
// format the generator writes, and decoys (order ids failing Luhn, dates,
// times, amounts, versions, ids and IBANs with wrong checks).
func TestCorpusPrecisionRecall(t *testing.T) {
	lines := loadCorpus(t)
	sc, err := textpii.New(textpii.Config{})
	if err != nil {
		t.Fatal(err)
	}
	scores := scoreCorpus(sc, lines)
	var names []string
	for n := range scores {
		names = append(names, n)
	}
	sort.Strings(names)
	var table strings.Builder
	fmt.Fprintf(&table, "%-16s %6s %5s %5s %9s %7s\n", "type", "tp", "fp", "fn", "precision", "recall")
	for _, n := range names {
		s := scores[n]
		fmt.Fprintf(&table, "%-16s %6d %5d %5d %9.4f %7.4f\n", n, s.tp, s.fp, s.fn, s.precision(), s.recall())
	}
	t.Logf("%d lines\n%s", len(lines), table.String())
	for _, typ := range textpii.BuiltinTypes() {
		s := scores[string(typ)]
		if s == nil || s.tp < 100 {
			t.Errorf("%s: the corpus should hold at least 100 spans of each type", typ)
			continue
		}
		if s.precision() < 0.995 || s.recall() < 0.995 {
			t.Errorf("%s: precision %.4f recall %.4f, want both at least 0.995", typ, s.precision(), s.recall())
		}
	}
}
