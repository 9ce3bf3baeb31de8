package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/internal/proctest"
)

// TestCalibrateCascade runs `chorus calibrate --cascade` on a cascade of
// two fixture models (a at T=2 in front of b) with labels that b gets
// right and a does not always, and checks its sweep, point by point,
// against the cascade computed here from the transformers reference
// logits (share, accuracy, texts lost against b, the Clopper–Pearson
// bound of their rate), and its suggestion against the rule: testing from
// the highest threshold down, the most texts to a before the first whose
// bound exceeds the tolerance. The stages' logits it saves (--save-logits)
// give the same sweep when read back (--logits).
func TestCalibrateCascade(t *testing.T) {
	root := proctest.Root()
	dir := t.TempDir()
	ra, rb := reference(t, "testdata/models/sst2-tiny-a"), reference(t, "testdata/models/sst2-tiny-b")
	var lines []string
	var labels []int
	for i, r := range rb.Texts {
		y := int(argmaxOf(r.Logits)) // b is always right
		labels = append(labels, y)
		text, _ := json.Marshal(ra.Texts[i].Text)
		lines = append(lines, fmt.Sprintf(`{"text": %s, "label": %d}`, text, y))
	}
	data := filepath.Join(dir, "data.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "registry.yaml")
	yaml := fmt.Sprintf(`models:
  - name: a
    temperature: 2
    replicas: [{type: onnx, model_dir: %q}]
  - name: b
    replicas: [{type: onnx, model_dir: %q}]
  - name: casc
    stages: [{name: a, min_confidence: 0.6}, {name: b}]
`, filepath.Join(root, "testdata/models/sst2-tiny-a"), filepath.Join(root, "testdata/models/sst2-tiny-b"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// 24 texts bound a rate of 0 lost at 0.117 (95%): a tolerance of 0.2
	// admits a single lost text, not the four a point estimate would.
	const tol, conf = 0.2, 0.95
	out, plot, saved := filepath.Join(dir, "sweep.json"), filepath.Join(dir, "sweep.png"), filepath.Join(dir, "stages.jsonl")
	code, text := runCmd(t, "calibrate", "--cascade", "--config", cfg, "--model", "casc", "--data", data,
		"--tolerance", fmt.Sprint(tol), "--out", out, "--plot", plot, "--save-logits", saved)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, text)
	}
	t.Log(text)
	isPNG(t, plot)
	sweep := readSweep(t, out)
	if sweep.LastStageAlone.Accuracy != 1 {
		t.Errorf("b alone: accuracy %v, want 1", sweep.LastStageAlone.Accuracy)
	}
	n := len(labels)
	refLost := func(thr float64) (taken, lost int) {
		for i, r := range ra.Texts {
			if slices.Max(calibration.Softmax(r.Logits, 2)) >= thr {
				taken++
				if int(argmaxOf(r.Logits)) != labels[i] {
					lost++ // b is always right
				}
			}
		}
		return taken, lost
	}
	for _, p := range sweep.Points {
		taken, lost := refLost(p.Threshold)
		// Thresholds a hair from a confidence may fall either side in fp32.
		if math.Abs(p.Share-float64(taken)/float64(n)) > 1.5/float64(n) || math.Abs(p.Accuracy-float64(n-lost)/float64(n)) > 1.5/float64(n) ||
			p.Gained != 0 || p.Lost-lost > 1 || lost-p.Lost > 1 {
			t.Errorf("threshold %v: share %v accuracy %v lost %d gained %d, reference %d taken %d lost", p.Threshold, p.Share, p.Accuracy, p.Lost, p.Gained, taken, lost)
		}
		if want := calibration.LossBound(p.Lost, n, conf); math.Abs(p.LossBound-want) > 1e-12 {
			t.Errorf("threshold %v: bound %v for %d lost of %d, want %v", p.Threshold, p.LossBound, p.Lost, n, want)
		}
	}
	if !sweep.Found || sweep.Suggested.LossBound > tol {
		t.Fatalf("suggested %+v (found %v)", sweep.Suggested, sweep.Found)
	}
	want := -1.0
	for i := len(sweep.Points) - 1; i >= 0 && sweep.Points[i].LossBound <= tol; i-- {
		if want < 0 || sweep.Points[i].Share > shareAt(sweep.Points, want) {
			want = sweep.Points[i].Threshold
		}
	}
	if sweep.Suggested.Threshold != want {
		t.Errorf("suggested %+v, want threshold %v", sweep.Suggested, want)
	}
	if _, lost := refLost(sweep.Suggested.Threshold); calibration.LossBound(lost, n, conf) > tol {
		t.Errorf("the reference loses %d texts at the suggested %v: bound above %v", lost, sweep.Suggested.Threshold, tol)
	}
	if !strings.Contains(text, "suggested: min_confidence") || !strings.Contains(text, "b alone") || !strings.Contains(text, "loss bound 95%") {
		t.Errorf("no table or suggestion in:\n%s", text)
	}

	checkSavedLogits(t, cfg, saved, fmt.Sprint(tol), sweep)
	// Not a cascade: a usage error naming it.
	if code, text := runCmd(t, "calibrate", "--cascade", "--config", cfg, "--model", "a", "--data", data); code == 0 || !strings.Contains(text, `"a" is not a cascade`) {
		t.Errorf("--cascade on a plain model: exit %d: %s", code, text)
	}
}

type cascadeSweep struct {
	Suggested      calibration.CascadePoint `json:"suggested"`
	Found          bool                     `json:"found"`
	LastStageAlone calibration.CascadePoint `json:"last_stage_alone"`
	Points         []calibration.CascadePoint
}

func readSweep(t *testing.T, path string) cascadeSweep {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s cascadeSweep
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// shareAt is the share of the point at threshold thr.
func shareAt(points []calibration.CascadePoint, thr float64) float64 {
	for _, p := range points {
		if p.Threshold == thr {
			return p.Share
		}
	}
	return -1
}

// checkSavedLogits: the stages' logits --save-logits wrote give the same
// sweep when read back with --logits, without scoring.
func checkSavedLogits(t *testing.T, cfg, saved, tol string, sweep cascadeSweep) {
	t.Helper()
	again := filepath.Join(filepath.Dir(saved), "again.json")
	code, text := runCmd(t, "calibrate", "--cascade", "--config", cfg, "--model", "casc", "--logits", saved,
		"--tolerance", tol, "--out", again, "--plot", filepath.Join(filepath.Dir(again), "again.png"))
	if code != 0 {
		t.Fatalf("--logits: exit %d: %s", code, text)
	}
	if re := readSweep(t, again); !reflect.DeepEqual(re.Points, sweep.Points) || re.Suggested != sweep.Suggested {
		t.Errorf("--logits %s: another sweep than scoring gave", saved)
	}
	if code, text := runCmd(t, "calibrate", "--cascade", "--config", cfg, "--model", "casc", "--logits", saved, "--confidence", "1"); code == 0 || !strings.Contains(text, "--confidence") {
		t.Errorf("--confidence 1: exit %d: %s", code, text)
	}
}
