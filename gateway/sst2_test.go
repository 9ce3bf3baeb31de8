package gateway_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/protocol"
)

// TestRealSST2 checks the numbers the KServe docs publish for
// distilbert-base-uncased-finetuned-sst-2-english. Weights cannot be
// downloaded here; on a machine that has them:
//
//	python scripts/export_onnx.py --model distilbert/distilbert-base-uncased-finetuned-sst-2-english --out /tmp/sst2
//	CHORUS_SST2_DIR=/tmp/sst2 go test ./gateway -run TestRealSST2
func TestRealSST2(t *testing.T) {
	dir := os.Getenv("CHORUS_SST2_DIR")
	if dir == "" {
		t.Skip("CHORUS_SST2_DIR is unset: export distilbert-base-uncased-finetuned-sst-2-english with scripts/export_onnx.py and point it there")
	}
	p, err := rt.Open(dir, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := newModel(t, "distilbert", "", gateway.ModeProbabilities, p)
	srv := serve(t, gateway.ServerOptions{Limits: testLimits, Version: "test"}, []gateway.Servable{m})

	w := do(srv, "POST", "/v1/models/distilbert:predict", `{"instances": ["Hello, my dog is cute", "I am feeling sad"], "parameters": {"output": "logits"}}`)
	var v1 struct{ Predictions [][]float64 }
	if err := json.Unmarshal(w.Body.Bytes(), &v1); err != nil || len(v1.Predictions) != 2 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	want := [][]float64{{-4.068715572357178, 4.366886138916016}, {3.8371405601501465, -3.1609644889831543}}
	for i := range want {
		for j := range want[i] {
			if d := math.Abs(v1.Predictions[i][j] - want[i][j]); d > 1e-3 {
				t.Errorf("text %d logit %d: %v, KServe docs %v", i, j, v1.Predictions[i][j], want[i][j])
			}
		}
	}

	w = do(srv, "POST", "/v2/models/distilbert/infer", seedV2)
	var v2 protocol.InferResponse
	if err := json.Unmarshal(w.Body.Bytes(), &v2); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(v2.Outputs[0].Data)
	if string(got) != `["{0: 0.0002, 1: 0.9998}","{0: 0.9991, 1: 0.0009}"]` {
		t.Errorf("return_probabilities strings %s", got)
	}
}
