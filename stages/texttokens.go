package stages

import (
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/pipeline"
)

// textTokens hashes one free-text field's words into the hashed block
// (stages.text.tokens): the lower-cased runs of ASCII letters and digits
// and each Han character are words; the first max words of a row give
// their FNV-1a hashes, salted with the slot's position k among the
// hashed features, and absent slots are -1.
type textTokens struct {
	col  int
	max  int
	slot int // hashed-block position of the first word
}

func newTextTokens(spec *pipeline.Spec, firstSlot int) []textTokens {
	var out []textTokens
	for _, t := range spec.Stages.Text.Tokens {
		out = append(out, textTokens{col: spec.FieldIndex(t.Field), max: t.MaxTokens, slot: firstSlot})
		firstSlot += t.MaxTokens
	}
	return out
}

// appendHashes appends the max hashed words of row i to dst.
func (t *textTokens) appendHashes(dst []int32, col *array.String, i int, mask uint32) []int32 {
	n := 0
	if !col.IsNull(i) {
		s := col.Value(i)
		for p := 0; p < len(s) && n < t.max; {
			c := s[p]
			if c < utf8.RuneSelf {
				if !isWordByte(c) {
					p++
					continue
				}
				h := tokenSeed(t.slot)
				for ; p < len(s) && s[p] < utf8.RuneSelf && isWordByte(s[p]); p++ {
					c := s[p]
					if c >= 'A' && c <= 'Z' {
						c += 'a' - 'A'
					}
					h = (h ^ uint32(c)) * fnvPrime32
				}
				dst = append(dst, int32(h&mask))
				n++
				continue
			}
			r, size := utf8.DecodeRuneInString(s[p:])
			if unicode.Is(unicode.Han, r) {
				h := tokenSeed(t.slot)
				for k := 0; k < size; k++ {
					h = (h ^ uint32(s[p+k])) * fnvPrime32
				}
				dst = append(dst, int32(h&mask))
				n++
			}
			p += size
		}
	}
	for ; n < t.max; n++ {
		dst = append(dst, -1)
	}
	return dst
}

// tokenSeed salts a word's hash with its field's first slot, so that one
// word in two text fields gives two features (and never collides on
// purpose with a categorical field's value hash).
func tokenSeed(slot int) uint32 {
	h := uint32(fnvOffset32)
	h = (h ^ uint32(slot)) * fnvPrime32
	return (h ^ 0xfe) * fnvPrime32
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}
