package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/chorusml/chorus/calibration"
)

// writeLines writes JSONL lines into dir/name and returns the path.
func writeLines(t *testing.T, dir, name string, lines []string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// perClassLines are logits of 3 classes miscalibrated per class (scales
// 0.5, 1.5, 3; shifts 1, 0, -1) with labels drawn from the truth.
func perClassLines(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, seed+1))
	var lines []string
	for range n {
		u := []float64{r.NormFloat64() * 2, r.NormFloat64() * 2, r.NormFloat64() * 2}
		p, c, v, y := calibration.Softmax(u, 1), 0.0, r.Float64(), 2
		for j := range p {
			if c += p[j]; v < c {
				y = j
				break
			}
		}
		lines = append(lines, fmt.Sprintf(`{"logits": [%v, %v, %v], "label": %d}`, 0.5*u[0]+1, 1.5*u[1], 3*u[2]-1, y))
	}
	return lines
}

// Vector scaling from logits, with intervals: the file carries the method,
// its parameters and the intervals, the same seed gives the same file, and
// held out it beats the raw logits.
func TestCalibrateVectorWithBootstrap(t *testing.T) {
	dir := t.TempDir()
	data := writeLines(t, dir, "fit.jsonl", perClassLines(3000, 1))
	test := writeLines(t, dir, "test.jsonl", perClassLines(3000, 2))
	var files []calibration.File
	for i := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("cal%d.json", i))
		code, text := runCmd(t, "calibrate", "--logits", data, "--test", test, "--labels", "a,b,c", "--method", "vector",
			"--bootstrap", "200", "--seed", "9", "--out", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, text)
		}
		if !strings.Contains(text, "vector scaling: a ") || !strings.Contains(text, "adaptive ECE") || !strings.Contains(text, "200 resamples, seed 9") {
			t.Errorf("report:\n%s", text)
		}
		files = append(files, readCalibration(t, out))
	}
	f := files[0]
	if f.Kind() != calibration.MethodVector || len(f.Scale) != 3 || f.L2 != calibration.DefaultL2 || f.CheckFor("", []string{"a", "b", "c"}) != nil {
		t.Fatalf("file: %+v", f.Calibrator)
	}
	for _, m := range []calibration.Metrics{f.Data.Before, f.Data.After, f.Test.Before, f.Test.After} {
		if m.CI == nil || m.CI.Resamples != 200 || m.CI.Seed != 9 || !(m.CI.NLL.Lo < m.NLL && m.NLL < m.CI.NLL.Hi) {
			t.Fatalf("intervals: %+v (NLL %v)", m.CI, m.NLL)
		}
	}
	if !reflect.DeepEqual(f.Test.After.CI, files[1].Test.After.CI) {
		t.Errorf("same seed, different intervals: %+v vs %+v", f.Test.After.CI, files[1].Test.After.CI)
	}
	if a := f.Test.After; !(a.NLL < f.Test.Before.NLL-0.1) || !(a.AdaptiveECE < f.Test.Before.AdaptiveECE/3) || f.Test.ArgmaxChanged == 0 {
		t.Errorf("held out: %+v → %+v, argmax changed %d", f.Test.Before, a, f.Test.ArgmaxChanged)
	}
}

// A multi-label model's logits with lists of labels, Platt-scaled.
func TestCalibrateMultiLabelPlatt(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(5, 6))
	var lines []string
	for range 2000 {
		var z []string
		var on []string
		for j, tj := range []float64{0.5, 2} {
			u := r.NormFloat64() * 2
			if r.Float64() < 1/(1+math.Exp(-u)) {
				on = append(on, fmt.Sprintf("%q", []string{"x", "y"}[j]))
			}
			z = append(z, fmt.Sprint(tj*u+1))
		}
		lines = append(lines, fmt.Sprintf(`{"logits": [%s], "label": [%s]}`, strings.Join(z, ","), strings.Join(on, ",")))
	}
	data := writeLines(t, dir, "ml.jsonl", lines)
	out := filepath.Join(dir, "cal.json")
	code, text := runCmd(t, "calibrate", "--logits", data, "--labels", "x,y", "--method", "platt", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, text)
	}
	f := readCalibration(t, out)
	if f.Kind() != calibration.MethodPlatt || f.Act() != calibration.ActivationSigmoid || len(f.Scale) != 2 ||
		math.Abs(f.Scale[0]-2) > 0.3 || math.Abs(f.Scale[1]-0.5) > 0.1 || !(f.Data.After.ClasswiseECE < f.Data.Before.ClasswiseECE) {
		t.Errorf("file: %+v, classwise ECE %v → %v", f.Calibrator, f.Data.Before.ClasswiseECE, f.Data.After.ClasswiseECE)
	}
	isPNG(t, filepath.Join(dir, "reliability.png"))

	// Lists of labels without --multi-label, and unknown methods, are refused.
	code, text = runCmd(t, "calibrate", "--logits", data, "--labels", "x,y", "--out", out)
	if code != 1 || !strings.Contains(text, "--multi-label") {
		t.Errorf("lists without --multi-label: exit %d: %s", code, text)
	}
	code, text = runCmd(t, "calibrate", "--logits", data, "--method", "isotonic", "--out", out)
	if code != 2 || !strings.Contains(text, "--method") {
		t.Errorf("--method isotonic: exit %d: %s", code, text)
	}
}
