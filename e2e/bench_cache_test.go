package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/loadgen"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/internal/redistest"
)

// BenchmarkCacheHitVsModel runs the same bounded load (32 clients, one-text
// V1 requests over 200 distinct texts, the demo model) twice against one
// gateway with Redis: once answered from a warm cache, once with
// Cache-Control: no-cache so every text goes to the model. It reports
// requests per second and p50/p99 of each, their ratio, and Redis round
// trips per request (from Redis' own command statistics).
//
//	go test -run '^$' -bench CacheHitVsModel -benchtime 4000x ./e2e
func BenchmarkCacheHitVsModel(b *testing.B) {
	rs := redistest.Start(b)
	cfg := filepath.Join(b.TempDir(), "gateway.yaml")
	yaml := fmt.Sprintf("cache: {url: %q}\nmodels:\n  - name: distilbert\n    replicas: [{type: onnx, model_dir: %q}]\n",
		rs.URL, filepath.Join(proctest.Root(), "models", "demo-sentiment"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	gw := proctest.Start(b, nil, proctest.Chorus(b), "serve", "--config", cfg, "--http_port", "{port}", "--log-level", "warn")
	gw.WaitReady("/v2/health/ready", 30*time.Second)
	texts := make([]string, 200)
	for i := range texts {
		texts[i] = fmt.Sprintf("review %d: the movie was surprisingly good but the ending felt rushed", i)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	load := func(n int, noCache bool) (float64, []time.Duration, int64) {
		var next, failed atomic.Int64
		lat := make([]time.Duration, n)
		var wg sync.WaitGroup
		t0 := time.Now()
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					req, _ := http.NewRequest("POST", gw.URL+"/v1/models/distilbert:predict",
						strings.NewReader(`{"instances": ["`+texts[i%len(texts)]+`"]}`))
					if noCache {
						req.Header.Set("Cache-Control", "no-cache")
					}
					s := time.Now()
					resp, err := hc.Do(req)
					lat[i] = time.Since(s)
					if err != nil || resp.StatusCode != 200 {
						failed.Add(1)
					}
					if resp != nil {
						resp.Body.Close()
					}
				}
			}()
		}
		wg.Wait()
		return float64(n) / time.Since(t0).Seconds(), lat, failed.Load()
	}
	mgets := func() int64 {
		c := rs.Client()
		defer c.Close()
		info := c.Info(context.Background(), "commandstats").Val()
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_mget:calls="); ok {
				n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
				return n
			}
		}
		return 0
	}
	load(len(texts), false) // warm: every text cached
	time.Sleep(200 * time.Millisecond)
	b.ResetTimer()
	before := mgets()
	hitRPS, hitLat, f1 := load(b.N, false)
	roundTrips := float64(mgets()-before) / float64(b.N)
	modelRPS, modelLat, f2 := load(b.N, true)
	b.StopTimer()
	if f1+f2 != 0 {
		b.Fatalf("%d failed requests", f1+f2)
	}
	q := func(d []time.Duration, p float64) float64 {
		return float64(loadgen.Quantile(d, p).Microseconds()) / 1000
	}
	b.ReportMetric(hitRPS, "hit-req/s")
	b.ReportMetric(modelRPS, "model-req/s")
	b.ReportMetric(hitRPS/modelRPS, "rps-ratio")
	b.ReportMetric(q(hitLat, 0.5), "hit-p50-ms")
	b.ReportMetric(q(hitLat, 0.99), "hit-p99-ms")
	b.ReportMetric(q(modelLat, 0.5), "model-p50-ms")
	b.ReportMetric(q(modelLat, 0.99), "model-p99-ms")
	b.ReportMetric(roundTrips, "redis-mget/req")
}
