package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	return url
}

// TestEnsemblesAndTemperature serves two fixture models, a temperature-
// scaled one and ensembles of them, and checks every answer against what
// the members' transformers reference logits give.
func TestEnsemblesAndTemperature(t *testing.T) {
	root := proctest.Root()
	cfg := filepath.Join(t.TempDir(), "registry.yaml")
	yaml := fmt.Sprintf(`models:
  - name: a
    replicas: [{type: onnx, model_dir: %q}]
  - name: b
    replicas: [{type: onnx, model_dir: %q}]
  - name: a-hot
    temperature: 2
    return_probabilities: true
    replicas: [{type: onnx, model_dir: %q}]
  - name: dead
    labels: [NEGATIVE, POSITIVE]
    pool: {health: {interval: -1s}}
    replicas: [{type: kserve, url: %q, logits: tensor}]
  - name: ens
    temperature: 1.5
    members: [{name: a, weight: 2}, {name: b}]
  - name: ens-probs
    combine: mean_probs
    members: [{name: a}, {name: b}]
  - name: ens-vote
    combine: majority_vote
    members: [{name: a, weight: 3}, {name: b}]
  - name: ens-tolerant
    min_members: 1
    members: [{name: a}, {name: dead}]
  - name: ens-strict
    members: [{name: a}, {name: dead}]
`, filepath.Join(root, "testdata/models/sst2-tiny-a"), filepath.Join(root, "testdata/models/sst2-tiny-b"),
		filepath.Join(root, "testdata/models/sst2-tiny-a"), closedPort(t))
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "serve", "--config", cfg)
	p.waitReady(30 * time.Second)
	ra, rb := reference(t, "testdata/models/sst2-tiny-a"), reference(t, "testdata/models/sst2-tiny-b")
	n := len(ra.Texts)

	type out struct {
		Name       string
		Shape      []int
		Data       []float64
		Parameters map[string]any
	}
	// v2 asks for outputs through protocol's V2 client; numbers and
	// parameters are read as plain JSON values for the comparisons.
	v2 := func(model string, outputs ...string) (map[string]out, map[string]any) {
		t.Helper()
		req, err := protocol.TextRequest("", ra.TextList(), outputs...)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(req)
		status, b := post(t, p.URL+"/v2/models/"+model+"/infer", string(body))
		if status != 200 {
			t.Fatalf("%s: %d %s", model, status, b)
		}
		resp, err := protocol.DecodeResponse(b)
		if err != nil {
			t.Fatal(err)
		}
		plain := func(raw map[string]json.RawMessage) map[string]any {
			out := map[string]any{}
			for k, v := range raw {
				var x any
				_ = json.Unmarshal(v, &x)
				out[k] = x
			}
			return out
		}
		m := map[string]out{}
		for _, o := range resp.Outputs {
			var data []float64
			_ = json.Unmarshal(o.Data, &data) // BYTES outputs stay empty here
			m[o.Name] = out{Name: o.Name, Shape: o.Shape, Data: data, Parameters: plain(o.Parameters)}
		}
		return m, plain(resp.Parameters)
	}
	near := func(what string, got []float64, want [][]float64) {
		t.Helper()
		k := len(want[0])
		for i := range want {
			for j := range want[i] {
				if d := math.Abs(got[i*k+j] - want[i][j]); d > 1e-4 {
					t.Fatalf("%s text %d label %d: %v, reference %v", what, i, j, got[i*k+j], want[i][j])
				}
			}
		}
	}
	combine := func(f func(a, b []float64) []float64) [][]float64 {
		var rows [][]float64
		for i := range ra.Texts {
			rows = append(rows, f(ra.Texts[i].Logits, rb.Texts[i].Logits))
		}
		return rows
	}

	// Temperature: probabilities and calibrated logits scale, logits do not.
	o, _ := v2("a-hot", "logits", "probabilities", "calibrated_logits")
	near("a-hot logits", o["logits"].Data, combine(func(a, _ []float64) []float64 { return a }))
	near("a-hot probabilities", o["probabilities"].Data, combine(func(a, _ []float64) []float64 { return calibration.Softmax(a, 2) }))
	near("a-hot calibrated_logits", o["calibrated_logits"].Data, combine(func(a, _ []float64) []float64 { return []float64{a[0] / 2, a[1] / 2} }))

	// mean_logits with weights 2:1, then T = 1.5.
	mean := combine(func(a, b []float64) []float64 { return []float64{(2*a[0] + b[0]) / 3, (2*a[1] + b[1]) / 3} })
	o, params := v2("ens", "logits", "probabilities", "member_logits")
	near("ens logits", o["logits"].Data, mean)
	near("ens probabilities", o["probabilities"].Data, func() [][]float64 {
		var r [][]float64
		for _, z := range mean {
			r = append(r, calibration.Softmax(z, 1.5))
		}
		return r
	}())
	ml := o["member_logits"]
	if fmt.Sprint(ml.Shape) != fmt.Sprintf("[2 %d 2]", n) || ml.Parameters["members"] != "a,b" || ml.Parameters["weights"] != "2,1" {
		t.Fatalf("member_logits %v %v", ml.Shape, ml.Parameters)
	}
	near("ens member a", ml.Data[:2*n], combine(func(a, _ []float64) []float64 { return a }))
	near("ens member b", ml.Data[2*n:], combine(func(_, b []float64) []float64 { return b }))
	// OIP parameters are scalars: names joined by commas, and a count.
	if params["members_used"] != "a,b" || params["members_used_count"] != 2.0 {
		t.Errorf("members_used %v", params)
	}

	// mean_probs: the average of the members' probabilities.
	o, _ = v2("ens-probs", "probabilities")
	near("ens-probs", o["probabilities"].Data, combine(func(a, b []float64) []float64 {
		pa, pb := calibration.Softmax(a, 1), calibration.Softmax(b, 1)
		return []float64{(pa[0] + pb[0]) / 2, (pa[1] + pb[1]) / 2}
	}))

	// majority_vote 3:1: a's label wins every time.
	o, _ = v2("ens-vote", "label")
	for i, got := range o["label"].Data {
		if want := float64(argmaxOf(ra.Texts[i].Logits)); got != want {
			t.Fatalf("ens-vote text %d: %v, want a's label %v", i, got, want)
		}
	}

	// V1: the same ensemble, explained.
	status, b := post(t, p.URL+"/v1/models/ens:predict", `{"instances": ["Hello, my dog is cute"], "parameters": {"output": "logits", "explain": true}}`)
	var v1 struct {
		Predictions [][]float64
		Parameters  map[string]any
		Members     []struct {
			Name   string
			Weight float64
			Logits [][]float64
		}
	}
	if status != 200 || json.Unmarshal(b, &v1) != nil || len(v1.Members) != 2 || v1.Members[0].Weight != 2 {
		t.Fatalf("V1 explain: %d %s", status, b)
	}
	near("V1 ens", []float64{v1.Predictions[0][0], v1.Predictions[0][1]}, mean[:1])

	// min_members: with one of two members dead, the tolerant ensemble
	// answers with a's logits and says so; the strict one answers 503.
	o, params = v2("ens-tolerant", "logits")
	near("ens-tolerant", o["logits"].Data, combine(func(a, _ []float64) []float64 { return a }))
	if params["members_used"] != "a" || params["members_failed"] != "dead" || params["members_failed_count"] != 1.0 {
		t.Errorf("ens-tolerant parameters %v", params)
	}
	status, b = post(t, p.URL+"/v1/models/ens-strict:predict", `{"instances": ["x"]}`)
	if status != 503 || !strings.Contains(string(b), "error") {
		t.Errorf("ens-strict with a dead member: %d %s, want 503", status, b)
	}
	// member_logits is for ensembles only.
	status, _ = post(t, p.URL+"/v2/models/a/infer", `{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["x"]}], "outputs": [{"name": "member_logits"}]}`)
	if status != 400 {
		t.Errorf("member_logits on a plain model: %d, want 400", status)
	}
}
