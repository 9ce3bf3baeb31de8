package calibration

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// FitMultiLabel fits a calibrator for a sigmoid (multi-label) model, whose
// NLL is the binary cross-entropy summed over labels:
//
//   - MethodLabelTemperature: T_j per label, minimising the mean binary
//     cross-entropy of sigmoid(z_j / T_j) plus (l2/2)(1/T_j − 1)²;
//   - MethodPlatt: a_j and b_j per label, of sigmoid(a_j z_j + b_j), plus
//     (l2/2)((a_j − 1)² + b_j²);
//   - MethodTemperature: one T over every label, guarded like a T_j.
//
// Each label is its own convex problem. A temperature whose 1/T would
// fall at or below 1e-3 (a label the model gets worse than chance) is
// clamped at 1000 and the note says which labels.
func FitMultiLabel(logits [][]float64, targets [][]bool, method Method, l2 float64) (c Calibrator, note string, err error) {
	if err := CheckMultiLabel(logits, targets); err != nil {
		return Calibrator{}, "", err
	}
	if !(l2 > 0) || math.IsInf(l2, 0) {
		return Calibrator{}, "", fmt.Errorf("l2 %v: must be finite and > 0", l2)
	}
	k := len(logits[0])
	column := func(j int) ([]float64, []float64) {
		z, y := make([]float64, len(logits)), make([]float64, len(logits))
		for i := range logits {
			z[i] = logits[i][j]
			if targets[i][j] {
				y[i] = 1
			}
		}
		return z, y
	}
	var clamped []int
	beta := func(z, y []float64, label int) (float64, error) {
		x, err := minimize(binaryObjective(z, y, l2, false), []float64{1})
		if err != nil {
			return 0, err
		}
		if x[0] <= betaMin {
			clamped = append(clamped, label)
			return betaMin, nil
		}
		return x[0], nil
	}
	c = Calibrator{Method: method, Activation: ActivationSigmoid}
	switch method {
	case MethodTemperature:
		var z, y []float64
		for j := range k {
			zj, yj := column(j)
			z, y = append(z, zj...), append(y, yj...)
		}
		b, err := beta(z, y, -1)
		if err != nil {
			return Calibrator{}, "", fmt.Errorf("fit temperature: %w", err)
		}
		c.Temperature = 1 / b
	case MethodLabelTemperature:
		for j := range k {
			z, y := column(j)
			b, err := beta(z, y, j)
			if err != nil {
				return Calibrator{}, "", fmt.Errorf("fit temperature of label %d: %w", j, err)
			}
			c.Temperatures = append(c.Temperatures, 1/b)
		}
	case MethodPlatt:
		for j := range k {
			z, y := column(j)
			x, err := minimize(binaryObjective(z, y, l2, true), []float64{1, 0})
			if err != nil {
				return Calibrator{}, "", fmt.Errorf("fit Platt scaling of label %d: %w", j, err)
			}
			c.Scale, c.Bias = append(c.Scale, x[0]), append(c.Bias, x[1])
		}
	default:
		return Calibrator{}, "", fmt.Errorf("method %q: a sigmoid model takes temperature, label_temperature or platt", method)
	}
	if len(clamped) > 0 {
		note = fmt.Sprintf("the model does no better than chance on labels %v (-1: all): their temperature is clamped at 1000; check the labels and the model", clamped)
	}
	return c, note, nil
}

// binaryObjective is the guarded mean binary cross-entropy of
// sigmoid(a z + b) over x = (a) or, with bias, (a, b). With r = σ − y and
// w = σ(1 − σ), the gradient is mean (r z, r) and the Hessian mean
// (w z², w z; w z, w), plus l2 on the diagonal.
func binaryObjective(z, y []float64, l2 float64, bias bool) objective {
	return func(x, g []float64, h *mat.SymDense) float64 {
		a, b := x[0], 0.0
		if bias {
			b = x[1]
		}
		var f, ga, gb, haa, hab, hbb float64
		for i, v := range z {
			u := a*v + b
			p := sigmoid(u)
			f += softplus(u) - y[i]*u
			r, w := p-y[i], p*(1-p)
			ga += r * v
			gb += r
			haa += w * v * v
			hab += w * v
			hbb += w
		}
		n := float64(len(z))
		f = f/n + l2/2*((a-1)*(a-1)+b*b)
		g[0] = ga/n + l2*(a-1)
		if h != nil {
			h.SetSym(0, 0, haa/n+l2)
		}
		if bias {
			g[1] = gb/n + l2*b
			if h != nil {
				h.SetSym(0, 1, hab/n)
				h.SetSym(1, 1, hbb/n+l2)
			}
		}
		return f
	}
}
