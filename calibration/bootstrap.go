package calibration

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Interval is a two-sided confidence interval.
type Interval struct{ Lo, Hi float64 }

// Intervals are percentile bootstrap intervals of the metrics that depend
// on the sample: resample the samples with replacement, recompute, and take
// the (1 - Level)/2 and (1 + Level)/2 quantiles of the replicates.
type Intervals struct {
	Level        float64
	Resamples    int
	Seed         uint64
	NLL          Interval
	ECE          Interval
	AdaptiveECE  Interval
	ClasswiseECE Interval
	// Bins are intervals of the accuracy in each equal-width reliability
	// bin, over the replicates in which the bin is not empty; ClassBins
	// the same per class. For the diagrams; not written to files.
	Bins      []Interval   `json:"-"`
	ClassBins [][]Interval `json:"-"`
}

// Level95 is the coverage of the intervals Chorus reports.
const Level95 = 0.95

// Bootstrap computes 95% intervals of the metrics of softmax(logits / t)
// from resamples replicates drawn by a PCG seeded with seed: the same seed
// gives the same intervals.
func Bootstrap(logits [][]float64, labels []int, t float64, bins, resamples int, seed uint64) (Intervals, error) {
	s, err := scoreSoftmax(logits, labels, t, bins)
	if err != nil {
		return Intervals{}, err
	}
	return s.bootstrapSeeded(resamples, seed)
}

// BootstrapMultiLabel is Bootstrap for a sigmoid model: whole samples (all
// their labels) are resampled.
func BootstrapMultiLabel(logits [][]float64, targets [][]bool, bins, resamples int, seed uint64) (Intervals, error) {
	s, err := scoreSigmoid(logits, targets, bins)
	if err != nil {
		return Intervals{}, err
	}
	return s.bootstrapSeeded(resamples, seed)
}

func (s *scored) bootstrapSeeded(resamples int, seed uint64) (Intervals, error) {
	if resamples < 2 {
		return Intervals{}, fmt.Errorf("%d resamples: need at least 2", resamples)
	}
	in := s.bootstrap(resampler(s.n, seed), resamples)
	in.Seed = seed
	return in, nil
}

// resampler returns a function that draws the next resample of n indices.
// The second PCG word is fixed so that the seed alone decides the draws.
func resampler(n int, seed uint64) func() []int {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	return func() []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = r.IntN(n)
		}
		return idx
	}
}

// bootstrap computes the intervals over resamples drawn by next.
func (s *scored) bootstrap(next func() []int, resamples int) Intervals {
	var nll, ece, aece, cece []float64
	bins := make([][]float64, s.bins)
	classBins := make([][][]float64, s.k)
	for j := range classBins {
		classBins[j] = make([][]float64, s.bins)
	}
	for range resamples {
		m := s.metrics(next(), true)
		nll = append(nll, m.NLL)
		ece = append(ece, m.ECE)
		aece = append(aece, m.AdaptiveECE)
		cece = append(cece, m.ClasswiseECE)
		for b, bin := range m.Bins {
			if bin.Count > 0 {
				bins[b] = append(bins[b], bin.Accuracy)
			}
		}
		for j, cb := range m.ClassBins {
			for b, bin := range cb {
				if bin.Count > 0 {
					classBins[j][b] = append(classBins[j][b], bin.Accuracy)
				}
			}
		}
	}
	in := Intervals{Level: Level95, Resamples: resamples, NLL: interval(nll), ECE: interval(ece),
		AdaptiveECE: interval(aece), ClasswiseECE: interval(cece), Bins: make([]Interval, s.bins), ClassBins: make([][]Interval, s.k)}
	for b, x := range bins {
		in.Bins[b] = interval(x)
	}
	for j, cb := range classBins {
		in.ClassBins[j] = make([]Interval, s.bins)
		for b, x := range cb {
			in.ClassBins[j][b] = interval(x)
		}
	}
	return in
}

// interval is the central 95% of x, or the zero Interval when x is empty.
func interval(x []float64) Interval {
	if len(x) == 0 {
		return Interval{}
	}
	return Interval{Lo: quantile(x, 0.025), Hi: quantile(x, 0.975)}
}

// quantile is numpy.quantile's default (linear interpolation between the
// order statistics, computed as NumPy computes it from the nearer end); it
// sorts x.
func quantile(x []float64, q float64) float64 {
	slices.Sort(x)
	h := float64(len(x)-1) * q
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(x) {
		return x[len(x)-1]
	}
	a, b, t := x[i], x[i+1], h-lo
	if t >= 0.5 {
		return b - (b-a)*(1-t)
	}
	return a + (b-a)*t
}
