package gateway_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := gateway.NewMetrics(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	base := newServer(t) // for its registry of real models
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: testLimits,
		Metrics: m, Gatherer: reg, Cache: gateway.CacheOptions{Store: cache.NewLRU(100, time.Hour)}})
	srv.SetRegistry(base.SetRegistry(nil))
	srv.SetReady(true)
	m.ModelObserver("distilbert").ObserveRun(4, time.Millisecond, 3*time.Millisecond)
	m.ModelObserver("distilbert").ObserveOverlappingRun()
	for range 2 {
		do(srv, "POST", "/v1/models/distilbert:predict", seedV1)
	}
	do(srv, "POST", "/v2/models/distilbert/infer", seedV2)
	do(srv, "POST", "/v1/models/made-up-name-123:predict", seedV1)
	do(srv, "POST", "/v1/models/distilbert:predict", `{"instances": [1]}`)

	if got := testutil.ToFloat64(m.RequestsCounter("distilbert", "v1", "/v1/models/:name", "200")); got != 2 {
		t.Errorf("v1 200s: %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.RequestsCounter("unknown", "v1", "/v1/models/:name", "404")); got != 1 {
		t.Errorf("unknown model 404s: %v (made-up names must not become labels)", got)
	}
	if got := testutil.ToFloat64(m.RequestsCounter("distilbert", "v1", "/v1/models/:name", "400")); got != 1 {
		t.Errorf("400s: %v", got)
	}

	w := do(srv, "GET", "/metrics", "")
	body := w.Body.String()
	for _, want := range []string{
		`chorus_requests_total{code="200",model="distilbert",protocol="v2",route="/v2/models/:name/infer"} 1`,
		"chorus_request_duration_seconds_bucket", "chorus_requests_in_flight",
		`chorus_batch_size_count{model="distilbert"} 1`, "chorus_batch_queue_wait_seconds", "chorus_onnx_run_seconds",
		`chorus_onnx_overlapping_runs_total{model="distilbert"} 1`,
		"chorus_cache_hits_total 4", "chorus_cache_misses_total 2",
		`chorus_replica_healthy{model="distilbert",replica="distilbert-0",version=""} 1`,
		`chorus_replica_breaker_state{model="distilbert",replica="distilbert-0",version=""} 0`,
		`chorus_build_info{goversion=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Names, types, units and help follow Prometheus' conventions.
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, reg)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func mustGather(t *testing.T, g prometheus.Gatherer) []*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
