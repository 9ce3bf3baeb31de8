package calibration

import "math"

// Softmax returns softmax(z / t) in float64, the maximum subtracted first
// so that large logits cannot overflow. It is the one softmax of Chorus:
// the gateway rounds its result to float32 per element, as a torch float32
// tensor holds it, which is what makes KServe's probability strings
// byte-compatible; ensembles and calibration keep the float64.
func Softmax[T float32 | float64](z []T, t float64) []float64 {
	return SoftmaxTo(make([]float64, len(z)), z, t)
}

// SoftmaxTo is Softmax written to dst (of len(z)), which it returns: for
// callers that keep the result in a buffer of their own.
func SoftmaxTo[T float32 | float64](dst []float64, z []T, t float64) []float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v)/t)
	}
	sum := 0.0
	for j, v := range z {
		dst[j] = math.Exp(float64(v)/t - m)
		sum += dst[j]
	}
	for j := range dst {
		dst[j] /= sum
	}
	return dst
}

// Argmax returns the first index of the largest value, as torch.argmax
// and numpy.argmax do (ties go to the lower index).
func Argmax[T float32 | float64](row []T) int {
	best := 0
	for j, v := range row {
		if v > row[best] {
			best = j
		}
	}
	return best
}

// Sigmoid returns sigmoid(z_j / t) per element in float64, each from the
// side that cannot overflow: the score of a multi-label (or one-logit)
// model, as transformers' pipeline and TEI give it. Like Softmax, it is
// the one sigmoid of Chorus.
func Sigmoid[T float32 | float64](z []T, t float64) []float64 {
	out := make([]float64, len(z))
	for j, v := range z {
		out[j] = sigmoid(float64(v) / t)
	}
	return out
}

// ActivationNone leaves (temperature-divided) logits as the scores, as
// transformers' pipeline does for regression heads.
const ActivationNone Activation = "none"

// Scores turns one row of logits into scores with act (softmax, sigmoid
// or none; "" reads as softmax), after dividing by the temperature t.
func Scores[T float32 | float64](act Activation, z []T, t float64) []float64 {
	switch act {
	case ActivationSigmoid:
		return Sigmoid(z, t)
	case ActivationNone:
		out := make([]float64, len(z))
		for j, v := range z {
			out[j] = float64(v) / t
		}
		return out
	default:
		return Softmax(z, t)
	}
}
