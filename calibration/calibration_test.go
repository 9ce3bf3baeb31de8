package calibration

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
)

// synthetic draws n samples of k classes whose true probabilities are
// softmax(z), and returns the model's logits z * tTrue (so the model is
// mis-calibrated by exactly tTrue) with labels drawn from the truth.
func synthetic(n, k int, tTrue float64, seed uint64) ([][]float64, []int) {
	return syntheticScale(n, k, 2, tTrue, seed)
}

// syntheticScale is synthetic with true logits of standard deviation scale.
func syntheticScale(n, k int, scale, tTrue float64, seed uint64) ([][]float64, []int) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	logits := make([][]float64, n)
	labels := make([]int, n)
	for i := range logits {
		z := make([]float64, k)
		for j := range z {
			z[j] = r.NormFloat64() * scale
		}
		p := Softmax(z, 1)
		u, c := r.Float64(), 0.0
		labels[i] = k - 1
		for j, pj := range p {
			c += pj
			if u < c {
				labels[i] = j
				break
			}
		}
		for j := range z {
			z[j] *= tTrue
		}
		logits[i] = z
	}
	return logits, labels
}

// The fit recovers a known temperature within 2% at n = 10,000, and ECE
// falls below 0.01. A finite sample has an ECE floor even at the true T: at
// this n it ranges over about 0.003-0.013 with the class count, the spread
// of the true logits and the draw. Three classes with true logits of
// standard deviation 3 sit at 0.006, with room under 0.01.
func TestRecoversTemperature(t *testing.T) {
	for _, tTrue := range []float64{0.5, 1, 2.5} {
		logits, labels := syntheticScale(10_000, 3, 3, tTrue, 42)
		fit, err := FitTemperature(logits, labels)
		if err != nil || fit.Note != "" {
			t.Fatalf("T=%v: %v %q", tTrue, err, fit.Note)
		}
		if rel := math.Abs(fit.T-tTrue) / tTrue; rel > 0.02 {
			t.Errorf("true T %v, fitted %v (%.1f%% off)", tTrue, fit.T, 100*rel)
		}
		before, _ := Evaluate(logits, labels, 1, 15)
		after, _ := Evaluate(logits, labels, fit.T, 15)
		t.Logf("T=%v: fitted %.4f; ECE %.4f → %.4f, NLL %.4f → %.4f", tTrue, fit.T, before.ECE, after.ECE, before.NLL, after.NLL)
		if after.ECE >= 0.01 || after.NLL > before.NLL+1e-12 {
			t.Errorf("after fitting: ECE %v, NLL %v (before %v)", after.ECE, after.NLL, before.NLL)
		}
	}
}

func TestSeparableAndWorseThanChance(t *testing.T) {
	sep := [][]float64{{5, -5}, {-4, 4}, {3, -1}}
	fit, err := FitTemperature(sep, []int{0, 1, 0})
	if err != nil || fit.T != 1e-3 || fit.Note == "" {
		t.Errorf("separable: %+v %v", fit, err)
	}
	worse, err := FitTemperature(sep, []int{1, 0, 1})
	if err != nil || worse.T != 1e3 || worse.Note == "" {
		t.Errorf("worse than chance: %+v %v", worse, err)
	}
}

func TestCheckRejectsBadInput(t *testing.T) {
	for name, c := range map[string]struct {
		z [][]float64
		y []int
	}{
		"empty":     {nil, nil},
		"counts":    {[][]float64{{1, 2}}, []int{0, 1}},
		"one class": {[][]float64{{1}}, []int{0}},
		"ragged":    {[][]float64{{1, 2}, {1}}, []int{0, 0}},
		"label":     {[][]float64{{1, 2}}, []int{2}},
		"nan":       {[][]float64{{math.NaN(), 2}}, []int{0}},
	} {
		if _, err := FitTemperature(c.z, c.y); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Evaluate([][]float64{{1, 2}}, []int{0}, 0, 15); err == nil {
		t.Error("T = 0 accepted")
	}
}

func TestBinsAreRightClosed(t *testing.T) {
	e := Edges(15)
	for b := range 15 {
		if got := binOf(e[b+1], e); got != b {
			t.Errorf("confidence on edge %d (%v) went to bin %d, want %d", b+1, e[b+1], got, b)
		}
	}
	if binOf(0, e) != 0 || binOf(1, e) != 14 {
		t.Error("ends misplaced")
	}
}

// Against NumPy/SciPy, run now: metrics and the fitted T agree to 1e-9.
func TestMatchesNumPyAndSciPy(t *testing.T) {
	py := os.Getenv("CHORUS_PYTHON")
	if py == "" {
		py = os.Getenv("CHORUS_KSERVE_PYTHON")
	}
	if py == "" {
		t.Skip("CHORUS_PYTHON is unset: run `make test`, or point it at a python with numpy and scipy")
	}
	for _, c := range []struct {
		n, k  int
		tTrue float64
		t     float64
		bins  int
	}{{2000, 2, 3, 1.7, 15}, {500, 5, 0.7, 0.9, 10}, {50, 3, 1, 1, 15}} {
		logits, labels := synthetic(c.n, c.k, c.tTrue, uint64(c.n))
		in, _ := json.Marshal(map[string]any{"logits": logits, "labels": labels, "t": c.t, "bins": c.bins})
		cmd := exec.Command(py, "testdata/reference.py")
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("reference.py: %v", err)
		}
		var ref struct {
			Metrics struct{ Accuracy, NLL, Brier, ECE, MCE float64 }
			T       float64
		}
		if err := json.Unmarshal(out, &ref); err != nil {
			t.Fatal(err)
		}
		m, err := Evaluate(logits, labels, c.t, c.bins)
		if err != nil {
			t.Fatal(err)
		}
		for name, pair := range map[string][2]float64{"accuracy": {m.Accuracy, ref.Metrics.Accuracy}, "nll": {m.NLL, ref.Metrics.NLL},
			"brier": {m.Brier, ref.Metrics.Brier}, "ece": {m.ECE, ref.Metrics.ECE}, "mce": {m.MCE, ref.Metrics.MCE}} {
			if d := math.Abs(pair[0] - pair[1]); d > 1e-9 {
				t.Errorf("n=%d k=%d %s: Go %.15g, NumPy %.15g (diff %.2g)", c.n, c.k, name, pair[0], pair[1], d)
			}
		}
		fit, err := FitTemperature(logits, labels)
		if err != nil {
			t.Fatal(err)
		}
		if d := math.Abs(fit.T-ref.T) / ref.T; d > 1e-9 {
			t.Errorf("n=%d k=%d T: Go %.15g, SciPy %.15g (rel diff %.2g)", c.n, c.k, fit.T, ref.T, d)
		}
	}
}

func TestScores(t *testing.T) {
	z := []float32{-800, 0, 2, 800}
	s := Sigmoid(z, 2)
	want := []float64{0, 0.5, 1 / (1 + math.Exp(-1)), 1}
	for j := range s {
		if math.Abs(s[j]-want[j]) > 1e-12 || math.IsNaN(s[j]) {
			t.Errorf("sigmoid(%v/2) = %v, want %v", z[j], s[j], want[j])
		}
	}
	if got := Scores(ActivationNone, z, 2); got[2] != 1 || got[3] != 400 {
		t.Errorf("none divides by the temperature only: %v", got)
	}
	sm, sc := Softmax(z[:3], 1), Scores("", z[:3], 1)
	for j := range sm {
		if sm[j] != sc[j] {
			t.Errorf("the empty activation is softmax: %v vs %v", sc, sm)
		}
	}
}
