package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
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
// logits, and its suggestion against the rule: the threshold sending the
// most texts to a whose accuracy is within the tolerance of b alone.
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
	out, plot := filepath.Join(dir, "sweep.json"), filepath.Join(dir, "sweep.png")
	code, text := runCmd(t, "calibrate", "--cascade", "--config", cfg, "--model", "casc", "--data", data,
		"--tolerance", "0.05", "--out", out, "--plot", plot)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, text)
	}
	t.Log(text)
	isPNG(t, plot)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var sweep struct {
		Suggested      calibration.CascadePoint `json:"suggested"`
		Found          bool                     `json:"found"`
		LastStageAlone calibration.CascadePoint `json:"last_stage_alone"`
		Points         []calibration.CascadePoint
	}
	if err := json.Unmarshal(raw, &sweep); err != nil {
		t.Fatal(err)
	}
	if sweep.LastStageAlone.Accuracy != 1 {
		t.Errorf("b alone: accuracy %v, want 1", sweep.LastStageAlone.Accuracy)
	}
	n := float64(len(labels))
	for _, p := range sweep.Points {
		taken, correct := 0, 0
		for i, r := range ra.Texts {
			conf := slices.Max(calibration.Softmax(r.Logits, 2))
			if conf >= p.Threshold {
				taken++
				if int(argmaxOf(r.Logits)) == labels[i] {
					correct++
				}
			} else {
				correct++ // b is always right
			}
		}
		// Thresholds a hair from a confidence may fall either side in fp32.
		if math.Abs(p.Share-float64(taken)/n) > 1.5/n || math.Abs(p.Accuracy-float64(correct)/n) > 1.5/n {
			t.Errorf("threshold %v: share %v accuracy %v, reference %v %v", p.Threshold, p.Share, p.Accuracy, float64(taken)/n, float64(correct)/n)
		}
	}
	if !sweep.Found || sweep.Suggested.Accuracy < 1-0.05-1e-9 {
		t.Fatalf("suggested %+v (found %v)", sweep.Suggested, sweep.Found)
	}
	for _, p := range sweep.Points {
		if p.Accuracy >= 1-0.05-1e-9 && p.Share > sweep.Suggested.Share {
			t.Errorf("threshold %v sends more texts to a (%v) within the tolerance than the suggestion %+v", p.Threshold, p.Share, sweep.Suggested)
		}
	}
	if !strings.Contains(text, "suggested: min_confidence") || !strings.Contains(text, "b alone") {
		t.Errorf("no table or suggestion in:\n%s", text)
	}
	// Not a cascade: a usage error naming it.
	if code, text := runCmd(t, "calibrate", "--cascade", "--config", cfg, "--model", "a", "--data", data); code == 0 || !strings.Contains(text, `"a" is not a cascade`) {
		t.Errorf("--cascade on a plain model: exit %d: %s", code, text)
	}
}
