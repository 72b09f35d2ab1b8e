//go:build cgo && !noonnx

package ortengine

import (
	"fmt"

	ort "github.com/yalue/onnxruntime_go"
)

// Load loads the ONNX Runtime library and creates the process-wide ONNX
// Runtime environment, once. libraryPath may be empty to use ORT_LIB or the
// setup cache. Later calls return the library already loaded, and fail if
// they ask for a different file: a process holds one ONNX Runtime. It is
// safe for concurrent use; New* call it for you.
func Load(libraryPath string) (Library, error) {
	runtimeState.Lock()
	defer runtimeState.Unlock()
	if lib := runtimeState.loaded; lib != nil {
		if libraryPath != "" && libraryPath != lib.Path {
			return Library{}, fmt.Errorf("ortengine: onnxruntime already loaded from %s, cannot also load %s", lib.Path, libraryPath)
		}
		return *lib, nil
	}
	path, source, err := resolveLibrary(libraryPath)
	if err != nil {
		return Library{}, err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return Library{}, fmt.Errorf("ortengine: load onnxruntime from %s (from %s): %w; it must be version 1.24 or newer: run scripts/setup-ort.sh, or set %s",
			path, source, err, LibraryEnv)
	}
	runtimeState.loaded = &Library{Path: path, Source: source, Version: ort.GetVersion()}
	return *runtimeState.loaded, nil
}
