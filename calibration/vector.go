package calibration

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// DefaultL2 is the guard of vector, Platt and per-label temperature
// scaling: (L2/2)·(Σ(a_j − 1)² + Σ b_j²) added to the mean NLL. It pulls the
// parameters towards no change, keeps them finite on separable data, and
// makes the optimum unique (a softmax ignores a shift of every bias).
const DefaultL2 = 1e-3

// newtonMaxDim bounds the problems solved by Newton's method with the exact
// Hessian (2k parameters cost n·k² per Hessian); larger ones use L-BFGS.
const newtonMaxDim = 128

// objective evaluates a smooth convex function at x, writes its gradient
// into g and, when h is not nil, its Hessian into h.
type objective func(x, g []float64, h *mat.SymDense) float64

// minimize finds the minimum of a strictly convex objective from x0: Newton's
// method for small problems, L-BFGS for large ones, then Newton steps on the
// exact Hessian to polish what the line search stopped short of in floating
// point.
func minimize(obj objective, x0 []float64) ([]float64, error) {
	dim := len(x0)
	p := optimize.Problem{
		Func: func(x []float64) float64 { return obj(x, make([]float64, dim), nil) },
		Grad: func(g, x []float64) { obj(x, g, nil) },
	}
	var method optimize.Method = &optimize.LBFGS{}
	if dim <= newtonMaxDim {
		p.Hess = func(h *mat.SymDense, x []float64) { obj(x, make([]float64, dim), h) }
		method = &optimize.Newton{}
	}
	res, err := optimize.Minimize(p, x0, &optimize.Settings{GradientThreshold: 1e-12, MajorIterations: 1000}, method)
	if res == nil {
		return nil, err
	}
	x := slices64(res.X)
	g := make([]float64, dim)
	obj(x, g, nil)
	if dim <= newtonMaxDim {
		x, g = polish(obj, x)
	}
	// A failed line search at a point with a negligible gradient is
	// convergence in floating point; anything else is not.
	if n := floats.Norm(g, math.Inf(1)); n > 1e-8 || math.IsNaN(n) {
		if err == nil {
			err = errors.New("did not converge")
		}
		return nil, fmt.Errorf("%w (gradient %.2g)", err, n)
	}
	return x, nil
}

// polish takes up to five Newton steps while they reduce the gradient.
func polish(obj objective, x []float64) ([]float64, []float64) {
	dim := len(x)
	g := make([]float64, dim)
	h := mat.NewSymDense(dim, nil)
	obj(x, g, h)
	for range 5 {
		var ch mat.Cholesky
		if !ch.Factorize(h) {
			break
		}
		var d mat.VecDense
		if err := ch.SolveVecTo(&d, mat.NewVecDense(dim, slices64(g))); err != nil {
			break
		}
		next := slices64(x)
		floats.Sub(next, d.RawVector().Data)
		ng := make([]float64, dim)
		nh := mat.NewSymDense(dim, nil)
		obj(next, ng, nh)
		if !(floats.Norm(ng, 2) < floats.Norm(g, 2)) {
			break
		}
		x, g, h = next, ng, nh
	}
	return x, g
}

func slices64(x []float64) []float64 { return append([]float64(nil), x...) }

// FitVector fits vector scaling: a_j and b_j minimising the mean NLL of
// softmax(a ∘ z + b) plus (l2/2)·(Σ(a_j − 1)² + Σ b_j²). The objective is
// convex (the logits are linear in the parameters) and strictly so for
// l2 > 0, so the optimum is unique. The argmax may change.
func FitVector(logits [][]float64, labels []int, l2 float64) (Calibrator, error) {
	if err := Check(logits, labels); err != nil {
		return Calibrator{}, err
	}
	if !(l2 > 0) || math.IsInf(l2, 0) {
		return Calibrator{}, fmt.Errorf("l2 %v: must be finite and > 0", l2)
	}
	k := len(logits[0])
	x0 := make([]float64, 2*k)
	for j := range k {
		x0[j] = 1
	}
	x, err := minimize(vectorObjective(logits, labels, l2), x0)
	if err != nil {
		return Calibrator{}, fmt.Errorf("fit vector scaling: %w", err)
	}
	return Calibrator{Method: MethodVector, Activation: ActivationSoftmax, Scale: x[:k], Bias: x[k:]}, nil
}

// vectorObjective is the guarded mean NLL of vector scaling over
// x = (a_0..a_k-1, b_0..b_k-1). With r = p − onehot(y) and S = diag(p) − pp',
// ∂/∂a_j = mean r_j z_j, ∂/∂b_j = mean r_j, and the Hessian blocks are
// mean S_jl z_j z_l, S_jl z_j and S_jl.
func vectorObjective(logits [][]float64, labels []int, l2 float64) objective {
	k := len(logits[0])
	return func(x, g []float64, h *mat.SymDense) float64 {
		a, b := x[:k], x[k:]
		for j := range g {
			g[j] = 0
		}
		var hs []float64 // row-major 2k×2k, summed then scaled
		if h != nil {
			hs = make([]float64, 4*k*k)
		}
		f := 0.0
		zc := make([]float64, k)
		for i, z := range logits {
			for j := range z {
				zc[j] = a[j]*z[j] + b[j]
			}
			lp := LogSoftmax(zc, 1)
			y := labels[i]
			f -= lp[y]
			for j := range k {
				p := math.Exp(lp[j])
				r := p
				if j == y {
					r--
				}
				g[j] += r * z[j]
				g[k+j] += r
			}
			if h == nil {
				continue
			}
			for j := range k {
				pj := math.Exp(lp[j])
				for l := j; l < k; l++ {
					pl := math.Exp(lp[l])
					s := -pj * pl
					if j == l {
						s += pj
					}
					hs[j*2*k+l] += s * z[j] * z[l] // a_j, a_l
					hs[j*2*k+k+l] += s * z[j]      // a_j, b_l
					hs[(k+j)*2*k+k+l] += s         // b_j, b_l
					if l != j {
						hs[l*2*k+k+j] += s * z[l] // a_l, b_j
					}
				}
			}
		}
		n := float64(len(logits))
		for j := range k {
			g[j] = g[j]/n + l2*(a[j]-1)
			g[k+j] = g[k+j]/n + l2*b[j]
		}
		reg := 0.0
		for j := range k {
			reg += (a[j]-1)*(a[j]-1) + b[j]*b[j]
		}
		f = f/n + l2/2*reg
		if h != nil {
			for r := range 2 * k {
				for c := r; c < 2*k; c++ {
					v := hs[r*2*k+c] / n
					if r == c {
						v += l2
					}
					h.SetSym(r, c, v)
				}
			}
		}
		return f
	}
}
