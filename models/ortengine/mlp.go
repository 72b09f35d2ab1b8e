//go:build cgo && !noonnx

package ortengine

import (
	"cmp"
	"errors"
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/driftline/driftline/models"
)

// MaxMLPInputs bounds the input width (NumDense + 2^HashBits) of an MLP
// trained on ONNX Runtime: its step multiplies the batch as a dense
// BatchSize × inputs matrix (see NewMLP).
const MaxMLPInputs = 1 << 16

// NewMLP returns an MLP learner whose training step runs on ONNX Runtime:
// a models.MLP with the configuration model, whose every optimizer step is
// one run of the onnxexport.TrainStep graph for that configuration, on the
// execution provider of engine (engine.PoolSize is not used: a learner
// steps one batch at a time). Predict, the scaler and the pending batch
// stay in Go, and the learner keeps the models.MLP contract: snapshots are
// the same as the Go learner's, and the two agree within 1e-5 over 1,000
// steps (float32 against float64; see BENCHMARKS.md).
//
// With ExecutionProvider "cuda" it returns an error wrapping
// ErrCUDAUnavailable when CUDA cannot run — never a CPU learner.
//
// What moves where. The weights and Adam's moments live in two sets of Go
// buffers, wrapped once as ONNX Runtime tensors; a step reads one set and
// writes the other, and the learner swaps them (ping-pong), so a step
// copies no weights in Go and allocates no tensors. The batch is folded
// into a dense BatchSize × (NumDense + 2^HashBits) float32 matrix (each
// hash bucket a column holding its count; at most MaxMLPInputs columns),
// written into a reused buffer. On the CPU provider ONNX Runtime reads the
// inputs in place and writes the outputs into the pre-bound buffers. On
// CUDA, onnxruntime_go v1.27 (this module's version) can only wrap host
// memory — its tensors are created with a CPU OrtMemoryInfo, IoBinding
// binds only such values, and GetBoundOutputValues copies outputs back to
// Go memory — so every step copies the batch, the weights and the moments
// to the GPU and the updated ones back: about 2·4·(1+2·[Adam]) bytes per
// parameter per step. Keeping them on the device needs device-memory
// OrtValues (CreateTensor with a CUDA allocator, or IoBinding's
// BindOutputToDevice), which onnxruntime_go does not expose: its newest
// release, v1.38, adds MemoryInfo and allocators for LoRA adapters only,
// and needs C API version 31 (ONNX Runtime 1.31), newer than the 1.29
// library scripts/setup-ort.sh installs.
//
// Call Close when done: it releases the session (shared with the learner's
// clones, and released when the last of them closes) and the tensors.
func NewMLP(engine Config, model models.MLPConfig) (*models.MLP, error) {
	if err := engine.Validate(); err != nil {
		return nil, err
	}
	engine = engine.withDefaults()
	return models.NewMLPWithStepper(model, func(cfg models.MLPConfig) (models.MLPStepper, error) {
		return newMLPStepper(engine, cfg)
	})
}

// RestoreMLP restores an MLP learner from a snapshot of any MLP (Go or ONNX
// Runtime: the format is the same) and runs its steps on ONNX Runtime, as
// NewMLP.
func RestoreMLP(engine Config, snapshot []byte) (*models.MLP, error) {
	saved, err := models.UnmarshalMLP(snapshot)
	if err != nil {
		return nil, err
	}
	m, err := NewMLP(engine, saved.Config())
	if err != nil {
		return nil, err
	}
	if err := m.UnmarshalBinary(snapshot); err != nil {
		return nil, errors.Join(err, m.Close())
	}
	return m, nil
}

// session is an ONNX Runtime session shared by a learner and its clones
// (Run is safe for concurrent use), destroyed when the last one closes.
type session struct {
	mu   sync.Mutex
	refs int
	s    *ort.DynamicAdvancedSession
}

func (s *session) acquire() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs++
	return s
}

func (s *session) release() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs--
	if s.refs > 0 {
		return nil
	}
	if err := s.s.Destroy(); err != nil {
		return fmt.Errorf("ortengine: destroy mlp session: %w", err)
	}
	return nil
}

// mlpStepper runs models.MLP's step as an onnxexport.TrainStep graph.
type mlpStepper struct {
	cfg     models.MLPConfig
	sess    *session
	classes int
	closed  bool

	// Fixed inputs and outputs: the folded batch, targets, step counts and
	// loss, each with its tensor (made at the first step).
	x, y, loss []float32
	tIn, tOut  []int64
	fixed      []ort.Value // x, y, t in, t out, loss
	// states holds the tensors wrapped around each state's slices, and
	// runs the argument lists of a step from each state.
	states map[*models.MLPState][]ort.Value
	runs   map[*models.MLPState]*runArgs
}

type runArgs struct {
	inputs, outputs []ort.Value
}

func newMLPStepper(engine Config, cfg models.MLPConfig) (*mlpStepper, error) {
	if in := cfg.NumDense + 1<<cfg.HashBits; in > MaxMLPInputs {
		return nil, fmt.Errorf("ortengine: mlp hash bits %d: %d inputs, more than the %d an ONNX Runtime step multiplies as a dense matrix",
			cfg.HashBits, in, MaxMLPInputs)
	}
	step := MLPTrainStep(cfg)
	model, err := step.Model()
	if err != nil {
		return nil, err
	}
	bytes, err := model.Marshal()
	if err != nil {
		return nil, err
	}
	lib, err := Load(engine.LibraryPath)
	if err != nil {
		return nil, err
	}
	s, err := newSession(engine, lib, bytes, step.Inputs(), step.Outputs())
	if err != nil {
		return nil, err
	}
	return newStepperOn(cfg, (&session{s: s}).acquire()), nil
}

func newStepperOn(cfg models.MLPConfig, sess *session) *mlpStepper {
	n, in := cfg.BatchSize, cfg.NumDense+1<<cfg.HashBits
	return &mlpStepper{
		cfg: cfg, sess: sess, classes: cfg.Classes,
		x: make([]float32, n*in), y: make([]float32, n*cfg.Classes), loss: make([]float32, 1),
		tIn: make([]int64, 1), tOut: make([]int64, 1),
		states: make(map[*models.MLPState][]ort.Value, 2),
		runs:   make(map[*models.MLPState]*runArgs, 2),
	}
}

// Clone returns a stepper over the same session, with its own buffers.
func (s *mlpStepper) Clone() models.MLPStepper {
	return newStepperOn(s.cfg, s.sess.acquire())
}

// Close destroys the tensors and releases the session. It is idempotent.
func (s *mlpStepper) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	for _, v := range s.fixed {
		v.Destroy()
	}
	for _, vs := range s.states {
		for _, v := range vs {
			v.Destroy()
		}
	}
	s.fixed, s.states, s.runs = nil, nil, nil
	return s.sess.release()
}

// Step runs the graph from cur into next; see models.MLPStepper.
func (s *mlpStepper) Step(next, cur *models.MLPState, b *models.MLPBatch) (float64, error) {
	if s.closed {
		return 0, ErrClosed
	}
	args, err := s.args(next, cur)
	if err != nil {
		return 0, err
	}
	b.FoldInto(s.x)
	s.targets(b)
	s.tIn[0] = cur.Steps
	if err := s.sess.s.Run(args.inputs, args.outputs); err != nil {
		return 0, fmt.Errorf("ortengine: mlp step: %w", err)
	}
	next.Steps = s.tOut[0]
	return float64(s.loss[0]), nil
}

// targets writes the batch's labels as the graph's targets: the label
// itself, or a one-hot row for softmax.
func (s *mlpStepper) targets(b *models.MLPBatch) {
	if s.cfg.Link != models.LinkSoftmax {
		copy(s.y, b.Labels[:b.N])
		return
	}
	clear(s.y)
	for i, label := range b.Labels[:b.N] {
		s.y[i*s.classes+int(label)] = 1
	}
}

// args returns the argument lists of a step from cur to next, wrapping
// buffers as tensors the first time it sees them.
func (s *mlpStepper) args(next, cur *models.MLPState) (*runArgs, error) {
	if a, ok := s.runs[cur]; ok {
		return a, nil
	}
	if s.fixed == nil {
		if err := s.makeFixed(); err != nil {
			return nil, err
		}
	}
	in, err := s.wrap(cur)
	if err != nil {
		return nil, err
	}
	out, err := s.wrap(next)
	if err != nil {
		return nil, err
	}
	x, y, tIn, tOut, loss := s.fixed[0], s.fixed[1], s.fixed[2], s.fixed[3], s.fixed[4]
	a := &runArgs{
		inputs:  append(append([]ort.Value{x, y}, in...), tIn),
		outputs: append(append([]ort.Value(nil), out...), tOut, loss),
	}
	s.runs[cur] = a
	return a, nil
}

// makeFixed wraps the batch, target, step-count and loss buffers.
func (s *mlpStepper) makeFixed() error {
	n, in := int64(s.cfg.BatchSize), int64(s.cfg.NumDense+1<<s.cfg.HashBits)
	var made []ort.Value
	var first error
	add := func(v ort.Value, err error) {
		if err != nil {
			first = cmp.Or(first, err)
			return
		}
		made = append(made, v)
	}
	add(ort.NewTensor(ort.NewShape(n, in), s.x))
	add(ort.NewTensor(ort.NewShape(n, int64(s.classes)), s.y))
	add(ort.NewTensor(ort.NewShape(1), s.tIn))
	add(ort.NewTensor(ort.NewShape(1), s.tOut))
	add(ort.NewTensor(ort.NewShape(1), s.loss))
	if first != nil {
		for _, v := range made {
			v.Destroy()
		}
		return fmt.Errorf("ortengine: mlp step tensors: %w", first)
	}
	s.fixed = made
	return nil
}

// wrap returns the tensors over st's parameters then moments, in the
// graph's order, made once per state.
func (s *mlpStepper) wrap(st *models.MLPState) ([]ort.Value, error) {
	if vs, ok := s.states[st]; ok {
		return vs, nil
	}
	var vs []ort.Value
	fail := func(err error) ([]ort.Value, error) {
		for _, v := range vs {
			v.Destroy()
		}
		return nil, fmt.Errorf("ortengine: wrap mlp state: %w", err)
	}
	for _, layers := range [][]models.MLPLayer{st.Layers, st.M, st.V} {
		for _, l := range layers {
			w, err := ort.NewTensor(ort.NewShape(int64(l.In), int64(l.Out)), l.W)
			if err != nil {
				return fail(err)
			}
			vs = append(vs, w)
			b, err := ort.NewTensor(ort.NewShape(int64(l.Out)), l.B)
			if err != nil {
				return fail(err)
			}
			vs = append(vs, b)
		}
	}
	s.states[st] = vs
	return vs, nil
}
