package stages

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/driftline/driftline/models"
	"github.com/driftline/driftline/models/ortengine"
	"github.com/driftline/driftline/models/ortengine/microbatch"
	"github.com/driftline/driftline/pipeline"
)

// ErrNotLearner is returned by the snapshot methods of a bring-your-own
// ONNX model's learner view: such a model has no state driftline owns.
var ErrNotLearner = errors.New("stages: a bring-your-own ONNX model does not learn or snapshot")

// ONNXModel is a model that the user brings (spec model.onnx): an ONNX file
// that ONNX Runtime scores from named numeric fields of each batch's Arrow
// record, mapped to the model's inputs by model.onnx.inputs. It scores but
// does not learn. One ONNXModel serves every partition loop: it is safe for
// concurrent use, with up to min(GOMAXPROCS, 4) ONNX Runtime sessions
// scoring at once. Close it when the pipeline stops.
type ONNXModel struct {
	custom   *ortengine.Custom
	features []string // every mapped field once, in first-mapped order
	columns  []int    // the schema column of each feature
	budget   pipeline.Duration
	maxBatch int
}

// OpenONNXModel loads ONNX Runtime (from ORT_LIB or the setup cache) and
// opens spec.Model.ONNX. It fails, naming the spec field, when the library
// is missing, the file can't be read, the model's inputs or output don't
// fit the mapping, the output has more than one score per row, or
// execution_provider is cuda and CUDA can't run (the error wraps
// ortengine.ErrCUDAUnavailable; it never falls back to the CPU).
func OpenONNXModel(spec *pipeline.Spec) (*ONNXModel, error) {
	o := spec.Model.ONNX
	if o == nil {
		return nil, errors.New("model.onnx: not set")
	}
	if _, err := ortengine.Load(""); err != nil {
		return nil, fmt.Errorf("model.onnx: %w", err)
	}
	data, err := os.ReadFile(o.Path)
	if err != nil {
		return nil, fmt.Errorf("model.onnx.path: %w", err)
	}
	m := &ONNXModel{budget: o.LatencyBudget, maxBatch: spec.Batch.Size}
	seen := map[string]bool{}
	inputs := make([]ortengine.InputMapping, len(o.Inputs))
	for i, in := range o.Inputs {
		inputs[i] = ortengine.InputMapping{Input: in.Input, Features: in.Features}
		for _, f := range in.Features {
			if seen[f] {
				continue
			}
			seen[f] = true
			col := spec.FieldIndex(f)
			if col < 0 {
				return nil, fmt.Errorf("model.onnx.inputs[%d].features: %q is not in schema.fields", i, f)
			}
			m.features = append(m.features, f)
			m.columns = append(m.columns, col)
		}
	}
	cfg := ortengine.Config{
		ExecutionProvider: o.ExecutionProvider,
		DeviceID:          o.DeviceID,
		PoolSize:          min(runtime.GOMAXPROCS(0), 4),
	}
	m.custom, err = ortengine.NewCustom(cfg, data, inputs, o.Output)
	switch {
	case errors.Is(err, ortengine.ErrCUDAUnavailable):
		return nil, fmt.Errorf("model.onnx.execution_provider: %w", err)
	case err != nil:
		return nil, fmt.Errorf("model.onnx: open %s with the mapping of model.onnx.inputs and model.onnx.output: %w", o.Path, err)
	}
	if w := m.custom.Width(); w != 1 {
		m.custom.Close()
		return nil, fmt.Errorf("model.onnx.output: the output has %d scores per row; the score stage takes one", w)
	}
	return m, nil
}

// Library is the ONNX Runtime library the model runs on.
func (m *ONNXModel) Library() ortengine.Library { return m.custom.Library() }

// Features lists the fields the model reads, each once.
func (m *ONNXModel) Features() []string { return append([]string(nil), m.features...) }

// Close releases the ONNX Runtime sessions; it is idempotent.
func (m *ONNXModel) Close() error { return m.custom.Close() }

// Learner is the model as a models.Learner, for the champion's
// ServedModel that the label join teaches. A bring-your-own model does not
// learn: Learn is a no-op that returns nil, so the label join still scores
// its earlier predictions prequentially and feeds the error detectors, but
// the model never changes. Predict fails with models.ErrShape, since
// feature rows carry no named columns: ONNXScore scores the batches.
// MarshalBinary and UnmarshalBinary fail with ErrNotLearner.
func (m *ONNXModel) Learner() models.Learner { return &onnxLearner{model: m} }

// ONNXScore is the Score stage for a bring-your-own ONNX model. For each
// batch it copies the mapped fields of the live rows (pipeline.FeatureBlock
// Row) from the Arrow record into float32 columns (null is NaN, bool is
// 0/1), scores them with ONNX Runtime, and writes the predictions exactly as
// Score does; Observe works as in Score. With model.onnx.latency_budget set,
// a microbatch.Controller splits each batch into sub-batches sized so that
// one ONNX Runtime call fits the budget. An ONNXScore is used by one
// partition loop at a time.
type ONNXScore struct {
	*Score
	model *ONNXModel
	ctrl  *microbatch.Controller
	cols  map[string][]float32 // the current batch's columns
	sub   map[string][]float32 // one sub-batch's views of cols
	n     int                  // rows in cols; -1 outside Process
}

// NewONNXScore builds a partition's score stage over a shared model. The
// predictions carry champion's name, version and arm; champion itself is
// not called (it is the label join's view, see ONNXModel.Learner).
func NewONNXScore(spec *pipeline.Spec, m *ONNXModel, champion *ServedModel, keyID string) (*ONNXScore, error) {
	s := &ONNXScore{model: m, n: -1,
		cols: make(map[string][]float32, len(m.features)),
		sub:  make(map[string][]float32, len(m.features)),
	}
	if m.budget > 0 {
		ctrl, err := microbatch.New(microbatch.Config{Budget: m.budget.D(), Max: max(m.maxBatch, 1)})
		if err != nil {
			return nil, fmt.Errorf("model.onnx.latency_budget: %w", err)
		}
		s.ctrl = ctrl
	}
	served := NewServedModel(champion.Name, champion.Version, champion.Arm, &onnxLearner{model: m, stage: s})
	s.Score = NewScore(spec, served, keyID)
	return s, nil
}

// SubBatchSize is the sub-batch size the latency budget allows now, or 0
// without a budget (each batch is scored in one call).
func (s *ONNXScore) SubBatchSize() int {
	if s.ctrl == nil {
		return 0
	}
	return s.ctrl.Size()
}

// Process implements pipeline.Stage.
func (s *ONNXScore) Process(ctx context.Context, b *pipeline.Batch) error {
	rows := b.Features.Row
	if len(rows) == 0 {
		return nil
	}
	for k, f := range s.model.features {
		s.cols[f] = gatherColumn(s.cols[f][:0], b.Record.Column(s.model.columns[k]), rows)
	}
	s.n = len(rows)
	defer func() { s.n = -1 }()
	return s.Score.Process(ctx, b)
}

// predict scores the gathered columns into dst, in sub-batches when a
// latency budget is set.
func (s *ONNXScore) predict(dst []float32) error {
	n := s.n
	if s.ctrl == nil {
		return s.model.custom.Score(dst, n, s.cols)
	}
	for off := 0; off < n; {
		k := min(s.ctrl.Size(), n-off)
		for f, col := range s.cols {
			s.sub[f] = col[off : off+k]
		}
		if err := s.ctrl.Run(k, func() error { return s.model.custom.Score(dst[off:off+k], k, s.sub) }); err != nil {
			return err
		}
		off += k
	}
	return nil
}

// gatherColumn appends the values of col at rows to dst as float32: null
// is NaN, bool is 0 or 1.
func gatherColumn(dst []float32, col arrow.Array, rows []int) []float32 {
	if a, ok := col.(*array.Float64); ok {
		vals := a.Float64Values()
		for _, i := range rows {
			if a.IsNull(i) {
				dst = append(dst, float32(math.NaN()))
			} else {
				dst = append(dst, float32(vals[i]))
			}
		}
		return dst
	}
	for _, i := range rows {
		dst = append(dst, numericValue(col, i))
	}
	return dst
}

// onnxLearner adapts an ONNXModel to models.Learner. With a stage, Predict
// scores the columns that stage gathered for the batch in flight; without
// one (the label join's view), Predict fails. Learn never changes anything.
type onnxLearner struct {
	model *ONNXModel
	stage *ONNXScore
}

func (l *onnxLearner) Predict(dst []float32, rows *models.Rows) error {
	s := l.stage
	if s == nil || s.n < 0 {
		return fmt.Errorf("%w: a bring-your-own ONNX model scores named columns of a batch (ONNXScore), not feature rows", models.ErrShape)
	}
	if rows.N != s.n || len(dst) != rows.N {
		return fmt.Errorf("%w: %d rows and %d scores for a batch of %d", models.ErrShape, rows.N, len(dst), s.n)
	}
	return s.predict(dst)
}

// Learn is a no-op: a bring-your-own model does not learn.
func (l *onnxLearner) Learn(*models.Rows, []float32) error { return nil }

// Params is empty: the model's weights live in its ONNX file.
func (l *onnxLearner) Params() models.LinearParams { return models.LinearParams{} }

func (l *onnxLearner) Classes() int { return 1 }

// Link is the identity: the scores are the model's output as it is.
func (l *onnxLearner) Link() models.Link { return models.LinkIdentity }

// Clone shares the model, which is immutable and safe for concurrent use.
func (l *onnxLearner) Clone() models.Learner { return &onnxLearner{model: l.model} }

func (l *onnxLearner) MarshalBinary() ([]byte, error) { return nil, ErrNotLearner }

func (l *onnxLearner) UnmarshalBinary([]byte) error {
	return fmt.Errorf("%w: %w", models.ErrSnapshot, ErrNotLearner)
}
