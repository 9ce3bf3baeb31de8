package gateway_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/backends/onnx/onnxtest"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/pool"
	"github.com/chorusml/chorus/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// rt is the process's one ONNX Runtime environment: the handlers are tested
// against real models, not fakes.
var rt *onnx.Runtime

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(onnxtest.Main(m, func(r *onnx.Runtime) { rt = r }))
}

const models = "../testdata/models"

var testLimits = gateway.Limits{MaxBodyBytes: 64 << 10, MaxInstances: 8, MaxTextChars: 1000}

// serve is a ready server, its log discarded, on a registry of ms that
// closes with the test.
func serve(tb testing.TB, o gateway.ServerOptions, ms []gateway.Servable) *gateway.Server {
	tb.Helper()
	reg, err := gateway.NewRegistry(ms)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = reg.Close() })
	o.Log = slog.New(slog.DiscardHandler)
	srv := gateway.NewServer(o)
	srv.SetRegistry(reg)
	srv.SetReady(true)
	return srv
}

// newServer serves four fixture models, one per output mode and one
// versioned, as configs/local.yaml would.
func newServer(t testing.TB) *gateway.Server {
	t.Helper()
	return newServerWith(t, gateway.CacheOptions{})
}

// newServerWith is newServer with a logits cache.
func newServerWith(t testing.TB, co gateway.CacheOptions) *gateway.Server {
	t.Helper()
	specs := []struct {
		name, dir, version string
		mode               gateway.Mode
	}{
		{"distilbert", "sst2-tiny-a", "", gateway.ModeLabel},
		{"distilbert-probs", "sst2-tiny-b", "", gateway.ModeProbabilities},
		{"raw", "sentiment3-tiny", "", gateway.ModeRawLogits},
		{"bert", "bert-tiny-tt", "3", gateway.ModeLabel},
	}
	var ms []gateway.Servable
	for _, s := range specs {
		p, err := rt.Open(filepath.Join(models, s.dir), onnx.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, newModel(t, s.name, s.version, s.mode, p))
	}
	srv := serve(t, gateway.ServerOptions{Limits: testLimits, Version: "test", Cache: co}, ms)
	return srv
}

// newModel serves predictors as one version (unversioned when version is "").
func newModel(t testing.TB, name, version string, mode gateway.Mode, ps ...protocol.Predictor) *gateway.Model {
	t.Helper()
	var rs []*pool.Replica
	for i, p := range ps {
		rs = append(rs, pool.NewReplica(fmt.Sprint(name, "-", i), 1, p))
	}
	pl, err := pool.New(rs, pool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := gateway.NewModel(gateway.ModelOptions{Name: name, Versions: []*gateway.Version{{Name: version, Pool: pl}}, Scoring: gateway.Scoring{Mode: mode}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func do(srv *gateway.Server, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	return w
}

const (
	seedV1 = `{"instances": ["Hello, my dog is cute", "I am feeling sad"]}`
	seedV2 = `{"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["Hello, my dog is cute", "I am feeling sad"]}]}`
)

type golden struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   string `json:"body,omitempty"`
	Status int    `json:"status"`
	// Response is the exact body, with a generated V2 id replaced by <uuid>.
	Response string `json:"response"`
}

var uuidID = regexp.MustCompile(`"id":"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"`)

func TestGoldens(t *testing.T) {
	srv := newServer(t)
	cases := []struct{ name, method, path, body string }{
		{"v1-predict-seed", "POST", "/v1/models/distilbert:predict", seedV1},
		{"v2-infer-seed", "POST", "/v2/models/distilbert/infer", seedV2},
		{"v1-predict-return-probabilities", "POST", "/v1/models/distilbert-probs:predict", seedV1},
		{"v2-infer-return-probabilities", "POST", "/v2/models/distilbert-probs/infer", seedV2},
		{"v1-predict-disable-postprocess", "POST", "/v1/models/raw:predict", seedV1},
		{"v2-infer-disable-postprocess", "POST", "/v2/models/raw/infer", seedV2},
		{"v1-output-label", "POST", "/v1/models/raw:predict", `{"instances": ["Hello, my dog is cute", "I am feeling sad"], "parameters": {"output": "label"}}`},
		{"v1-output-probabilities", "POST", "/v1/models/distilbert:predict", `{"instances": ["Hello, my dog is cute"], "parameters": {"output": "probabilities"}}`},
		{"v1-output-logits", "POST", "/v1/models/distilbert:predict", `{"instances": ["Hello, my dog is cute"], "parameters": {"output": "logits"}}`},
		{"v1-inputs-spelling", "POST", "/v1/models/distilbert:predict", `{"inputs": ["I am feeling sad"]}`},
		{"v2-typed-outputs", "POST", "/v2/models/raw/infer", `{"id": "req-1", "inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["Hello, my dog is cute", "I am feeling sad"]}], "outputs": [{"name": "label"}, {"name": "probabilities"}, {"name": "logits"}, {"name": "output-0"}]}`},
		{"v2-nested-data", "POST", "/v2/models/distilbert/infer", `{"id": "nested", "inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [["Hello, my dog is cute"], ["I am feeling sad"]]}]}`},
		{"v2-versioned-infer", "POST", "/v2/models/bert/versions/3/infer", `{"id": "v3", "inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["Café DÉJÀ vu"]}]}`},
		{"v1-root", "GET", "/", ""},
		{"v1-list", "GET", "/v1/models", ""},
		{"v1-model-ready", "GET", "/v1/models/distilbert", ""},
		{"v2-server-metadata", "GET", "/v2", ""},
		{"v2-live", "GET", "/v2/health/live", ""},
		{"v2-ready", "GET", "/v2/health/ready", ""},
		{"v2-model-metadata", "GET", "/v2/models/distilbert", ""},
		{"v2-model-metadata-probs", "GET", "/v2/models/distilbert-probs", ""},
		{"v2-model-metadata-versioned", "GET", "/v2/models/bert/versions/3", ""},
		{"v2-model-ready", "GET", "/v2/models/distilbert/ready", ""},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen[c.name+".json"] = true
			w := do(srv, c.method, c.path, c.body)
			body := w.Body.String()
			if !strings.Contains(c.body, `"id"`) {
				body = uuidID.ReplaceAllString(body, `"id":"<uuid>"`)
			}
			got := golden{Method: c.method, Path: c.path, Body: c.body, Status: w.Code, Response: body}
			path := filepath.Join("testdata", "golden", c.name+".json")
			if *update {
				var b bytes.Buffer
				enc := json.NewEncoder(&b)
				enc.SetEscapeHTML(false) // keep <uuid> readable
				enc.SetIndent("", "  ")
				if err := enc.Encode(got); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./gateway -update to create it)", err)
			}
			var want golden
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			if got.Status != want.Status || got.Response != want.Response {
				t.Errorf("%s %s\n got %d %s\nwant %d %s", c.method, c.path, got.Status, got.Response, want.Status, want.Response)
			}
		})
	}
	files, _ := filepath.Glob("testdata/golden/*.json")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s belongs to no test case", f)
		}
	}
}

// The seed's V2 example with and without an id: KServe echoes the id.
func TestV2EchoesRequestID(t *testing.T) {
	srv := newServer(t)
	w := do(srv, "POST", "/v2/models/distilbert/infer", `{"id": "my-id-42", "inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["hi"]}]}`)
	var resp protocol.InferResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.ID != "my-id-42" {
		t.Fatalf("id %q (err %v), want my-id-42: %s", resp.ID, err, w.Body)
	}
	w = do(srv, "POST", "/v2/models/distilbert/infer", seedV2)
	if !uuidID.MatchString(w.Body.String()) {
		t.Fatalf("no generated uuid id: %s", w.Body)
	}
}

func TestBadInput(t *testing.T) {
	srv := newServer(t)
	many := `{"instances": [` + strings.Repeat(`"a",`, 8) + `"a"]}`
	long := `{"instances": ["` + strings.Repeat("x", 1001) + `"]}`
	huge := `{"instances": ["` + strings.Repeat("x", 70<<10) + `"]}`
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"malformed json", "POST", "/v1/models/distilbert:predict", `{"instances": [`, 400, "malformed JSON"},
		{"empty body", "POST", "/v1/models/distilbert:predict", ``, 400, "empty request body"},
		{"json not object", "POST", "/v1/models/distilbert:predict", `["a"]`, 400, "malformed JSON"},
		{"missing instances", "POST", "/v1/models/distilbert:predict", `{"text": "hi"}`, 400, `missing "instances"`},
		{"instances not list", "POST", "/v1/models/distilbert:predict", `{"instances": "hi"}`, 400, "malformed JSON"},
		{"non-string instance", "POST", "/v1/models/distilbert:predict", `{"instances": ["ok", 3]}`, 400, "instances[1] is a number, want a string"},
		{"null instance", "POST", "/v1/models/distilbert:predict", `{"instances": [null]}`, 400, "instances[0] is null"},
		{"object instance", "POST", "/v1/models/distilbert:predict", `{"instances": [{"txt": "hi"}]}`, 400, `instances[0] has key "txt"`},
		{"empty instances", "POST", "/v1/models/distilbert:predict", `{"instances": []}`, 400, `"instances" is empty`},
		{"bad v1 output", "POST", "/v1/models/distilbert:predict", `{"instances": ["a"], "parameters": {"output": "embedding"}}`, 400, `parameters.output "embedding"`},
		{"v1 output not string", "POST", "/v1/models/distilbert:predict", `{"instances": ["a"], "parameters": {"output": 1}}`, 400, "parameters.output is a number"},
		{"unknown v1 verb", "POST", "/v1/models/distilbert:generate", seedV1, 404, "no route"},
		{"v1 explain without explainer", "POST", "/v1/models/distilbert:explain", seedV1, 501, "has no explainer"},
		{"v1 explain unknown model", "POST", "/v1/models/nope:explain", seedV1, 404, `model not found: "nope"`},
		{"unknown model v1", "POST", "/v1/models/nope:predict", seedV1, 404, `model not found: "nope"`},
		{"unknown model v1 ready", "GET", "/v1/models/nope", "", 404, "model not found"},
		{"missing inputs", "POST", "/v2/models/distilbert/infer", `{"id": "x"}`, 400, `missing "inputs"`},
		{"two inputs", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "a", "shape": [1], "datatype": "BYTES", "data": ["x"]}, {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["y"]}]}`, 400, "exactly one"},
		{"wrong datatype", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [1], "datatype": "FP32", "data": [1.0]}]}`, 400, `datatype "FP32" is not supported`},
		{"shape mismatch", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [3], "datatype": "BYTES", "data": ["a", "b"]}]}`, 400, "shape [3] holds 3 elements, data has 2"},
		{"negative shape", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [-2], "datatype": "BYTES", "data": ["a"]}]}`, 400, "negative dimension"},
		{"two open dimensions", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [-1, -1], "datatype": "BYTES", "data": ["a"]}]}`, 400, "more than one -1"},
		{"binary size without header", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 5}}]}`, 400, "Inference-Header-Content-Length"},
		{"missing shape", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "datatype": "BYTES", "data": ["a"]}]}`, 400, "missing shape"},
		{"missing data", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES"}]}`, 400, `missing "data"`},
		{"non-string data", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["a", 2]}]}`, 400, "data[1] is a number"},
		{"data not list", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": "a"}]}`, 400, "want an array of strings"},
		{"empty v2 batch", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [0], "datatype": "BYTES", "data": []}]}`, 400, "is empty"},
		{"unknown output", "POST", "/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["a"]}], "outputs": [{"name": "embedding"}]}`, 400, `unknown output "embedding"`},
		{"id not string", "POST", "/v2/models/distilbert/infer", `{"id": 7, "inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["a"]}]}`, 400, "malformed JSON"},
		{"unknown model v2", "POST", "/v2/models/nope/infer", seedV2, 404, "model not found"},
		{"unknown model metadata", "GET", "/v2/models/nope", "", 404, "model not found"},
		{"unknown version", "POST", "/v2/models/bert/versions/9/infer", seedV2, 404, `"bert" has no version "9"`},
		{"version of unversioned", "GET", "/v2/models/distilbert/versions/1/ready", "", 404, "has no version"},
		{"too many instances", "POST", "/v1/models/distilbert:predict", many, 413, "9 texts in one request, the limit is 8"},
		{"text too long", "POST", "/v1/models/distilbert:predict", long, 413, "text 0 has 1001 characters, the limit is 1000"},
		{"body too large", "POST", "/v2/models/distilbert/infer", huge, 413, "request body larger than 65536 bytes"},
		{"unknown route", "GET", "/v3/models", "", 404, "no route GET /v3/models"},
		{"wrong method", "DELETE", "/v2/models/distilbert/infer", "", 405, "method DELETE not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := do(srv, c.method, c.path, c.body)
			if w.Code != c.status {
				t.Errorf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			var e protocol.ErrorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatalf("body is not JSON: %q", w.Body)
			}
			if !strings.Contains(e.Error, c.want) {
				t.Errorf("error %q does not contain %q", e.Error, c.want)
			}
		})
	}
}

// No input, however odd, may produce a 5xx: throw mutated seeds at both routes.
func TestNoInputYields5xx(t *testing.T) {
	srv := newServer(t)
	seeds := []string{seedV1, seedV2, `{"instances": ["x"], "parameters": null}`, `{"inputs": [{"shape": [1], "datatype": "BYTES", "data": [["a", ["b"]]]}]}`}
	var bodies []string
	for _, s := range seeds {
		for i := 0; i <= len(s); i++ {
			bodies = append(bodies, s[:i], s[:i]+"}", s[i:])
		}
		bodies = append(bodies, strings.ReplaceAll(s, `"`, `'`), strings.ReplaceAll(s, "[", "{"), strings.ReplaceAll(s, "2", "-2"), strings.ReplaceAll(s, "2", "99999999999999999999"))
	}
	for _, b := range bodies {
		for _, path := range []string{"/v1/models/distilbert:predict", "/v2/models/raw/infer"} {
			w := do(srv, "POST", path, b)
			if w.Code >= 500 {
				t.Errorf("POST %s %q: status %d %s", path, b, w.Code, w.Body)
			}
			if !json.Valid(w.Body.Bytes()) {
				t.Errorf("POST %s %q: body not JSON: %q", path, b, w.Body)
			}
		}
	}
}

// Draining: readiness answers 503 so that load balancers stop sending, but
// requests that still arrive are served, not dropped.
func TestNotReady(t *testing.T) {
	srv := newServer(t)
	srv.SetReady(false)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v2/health/ready", ""},
		{"GET", "/v2/models/distilbert/ready", ""},
		{"GET", "/v1/models/distilbert", ""},
	} {
		w := do(srv, c.method, c.path, c.body)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s %s: %d (Retry-After %q), want 503 with Retry-After", c.method, c.path, w.Code, w.Header().Get("Retry-After"))
		}
	}
	if w := do(srv, "POST", "/v1/models/distilbert:predict", seedV1); w.Code != http.StatusOK {
		t.Errorf("predict while draining: %d, want 200 (accepted requests are served)", w.Code)
	}
	if w := do(srv, "GET", "/v2/health/live", ""); w.Code != http.StatusOK {
		t.Errorf("liveness %d while not ready, want 200", w.Code)
	}
	// Not loaded at all.
	empty := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: testLimits, Version: "test"})
	if w := do(empty, "POST", "/v1/models/distilbert:predict", seedV1); w.Code != 503 || !bytes.Contains(w.Body.Bytes(), []byte("still loading")) {
		t.Errorf("before loading: %d %s", w.Code, w.Body)
	}
}
