// Package calibration is pure numerics for temperature scaling: softmax,
// accuracy, NLL, Brier score, reliability bins with ECE and MCE, and the fit
// of the temperature that minimises NLL. No I/O; it imports nothing of Chorus.
package calibration
