package calibration

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
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
//
// For a softmax model the reliability bins, ECE, MCE and adaptive ECE are of
// the top label; for a sigmoid (multi-label) model they pool every
// (sample, label) pair as a binary prediction, and Accuracy is the fraction
// of labels right (Hamming accuracy). ClasswiseECE is in both cases the mean
// over classes j of the ECE of p_j against 1[j is a true label] (Kull et
// al. 2019).
type Metrics struct {
	N        int
	Accuracy float64
	NLL      float64 // mean negative log-likelihood of the true label (sigmoid: of the label set, summed over labels)
	Brier    float64 // mean over samples of sum_j (p_j - y_j)^2
	ECE      float64 // expected calibration error on equal-width bins
	MCE      float64 // maximum calibration error over non-empty bins
	// AdaptiveECE is ECE on equal-mass bins (as many as the equal-width
	// ones): the confidences sorted, stably, and cut into bins of n/bins
	// samples as numpy.array_split cuts them. It is not dominated by the
	// top bin where a confident model puts nearly every sample.
	AdaptiveECE  float64
	ClasswiseECE float64
	ClassECE     []float64 `json:",omitempty"` // per class (label), their mean is ClasswiseECE
	Bins         []Bin
	// ClassBins are the equal-width reliability bins of each class's
	// probability, for per-class diagrams; not written to files.
	ClassBins [][]Bin `json:"-"`
	// CI holds bootstrap intervals when they were asked for.
	CI *Intervals `json:",omitempty"`
}

// Check validates logits and labels: same count, at least one sample, one
// width, labels in range, finite values.
func Check(logits [][]float64, labels []int) error {
	k, err := checkLogits(logits, len(labels))
	if err != nil {
		return err
	}
	for i, y := range labels {
		if y < 0 || y >= k {
			return fmt.Errorf("label %d of row %d is not in 0..%d", y, i, k-1)
		}
	}
	return nil
}

// CheckMultiLabel validates logits and multi-hot targets of a sigmoid model.
func CheckMultiLabel(logits [][]float64, targets [][]bool) error {
	k, err := checkLogits(logits, len(targets))
	if err != nil {
		return err
	}
	for i, y := range targets {
		if len(y) != k {
			return fmt.Errorf("row %d has %d targets for %d labels", i, len(y), k)
		}
	}
	return nil
}

// checkLogits checks the shape and values of logits for n labels and
// returns the width.
func checkLogits(logits [][]float64, n int) (int, error) {
	if len(logits) == 0 {
		return 0, errors.New("no samples")
	}
	if len(logits) != n {
		return 0, fmt.Errorf("%d rows of logits, %d labels", len(logits), n)
	}
	k := len(logits[0])
	if k < 2 {
		return 0, fmt.Errorf("%d classes: need at least 2", k)
	}
	for i, row := range logits {
		if len(row) != k {
			return 0, fmt.Errorf("row %d has %d logits, row 0 has %d", i, len(row), k)
		}
		for _, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("row %d has a non-finite logit", i)
			}
		}
	}
	return k, nil
}

// Evaluate computes the metrics of softmax(logits / t) with bins
// equal-width, right-closed bins of the top-label confidence.
func Evaluate(logits [][]float64, labels []int, t float64, bins int) (Metrics, error) {
	s, err := scoreSoftmax(logits, labels, t, bins)
	if err != nil {
		return Metrics{}, err
	}
	return s.metrics(nil, true), nil
}

// EvaluateMultiLabel computes the metrics of sigmoid(logits) against
// multi-hot targets, with bins equal-width, right-closed bins of the
// per-label probabilities.
func EvaluateMultiLabel(logits [][]float64, targets [][]bool, bins int) (Metrics, error) {
	s, err := scoreSigmoid(logits, targets, bins)
	if err != nil {
		return Metrics{}, err
	}
	return s.metrics(nil, true), nil
}

// scored holds per-sample quantities of a model's predictions from which
// every metric, and every bootstrap replicate of it, is computed without
// recomputing a probability.
type scored struct {
	n, k, m, bins int // samples, classes, events per sample (1 or k), bins
	edges         []float64
	nll, brier    []float64 // per sample
	acc           []float64 // per sample: 1 if right (softmax), fraction of labels right (sigmoid)
	// Events binned for ECE, MCE and adaptive ECE, m per sample: the top
	// label (softmax) or every label (sigmoid), its probability, whether
	// it was right, and its equal-width bin.
	conf, hit []float64
	bin       []int
	// prob, target and pbin are p_ij, 1[j is true] and the bin of p_ij,
	// n*k of them, for the classwise ECE.
	prob, target []float64
	pbin         []int
	// order is the events sorted by confidence, stably; made on first use.
	order []int
}

func (s *scored) init(n, k, m, bins int) {
	*s = scored{n: n, k: k, m: m, bins: bins, edges: Edges(bins),
		nll: make([]float64, n), brier: make([]float64, n), acc: make([]float64, n),
		prob: make([]float64, n*k), target: make([]float64, n*k), pbin: make([]int, n*k)}
	if m == 1 {
		s.conf, s.hit, s.bin = make([]float64, n), make([]float64, n), make([]int, n)
	}
}

func scoreSoftmax(logits [][]float64, labels []int, t float64, bins int) (*scored, error) {
	if err := Check(logits, labels); err != nil {
		return nil, err
	}
	if t <= 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		return nil, fmt.Errorf("temperature %v: must be finite and > 0", t)
	}
	if bins < 1 {
		return nil, fmt.Errorf("%d bins: need at least 1", bins)
	}
	k := len(logits[0])
	s := &scored{}
	s.init(len(logits), k, 1, bins)
	for i, z := range logits {
		lp := LogSoftmax(z, t)
		y := labels[i]
		s.nll[i] = -lp[y]
		top, conf := 0, math.Exp(lp[0])
		for j := range lp {
			p := math.Exp(lp[j])
			d := p
			if j == y {
				d = p - 1
				s.target[i*k+j] = 1
			}
			s.brier[i] += d * d
			s.prob[i*k+j] = p
			s.pbin[i*k+j] = binOf(p, s.edges)
			if p > conf {
				top, conf = j, p
			}
		}
		if top == y {
			s.acc[i], s.hit[i] = 1, 1
		}
		s.conf[i], s.bin[i] = conf, binOf(conf, s.edges)
	}
	return s, nil
}

func scoreSigmoid(logits [][]float64, targets [][]bool, bins int) (*scored, error) {
	if err := CheckMultiLabel(logits, targets); err != nil {
		return nil, err
	}
	if bins < 1 {
		return nil, fmt.Errorf("%d bins: need at least 1", bins)
	}
	k := len(logits[0])
	s := &scored{}
	s.init(len(logits), k, k, bins)
	for i, z := range logits {
		for j, v := range z {
			y := 0.0
			if targets[i][j] {
				y = 1
			}
			p := sigmoid(v)
			// -log sigmoid(v) = softplus(-v), -log(1 - sigmoid(v)) = softplus(v)
			s.nll[i] += softplus(v) - y*v
			s.brier[i] += (p - y) * (p - y)
			if (p > 0.5) == (y == 1) {
				s.acc[i]++
			}
			s.prob[i*k+j], s.target[i*k+j], s.pbin[i*k+j] = p, y, binOf(p, s.edges)
		}
		s.acc[i] /= float64(k)
	}
	// Every label is an event: the pooled reliability is over them all.
	s.conf, s.hit, s.bin = s.prob, s.target, s.pbin
	return s, nil
}

// metrics computes the metrics of the samples idx (nil: all, in order);
// full adds the bins.
func (s *scored) metrics(idx []int, full bool) Metrics {
	if idx == nil {
		idx = make([]int, s.n)
		for i := range idx {
			idx[i] = i
		}
	}
	n := len(idx)
	m := Metrics{N: n}
	for _, i := range idx {
		m.NLL += s.nll[i]
		m.Brier += s.brier[i]
		m.Accuracy += s.acc[i]
	}
	m.Accuracy /= float64(n)
	m.NLL /= float64(n)
	m.Brier /= float64(n)

	events := make([]int, 0, n*s.m) // event indices in resampled order
	for _, i := range idx {
		for e := i * s.m; e < (i+1)*s.m; e++ {
			events = append(events, e)
		}
	}
	var bs []Bin
	m.ECE, m.MCE, bs = s.reliability(events, s.conf, s.hit, s.bin, full)
	if full {
		m.Bins = bs
	}
	mult := make([]int, s.n) // how often each sample was drawn
	for _, i := range idx {
		mult[i]++
	}
	m.AdaptiveECE = s.adaptiveECE(mult, len(events))

	m.ClassECE = make([]float64, s.k)
	if full {
		m.ClassBins = make([][]Bin, s.k)
	}
	cls := make([]int, n)
	for j := range s.k {
		for r, i := range idx {
			cls[r] = i*s.k + j
		}
		m.ClassECE[j], _, bs = s.reliability(cls, s.prob, s.target, s.pbin, full)
		if full {
			m.ClassBins[j] = bs
		}
		m.ClasswiseECE += m.ClassECE[j]
	}
	m.ClasswiseECE /= float64(s.k)
	return m
}

// reliability bins the events ev (indices into conf, hit and bin) and
// returns ECE, MCE and, when asked, the bins.
func (s *scored) reliability(ev []int, conf, hit []float64, bin []int, keep bool) (ece, mce float64, bins []Bin) {
	count := make([]int, s.bins)
	sumConf := make([]float64, s.bins)
	sumHit := make([]float64, s.bins)
	for _, e := range ev {
		b := bin[e]
		count[b]++
		sumConf[b] += conf[e]
		sumHit[b] += hit[e]
	}
	if keep {
		bins = make([]Bin, s.bins)
	}
	for b, c := range count {
		var acc, cf float64
		if c > 0 {
			acc, cf = sumHit[b]/float64(c), sumConf[b]/float64(c)
			gap := math.Abs(acc - cf)
			ece += float64(c) / float64(len(ev)) * gap
			mce = math.Max(mce, gap)
		}
		if keep {
			bins[b] = Bin{Lo: s.edges[b], Hi: s.edges[b+1], Count: c, Accuracy: acc, Confidence: cf}
		}
	}
	return ece, mce, bins
}

// adaptiveECE is ECE on equal-mass bins: the events sorted by confidence,
// ties in the order of the samples (a stable sort of the data), and cut as
// numpy.array_split cuts n items into bins parts (the first n % bins parts
// one longer); fewer events than bins make one bin each. mult says how often
// each sample was drawn, total how many events that makes. The order is
// sorted once; a bootstrap replicate only walks it.
func (s *scored) adaptiveECE(mult []int, total int) float64 {
	if s.order == nil {
		s.order = make([]int, len(s.conf))
		for e := range s.order {
			s.order[e] = e
		}
		slices.SortStableFunc(s.order, func(a, b int) int { return cmp.Compare(s.conf[a], s.conf[b]) })
	}
	parts := min(s.bins, total)
	size, extra := total/parts, total%parts
	ece, part := 0.0, 0
	room := size // events the current part still takes
	if extra > 0 {
		room++
	}
	sc, sh := 0.0, 0.0
	for _, e := range s.order {
		for copies := mult[e/s.m]; copies > 0; {
			c := min(copies, room)
			sc += float64(c) * s.conf[e]
			sh += float64(c) * s.hit[e]
			copies -= c
			if room -= c; room == 0 {
				ece += math.Abs(sh - sc)
				sc, sh = 0, 0
				part++
				room = size
				if part < extra {
					room++
				}
			}
		}
	}
	return ece / float64(total)
}

func sigmoid(v float64) float64 {
	if v >= 0 {
		return 1 / (1 + math.Exp(-v))
	}
	e := math.Exp(v)
	return e / (1 + e)
}

// softplus is log(1 + e^v), computed without overflow.
func softplus(v float64) float64 {
	if v > 0 {
		return v + math.Log1p(math.Exp(-v))
	}
	return math.Log1p(math.Exp(v))
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
