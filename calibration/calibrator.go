package calibration

import (
	"fmt"
	"math"
)

// Method names how a calibrator maps raw logits to calibrated ones.
type Method string

const (
	// MethodTemperature divides every logit by one T > 0 (Guo et al.
	// 2017). It never changes the argmax.
	MethodTemperature Method = "temperature"
	// MethodVector maps logit j to a_j z_j + b_j, a scale and a bias per
	// class (Guo et al.'s vector scaling). The argmax may change.
	MethodVector Method = "vector"
	// MethodLabelTemperature divides logit j by its own T_j > 0; for
	// sigmoid (multi-label) models, where every label is its own binary
	// problem.
	MethodLabelTemperature Method = "label_temperature"
	// MethodPlatt maps logit j to a_j z_j + b_j before a sigmoid: Platt
	// scaling per label, for sigmoid (multi-label) models.
	MethodPlatt Method = "platt"
)

// Activation is what turns calibrated logits into probabilities.
type Activation string

const (
	// ActivationSoftmax is for single-label models: one class per text.
	ActivationSoftmax Activation = "softmax"
	// ActivationSigmoid is for multi-label models: an independent
	// probability per label.
	ActivationSigmoid Activation = "sigmoid"
)

// Calibrator is a fitted calibration: what a server applies to raw logits
// before the activation. The zero Method and Activation read as
// temperature and softmax, so files written before methods existed (they
// carry only "temperature") keep their meaning.
type Calibrator struct {
	Method     Method     `json:"method,omitempty"`
	Activation Activation `json:"activation,omitempty"`
	// Temperature is T of MethodTemperature.
	Temperature float64 `json:"temperature,omitempty"`
	// Temperatures are T_j of MethodLabelTemperature, one per label.
	Temperatures []float64 `json:"temperatures,omitempty"`
	// Scale and Bias are a_j and b_j of MethodVector and MethodPlatt, one
	// per class or label.
	Scale []float64 `json:"scale,omitempty"`
	Bias  []float64 `json:"bias,omitempty"`
}

// TemperatureCalibrator is the calibrator of one temperature before a softmax.
func TemperatureCalibrator(t float64) Calibrator {
	return Calibrator{Method: MethodTemperature, Activation: ActivationSoftmax, Temperature: t}
}

// Kind returns the method, reading the zero value as MethodTemperature.
func (c Calibrator) Kind() Method {
	if c.Method == "" {
		return MethodTemperature
	}
	return c.Method
}

// Act returns the activation, reading the zero value as ActivationSoftmax.
func (c Calibrator) Act() Activation {
	if c.Activation == "" {
		return ActivationSoftmax
	}
	return c.Activation
}

// Validate checks that the calibrator is usable on rows of k logits: a
// known method and activation that go together, the right number of
// parameters, all finite, temperatures > 0.
func (c Calibrator) Validate(k int) error {
	switch c.Act() {
	case ActivationSoftmax, ActivationSigmoid:
	default:
		return fmt.Errorf("activation %q: want softmax or sigmoid", c.Activation)
	}
	finite := func(what string, v []float64) error {
		if len(v) != k {
			return fmt.Errorf("%d %s for %d classes", len(v), what, k)
		}
		for j, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("%s[%d] is %v", what, j, x)
			}
		}
		return nil
	}
	switch c.Kind() {
	case MethodTemperature:
		if !(c.Temperature > 0) || math.IsInf(c.Temperature, 0) {
			return fmt.Errorf("temperature %v is not > 0", c.Temperature)
		}
	case MethodVector:
		if c.Act() != ActivationSoftmax {
			return fmt.Errorf("method vector is for softmax models, not %s", c.Act())
		}
		if err := finite("scale", c.Scale); err != nil {
			return err
		}
		return finite("bias", c.Bias)
	case MethodLabelTemperature:
		if c.Act() != ActivationSigmoid {
			return fmt.Errorf("method label_temperature is for sigmoid models, not %s", c.Act())
		}
		if err := finite("temperatures", c.Temperatures); err != nil {
			return err
		}
		for j, t := range c.Temperatures {
			if !(t > 0) {
				return fmt.Errorf("temperatures[%d] = %v is not > 0", j, t)
			}
		}
	case MethodPlatt:
		if c.Act() != ActivationSigmoid {
			return fmt.Errorf("method platt is for sigmoid models, not %s", c.Act())
		}
		if err := finite("scale", c.Scale); err != nil {
			return err
		}
		return finite("bias", c.Bias)
	default:
		return fmt.Errorf("method %q: want temperature, vector, label_temperature or platt", c.Method)
	}
	return nil
}

// Apply returns the calibrated logits of one row; the caller applies the
// activation. The calibrator must have passed Validate for rows this wide.
func (c Calibrator) Apply(row []float32) []float32 {
	out := make([]float32, len(row))
	for j, v := range row {
		out[j] = float32(c.at(j, float64(v)))
	}
	return out
}

// Apply64 is Apply in float64, as fitting and evaluation use it.
func (c Calibrator) Apply64(row []float64) []float64 {
	out := make([]float64, len(row))
	for j, v := range row {
		out[j] = c.at(j, v)
	}
	return out
}

// ApplyAll calibrates every row.
func (c Calibrator) ApplyAll(logits [][]float64) [][]float64 {
	out := make([][]float64, len(logits))
	for i, z := range logits {
		out[i] = c.Apply64(z)
	}
	return out
}

// at calibrates logit v of class j. Temperatures divide, as the serving
// path always has, so that a temperature file gives the same bits as before.
func (c Calibrator) at(j int, v float64) float64 {
	switch c.Kind() {
	case MethodVector, MethodPlatt:
		return c.Scale[j]*v + c.Bias[j]
	case MethodLabelTemperature:
		return v / c.Temperatures[j]
	default:
		return v / c.Temperature
	}
}
