//go:build cgo && !noonnx

package ortengine

import (
	"fmt"
	"os"

	ort "github.com/yalue/onnxruntime_go"
)

// Custom scores a user's ONNX model from named feature columns. It is safe
// for concurrent use; up to Config.PoolSize calls run at once.
type Custom struct {
	eng *engine
	// mapping lists the features of each session input, in session order.
	mapping [][]string
	width   int
}

// OpenCustom reads spec.Path and opens a pool of sessions over it; see
// NewCustom.
func OpenCustom(cfg Config, spec CustomSpec) (*Custom, error) {
	model, err := os.ReadFile(spec.Path)
	if err != nil {
		return nil, fmt.Errorf("ortengine: read model: %w", err)
	}
	return NewCustom(cfg, model, spec.Inputs, spec.Output)
}

// NewCustom opens a pool of sessions over the ONNX model bytes. It checks
// that inputs maps each of the model's inputs exactly once, with a feature
// count that fits the input's width, and that output (or the only output
// when output is empty) is a float32 [N] or [N, K] tensor.
func NewCustom(cfg Config, model []byte, inputs []InputMapping, output string) (*Custom, error) {
	var only []string
	if output != "" {
		only = []string{output}
	}
	eng, err := newEngine(cfg, model, only...)
	if err != nil {
		return nil, err
	}
	c := &Custom{eng: eng}
	if err := c.bind(inputs); err != nil {
		eng.close()
		return nil, err
	}
	for _, s := range eng.all {
		s.packed = make([][]float32, len(eng.inputs))
	}
	return c, nil
}

func (c *Custom) bind(inputs []InputMapping) error {
	byName := make(map[string][]string, len(inputs))
	for _, m := range inputs {
		if _, dup := byName[m.Input]; dup {
			return fmt.Errorf("ortengine: input %q is mapped twice", m.Input)
		}
		if len(m.Features) == 0 {
			return fmt.Errorf("ortengine: input %q is mapped to no features", m.Input)
		}
		byName[m.Input] = m.Features
	}
	for _, in := range c.eng.inputs {
		features, ok := byName[in.Name]
		if !ok {
			return fmt.Errorf("ortengine: model input %s has no feature mapping", &in)
		}
		delete(byName, in.Name)
		d := in.Dimensions
		if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat ||
			len(d) != 2 || d[0] >= 0 || (d[1] >= 0 && int(d[1]) != len(features)) {
			return fmt.Errorf("ortengine: model input %s is not a float32 [N, %d] tensor with a dynamic N", &in, len(features))
		}
		c.mapping = append(c.mapping, features)
	}
	for name := range byName {
		return fmt.Errorf("ortengine: the model has no input %q", name)
	}
	if len(c.eng.outputs) != 1 {
		return fmt.Errorf("ortengine: the model has %d outputs; name the one to score", len(c.eng.outputs))
	}
	out := c.eng.outputs[0]
	d := out.Dimensions
	switch {
	case out.OrtValueType != ort.ONNXTypeTensor || out.DataType != ort.TensorElementDataTypeFloat || len(d) == 0 || d[0] >= 0:
		return fmt.Errorf("ortengine: output %s is not a float32 tensor with a dynamic batch dimension", &out)
	case len(d) == 1:
		c.width = 1
	case len(d) == 2 && d[1] > 0:
		c.width = int(d[1])
	default:
		return fmt.Errorf("ortengine: output %s is not [N] or [N, K] with a fixed K", &out)
	}
	return nil
}

// Width is K, the number of scores per row.
func (c *Custom) Width() int { return c.width }

// Library is the ONNX Runtime library the engine runs on.
func (c *Custom) Library() Library { return c.eng.library }

// Score writes n×Width() scores, row-major, into dst[:n*Width()]. columns
// maps each feature name of the mapping to its column: at least n float32
// values, such as the values buffer of an Arrow float32 column. The columns
// are copied into row-major input buffers that the engine reuses; dst is
// written by ONNX Runtime in place. Nothing is retained after Score returns.
func (c *Custom) Score(dst []float32, n int, columns map[string][]float32) error {
	if len(dst) < n*c.width {
		return fmt.Errorf("ortengine: dst holds %d scores, need %d", len(dst), n*c.width)
	}
	for _, features := range c.mapping {
		for _, f := range features {
			if col, ok := columns[f]; !ok || len(col) < n {
				return fmt.Errorf("ortengine: feature column %q has %d values, need %d", f, len(col), n)
			}
		}
	}
	if n == 0 {
		return nil
	}
	return c.eng.with(func(s *slot) error {
		defer s.release()
		for i, features := range c.mapping {
			width := len(features)
			if cap(s.packed[i]) < n*width {
				s.packed[i] = make([]float32, n*width)
			}
			buf := s.packed[i][:n*width]
			for j, f := range features {
				for r, v := range columns[f][:n] {
					buf[r*width+j] = v
				}
			}
			var err error
			if s.inputs[i], err = tensor(buf, n, width); err != nil {
				return err
			}
		}
		var err error
		if len(c.eng.outputs[0].Dimensions) == 1 {
			s.outputs[0], err = vector(dst, n)
		} else {
			s.outputs[0], err = tensor(dst, n, c.width)
		}
		if err != nil {
			return err
		}
		return s.run()
	})
}

// Close waits for calls in flight and releases the sessions. It is
// idempotent; Score returns ErrClosed afterwards.
func (c *Custom) Close() error { return c.eng.close() }
