package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/internal/proctest"
)

// TestPairsThroughRemoteChorus serves the pair fixtures in one Chorus (the
// predictor) and reaches them from another through remote replicas, V1 and
// V2: pairs answer transformers' logits, a one-logit cross-encoder set to
// sigmoid answers the pipeline's scores, and truncate false is a 413
// naming the input, all the way through.
func TestPairsThroughRemoteChorus(t *testing.T) {
	root := proctest.Root()
	dir := t.TempDir()
	nliDir, ceDir := filepath.Join(root, "testdata/models/nli-tiny"), filepath.Join(root, "testdata/models/crossencoder-tiny")
	predictor := filepath.Join(dir, "predictor.yaml")
	writeFile(t, predictor, fmt.Sprintf(`models:
  - name: nli
    replicas: [{type: onnx, model_dir: %q}]
  - name: ce
    replicas: [{type: onnx, model_dir: %q}]
  - name: nli-short
    replicas: [{type: onnx, model_dir: %q, max_length: 16}]
`, nliDir, ceDir, nliDir))
	p := start(t, "serve", "--config", predictor)
	p.waitReady(30 * time.Second)

	front := filepath.Join(dir, "front.yaml")
	writeFile(t, front, fmt.Sprintf(`models:
  - name: nli-v1
    labels: [CONTRADICTION, NEUTRAL, ENTAILMENT]
    replicas: [{type: kserve, url: %[1]q, model: nli, protocol: v1, logits: tensor}]
  - name: nli-v2
    labels: [CONTRADICTION, NEUTRAL, ENTAILMENT]
    replicas: [{type: kserve, url: %[1]q, model: nli, protocol: v2, logits: tensor}]
  - name: ce
    activation: sigmoid
    labels: [LABEL_0]
    replicas: [{type: kserve, url: %[1]q, model: ce, logits: tensor}]
  - name: short
    labels: [CONTRADICTION, NEUTRAL, ENTAILMENT]
    replicas: [{type: kserve, url: %[1]q, model: nli-short, logits: tensor}]
`, p.URL))
	f := start(t, "serve", "--config", front)
	f.waitReady(30 * time.Second)

	for _, c := range []struct{ model, dir string }{{"nli-v1", nliDir}, {"nli-v2", nliDir}, {"ce", ceDir}} {
		ref := reference(t, strings.TrimPrefix(c.dir, root+"/"))
		var objs, flat []string
		for _, pr := range ref.PairList() {
			objs = append(objs, fmt.Sprintf(`{"text": %s, "text_pair": %s}`, js(pr[0]), js(pr[1])))
			flat = append(flat, pr[0], pr[1])
		}
		status, b := post(t, f.URL+"/v1/models/"+c.model+":predict", fmt.Sprintf(`{"instances": [%s], "parameters": {"output": "logits"}}`, strings.Join(objs, ",")))
		var v1 struct{ Predictions [][]float64 }
		if status != 200 || json.Unmarshal(b, &v1) != nil {
			t.Fatalf("%s V1 pairs: %d %s", c.model, status, b)
		}
		backendtest.CheckRows(t, c.model+" V1 pairs", v1.Predictions, ref.Pairs)

		status, b = post(t, f.URL+"/v2/models/"+c.model+"/infer", fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [%d, 2], "datatype": "BYTES", "data": %s}], "outputs": [{"name": "logits"}]}`, len(ref.Pairs), js(flat)))
		var v2 struct{ Outputs []struct{ Data []float64 } }
		if status != 200 || json.Unmarshal(b, &v2) != nil {
			t.Fatalf("%s V2 pairs: %d %s", c.model, status, b)
		}
		k := len(ref.Pairs[0].Logits)
		var rows [][]float64
		for i := range ref.Pairs {
			rows = append(rows, v2.Outputs[0].Data[i*k:(i+1)*k])
		}
		backendtest.CheckRows(t, c.model+" V2 pairs", rows, ref.Pairs)
	}

	// The cross-encoder's pipeline scores, for pairs, over the remote.
	ce := reference(t, "testdata/models/crossencoder-tiny")
	for _, s := range ce.Pipeline {
		if s.TextPair == nil {
			continue
		}
		status, b := post(t, f.URL+"/v1/models/ce:predict", fmt.Sprintf(`{"instances": [[%s, %s]], "parameters": {"output": "scores"}}`, js(s.Text), js(*s.TextPair)))
		var resp struct {
			Predictions [][]struct {
				Label string
				Score float64
			}
		}
		if status != 200 || json.Unmarshal(b, &resp) != nil || len(resp.Predictions) != 1 || len(resp.Predictions[0]) != 1 {
			t.Fatalf("ce scores: %d %s", status, b)
		}
		if got := resp.Predictions[0][0]; got.Label != s.Scores[0].Label || math.Abs(got.Score-s.Scores[0].Score) > 1e-4 {
			t.Errorf("ce pair %q: %+v, the pipeline %+v", s.Text, got, s.Scores[0])
		}
	}

	// truncate false travels to the predictor, whose 413 names the input.
	long := strings.Repeat("word ", 40)
	status, b := post(t, f.URL+"/v1/models/short:predict", fmt.Sprintf(`{"instances": [["a", "b"], ["c", %q]], "parameters": {"truncate": false}}`, long))
	if status != 413 || !strings.Contains(string(b), "input 1 is longer than the model's 16 tokens") {
		t.Errorf("truncate false through the remote: %d %s", status, b)
	}
	// Cut by the predictor, said by the gateway in front: answered by the
	// remote, then from the front's cache.
	for _, want := range []string{"miss", "hit"} {
		resp, err := client.Post(f.URL+"/v1/models/short:predict", "application/json",
			strings.NewReader(fmt.Sprintf(`{"instances": [["a", "b"], ["c", %q]]}`, long)))
		if err != nil {
			t.Fatal(err)
		}
		var v1 struct{ Parameters map[string]any }
		err = json.NewDecoder(resp.Body).Decode(&v1)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || v1.Parameters["truncated"] != 1.0 || v1.Parameters["truncated_inputs"] != "1" || resp.Header.Get("X-Chorus-Cache") != want {
			t.Errorf("truncating through the remote (cache %s, want %s): %d %v", resp.Header.Get("X-Chorus-Cache"), want, resp.StatusCode, v1.Parameters)
		}
	}
}

// calibrate scores a sigmoid model and fits a sigmoid calibration without
// being told --multi-label; the file then serves on that model.
func TestCalibrateFollowsActivation(t *testing.T) {
	root := proctest.Root()
	dir := t.TempDir()
	mlDir := filepath.Join(root, "testdata/models/multilabel-tiny")
	reg := filepath.Join(dir, "registry.yaml")
	writeFile(t, reg, fmt.Sprintf("models:\n  - name: ml\n    replicas: [{type: onnx, model_dir: %q}]\n", mlDir))
	ref := reference(t, "testdata/models/multilabel-tiny")
	var lines []string
	for i := range 40 {
		s := ref.Pipeline[i%len(ref.Pipeline)]
		var on []string
		for j, sc := range s.Scores {
			if (sc.Score > 0.6) != (i%5 == j) {
				on = append(on, js(sc.Label))
			}
		}
		lines = append(lines, fmt.Sprintf(`{"text": %s, "label": [%s]}`, js(s.Text), strings.Join(on, ",")))
	}
	data := writeLines(t, dir, "ml.jsonl", lines)
	out := filepath.Join(dir, "cal.json")
	code, text := runCmd(t, "calibrate", "--config", reg, "--model", "ml", "--data", data, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, text)
	}
	cal := readCalibration(t, out)
	if cal.Act() != calibration.ActivationSigmoid || cal.Kind() != calibration.MethodTemperature {
		t.Fatalf("calibration %+v, want a sigmoid temperature", cal.Calibrator)
	}
	served := filepath.Join(dir, "served.yaml")
	writeFile(t, served, fmt.Sprintf("models:\n  - name: ml\n    calibration: %q\n    replicas: [{type: onnx, model_dir: %q}]\n", out, mlDir))
	s := start(t, "serve", "--config", served)
	s.waitReady(30 * time.Second)
	status, b := post(t, s.URL+"/v1/models/ml:predict", fmt.Sprintf(`{"instances": [%s], "parameters": {"output": "probabilities"}}`, js(ref.Texts[0].Text)))
	var resp struct{ Predictions [][]float64 }
	if status != 200 || json.Unmarshal(b, &resp) != nil {
		t.Fatalf("%d %s", status, b)
	}
	want := calibration.Sigmoid(ref.Texts[0].Logits, cal.Temperature)
	for j := range want {
		if math.Abs(resp.Predictions[0][j]-want[j]) > 1e-4 {
			t.Errorf("calibrated sigmoid %v, want %v (T=%v)", resp.Predictions[0], want, cal.Temperature)
		}
	}
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
