package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

func readCalibration(t *testing.T, path string) calibration.File {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f calibration.File
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func isPNG(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
		t.Fatalf("%s is not a PNG (%d bytes, %v)", path, len(b), err)
	}
}

// From precomputed logits with a known miscalibration: T comes back.
func TestCalibrateFromLogits(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	var lines []string
	for range 5000 {
		z := []float64{r.NormFloat64() * 2, r.NormFloat64() * 2}
		p := calibration.Softmax(z, 1)
		y := 0
		if r.Float64() > p[0] {
			y = 1
		}
		label := []string{`"NEG"`, `"POS"`}[y] // names, read through --labels
		lines = append(lines, fmt.Sprintf(`{"logits": [%v, %v], "label": %s}`, 3*z[0], 3*z[1], label))
	}
	data := filepath.Join(dir, "logits.jsonl")
	if err := os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "cal.json")
	code, text := runCmd(t, "calibrate", "--logits", data, "--labels", "NEG,POS", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, text)
	}
	f := readCalibration(t, out)
	if math.Abs(f.Temperature-3)/3 > 0.05 || f.Data.N != 5000 || f.Data.After.NLL >= f.Data.Before.NLL {
		t.Errorf("T %v (want ~3), n %d, NLL %v → %v", f.Temperature, f.Data.N, f.Data.Before.NLL, f.Data.After.NLL)
	}
	isPNG(t, filepath.Join(dir, "reliability.png"))
	if !strings.Contains(text, "temperature: ") || !strings.Contains(text, "ECE") {
		t.Errorf("no table printed:\n%s", text)
	}
}

// In-process and against a running gateway: the same logits, the same T;
// the file then drives serving, and a file for another model is refused.
func TestCalibrateModelAndServeIt(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "local.json")
	code, text := runCmd(t, "calibrate", "--config", "configs/local.yaml", "--model", "distilbert",
		"--data", "data/demo-sentiment/validation.jsonl", "--test", "data/demo-sentiment/test.jsonl", "--out", local)
	if code != 0 {
		t.Fatalf("in-process: exit %d: %s", code, text)
	}
	lf := readCalibration(t, local)
	if lf.Test == nil || lf.Test.N != 3000 || lf.Fingerprint == "" || fmt.Sprint(lf.Labels) != "[NEGATIVE POSITIVE]" {
		t.Fatalf("calibration file %+v", lf)
	}

	p := start(t, "serve", "--config", "configs/local.yaml")
	p.waitReady(30 * time.Second)
	remote := filepath.Join(dir, "remote.json")
	code, text = runCmd(t, "calibrate", "--url", p.URL, "--model", "distilbert", "--data", "data/demo-sentiment/validation.jsonl", "--out", remote)
	if code != 0 {
		t.Fatalf("--url: exit %d: %s", code, text)
	}
	rf := readCalibration(t, remote)
	if math.Abs(rf.Temperature-lf.Temperature) > 1e-5 || rf.Fingerprint != lf.Fingerprint {
		t.Errorf("over HTTP T %v fp %.12s, in-process T %v fp %.12s", rf.Temperature, rf.Fingerprint, lf.Temperature, lf.Fingerprint)
	}

	// Serve the calibrated model; its metadata shows the temperature and its
	// probabilities use it.
	root := proctest.Root()
	reg := filepath.Join(dir, "registry.yaml")
	yaml := fmt.Sprintf("models:\n  - name: distilbert\n    calibration: %q\n    replicas: [{type: onnx, model_dir: %q}]\n", local, filepath.Join(root, "models/demo-sentiment"))
	if err := os.WriteFile(reg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, "serve", "--config", reg)
	s.waitReady(30 * time.Second)
	resp, err := client.Get(s.URL + "/v2/models/distilbert")
	if err != nil {
		t.Fatal(err)
	}
	var md protocol.ModelMetadataResponse
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if got, _ := md.Parameters["temperature"].(float64); math.Abs(got-lf.Temperature) > 1e-12 {
		t.Errorf("served temperature %v, file says %v", got, lf.Temperature)
	}

	// The same file on another model: refused at start-up, naming the field.
	bad := filepath.Join(dir, "bad.yaml")
	yaml = fmt.Sprintf("models:\n  - name: other\n    calibration: %q\n    replicas: [{type: onnx, model_dir: %q}]\n", local, filepath.Join(root, "testdata/models/sst2-tiny-a"))
	if err := os.WriteFile(bad, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, text = runCmd(t, "serve", "--config", bad, "--http_port", "0")
	if code != 1 || !strings.Contains(text, "models[other].calibration") || !strings.Contains(text, "fingerprint") {
		t.Errorf("mismatched calibration: exit %d: %s", code, text)
	}
}
