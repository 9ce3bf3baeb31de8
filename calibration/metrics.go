package calibration

import (
	"errors"
	"fmt"
	"math"
)

// LogSoftmax returns log softmax(z / t), computed stably.
func LogSoftmax(z []float64, t float64) []float64 {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, v/t)
	}
	s := 0.0
	for _, v := range z {
		s += math.Exp(v/t - m)
	}
	lse := m + math.Log(s)
	out := make([]float64, len(z))
	for j, v := range z {
		out[j] = v/t - lse
	}
	return out
}

// Bin is one reliability bin: confidences in (Lo, Hi].
type Bin struct {
	Lo, Hi     float64
	Count      int
	Accuracy   float64 // fraction correct in the bin (0 when empty)
	Confidence float64 // mean top-label confidence in the bin (0 when empty)
}

// Metrics summarise predictions against labels.
type Metrics struct {
	N        int
	Accuracy float64
	NLL      float64 // mean negative log-likelihood of the true label
	Brier    float64 // mean over samples of sum_j (p_j - y_j)^2
	ECE      float64 // expected calibration error of the top label
	MCE      float64 // maximum calibration error over non-empty bins
	Bins     []Bin
}

// Check validates logits and labels: same count, at least one sample, one
// width, labels in range, finite values.
func Check(logits [][]float64, labels []int) error {
	if len(logits) == 0 {
		return errors.New("no samples")
	}
	if len(logits) != len(labels) {
		return fmt.Errorf("%d rows of logits, %d labels", len(logits), len(labels))
	}
	k := len(logits[0])
	if k < 2 {
		return fmt.Errorf("%d classes: need at least 2", k)
	}
	for i, row := range logits {
		if len(row) != k {
			return fmt.Errorf("row %d has %d logits, row 0 has %d", i, len(row), k)
		}
		for _, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("row %d has a non-finite logit", i)
			}
		}
		if labels[i] < 0 || labels[i] >= k {
			return fmt.Errorf("label %d of row %d is not in 0..%d", labels[i], i, k-1)
		}
	}
	return nil
}

// Evaluate computes the metrics of softmax(logits / t) with bins
// equal-width, right-closed bins of the top-label confidence.
func Evaluate(logits [][]float64, labels []int, t float64, bins int) (Metrics, error) {
	if err := Check(logits, labels); err != nil {
		return Metrics{}, err
	}
	if t <= 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		return Metrics{}, fmt.Errorf("temperature %v: must be finite and > 0", t)
	}
	if bins < 1 {
		return Metrics{}, fmt.Errorf("%d bins: need at least 1", bins)
	}
	n := len(logits)
	m := Metrics{N: n, Bins: make([]Bin, bins)}
	edges := Edges(bins)
	sumConf := make([]float64, bins)
	sumCorrect := make([]float64, bins)
	for i, z := range logits {
		lp := LogSoftmax(z, t)
		y := labels[i]
		m.NLL -= lp[y]
		top, conf := 0, math.Exp(lp[0])
		for j := range lp {
			p := math.Exp(lp[j])
			d := p
			if j == y {
				d = p - 1
			}
			m.Brier += d * d
			if p > conf {
				top, conf = j, p
			}
		}
		correct := 0.0
		if top == y {
			correct = 1
			m.Accuracy++
		}
		b := binOf(conf, edges)
		m.Bins[b].Count++
		sumConf[b] += conf
		sumCorrect[b] += correct
	}
	m.Accuracy /= float64(n)
	m.NLL /= float64(n)
	m.Brier /= float64(n)
	for b := range m.Bins {
		m.Bins[b].Lo, m.Bins[b].Hi = edges[b], edges[b+1]
		if c := m.Bins[b].Count; c > 0 {
			m.Bins[b].Accuracy = sumCorrect[b] / float64(c)
			m.Bins[b].Confidence = sumConf[b] / float64(c)
			gap := math.Abs(m.Bins[b].Accuracy - m.Bins[b].Confidence)
			m.ECE += float64(c) / float64(n) * gap
			m.MCE = math.Max(m.MCE, gap)
		}
	}
	return m, nil
}

// Edges are the bin edges 0 = e0 < e1 < ... < e_bins = 1, spaced as
// numpy.linspace(0, 1, bins+1) spaces them.
func Edges(bins int) []float64 {
	e := make([]float64, bins+1)
	step := 1 / float64(bins)
	for i := range e {
		e[i] = float64(i) * step
	}
	e[bins] = 1
	return e
}

// binOf finds b with edges[b] < c <= edges[b+1]; c = 0 goes to bin 0.
func binOf(c float64, edges []float64) int {
	for b := 1; b < len(edges); b++ {
		if c <= edges[b] {
			return b - 1
		}
	}
	return len(edges) - 2
}
