// Package assemble turns a checked registry (gateway/config) into what the
// gateway serves: backends for every replica (in-process ONNX Runtime,
// remote KServe/OIP servers with their TLS clients), a pool per version,
// models and ensembles built complete by their constructors, the logits
// store and the API keys. It is the one place that knows every concrete
// backend; `chorus serve` and `chorus calibrate` both build through it.
package assemble
