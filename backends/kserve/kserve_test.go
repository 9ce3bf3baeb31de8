package kserve_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

const fixture = "testdata/models/sst2-tiny-a"

var labels = []string{"NEGATIVE", "POSITIVE"}

func reference(t *testing.T) backendtest.Reference {
	return backendtest.FixtureReference(t, proctest.Root(), fixture)
}

func backend(t *testing.T, cfg kserve.Config) *kserve.Backend {
	t.Helper()
	if cfg.Labels == nil {
		cfg.Labels = labels
	}
	b, err := kserve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A Chorus predictor process serves the fixture twice: with typed outputs
// (tensor) and as KServe's --disable_postprocess strings (kserve).
func TestContractAgainstChorus(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "predictor.yaml")
	dir := filepath.Join(proctest.Root(), fixture)
	yaml := fmt.Sprintf(`models:
  - name: tensor
    replicas: [{type: onnx, model_dir: %q, intra_op_threads: 1}]
  - name: raw
    disable_postprocess: true
    replicas: [{type: onnx, model_dir: %q, intra_op_threads: 1}]
`, dir, dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, nil, proctest.Chorus(t), "serve", "--config", cfg, "--http_port", "{port}")
	p.WaitReady("/v2/health/ready", 30*time.Second)
	ref := reference(t)
	for _, c := range []struct{ protocol, logits, model string }{
		{"v1", kserve.LogitsTensor, "tensor"},
		{"v2", kserve.LogitsTensor, "tensor"},
		{"v1", kserve.LogitsKServe, "raw"},
		{"v2", kserve.LogitsKServe, "raw"},
	} {
		t.Run(c.protocol+"-"+c.logits, func(t *testing.T) {
			b := backend(t, kserve.Config{URL: p.URL, Model: c.model, Protocol: c.protocol, Logits: c.logits})
			if err := b.Ready(context.Background()); err != nil {
				t.Fatal(err)
			}
			backendtest.Run(t, b, ref)
		})
	}
}

// KServe's own Python ModelServer, with KServe's raw-logit output, as a
// remote predictor. Needs a Python with kserve, onnxruntime and tokenizers:
// `make test` sets CHORUS_KSERVE_PYTHON to its venv.
func TestContractAgainstKServePython(t *testing.T) {
	py := os.Getenv("CHORUS_KSERVE_PYTHON")
	if py == "" {
		t.Skip("CHORUS_KSERVE_PYTHON is unset: run `make test`, or point it at a python with scripts/pyclient/requirements.txt")
	}
	p := proctest.StartOnPort(t, proctest.FreePort(t), nil, py, "scripts/pyclient/kserve_predictor.py", "--model_name", "sst2",
		"--model_dir", fixture, "--disable_postprocess", "--http_port", "{port}")
	p.WaitReady("/v2/models/sst2/ready", 60*time.Second)
	ref := reference(t)
	for _, proto := range []string{"v1", "v2"} {
		t.Run(proto, func(t *testing.T) {
			backendtest.Run(t, backend(t, kserve.Config{URL: p.URL, Model: "sst2", Protocol: proto, Logits: kserve.LogitsKServe}), ref)
		})
	}
}

// Faults, each a real HTTP server behaving badly in one way.
func TestFaults(t *testing.T) {
	texts := []string{"a", "b"}
	okV2 := `{"outputs":[{"name":"output-0","shape":[2],"datatype":"BYTES","data":["{0: 1.0, 1: 2.0}","{0: 3.0, 1: 4.0}"]}]}`
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    error
		text    string
	}{
		{"garbage", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>oops</html>") }, protocol.ErrBadGateway, "not JSON"},
		{"truncated JSON", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, okV2[:40]) }, protocol.ErrBadGateway, "not JSON"},
		{"wrong number of rows", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"outputs":[{"name":"output-0","shape":[1],"datatype":"BYTES","data":["{0: 1.0, 1: 2.0}"]}]}`)
		}, protocol.ErrBadGateway, "got 1 rows of logits for 2 texts"},
		{"wrong number of logits", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"outputs":[{"name":"output-0","shape":[2],"datatype":"BYTES","data":["{0: 1.0, 1: 2.0, 2: 3.0}","{0: 3.0, 1: 4.0, 2: 5.0}"]}]}`)
		}, protocol.ErrBadGateway, "row 0 has 3 logits, want 2"},
		{"labels not raw logits", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"outputs":[{"name":"output-0","shape":[2],"datatype":"INT64","data":[1,0]}]}`)
		}, protocol.ErrBadGateway, "--disable_postprocess"},
		{"malformed string-dict", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"outputs":[{"name":"output-0","shape":[2],"datatype":"BYTES","data":["{0: 1.0, 1: x}","{0: 3.0, 1: 4.0}"]}]}`)
		}, protocol.ErrBadGateway, "want a float"},
		{"503", func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"error":"overloaded"}`, 503) }, protocol.ErrUnavailable, "overloaded"},
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, protocol.ErrBadGateway, "answered 500"},
		{"400", func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"error":"bad text"}`, 400) }, protocol.ErrInvalidInput, "bad text"},
		{"404 model", func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"error":"model not found"}`, 404) }, protocol.ErrBadGateway, "answered 404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			b := backend(t, kserve.Config{URL: srv.URL, Model: "m", Protocol: "v2", Logits: kserve.LogitsKServe})
			_, err := b.Predict(context.Background(), texts)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err %v, want %v containing %q", err, c.want, c.text)
			}
		})
	}
}

func TestDeadBackendIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close() // a closed port: connection refused
	b := backend(t, kserve.Config{URL: url, Model: "m", Protocol: "v1", Logits: kserve.LogitsKServe})
	if _, err := b.Predict(context.Background(), []string{"a"}); !errors.Is(err, protocol.ErrUnavailable) || !protocol.Retryable(err) {
		t.Fatalf("closed port: %v", err)
	}
	if err := b.Ready(context.Background()); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("health of a closed port: %v", err)
	}
}

// A backend that accepts and never answers: the attempt times out (504,
// retryable); the client's own cancellation is reported as such (not retryable).
func TestHangingBackend(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	b := backend(t, kserve.Config{URL: srv.URL, Model: "m", Protocol: "v2", Logits: kserve.LogitsKServe, Timeout: 50 * time.Millisecond})
	_, err := b.Predict(context.Background(), []string{"a"})
	if !errors.Is(err, protocol.ErrGatewayTimeout) || !protocol.Retryable(err) {
		t.Fatalf("hanging backend: %v", err)
	}
	slow := backend(t, kserve.Config{URL: srv.URL, Model: "m", Protocol: "v2", Logits: kserve.LogitsKServe, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = slow.Predict(ctx, []string{"a"})
	if !errors.Is(err, context.DeadlineExceeded) || protocol.Retryable(err) {
		t.Fatalf("client deadline: %v, want the client's own deadline, not retryable", err)
	}
}

// Request id, Host header and the V2 id travel to the remote.
func TestPassesHeaders(t *testing.T) {
	var gotHost, gotID, gotBody atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost.Store(r.Host)
		gotID.Store(r.Header.Get("X-Request-Id"))
		b := make([]byte, 4096)
		n, _ := r.Body.Read(b)
		gotBody.Store(string(b[:n]))
		fmt.Fprint(w, `{"outputs":[{"name":"logits","shape":[1,2],"datatype":"FP32","data":[1.5,-2.5]}]}`)
	}))
	defer srv.Close()
	b := backend(t, kserve.Config{URL: srv.URL, Model: "m", Protocol: "v2", Logits: kserve.LogitsTensor,
		Headers: map[string]string{"Host": "sst2.default.example.com"}})
	got, err := b.Predict(protocol.WithRequestID(context.Background(), "req-77"), []string{"a"})
	if err != nil || got[0][0] != 1.5 || got[0][1] != -2.5 {
		t.Fatalf("%v %v", got, err)
	}
	if gotHost.Load() != "sst2.default.example.com" || gotID.Load() != "req-77" || !strings.Contains(gotBody.Load().(string), `"id":"req-77"`) {
		t.Errorf("host %v, X-Request-Id %v, body %v", gotHost.Load(), gotID.Load(), gotBody.Load())
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  kserve.Config
		want string
	}{
		{kserve.Config{Model: "m", Protocol: "v1", Logits: "kserve", Labels: labels}, "URL is required"},
		{kserve.Config{URL: "http://x", Protocol: "v1", Logits: "kserve", Labels: labels}, "model name"},
		{kserve.Config{URL: "http://x", Model: "m", Protocol: "v3", Logits: "kserve", Labels: labels}, "protocol"},
		{kserve.Config{URL: "http://x", Model: "m", Protocol: "v1", Logits: "probs", Labels: labels}, "logits"},
		{kserve.Config{URL: "http://x", Model: "m", Protocol: "v1", Logits: "kserve"}, "labels"},
	} {
		if _, err := kserve.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}
