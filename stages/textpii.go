package stages

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/pipeline"
	"github.com/driftline/driftline/stages/textpii"
)

// TextPIIMetrics counts findings of the text PII stage:
// driftline_text_pii_findings_total{field,type}, where field is a
// stages.text.pii field and type a recognizer's type (bounded by the
// spec). A finding's text never reaches a metric, a log line or a header.
// One TextPIIMetrics serves every partition's stage.
type TextPIIMetrics struct {
	findings *prometheus.CounterVec
}

// NewTextPIIMetrics registers the metrics on reg.
func NewTextPIIMetrics(reg prometheus.Registerer) (*TextPIIMetrics, error) {
	m := &TextPIIMetrics{findings: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "driftline_text_pii_findings_total",
		Help: "Personal data found in free-text fields and rewritten, per field and type.",
	}, []string{"field", "type"})}
	if err := reg.Register(m.findings); err != nil {
		return nil, fmt.Errorf("text pii metrics: %w", err)
	}
	return m, nil
}

// TextSpan is an entity a token classification model found in a text
// field: its label ("PER") and byte offsets [Start, End).
type TextSpan struct {
	Label      string
	Start, End int
}

// TextSpans holds the entity spans of one batch's rows for one field: the
// spans of row i are Spans[Offsets[i]:Offsets[i+1]]. The text model stage
// writes it and the text PII stage of the same chain reads it.
type TextSpans struct {
	Offsets []int
	Spans   []TextSpan
}

// Row returns row i's spans (nil when the model did not run on it).
func (t *TextSpans) Row(i int) []TextSpan {
	if i+1 >= len(t.Offsets) {
		return nil
	}
	return t.Spans[t.Offsets[i]:t.Offsets[i+1]]
}

func (t *TextSpans) reset(n int) {
	t.Offsets = slices.Grow(t.Offsets[:0], n+1)[:n+1]
	clear(t.Offsets)
	t.Spans = t.Spans[:0]
}

// TextPII finds personal data in free-text fields (stages.text.pii) and
// rewrites each finding with the field's action: redact ("[EMAIL]"),
// mask, pseudonymize (the anonymize stage's keyed HMAC token of the
// normalized value, so equal values join across formats and fields) or
// encrypt ("[EMAIL:<base64 AES-256-GCM>]", with the field name as
// additional data). Spans of a token classification model on the field
// (stages.text.model) whose label the field lists in entities are
// rewritten too, as type "entity_<label>".
//
// A batch without findings keeps its columns as they are, and costs no
// allocation per row. A TextPII is used by one partition loop at a time.
type TextPII struct {
	cols  []textPIICol
	an    *Anonymize
	found []textpii.Finding
	// bounds[i]..bounds[i+1] are row i's findings of the column in hand.
	bounds []int
	out    []byte
	norm   []byte
}

type textPIICol struct {
	index    int
	name     string
	scanner  *textpii.Scanner
	action   pipeline.AnonymizeOp
	keepLast int
	// types are the scanner's types, then "entity_<label>" per entity.
	types    []textpii.Type
	redacted []string
	counts   []int
	counters []prometheus.Counter
	entities map[string]textpii.Type
	spans    *TextSpans
}

// NewTextPII builds the stage for spec's stages.text.pii. keys must hold
// what the actions need (the HMAC key for pseudonymize, the AES key for
// encrypt). metrics may be nil. spans, when the spec has a token
// classification model, is where that model's stage writes its spans.
func NewTextPII(spec *pipeline.Spec, keys Keys, metrics *TextPIIMetrics, spans *TextSpans) (*TextPII, error) {
	t := &TextPII{}
	an, err := NewAnonymize(&pipeline.Spec{}, keys)
	if err != nil {
		return nil, err
	}
	t.an = an
	for i, p := range spec.Stages.Text.PII {
		cfg := textpii.Config{}
		if p.Types != nil {
			cfg.Types = []textpii.Type{}
			for _, typ := range p.Types {
				cfg.Types = append(cfg.Types, textpii.Type(typ))
			}
		}
		for _, c := range p.Custom {
			cfg.Custom = append(cfg.Custom, textpii.Custom{Name: c.Name, Pattern: c.Pattern, Validator: textpii.Validator(c.Validator)})
		}
		sc, err := textpii.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("stages.text.pii[%d]: %w", i, err)
		}
		switch p.Action {
		case pipeline.OpPseudonymize:
			if len(keys.HMAC) == 0 {
				return nil, fmt.Errorf("stages.text.pii[%d]: pseudonymize needs the hmac key of stages.anonymize", i)
			}
		case pipeline.OpEncrypt:
			if len(keys.AES) == 0 {
				return nil, fmt.Errorf("stages.text.pii[%d]: encrypt needs the encryption key of stages.anonymize", i)
			}
		}
		keep := p.KeepLast
		if keep == 0 {
			keep = 4
		}
		c := textPIICol{index: spec.FieldIndex(p.Field), name: p.Field, scanner: sc, action: p.Action, keepLast: keep, types: sc.Types()}
		if len(p.Entities) > 0 {
			c.entities = map[string]textpii.Type{}
			c.spans = spans
			for _, e := range p.Entities {
				c.entities[e] = textpii.Type("entity_" + strings.ToLower(e))
				c.types = append(c.types, c.entities[e])
			}
		}
		c.counts = make([]int, len(c.types))
		for _, typ := range c.types {
			c.redacted = append(c.redacted, "["+strings.ToUpper(string(typ))+"]")
			if metrics != nil {
				c.counters = append(c.counters, metrics.findings.WithLabelValues(p.Field, string(typ)))
			}
		}
		t.cols = append(t.cols, c)
	}
	return t, nil
}

// Name implements pipeline.Stage.
func (t *TextPII) Name() string { return "text_pii" }

// Process implements pipeline.Stage.
func (t *TextPII) Process(_ context.Context, b *pipeline.Batch) error {
	for k := range t.cols {
		if err := t.processColumn(&t.cols[k], b); err != nil {
			return err
		}
	}
	return nil
}

func (t *TextPII) processColumn(c *textPIICol, b *pipeline.Batch) error {
	col := b.Record.Column(c.index).(*array.String)
	n := b.Len()
	t.found = t.found[:0]
	t.bounds = append(t.bounds[:0], 0)
	for i := 0; i < n; i++ {
		if b.OK(i) && !col.IsNull(i) {
			start := len(t.found)
			t.found = c.scanner.Scan(t.found, col.Value(i))
			if c.spans != nil {
				t.found = c.addEntities(t.found, start, c.spans.Row(i))
			}
		}
		t.bounds = append(t.bounds, len(t.found))
	}
	if len(t.found) == 0 {
		return nil
	}
	bld := array.NewStringBuilder(memory.DefaultAllocator)
	defer bld.Release()
	bld.Reserve(n)
	for i := 0; i < n; i++ {
		fs := t.found[t.bounds[i]:t.bounds[i+1]]
		switch {
		case col.IsNull(i) || !b.OK(i):
			bld.AppendNull()
		case len(fs) == 0:
			bld.Append(col.Value(i))
		default:
			out, err := t.rewrite(c, col.Value(i), fs)
			if err != nil {
				return fmt.Errorf("text_pii: field %s: %w", c.name, err)
			}
			bld.BinaryBuilder.Append(out)
		}
	}
	b.ReplaceColumn(c.index, bld.NewArray())
	for k, cnt := range c.counts {
		if cnt > 0 && c.counters != nil {
			c.counters[k].Add(float64(cnt))
		}
		c.counts[k] = 0
	}
	return nil
}

// addEntities appends the model's spans whose label the field treats as
// PII to found, merging them with the recognizers' findings from start on:
// where two overlap, the earlier (then the longer) wins.
func (c *textPIICol) addEntities(found []textpii.Finding, start int, spans []TextSpan) []textpii.Finding {
	added := false
	for _, s := range spans {
		if typ, ok := c.entities[s.Label]; ok {
			found = append(found, textpii.Finding{Type: typ, Start: s.Start, End: s.End})
			added = true
		}
	}
	if !added {
		return found
	}
	fs := found[start:]
	slices.SortStableFunc(fs, func(a, b textpii.Finding) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out, end := fs[:0], -1
	for _, f := range fs {
		if f.Start >= end {
			out = append(out, f)
			end = f.End
		}
	}
	return found[:start+len(out)]
}

// rewrite returns v with each finding replaced by the column's action,
// valid until the next call.
func (t *TextPII) rewrite(c *textPIICol, v string, fs []textpii.Finding) ([]byte, error) {
	t.out = t.out[:0]
	prev := 0
	for _, f := range fs {
		t.out = append(t.out, v[prev:f.Start]...)
		prev = f.End
		k := slices.Index(c.types, f.Type)
		c.counts[k]++
		val := v[f.Start:f.End]
		switch c.action {
		case pipeline.OpRedact:
			t.out = append(t.out, c.redacted[k]...)
		case pipeline.OpMask:
			t.out = appendMasked(t.out, val, c.keepLast)
		case pipeline.OpPseudonymize:
			t.norm = normalizePII(t.norm[:0], f.Type, val)
			t.an.scratch = t.an.scratch[:0]
			t.out = append(t.out, t.an.pseudonymize(unsafe.String(unsafe.SliceData(t.norm), len(t.norm)))...)
		case pipeline.OpEncrypt:
			red := c.redacted[k]
			t.out = append(t.out, red[:len(red)-1]...)
			t.out = append(t.out, ':')
			var err error
			// Seal reads the value and the field name and keeps neither.
			t.out, err = t.an.Encrypt(t.out, unsafe.Slice(unsafe.StringData(val), len(val)), unsafe.Slice(unsafe.StringData(c.name), len(c.name)))
			if err != nil {
				return nil, err
			}
			t.out = append(t.out, ']')
		}
	}
	return append(t.out, v[prev:]...), nil
}

// appendMasked appends v with every character but the last keep as '*'.
func appendMasked(dst []byte, v string, keep int) []byte {
	n := utf8.RuneCountInString(v)
	i := 0
	for _, r := range v {
		if i < n-keep {
			dst = append(dst, '*')
		} else {
			dst = utf8.AppendRune(dst, r)
		}
		i++
	}
	return dst
}

// normalizePII appends the form of a finding that pseudonymize hashes:
// an e-mail address or IP address in lower case; a phone number, card
// number, IBAN or resident id as its letters and digits only, upper case
// (so "+86 138 1234 5678" and "+8613812345678" give one token); other
// types as found.
func normalizePII(dst []byte, typ textpii.Type, v string) []byte {
	switch typ {
	case textpii.Email, textpii.IPAddress:
		for k := 0; k < len(v); k++ {
			c := v[k]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
	case textpii.Phone, textpii.PaymentCard, textpii.IBAN, textpii.CNResidentID:
		for k := 0; k < len(v); k++ {
			c := v[k]
			switch {
			case c >= '0' && c <= '9', c >= 'A' && c <= 'Z':
				dst = append(dst, c)
			case c >= 'a' && c <= 'z':
				dst = append(dst, c-('a'-'A'))
			}
		}
	default:
		dst = append(dst, v...)
	}
	return dst
}
