package gateway_test

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/protocol"
)

// headModels are the fixtures whose heads are not single-label softmax
// (multi-label, one logit) and the 3-label NLI pair model.
var headModels = []string{"multilabel-tiny", "crossencoder-tiny", "nli-tiny"}

// headLimits let a request carry every reference text or pair at once.
var headLimits = gateway.Limits{MaxBodyBytes: 4 << 20, MaxInstances: 64, MaxTextChars: 100_000}

// newHeadServer serves each fixture under its own name in mode, with the
// activation its config.json implies (Scoring.Activation left empty).
func newHeadServer(t *testing.T, mode gateway.Mode, co gateway.CacheOptions) (*gateway.Server, map[string]backendtest.Reference) {
	t.Helper()
	refs := map[string]backendtest.Reference{}
	var ms []gateway.Servable
	for _, name := range headModels {
		dir := filepath.Join(models, name)
		ref, err := backendtest.LoadReference(filepath.Join(dir, "reference.json"))
		if err != nil {
			t.Fatal(err)
		}
		refs[name] = ref
		p, err := rt.Open(dir, onnx.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, newModel(t, name, "", mode, p))
	}
	srv := serve(t, gateway.ServerOptions{Limits: headLimits, Version: "test", Cache: co}, ms)
	return srv, refs
}

// singles are the pipeline's reference answers for single texts.
func singles(ref backendtest.Reference) []backendtest.RefScores {
	var out []backendtest.RefScores
	for _, s := range ref.Pipeline {
		if s.TextPair == nil {
			out = append(out, s)
		}
	}
	return out
}

func instances(refs []backendtest.RefScores) string {
	var b []string
	for _, r := range refs {
		if r.TextPair == nil {
			b = append(b, mustJSON(r.Text))
			continue
		}
		b = append(b, fmt.Sprintf(`{"text": %s, "text_pair": %s}`, mustJSON(r.Text), mustJSON(*r.TextPair)))
	}
	return "[" + strings.Join(b, ",") + "]"
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkScores compares named scores with the pipeline's: the same labels
// with the same scores (the ONNX graph's logits are within 1e-4 of
// PyTorch's), highest first, the first topK of them when topK > 0.
func checkScores(t *testing.T, where string, got []protocol.LabelScore, want backendtest.RefScores, topK int) {
	t.Helper()
	n := len(want.Scores)
	if topK > 0 {
		n = min(n, topK)
	}
	if len(got) != n {
		t.Errorf("%s: %d scores, want %d", where, len(got), n)
		return
	}
	ref := map[string]float64{}
	for _, s := range want.Scores {
		ref[s.Label] = s.Score
	}
	for j, s := range got {
		r, ok := ref[s.Label]
		if !ok {
			t.Errorf("%s: label %q is not the model's", where, s.Label)
			continue
		}
		if d := math.Abs(float64(s.Score) - r); d > 2e-4 {
			t.Errorf("%s: %s scored %v, the pipeline %v", where, s.Label, s.Score, r)
		}
		if j > 0 && s.Score > got[j-1].Score {
			t.Errorf("%s: not sorted high to low: %v", where, got)
		}
		// Where the pipeline's scores are clearly apart, the order is its.
		if w := want.Scores[j]; w.Label != s.Label && (j+1 >= len(want.Scores) || w.Score-want.Scores[j+1].Score > 1e-3) && (j == 0 || want.Scores[j-1].Score-w.Score > 1e-3) {
			t.Errorf("%s: rank %d is %s, the pipeline's %s", where, j, s.Label, w.Label)
		}
	}
}

// V1 output "scores" answers as transformers' text-classification
// pipeline does, with each model's default activation (sigmoid for the
// multi-label and one-logit models, softmax for NLI), and top_k cuts it.
func TestPipelineScoresV1(t *testing.T) {
	srv, refs := newHeadServer(t, gateway.ModeLabel, gateway.CacheOptions{})
	for _, name := range headModels {
		want := singles(refs[name])
		for _, topK := range []int{0, 2} {
			params := `"output": "scores"`
			if topK > 0 {
				params += fmt.Sprintf(`, "top_k": %d`, topK)
			}
			w := do(srv, "POST", "/v1/models/"+name+":predict", fmt.Sprintf(`{"instances": %s, "parameters": {%s}}`, instances(want), params))
			var resp struct{ Predictions [][]protocol.LabelScore }
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 || len(resp.Predictions) != len(want) {
				t.Fatalf("%s: %d %s", name, w.Code, w.Body)
			}
			for i := range want {
				checkScores(t, fmt.Sprintf("%s text %d top_k %d", name, i, topK), resp.Predictions[i], want[i], topK)
			}
		}
	}
}

// V2 output "scores" carries the same answer as one JSON string per text.
func TestPipelineScoresV2(t *testing.T) {
	srv, refs := newHeadServer(t, gateway.ModeLabel, gateway.CacheOptions{})
	for _, name := range headModels {
		want := singles(refs[name])
		texts := make([]string, len(want))
		for i, r := range want {
			texts[i] = r.Text
		}
		body := fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [%d], "datatype": "BYTES", "data": %s}], "outputs": [{"name": "scores"}], "parameters": {"top_k": 1}}`, len(texts), mustJSON(texts))
		w := do(srv, "POST", "/v2/models/"+name+"/infer", body)
		var resp protocol.InferResponse
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		out := resp.Outputs[0]
		if out.Name != "scores" || out.Datatype != "BYTES" || fmt.Sprint(out.Shape) != fmt.Sprint([]int{len(texts)}) {
			t.Fatalf("%s: output %s %s %v, want scores BYTES [%d]", name, out.Name, out.Datatype, out.Shape, len(texts))
		}
		elems, _ := out.Data.([]any)
		if len(elems) != len(texts) {
			t.Fatalf("%s: %d elements for %d texts", name, len(elems), len(texts))
		}
		for i, e := range elems {
			var got []protocol.LabelScore
			s, _ := e.(string)
			if err := json.Unmarshal([]byte(s), &got); err != nil {
				t.Fatalf("%s text %d: %q is not JSON scores: %v", name, i, s, err)
			}
			checkScores(t, fmt.Sprintf("%s v2 text %d", name, i), got, want[i], 1)
		}
	}
}

// A sigmoid model's labels output names every label scored at or above
// the threshold (0.5 by default), highest first, on V1 and V2; its
// probabilities and KServe's probability strings are sigmoids too.
func TestMultiLabelOutputs(t *testing.T) {
	srv, refs := newHeadServer(t, gateway.ModeProbabilities, gateway.CacheOptions{})
	want := singles(refs["multilabel-tiny"])
	w := do(srv, "POST", "/v1/models/multilabel-tiny:predict", fmt.Sprintf(`{"instances": %s, "parameters": {"output": "labels"}}`, instances(want)))
	var v1 struct{ Predictions [][]string }
	if err := json.Unmarshal(w.Body.Bytes(), &v1); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	some := false
	for i, r := range want {
		var above []string
		for _, s := range r.Scores {
			if s.Score >= 0.5 {
				above = append(above, s.Label)
			}
		}
		some = some || len(above) > 1
		if fmt.Sprint(v1.Predictions[i]) != fmt.Sprint(above) && !nearHalf(r) {
			t.Errorf("text %d: labels %v, the pipeline scores %v at or above 0.5", i, v1.Predictions[i], above)
		}
	}
	if !some {
		t.Error("no reference text has two labels above 0.5: the test proves nothing multi-label")
	}

	// KServe's probability strings follow the activation: they need not sum to 1.
	w = do(srv, "POST", "/v2/models/multilabel-tiny/infer", fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [%s]}], "outputs": [{"name": "output-0"}, {"name": "labels"}]}`, mustJSON(want[0].Text)))
	var v2 protocol.InferResponse
	if err := json.Unmarshal(w.Body.Bytes(), &v2); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	ref := map[string]float64{}
	for _, s := range want[0].Scores {
		ref[s.Label] = s.Score
	}
	labels := []string{"anger", "joy", "love", "sadness", "surprise"}
	var parts []string
	for j, l := range labels {
		parts = append(parts, fmt.Sprintf("%d: %s", j, protocol.PyRound4(float64(float32(ref[l])))))
	}
	if got, wantS := v2.Outputs[0].Data.([]any)[0], "{"+strings.Join(parts, ", ")+"}"; got != wantS {
		t.Errorf("probability string %v, want the pipeline's sigmoids %s", got, wantS)
	}
	if got := v2.Outputs[1].Data.([]any)[0]; got != mustJSON(v1.Predictions[0]) {
		t.Errorf("V2 labels %v, V1 said %v", got, v1.Predictions[0])
	}
}

// nearHalf reports whether a score is too close to the threshold for the
// ONNX graph's 1e-4 to decide the same way.
func nearHalf(r backendtest.RefScores) bool {
	for _, s := range r.Scores {
		if math.Abs(s.Score-0.5) < 1e-3 {
			return true
		}
	}
	return false
}

// Model metadata reports the activation each model is served with and
// the labels threshold.
func TestActivationMetadata(t *testing.T) {
	srv, refs := newHeadServer(t, gateway.ModeLabel, gateway.CacheOptions{})
	for _, name := range headModels {
		w := do(srv, "GET", "/v2/models/"+name, "")
		var meta protocol.ModelMetadataResponse
		if err := json.Unmarshal(w.Body.Bytes(), &meta); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		if got := meta.Parameters["activation"]; got != refs[name].Activation || refs[name].Activation == "" {
			t.Errorf("%s: activation %v, the pipeline's %q", name, got, refs[name].Activation)
		}
		if got := meta.Parameters["threshold"]; got != 0.5 {
			t.Errorf("%s: threshold %v, want the default 0.5", name, got)
		}
	}
}
