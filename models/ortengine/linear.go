//go:build cgo && !noonnx

package ortengine

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/onnxexport"
)

// Linear scores a linear model exported by onnxexport.Export. It is safe for
// concurrent use; up to Config.PoolSize calls run at once.
type Linear struct {
	eng *engine
	// denseAt and hashedAt are the positions of the dense and hashed inputs
	// in the session's input list, or -1 when the model has no such input.
	denseAt, hashedAt   int
	numDense, numHashed int
	classes             int
}

// NewLinear opens a pool of sessions over model, which must declare the
// signature onnxexport.Export writes (inputs "dense" and/or "hashed",
// output "score" of fixed width).
func NewLinear(cfg Config, model []byte) (*Linear, error) {
	eng, err := newEngine(cfg, model)
	if err != nil {
		return nil, err
	}
	l := &Linear{eng: eng, denseAt: -1, hashedAt: -1}
	if err := l.bindSignature(); err != nil {
		eng.close()
		return nil, err
	}
	return l, nil
}

func (l *Linear) bindSignature() error {
	for i, in := range l.eng.inputs {
		width, err := batchWidth(in)
		if err != nil {
			return err
		}
		switch {
		case in.Name == onnxexport.DenseInput && in.DataType == ort.TensorElementDataTypeFloat:
			l.denseAt, l.numDense = i, width
		case in.Name == onnxexport.HashedInput && in.DataType == ort.TensorElementDataTypeInt32:
			l.hashedAt, l.numHashed = i, width
		default:
			return fmt.Errorf("ortengine: input %s is not part of an exported linear model's signature", &in)
		}
	}
	if len(l.eng.outputs) != 1 || l.eng.outputs[0].Name != onnxexport.ScoreOutput ||
		l.eng.outputs[0].DataType != ort.TensorElementDataTypeFloat {
		return fmt.Errorf("ortengine: an exported linear model has one float32 output %q, this one has %d outputs",
			onnxexport.ScoreOutput, len(l.eng.outputs))
	}
	classes, err := batchWidth(l.eng.outputs[0])
	if err != nil {
		return err
	}
	l.classes = classes
	return nil
}

// batchWidth checks that info is a [N, width] tensor with a dynamic N and a
// fixed width, and returns the width.
func batchWidth(info ort.InputOutputInfo) (int, error) {
	d := info.Dimensions
	if info.OrtValueType != ort.ONNXTypeTensor || len(d) != 2 || d[0] >= 0 || d[1] < 1 {
		return 0, fmt.Errorf("ortengine: %s is not a [N, width] tensor with a dynamic batch dimension", &info)
	}
	return int(d[1]), nil
}

// Classes is the output width K: the number of scores per row.
func (l *Linear) Classes() int { return l.classes }

// Library is the ONNX Runtime library the engine runs on.
func (l *Linear) Library() Library { return l.eng.library }

// Score writes rows.N×Classes() scores, row-major, into dst[:rows.N*Classes()].
// rows.Dense, rows.Hashed and dst are handed to ONNX Runtime without copies,
// and are not retained after Score returns. rows must have the model's
// NumDense and NumHashed; a hashed index ≥ 2^HashBits fails the call.
func (l *Linear) Score(dst []float32, rows *models.Rows) error {
	n := rows.N
	switch {
	case rows.NumDense != l.numDense || rows.NumHashed != l.numHashed:
		return fmt.Errorf("ortengine: rows have %d dense and %d hashed values, the model %d and %d",
			rows.NumDense, rows.NumHashed, l.numDense, l.numHashed)
	case len(dst) < n*l.classes:
		return fmt.Errorf("ortengine: dst holds %d scores, need %d", len(dst), n*l.classes)
	case len(rows.Dense) < n*rows.NumDense || len(rows.Hashed) < n*rows.NumHashed:
		return fmt.Errorf("ortengine: rows hold %d dense and %d hashed values, fewer than %d rows need",
			len(rows.Dense), len(rows.Hashed), n)
	case n == 0:
		return nil
	}
	return l.eng.with(func(s *slot) error {
		defer s.release()
		var err error
		if l.denseAt >= 0 {
			if s.inputs[l.denseAt], err = tensor(rows.Dense, n, l.numDense); err != nil {
				return err
			}
		}
		if l.hashedAt >= 0 {
			if s.inputs[l.hashedAt], err = tensor(rows.Hashed, n, l.numHashed); err != nil {
				return err
			}
		}
		if s.outputs[0], err = tensor(dst, n, l.classes); err != nil {
			return err
		}
		return s.run()
	})
}

// Close waits for calls in flight and releases the sessions. It is
// idempotent; Score returns ErrClosed afterwards.
func (l *Linear) Close() error { return l.eng.close() }
