// Package onnx is the in-process backend: a Hugging Face model folder (config,
// tokenizer, ONNX graph) served through ONNX Runtime and the Hugging Face
// tokenizers library. It implements protocol.Predictor and imports nothing of
// Chorus but protocol.
package onnx
