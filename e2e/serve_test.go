package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/protocol"
)

const (
	seedV1 = `{"instances": ["Hello, my dog is cute", "I am feeling sad"]}`
	seedV2 = `{"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["Hello, my dog is cute", "I am feeling sad"]}]}`
)

// reference loads a model folder's reference.json (dir relative to the repo).
func reference(t *testing.T, dir string) backendtest.Reference {
	t.Helper()
	ref, err := backendtest.LoadReference(filepath.Join("..", dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// argmaxOf is the label transformers' logits give.
func argmaxOf(l []float64) int64 {
	best := 0
	for j := range l {
		if l[j] > l[best] {
			best = j
		}
	}
	return int64(best)
}

// TestSeedExamples runs the seed's curl bodies against configs/local.yaml,
// over real HTTP, against two models by name; checks every reference text's
// logits; then SIGTERM must give a clean exit.
func TestSeedExamples(t *testing.T) {
	p := start(t, "serve", "--config", "configs/local.yaml")
	p.waitReady(30 * time.Second)

	for _, m := range []struct{ name, dir string }{{"distilbert", "models/demo-sentiment"}, {"sentiment3", "testdata/models/sentiment3-tiny"}} {
		ref := reference(t, m.dir)
		want := []int64{argmaxOf(ref.Texts[0].Logits), argmaxOf(ref.Texts[1].Logits)}

		// Seed V1 body with the typed label output (sentiment3's default is raw strings).
		status, body := post(t, p.URL+"/v1/models/"+m.name+":predict", strings.Replace(seedV1, "}", `, "parameters": {"output": "label"}}`, 1))
		var v1 struct{ Predictions []int64 }
		if status != 200 || json.Unmarshal(body, &v1) != nil || len(v1.Predictions) != 2 || v1.Predictions[0] != want[0] || v1.Predictions[1] != want[1] {
			t.Errorf("%s V1: %d %s, want predictions %v", m.name, status, body, want)
		}

		// Seed V2 body, asking for labels and logits.
		status, body = post(t, p.URL+"/v2/models/"+m.name+"/infer", strings.Replace(seedV2, `]}]}`, `]}], "outputs": [{"name": "label"}, {"name": "logits"}]}`, 1))
		var v2 protocol.InferResponse
		if status != 200 || json.Unmarshal(body, &v2) != nil || len(v2.Outputs) != 2 {
			t.Fatalf("%s V2: %d %s", m.name, status, body)
		}
		if v2.ModelName != m.name || v2.ID == "" {
			t.Errorf("%s V2: model_name %q id %q", m.name, v2.ModelName, v2.ID)
		}

		// Every reference text in one batch: logits within 1e-4 of transformers.
		texts, _ := json.Marshal(ref.TextList())
		status, body = post(t, p.URL+"/v1/models/"+m.name+":predict", `{"instances": `+string(texts)+`, "parameters": {"output": "logits"}}`)
		var logits struct{ Predictions [][]float32 }
		if status != 200 || json.Unmarshal(body, &logits) != nil {
			t.Fatalf("%s logits: %d %s", m.name, status, body)
		}
		worst := 0.0
		for i, rt := range ref.Texts {
			worst = max(worst, backendtest.MaxAbsDiff(logits.Predictions[i], rt.Logits))
		}
		t.Logf("%s: max |logit - transformers| over %d texts = %.3g", m.name, len(ref.Texts), worst)
		if worst > backendtest.RefTolerance {
			t.Errorf("%s: logits differ from reference by %.3g", m.name, worst)
		}
	}

	// The seed's answers, exactly as the KServe docs show them: the demo
	// model has learned that a cute dog is positive and sadness negative.
	_, body := post(t, p.URL+"/v1/models/distilbert:predict", seedV1)
	if got, want := string(body), `{"predictions":[1,0]}`; got != want {
		t.Errorf("seed V1: %s, want %s", got, want)
	}
	// Without the cache, byte for byte what KServe answers (id aside).
	req, _ := http.NewRequest("POST", p.URL+"/v2/models/distilbert/infer", strings.NewReader(seedV2))
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), `{"model_name":"distilbert","model_version":null,"id":"`) ||
		!strings.HasSuffix(string(body), `"parameters":null,"outputs":[{"name":"output-0","shape":[2],"datatype":"INT64","parameters":null,"data":[1,0]}]}`) ||
		resp.Header.Get("X-Chorus-Cache") != "" {
		t.Errorf("seed V2 without the cache: %s", body)
	}
	// With it (the default LRU), the same outputs and what the cache did.
	_, body = post(t, p.URL+"/v2/models/distilbert/infer", seedV2)
	if !strings.HasSuffix(string(body), `"parameters":{"cache_hits":2},"outputs":[{"name":"output-0","shape":[2],"datatype":"INT64","parameters":null,"data":[1,0]}]}`) {
		t.Errorf("seed V2 from the cache: %s", body)
	}

	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if !strings.Contains(p.output(), "msg=stopped") {
		t.Errorf("no clean-stop log line")
	}
}

// KServe users swap their command line: the Hugging Face server's flags.
func TestKServeFlags(t *testing.T) {
	p := start(t, "--model_name", "distilbert", "--model_dir", "testdata/models/sst2-tiny-b", "--return_probabilities", "--max_length", "128")
	p.waitReady(30 * time.Second)
	status, body := post(t, p.URL+"/v2/models/distilbert/infer", seedV2)
	var v2 protocol.InferResponse
	if status != 200 || json.Unmarshal(body, &v2) != nil {
		t.Fatalf("%d %s", status, body)
	}
	data, _ := json.Marshal(v2.Outputs[0].Data)
	if v2.Outputs[0].Datatype != "BYTES" || !strings.HasPrefix(string(data), `["{0: 0.`) {
		t.Errorf("want KServe probability strings, got %s", body)
	}
	if code := p.stop(syscall.SIGINT, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT", code)
	}
}

func TestStartupErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"missing ORT library", []string{"serve", "--config", "configs/local.yaml", "--ort-lib", "/nonexistent/libonnxruntime.so.1", "--http_port", "0"},
			1, []string{"/nonexistent/libonnxruntime.so.1", "make deps"}},
		{"bad config", []string{"serve", "--config", "gateway/config/testdata/unknown-key.bad.yaml"},
			1, []string{"models[sst2].replicas[0].modeldir: unknown field"}},
		{"nothing to serve", []string{"serve"}, 2, []string{"nothing to serve"}},
		{"unknown flag", []string{"serve", "--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{"half of the KServe flags", []string{"--model_name", "x", "--model_dir", "a", "--model_id", "b/c"}, 2, []string{"--model_name goes with exactly one of --model_dir, --model_id, --storage_uri"}},
		{"KServe's default model_dir", []string{"--model_name", "x"}, 1, []string{"/mnt/models"}},
		{"KServe task Chorus does not serve", []string{"--model_name", "x", "--model_dir", "testdata/models/sst2-tiny-a", "--task", "text_generation"}, 2, []string{"sequence_classification only"}},
		{"validate good", []string{"validate", "--config", "configs/local.yaml"}, 0, []string{"configs/local.yaml: ok (9 models)"}},
		{"validate bad", []string{"validate", "--config", "gateway/config/testdata/duplicate.bad.yaml"}, 1, []string{`duplicate model name "sst2"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := runCmd(t, c.args...)
			if code != c.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Errorf("output shows a panic:\n%s", out)
			}
		})
	}
}
