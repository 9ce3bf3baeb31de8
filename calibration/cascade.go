package calibration

import (
	"fmt"
	"math"
	"slices"
)

// CascadePoint is a cascade's quality at one first-stage threshold.
type CascadePoint struct {
	Threshold float64
	// Share is the fraction of texts the first stage answers.
	Share    float64
	Accuracy float64
	// NLL is the mean negative log-likelihood of the true labels under the
	// answering stage's calibrated probabilities.
	NLL float64
}

// CascadeSweep evaluates a two-part cascade at each threshold: a text goes
// to first when first's top-label probability (softmax of its calibrated
// logits) reaches the threshold, else to rest (the answer of the stages
// after it). first and rest are calibrated logits, one row per text.
func CascadeSweep(first, rest [][]float64, labels []int, thresholds []float64) ([]CascadePoint, error) {
	n := len(labels)
	if len(first) != n || len(rest) != n || n == 0 {
		return nil, fmt.Errorf("cascade sweep: %d first rows, %d rest rows, %d labels", len(first), len(rest), n)
	}
	conf := make([]float64, n)
	nllFirst, nllRest := make([]float64, n), make([]float64, n)
	okFirst, okRest := make([]bool, n), make([]bool, n)
	for i, y := range labels {
		if y < 0 || y >= len(first[i]) || len(rest[i]) != len(first[i]) {
			return nil, fmt.Errorf("cascade sweep: row %d: label %d of %d", i, y, len(first[i]))
		}
		p, q := Softmax(first[i], 1), Softmax(rest[i], 1)
		conf[i] = slices.Max(p)
		nllFirst[i], nllRest[i] = -math.Log(max(p[y], 1e-300)), -math.Log(max(q[y], 1e-300))
		okFirst[i], okRest[i] = Argmax(first[i]) == y, Argmax(rest[i]) == y
	}
	out := make([]CascadePoint, len(thresholds))
	for k, t := range thresholds {
		pt := CascadePoint{Threshold: t}
		correct, taken := 0, 0
		for i := range labels {
			if conf[i] >= t {
				taken++
				pt.NLL += nllFirst[i]
				if okFirst[i] {
					correct++
				}
				continue
			}
			pt.NLL += nllRest[i]
			if okRest[i] {
				correct++
			}
		}
		pt.Share, pt.Accuracy, pt.NLL = float64(taken)/float64(n), float64(correct)/float64(n), pt.NLL/float64(n)
		out[k] = pt
	}
	return out, nil
}

// CascadeThresholds is a grid for CascadeSweep over k labels: from 1/k
// (the lowest top-label probability: every text stays with the first
// stage) to 1 in steps of 0.005, then 0.001 above 0.99, with 0.9995 and
// 0.9999: sure models put most texts in that tail.
func CascadeThresholds(k int) []float64 {
	var out []float64
	for t := math.Ceil(200/float64(k)) / 200; t < 1; t += 0.005 {
		out = append(out, math.Round(t*1000)/1000)
	}
	for c := 991; c < 1000; c++ {
		out = append(out, float64(c)/1000)
	}
	out = append(out, 0.9995, 0.9999, 1)
	slices.Sort(out)
	return slices.Compact(out)
}

// SuggestCascadeThreshold picks the threshold that sends the most texts to
// the first stage among those whose accuracy is at least ref - tolerance;
// false when none is.
func SuggestCascadeThreshold(points []CascadePoint, ref, tolerance float64) (CascadePoint, bool) {
	best, found := CascadePoint{}, false
	for _, p := range points {
		if p.Accuracy >= ref-tolerance-1e-12 && (!found || p.Share > best.Share || (p.Share == best.Share && p.Threshold > best.Threshold)) {
			best, found = p, true
		}
	}
	return best, found
}

// CascadeAnswers runs a cascade offline: stages[s][i] is stage s's
// calibrated logits for text i, and each text takes the row of the first
// stage whose top-label probability reaches mins[s] (the last stage's
// threshold is ignored). It also says which stage answered each text.
func CascadeAnswers(stages [][][]float64, mins []float64) ([][]float64, []int) {
	if len(stages) == 0 {
		return nil, nil
	}
	n := len(stages[0])
	out, by := make([][]float64, n), make([]int, n)
	for i := range n {
		for s := range stages {
			if s == len(stages)-1 || slices.Max(Softmax(stages[s][i], 1)) >= mins[s] {
				out[i], by[i] = stages[s][i], s
				break
			}
		}
	}
	return out, by
}
