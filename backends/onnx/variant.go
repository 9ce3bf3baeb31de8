package onnx

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Tokenizer and graph choices that KServe's Hugging Face server exposes as
// flags (--disable_lower_case, --disable_special_tokens, --dtype,
// --tokenizer_revision), applied to what readFolder found. Each changes the
// fingerprint through the graph or tokenizer bytes it picks.

// dtypeVariants are the graph files optimum writes for a weight type, best
// first; "auto", "float32" and "float" keep the default graph.
var dtypeVariants = map[string][]string{
	"float16":  {filepath.Join("onnx", "model_fp16.onnx"), "model_fp16.onnx"},
	"half":     {filepath.Join("onnx", "model_fp16.onnx"), "model_fp16.onnx"},
	"bfloat16": {filepath.Join("onnx", "model_bf16.onnx"), "model_bf16.onnx"},
}

// Dtypes are the values Options.Dtype accepts (KServe's --dtype choices;
// "" is DefaultDtype).
var Dtypes = []string{"", "auto", "float32", "float", "float16", "half", "bfloat16"}

// DefaultDtype keeps the default (fp32) graph.
const DefaultDtype = "auto"

// DtypeGraph is the graph file dir serves for dtype: its variant when the
// folder has one, else "" (the default graph).
func DtypeGraph(dir, dtype string) string {
	for _, c := range dtypeVariants[dtype] {
		if _, err := os.Stat(filepath.Join(dir, c)); err == nil {
			return filepath.Join(dir, c)
		}
	}
	return ""
}

// applyOptions adjusts the folder for the tokenizer and graph options.
func (f *folder) applyOptions(opts Options) error {
	if g := DtypeGraph(f.dir, opts.Dtype); g != "" && opts.GraphFile == "" { // a named graph wins
		if err := f.setGraph(g); err != nil {
			return err
		}
	}
	if opts.TokenizerDir != "" {
		other, err := readTokenizer(opts.TokenizerDir, f.modelType)
		if err != nil {
			return fmt.Errorf("tokenizer from %s: %w", opts.TokenizerDir, err)
		}
		f.tokenizerJSON = other
	}
	if opts.LowerCase != nil {
		tj, err := setLowerCase(f.tokenizerJSON, *opts.LowerCase)
		if err != nil {
			return err
		}
		f.tokenizerJSON = tj
	}
	return nil
}

// setLowerCase sets the lowercasing of a tokenizer.json normalizer: a
// BertNormalizer's "lowercase" field, or a Lowercase step of a Sequence
// (kept or removed). Turning it on where the tokenizer has no such place
// wraps the normalizer in a Sequence after a Lowercase step.
func setLowerCase(tokenizerJSON []byte, lower bool) ([]byte, error) {
	var tj map[string]any
	if err := json.Unmarshal(tokenizerJSON, &tj); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	norm, _ := tj["normalizer"].(map[string]any)
	switch {
	case norm != nil && norm["type"] == "BertNormalizer":
		norm["lowercase"] = lower
		if _, set := norm["strip_accents"]; !set || norm["strip_accents"] == nil {
			// BERT strips accents exactly when it lowercases, unless told.
			norm["strip_accents"] = lower
		}
	case norm != nil && norm["type"] == "Sequence":
		steps, _ := norm["normalizers"].([]any)
		kept := []any{}
		for _, s := range steps {
			if m, _ := s.(map[string]any); m != nil && m["type"] == "Lowercase" {
				continue
			}
			kept = append(kept, s)
		}
		if lower {
			kept = append([]any{map[string]any{"type": "Lowercase"}}, kept...)
		}
		norm["normalizers"] = kept
	case lower && norm != nil:
		tj["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "Lowercase"}, norm}}
	case lower:
		tj["normalizer"] = map[string]any{"type": "Lowercase"}
	case norm != nil && norm["type"] == "Lowercase":
		tj["normalizer"] = nil
	}
	return json.Marshal(tj)
}
