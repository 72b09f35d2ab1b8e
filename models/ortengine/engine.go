//go:build cgo && !noonnx

package ortengine

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// slot is one pooled session with the scratch space of the calls it serves.
// A slot is used by one call at a time.
type slot struct {
	session *ort.DynamicAdvancedSession
	inputs  []ort.Value
	outputs []ort.Value
	// packed holds per-input row-major buffers (Custom only).
	packed [][]float32
}

// engine is a pool of identical sessions over one model.
type engine struct {
	library Library
	inputs  []ort.InputOutputInfo
	outputs []ort.InputOutputInfo

	mu     sync.RWMutex // held for reading by calls, for writing by close
	closed bool
	free   chan *slot
	all    []*slot
}

// newEngine loads the library, reads the model's inputs and outputs, and
// opens cfg.PoolSize sessions over model. The sessions compute the outputs
// named in only, or every output when only is empty.
func newEngine(cfg Config, model []byte, only ...string) (*engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	lib, err := Load(cfg.LibraryPath)
	if err != nil {
		return nil, err
	}
	inputs, outputs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("ortengine: read model inputs and outputs: %w", err)
	}
	inNames := make([]string, len(inputs))
	for i, in := range inputs {
		inNames[i] = in.Name
	}
	if len(only) > 0 {
		if outputs, err = selectOutputs(outputs, only); err != nil {
			return nil, err
		}
	}
	outNames := make([]string, len(outputs))
	for i, out := range outputs {
		outNames[i] = out.Name
	}
	e := &engine{library: lib, inputs: inputs, outputs: outputs, free: make(chan *slot, cfg.PoolSize)}
	for range cfg.PoolSize {
		s, err := newSession(cfg, lib, model, inNames, outNames)
		if err != nil {
			e.close()
			return nil, err
		}
		sl := &slot{session: s, inputs: make([]ort.Value, len(inputs)), outputs: make([]ort.Value, len(outputs))}
		e.all = append(e.all, sl)
		e.free <- sl
	}
	return e, nil
}

func selectOutputs(all []ort.InputOutputInfo, names []string) ([]ort.InputOutputInfo, error) {
	var picked []ort.InputOutputInfo
	for _, name := range names {
		i := slices.IndexFunc(all, func(o ort.InputOutputInfo) bool { return o.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("ortengine: the model has no output %q", name)
		}
		picked = append(picked, all[i])
	}
	return picked, nil
}

// newSession opens one session with cfg's provider and threads. For "cuda"
// every failure is ErrCUDAUnavailable: there is no CPU fallback.
func newSession(cfg Config, lib Library, model []byte, inNames, outNames []string) (*ort.DynamicAdvancedSession, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ortengine: session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(cfg.IntraOpThreads); err != nil {
		return nil, fmt.Errorf("ortengine: set intra-op threads: %w", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("ortengine: set inter-op threads: %w", err)
	}
	if cfg.ExecutionProvider == ProviderCUDA {
		if err := appendCUDA(opts, cfg.DeviceID); err != nil {
			return nil, cudaError(cfg.DeviceID, lib, err)
		}
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inNames, outNames, opts)
	if err != nil {
		if cfg.ExecutionProvider == ProviderCUDA {
			return nil, cudaError(cfg.DeviceID, lib, err)
		}
		return nil, fmt.Errorf("ortengine: create session: %w", err)
	}
	return s, nil
}

func appendCUDA(opts *ort.SessionOptions, deviceID int) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	if err := cuda.Update(map[string]string{"device_id": strconv.Itoa(deviceID)}); err != nil {
		return err
	}
	return opts.AppendExecutionProviderCUDA(cuda)
}

func cudaError(deviceID int, lib Library, cause error) error {
	return fmt.Errorf("ortengine: %w on device %d with %s (onnxruntime %s): %w; "+
		"it needs libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so of the same version beside that library "+
		"(scripts/setup-ort.sh --cuda), a CUDA GPU, and the CUDA runtime on LD_LIBRARY_PATH; use execution provider %q to run on the CPU",
		ErrCUDAUnavailable, deviceID, lib.Path, lib.Version, cause, ProviderCPU)
}

// with runs fn on a free slot, waiting for one if all are busy.
func (e *engine) with(fn func(*slot) error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrClosed
	}
	s := <-e.free
	defer func() { e.free <- s }()
	return fn(s)
}

// close waits for calls in flight and destroys every session. It is
// idempotent.
func (e *engine) close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var errs []error
	for _, s := range e.all {
		if err := s.session.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("ortengine: destroy session: %w", err))
		}
	}
	e.all = nil
	return errors.Join(errs...)
}

// run runs the session on the values bound in s.inputs and s.outputs.
func (s *slot) run() error {
	if err := s.session.Run(s.inputs, s.outputs); err != nil {
		return fmt.Errorf("ortengine: run: %w", err)
	}
	return nil
}

// release destroys the values bound in s.inputs and s.outputs (the Go
// buffers they wrap are the caller's and stay untouched) and unbinds them.
func (s *slot) release() {
	for _, vs := range [][]ort.Value{s.inputs, s.outputs} {
		for i, v := range vs {
			if v != nil {
				v.Destroy()
				vs[i] = nil
			}
		}
	}
}

// tensor wraps data (not copied) as a rows×cols ORT tensor. On error the
// returned Value is a nil interface, safe to store in a slot.
func tensor[T ort.TensorData](data []T, rows, cols int) (ort.Value, error) {
	t, err := ort.NewTensor(ort.NewShape(int64(rows), int64(cols)), data)
	if err != nil {
		return nil, fmt.Errorf("ortengine: wrap %d×%d tensor: %w", rows, cols, err)
	}
	return t, nil
}

// vector wraps data (not copied) as an ORT tensor of shape [n].
func vector(data []float32, n int) (ort.Value, error) {
	t, err := ort.NewTensor(ort.NewShape(int64(n)), data)
	if err != nil {
		return nil, fmt.Errorf("ortengine: wrap %d-vector: %w", n, err)
	}
	return t, nil
}
