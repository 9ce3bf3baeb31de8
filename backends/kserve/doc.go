// Package kserve is the remote backend: a predictor reached over HTTP that
// speaks KServe V1 or Open Inference Protocol V2 and returns raw logits —
// another Chorus, KServe's Hugging Face server with --return_raw_logits,
// Triton, MLServer. It implements protocol.Predictor and imports nothing of
// Chorus but protocol.
package kserve
