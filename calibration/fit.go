package calibration

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// Bounds of the temperature search, as β = 1/T.
const (
	betaMin = 1e-3 // T = 1000: every prediction near uniform
	betaMax = 1e3  // T = 0.001: every prediction near certain
)

// Fit is a fitted temperature.
type Fit struct {
	T float64
	// Note is set when no interior optimum exists and T sits at a bound:
	// separable data (NLL keeps falling as T → 0) or data the model gets
	// worse than chance (NLL keeps falling as T → ∞).
	Note string
}

// nll is the mean NLL of softmax(β z) with its first and second derivatives
// in β. It is convex in β: the second derivative is a variance.
func nll(logits [][]float64, labels []int, beta float64) (f, g, h float64) {
	for i, z := range logits {
		lp := LogSoftmax(z, 1/beta)
		mean, sq := 0.0, 0.0
		for j, v := range z {
			p := math.Exp(lp[j])
			mean += p * v
			sq += p * v * v
		}
		f -= lp[labels[i]]
		g += mean - z[labels[i]]
		h += sq - mean*mean
	}
	n := float64(len(logits))
	return f / n, g / n, h / n
}

// FitTemperature finds T > 0 minimising the mean NLL of softmax(logits / T).
// The objective is convex in β = 1/T, so the sign of its slope at the ends
// of [1e-3, 1e3] says whether an interior optimum exists; if it does,
// gonum's Newton method finds it.
func FitTemperature(logits [][]float64, labels []int) (Fit, error) {
	if err := Check(logits, labels); err != nil {
		return Fit{}, err
	}
	if _, g, _ := nll(logits, labels, betaMax); g <= 0 {
		return Fit{T: 1 / betaMax, Note: "the data are separable: NLL keeps falling as T → 0, so T is clamped at 0.001; use more or harder calibration data"}, nil
	}
	if _, g, _ := nll(logits, labels, betaMin); g >= 0 {
		return Fit{T: 1 / betaMin, Note: "the model does no better than chance on these data: NLL keeps falling as T → ∞ (uniform predictions), so T is clamped at 1000; check the labels and the model"}, nil
	}
	p := optimize.Problem{
		Func: func(x []float64) float64 { f, _, _ := nll(logits, labels, x[0]); return f },
		Grad: func(grad, x []float64) { _, g, _ := nll(logits, labels, x[0]); grad[0] = g },
		Hess: func(hess *mat.SymDense, x []float64) { _, _, h := nll(logits, labels, x[0]); hess.SetSym(0, 0, h) },
	}
	res, err := optimize.Minimize(p, []float64{1}, &optimize.Settings{GradientThreshold: 1e-11}, &optimize.Newton{Linesearcher: &optimize.Bisection{}})
	if res == nil {
		return Fit{}, fmt.Errorf("fit temperature: %w", err)
	}
	beta := res.X[0]
	// Near the optimum the line search can fail in floating point. The
	// result stands when the Newton step left is negligible; that step is
	// then taken to polish it.
	if _, g, h := nll(logits, labels, beta); err != nil {
		if h <= 0 || math.Abs(g/h) > 1e-6*beta {
			return Fit{}, fmt.Errorf("fit temperature: %w (slope %.2g at T = %v)", err, g, 1/beta)
		}
		beta -= g / h
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return Fit{}, fmt.Errorf("fit temperature: the optimiser ended at β = %v", beta)
	}
	return Fit{T: 1 / beta}, nil
}
