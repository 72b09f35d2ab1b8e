// Package ortengine scores ONNX models with ONNX Runtime through
// github.com/yalue/onnxruntime_go (cgo): models exported by
// models/onnxexport (Linear) and models that users bring (Custom).
//
// ONNX Runtime is a shared library loaded once per process. Its path is, in
// order: Config.LibraryPath, the ORT_LIB environment variable, or the file
// that scripts/setup-ort.sh caches under
// ${DRIFTLINE_CACHE:-$HOME/.cache/driftline}/onnxruntime/DefaultVersion/.
// It must be ONNX Runtime 1.24 or newer (C API version 24).
//
// Scoring runs on the CPU by default. ExecutionProvider "cuda" turns on the
// CUDA execution provider, and fails with ErrCUDAUnavailable when it cannot:
// the engine never falls back to the CPU by itself.
package ortengine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// DefaultVersion is the ONNX Runtime version scripts/setup-ort.sh installs,
// and so the one found in the setup cache.
const DefaultVersion = "1.29.0"

// LibraryEnv names the environment variable that overrides the library path.
const LibraryEnv = "ORT_LIB"

// ErrLibraryNotFound is returned (wrapped) when no ONNX Runtime library file
// exists at the resolved path.
var ErrLibraryNotFound = errors.New("onnxruntime library not found")

// Library describes the ONNX Runtime library the process loaded.
type Library struct {
	// Path is the file that was loaded.
	Path string
	// Source says where Path came from: "config", "ORT_LIB" or "setup cache".
	Source string
	// Version is the version the library reports.
	Version string
}

// CachePath returns where scripts/setup-ort.sh puts the CPU library:
// ${DRIFTLINE_CACHE:-$HOME/.cache/driftline}/onnxruntime/DefaultVersion/libonnxruntime.so.1.
func CachePath() (string, error) {
	root := os.Getenv("DRIFTLINE_CACHE")
	if root == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("ortengine: find the setup cache: %w", err)
		}
		root = filepath.Join(home, ".cache", "driftline")
	}
	return filepath.Join(root, "onnxruntime", DefaultVersion, "libonnxruntime.so.1"), nil
}

// resolveLibrary picks the library path: explicit, then ORT_LIB, then the
// setup cache. It checks that the file exists.
func resolveLibrary(explicit string) (path, source string, err error) {
	switch {
	case explicit != "":
		path, source = explicit, "config"
	case os.Getenv(LibraryEnv) != "":
		path, source = os.Getenv(LibraryEnv), LibraryEnv
	default:
		path, source = "", "setup cache"
		if path, err = CachePath(); err != nil {
			return "", "", err
		}
	}
	if _, err := os.Stat(path); err != nil {
		return "", "", fmt.Errorf("ortengine: %w at %s (from %s): run scripts/setup-ort.sh, or set %s to a libonnxruntime.so of version 1.24 or newer",
			ErrLibraryNotFound, path, source, LibraryEnv)
	}
	return path, source, nil
}

var runtimeState struct {
	sync.Mutex
	loaded *Library
}
