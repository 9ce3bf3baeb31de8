package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

// TestCascade serves a cascade of a temperature-scaled fixture model in
// front of an ensemble, and cascades with a dead first stage, from the real
// binary, and checks every answer against what the transformers reference
// logits give: per text, the stage that answers, its calibrated logits and
// probabilities, KServe's probability strings (V1 and V2), the per-stage
// counts in parameters and /metrics, cache hits on the second request, and
// a failing stage answering 503 or handing its texts on as configured.
func TestCascade(t *testing.T) {
	root := proctest.Root()
	ra, rb := reference(t, "testdata/models/sst2-tiny-a"), reference(t, "testdata/models/sst2-tiny-b")
	const ta = 1.5 // the first stage's temperature
	var conf []float64
	for _, r := range ra.Texts {
		conf = append(conf, slices.Max(calibration.Softmax(r.Logits, ta)))
	}
	sorted := slices.Clone(conf)
	sort.Float64s(sorted)
	// About half the texts stay with a; the threshold lies between two
	// texts' confidences, so float32 rounding cannot move a text across it.
	thr := (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2

	cfg := filepath.Join(t.TempDir(), "registry.yaml")
	yaml := fmt.Sprintf(`models:
  - name: a
    temperature: %v
    replicas: [{type: onnx, model_dir: %q}]
  - name: b
    replicas: [{type: onnx, model_dir: %q}]
  - name: ens
    members: [{name: a}, {name: b}]
  - name: dead
    labels: [NEGATIVE, POSITIVE]
    pool: {health: {interval: -1s}}
    replicas: [{type: kserve, url: %q, logits: tensor}]
  - name: casc
    return_probabilities: true
    stages: [{name: a, min_confidence: %v}, {name: ens}]
  - name: casc-dead
    stages: [{name: dead, min_confidence: 0.5}, {name: b}]
  - name: casc-skip
    on_stage_failure: next
    stages: [{name: dead, min_confidence: 0.5}, {name: b}]
`, ta, filepath.Join(root, "testdata/models/sst2-tiny-a"), filepath.Join(root, "testdata/models/sst2-tiny-b"), closedPort(t), thr)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "serve", "--config", cfg, "--grpc_port", "{grpc_port}")
	p.waitReady(30 * time.Second)

	// What the cascade must answer, from the reference logits: a's logits
	// at T=1.5 where a is sure enough, else the ensemble's mean logits.
	var texts, wantStage []string
	var want [][]float64
	counts := map[string]int{}
	for i, r := range ra.Texts {
		texts = append(texts, r.Text)
		if conf[i] >= thr {
			wantStage, want = append(wantStage, "a"), append(want, []float64{r.Logits[0] / ta, r.Logits[1] / ta})
		} else {
			b := rb.Texts[i].Logits
			wantStage, want = append(wantStage, "ens"), append(want, []float64{(r.Logits[0] + b[0]) / 2, (r.Logits[1] + b[1]) / 2})
		}
		counts[wantStage[i]]++
	}
	if counts["a"] == 0 || counts["ens"] == 0 {
		t.Fatalf("threshold %v sends every text one way: %v", thr, counts)
	}
	v2 := func(model string, outputs ...string) (int, http.Header, map[string]json.RawMessage, map[string]any) {
		t.Helper()
		a := inferV2(t, p.URL, model, texts, outputs...)
		return a.status, a.header, a.outputs, a.params
	}

	status, hdr, outs, params := v2("casc", "logits", "probabilities", "stage", "output-0")
	if status != 200 {
		t.Fatalf("casc: %d", status)
	}
	// The ensemble's member a finds in the cache what stage a just put
	// there: the first request is already partly served from the cache.
	if hdr.Get("X-Chorus-Cache") != "partial" {
		t.Errorf("first request: X-Chorus-Cache %q, want partial", hdr.Get("X-Chorus-Cache"))
	}
	var logits, probs []float64
	var stages, kserveStrings []string
	for name, into := range map[string]any{"logits": &logits, "probabilities": &probs, "stage": &stages, "output-0": &kserveStrings} {
		if err := json.Unmarshal(outs[name], into); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if !slices.Equal(stages, wantStage) {
		t.Fatalf("stages %v\nwant   %v", stages, wantStage)
	}
	var wantStrings []string
	for i := range want {
		pr := calibration.Softmax(want[i], 1)
		for j := range want[i] {
			if math.Abs(logits[2*i+j]-want[i][j]) > 1e-4 || math.Abs(probs[2*i+j]-pr[j]) > 1e-4 {
				t.Fatalf("text %d (stage %s) label %d: logit %v prob %v, reference %v %v", i, wantStage[i], j, logits[2*i+j], probs[2*i+j], want[i][j], pr[j])
			}
		}
		wantStrings = append(wantStrings, protocol.PyDict([]float32{float32(pr[0]), float32(pr[1])}, protocol.PyRound4))
	}
	// KServe's --return_probabilities strings, as its Python server writes
	// them; a rounding difference in the 4th digit would show here.
	for i := range wantStrings {
		if kserveStrings[i] != wantStrings[i] {
			t.Errorf("text %d: output-0 %q, want %q", i, kserveStrings[i], wantStrings[i])
		}
	}
	wantCounts := fmt.Sprintf("a=%d,ens=%d", counts["a"], counts["ens"])
	if params["stage_counts"] != wantCounts || params["stage_ens"] != float64(counts["ens"]) {
		t.Errorf("parameters %v, want stage_counts %s", params, wantCounts)
	}

	// V1, the same texts: all from the cache now, KServe's dicts, stages.
	body, _ := json.Marshal(map[string]any{"instances": texts})
	resp, err := http.Post(p.URL+"/v1/models/casc:predict", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	var v1 struct {
		Predictions []map[string]float64
		Parameters  struct {
			StageCounts map[string]int `json:"stage_counts"`
			Stages      []string
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&v1)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("V1: %d %v", resp.StatusCode, err)
	}
	if resp.Header.Get("X-Chorus-Cache") != "hit" {
		t.Errorf("second request: X-Chorus-Cache %q, want hit", resp.Header.Get("X-Chorus-Cache"))
	}
	if !slices.Equal(v1.Parameters.Stages, wantStage) || v1.Parameters.StageCounts["a"] != counts["a"] {
		t.Errorf("V1 parameters %+v", v1.Parameters)
	}
	for i, pr := range v1.Predictions {
		if want := calibration.Softmax(want[i], 1); math.Abs(pr["1"]-want[1]) > 1e-4 {
			t.Errorf("V1 text %d: %v, want %v", i, pr, want)
		}
	}

	// A dead stage: 503 by default, its texts to the next stage with next.
	if status, _, _, _ := v2("casc-dead"); status != 503 {
		t.Errorf("casc-dead: %d, want 503", status)
	}
	status, _, outs, params = v2("casc-skip", "stage", "logits")
	if status != 200 {
		t.Fatalf("casc-skip: %d", status)
	}
	if err := json.Unmarshal(outs["stage"], &stages); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(stages, func(s string) bool { return s != "b" }) || params["stages_failed"] != "dead" {
		t.Errorf("casc-skip: stages %v parameters %v", stages, params)
	}

	// Metadata, readiness and the per-stage metric.
	status, b := getURL(t, p.URL+"/v2/models/casc")
	if status != 200 || !strings.Contains(string(b), `"platform":"chorus_cascade"`) || !strings.Contains(string(b), `"name":"stage"`) {
		t.Errorf("metadata: %d %s", status, b)
	}
	if status, _ := getURL(t, p.URL+"/v2/models/casc/ready"); status != 200 {
		t.Errorf("casc ready: %d", status)
	}
	_, m := getURL(t, p.URL+"/metrics")
	for stage, c := range map[string]int{"a": 2 * counts["a"], "ens": 2 * counts["ens"]} {
		line := fmt.Sprintf(`chorus_cascade_answers_total{model="casc",stage=%q} %d`, stage, c)
		if !strings.Contains(string(m), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}

	// OIP gRPC: the same answers, stages and counts.
	checkCascadeGRPC(t, p.GRPCPort, "casc", texts, wantStage, want, counts)
}

func getURL(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	b := readBody(t, resp, err) // before resp is read: it is nil on err
	return resp.StatusCode, b
}
