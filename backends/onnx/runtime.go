package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ORTVersion is the ONNX Runtime release Chorus is built and tested against.
const ORTVersion = "1.29.0"

// DefaultLibraryPath is where `make deps` puts the ONNX Runtime library:
// $CHORUS_ORT_LIB if set, else ${CHORUS_CACHE:-~/.cache/chorus}/onnxruntime-1.29.0/.
func DefaultLibraryPath() string {
	if p := os.Getenv("CHORUS_ORT_LIB"); p != "" {
		return p
	}
	cache := os.Getenv("CHORUS_CACHE")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "chorus")
		}
	}
	return filepath.Join(cache, "onnxruntime-"+ORTVersion, "libonnxruntime.so.1")
}

// Runtime owns the ONNX Runtime environment. ONNX Runtime keeps one
// environment per process, so a process holds at most one open Runtime; it
// is created explicitly by main (never in init) and closed after every model
// opened from it.
type Runtime struct {
	mu     sync.Mutex
	closed bool
}

// NewRuntime loads the ONNX Runtime shared library at libPath.
func NewRuntime(libPath string) (*Runtime, error) {
	if _, err := os.Stat(libPath); err != nil {
		return nil, fmt.Errorf("onnxruntime library not found at %s (run `make deps`, or set --ort-lib / CHORUS_ORT_LIB): %w", libPath, err)
	}
	if ort.IsInitialized() {
		return nil, errors.New("onnxruntime is already initialised in this process")
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("load onnxruntime from %s: %w", libPath, err)
	}
	return &Runtime{}, nil
}

// Close tears the environment down. Close every Model first.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("destroy onnxruntime environment: %w", err)
	}
	return nil
}
