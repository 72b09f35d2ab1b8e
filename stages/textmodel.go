package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/driftline/driftline/models/ortengine"
	"github.com/driftline/driftline/models/ortengine/microbatch"
	"github.com/driftline/driftline/models/tokenizer"
	"github.com/driftline/driftline/pipeline"
)

// TextModel is stages.text.model opened: the tokenizer and the ONNX
// Runtime sessions of a user's transformer. It is immutable and safe for
// concurrent use, with up to min(GOMAXPROCS, 4) calls at once; one serves
// every partition's TextModelStage. Close it when the pipeline stops.
type TextModel struct {
	spec    *pipeline.TextModelSpec
	tok     *tokenizer.Tokenizer
	model   *ortengine.Text
	classes int
}

// OpenTextModel loads ONNX Runtime, the tokenizer and the model of
// spec.Stages.Text.Model, and checks that the model's logits fit the task
// (sequence_classification: [N, K] with K outputs; token_classification:
// [N, T, K] with K labels). Its errors name the spec field; a binary built
// without ONNX Runtime fails here, wrapping ortengine.ErrNotBuiltIn.
func OpenTextModel(spec *pipeline.Spec) (*TextModel, error) {
	m := spec.Stages.Text.Model
	if m == nil {
		return nil, errors.New("stages.text.model: not set")
	}
	if _, err := ortengine.Load(""); err != nil {
		return nil, fmt.Errorf("stages.text.model: %w", err)
	}
	tok, err := tokenizer.Load(m.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("stages.text.model.tokenizer: %w", err)
	}
	data, err := os.ReadFile(m.Path)
	if err != nil {
		return nil, fmt.Errorf("stages.text.model.path: %w", err)
	}
	cfg := ortengine.Config{ExecutionProvider: m.ExecutionProvider, DeviceID: m.DeviceID, PoolSize: min(runtime.GOMAXPROCS(0), 4)}
	model, err := ortengine.NewText(cfg, data, m.Output)
	switch {
	case errors.Is(err, ortengine.ErrCUDAUnavailable):
		return nil, fmt.Errorf("stages.text.model.execution_provider: %w", err)
	case err != nil:
		return nil, fmt.Errorf("stages.text.model: open %s: %w", m.Path, err)
	}
	tm := &TextModel{spec: m, tok: tok, model: model, classes: model.Classes()}
	switch {
	case m.Task == pipeline.TaskSequenceClassification && model.TokenLevel():
		err = errors.New("stages.text.model.task: sequence_classification, but the model's logits are per token ([N, T, K])")
	case m.Task == pipeline.TaskTokenClassification && !model.TokenLevel():
		err = errors.New("stages.text.model.task: token_classification, but the model's logits are per row ([N, K])")
	case m.Task == pipeline.TaskSequenceClassification && len(m.Outputs) != tm.classes:
		err = fmt.Errorf("stages.text.model.outputs: %d fields for the model's %d classes", len(m.Outputs), tm.classes)
	case m.Task == pipeline.TaskTokenClassification && len(m.Labels) != tm.classes:
		err = fmt.Errorf("stages.text.model.labels: %d labels for the model's %d classes", len(m.Labels), tm.classes)
	}
	if err != nil {
		model.Close()
		return nil, err
	}
	return tm, nil
}

// Library is the ONNX Runtime library the model runs on.
func (m *TextModel) Library() ortengine.Library { return m.model.Library() }

// Close releases the sessions; it is idempotent.
func (m *TextModel) Close() error { return m.model.Close() }

// TextModelStage runs a TextModel on one partition's batches. It
// tokenizes the text field of the live rows (null text is the empty
// text), pads each call's rows to their longest sequence, and runs the
// model:
//   - sequence_classification writes the softmax of each row's logits to
//     the outputs fields (Float64 columns), replacing what was there;
//   - token_classification decodes each row's per-token argmax labels
//     (BIO: B-X starts an entity, I-X continues one of type X, anything
//     else ends it) into entity spans, with the byte offsets of the
//     original text, which Spans holds for the text PII stage.
//
// With latency_budget set, a microbatch.Controller splits each batch into
// sub-batches whose model call fits the budget; each is padded on its
// own. A TextModelStage is used by one partition loop at a time.
type TextModelStage struct {
	m *TextModel
	// owned is m when the stage opened it (PreparationChainWith without
	// ChainOptions.TextModel): Close closes it.
	owned    *TextModel
	col      int
	outCols  []int
	ctrl     *microbatch.Controller
	batch    tokenizer.Batch
	texts    []string
	rows     []int
	logits   []float32
	probs    []float64 // rows × K, for the outputs
	spans    TextSpans
	liveEnds []int
}

// NewTextModelStage builds a partition's stage over a shared model.
// Close closes the model if the stage opened it (io.Closer, for
// pipeline.CloseStages); a shared model is its opener's to close.
func (s *TextModelStage) Close() error {
	if s.owned == nil {
		return nil
	}
	m := s.owned
	s.owned = nil
	return m.Close()
}

func NewTextModelStage(spec *pipeline.Spec, m *TextModel) (*TextModelStage, error) {
	s := &TextModelStage{m: m, col: spec.FieldIndex(m.spec.Field)}
	for _, o := range m.spec.Outputs {
		s.outCols = append(s.outCols, spec.FieldIndex(o))
	}
	if b := m.spec.LatencyBudget; b > 0 {
		ctrl, err := microbatch.New(microbatch.Config{Budget: b.D(), Max: max(spec.Batch.Size, 1)})
		if err != nil {
			return nil, fmt.Errorf("stages.text.model.latency_budget: %w", err)
		}
		s.ctrl = ctrl
	}
	return s, nil
}

// Name implements pipeline.Stage.
func (s *TextModelStage) Name() string { return "text_model" }

// Spans is where a token classification model's entity spans are, for
// the batch last processed.
func (s *TextModelStage) Spans() *TextSpans { return &s.spans }

// SubBatchSize is the sub-batch size the latency budget allows now, or 0
// without a budget.
func (s *TextModelStage) SubBatchSize() int {
	if s.ctrl == nil {
		return 0
	}
	return s.ctrl.Size()
}

// Process implements pipeline.Stage.
func (s *TextModelStage) Process(_ context.Context, b *pipeline.Batch) error {
	col := b.Record.Column(s.col).(*array.String)
	s.texts, s.rows = s.texts[:0], s.rows[:0]
	for i := 0; i < b.Len(); i++ {
		if !b.OK(i) {
			continue
		}
		text := ""
		if !col.IsNull(i) {
			text = col.Value(i)
		}
		s.texts = append(s.texts, text)
		s.rows = append(s.rows, i)
	}
	k := s.m.classes
	s.spans.reset(b.Len())
	s.probs = s.probs[:0]
	for off := 0; off < len(s.texts); {
		n := len(s.texts) - off
		if s.ctrl != nil {
			n = min(n, s.ctrl.Size())
		}
		run := func() error { return s.run(off, n) }
		var err error
		if s.ctrl != nil {
			err = s.ctrl.Run(n, run)
		} else {
			err = run()
		}
		if err != nil {
			return fmt.Errorf("text_model: %w", err)
		}
		off += n
	}
	if s.m.spec.Task == pipeline.TaskSequenceClassification {
		s.writeOutputs(b, k)
	} else {
		// Offsets so far are per live row; spread them over the batch rows.
		s.spreadSpans(b.Len())
	}
	return nil
}

// run scores live rows off..off+n.
func (s *TextModelStage) run(off, n int) error {
	if err := s.m.tok.Encode(&s.batch, s.texts[off:off+n], s.m.spec.MaxLength); err != nil {
		return err
	}
	tb := &s.batch
	k := s.m.classes
	size := tb.N * k
	if s.m.model.TokenLevel() {
		size *= tb.Len
	}
	if cap(s.logits) < size {
		s.logits = make([]float32, size)
	}
	s.logits = s.logits[:size]
	if err := s.m.model.Run(s.logits, ortengine.TextBatch{N: tb.N, T: tb.Len, IDs: tb.IDs, Mask: tb.Mask, TypeIDs: tb.TypeID}); err != nil {
		return err
	}
	if !s.m.model.TokenLevel() {
		for r := range tb.N {
			s.probs = appendSoftmax(s.probs, s.logits[r*k:(r+1)*k])
		}
		return nil
	}
	for r := range tb.N {
		s.decodeBIO(off+r, r)
	}
	return nil
}

// appendSoftmax appends the softmax of logits to dst.
func appendSoftmax(dst []float64, logits []float32) []float64 {
	hi := math.Inf(-1)
	for _, v := range logits {
		hi = math.Max(hi, float64(v))
	}
	sum := 0.0
	start := len(dst)
	for _, v := range logits {
		e := math.Exp(float64(v) - hi)
		dst = append(dst, e)
		sum += e
	}
	for j := start; j < len(dst); j++ {
		dst[j] /= sum
	}
	return dst
}

// decodeBIO turns row r of the batch in hand (live row live) into spans,
// appended to s.spans with Offsets[live+1] set to their end.
func (s *TextModelStage) decodeBIO(live, r int) {
	tb := &s.batch
	k := s.m.classes
	labels := s.m.spec.Labels
	cur, start, end := "", int32(-1), int32(-1)
	flush := func() {
		if cur != "" {
			s.spans.Spans = append(s.spans.Spans, TextSpan{Label: cur, Start: int(start), End: int(end)})
		}
		cur = ""
	}
	for j := 0; j < tb.Len; j++ {
		at := r*tb.Len + j
		if tb.Mask[at] == 0 || tb.Start[at] < 0 {
			continue
		}
		row := s.logits[at*k : (at+1)*k]
		best := 0
		for c := range row {
			if row[c] > row[best] {
				best = c
			}
		}
		label := labels[best]
		switch {
		case strings.HasPrefix(label, "B-"):
			flush()
			cur, start, end = label[2:], tb.Start[at], tb.End[at]
		case strings.HasPrefix(label, "I-") && cur == label[2:]:
			end = tb.End[at]
		case strings.HasPrefix(label, "I-"):
			flush()
			cur, start, end = label[2:], tb.Start[at], tb.End[at]
		default:
			flush()
		}
	}
	flush()
	s.spans.Offsets[live+1] = len(s.spans.Spans)
}

// spreadSpans turns the per-live-row span offsets into per-batch-row
// offsets: rows that were not scored get no spans.
func (s *TextModelStage) spreadSpans(n int) {
	s.liveEnds = append(s.liveEnds[:0], s.spans.Offsets[1:len(s.rows)+1]...)
	off := s.spans.Offsets[:n+1]
	prev, next := 0, 0
	for i := 0; i < n; i++ {
		off[i] = prev
		if next < len(s.rows) && s.rows[next] == i {
			prev = s.liveEnds[next]
			next++
		}
	}
	off[n] = prev
}

// writeOutputs replaces each outputs column with the probabilities of
// the live rows (null elsewhere).
func (s *TextModelStage) writeOutputs(b *pipeline.Batch, k int) {
	for c, colIdx := range s.outCols {
		bld := array.NewFloat64Builder(memory.DefaultAllocator)
		bld.Reserve(b.Len())
		next := 0
		for i := 0; i < b.Len(); i++ {
			if next < len(s.rows) && s.rows[next] == i {
				bld.UnsafeAppend(s.probs[next*k+c])
				next++
				continue
			}
			bld.UnsafeAppendBoolToBitmap(false)
		}
		b.ReplaceColumn(colIdx, bld.NewArray())
		bld.Release()
	}
}
