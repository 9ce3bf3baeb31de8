package calibration

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mathext"
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
	// Lost counts the texts the reference (the last stage alone) gets
	// right and the cascade wrong; Gained the texts it gets wrong and the
	// cascade right. The accuracy the cascade loses is (Lost-Gained)/n.
	Lost, Gained int
	// LossBound is a one-sided upper confidence bound of the rate of lost
	// texts, Lost/n (see LossBound).
	LossBound float64
}

// CascadeSweep evaluates a two-part cascade at each threshold: a text goes
// to first when first's top-label probability (softmax of its calibrated
// logits) reaches the threshold, else to rest (the answer of the stages
// after it). first, rest and ref (what the cascade is judged against: the
// last stage alone) are calibrated logits, one row per text; each point's
// LossBound is at the given confidence.
func CascadeSweep(first, rest, ref [][]float64, labels []int, thresholds []float64, confidence float64) ([]CascadePoint, error) {
	n := len(labels)
	if len(first) != n || len(rest) != n || len(ref) != n || n == 0 {
		return nil, fmt.Errorf("cascade sweep: %d first rows, %d rest rows, %d reference rows, %d labels", len(first), len(rest), len(ref), n)
	}
	if !(confidence > 0 && confidence < 1) {
		return nil, fmt.Errorf("cascade sweep: confidence %v: want in (0, 1)", confidence)
	}
	conf := make([]float64, n)
	nllFirst, nllRest := make([]float64, n), make([]float64, n)
	okFirst, okRest, okRef := make([]bool, n), make([]bool, n), make([]bool, n)
	for i, y := range labels {
		k := len(first[i])
		if y < 0 || y >= k || len(rest[i]) != k || len(ref[i]) != k {
			return nil, fmt.Errorf("cascade sweep: row %d: label %d of %d", i, y, k)
		}
		p, q := Softmax(first[i], 1), Softmax(rest[i], 1)
		conf[i] = slices.Max(p)
		nllFirst[i], nllRest[i] = -math.Log(max(p[y], 1e-300)), -math.Log(max(q[y], 1e-300))
		okFirst[i], okRest[i], okRef[i] = Argmax(first[i]) == y, Argmax(rest[i]) == y, Argmax(ref[i]) == y
	}
	out := make([]CascadePoint, len(thresholds))
	for k, t := range thresholds {
		pt := CascadePoint{Threshold: t}
		correct, taken := 0, 0
		for i := range labels {
			ok := okRest[i]
			if conf[i] >= t {
				taken++
				ok = okFirst[i]
				pt.NLL += nllFirst[i]
			} else {
				pt.NLL += nllRest[i]
			}
			switch {
			case ok:
				correct++
				if !okRef[i] {
					pt.Gained++
				}
			case okRef[i]:
				pt.Lost++
			}
		}
		pt.Share, pt.Accuracy, pt.NLL = float64(taken)/float64(n), float64(correct)/float64(n), pt.NLL/float64(n)
		pt.LossBound = LossBound(pt.Lost, n, confidence)
		out[k] = pt
	}
	return out, nil
}

// LossBound is the one-sided Clopper–Pearson upper confidence bound of a
// binomial rate with lost successes in n trials: the p at which seeing at
// most lost has probability 1-confidence, the confidence quantile of
// Beta(lost+1, n-lost).
//
// Why this bound, and of this count: a cascade answers a text differently
// from its last stage only where the first stage takes it and the two
// disagree, so on a few thousand texts the count is a handful, often 0,
// and the tolerance (0.1 points of 3,000 texts is 3 texts) sits in the
// same few counts. There the normal approximation is useless and Wilson's
// one-sided interval covers less than its nominal level (at 0 it gives
// z²/(n+z²), below the exact 1-(1-confidence)^(1/n)); the exact binomial
// bound never covers less. It bounds the rate of texts lost, not the net
// accuracy loss (lost minus gained): lost/n is at least the net loss, so
// the bound holds for it too without modelling how gains and losses
// co-vary, and a lucky gain on some texts never licenses losing others.
func LossBound(lost, n int, confidence float64) float64 {
	if lost >= n {
		return 1
	}
	return mathext.InvRegIncBeta(float64(lost+1), float64(n-lost), confidence)
}

// CascadeThresholds is a grid for CascadeSweep over k labels: from 1/k
// (the lowest top-label probability: every text stays with the first
// stage) to 0.99 in steps of 0.005, then in steps of 0.0001 to 0.9999,
// then 1: sure models put most texts in that tail (the calibrated int8
// demo model puts half its validation texts between 0.996 and 0.998).
// The grid is fixed before any data are seen, as SuggestCascadeThreshold's
// fixed sequence needs; a finer grid costs no confidence.
func CascadeThresholds(k int) []float64 {
	var out []float64
	for c := int(math.Ceil(200 / float64(k))); c < 198; c++ {
		out = append(out, float64(c)/200)
	}
	for c := 9900; c < 10000; c++ {
		out = append(out, float64(c)/10000)
	}
	return append(out, 1)
}

// SuggestCascadeThreshold picks the threshold that sends the most texts to
// the first stage among those whose LossBound is within tolerance, tested
// in a fixed sequence: from the highest threshold (the first stage answers
// least) down, stopping at the first that fails. Taking the best of every
// threshold that passes would be a multiple comparison (of a hundred
// bounds, a few pass by luck); testing in a fixed order and stopping at
// the first failure keeps the chance that the suggestion loses more than
// tolerance at 1-confidence (fixed-sequence testing: Bauer 1991;
// Angelopoulos et al., "Learn then Test", 2021). Since the bound is at
// least the point estimate of the accuracy lost, the suggestion is also
// within tolerance on the data. False when the highest fails.
func SuggestCascadeThreshold(points []CascadePoint, tolerance float64) (CascadePoint, bool) {
	seq := slices.Clone(points)
	slices.SortStableFunc(seq, func(a, b CascadePoint) int { return cmp.Compare(b.Threshold, a.Threshold) })
	best, found := CascadePoint{}, false
	for _, p := range seq {
		if p.LossBound > tolerance+1e-12 {
			break
		}
		if !found || p.Share > best.Share {
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
