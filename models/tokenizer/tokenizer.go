// Package tokenizer reads a Hugging Face tokenizer.json and encodes text
// into the token ids, attention masks and token type ids a transformer
// takes, as the `tokenizers` library does. It implements the BERT
// pipeline: the BertNormalizer (clean text, spaces around CJK characters,
// lower case, accent stripping), the BertPreTokenizer (whitespace and
// punctuation), the WordPiece model (greedy longest match first with the
// "##" continuation prefix and an unknown token per word) and the
// [CLS] … [SEP] post-processor (BertProcessing, or TemplateProcessing of
// that single-sequence shape).
//
// Encoding a batch truncates each text to a maximum length, special
// tokens included, and pads the batch to its longest sequence. Each token
// keeps the byte offsets of the original text it came from, so that a
// token classification model's labels map back to spans of the text.
//
// Special added tokens written inside the input text (a literal "[SEP]")
// are matched before normalization and keep their id, as in `tokenizers`.
//
// Not implemented (an error at Load names what is there instead): other
// normalizers, pre-tokenizers and models (BPE, Unigram), and pairs of
// sequences. Lower-casing is rune by rune (unicode.ToLower), so the few
// context-dependent or multi-rune lower cases of Unicode (a final Greek
// sigma, 'İ') can differ from Rust's str::to_lowercase.
package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Tokenizer is a loaded tokenizer.json. It is immutable and safe for
// concurrent use; the scratch space of encoding lives in each Batch.
type Tokenizer struct {
	vocab map[string]int32
	// byID is the inverse of vocab, for Token.
	byID []string

	unk, cls, sep, pad int32
	prefix             string
	maxWordChars       int

	cleanText, chineseChars, lowercase, stripAccents bool
	// specials are the special added tokens matched in raw text, longest
	// first.
	specials []special
}

type special struct {
	text string
	id   int32
}

// file is the part of tokenizer.json this package reads.
type file struct {
	Normalizer    *jsonNormalizer        `json:"normalizer"`
	PreTokenizer  *struct{ Type string } `json:"pre_tokenizer"`
	PostProcessor json.RawMessage        `json:"post_processor"`
	Model         struct {
		Type                    string           `json:"type"`
		UnkToken                string           `json:"unk_token"`
		ContinuingSubwordPrefix string           `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    int              `json:"max_input_chars_per_word"`
		Vocab                   map[string]int32 `json:"vocab"`
	} `json:"model"`
	AddedTokens []struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		Special    bool   `json:"special"`
		Normalized bool   `json:"normalized"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
	} `json:"added_tokens"`
}

type jsonNormalizer struct {
	Type               string `json:"type"`
	CleanText          bool   `json:"clean_text"`
	HandleChineseChars bool   `json:"handle_chinese_chars"`
	StripAccents       *bool  `json:"strip_accents"`
	Lowercase          bool   `json:"lowercase"`
}

// Load reads a tokenizer.json file; see Parse.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return Parse(data)
}

// Parse reads tokenizer.json content. It fails, naming the part, when
// the tokenizer is not a BERT WordPiece one.
func Parse(data []byte) (*Tokenizer, error) {
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: parse tokenizer.json: %w", err)
	}
	if f.Model.Type != "WordPiece" {
		return nil, fmt.Errorf("tokenizer: model type %q is not supported (want WordPiece)", f.Model.Type)
	}
	if len(f.Model.Vocab) == 0 {
		return nil, errors.New("tokenizer: the WordPiece vocab is empty")
	}
	t := &Tokenizer{vocab: f.Model.Vocab, prefix: f.Model.ContinuingSubwordPrefix, maxWordChars: f.Model.MaxInputCharsPerWord}
	if t.maxWordChars == 0 {
		t.maxWordChars = 100
	}
	for _, a := range f.AddedTokens {
		if _, ok := t.vocab[a.Content]; !ok {
			t.vocab[a.Content] = a.ID
		}
		if a.Content == "" {
			continue
		}
		if !a.Special || a.Normalized || a.SingleWord || a.LStrip || a.RStrip {
			return nil, fmt.Errorf("tokenizer: added token %q: only special, unnormalized tokens without single_word, lstrip or rstrip are supported", a.Content)
		}
		t.specials = append(t.specials, special{text: a.Content, id: a.ID})
	}
	slices.SortStableFunc(t.specials, func(a, b special) int { return len(b.text) - len(a.text) })
	maxID := int32(0)
	for _, id := range t.vocab {
		maxID = max(maxID, id)
	}
	t.byID = make([]string, maxID+1)
	for tok, id := range t.vocab {
		if id < 0 {
			return nil, fmt.Errorf("tokenizer: token %q has a negative id", tok)
		}
		t.byID[id] = tok
	}
	var ok bool
	if t.unk, ok = t.vocab[f.Model.UnkToken]; !ok {
		return nil, fmt.Errorf("tokenizer: the unknown token %q is not in the vocab", f.Model.UnkToken)
	}
	if n := f.Normalizer; n != nil {
		if n.Type != "BertNormalizer" {
			return nil, fmt.Errorf("tokenizer: normalizer %q is not supported (want BertNormalizer)", n.Type)
		}
		t.cleanText, t.chineseChars, t.lowercase = n.CleanText, n.HandleChineseChars, n.Lowercase
		t.stripAccents = n.Lowercase
		if n.StripAccents != nil {
			t.stripAccents = *n.StripAccents
		}
	}
	if p := f.PreTokenizer; p == nil || p.Type != "BertPreTokenizer" {
		got := "none"
		if p != nil {
			got = p.Type
		}
		return nil, fmt.Errorf("tokenizer: pre-tokenizer %q is not supported (want BertPreTokenizer)", got)
	}
	cls, sep, err := parsePostProcessor(f.PostProcessor)
	if err != nil {
		return nil, err
	}
	if t.cls, ok = t.vocab[cls]; !ok {
		return nil, fmt.Errorf("tokenizer: post-processor token %q is not in the vocab", cls)
	}
	if t.sep, ok = t.vocab[sep]; !ok {
		return nil, fmt.Errorf("tokenizer: post-processor token %q is not in the vocab", sep)
	}
	if t.pad, ok = t.vocab["[PAD]"]; !ok {
		t.pad = 0
	}
	return t, nil
}

// parsePostProcessor reads the [CLS] and [SEP] tokens of a BertProcessing
// or a single-sequence TemplateProcessing "[CLS] $A [SEP]".
func parsePostProcessor(raw json.RawMessage) (cls, sep string, err error) {
	var head struct {
		Type   string            `json:"type"`
		Cls    []json.RawMessage `json:"cls"`
		Sep    []json.RawMessage `json:"sep"`
		Single []struct {
			SpecialToken *struct{ ID string } `json:"SpecialToken"`
			Sequence     *struct{ ID string } `json:"Sequence"`
		} `json:"single"`
	}
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", errors.New("tokenizer: no post-processor; want BertProcessing or TemplateProcessing [CLS] $A [SEP]")
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", "", fmt.Errorf("tokenizer: post-processor: %w", err)
	}
	switch head.Type {
	case "BertProcessing":
		if len(head.Cls) != 2 || len(head.Sep) != 2 {
			return "", "", errors.New("tokenizer: BertProcessing without cls and sep")
		}
		if err := json.Unmarshal(head.Cls[0], &cls); err != nil {
			return "", "", fmt.Errorf("tokenizer: BertProcessing cls: %w", err)
		}
		if err := json.Unmarshal(head.Sep[0], &sep); err != nil {
			return "", "", fmt.Errorf("tokenizer: BertProcessing sep: %w", err)
		}
		return cls, sep, nil
	case "TemplateProcessing":
		s := head.Single
		if len(s) == 3 && s[0].SpecialToken != nil && s[1].Sequence != nil && s[2].SpecialToken != nil {
			return s[0].SpecialToken.ID, s[2].SpecialToken.ID, nil
		}
		return "", "", errors.New("tokenizer: TemplateProcessing is not [CLS] $A [SEP]")
	}
	return "", "", fmt.Errorf("tokenizer: post-processor %q is not supported (want BertProcessing or TemplateProcessing)", head.Type)
}

// VocabSize is one more than the largest token id.
func (t *Tokenizer) VocabSize() int { return len(t.byID) }

// Token returns the text of token id ("" for an unknown id).
func (t *Tokenizer) Token(id int64) string {
	if id < 0 || id >= int64(len(t.byID)) {
		return ""
	}
	return t.byID[id]
}

// matchSpecial returns the special added token that text[p:] starts with.
func (t *Tokenizer) matchSpecial(text string, p int) (special, bool) {
	for _, s := range t.specials {
		if strings.HasPrefix(text[p:], s.text) {
			return s, true
		}
	}
	return special{}, false
}

// PadID is the id padding uses.
func (t *Tokenizer) PadID() int64 { return int64(t.pad) }
