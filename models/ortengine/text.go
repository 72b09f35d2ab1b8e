//go:build cgo && !noonnx

package ortengine

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"
)

// Text runs a transformer on tokenized text: inputs input_ids and
// attention_mask (and token_type_ids when the model has it), int64 [N, T]
// with dynamic N and T; output float32 logits [N, K] (sequence
// classification) or [N, T, K] (token classification) with a fixed K. It
// is safe for concurrent use; up to Config.PoolSize calls run at once.
type Text struct {
	eng *engine
	// slot of each model input in the session's input order: 0 ids,
	// 1 mask, 2 token types.
	order      []int
	classes    int
	tokenLevel bool
}

// NewText opens a pool of sessions over the ONNX model bytes and checks
// its inputs and its output (named output, or the only one).
func NewText(cfg Config, model []byte, output string) (*Text, error) {
	var only []string
	if output != "" {
		only = []string{output}
	}
	eng, err := newEngine(cfg, model, only...)
	if err != nil {
		return nil, err
	}
	t := &Text{eng: eng}
	if err := t.bind(); err != nil {
		eng.close()
		return nil, err
	}
	return t, nil
}

func (t *Text) bind() error {
	seen := map[string]bool{}
	for _, in := range t.eng.inputs {
		k := map[string]int{InputIDs: 0, InputMask: 1, InputTokenTypeIDs: 2}
		slot, ok := k[in.Name]
		if !ok {
			return fmt.Errorf("ortengine: text model input %s is none of %s, %s, %s", &in, InputIDs, InputMask, InputTokenTypeIDs)
		}
		d := in.Dimensions
		if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeInt64 || len(d) != 2 || d[0] >= 0 || d[1] >= 0 {
			return fmt.Errorf("ortengine: text model input %s is not an int64 [N, T] tensor with dynamic N and T", &in)
		}
		seen[in.Name] = true
		t.order = append(t.order, slot)
	}
	if !seen[InputIDs] || !seen[InputMask] {
		return fmt.Errorf("ortengine: a text model takes %s and %s", InputIDs, InputMask)
	}
	if len(t.eng.outputs) != 1 {
		return fmt.Errorf("ortengine: the text model has %d outputs; name the logits", len(t.eng.outputs))
	}
	out := t.eng.outputs[0]
	d := out.Dimensions
	switch {
	case out.OrtValueType != ort.ONNXTypeTensor || out.DataType != ort.TensorElementDataTypeFloat:
		return fmt.Errorf("ortengine: text model output %s is not a float32 tensor", &out)
	case len(d) == 2 && d[0] < 0 && d[1] > 0:
		t.classes = int(d[1])
	case len(d) == 3 && d[0] < 0 && d[2] > 0:
		t.classes, t.tokenLevel = int(d[2]), true
	default:
		return fmt.Errorf("ortengine: text model output %s is neither [N, K] nor [N, T, K] with a fixed K", &out)
	}
	return nil
}

// Classes is K, the logits per row (or per token).
func (t *Text) Classes() int { return t.classes }

// TokenLevel reports whether the logits are per token ([N, T, K]).
func (t *Text) TokenLevel() bool { return t.tokenLevel }

// Library is the ONNX Runtime library the engine runs on.
func (t *Text) Library() Library { return t.eng.library }

// Run writes the logits of b into dst: N×K values, or N×T×K for a token
// level model, row-major. The batch's slices are wrapped, not copied, and
// nothing is retained after Run returns.
func (t *Text) Run(dst []float32, b TextBatch) error {
	want := b.N * t.classes
	if t.tokenLevel {
		want *= b.T
	}
	if len(dst) < want {
		return fmt.Errorf("ortengine: dst holds %d logits, need %d", len(dst), want)
	}
	n := b.N * b.T
	if len(b.IDs) < n || len(b.Mask) < n || len(b.TypeIDs) < n {
		return fmt.Errorf("ortengine: a %d×%d batch needs %d ids, mask and type ids", b.N, b.T, n)
	}
	if b.N == 0 {
		return nil
	}
	return t.eng.with(func(s *slot) error {
		defer s.release()
		for i, which := range t.order {
			data := [3][]int64{b.IDs, b.Mask, b.TypeIDs}[which][:n]
			var err error
			if s.inputs[i], err = tensor(data, b.N, b.T); err != nil {
				return err
			}
		}
		shape := ort.NewShape(int64(b.N), int64(t.classes))
		if t.tokenLevel {
			shape = ort.NewShape(int64(b.N), int64(b.T), int64(t.classes))
		}
		out, err := ort.NewTensor(shape, dst[:want])
		if err != nil {
			return fmt.Errorf("ortengine: wrap logits: %w", err)
		}
		s.outputs[0] = out
		return s.run()
	})
}

// Close waits for calls in flight and releases the sessions; it is
// idempotent.
func (t *Text) Close() error { return t.eng.close() }
