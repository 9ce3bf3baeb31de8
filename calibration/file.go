package calibration

import (
	"errors"
	"fmt"
	"math"
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
	Temperature float64  `json:"temperature"`
	// Note explains a temperature clamped at a bound.
	Note string `json:"note,omitempty"`
	Bins int    `json:"bins"`
	// Data is the calibration split; Test the optional held-out split.
	Data Split  `json:"data"`
	Test *Split `json:"test,omitempty"`
}

// Split is one data set with the metrics before (T = 1) and after.
type Split struct {
	Path   string  `json:"path"`
	SHA256 string  `json:"sha256"`
	N      int     `json:"n"`
	Before Metrics `json:"before"`
	After  Metrics `json:"after"`
}

// CheckFor verifies that the file calibrates a model with this fingerprint
// and labels, and holds a usable temperature.
func (f File) CheckFor(fingerprint string, labels []string) error {
	if !(f.Temperature > 0) || math.IsInf(f.Temperature, 0) {
		return fmt.Errorf("temperature %v is not > 0", f.Temperature)
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
