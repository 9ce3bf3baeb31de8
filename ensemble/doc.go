// Package ensemble combines the raw logits of several models that share a
// label set: weighted logit averaging, probability averaging, or a weighted
// majority vote, with a bounded concurrent fan-out to the members that
// tolerates failures down to a minimum. It knows nothing of HTTP or caching:
// the caller says how to call a member. It imports protocol (the logits
// type) and calibration (the one softmax and argmax), nothing else of ours.
package ensemble
