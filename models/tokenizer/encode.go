package tokenizer

import (
	"errors"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// Batch is a batch of encoded texts, padded to its longest sequence:
// row r's tokens are IDs[r*Len : (r+1)*Len], Mask is 1 on real tokens and
// 0 on padding, and TypeIDs are all 0 (one sequence per row). Start and
// End are each token's byte offsets in its text; special tokens and
// padding have -1. A Batch holds the scratch space of encoding and is
// reused: it is not safe for concurrent use, and its slices are valid
// until the next Encode.
type Batch struct {
	N, Len            int
	IDs, Mask, TypeID []int64
	Start, End        []int32

	// Per-row sequences before padding, flat; rowEnd[r] ends row r.
	ids        []int64
	starts     []int32
	ends       []int32
	rowEnd     []int
	normalized []byte
	// from and to are the text offsets of the character each normalized
	// byte came from.
	from, to []int32
	word     []byte
	nfd      []byte
	one      [utf8.UTFMax]byte
}

// ErrMaxLength is returned for a maximum length under 3 ([CLS], one
// token, [SEP]).
var ErrMaxLength = errors.New("tokenizer: max length must be at least 3")

// Encode tokenizes texts into b: each row is [CLS] tokens… [SEP],
// truncated to maxLen tokens with the specials, and the batch is padded to
// its longest row. In the steady state (b's buffers grown) it allocates
// nothing.
func (t *Tokenizer) Encode(b *Batch, texts []string, maxLen int) error {
	if maxLen < 3 {
		return ErrMaxLength
	}
	b.ids, b.starts, b.ends, b.rowEnd = b.ids[:0], b.starts[:0], b.ends[:0], b.rowEnd[:0]
	longest := 0
	for _, text := range texts {
		begin := len(b.ids)
		b.push(int64(t.cls), -1, -1)
		t.encodeText(b, text, maxLen-2)
		b.push(int64(t.sep), -1, -1)
		b.rowEnd = append(b.rowEnd, len(b.ids))
		longest = max(longest, len(b.ids)-begin)
	}
	b.N, b.Len = len(texts), longest
	n := b.N * b.Len
	b.IDs, b.Mask, b.TypeID = grow(b.IDs, n), grow(b.Mask, n), grow(b.TypeID, n)
	b.Start, b.End = grow(b.Start, n), grow(b.End, n)
	begin := 0
	for r, end := range b.rowEnd {
		row := r * b.Len
		k := copy(b.IDs[row:row+b.Len], b.ids[begin:end])
		copy(b.Start[row:], b.starts[begin:end])
		copy(b.End[row:], b.ends[begin:end])
		for j := 0; j < b.Len; j++ {
			b.TypeID[row+j] = 0
			if j < k {
				b.Mask[row+j] = 1
				continue
			}
			b.IDs[row+j], b.Mask[row+j], b.Start[row+j], b.End[row+j] = int64(t.pad), 0, -1, -1
		}
		begin = end
	}
	return nil
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

func (b *Batch) push(id int64, start, end int32) {
	b.ids = append(b.ids, id)
	b.starts = append(b.starts, start)
	b.ends = append(b.ends, end)
}

// encodeText appends at most budget tokens of text to b: the special
// added tokens written in it, and the word pieces of the text between
// them.
func (t *Tokenizer) encodeText(b *Batch, text string, budget int) {
	used, seg := 0, 0
	for p := 0; p < len(text) && used < budget; {
		sp, ok := t.matchSpecial(text, p)
		if !ok {
			p++
			continue
		}
		used += t.encodeSegment(b, text, seg, p, budget-used)
		if used < budget {
			b.push(int64(sp.id), int32(p), int32(p+len(sp.text)))
			used++
		}
		p += len(sp.text)
		seg = p
	}
	if used < budget {
		t.encodeSegment(b, text, seg, len(text), budget-used)
	}
}

// encodeSegment appends at most budget word pieces of text[from:to] to b
// and returns how many it appended.
func (t *Tokenizer) encodeSegment(b *Batch, text string, from, to, budget int) int {
	t.normalize(b, text, from, to)
	s := b.normalized
	used := 0
	for p := 0; p < len(s) && used < budget; {
		r, size := utf8.DecodeRune(s[p:])
		if isWhitespace(r) {
			p += size
			continue
		}
		end := p + size
		if !isPunctuation(r) {
			for end < len(s) {
				r2, size2 := utf8.DecodeRune(s[end:])
				if isWhitespace(r2) || isPunctuation(r2) {
					break
				}
				end += size2
			}
		}
		used += t.wordPieces(b, s, p, end, budget-used)
		p = end
	}
	return used
}

// wordPieces appends the word pieces of the word s[p:end], at most budget
// of them, and returns how many it appended.
func (t *Tokenizer) wordPieces(b *Batch, s []byte, p, end, budget int) int {
	word := s[p:end]
	if utf8.RuneCount(word) > t.maxWordChars {
		b.push(int64(t.unk), b.from[p], b.to[end-1])
		return 1
	}
	mark := len(b.ids)
	for start := 0; start < len(word); {
		stop := len(word)
		found := int32(-1)
		for stop > start {
			b.word = b.word[:0]
			if start > 0 {
				b.word = append(b.word, t.prefix...)
			}
			b.word = append(b.word, word[start:stop]...)
			if id, ok := t.vocab[unsafe.String(unsafe.SliceData(b.word), len(b.word))]; ok {
				found = id
				break
			}
			_, size := utf8.DecodeLastRune(word[start:stop])
			stop -= size
		}
		if found < 0 {
			// No piece fits: the whole word is unknown.
			b.ids, b.starts, b.ends = b.ids[:mark], b.starts[:mark], b.ends[:mark]
			b.push(int64(t.unk), b.from[p], b.to[end-1])
			return 1
		}
		b.push(int64(found), b.from[p+start], b.to[p+stop-1])
		start = stop
	}
	n := len(b.ids) - mark
	if n > budget {
		b.ids, b.starts, b.ends = b.ids[:mark+budget], b.starts[:mark+budget], b.ends[:mark+budget]
		n = budget
	}
	return n
}

// normalize writes the BertNormalizer's form of text[from:to] to b.normalized, and
// where each of its bytes came from to b.from and b.to.
func (t *Tokenizer) normalize(b *Batch, text string, from, to int) {
	b.normalized, b.from, b.to = b.normalized[:0], b.from[:0], b.to[:0]
	for p := from; p < to; {
		r, size := utf8.DecodeRuneInString(text[p:to])
		at := [2]int32{int32(p), int32(p + size)}
		p += size
		if t.cleanText {
			if r == 0 || r == utf8.RuneError && size == 1 || r == 0xFFFD || isControl(r) {
				continue
			}
			if isWhitespace(r) {
				r = ' '
			}
		}
		if t.chineseChars && isChinese(r) {
			b.appendRune(' ', at)
			if t.stripAccents {
				b.appendStripped(r, at) // CJK compatibility ideographs decompose
			} else {
				b.appendRune(r, at)
			}
			b.appendRune(' ', at)
			continue
		}
		if t.lowercase {
			r = unicode.ToLower(r)
		}
		if t.stripAccents && r >= utf8.RuneSelf {
			b.appendStripped(r, at)
			continue
		}
		b.appendRune(r, at)
	}
}

func (b *Batch) appendRune(r rune, at [2]int32) {
	n := len(b.normalized)
	b.normalized = utf8.AppendRune(b.normalized, r)
	for range len(b.normalized) - n {
		b.from = append(b.from, at[0])
		b.to = append(b.to, at[1])
	}
}

// appendStripped appends r decomposed (NFD) without its nonspacing marks.
func (b *Batch) appendStripped(r rune, at [2]int32) {
	k := utf8.EncodeRune(b.one[:], r)
	b.nfd = norm.NFD.Append(b.nfd[:0], b.one[:k]...)
	for q := 0; q < len(b.nfd); {
		c, size := utf8.DecodeRune(b.nfd[q:])
		q += size
		if unicode.Is(unicode.Mn, c) {
			continue
		}
		b.appendRune(c, at)
	}
}

// isWhitespace is the BertNormalizer's and BertPreTokenizer's whitespace:
// the Unicode White_Space property.
func isWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isControl is BERT's control character: Unicode categories Cc, Cf, Co
// and Cs, and unassigned code points, except tab, newline and carriage
// return (which are whitespace).
func isControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C)
}

// isPunctuation is the BertPreTokenizer's punctuation: ASCII punctuation
// and Unicode category P.
func isPunctuation(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126
	}
	return unicode.IsPunct(r)
}

// isChinese is BERT's CJK Unified Ideographs test.
func isChinese(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}
