// Package backendtest is the contract suite every protocol.Predictor passes:
// output shapes, logits against the `transformers` reference, batch versus
// one-at-a-time, the empty batch, cancellation and concurrent callers. Each
// backend's tests call Run with a live predictor and the fixture reference.
package backendtest
