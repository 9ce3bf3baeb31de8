package gateway_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/gateway"
)

// cascadeFixture serves two real models a and b (b with a temperature), a
// remote model whose port is closed, and cascades over them.
type cascadeFixture struct {
	srv     *gateway.Server
	metrics *gateway.Metrics
	ra, rb  backendtest.Reference
	// thr is a's median top-label probability on the reference texts:
	// about half of them stay with a.
	thr float64
}

func newCascadeFixture(t *testing.T) *cascadeFixture {
	t.Helper()
	f := &cascadeFixture{}
	var err error
	for _, x := range []struct {
		dir string
		ref *backendtest.Reference
	}{{"sst2-tiny-a", &f.ra}, {"sst2-tiny-b", &f.rb}} {
		if *x.ref, err = backendtest.LoadReference(filepath.Join(models, x.dir, "reference.json")); err != nil {
			t.Fatal(err)
		}
	}
	var conf []float64
	for _, r := range f.ra.Texts {
		conf = append(conf, slices.Max(calibration.Softmax(f32(r.Logits), 1)))
	}
	sort.Float64s(conf)
	f.thr = (conf[len(conf)/2-1] + conf[len(conf)/2]) / 2 // between two texts: float32 rounding cannot matter

	open := func(dir string) *onnx.Model {
		p, err := rt.Open(filepath.Join(models, dir), onnx.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := newModel(t, "a", "", gateway.ModeLabel, open("sst2-tiny-a"))
	bm := newModel(t, "b-raw", "", gateway.ModeLabel, open("sst2-tiny-b"))
	b, err := gateway.NewModel(gateway.ModelOptions{Name: "b", Versions: bm.Versions(), Scoring: gateway.Scoring{Temperature: 2}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + l.Addr().String()
	l.Close()
	k, err := kserve.New(kserve.Config{URL: deadURL, Model: "m", Protocol: "v2", Logits: kserve.LogitsTensor, Labels: []string{"NEGATIVE", "POSITIVE"}})
	if err != nil {
		t.Fatal(err)
	}
	dead := newModel(t, "dead", "", gateway.ModeLabel, k)

	reg := prometheus.NewPedanticRegistry()
	if f.metrics, err = gateway.NewMetrics(reg, "test"); err != nil {
		t.Fatal(err)
	}
	answers, err := f.metrics.CascadeAnswers()
	if err != nil {
		t.Fatal(err)
	}
	cascade := func(name string, skip bool, stages ...gateway.CascadeStage) *gateway.Cascade {
		c, err := gateway.NewCascade(gateway.CascadeOptions{Name: name, Stages: stages, SkipFailed: skip, Answers: answers})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	servables := []gateway.Servable{a, b, dead,
		cascade("ab", false, gateway.CascadeStage{Servable: a, MinConfidence: f.thr}, gateway.CascadeStage{Servable: b}),
		cascade("dead-fail", false, gateway.CascadeStage{Servable: dead, MinConfidence: 0.5}, gateway.CascadeStage{Servable: b}),
		cascade("dead-next", true, gateway.CascadeStage{Servable: dead, MinConfidence: 0.5}, gateway.CascadeStage{Servable: b}),
	}
	r, err := gateway.NewRegistry(servables)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	f.srv = gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Version: "test",
		Limits:  gateway.Limits{MaxBodyBytes: 1 << 20, MaxInstances: 256, MaxTextChars: 100000},
		Metrics: f.metrics, Cache: gateway.CacheOptions{Store: cache.NewLRU(1000, time.Hour)}})
	f.srv.SetRegistry(r)
	f.srv.SetReady(true)
	return f
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

type v2Answer struct {
	Parameters map[string]any
	Outputs    []struct {
		Name  string
		Shape []int
		Data  json.RawMessage
	}
}

func (a v2Answer) output(t *testing.T, name string, into any) {
	t.Helper()
	for _, o := range a.Outputs {
		if o.Name == name {
			if err := json.Unmarshal(o.Data, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no output %q in %+v", name, a)
}

func v2Body(texts []string, outputs ...string) string {
	data, _ := json.Marshal(texts)
	var outs []string
	for _, o := range outputs {
		outs = append(outs, fmt.Sprintf(`{"name": %q}`, o))
	}
	return fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [%d], "datatype": "BYTES", "data": %s}], "outputs": [%s]}`,
		len(texts), data, strings.Join(outs, ","))
}

// TestCascadeAnswersByConfidence checks, text by text against the
// transformers reference, that a cascade answers with a's calibrated
// logits where a's top probability reaches the threshold and with b's
// (at b's temperature) elsewhere, and that it says so in every form.
func TestCascadeAnswersByConfidence(t *testing.T) {
	f := newCascadeFixture(t)
	var texts, wantStage []string
	var want [][]float64
	counts := map[string]int{}
	for i, r := range f.ra.Texts {
		texts = append(texts, r.Text)
		if slices.Max(calibration.Softmax(f32(r.Logits), 1)) >= f.thr {
			wantStage, want = append(wantStage, "a"), append(want, r.Logits)
		} else {
			l := f.rb.Texts[i].Logits
			wantStage, want = append(wantStage, "b"), append(want, []float64{l[0] / 2, l[1] / 2})
		}
		counts[wantStage[i]]++
	}
	if counts["a"] == 0 || counts["b"] == 0 {
		t.Fatalf("the threshold %v sends every text one way: %v", f.thr, counts)
	}

	w := do(f.srv, "POST", "/v2/models/ab/infer", v2Body(texts, "logits", "probabilities", "stage", "label"))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var ans v2Answer
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatal(err)
	}
	var logits, probs []float64
	var stages []string
	ans.output(t, "logits", &logits)
	ans.output(t, "probabilities", &probs)
	ans.output(t, "stage", &stages)
	if !slices.Equal(stages, wantStage) {
		t.Fatalf("stages %v, want %v", stages, wantStage)
	}
	for i := range want {
		p := calibration.Softmax(f32(want[i]), 1)
		for j := range want[i] {
			if d := logits[2*i+j] - want[i][j]; d > 1e-4 || d < -1e-4 {
				t.Errorf("text %d label %d: logit %v, want %v (stage %s)", i, j, logits[2*i+j], want[i][j], wantStage[i])
			}
			if d := probs[2*i+j] - p[j]; d > 1e-4 || d < -1e-4 {
				t.Errorf("text %d label %d: probability %v, want %v", i, j, probs[2*i+j], p[j])
			}
		}
	}
	wantCounts := fmt.Sprintf("a=%d,b=%d", counts["a"], counts["b"])
	if ans.Parameters["stage_counts"] != wantCounts || ans.Parameters["stage_a"] != float64(counts["a"]) {
		t.Errorf("parameters %v, want stage_counts %s", ans.Parameters, wantCounts)
	}
	for k, v := range ans.Parameters {
		switch v.(type) {
		case string, float64, bool:
		default:
			t.Errorf("parameter %s = %v is not an OIP scalar", k, v)
		}
	}
	if got := testutil.ToFloat64(mustCounter(t, f, "ab", "a")); got != float64(counts["a"]) {
		t.Errorf("chorus_cascade_answers_total{stage=a} = %v, want %d", got, counts["a"])
	}

	// V1: the same answers, with the stage of each text.
	body, _ := json.Marshal(map[string]any{"instances": texts})
	w = do(f.srv, "POST", "/v1/models/ab:predict", string(body))
	var v1 struct {
		Predictions []int
		Parameters  struct {
			StageCounts map[string]int `json:"stage_counts"`
			Stages      []string
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v1); err != nil || w.Code != 200 {
		t.Fatalf("%d %s %v", w.Code, w.Body, err)
	}
	if !slices.Equal(v1.Parameters.Stages, wantStage) || v1.Parameters.StageCounts["b"] != counts["b"] {
		t.Errorf("V1 parameters %+v", v1.Parameters)
	}
	for i, p := range v1.Predictions {
		if want := calibration.Argmax(f32(want[i])); p != want {
			t.Errorf("V1 text %d: %d, want %d", i, p, want)
		}
	}
	// Both answers were cached per stage: the third request is all hits.
	if w.Header().Get("X-Chorus-Cache") != "hit" {
		t.Errorf("second request: X-Chorus-Cache %q, want hit", w.Header().Get("X-Chorus-Cache"))
	}

	// Metadata lists the stage output; other models refuse it.
	w = do(f.srv, "GET", "/v2/models/ab", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"name":"stage"`) || !strings.Contains(w.Body.String(), "chorus_cascade") {
		t.Errorf("metadata %d %s", w.Code, w.Body)
	}
	if w = do(f.srv, "POST", "/v2/models/a/infer", v2Body(texts[:1], "stage")); w.Code != 400 {
		t.Errorf("stage of a plain model: %d %s, want 400", w.Code, w.Body)
	}
}

func mustCounter(t *testing.T, f *cascadeFixture, model, stage string) prometheus.Counter {
	t.Helper()
	c, err := f.metrics.CascadeAnswers()
	if err != nil {
		t.Fatal(err)
	}
	return c.WithLabelValues(model, stage)
}

// TestCascadeFailingStage: a stage whose replica is down fails the request
// with 503, or, with SkipFailed, hands its texts to the next stage.
func TestCascadeFailingStage(t *testing.T) {
	f := newCascadeFixture(t)
	texts := []string{f.ra.Texts[0].Text, f.ra.Texts[1].Text}
	if w := do(f.srv, "POST", "/v2/models/dead-fail/infer", v2Body(texts)); w.Code != 503 {
		t.Errorf("dead-fail: %d %s, want 503", w.Code, w.Body)
	}
	w := do(f.srv, "POST", "/v2/models/dead-next/infer", v2Body(texts, "stage"))
	if w.Code != 200 {
		t.Fatalf("dead-next: %d %s", w.Code, w.Body)
	}
	var ans v2Answer
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatal(err)
	}
	var stages []string
	ans.output(t, "stage", &stages)
	if !slices.Equal(stages, []string{"b", "b"}) || ans.Parameters["stages_failed"] != "dead" || ans.Parameters["stage_counts"] != "dead=0,b=2" {
		t.Errorf("dead-next: stages %v parameters %v", stages, ans.Parameters)
	}
}

// TestCascadeChecksLabels: a stage with other labels needs a label map.
func TestCascadeChecksLabels(t *testing.T) {
	p, err := rt.Open(filepath.Join(models, "sentiment3-tiny"), onnx.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	three := newModel(t, "three", "", gateway.ModeLabel, p)
	defer three.Close()
	q, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := newModel(t, "a", "", gateway.ModeLabel, q)
	defer a.Close()
	_, err = gateway.NewCascade(gateway.CascadeOptions{Name: "c", Stages: []gateway.CascadeStage{{Servable: a, MinConfidence: 0.9}, {Servable: three}}})
	if err == nil || !strings.Contains(err.Error(), "stage three vs a") {
		t.Errorf("labels mismatch: %v", err)
	}
	_, err = gateway.NewCascade(gateway.CascadeOptions{Name: "c", Stages: []gateway.CascadeStage{{Servable: a, MinConfidence: 0}, {Servable: a}}})
	if err == nil || !strings.Contains(err.Error(), "min_confidence") {
		t.Errorf("threshold 0: %v", err)
	}
}

// A cascade's label threshold is its own (default 0.5): what its labels
// output uses and its metadata reports.
func TestCascadeThreshold(t *testing.T) {
	q, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := newModel(t, "a", "", gateway.ModeLabel, q)
	defer a.Close()
	for _, tc := range []struct{ set, want float64 }{{0, gateway.DefaultThreshold}, {0.9, 0.9}} {
		c, err := gateway.NewCascade(gateway.CascadeOptions{Name: "c", Threshold: tc.set,
			Stages: []gateway.CascadeStage{{Servable: a, MinConfidence: 0.9}, {Servable: a}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Scoring().Threshold; got != tc.want {
			t.Errorf("threshold %v: scoring says %v, want %v", tc.set, got, tc.want)
		}
	}
}
