package calibration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"testing"
)

// perClass draws n samples of 3 classes whose true probabilities are
// softmax(u), u of standard deviation 2, with labels drawn from the truth,
// and returns the logits of a model miscalibrated per class: z_j = s_j u_j
// + c_j. Vector scaling can undo that exactly (a_j = 1/s_j, b_j = −c_j/s_j
// up to a common shift); one temperature cannot.
func perClass(n int, seed uint64) ([][]float64, []int) {
	s, c := []float64{0.5, 1.5, 3}, []float64{1, 0, -1}
	r := rand.New(rand.NewPCG(seed, seed+1))
	logits, labels := make([][]float64, n), make([]int, n)
	for i := range logits {
		u := []float64{r.NormFloat64() * 2, r.NormFloat64() * 2, r.NormFloat64() * 2}
		labels[i] = draw(r, Softmax(u, 1))
		logits[i] = []float64{s[0]*u[0] + c[0], s[1]*u[1] + c[1], s[2]*u[2] + c[2]}
	}
	return logits, labels
}

func draw(r *rand.Rand, p []float64) int {
	u, c := r.Float64(), 0.0
	for j, pj := range p {
		c += pj
		if u < c {
			return j
		}
	}
	return len(p) - 1
}

// On the constructed problem vector scaling recovers the per-class scales
// and, on held-out data, beats temperature scaling on NLL, ECE and adaptive
// ECE by a wide margin.
func TestVectorBeatsTemperatureOnPerClassMiscalibration(t *testing.T) {
	fitZ, fitY := perClass(20_000, 7)
	testZ, testY := perClass(20_000, 8)
	temp, err := FitTemperature(fitZ, fitY)
	if err != nil {
		t.Fatal(err)
	}
	vec, err := FitVector(fitZ, fitY, DefaultL2)
	if err != nil {
		t.Fatal(err)
	}
	for j, s := range []float64{0.5, 1.5, 3} {
		if rel := math.Abs(vec.Scale[j]*s - 1); rel > 0.05 {
			t.Errorf("class %d: scale %.4f, want 1/%v (%.1f%% off)", j, vec.Scale[j], s, 100*rel)
		}
	}
	// Biases are identified up to a common shift: compare differences.
	want := []float64{-1 / 0.5, 0, 1 / 3.0}
	for j := 1; j < 3; j++ {
		if d := (vec.Bias[j] - vec.Bias[0]) - (want[j] - want[0]); math.Abs(d) > 0.1 {
			t.Errorf("bias %d − bias 0 off by %.3f: %v", j, d, vec.Bias)
		}
	}
	raw, _ := Evaluate(testZ, testY, 1, 15)
	byT, _ := Evaluate(testZ, testY, temp.T, 15)
	byV, err := Evaluate(vec.ApplyAll(testZ), testY, 1, 15)
	if err != nil {
		t.Fatal(err)
	}
	// Bootstrap intervals, on the same resamples (the same seed): the NLL
	// intervals are disjoint; the ECEs of vector scaling sit below the
	// intervals of temperature's. (Resampling adds noise, which ECE counts
	// as miscalibration: a replicate's ECE is biased upwards, and for a
	// well calibrated model the interval can sit above the point estimate.)
	vecZ := vec.ApplyAll(testZ)
	for _, r := range []struct {
		name string
		m    *Metrics
		z    [][]float64
		t    float64
	}{{"raw", &raw, testZ, 1}, {fmt.Sprintf("T=%.3f", temp.T), &byT, testZ, temp.T}, {"vector", &byV, vecZ, 1}} {
		ci, err := Bootstrap(r.z, testY, r.t, 15, 200, 1)
		if err != nil {
			t.Fatal(err)
		}
		r.m.CI = &ci
		t.Logf("held out, %-8s acc %.4f  NLL %.4f [%.4f, %.4f]  ECE %.4f [%.4f, %.4f]  adaptive ECE %.4f [%.4f, %.4f]  classwise ECE %.4f [%.4f, %.4f]",
			r.name, r.m.Accuracy, r.m.NLL, ci.NLL.Lo, ci.NLL.Hi, r.m.ECE, ci.ECE.Lo, ci.ECE.Hi, r.m.AdaptiveECE, ci.AdaptiveECE.Lo, ci.AdaptiveECE.Hi,
			r.m.ClasswiseECE, ci.ClasswiseECE.Lo, ci.ClasswiseECE.Hi)
	}
	t.Logf("T = %.4f; vector a %.4f b %.4f", temp.T, vec.Scale, vec.Bias)
	if !(byV.CI.NLL.Hi < byT.CI.NLL.Lo) || !(byV.ECE < byT.CI.ECE.Lo) || !(byV.AdaptiveECE < byT.CI.AdaptiveECE.Lo) {
		t.Errorf("vector: NLL %+v, ECE %v, adaptive %v; temperature: NLL %+v, ECE %+v, adaptive %+v",
			byV.CI.NLL, byV.ECE, byV.AdaptiveECE, byT.CI.NLL, byT.CI.ECE, byT.CI.AdaptiveECE)
	}
	if !(byV.NLL < byT.NLL-0.02) || !(byV.ECE < byT.ECE/2) || !(byV.AdaptiveECE < byT.AdaptiveECE/2) || !(byV.ClasswiseECE < byT.ClasswiseECE) {
		t.Errorf("vector scaling does not beat temperature held out: NLL %.4f vs %.4f, ECE %.4f vs %.4f, adaptive %.4f vs %.4f",
			byV.NLL, byT.NLL, byV.ECE, byT.ECE, byV.AdaptiveECE, byT.AdaptiveECE)
	}
	// Undoing per-class biases moves the argmax towards the Bayes rule.
	if byV.Accuracy <= raw.Accuracy {
		t.Errorf("accuracy %.4f after vector scaling, %.4f before", byV.Accuracy, raw.Accuracy)
	}
}

// multiLabel draws n samples of 3 independent labels with true logits u of
// standard deviation 2, and returns model logits t_j u_j + c_j: label j is
// over-confident by T_j = t_j and shifted by c_j.
func multiLabel(n int, t, c []float64, seed uint64) ([][]float64, [][]bool) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	logits, targets := make([][]float64, n), make([][]bool, n)
	for i := range logits {
		logits[i], targets[i] = make([]float64, len(t)), make([]bool, len(t))
		for j := range t {
			u := r.NormFloat64() * 2
			targets[i][j] = r.Float64() < sigmoid(u)
			logits[i][j] = t[j]*u + c[j]
		}
	}
	return logits, targets
}

func TestMultiLabelRecoversPerLabelMiscalibration(t *testing.T) {
	temps := []float64{0.5, 1, 2.5}
	logits, targets := multiLabel(20_000, temps, []float64{0, 0, 0}, 11)
	lt, note, err := FitMultiLabel(logits, targets, MethodLabelTemperature, DefaultL2)
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	for j, tt := range temps {
		if rel := math.Abs(lt.Temperatures[j]-tt) / tt; rel > 0.05 {
			t.Errorf("label %d: T %.4f, want %v", j, lt.Temperatures[j], tt)
		}
	}
	shifted, shiftedY := multiLabel(20_000, temps, []float64{1, -2, 0.5}, 12)
	platt, _, err := FitMultiLabel(shifted, shiftedY, MethodPlatt, DefaultL2)
	if err != nil {
		t.Fatal(err)
	}
	for j, c := range []float64{1, -2, 0.5} {
		// u = (z − c)/t: a = 1/t, b = −c/t.
		if math.Abs(platt.Scale[j]*temps[j]-1) > 0.05 || math.Abs(platt.Bias[j]+c/temps[j]) > 0.1 {
			t.Errorf("label %d: a %.3f b %.3f, want %v %v", j, platt.Scale[j], platt.Bias[j], 1/temps[j], -c/temps[j])
		}
	}
	before, _ := EvaluateMultiLabel(shifted, shiftedY, 15)
	after, err := EvaluateMultiLabel(platt.ApplyAll(shifted), shiftedY, 15)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("platt: NLL %.4f → %.4f, ECE %.4f → %.4f, classwise %.4f → %.4f", before.NLL, after.NLL, before.ECE, after.ECE, before.ClasswiseECE, after.ClasswiseECE)
	if !(after.NLL < before.NLL) || !(after.ClasswiseECE < 0.02) || !(after.ClasswiseECE < before.ClasswiseECE/3) {
		t.Errorf("Platt scaling did not calibrate: %+v → %+v", before, after)
	}
	if _, _, err := FitMultiLabel(logits, targets, MethodVector, DefaultL2); err == nil {
		t.Error("vector scaling of a sigmoid model accepted")
	}
}

func TestBootstrapIsReproducibleBySeed(t *testing.T) {
	z, y := perClass(1000, 3)
	a, err := Bootstrap(z, y, 1, 15, 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Bootstrap(z, y, 1, 15, 200, 1)
	c, _ := Bootstrap(z, y, 1, 15, 200, 2)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different intervals: %+v vs %+v", a, b)
	}
	if reflect.DeepEqual(a, c) || a.ECE == c.ECE || a.Seed != 1 || c.Seed != 2 || a.Resamples != 200 || a.Level != 0.95 {
		t.Errorf("seeds 1 and 2: %+v vs %+v", a, c)
	}
	m, _ := Evaluate(z, y, 1, 15)
	for name, iv := range map[string]struct {
		in Interval
		v  float64
	}{"nll": {a.NLL, m.NLL}, "ece": {a.ECE, m.ECE}, "adaptive": {a.AdaptiveECE, m.AdaptiveECE}, "classwise": {a.ClasswiseECE, m.ClasswiseECE}} {
		if !(iv.in.Lo < iv.in.Hi) || !(iv.in.Lo <= iv.v && iv.v <= iv.in.Hi) {
			t.Errorf("%s: %v outside its interval %+v", name, iv.v, iv.in)
		}
	}
	// A bin's accuracy interval holds its accuracy.
	for b, bin := range m.Bins {
		if iv := a.Bins[b]; bin.Count > 20 && !(iv.Lo <= bin.Accuracy && bin.Accuracy <= iv.Hi && iv.Lo < iv.Hi) {
			t.Errorf("bin %d: accuracy %v (n %d) outside %+v", b, bin.Accuracy, bin.Count, iv)
		}
	}
	if _, err := Bootstrap(z, y, 1, 15, 1, 1); err == nil {
		t.Error("one resample accepted")
	}
}

func TestCalibratorValidateAndApply(t *testing.T) {
	for name, c := range map[string]Calibrator{
		"zero T":           {Temperature: 0},
		"unknown":          {Method: "isotonic", Temperature: 1},
		"vector short":     {Method: MethodVector, Scale: []float64{1}, Bias: []float64{0, 0}},
		"vector nan":       {Method: MethodVector, Scale: []float64{1, math.NaN()}, Bias: []float64{0, 0}},
		"vector sigmoid":   {Method: MethodVector, Activation: ActivationSigmoid, Scale: []float64{1, 1}, Bias: []float64{0, 0}},
		"platt softmax":    {Method: MethodPlatt, Scale: []float64{1, 1}, Bias: []float64{0, 0}},
		"label T negative": {Method: MethodLabelTemperature, Activation: ActivationSigmoid, Temperatures: []float64{1, -1}},
		"activation":       {Activation: "tanh", Temperature: 1},
	} {
		if err := c.Validate(2); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	v := Calibrator{Method: MethodVector, Scale: []float64{2, 0.5}, Bias: []float64{1, -1}}
	if err := v.Validate(2); err != nil {
		t.Fatal(err)
	}
	if got := v.Apply([]float32{1, 4}); !slices.Equal(got, []float32{3, 1}) {
		t.Errorf("vector Apply: %v", got)
	}
	lt := Calibrator{Method: MethodLabelTemperature, Activation: ActivationSigmoid, Temperatures: []float64{2, 4}}
	if got := lt.Apply([]float32{1, 4}); !slices.Equal(got, []float32{0.5, 1}) {
		t.Errorf("label temperature Apply: %v", got)
	}
	// A temperature divides, as serving always has.
	if got := TemperatureCalibrator(1.7).Apply64([]float64{3.3}); got[0] != 3.3/1.7 {
		t.Errorf("temperature Apply64: %v", got)
	}
}

// Files written before methods existed read as temperature scaling, and
// a file with a method survives a round trip.
func TestFileReadsOldAndNew(t *testing.T) {
	old := map[string][]byte{"literal": []byte(`{"fingerprint": "fp", "labels": ["a", "b"], "temperature": 1.5, "bins": 15}`)}
	for _, path := range []string{"../docs/calibration/demo.json", "../configs/calibration/distilbert-ensemble.json"} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		old[path] = raw
	}
	for path, raw := range old {
		var f File
		if err := json.Unmarshal(raw, &f); err != nil {
			t.Fatal(err)
		}
		if f.Kind() != MethodTemperature || f.Act() != ActivationSoftmax || !(f.Temperature > 0) {
			t.Errorf("%s: %+v", path, f.Calibrator)
		}
		if err := f.CheckFor(f.Fingerprint, f.Labels); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		if err := f.CheckFor("other", f.Labels); err == nil {
			t.Errorf("%s: another fingerprint accepted", path)
		}
	}
	in := File{Fingerprint: "fp", Labels: []string{"a", "b", "c"}, L2: DefaultL2,
		Calibrator: Calibrator{Method: MethodVector, Activation: ActivationSoftmax, Scale: []float64{1, 2, 3}, Bias: []float64{0, -1, 1}}}
	raw, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(`"temperature"`)) || !bytes.Contains(raw, []byte(`"method":"vector"`)) {
		t.Errorf("vector file: %s", raw)
	}
	var out File
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if err := out.CheckFor("fp", []string{"a", "b", "c"}); err != nil || !slices.Equal(out.Scale, in.Scale) || !slices.Equal(out.Bias, in.Bias) {
		t.Errorf("round trip: %+v %v", out, err)
	}
	if err := out.CheckFor("fp", []string{"a", "b"}); err == nil {
		t.Error("three-class parameters accepted for two labels")
	}
}

// methodsReference runs testdata/methods.py on in.
func methodsReference(t *testing.T, in map[string]any, out any) {
	t.Helper()
	py := os.Getenv("CHORUS_PYTHON")
	if py == "" {
		py = os.Getenv("CHORUS_KSERVE_PYTHON")
	}
	if py == "" {
		t.Skip("CHORUS_PYTHON is unset: run `make test`, or point it at a python with numpy and scipy")
	}
	body, _ := json.Marshal(in)
	cmd := exec.Command(py, "testdata/methods.py")
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("methods.py: %v: %s", err, stderr.String())
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}

type refMetrics struct {
	Accuracy, NLL, Brier, ECE, MCE float64
	AdaptiveECE                    float64   `json:"adaptive_ece"`
	ClasswiseECE                   float64   `json:"classwise_ece"`
	ClassECE                       []float64 `json:"class_ece"`
}

func compareMetrics(t *testing.T, what string, m Metrics, ref refMetrics, tol float64) {
	t.Helper()
	pairs := map[string][2]float64{"accuracy": {m.Accuracy, ref.Accuracy}, "nll": {m.NLL, ref.NLL}, "brier": {m.Brier, ref.Brier},
		"ece": {m.ECE, ref.ECE}, "mce": {m.MCE, ref.MCE}, "adaptive_ece": {m.AdaptiveECE, ref.AdaptiveECE}, "classwise_ece": {m.ClasswiseECE, ref.ClasswiseECE}}
	if len(ref.ClassECE) != len(m.ClassECE) {
		t.Fatalf("%s: %d class ECEs, NumPy %d", what, len(m.ClassECE), len(ref.ClassECE))
	}
	for j := range ref.ClassECE {
		pairs[fmt.Sprintf("class_ece[%d]", j)] = [2]float64{m.ClassECE[j], ref.ClassECE[j]}
	}
	for name, p := range pairs {
		if d := math.Abs(p[0] - p[1]); !(d <= tol) {
			t.Errorf("%s %s: Go %.15g, NumPy %.15g (diff %.2g)", what, name, p[0], p[1], d)
		}
	}
}

// Vector scaling against a SciPy fit of the same guarded objective, and
// adaptive and classwise ECE against NumPy, on several shapes.
func TestVectorAndMetricsMatchSciPy(t *testing.T) {
	for _, c := range []struct {
		name string
		z    [][]float64
		y    []int
		bins int
	}{
		{"per-class k=3", nil, nil, 15},
		{"k=5", nil, nil, 10},
		{"k=2 n=40", nil, nil, 15},
		{"ties", nil, nil, 7},
	} {
		switch c.name {
		case "ties": // equal confidences, some right and some wrong, across bin edges
			for i := range 60 {
				c.z = append(c.z, [][]float64{{1, 0, 0}, {0, 2, 0}, {0, 0, 0.5}}[i%3])
				c.y = append(c.y, (i/3+i/7)%3)
			}
		case "per-class k=3":
			c.z, c.y = perClass(3000, 21)
		case "k=5":
			c.z, c.y = synthetic(1000, 5, 0.6, 22)
		default:
			c.z, c.y = synthetic(40, 2, 2, 23)
		}
		var ref struct {
			Metrics     refMetrics
			Scale, Bias []float64
		}
		methodsReference(t, map[string]any{"logits": c.z, "labels": c.y, "bins": c.bins, "l2": DefaultL2}, &ref)
		m, err := Evaluate(c.z, c.y, 1, c.bins)
		if err != nil {
			t.Fatal(err)
		}
		compareMetrics(t, c.name, m, ref.Metrics, 1e-12)
		v, err := FitVector(c.z, c.y, DefaultL2)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for j := range v.Scale {
			d := max(math.Abs(v.Scale[j]-ref.Scale[j]), math.Abs(v.Bias[j]-ref.Bias[j]))
			worst = max(worst, d)
			if d > 1e-6 {
				t.Errorf("%s class %d: Go a %.10g b %.10g, SciPy a %.10g b %.10g", c.name, j, v.Scale[j], v.Bias[j], ref.Scale[j], ref.Bias[j])
			}
		}
		t.Logf("%s: a %.6f b %.6f, at most %.1g from SciPy's", c.name, v.Scale, v.Bias, worst)
	}
}

// The multi-label fits and metrics against SciPy/NumPy.
func TestMultiLabelMatchesSciPy(t *testing.T) {
	z, y := multiLabel(2000, []float64{0.7, 1.3, 3}, []float64{0.5, 0, -1}, 31)
	targets := make([][]int, len(y))
	for i, row := range y {
		for _, b := range row {
			targets[i] = append(targets[i], map[bool]int{false: 0, true: 1}[b])
		}
	}
	var ref struct {
		Metrics      refMetrics
		Temperatures []float64
		Temperature  float64
		PlattScale   []float64 `json:"platt_scale"`
		PlattBias    []float64 `json:"platt_bias"`
	}
	methodsReference(t, map[string]any{"logits": z, "targets": targets, "bins": 15, "l2": DefaultL2}, &ref)
	m, err := EvaluateMultiLabel(z, y, 15)
	if err != nil {
		t.Fatal(err)
	}
	compareMetrics(t, "multi-label", m, ref.Metrics, 1e-12)
	lt, _, err := FitMultiLabel(z, y, MethodLabelTemperature, DefaultL2)
	if err != nil {
		t.Fatal(err)
	}
	pl, _, err := FitMultiLabel(z, y, MethodPlatt, DefaultL2)
	if err != nil {
		t.Fatal(err)
	}
	one, _, err := FitMultiLabel(z, y, MethodTemperature, DefaultL2)
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(one.Temperature - ref.Temperature); d > 1e-6 {
		t.Errorf("shared T: Go %.10g, SciPy %.10g", one.Temperature, ref.Temperature)
	}
	for j := range 3 {
		if d := math.Abs(lt.Temperatures[j] - ref.Temperatures[j]); d > 1e-6 {
			t.Errorf("label %d T: Go %.10g, SciPy %.10g", j, lt.Temperatures[j], ref.Temperatures[j])
		}
		if d := max(math.Abs(pl.Scale[j]-ref.PlattScale[j]), math.Abs(pl.Bias[j]-ref.PlattBias[j])); d > 1e-6 {
			t.Errorf("label %d Platt: Go %.10g %.10g, SciPy %.10g %.10g", j, pl.Scale[j], pl.Bias[j], ref.PlattScale[j], ref.PlattBias[j])
		}
	}
}

// Every bootstrap replicate, and the percentiles of them, equal NumPy's on
// the same resamples; softmax and sigmoid.
func TestBootstrapMatchesNumPy(t *testing.T) {
	z, y := perClass(300, 41)
	mz, my := multiLabel(200, []float64{1, 2}, []float64{0, 1}, 42)
	targets := make([][]int, len(my))
	for i, row := range my {
		for _, b := range row {
			targets[i] = append(targets[i], map[bool]int{false: 0, true: 1}[b])
		}
	}
	for _, c := range []struct {
		name string
		s    func() (*scored, error)
		in   map[string]any
	}{
		{"softmax", func() (*scored, error) { return scoreSoftmax(z, y, 1, 15) }, map[string]any{"logits": z, "labels": y}},
		{"sigmoid", func() (*scored, error) { return scoreSigmoid(mz, my, 15) }, map[string]any{"logits": mz, "targets": targets}},
	} {
		s, err := c.s()
		if err != nil {
			t.Fatal(err)
		}
		next := resampler(s.n, 5)
		var sets [][]int
		for range 50 {
			sets = append(sets, next())
		}
		c.in["bins"], c.in["resamples"] = 15, sets
		var ref struct {
			Replicates []refMetrics
			Intervals  map[string][2]float64
		}
		methodsReference(t, c.in, &ref)
		for r, set := range sets {
			compareMetrics(t, c.name, s.metrics(set, false), ref.Replicates[r], 1e-12)
		}
		at := 0
		got := s.bootstrap(func() []int { at++; return sets[at-1] }, len(sets))
		for name, iv := range map[string]Interval{"nll": got.NLL, "ece": got.ECE, "adaptive_ece": got.AdaptiveECE, "classwise_ece": got.ClasswiseECE} {
			w := ref.Intervals[name]
			if math.Abs(iv.Lo-w[0]) > 1e-12 || math.Abs(iv.Hi-w[1]) > 1e-12 {
				t.Errorf("%s %s: Go %+v, NumPy %v", c.name, name, iv, w)
			}
		}
	}
}
