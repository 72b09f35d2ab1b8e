package stages

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/pipeline"
)

// TestAppendJSONStringMatchesPipeline checks the fast path writes what
// pipeline.AppendJSONString writes: every single byte at every position of
// 8- to 17-byte strings, and random strings of bytes the escaper treats
// specially.
func TestAppendJSONStringMatchesPipeline(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, want := appendJSONString([]byte("x"), s), pipeline.AppendJSONString([]byte("x"), s)
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	}
	for n := range 18 {
		for pos := range n {
			for c := range 256 {
				b := bytes.Repeat([]byte{'a'}, n)
				b[pos] = byte(c)
				check(string(b))
			}
		}
	}
	alphabet := []byte("aZ09_+/=\"\\\x00\x1f\x20\x7f\x80\xc3\xa9\xe2\x80\xa8\xff")
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for k := range b {
			b[k] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
}
