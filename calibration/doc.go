// Package calibration is pure numerics for calibrating classifiers: the
// methods (one temperature, vector scaling, and per-label temperature or
// Platt scaling for sigmoid models) with their fits, the Calibrator a server
// applies before the activation and the File that carries it, and the
// metrics (accuracy, NLL, Brier score, equal-width and equal-mass ECE, MCE,
// classwise ECE, reliability bins, seeded bootstrap intervals). No I/O; it
// imports nothing of Chorus.
package calibration
