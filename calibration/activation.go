package calibration

import "math"

// Softmax returns softmax(z / t) in float64, the maximum subtracted first
// so that large logits cannot overflow. It is the one softmax of Chorus:
// the gateway rounds its result to float32 per element, as a torch float32
// tensor holds it, which is what makes KServe's probability strings
// byte-compatible; ensembles and calibration keep the float64.
func Softmax[T float32 | float64](z []T, t float64) []float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v)/t)
	}
	sum := 0.0
	out := make([]float64, len(z))
	for j, v := range z {
		out[j] = math.Exp(float64(v)/t - m)
		sum += out[j]
	}
	for j := range out {
		out[j] /= sum
	}
	return out
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
