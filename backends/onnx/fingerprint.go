package onnx

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// fingerprint hashes what decides the logits: the graph bytes, its
// external data, and the tokenizer with its truncation. Lines for external
// data and left truncation are only written when present, so that the
// fingerprints of plain folders (and the caches keyed by them) stay as they
// were.
func fingerprint(f *folder, maxLen int, special bool) (string, error) {
	hashFile := func(path string) ([]byte, error) {
		g, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("fingerprint graph: %w", err)
		}
		defer g.Close()
		gh := sha256.New()
		if _, err := io.Copy(gh, g); err != nil {
			return nil, fmt.Errorf("fingerprint graph: %w", err)
		}
		return gh.Sum(nil), nil
	}
	gh, err := hashFile(f.graphPath)
	if err != nil {
		return "", err
	}
	th := sha256.Sum256(f.tokenizerJSON)
	h := sha256.New()
	fmt.Fprintf(h, "graph=%x\ntokenizer=%x\nmax_length=%d\n", gh, th, maxLen)
	for _, p := range f.graphData {
		dh, err := hashFile(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "graph_data %s=%x\n", filepath.Base(p), dh)
	}
	if f.truncateLeft {
		fmt.Fprintf(h, "truncation_side=left\n")
	}
	if !special {
		fmt.Fprintf(h, "special_tokens=false\n")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
