package calibration

import (
	"math"
	"testing"
)

// Four texts: the first stage is sure and right on two, unsure and wrong
// on two; the rest is right on all four.
func TestCascadeSweep(t *testing.T) {
	first := [][]float64{{3, 0}, {0, 3}, {0.2, 0}, {0, 0.1}}
	rest := [][]float64{{1, 0}, {0, 1}, {0, 1}, {1, 0}}
	labels := []int{0, 1, 1, 0}
	pts, err := CascadeSweep(first, rest, labels, []float64{0.5, 0.9, 1})
	if err != nil {
		t.Fatal(err)
	}
	if pts[0].Share != 1 || pts[0].Accuracy != 0.5 {
		t.Errorf("threshold 0.5: %+v, want every text from the first stage, half right", pts[0])
	}
	if pts[1].Share != 0.5 || pts[1].Accuracy != 1 {
		t.Errorf("threshold 0.9: %+v, want half the texts from the first stage, all right", pts[1])
	}
	// At 1 everything goes on: the NLL is the rest's.
	wantNLL := -math.Log(Softmax([]float64{1, 0}, 1)[0])
	if pts[2].Share != 0 || math.Abs(pts[2].NLL-wantNLL) > 1e-12 {
		t.Errorf("threshold 1: %+v, want NLL %v", pts[2], wantNLL)
	}
	best, ok := SuggestCascadeThreshold(pts, 1, 0.001)
	if !ok || best.Threshold != 0.9 {
		t.Errorf("suggested %+v %v, want 0.9", best, ok)
	}
	if _, ok := SuggestCascadeThreshold(pts, 1.5, 0); ok {
		t.Error("an unreachable accuracy found a threshold")
	}
	if _, err := CascadeSweep(first, rest[:2], labels, nil); err == nil {
		t.Error("mismatched rows accepted")
	}
}

func TestCascadeThresholds(t *testing.T) {
	g := CascadeThresholds(2)
	if g[0] != 0.5 || g[len(g)-1] != 1 {
		t.Errorf("grid for 2 labels: %v .. %v", g[0], g[len(g)-1])
	}
	for i := 1; i < len(g); i++ {
		if g[i] <= g[i-1] {
			t.Fatalf("grid not increasing at %d: %v", i, g[i-1:i+1])
		}
	}
}
