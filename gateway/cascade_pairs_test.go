package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/gateway"
)

// pairCascade is a cascade of two stages of one pair model: the model at
// temperature 2 (stage "<name>-t2") in front of the model itself, with a
// threshold between the two middle calibrated confidences of the first
// stage on the reference pairs, so that about half stay with it.
type pairCascade struct {
	name      string
	ref       backendtest.Reference
	act       calibration.Activation
	wantStage []string
	want      [][]float64 // the answering stage's calibrated logits
}

func newPairCascades(t *testing.T) (*gateway.Server, []pairCascade) {
	t.Helper()
	var ms []gateway.Servable
	var cs []pairCascade
	for _, name := range pairModels {
		c := pairCascade{name: name}
		var err error
		dir := filepath.Join(models, name)
		if c.ref, err = backendtest.LoadReference(filepath.Join(dir, "reference.json")); err != nil {
			t.Fatal(err)
		}
		c.act = calibration.Activation(c.ref.Activation)
		p, err := rt.Open(dir, onnx.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		raw := newModel(t, name, "", gateway.ModeLabel, p)
		hot, err := gateway.NewModel(gateway.ModelOptions{Name: name + "-t2", Versions: raw.Versions(), Scoring: gateway.Scoring{Temperature: 2}})
		if err != nil {
			t.Fatal(err)
		}
		var conf []float64
		for _, r := range c.ref.Pairs {
			conf = append(conf, slices.Max(calibration.Scores(c.act, r.Logits, 2)))
		}
		sorted := slices.Clone(conf)
		sort.Float64s(sorted)
		thr := (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		for i, r := range c.ref.Pairs {
			if conf[i] >= thr {
				half := make([]float64, len(r.Logits))
				for j, v := range r.Logits {
					half[j] = v / 2
				}
				c.wantStage, c.want = append(c.wantStage, hot.Name()), append(c.want, half)
			} else {
				c.wantStage, c.want = append(c.wantStage, name), append(c.want, r.Logits)
			}
		}
		casc, err := gateway.NewCascade(gateway.CascadeOptions{Name: "cascade-" + name,
			Stages: []gateway.CascadeStage{{Servable: hot, MinConfidence: thr}, {Servable: raw}}})
		if err != nil {
			t.Fatal(err)
		}
		ms, cs = append(ms, raw, hot, casc), append(cs, c)
	}
	// A remote whose server would misread pairs (KServe's own logits):
	// never asked, even with on_stage_failure next.
	k, err := kserve.New(kserve.Config{URL: "http://127.0.0.1:1", Model: "m", Protocol: "v2", Logits: kserve.LogitsKServe,
		Labels: ms[0].Metadata().Labels})
	if err != nil {
		t.Fatal(err)
	}
	textOnly := newModel(t, "text-only", "", gateway.ModeLabel, k)
	mixed, err := gateway.NewCascade(gateway.CascadeOptions{Name: "mixed", SkipFailed: true,
		Stages: []gateway.CascadeStage{{Servable: textOnly, MinConfidence: 0.5}, {Servable: ms[0]}}})
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, textOnly, mixed)
	srv := serve(t, gateway.ServerOptions{Limits: headLimits, Version: "test", Cache: gateway.CacheOptions{Store: cache.NewLRU(1000, time.Hour)}}, ms)
	return srv, cs
}

// TestCascadePairs: a cascade of pair models answers text pairs stage by
// stage, on V2 ([n, 2]) and V1: each pair with the first stage's
// calibrated logits (transformers' logits / 2) where its calibrated
// confidence reaches the threshold, else with the second stage's, and says
// which stage answered; the stages' caches answer a repeat. A cascade with
// a stage that takes no pairs refuses them with a 400 naming it.
func TestCascadePairs(t *testing.T) {
	srv, cs := newPairCascades(t)
	for _, c := range cs {
		pairs := c.ref.PairList()
		counts := map[string]int{}
		for _, s := range c.wantStage {
			counts[s]++
		}
		if len(counts) != 2 {
			t.Fatalf("%s: the threshold sends every pair one way: %v", c.name, counts)
		}
		k := len(c.want[0])
		body := strings.Replace(v2PairBody(pairs, "logits"), `"outputs": [{"name": "logits"}]`, `"outputs": [{"name": "logits"}, {"name": "stage"}]`, 1)
		w := do(srv, "POST", "/v2/models/cascade-"+c.name+"/infer", body)
		if w.Code != 200 {
			t.Fatalf("%s V2: %d %s", c.name, w.Code, w.Body)
		}
		var ans v2Answer
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
			t.Fatal(err)
		}
		var flat []float64
		var stages []string
		ans.output(t, "logits", &flat)
		ans.output(t, "stage", &stages)
		if !slices.Equal(stages, c.wantStage) {
			t.Errorf("%s V2: stages %v, want %v", c.name, stages, c.wantStage)
		}
		rows := make([][]float64, len(pairs))
		for i := range rows {
			rows[i] = flat[i*k : (i+1)*k]
		}
		backendtest.CheckRows(t, c.name+" cascade V2 [n, 2]", rows, refRows(c.want))
		hot := c.name + "-t2"
		wantCounts := fmt.Sprintf("%s=%d,%s=%d", hot, counts[hot], c.name, counts[c.name])
		if ans.Parameters["stage_counts"] != wantCounts || ans.Parameters["stage_"+c.name] != float64(counts[c.name]) {
			t.Errorf("%s V2 parameters %v, want stage_counts %s", c.name, ans.Parameters, wantCounts)
		}

		// V1, pairs as [a, b]: the same answers, all from the stages' caches.
		w = do(srv, "POST", "/v1/models/cascade-"+c.name+":predict", v1PairBody(pairs, false, `"output": "logits"`))
		var v1 struct {
			Predictions [][]float64
			Parameters  struct {
				StageCounts map[string]int `json:"stage_counts"`
				Stages      []string
			}
		}
		if err := json.Unmarshal(w.Body.Bytes(), &v1); err != nil || w.Code != 200 {
			t.Fatalf("%s V1: %d %s", c.name, w.Code, w.Body)
		}
		backendtest.CheckRows(t, c.name+" cascade V1", v1.Predictions, refRows(c.want))
		if !slices.Equal(v1.Parameters.Stages, c.wantStage) || v1.Parameters.StageCounts[hot] != counts[hot] {
			t.Errorf("%s V1 parameters %+v", c.name, v1.Parameters)
		}
		if h := w.Header().Get("X-Chorus-Cache"); h != "hit" {
			t.Errorf("%s V1 repeat: X-Chorus-Cache %q, want hit", c.name, h)
		}
	}

	pairs := cs[0].ref.PairList()[:2]
	for _, w := range []*httptest.ResponseRecorder{
		do(srv, "POST", "/v2/models/mixed/infer", v2PairBody(pairs, "logits")),
		do(srv, "POST", "/v1/models/mixed:predict", v1PairBody(pairs, true, "")),
	} {
		if w.Code != 400 || !strings.Contains(w.Body.String(), `stage \"text-only\" does not score text pairs`) {
			t.Errorf("pairs to a cascade with a text-only stage: %d %s, want 400 naming the stage", w.Code, w.Body)
		}
	}
}

// refRows wraps rows as reference rows for checkPairLogits.
func refRows(rows [][]float64) []backendtest.RefText {
	out := make([]backendtest.RefText, len(rows))
	for i, r := range rows {
		out[i].Logits = r
	}
	return out
}

// TestCascadeTruncation: a cascade says which inputs its answering stages
// cut, at the request's indices (not the stage's sub-batch's). Both stages
// are a model that takes 16 tokens; the first keeps only the text it is
// surest of, so the cut texts after it reach the second stage shifted.
func TestCascadeTruncation(t *testing.T) {
	p, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{MaxLength: 16})
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("movie ", 40) // cut to other tokens than long
	texts := []string{"short", long, other, "also short"}
	raw, err := p.Predict(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	sure, best := 0, 0.0
	for i, r := range raw {
		if c := slices.Max(calibration.Softmax(r, 2)); c > best {
			sure, best = i, c
		}
	}
	if sure > 0 {
		texts[0], texts[sure] = texts[sure], texts[0] // the surest text first: the others shift
	}
	cut := []int{}
	for i, s := range texts {
		if s == long || s == other {
			cut = append(cut, i)
		}
	}
	m := newModel(t, "m", "", gateway.ModeLabel, p)
	hot, err := gateway.NewModel(gateway.ModelOptions{Name: "m-t2", Versions: m.Versions(), Scoring: gateway.Scoring{Temperature: 2}})
	if err != nil {
		t.Fatal(err)
	}
	casc, err := gateway.NewCascade(gateway.CascadeOptions{Name: "c", Stages: []gateway.CascadeStage{{Servable: hot, MinConfidence: best - 1e-6}, {Servable: m}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, gateway.ServerOptions{Limits: headLimits, Version: "test", Cache: gateway.CacheOptions{Store: cache.NewLRU(100, time.Hour)}}, []gateway.Servable{m, hot, casc})
	want := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(cut)), ","), "[]")
	for i := range 2 { // scored, then from the stages' caches
		var ans v2Answer
		w := do(srv, "POST", "/v2/models/c/infer", v2Body(texts, "stage"))
		if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil || w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var stages []string
		ans.output(t, "stage", &stages)
		if stages[0] != "m-t2" || slices.Contains(stages[1:], "m-t2") {
			t.Fatalf("stages %v: want the first text alone from m-t2", stages)
		}
		if ans.Parameters["truncated"] != float64(len(cut)) || ans.Parameters["truncated_inputs"] != want {
			t.Errorf("request %d: parameters %v, want truncated_inputs %s", i, ans.Parameters, want)
		}
	}
}

// With on_stage_failure next, a stage that refuses an input the request
// made wrong (truncate false, too long) fails the cascade: the next stage,
// with a longer limit, must not answer in its place.
func TestCascadeSkipsOnlyStageFaults(t *testing.T) {
	short, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{MaxLength: 16})
	if err != nil {
		t.Fatal(err)
	}
	full, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newModel(t, "a", "", gateway.ModeLabel, short), newModel(t, "b", "", gateway.ModeLabel, full)
	casc, err := gateway.NewCascade(gateway.CascadeOptions{Name: "c", SkipFailed: true,
		Stages: []gateway.CascadeStage{{Servable: a, MinConfidence: 0.5}, {Servable: b}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, gateway.ServerOptions{Limits: headLimits, Version: "test"}, []gateway.Servable{a, b, casc})
	body := `{"instances": ["` + strings.Repeat("movie ", 40) + `"], "parameters": {"truncate": false}}`
	if w := do(srv, "POST", "/v1/models/c:predict", body); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("too long for stage a with truncate false: %d %s, want 413", w.Code, w.Body)
	}
	if w := do(srv, "POST", "/v1/models/b:predict", body); w.Code != http.StatusOK {
		t.Fatalf("stage b alone: %d %s: the test needs b to take the text", w.Code, w.Body)
	}
}
