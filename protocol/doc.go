// Package protocol holds what every part of Chorus agrees on: the predictor
// contract (texts in, raw logits out), model metadata, the KServe V1 and Open
// Inference Protocol V2 wire types with the binary tensor data codec (and,
// in oippb, its gRPC messages), KServe's Python-flavoured output formats,
// the sentinel errors that the gateway maps to HTTP statuses, and the
// per-request timing record behind TEI's timing headers.
//
// It imports nothing of Chorus, so backends and the gateway can both depend
// on it without depending on each other.
package protocol
