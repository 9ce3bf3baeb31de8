package gateway_test

import (
	"context"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/internal/loadgen"
)

// BenchmarkCacheHitHandler is the handler's own cost for a one-text V1
// request answered from the in-process cache (no network), with what
// chorus serve turns on by default: metrics, monitoring, timing headers.
// Where the cache-hit path spends its time: go test -bench CacheHit
// -cpuprofile.
func BenchmarkCacheHitHandler(b *testing.B) {
	p, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{IntraOpThreads: 1})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(reg, "test")
	if err != nil {
		b.Fatal(err)
	}
	srv := serve(b, gateway.ServerOptions{Limits: testLimits, Cache: gateway.CacheOptions{Store: cache.NewLRU(1000, time.Hour)},
		Metrics: metrics, Gatherer: reg, TimingHeaders: true, Monitoring: gateway.MonitorOptions{Window: 1000, Remember: 100_000}},
		[]gateway.Servable{newModel(b, "distilbert", "", gateway.ModeLabel, p)})
	body := `{"instances": ["Hello, my dog is cute"]}`
	do(srv, "POST", "/v1/models/distilbert:predict", body)
	h := srv.Handler()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/models/distilbert:predict", strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 || w.Header().Get("X-Chorus-Cache") != "hit" {
			b.Fatal(w.Code, w.Header())
		}
	}
}

// BenchmarkGatewayOverheadInProcess times the same one-text request as a
// direct Predict call on the in-process backend and as a V1 HTTP request to
// the gateway in front of it (loopback, cache off), interleaved, and
// reports medians and p99s.
func BenchmarkGatewayOverheadInProcess(b *testing.B) {
	p, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{IntraOpThreads: 1})
	if err != nil {
		b.Fatal(err)
	}
	srv := serve(b, gateway.ServerOptions{Limits: testLimits}, []gateway.Servable{newModel(b, "m", "", gateway.ModeLabel, p)})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	hc := hs.Client()
	text := "Hello, my dog is cute"
	var direct, via []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := p.Predict(context.Background(), []string{text}); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(t0))
		t0 = time.Now()
		resp, err := hc.Post(hs.URL+"/v1/models/m:predict", "application/json", strings.NewReader(`{"instances": ["`+text+`"]}`))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		via = append(via, time.Since(t0))
	}
	q := func(d []time.Duration, p float64) float64 { return float64(loadgen.Quantile(d, p).Microseconds()) }
	b.ReportMetric(q(direct, 0.5), "direct-p50-µs")
	b.ReportMetric(q(via, 0.5), "gateway-p50-µs")
	b.ReportMetric(q(direct, 0.99), "direct-p99-µs")
	b.ReportMetric(q(via, 0.99), "gateway-p99-µs")
}
