package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/calibration/report"
)

// methodOptions are the flags that choose and tune the calibration method.
type methodOptions struct {
	method     string
	multiLabel bool
	l2         float64
	bootstrap  int
	seed       uint64
}

// check validates the options and settles the activation: the per-label
// methods imply a multi-label (sigmoid) model.
func (o *methodOptions) check() error {
	switch calibration.Method(o.method) {
	case calibration.MethodTemperature:
	case calibration.MethodVector:
		if o.multiLabel {
			return fmt.Errorf("--method vector is for single-label (softmax) models; with --multi-label use temperature, label_temperature or platt")
		}
	case calibration.MethodLabelTemperature, calibration.MethodPlatt:
		o.multiLabel = true
	default:
		return fmt.Errorf("--method %q: want temperature, vector, label_temperature or platt", o.method)
	}
	if !(o.l2 > 0) {
		return fmt.Errorf("--l2 must be > 0")
	}
	if o.bootstrap < 0 || o.bootstrap == 1 {
		return fmt.Errorf("--bootstrap must be 0 (none) or at least 2")
	}
	return nil
}

// settleActivation follows the scored model's activation unless
// --multi-label was given: a model served with a sigmoid is multi-label
// (its calibration must be sigmoid to be served), one served with none
// has no probabilities to calibrate.
func (f *calibrateFlags) settleActivation(cmd *cobra.Command, act string) error {
	switch {
	case act == string(calibration.ActivationNone):
		return fmt.Errorf("--model %s is served with activation none (raw scores): there are no probabilities to calibrate", f.model)
	case cmd.Flags().Changed("multi-label"):
		return nil
	case act == string(calibration.ActivationSigmoid):
		f.multiLabel = true
	}
	return f.methodOptions.check()
}

// fitCalibrator fits the chosen method on a split.
func fitCalibrator(o methodOptions, s *splitData) (c calibration.Calibrator, note string, err error) {
	if o.multiLabel {
		targets, err := s.targets()
		if err != nil {
			return calibration.Calibrator{}, "", err
		}
		return calibration.FitMultiLabel(s.logits, targets, calibration.Method(o.method), o.l2)
	}
	if err := s.singleLabel(); err != nil {
		return calibration.Calibrator{}, "", err
	}
	if calibration.Method(o.method) == calibration.MethodVector {
		c, err := calibration.FitVector(s.logits, s.labels, o.l2)
		return c, "", err
	}
	t, err := calibration.FitTemperature(s.logits, s.labels)
	return calibration.TemperatureCalibrator(t.T), t.Note, err
}

// evaluate computes the metrics of a split before (raw logits) and after
// calibration, with bootstrap intervals when asked. Both use the same seed,
// so they are computed on the same resamples.
func (s *splitData) evaluate(c calibration.Calibrator, o methodOptions, bins int) (calibration.Split, error) {
	out := calibration.Split{Path: s.path, SHA256: s.sha, N: s.n()}
	if o.multiLabel {
		targets, err := s.targets()
		if err != nil {
			return out, err
		}
		after := c.ApplyAll(s.logits)
		for _, m := range []struct {
			dst    *calibration.Metrics
			logits [][]float64
		}{{&out.Before, s.logits}, {&out.After, after}} {
			if *m.dst, err = calibration.EvaluateMultiLabel(m.logits, targets, bins); err != nil {
				return out, err
			}
			if o.bootstrap > 0 {
				ci, err := calibration.BootstrapMultiLabel(m.logits, targets, bins, o.bootstrap, o.seed)
				if err != nil {
					return out, err
				}
				m.dst.CI = &ci
			}
		}
		return out, nil
	}
	if err := s.singleLabel(); err != nil {
		return out, err
	}
	// A temperature is evaluated as it always was, dividing inside the
	// softmax; other methods on their calibrated logits.
	logits, t := s.logits, c.Temperature
	if c.Kind() != calibration.MethodTemperature {
		logits, t = c.ApplyAll(s.logits), 1
	}
	var err error
	if out.Before, err = calibration.Evaluate(s.logits, s.labels, 1, bins); err != nil {
		return out, err
	}
	if out.After, err = calibration.Evaluate(logits, s.labels, t, bins); err != nil {
		return out, err
	}
	if o.bootstrap > 0 {
		for _, m := range []struct {
			dst    *calibration.Metrics
			logits [][]float64
			t      float64
		}{{&out.Before, s.logits, 1}, {&out.After, logits, t}} {
			ci, err := calibration.Bootstrap(m.logits, s.labels, m.t, bins, o.bootstrap, o.seed)
			if err != nil {
				return out, err
			}
			m.dst.CI = &ci
		}
	}
	for i, z := range s.logits {
		if argmax(z) != argmax(logits[i]) {
			out.ArgmaxChanged++
		}
	}
	return out, nil
}

func argmax(z []float64) int {
	best := 0
	for j, v := range z {
		if v > z[best] {
			best = j
		}
	}
	return best
}

// describe writes what was fitted, in a line or two.
func describe(w io.Writer, c calibration.Calibrator, labels []string, s *splitData, l2 float64) {
	what := fmt.Sprintf("(fitted on %d examples of %s)", s.n(), s.path)
	name := func(j int) string {
		if j < len(labels) {
			return labels[j]
		}
		return fmt.Sprint(j)
	}
	switch c.Kind() {
	case calibration.MethodTemperature:
		fmt.Fprintf(w, "temperature: %.6f %s\n", c.Temperature, what)
	case calibration.MethodLabelTemperature:
		var parts []string
		for j, t := range c.Temperatures {
			parts = append(parts, fmt.Sprintf("%s %.4f", name(j), t))
		}
		fmt.Fprintf(w, "temperature per label: %s %s, L2 %g\n", strings.Join(parts, ", "), what, l2)
	default:
		var parts []string
		for j := range c.Scale {
			parts = append(parts, fmt.Sprintf("%s %.4f·z%+.4f", name(j), c.Scale[j], c.Bias[j]))
		}
		fmt.Fprintf(w, "%s scaling: %s %s, L2 %g\n", c.Kind(), strings.Join(parts, ", "), what, l2)
	}
}

// rowNames are the table's names of a split before and after.
func rowNames(split string, c calibration.Calibrator) (before, after string) {
	if c.Kind() == calibration.MethodTemperature {
		return split + ", T=1", fmt.Sprintf("%s, T=%.4f", split, c.Temperature)
	}
	return split + ", raw", fmt.Sprintf("%s, %s", split, c.Kind())
}

// argmaxNote says how a method that can move the argmax moved it.
func argmaxNote(w io.Writer, split string, s calibration.Split) {
	if s.ArgmaxChanged == 0 {
		return
	}
	fmt.Fprintf(w, "note: calibration changed the predicted class of %d of %d examples of the %s split: accuracy %.4f → %.4f\n",
		s.ArgmaxChanged, s.N, split, s.Before.Accuracy, s.After.Accuracy)
}

// diagramPanels are the reliability diagrams of a split before and after.
func diagramPanels(s calibration.Split, c calibration.Calibrator, labels []string, multi bool) []report.Panel {
	after := fmt.Sprintf("after (%s)", c.Kind())
	if c.Kind() == calibration.MethodTemperature {
		after = fmt.Sprintf("after (T = %.3f)", c.Temperature)
	}
	base := filepath.Base(s.Path)
	return []report.Panel{{Title: "before, " + base, M: s.Before, Classes: labels, MultiLabel: multi},
		{Title: after + ", " + base, M: s.After, Classes: labels, MultiLabel: multi}}
}

// labelSet reads a label given as an index, a name, or a list of them (the
// true labels of a multi-label example). A single label also comes back as
// y; a list gives y = -1.
func labelSet(raw json.RawMessage, labels []string) (y int, set []int, err error) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		y, err := labelIndex(raw, labels)
		return y, []int{y}, err
	}
	for _, l := range list {
		j, err := labelIndex(l, labels)
		if err != nil {
			return 0, nil, err
		}
		set = append(set, j)
	}
	return -1, set, nil
}

// singleLabel checks that every example has one label, as a softmax needs.
func (s *splitData) singleLabel() error {
	if i := slices.Index(s.labels, -1); i >= 0 {
		return fmt.Errorf("%s: example %d has a list of labels: pass --multi-label for a multi-label (sigmoid) model", s.path, i+1)
	}
	return nil
}

// targets are the multi-hot targets of a multi-label split.
func (s *splitData) targets() ([][]bool, error) {
	out := make([][]bool, len(s.sets))
	for i, set := range s.sets {
		out[i] = make([]bool, len(s.logits[i]))
		for _, j := range set {
			if j < 0 || j >= len(out[i]) {
				return nil, fmt.Errorf("%s: example %d: label %d is not in 0..%d", s.path, i+1, j, len(out[i])-1)
			}
			out[i][j] = true
		}
	}
	return out, nil
}
