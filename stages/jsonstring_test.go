package stages

import (
	"bytes"
	"encoding/binary"
	"math/bits"
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

// TestEscapeMask8FirstByte checks that escapeMask8's lowest set bit is in
// the first byte that is below 0x20, '"', '\\' or not ASCII (the scanner
// jumps to it), and that it is zero when there is none: every byte value
// at every position over a plain background, and random words drawn from
// the bytes next to the tests' edges.
func TestEscapeMask8FirstByte(t *testing.T) {
	stop := func(c byte) bool { return c < 0x20 || c == '"' || c == '\\' || c >= 0x80 }
	check := func(w [8]byte) {
		t.Helper()
		first := 8
		for i := 7; i >= 0; i-- {
			if stop(w[i]) {
				first = i
			}
		}
		m := escapeMask8(binary.LittleEndian.Uint64(w[:]))
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) / 8
		}
		if got != first {
			t.Fatalf("% x: mask %016x points at byte %d, the first stop byte is %d", w, m, got, first)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			w := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			w[pos] = byte(c)
			check(w)
		}
	}
	edges := []byte{0, 1, 0x1f, 0x20, 0x21, '"' - 1, '"', '"' + 1, '\\' - 1, '\\', '\\' + 1, 0x7f, 0x80, 0x81, 0xa0, 0xdc, 0xff, 'a'}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var w [8]byte
		for i := range w {
			w[i] = edges[rng.IntN(len(edges))]
		}
		check(w)
	}
}
