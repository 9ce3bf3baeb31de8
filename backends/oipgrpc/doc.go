// Package oipgrpc is the remote backend over gRPC: a predictor that serves
// the Open Inference Protocol's inference.GRPCInferenceService (another
// Chorus, KServe's servers, Triton) and returns raw logits, either as an
// FP32 tensor or as KServe's raw-logit strings. It implements
// protocol.Predictor and imports nothing of Chorus but protocol and its
// generated gRPC code (protocol/oippb).
package oipgrpc
