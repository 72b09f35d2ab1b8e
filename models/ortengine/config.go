package ortengine

import (
	"errors"
	"fmt"
)

// Execution providers accepted in Config.ExecutionProvider.
const (
	ProviderCPU  = "cpu"
	ProviderCUDA = "cuda"
)

// ErrCUDAUnavailable is returned (wrapped, with ONNX Runtime's reason) when
// the CUDA execution provider was asked for and cannot run.
var ErrCUDAUnavailable = errors.New("cuda execution provider unavailable")

// ErrClosed is returned by scoring calls on a closed engine.
var ErrClosed = errors.New("ortengine: engine closed")

// Config configures an engine. The zero value is valid: CPU, one session,
// one intra-op thread, library from ORT_LIB or the setup cache.
type Config struct {
	// LibraryPath is the ONNX Runtime shared library. Default: ORT_LIB,
	// then the file scripts/setup-ort.sh caches (see CachePath).
	LibraryPath string
	// ExecutionProvider is "cpu" (the default when empty) or "cuda".
	ExecutionProvider string
	// DeviceID is the CUDA device ordinal; only used with "cuda".
	DeviceID int
	// PoolSize is how many ONNX Runtime sessions serve calls concurrently;
	// a call waits while all are busy. Default 1.
	PoolSize int
	// IntraOpThreads is the thread count of each session's intra-op pool.
	// Default 1, so that a pool of sessions does not oversubscribe the CPU;
	// large batches of large models gain from more.
	IntraOpThreads int
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.ExecutionProvider == "" {
		c.ExecutionProvider = ProviderCPU
	}
	if c.PoolSize == 0 {
		c.PoolSize = 1
	}
	if c.IntraOpThreads == 0 {
		c.IntraOpThreads = 1
	}
	return c
}

// Validate reports whether c, with its defaults applied, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.ExecutionProvider != ProviderCPU && c.ExecutionProvider != ProviderCUDA:
		return fmt.Errorf("ortengine: execution provider %q is neither %q nor %q", c.ExecutionProvider, ProviderCPU, ProviderCUDA)
	case c.DeviceID < 0:
		return fmt.Errorf("ortengine: negative device id %d", c.DeviceID)
	case c.PoolSize < 0:
		return fmt.Errorf("ortengine: negative pool size %d", c.PoolSize)
	case c.IntraOpThreads < 0:
		return fmt.Errorf("ortengine: negative intra-op thread count %d", c.IntraOpThreads)
	}
	return nil
}
