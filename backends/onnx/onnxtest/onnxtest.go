// Package onnxtest runs a test binary inside the process's one ONNX Runtime
// environment, for tests of any package that opens real models.
package onnxtest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/chorusml/chorus/backends/onnx"
)

// Main opens the runtime from the `make deps` cache, hands it to setRuntime,
// runs the tests, closes the runtime, checks for leaked goroutines and
// returns the exit code. Call it as os.Exit(onnxtest.Main(m, func(r) { rt = r })).
func Main(m *testing.M, setRuntime func(*onnx.Runtime)) int {
	rt, err := onnx.NewRuntime(onnx.DefaultLibraryPath())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	setRuntime(rt)
	code := m.Run()
	if err := rt.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return code
}
