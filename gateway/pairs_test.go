package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/ensemble"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// pairModels are the fixtures with pair references.
var pairModels = []string{"nli-tiny", "crossencoder-tiny"}

// v1PairBody sends the reference pairs in the pipeline's object form or
// as [a, b] arrays.
func v1PairBody(pairs [][2]string, objects bool, params string) string {
	var b []string
	for _, p := range pairs {
		if objects {
			b = append(b, fmt.Sprintf(`{"text": %s, "text_pair": %s}`, mustJSON(p[0]), mustJSON(p[1])))
		} else {
			b = append(b, mustJSON([]string{p[0], p[1]}))
		}
	}
	return fmt.Sprintf(`{"instances": [%s], "parameters": {%s}}`, strings.Join(b, ","), params)
}

func v2PairBody(pairs [][2]string, output string) string {
	var flat []string
	for _, p := range pairs {
		flat = append(flat, p[0], p[1])
	}
	return fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [%d, 2], "datatype": "BYTES", "data": %s}], "outputs": [{"name": %q}]}`, len(pairs), mustJSON(flat), output)
}

// Text pairs on V1 (both forms) and V2 ([n, 2]) answer transformers'
// logits for the pair, tokenized as the model's tokenizer pairs them.
func TestPairsMatchTransformers(t *testing.T) {
	srv, refs := newHeadServer(t, gateway.ModeLabel, gateway.CacheOptions{})
	for _, name := range pairModels {
		ref := refs[name]
		pairs := ref.PairList()
		for _, objects := range []bool{true, false} {
			w := do(srv, "POST", "/v1/models/"+name+":predict", v1PairBody(pairs, objects, `"output": "logits"`))
			var v1 struct{ Predictions [][]float64 }
			if err := json.Unmarshal(w.Body.Bytes(), &v1); err != nil || w.Code != 200 {
				t.Fatalf("%s: %d %s", name, w.Code, w.Body)
			}
			backendtest.CheckRows(t, fmt.Sprintf("%s V1 objects=%v", name, objects), v1.Predictions, ref.Pairs)
		}
		w := do(srv, "POST", "/v2/models/"+name+"/infer", v2PairBody(pairs, "logits"))
		var v2 protocol.InferResponse
		if err := json.Unmarshal(w.Body.Bytes(), &v2); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		k := len(ref.Pairs[0].Logits)
		if fmt.Sprint(v2.Outputs[0].Shape) != fmt.Sprint([]int{len(pairs), k}) {
			t.Fatalf("%s: shape %v", name, v2.Outputs[0].Shape)
		}
		flat, _ := v2.Outputs[0].Data.([]any)
		rows := make([][]float64, len(pairs))
		for i := range rows {
			for j := range k {
				rows[i] = append(rows[i], flat[i*k+j].(float64))
			}
		}
		backendtest.CheckRows(t, name+" V2 [n, 2]", rows, ref.Pairs)
	}
}

// Named scores of pairs are the pipeline's ({"text", "text_pair"} input).
func TestPairPipelineScores(t *testing.T) {
	srv, refs := newHeadServer(t, gateway.ModeLabel, gateway.CacheOptions{})
	for _, name := range pairModels {
		var want []backendtest.RefScores
		var pairs [][2]string
		for _, s := range refs[name].Pipeline {
			if s.TextPair != nil {
				want, pairs = append(want, s), append(pairs, [2]string{s.Text, *s.TextPair})
			}
		}
		if len(want) == 0 {
			t.Fatalf("%s: the reference has no pipeline scores of pairs", name)
		}
		w := do(srv, "POST", "/v1/models/"+name+":predict", v1PairBody(pairs, true, `"output": "scores"`))
		var resp struct{ Predictions [][]protocol.LabelScore }
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		for i := range want {
			checkScores(t, fmt.Sprintf("%s pair %d", name, i), resp.Predictions[i], want[i], 0)
		}
	}
}

// Pairs are cached one entry per pair; a text equal to a pair's text (or
// to both joined) is not served the pair's logits, and a pair repeated in
// a batch is one entry.
func TestPairsCached(t *testing.T) {
	srv, refs := newHeadServer(t, gateway.ModeLabel, gateway.CacheOptions{Store: cache.NewLRU(1000, time.Hour)})
	p := refs["nli-tiny"].PairList()[0]
	ask := func(body string) (string, []float64) {
		w := do(srv, "POST", "/v1/models/nli-tiny:predict", body)
		var v1 struct{ Predictions [][]float64 }
		if err := json.Unmarshal(w.Body.Bytes(), &v1); err != nil || w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return w.Header().Get("X-Chorus-Cache"), v1.Predictions[0]
	}
	logits := `"output": "logits"`
	if c, _ := ask(v1PairBody([][2]string{p, p}, true, logits)); c != "miss" {
		t.Errorf("first pair request: cache %q, want miss", c)
	}
	c, cached := ask(v1PairBody([][2]string{p}, false, logits))
	if c != "hit" {
		t.Errorf("same pair again (other form): cache %q, want hit", c)
	}
	backendtest.CheckRows(t, "cached pair", [][]float64{cached}, refs["nli-tiny"].Pairs[:1])
	for _, text := range []string{p[0], p[1], p[0] + p[1]} {
		if c, _ := ask(fmt.Sprintf(`{"instances": [%s], "parameters": {%s}}`, mustJSON(text), logits)); c != "miss" {
			t.Errorf("text %q after its pair: cache %q, want miss", text, c)
		}
	}
	if c, _ := ask(v1PairBody([][2]string{{p[1], p[0]}}, true, logits)); c != "miss" {
		t.Errorf("swapped pair: cache %q, want miss", c)
	}
}

// textOnly hides a real backend's PredictPairs: a replica that takes
// texts only, as a remote without pair support would be.
type textOnly struct{ protocol.Predictor }

// A model whose replicas take no pairs answers pairs with a clear 400;
// any V2 shape other than [n], [n,1], [n,2] is a 400; an ensemble passes
// pairs to its members; gRPC takes [n, 2] too.
func TestPairsRefusedAndRouted(t *testing.T) {
	dir := filepath.Join(models, "nli-tiny")
	p, err := rt.Open(dir, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q, err := rt.Open(dir, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plain := newModel(t, "plain", "", gateway.ModeLabel, textOnly{p})
	nli := newModel(t, "nli", "", gateway.ModeLabel, q)
	ens, err := gateway.NewEnsemble(gateway.EnsembleOptions{Name: "ens", Combine: ensemble.MeanProbs,
		Members: []gateway.EnsembleMember{{Model: nli, Weight: 1}, {Model: nli, Weight: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, gateway.ServerOptions{Limits: headLimits, Version: "test"}, []gateway.Servable{plain, nli, ens})
	ref, err := backendtest.LoadReference(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	pairs := ref.PairList()

	for _, c := range []struct{ path, body, want string }{
		{"/v1/models/plain:predict", v1PairBody(pairs[:1], true, ""), "no replica of this model takes text pairs"},
		{"/v2/models/plain/infer", v2PairBody(pairs[:1], "label"), "no replica of this model takes text pairs"},
		{"/v2/models/nli/infer", `{"inputs": [{"name": "in", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]}`, "want [n] or [n, 1] for n texts, or [n, 2]"},
		{"/v2/models/nli/infer", `{"inputs": [{"name": "in", "shape": [1, 2, 1], "datatype": "BYTES", "data": ["a", "b"]}]}`, "want [n] or [n, 1]"},
		{"/v1/models/nli:predict", `{"instances": ["a", ["b", "c"]]}`, "send texts or text pairs, not both"},
	} {
		w := do(srv, "POST", c.path, c.body)
		var e protocol.ErrorResponse
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 400 || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s %s: %d %s, want 400 saying %q", c.path, c.body, w.Code, w.Body, c.want)
		}
	}

	// The ensemble of one model with itself answers that model's scores.
	w := do(srv, "POST", "/v1/models/ens:predict", v1PairBody(pairs, true, `"output": "probabilities"`))
	var got struct{ Predictions [][]float64 }
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("ensemble: %d %s", w.Code, w.Body)
	}
	for i, r := range ref.Pairs {
		want := softmax64(r.Logits)
		for j := range want {
			if math.Abs(got.Predictions[i][j]-want[j]) > 1e-4 {
				t.Errorf("ensemble pair %d: %v, want %v", i, got.Predictions[i], want)
			}
		}
	}

	// gRPC: BYTES [n, 2] in raw_input_contents.
	c := oippb.NewGRPCInferenceServiceClient(serveGRPC(t, srv))
	var flat []string
	for _, p := range pairs {
		flat = append(flat, p[0], p[1])
	}
	resp, err := c.ModelInfer(context.Background(), &oippb.ModelInferRequest{ModelName: "nli",
		Inputs:           []*oippb.ModelInferRequest_InferInputTensor{{Name: "input-0", Datatype: "BYTES", Shape: []int64{int64(len(pairs)), 2}}},
		Outputs:          []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: protocol.OutputLogits}},
		RawInputContents: [][]byte{protocol.AppendBytesTensor(nil, flat)}})
	if err != nil {
		t.Fatal(err)
	}
	k := len(ref.Pairs[0].Logits)
	l, err := protocol.DecodeFP32(resp.GetRawOutputContents()[0], int64(len(pairs)*k))
	if err != nil {
		t.Fatal(err)
	}
	rows := make([][]float64, len(pairs))
	for i := range rows {
		for j := range k {
			rows[i] = append(rows[i], float64(l[i*k+j]))
		}
	}
	backendtest.CheckRows(t, "gRPC [n, 2]", rows, ref.Pairs)
}

func softmax64(z []float64) []float64 {
	m, sum := math.Inf(-1), 0.0
	for _, v := range z {
		m = math.Max(m, v)
	}
	out := make([]float64, len(z))
	for j, v := range z {
		out[j] = math.Exp(v - m)
		sum += out[j]
	}
	for j := range out {
		out[j] /= sum
	}
	return out
}
