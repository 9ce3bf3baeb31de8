package gateway_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/protocol"
)

// A model that takes 16 tokens: "word " * 40 is cut, "short" is not.
func newTruncatingServer(t *testing.T) (*gateway.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	var ms []gateway.Servable
	for _, name := range []string{"sst2-tiny-a", "nli-tiny"} {
		p, err := rt.Open(filepath.Join(models, name), onnx.Options{MaxLength: 16})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, newModel(t, name, "", gateway.ModeLabel, p))
	}
	r, err := gateway.NewRegistry(ms)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: headLimits, Version: "test",
		Metrics: metrics, Gatherer: reg, Cache: gateway.CacheOptions{Store: cache.NewLRU(100, time.Hour)}})
	srv.SetRegistry(r)
	srv.SetReady(true)
	return srv, reg
}

var long = strings.Repeat("word ", 40)

// The response says how many texts were cut (also when they come from the
// cache), the metric counts them, and truncate false makes a 413 naming
// the first over-length input's index, on V1, V2 and for pairs.
func TestTruncationVisible(t *testing.T) {
	srv, reg := newTruncatingServer(t)
	v1 := fmt.Sprintf(`{"instances": ["short", %q, %q, "also short"]}`, long, long+"!")
	for i := range 2 {
		w := do(srv, "POST", "/v1/models/sst2-tiny-a:predict", v1)
		var resp struct {
			Predictions []int
			Parameters  map[string]any
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		if got := resp.Parameters["truncated"]; got != 2.0 || resp.Parameters["truncated_inputs"] != "1,2" {
			t.Errorf("request %d (cache %s): truncated %v, want 2", i, w.Header().Get("X-Chorus-Cache"), got)
		}
	}
	// Short texts only: no parameter at all, as KServe answers.
	w := do(srv, "POST", "/v1/models/sst2-tiny-a:predict", `{"instances": ["short"]}`)
	if strings.Contains(w.Body.String(), "truncated") {
		t.Errorf("nothing cut, yet %s", w.Body)
	}
	v2 := fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["short", %q]}]}`, long)
	w = do(srv, "POST", "/v2/models/sst2-tiny-a/infer", v2)
	var resp protocol.InferResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 || resp.Parameters["truncated"] != 1.0 {
		t.Errorf("V2: %d %s, want parameters.truncated 1", w.Code, w.Body)
	}
	pairs := fmt.Sprintf(`{"instances": [{"text": "a", "text_pair": "b"}, {"text": %q, "text_pair": "b"}]}`, long)
	w = do(srv, "POST", "/v1/models/nli-tiny:predict", pairs)
	if !strings.Contains(w.Body.String(), `"truncated":1`) {
		t.Errorf("pairs: %d %s, want truncated 1", w.Code, w.Body)
	}

	c, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(c).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for model, want := range map[string]int{"sst2-tiny-a": 5, "nli-tiny": 1} {
		n, err := testutil.GatherAndCount(reg, "chorus_truncated_texts_total")
		if err != nil || n != 2 {
			t.Fatalf("chorus_truncated_texts_total: %d series, %v", n, err)
		}
		body := do(srv, "GET", "/metrics", "").Body.String()
		if line := fmt.Sprintf(`chorus_truncated_texts_total{model=%q} %d`, model, want); !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	for _, c := range []struct{ path, body, want string }{
		{"/v1/models/sst2-tiny-a:predict", fmt.Sprintf(`{"instances": ["short", %q], "parameters": {"truncate": false}}`, long), "input 1 is longer than the model's 16 tokens"},
		{"/v2/models/sst2-tiny-a/infer", fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [3], "datatype": "BYTES", "data": ["a", "b", %q]}], "parameters": {"truncate": false}}`, long), "input 2 is longer"},
		{"/v1/models/nli-tiny:predict", fmt.Sprintf(`{"instances": [["a", %q]], "parameters": {"truncate": false}}`, long), "input 0 is longer"},
	} {
		w := do(srv, "POST", c.path, c.body)
		var e protocol.ErrorResponse
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 413 || !strings.Contains(e.Error, c.want) {
			t.Errorf("%s truncate false: %d %s, want 413 saying %q", c.path, w.Code, w.Body, c.want)
		}
	}
	// Texts that fit are answered as usual with truncate false, cached
	// over-length ones are refused all the same.
	w = do(srv, "POST", "/v1/models/sst2-tiny-a:predict", `{"instances": ["short"], "parameters": {"truncate": false}}`)
	if w.Code != 200 {
		t.Errorf("short text, truncate false: %d %s", w.Code, w.Body)
	}
}
