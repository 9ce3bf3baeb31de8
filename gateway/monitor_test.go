package gateway_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/pool"
	"github.com/chorusml/chorus/protocol"
)

var monitorTexts = []string{
	"Hello, my dog is cute", "I am feeling sad", "What a wonderful film", "The food was awful",
	"Not bad at all", "I would not go back", "Best day of my life", "It rained all week",
	"The staff were rude", "A quiet, pleasant evening",
}

// monitorServer serves, with metrics and a cache: "temp" (sst2-tiny-a at
// temperature 2, so that served confidence is the calibrated one), "b"
// (sst2-tiny-b) and "ens", their ensemble.
func monitorServer(t *testing.T, mo gateway.MonitorOptions) (*gateway.Server, *prometheus.Registry) {
	t.Helper()
	open := func(dir string) *pool.Pool {
		p, err := rt.Open(filepath.Join(models, dir), onnx.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		pl, err := pool.New([]*pool.Replica{pool.NewReplica(dir, 1, p)}, pool.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return pl
	}
	temp, err := gateway.NewModel(gateway.ModelOptions{Name: "temp", Versions: []*gateway.Version{{Pool: open("sst2-tiny-a")}},
		Scoring: gateway.Scoring{Temperature: 2}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := gateway.NewModel(gateway.ModelOptions{Name: "b", Versions: []*gateway.Version{{Pool: open("sst2-tiny-b")}},
		Scoring: gateway.Scoring{Mode: gateway.ModeProbabilities}})
	if err != nil {
		t.Fatal(err)
	}
	ens, err := gateway.NewEnsemble(gateway.EnsembleOptions{Name: "ens", Combine: "mean_logits",
		Members: []gateway.EnsembleMember{{Model: temp, Weight: 1}, {Model: b, Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := gateway.NewRegistry([]gateway.Servable{temp, b, ens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	reg := prometheus.NewRegistry()
	m, err := gateway.NewMetrics(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: testLimits,
		Metrics: m, Gatherer: reg, Cache: gateway.CacheOptions{Store: cache.NewLRU(100, time.Hour)}, Monitoring: mo})
	srv.SetRegistry(r)
	srv.SetReady(true)
	return srv, reg
}

// v2Calibrated answers texts over V2 under id and returns the calibrated
// logits and probabilities served.
func v2Calibrated(t *testing.T, srv *gateway.Server, model, id string, texts []string) (cal, probs [][]float64) {
	t.Helper()
	data, _ := json.Marshal(texts)
	body := fmt.Sprintf(`{"id": %q, "inputs": [{"name": "input-0", "shape": [%d], "datatype": "BYTES", "data": %s}],
		"outputs": [{"name": "calibrated_logits"}, {"name": "probabilities"}]}`, id, len(texts), data)
	w := do(srv, "POST", "/v2/models/"+model+"/infer", body)
	if w.Code != 200 {
		t.Fatalf("%s: %d %s", model, w.Code, w.Body)
	}
	var resp struct {
		ID      string `json:"id"`
		Outputs []struct {
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.ID != id {
		t.Fatalf("%v, id %q: %s", err, resp.ID, w.Body)
	}
	unflat := func(i int) [][]float64 {
		k := resp.Outputs[i].Shape[1]
		var out [][]float64
		for r := range len(texts) {
			out = append(out, asFloat32(resp.Outputs[i].Data[r*k:(r+1)*k]))
		}
		return out
	}
	return unflat(0), unflat(1)
}

// v1Calibrated answers texts over V1 under X-Request-Id id and returns the
// calibrated logits served.
func v1Calibrated(t *testing.T, srv *gateway.Server, model, id string, texts []string) [][]float64 {
	t.Helper()
	data, _ := json.Marshal(texts)
	w := doH(srv, "POST", "/v1/models/"+model+":predict", fmt.Sprintf(`{"instances": %s, "parameters": {"output": "calibrated_logits"}}`, data),
		map[string]string{"X-Request-Id": id, "Content-Type": "application/json"})
	if w.Code != 200 || w.Header().Get("X-Request-Id") != id {
		t.Fatalf("%s: %d %s", model, w.Code, w.Body)
	}
	var resp struct{ Predictions [][]float64 }
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	for i, row := range resp.Predictions {
		resp.Predictions[i] = asFloat32(row)
	}
	return resp.Predictions
}

// asFloat32 reads FP32 values back as the float32 the server held: their
// shortest decimal, read as a float64, is another number.
func asFloat32(row []float64) []float64 {
	out := make([]float64, len(row))
	for j, v := range row {
		out[j] = float64(float32(v))
	}
	return out
}

func feedback(t *testing.T, srv *gateway.Server, model, body string, want int) map[string]any {
	t.Helper()
	w := do(srv, "POST", "/v2/models/"+model+"/feedback", body)
	if w.Code != want {
		t.Fatalf("feedback %s: %d %s, want %d", body, w.Code, w.Body, want)
	}
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	return out
}

// series finds the metric of family name with label model.
func series(t *testing.T, reg prometheus.Gatherer, name, model string) *dto.Metric {
	t.Helper()
	for _, mf := range mustGather(t, reg) {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "model" && l.GetValue() == model {
					return m
				}
			}
		}
	}
	return nil
}

func gauge(t *testing.T, reg prometheus.Gatherer, name, model string) float64 {
	t.Helper()
	m := series(t, reg, name, model)
	if m == nil {
		t.Fatalf("no %s{model=%q}", name, model)
	}
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

// checkConfidence compares model's chorus_confidence histogram with the
// top-label probabilities served.
func checkConfidence(t *testing.T, reg prometheus.Gatherer, model string, probs [][]float64) {
	t.Helper()
	m := series(t, reg, "chorus_confidence", model)
	if m == nil {
		t.Fatalf("no chorus_confidence{model=%q}", model)
	}
	h := m.GetHistogram()
	sum := 0.0
	top := make([]float64, len(probs))
	for i, p := range probs {
		top[i] = slices.Max(p)
		sum += top[i]
	}
	if h.GetSampleCount() != uint64(len(probs)) || math.Abs(h.GetSampleSum()-sum) > 1e-5 {
		t.Errorf("%s: confidence count %d sum %v, want %d and %v", model, h.GetSampleCount(), h.GetSampleSum(), len(probs), sum)
	}
	for _, b := range h.GetBucket() {
		n := 0
		for _, c := range top {
			if c <= b.GetUpperBound() {
				n++
			}
		}
		if b.GetCumulativeCount() != uint64(n) {
			t.Errorf("%s: bucket le=%v holds %d, want %d (confidences %v)", model, b.GetUpperBound(), b.GetCumulativeCount(), n, top)
		}
	}
}

// checkRolling compares model's rolling gauges with calibration's own
// metrics of the same calibrated logits and labels.
func checkRolling(t *testing.T, reg prometheus.Gatherer, model string, cal [][]float64, labels []int) {
	t.Helper()
	want, err := calibration.Evaluate(cal, labels, 1, 15)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"chorus_rolling_accuracy", want.Accuracy}, {"chorus_rolling_nll", want.NLL},
		{"chorus_rolling_ece", want.ECE}, {"chorus_rolling_window_answers", float64(len(labels))},
	} {
		if got := gauge(t, reg, c.name, model); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s{model=%q} = %v, want %v", c.name, model, got, c.want)
		}
	}
}

// Answers feed the confidence histogram (V1 and V2, models and ensembles,
// cache hits too); labels fed back by request id, V2 id or text move the
// rolling gauges to what calibration computes on the same answers.
func TestConfidenceAndRollingGauges(t *testing.T) {
	srv, reg := monitorServer(t, gateway.MonitorOptions{Window: 6, Remember: 100})
	labels := []int{1, 0, 1, 0, 1, 1, 0, 1}

	// temp: V1 under X-Request-Id, twice (the second from the cache), and
	// V2; the served probabilities are those of the calibrated logits.
	cal1 := v1Calibrated(t, srv, "temp", "req-1", monitorTexts[:4])
	if again := v1Calibrated(t, srv, "temp", "req-1b", monitorTexts[:4]); !slices.EqualFunc(cal1, again, slices.Equal) {
		t.Fatalf("a cached answer differs: %v vs %v", cal1, again)
	}
	cal2, probs2 := v2Calibrated(t, srv, "temp", "v2-temp", monitorTexts[4:8])
	var probsTemp [][]float64
	for range 2 {
		for _, row := range cal1 {
			probsTemp = append(probsTemp, calibration.Softmax(row, 1))
		}
	}
	checkConfidence(t, reg, "temp", append(probsTemp, probs2...))
	calE, probsE := v2Calibrated(t, srv, "ens", "v2-ens", monitorTexts[:8])
	checkConfidence(t, reg, "ens", probsE)
	if series(t, reg, "chorus_rolling_accuracy", "temp") != nil {
		t.Error("rolling gauges before any feedback")
	}

	// Labels by X-Request-Id (index and name), by V2 id, and by text.
	out := feedback(t, srv, "temp", `{"feedback": [{"id": "req-1", "label": 1}, {"id": "req-1", "index": 1, "label": "NEGATIVE"},
		{"id": "v2-temp", "index": 2, "label": 1}, {"text": "Best day of my life", "label": 1}]}`, 200)
	if out["accepted"] != 4.0 || out["duplicates"] != 0.0 {
		t.Errorf("feedback answer %v", out)
	}
	wantCal := [][]float64{cal1[0], cal1[1], cal2[2], cal2[2]} // the text is v2-temp's third
	wantY := []int{1, 0, 1, 1}
	checkRolling(t, reg, "temp", wantCal, wantY)
	if w := out["window"].(map[string]any); w["answers"] != 4.0 {
		t.Errorf("window in the answer: %v", w)
	}

	// A retried batch is not counted twice.
	out = feedback(t, srv, "temp", `{"feedback": [{"id": "req-1", "label": 1}, {"id": "req-1", "label": 1}]}`, 200)
	if out["accepted"] != 0.0 || out["duplicates"] != 2.0 {
		t.Errorf("duplicates: %v", out)
	}
	if got := gauge(t, reg, "chorus_feedback_total", "temp"); got != 4 {
		t.Errorf("feedback_total %v, want 4", got)
	}

	// The window keeps the 6 most recent labelled answers.
	feedback(t, srv, "temp", `{"feedback": [{"id": "req-1", "index": 2, "label": 0}, {"id": "req-1", "index": 3, "label": 0},
		{"id": "v2-temp", "index": 0, "label": 0}, {"id": "v2-temp", "index": 1, "label": 1}]}`, 200)
	wantCal = [][]float64{cal2[2], cal2[2], cal1[2], cal1[3], cal2[0], cal2[1]}
	wantY = []int{1, 1, 0, 0, 0, 1}
	checkRolling(t, reg, "temp", wantCal, wantY)

	// Every text of the ensemble's answer.
	var items []string
	for i, y := range labels {
		items = append(items, fmt.Sprintf(`{"id": "v2-ens", "index": %d, "label": %d}`, i, y))
	}
	feedback(t, srv, "ens", `{"feedback": [`+strings.Join(items[:3], ",")+`]}`, 200)
	feedback(t, srv, "ens", `{"feedback": [`+strings.Join(items[3:], ",")+`]}`, 200)
	checkRolling(t, reg, "ens", calE[2:], labels[2:])
	if got := gauge(t, reg, "chorus_feedback_total", "ens"); got != 8 {
		t.Errorf("ens feedback_total %v, want 8", got)
	}
	if series(t, reg, "chorus_rolling_accuracy", "b") != nil {
		t.Error("rolling gauges for a model without feedback")
	}

	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// Bad feedback gets a clear 4xx and changes nothing.
func TestFeedbackErrors(t *testing.T) {
	srv, reg := monitorServer(t, gateway.MonitorOptions{Window: 10, Remember: 6})
	v2Calibrated(t, srv, "b", "first", monitorTexts[:2])
	long := strings.Repeat("a", testLimits.MaxTextChars+1)
	nine := strings.TrimSuffix(strings.Repeat(`{"text": "x", "label": 0},`, testLimits.MaxInstances+1), ",")
	for _, c := range []struct {
		name, model, body string
		code              int
		msg               string
	}{
		{"unknown id", "b", `{"feedback": [{"id": "nope", "label": 0}]}`, 404, `feedback[0].id: "nope" is not a recent answer of model "b"`},
		{"another model's id", "temp", `{"feedback": [{"id": "first", "label": 0}]}`, 404, "is not a recent answer"},
		{"unknown model", "nope", `{"feedback": [{"text": "x", "label": 0}]}`, 404, "model not found"},
		{"label out of range", "b", `{"feedback": [{"id": "first", "label": 2}]}`, 400, "feedback[0].label: 2 is out of range: the model has 2 labels"},
		{"text label out of range", "b", `{"feedback": [{"text": "x", "label": 7}]}`, 400, "out of range"},
		{"negative label", "b", `{"feedback": [{"text": "x", "label": -1}]}`, 400, "feedback[0].label: -1 is negative"},
		{"unknown label name", "b", `{"feedback": [{"text": "x", "label": "MEH"}]}`, 400, `"MEH" is not one of the model's labels`},
		{"label of another kind", "b", `{"feedback": [{"text": "x", "label": true}]}`, 400, "want a label index or name"},
		{"no label", "b", `{"feedback": [{"text": "x"}]}`, 400, "feedback[0].label: required"},
		{"index out of range", "b", `{"feedback": [{"id": "first", "index": 2, "label": 0}]}`, 400, `request "first" answered 2 texts`},
		{"negative index", "b", `{"feedback": [{"id": "first", "index": -1, "label": 0}]}`, 400, "is negative"},
		{"both id and text", "b", `{"feedback": [{"id": "first", "text": "x", "label": 0}]}`, 400, "give either an id or a text"},
		{"neither", "b", `{"feedback": [{"label": 0}]}`, 400, "give either an id or a text"},
		{"index with a text", "b", `{"feedback": [{"text": "x", "index": 0, "label": 0}]}`, 400, "goes with an id"},
		{"empty id", "b", `{"feedback": [{"id": "", "label": 0}]}`, 400, "feedback[0].id: empty"},
		{"empty batch", "b", `{"feedback": []}`, 400, "at least one item"},
		{"unknown field", "b", `{"feedback": [{"text": "x", "label": 0, "labl": 1}]}`, 400, "unknown field"},
		{"not JSON", "b", `{"feedback": `, 400, "feedback body"},
		{"trailing data", "b", `{"feedback": [{"text": "x", "label": 0}]} {}`, 400, "data after"},
		{"too many items", "b", `{"feedback": [` + nine + `]}`, 413, "the limit is 8"},
		{"text too long", "b", `{"feedback": [{"text": "` + long + `", "label": 0}]}`, 413, "the limit is 1000"},
		{"label out of range on a labelled text", "b", `{"feedback": [{"id": "first", "index": 1, "label": 9}]}`, 400, "out of range"},
		{"one bad item rejects the batch", "b", `{"feedback": [{"id": "first", "label": 0}, {"id": "nope", "label": 0}]}`, 404, "feedback[1].id"},
	} {
		w := do(srv, "POST", "/v2/models/"+c.model+"/feedback", c.body)
		var e protocol.ErrorResponse
		if w.Code != c.code || json.Unmarshal(w.Body.Bytes(), &e) != nil || !strings.Contains(e.Error, c.msg) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, w.Code, w.Body, c.code, c.msg)
		}
	}
	if m := series(t, reg, "chorus_feedback_total", "b"); m != nil && m.GetCounter().GetValue() != 0 {
		t.Errorf("rejected feedback was counted: %v", m.GetCounter().GetValue())
	}
	// The batch that failed on its second item did not take its first.
	if out := feedback(t, srv, "b", `{"feedback": [{"id": "first", "label": 0}]}`, 200); out["accepted"] != 1.0 {
		t.Errorf("after a rejected batch: %v", out)
	}

	// Remember 6 texts: answering 6 more forgets "first" (2 texts).
	v2Calibrated(t, srv, "b", "second", monitorTexts[2:8])
	feedback(t, srv, "b", `{"feedback": [{"id": "second", "index": 5, "label": 1}]}`, 200)
	w := do(srv, "POST", "/v2/models/b/feedback", `{"feedback": [{"id": "first", "index": 1, "label": 0}]}`)
	if w.Code != 404 || !strings.Contains(w.Body.String(), "the gateway remembers the last 6 texts") {
		t.Errorf("evicted id: %d %s", w.Code, w.Body)
	}
}
