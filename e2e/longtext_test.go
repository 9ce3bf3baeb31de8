package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

// longDocument is a review whose only sentiment-bearing sentence comes
// after the first 512 tokens (about 578 tokens: 18 units of 32; two windows of 512 sharing 256): filler
// with no sentiment words, which the demo model reads as leaning positive,
// then one negative sentence. (Filler of plain sentences alone it reads as
// firmly negative; this mix keeps every filler window near neutral, so that
// averaging does not drown the one sentence that matters.)
func longDocument() (filler, doc string) {
	filler = strings.Repeat(strings.Repeat("the the the the. ", 5)+"The film runs for two hours. ", 18)
	return filler, filler + "The ending was terrible."
}

// TestLongTextChunk serves the demo model truncating (as today) and in
// windows, and checks that the long document is classified on its ending
// only in chunk mode: NEGATIVE, where truncation answers from the filler
// alone (its logits are the filler's) and says POSITIVE; in chunk mode the
// filler alone is POSITIVE too, so it is the ending that decides. Windows per text
// come back in V1 and V2 parameters and /metrics; the second request is a
// cache hit with the same answer.
func TestLongTextChunk(t *testing.T) {
	root := proctest.Root()
	cfg := filepath.Join(t.TempDir(), "registry.yaml")
	demo := filepath.Join(root, "models/demo-sentiment")
	yaml := fmt.Sprintf(`models:
  - name: cut
    replicas: [{type: onnx, model_dir: %q}]
  - name: whole
    long_text: {mode: chunk, window: 512, stride: 256}
    replicas: [{type: onnx, model_dir: %q}]
  - name: whole-kserve
    long_text: {mode: chunk, window: 512, stride: 256}
    return_probabilities: true
    replicas: [{type: onnx, model_dir: %q}]
`, demo, demo, demo)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "serve", "--config", cfg)
	p.waitReady(30 * time.Second)
	filler, doc := longDocument()
	texts := []string{doc, filler, "I am feeling sad"}

	type answer struct {
		labels     []int
		logits     []float64
		parameters map[string]any
		cache      string
	}
	v2 := func(model string) answer {
		t.Helper()
		r := inferV2(t, p.URL, model, texts, "label", "logits")
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", model, r.status)
		}
		a := answer{parameters: r.params, cache: r.header.Get("X-Chorus-Cache")}
		_ = json.Unmarshal(r.outputs["label"], &a.labels)
		_ = json.Unmarshal(r.outputs["logits"], &a.logits)
		return a
	}

	cut, whole := v2("cut"), v2("whole")
	t.Logf("truncate: labels %v logits %v", cut.labels, cut.logits)
	t.Logf("chunk:    labels %v logits %v parameters %v", whole.labels, whole.logits, whole.parameters)
	// Truncated, the document is its filler: the ending never reached the model.
	if !slices.Equal(cut.logits[0:2], cut.logits[2:4]) {
		t.Errorf("truncated document %v differs from its filler %v: the ending is within the first 512 tokens", cut.logits[0:2], cut.logits[2:4])
	}
	if cut.labels[0] != 1 {
		t.Errorf("truncate mode: label %d, want 1 (POSITIVE, from the filler)", cut.labels[0])
	}
	if whole.labels[0] != 0 || whole.labels[1] != 1 {
		t.Errorf("chunk mode: labels %v, want 0 for the document (NEGATIVE, from its ending) and 1 for its filler alone", whole.labels[:2])
	}
	// A short text is one window, scored exactly as when truncating.
	if whole.labels[2] != 0 || !slices.Equal(whole.logits[4:6], cut.logits[4:6]) {
		t.Errorf("short text: chunk %v, truncate %v", whole.logits[4:6], cut.logits[4:6])
	}
	if whole.parameters["windows"] != "2,2,1" || whole.parameters["windows_total"] != 5.0 {
		t.Errorf("windows parameters %v, want 2,2,1 and 5", whole.parameters)
	}
	if _, ok := cut.parameters["windows"]; ok {
		t.Errorf("a truncating model reports windows: %v", cut.parameters)
	}
	again := v2("whole")
	if again.cache != "hit" || !slices.Equal(again.logits, whole.logits) || again.parameters["windows"] != "2,2,1" {
		t.Errorf("second request: cache %q logits %v parameters %v", again.cache, again.logits, again.parameters)
	}

	instances, _ := json.Marshal(texts)
	status, b := post(t, p.URL+"/v1/models/whole:predict", fmt.Sprintf(`{"instances": %s}`, instances))
	var v1 struct {
		Predictions []int
		Parameters  struct{ Windows []int }
	}
	if err := json.Unmarshal(b, &v1); err != nil || status != 200 {
		t.Fatalf("V1: %d %s", status, b)
	}
	if !slices.Equal(v1.Predictions, []int{0, 1, 0}) || !slices.Equal(v1.Parameters.Windows, []int{2, 2, 1}) {
		t.Errorf("V1: %s", b)
	}
	// KServe's --return_probabilities strings of a chunked model are those
	// of its combined logits, as KServe's Python server writes them.
	r := inferV2(t, p.URL, "whole-kserve", texts)
	var strs []string
	if err := json.Unmarshal(r.outputs["output-0"], &strs); err != nil || r.status != 200 || len(strs) != len(texts) {
		t.Fatalf("KServe strings: %d %s", r.status, r.outputs["output-0"])
	}
	for i := range texts {
		pr := calibration.Softmax(whole.logits[2*i:2*i+2], 1)
		if want := protocol.PyDict([]float32{float32(pr[0]), float32(pr[1])}, protocol.PyRound4); strs[i] != want {
			t.Errorf("text %d: KServe string %q, want %q", i, strs[i], want)
		}
	}
	_, m := getURL(t, p.URL+"/metrics")
	if !strings.Contains(string(m), `chorus_long_text_windows_sum{model="whole"} 15`) {
		t.Errorf("/metrics: no chorus_long_text_windows_sum 15 for whole (3 requests × 5 windows)")
	}

	// Windows are cached too, and a request scores each distinct window
	// once: the first request ran 4 windows for 5 (the document and its
	// filler share their first), the cache hits after it ran none, and the
	// document with another ending runs only its last window.
	rows := func() string {
		_, m := getURL(t, p.URL+"/metrics")
		for _, line := range strings.Split(string(m), "\n") {
			if strings.HasPrefix(line, `chorus_batch_size_sum{model="whole"}`) {
				return strings.Fields(line)[1]
			}
		}
		return ""
	}
	before := rows()
	status, b = post(t, p.URL+"/v1/models/whole:predict", fmt.Sprintf(`{"instances": [%q]}`, filler+"The ending was wonderful."))
	if status != 200 {
		t.Fatalf("edited document: %d %s", status, b)
	}
	if after := rows(); before != "4" || after != "5" {
		t.Errorf("windows run: %s before the edited document, %s after; want 4 then 5 (its first window from the cache)", before, after)
	}

	// Cache-Control: no-cache covers the windows too: another ending sent
	// with it runs both its windows (its first, the filler's, is cached
	// but not read) and stores neither; sent again without it, it runs
	// only its last window (the first from the cache, the last never
	// written), where reading or writing under no-cache would run 1 and 0.
	awful := fmt.Sprintf(`{"instances": [%q]}`, filler+"The ending was awful.")
	req, err := http.NewRequest(http.MethodPost, p.URL+"/v1/models/whole:predict", strings.NewReader(awful))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("no-cache document: %d", resp.StatusCode)
	}
	noCache := rows()
	if status, b = post(t, p.URL+"/v1/models/whole:predict", awful); status != 200 {
		t.Fatalf("the same document, cached: %d %s", status, b)
	}
	if cached := rows(); noCache != "7" || cached != "8" {
		t.Errorf("windows run: %s after the no-cache document, %s after it again with the cache; want 7 (both windows) then 8 (its last)", noCache, cached)
	}
}
