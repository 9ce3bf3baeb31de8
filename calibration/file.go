package calibration

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// File is calibration.json, written by `chorus calibrate` and read by the
// registry's `calibration:` field.
type File struct {
	ChorusVersion string    `json:"chorus_version"`
	Created       time.Time `json:"created"`
	// Model names what was calibrated, Fingerprint what it computed then
	// (graph, tokenizer, max length; for an ensemble its members and
	// weights), Labels its label names.
	Model       string   `json:"model"`
	Fingerprint string   `json:"fingerprint"`
	Labels      []string `json:"labels"`
	// Calibrator is the method and its parameters, inline: a file written
	// before methods existed has only "temperature", and reads as
	// temperature scaling before a softmax.
	Calibrator
	// L2 is the guard the parameters were fitted with (not temperature).
	L2 float64 `json:"l2,omitempty"`
	// Note explains a temperature clamped at a bound.
	Note string `json:"note,omitempty"`
	Bins int    `json:"bins"`
	// Data is the calibration split; Test the optional held-out split.
	Data Split  `json:"data"`
	Test *Split `json:"test,omitempty"`
}

// Split is one data set with the metrics before (raw logits) and after.
type Split struct {
	Path   string  `json:"path"`
	SHA256 string  `json:"sha256"`
	N      int     `json:"n"`
	Before Metrics `json:"before"`
	After  Metrics `json:"after"`
	// ArgmaxChanged counts the samples whose top class calibration
	// changed (vector scaling can; a temperature cannot).
	ArgmaxChanged int `json:"argmax_changed,omitempty"`
}

// CheckFor verifies that the file calibrates a model with this fingerprint
// and labels, and holds a usable calibrator for that many labels.
func (f File) CheckFor(fingerprint string, labels []string) error {
	if err := f.Calibrator.Validate(len(labels)); err != nil {
		return err
	}
	var errs []error
	if f.Fingerprint != fingerprint {
		errs = append(errs, fmt.Errorf("it was fitted for fingerprint %.12s…, the model now has %.12s… (recalibrate, or serve with --allow-calibration-mismatch)", f.Fingerprint, fingerprint))
	}
	if !slices.Equal(f.Labels, labels) {
		errs = append(errs, fmt.Errorf("it was fitted for labels %v, the model has %v", f.Labels, labels))
	}
	return errors.Join(errs...)
}
