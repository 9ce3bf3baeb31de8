package calibration

import (
	"math"
	"slices"
	"testing"
)

// Four texts: the first stage is sure and right on two, unsure and wrong
// on two; the rest is right on all four.
func TestCascadeSweep(t *testing.T) {
	first := [][]float64{{3, 0}, {0, 3}, {0.2, 0}, {0, 0.1}}
	rest := [][]float64{{1, 0}, {0, 1}, {0, 1}, {1, 0}}
	labels := []int{0, 1, 1, 0}
	pts, err := CascadeSweep(first, rest, rest, labels, []float64{0.5, 0.9, 1}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if pts[0].Share != 1 || pts[0].Accuracy != 0.5 || pts[0].Lost != 2 || pts[0].Gained != 0 {
		t.Errorf("threshold 0.5: %+v, want every text from the first stage, half right, 2 lost", pts[0])
	}
	if pts[1].Share != 0.5 || pts[1].Accuracy != 1 || pts[1].Lost != 0 {
		t.Errorf("threshold 0.9: %+v, want half the texts from the first stage, all right", pts[1])
	}
	// At 1 everything goes on: the NLL is the rest's.
	wantNLL := -math.Log(Softmax([]float64{1, 0}, 1)[0])
	if pts[2].Share != 0 || math.Abs(pts[2].NLL-wantNLL) > 1e-12 {
		t.Errorf("threshold 1: %+v, want NLL %v", pts[2], wantNLL)
	}
	// Four texts bound nothing below 0.5: 1-0.05^(1/4).
	if b := pts[1].LossBound; math.Abs(b-(1-math.Pow(0.05, 0.25))) > 1e-9 {
		t.Errorf("bound of 0 lost in 4: %v", b)
	}
	best, ok := SuggestCascadeThreshold(pts, 0.6)
	if !ok || best.Threshold != 0.9 {
		t.Errorf("suggested %+v %v, want 0.9", best, ok)
	}
	if _, ok := SuggestCascadeThreshold(pts, 0.1); ok {
		t.Error("a bound above the tolerance found a threshold")
	}
	if _, err := CascadeSweep(first, rest[:2], rest, labels, nil, 0.95); err == nil {
		t.Error("mismatched rows accepted")
	}
	if _, err := CascadeSweep(first, rest, rest, labels, nil, 1); err == nil {
		t.Error("confidence 1 accepted")
	}
}

// A gain and a loss: the reference is wrong where the cascade is right.
func TestCascadeSweepGained(t *testing.T) {
	first := [][]float64{{3, 0}, {3, 0}}
	ref := [][]float64{{0, 1}, {0, 1}}
	pts, err := CascadeSweep(first, ref, ref, []int{0, 1}, []float64{0.5}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	if p := pts[0]; p.Lost != 1 || p.Gained != 1 || p.Accuracy != 0.5 {
		t.Errorf("%+v: want 1 lost, 1 gained", p)
	}
}

// TestLossBound checks the Clopper–Pearson bound against scipy's
// beta.ppf(confidence, lost+1, n-lost).
func TestLossBound(t *testing.T) {
	for _, c := range []struct {
		lost, n    int
		conf, want float64
	}{
		{0, 3000, 0.95, 0.000998079012},
		{0, 3000, 0.99, 0.001533879132},
		{1, 1000, 0.95, 0.004734993575},
		{2, 100, 0.95, 0.0616192004},
		{5, 3000, 0.95, 0.003501125833},
		{5, 3000, 0.99, 0.004363592615},
		{0, 10, 0.95, 0.2588655509},
	} {
		if got := LossBound(c.lost, c.n, c.conf); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("LossBound(%d, %d, %v) = %.10g, scipy %.10g", c.lost, c.n, c.conf, got, c.want)
		}
	}
	if LossBound(4, 4, 0.95) != 1 {
		t.Error("every trial lost: want bound 1")
	}
}

// TestSuggestBoundNotPointEstimate builds 1,000 texts the last stage gets
// all right, where the first stage is wrong on one text it is 0.97 sure
// of and four it is 0.92 sure of. At threshold 0.9 the cascade loses
// 5/1000 = 0.005: the point estimate is within a tolerance of 0.005 and
// the old rule (the most texts whose accuracy is within tolerance) took
// it; five errors in 1,000 bound the loss at 0.0105, so the bound rule
// stops at 0.95 (one error: bound 0.0047).
func TestSuggestBoundNotPointEstimate(t *testing.T) {
	var first, ref [][]float64
	var labels []int
	add := func(count int, conf float64, right bool) {
		z := math.Log(conf / (1 - conf)) // softmax of {z, 0} is conf
		for range count {
			labels = append(labels, 0)
			ref = append(ref, []float64{1, 0})
			if right {
				first = append(first, []float64{z, 0})
			} else {
				first = append(first, []float64{0, z})
			}
		}
	}
	add(900, 0.995, true)
	add(1, 0.97, false)
	add(4, 0.92, false)
	add(45, 0.7, true)
	add(50, 0.7, false)
	const tol = 0.005
	pts, err := CascadeSweep(first, ref, ref, labels, []float64{0.6, 0.9, 0.95, 0.99, 1}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	pointRule := 0.0
	for _, p := range pts {
		if p.Accuracy >= 1-tol-1e-12 && (pointRule == 0 || p.Threshold < pointRule) {
			pointRule = p.Threshold
		}
	}
	if pointRule != 0.9 {
		t.Fatalf("the point-estimate rule picks %v, want 0.9 (the data are not what this test means): %+v", pointRule, pts)
	}
	best, ok := SuggestCascadeThreshold(pts, tol)
	if !ok || best.Threshold != 0.95 || best.Lost != 1 || math.Abs(best.Share-0.901) > 1e-12 {
		t.Errorf("suggested %+v %v, want 0.95 (901 texts, 1 lost)", best, ok)
	}
	if pts[1].Lost != 5 || pts[1].LossBound <= tol {
		t.Errorf("threshold 0.9: %+v, want 5 lost bounded above %v", pts[1], tol)
	}
}

// TestSuggestFixedSequence: the bound fails at 0.95 and passes again at
// 0.9 (as it can when the later stages answer some texts wrong); the
// sequence stops at the first failure.
func TestSuggestFixedSequence(t *testing.T) {
	pts := []CascadePoint{
		{Threshold: 0.9, Share: 0.95, LossBound: 0.0009},
		{Threshold: 0.95, Share: 0.9, LossBound: 0.002},
		{Threshold: 0.99, Share: 0.8, LossBound: 0.0009},
		{Threshold: 0.995, Share: 0.8, LossBound: 0.0008},
		{Threshold: 1, Share: 0, LossBound: 0.0005},
	}
	best, ok := SuggestCascadeThreshold(pts, 0.001)
	if !ok || best.Threshold != 0.995 {
		t.Errorf("suggested %+v %v, want 0.995 (the most texts before the first failure; ties keep the higher threshold)", best, ok)
	}
	pts[4].LossBound = 0.01
	if _, ok := SuggestCascadeThreshold(pts, 0.001); ok {
		t.Error("the highest threshold fails: nothing should be suggested")
	}
}

func TestCascadeThresholds(t *testing.T) {
	g := CascadeThresholds(2)
	if g[0] != 0.5 || g[len(g)-1] != 1 || !slices.Contains(g, 0.985) || !slices.Contains(g, 0.9968) || !slices.Contains(g, 0.9999) {
		t.Errorf("grid for 2 labels: %v", g)
	}
	if g3 := CascadeThresholds(3); g3[0] < 1.0/3 || g3[0] > 1.0/3+0.005 {
		t.Errorf("grid for 3 labels starts at %v", g3[0])
	}
	for i := 1; i < len(g); i++ {
		if g[i] <= g[i-1] {
			t.Fatalf("grid not increasing at %d: %v", i, g[i-1:i+1])
		}
	}
}
