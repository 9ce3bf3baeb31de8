//go:build tokenizerssource

package onnx

// Chorus calls libtokenizers' C API itself (hftokenizer.go), but the
// library is built from this module's Rust source (scripts/deps.sh, the
// Dockerfile), so go.mod must keep requiring it: this import, behind a
// build tag no build sets, keeps it there through `go mod tidy`.
import _ "github.com/daulet/tokenizers"
